"""The report's figures are laid out from their own texts' sizes, not by a layout engine: every tick
label, axis label, title and legend lies inside the picture, off the other panels and off the other
titles, with long channel names and large numbers as well as short ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.publish import plots

SHORT = ["tv", "search"]
LONG = ["connected_tv_brand_campaign_emea", "paid_search_generic_terms", "email", "affiliate_network_cashback"]


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figures: list[Any] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figures.append(fig) or b"")
    monkeypatch.setattr(plots, "_svg", lambda fig: figures.append(fig) or b"")
    return figures


def _forest(channels: list[str], scale: float) -> None:
    rows = [{"channel": c, "effect": e, "roi": scale * (1 + i), "roi_ci_low": scale * i, "roi_ci_high": scale * (2 + i),
             "naive_roi": scale * (0.5 + i)} for i, c in enumerate(channels) for e in ("total", "direct")]
    plots.forest_plot_png(pd.DataFrame(rows))


def _contributions(channels: list[str], scale: float) -> None:
    weeks = pd.date_range("2021-01-04", periods=156, freq="7D")
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"week": weeks, **{c: rng.random(156) for c in channels},
                          "sales": scale * (5 + rng.random(156))})
    parts = [plots.ContributionPart(c, c, scale) for c in channels]
    plots.contributions_svg(table, parts, "sales")


def _curves(channels: list[str], scale: float) -> None:
    spend = np.linspace(0.0, 50 * scale, 60)
    response = scale * 10 * spend / (spend + 10 * scale)
    curves = [plots.ResponseCurve(c, spend, response, 0.8 * response, 1.2 * response, 0.0, 40 * scale, 20 * scale,
                                  5 * scale, "extrapolated", 0.63) for c in channels]
    plots.response_curves_svg(curves, "sales")


def _quarters(channels: list[str], scale: float) -> None:
    quarters = [f"{y}-Q{q}" for y in (2022, 2023, 2024) for q in range(1, 5)]
    rows = [{"period_type": "quarter", "effect": "total", "channel": c, "period": p, "incremental_kpi": scale * 3,
             "incremental_ci_low": scale * 2, "incremental_ci_high": scale * 4} for c in channels for p in quarters]
    plots.quarterly_effects_svg(pd.DataFrame(rows), "sales")


def _drawn_tick_labels(axis: Any) -> list[Any]:
    """Labels of the ticks drawn: inside the view (the axis keeps stale ticks outside it)."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * (high - low)
    return [t.label1 for t in axis.get_major_ticks() if low - slack <= t.get_loc() <= high + slack
            and t.label1.get_visible() and t.label1.get_text()]


def _texts(ax: Any) -> list[Any]:
    """The texts drawn on `ax` that the layout must make room for."""
    ticks = [*_drawn_tick_labels(ax.xaxis), *_drawn_tick_labels(ax.yaxis)]
    labels = [t for t in (ax.xaxis.label, ax.yaxis.label, ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text())
              if t.get_text()]
    return [*ticks, *labels]


@pytest.mark.parametrize("draw", [_forest, _contributions, _curves, _quarters])
@pytest.mark.parametrize(("channels", "scale"), [(SHORT, 1.0), (LONG, 3e5)], ids=["short", "long"])
def test_every_text_is_inside_the_figure_and_off_the_other_panels(monkeypatch: pytest.MonkeyPatch, draw: Any,
                                                                   channels: list[str], scale: float) -> None:
    figures = _captured(monkeypatch)
    draw(channels, scale)
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    axes_boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):  # an axis's tick labels never run into each other
            boxes = [t.get_window_extent(renderer) for t in _drawn_tick_labels(axis)]
            assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), \
                [t.get_text() for t in _drawn_tick_labels(axis)]
        for text in _texts(ax):
            box = text.get_window_extent(renderer)
            where = f"{text.get_text()!r} of {ax.get_title() or ax.get_ylabel()}"
            assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5, where
            for other, other_box in zip(fig.axes, axes_boxes):
                if other is not ax:
                    assert not box.overlaps(other_box), f"{where} overlaps another panel"
    titles = [t for ax in fig.axes for t in (ax.title, ax._left_title) if t.get_text()]
    title_boxes = [t.get_window_extent(renderer) for t in titles]
    for title, box in zip(titles, title_boxes):
        assert box.y1 <= height + 0.5 and box.x0 >= -0.5 and box.x1 <= width + 0.5, title.get_text()
        assert not any(box.overlaps(b) for b in axes_boxes), title.get_text()
        assert not any(box.overlaps(b) for b in title_boxes if b is not box), f"{title.get_text()} runs into another"
    titles = [fig._suptitle] if fig._suptitle is not None else []
    for artist in (*fig.legends, *titles):  # above the panels (a legend inside a panel is meant to be there)
        box = artist.get_window_extent(renderer)
        assert box.y1 <= height + 0.5 and box.x0 >= -0.5 and box.x1 <= width + 0.5, box
        assert not any(box.overlaps(b) for b in axes_boxes), (box, axes_boxes)
    # and the panels use the picture: no more than a text's width of white at the right and at the top
    right = max(b.x1 for b in axes_boxes)
    assert width - right < 0.25 * width


def test_an_svg_figure_has_the_png_size_text_as_text_and_the_same_bytes_each_time() -> None:
    """The page lays an SVG figure out at the size its PNG had (DPI pixels an inch), the browser draws
    its labels, and drawing the same data twice gives the same file (no date, no random ids)."""
    import re
    from xml.etree import ElementTree

    spend = np.linspace(0.0, 50.0, 60)
    response = 10 * spend / (spend + 10)
    curves = [plots.ResponseCurve(c, spend, response, 0.8 * response, 1.2 * response, 0.0, 40.0, 20.0, 5.0)
              for c in SHORT]
    first, second = plots.response_curves_svg(curves, "sales"), plots.response_curves_svg(curves, "sales")
    assert first == second
    svg = ElementTree.fromstring(first)
    figure = plots.response_curves_figure(curves, "sales")
    width, height = figure.get_size_inches() * plots.DPI
    assert (svg.get("width"), svg.get("height")) == (f"{width:.0f}px", f"{height:.0f}px")
    texts = {"".join(t.itertext()).strip() for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"tv", "search", "weekly spend (held constant)", "weekly incremental sales"} <= texts
    assert not re.search(rb"<dc:date>", first)
