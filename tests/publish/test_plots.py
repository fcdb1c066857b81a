"""The response curves drawn from the same support analysis that sets `roi_support`: the shaded
range and the solid part of the curve start at the overlap's lower support bound, so a channel
flagged `extrapolated` is drawn dashed near zero, and one whose ROI rests on dark weeks is solid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D

from cmmm_pipeline.core.config import AdstockType
from cmmm_pipeline.dag import overlap as ov
from cmmm_pipeline.media.features import ChannelTransform, ParameterSource, transforms_table
from cmmm_pipeline.publish.plots import curve_title, response_curve, response_curves_figure

WEEKS = 156
THRESHOLDS = ov.OverlapThresholds()
TRANSFORMS = {c: ChannelTransform(c, AdstockType.GEOMETRIC, 0.4, 1.5, 2.0, 12, 1.0, 1.2, ParameterSource.CONFIG)
              for c in ("always_on", "pulsed")}


def _world() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Two channels driven by the season: one always on (yet with a single dark week, so its lowest
    week is 0), one dark in about a third of the weeks of every season."""
    rng = np.random.default_rng(3)
    season = np.sin(2 * np.pi * np.arange(WEEKS) / 52.18)
    always_on = 400.0 * np.exp(0.4 * season + rng.normal(0.0, 0.25, WEEKS))
    always_on[40] = 0.0
    pulsed = np.where(rng.random(WEEKS) < 0.35, 0.0, always_on + 50.0)
    return {"always_on": always_on, "pulsed": pulsed}, season[:, None]


def _published(spend: dict[str, np.ndarray], season: np.ndarray) -> tuple[pd.DataFrame, dict[str, ov.ChannelSupport]]:
    """The overlap table and the flags, as the DAG step and the estimation step make them."""
    rows = [r for channel, s in spend.items()
            for r in ov.channel_overlap(channel, s / s.mean(), s, season, ["seasonality"], THRESHOLDS)]
    return ov.overlap_table(rows), ov.channel_supports(rows, THRESHOLDS)


def _estimate(support: ov.ChannelSupport) -> pd.Series:
    return pd.Series({"channel": support.channel, "effect": "total", "ate": 900.0, "roi": 1.5, "roi_ci_low": 1.2,
                      "roi_ci_high": 1.8, "roi_support": support.roi_support.value,
                      "extrapolated_share": support.extrapolated_share})


def _lines(ax, gid: str) -> list[Line2D]:  # noqa: ANN001
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def test_the_solid_curve_and_the_shading_start_at_the_bound_that_sets_the_flag() -> None:
    spend, season = _world()
    table, supports = _published(spend, season)
    transforms = transforms_table(TRANSFORMS)
    curves = [response_curve(c, spend[c], transforms, _estimate(supports[c]),
                             ov.published_support(table, c, spend[c])) for c in spend]
    fig = response_curves_figure(curves, "sales")
    for ax, curve in zip(fig.axes, curves):
        support = supports[curve.channel]
        assert curve.support_low == support.support_low  # one number, from the overlap analysis
        (solid,) = _lines(ax, "supported")
        x = solid.get_xdata()
        assert x.min() == support.support_low and x.max() == pytest.approx(spend[curve.channel].max())
        shade = next(p for p in ax.patches if p.get_gid() == "support").get_bbox()  # x in data units
        assert (shade.x0, shade.x1) == pytest.approx((support.support_low, spend[curve.channel].max()))
        # the flag and the picture say the same: the bound over the average week is the extrapolated share
        assert support.support_low / spend[curve.channel].mean() == pytest.approx(support.extrapolated_share)
        dashed_near_zero = [line for line in _lines(ax, "extrapolated") if line.get_xdata().min() == 0.0]
        if support.roi_support is ov.RoiSupport.EXTRAPOLATED:
            assert support.support_low > THRESHOLDS.max_extrapolated_share * spend[curve.channel].mean()
            assert len(dashed_near_zero) == 1 and dashed_near_zero[0].get_xdata().max() == support.support_low
        else:
            assert x.min() == 0.0 and dashed_near_zero == []
    on, pulsed = supports["always_on"], supports["pulsed"]
    # the always-on channel's lowest week is 0, yet its curve is not solid down to zero
    assert spend["always_on"].min() == 0.0 and on.roi_support is ov.RoiSupport.EXTRAPOLATED
    assert on.support_low > 100.0
    assert pulsed.roi_support is ov.RoiSupport.OBSERVED and pulsed.support_low == 0.0
    assert curve_title(curves[0]).startswith("always_on · ROI vs zero spend: extrapolated (")
    assert curve_title(curves[1]) == "pulsed · ROI vs zero spend: observed"


def test_the_published_support_is_read_back_from_the_table_or_from_the_share() -> None:
    spend, season = _world()
    table, supports = _published(spend, season)
    s = spend["always_on"]
    read = ov.published_support(table, "always_on", s)
    assert read == ov.SpendSupport(supports["always_on"].support_low, s.max(), s.mean())
    older = ov.published_support(table.drop(columns=["support_low"]), "always_on", s)  # a table from before
    assert older.low == pytest.approx(read.low)
    assert ov.published_support(None, "always_on", s, supports["always_on"].extrapolated_share).low == pytest.approx(
        read.low)
    assert ov.published_support(None, "always_on", s) is None


def test_without_a_support_the_curve_is_solid_over_the_observed_weeks() -> None:
    spend, _ = _world()
    estimate = pd.Series({"ate": 900.0, "roi": 1.5, "roi_ci_low": 1.2, "roi_ci_high": 1.8})
    curve = response_curve("always_on", spend["always_on"], transforms_table(TRANSFORMS), estimate)
    assert curve.support_low == curve.observed_min == 0.0 and curve.supported[0]
    assert curve_title(curve) == "always_on"


@pytest.mark.parametrize(("values", "bottom"), [([3.0, 1.0, 2.0], 0.0), ([3.0, -1.0, 2.0], None)])
def test_the_quarterly_bars_rise_from_zero_to_each_quarters_estimate(
        monkeypatch: pytest.MonkeyPatch, values: list[float], bottom: float | None) -> None:
    """One bar per quarter, centred on it, 0.7 wide, from zero to the estimate; with every estimate
    positive the axis starts at zero, as `ax.bar` draws it (no margin below the baseline)."""
    from matplotlib.collections import PolyCollection

    from cmmm_pipeline.publish import plots

    figures: list = []
    monkeypatch.setattr(plots, "_svg", lambda fig: figures.append(fig) or b"")
    rows = [{"period_type": "quarter", "effect": "total", "channel": "tv", "period": q, "incremental_kpi": v,
             "incremental_ci_low": v - 0.5, "incremental_ci_high": v + 0.5}
            for q, v in zip(("2024-Q1", "2024-Q2", "2024-Q3"), values, strict=True)]
    plots.quarterly_effects_svg(pd.DataFrame(rows), "sales")
    (ax,) = figures[0].axes
    (bars,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    for i, (path, value) in enumerate(zip(bars.get_paths(), values, strict=True)):
        corners = path.vertices[:4]
        assert sorted(set(corners[:, 0].round(9))) == pytest.approx([i - 0.35, i + 0.35])
        assert sorted(set(corners[:, 1])) == sorted({0.0, value})
    low, high = ax.get_ylim()
    assert high > max(values) + 0.5
    if bottom is not None:
        assert low == bottom
    else:
        assert low < -1.5  # the negative quarter's interval reaches -1.5, with a margin
