"""Budgets that follow sales: g-estimation against the adjustments it replaces.

    python benchmarks/feedback_study.py [--seeds 40] [--first-seed 1] [--samples 200]

Worlds where TV is planned from the KPI 52 weeks before and digital from the mean KPI of the last
4 weeks, while an unobserved, persistent demand moves the KPI (so the lagged KPI confounds spend
and KPI, and is a result of earlier spend). Two families:

- `linear`: geometric adstock, Hill saturation, an additive KPI, a linear planning rule with
  Gaussian noise and a persistent AR(1) demand (0.98 a week: a third of it lasts a year). The
  model's assumptions hold.
- `ratio`: another simulator written apart from the model. Spend is a share of the KPI's past,
  with log-normal noise and flighted TV (dark weeks). Adstock is Weibull and saturation logistic.
  The demand is a random walk with shocks. The planning rule is not linear-Gaussian: the weights
  are misspecified.

Every world is estimated five ways with the true transforms (the question is identification, not
selection). The KPI is regressed on both channels' transformed media and the seasonality, and:
- `oracle`: with the unobserved demand added;
- `adjust_lagged`: with the lagged-KPI columns added (the invalid adjustment a weekly DAG suggests);
- `no_adjustment`: with nothing more;
- `g_estimation`: the pipeline's estimator for these channels (`cmmm_pipeline.effects.feedback`):
  the adstocked planning residual instruments the media; no lagged KPI is adjusted for. The
  pipeline withholds these channels from the estimates table and publishes this beside it.
- `g_estimation_no_time`: the same without the piecewise-linear function of time in the equations
  (an ablation: time absorbs the demand's slow drift).

It prints, per family, channel and method: the worlds without an estimate (g-estimation withholds a
channel whose planning residual is a weak instrument), the median ROI error, the median absolute
error (both over the worlds with an estimate), the coverage of the interval (the HAC interval for
the regressions, the block bootstrap for g-estimation; a world without an estimate counts as not
covered) and the median absolute error's ratio to the oracle's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from cmmm_pipeline.core.loading import parse_config  # noqa: E402
from cmmm_pipeline.dag.feedback import LagKind, LaggedKpi, kpi_history  # noqa: E402
from cmmm_pipeline.effects.estimation import MARGINAL_STEP, newey_west_lags  # noqa: E402
from cmmm_pipeline.effects.feedback import TIME_KNOT_WEEKS, FeedbackChannel, g_estimates, unit_impulse  # noqa: E402
from cmmm_pipeline.media.selection import SelectionSettings, select_transforms  # noqa: E402
from cmmm_pipeline.media.transforms import (  # noqa: E402
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    weibull_pdf_adstock,
)

WEEKS = 208
TV_DRIVER = LaggedKpi("sales_lag52", LagKind.LAG, 52)
DIGITAL_DRIVER = LaggedKpi("sales_mean_last4", LagKind.MEAN, 4)
METHODS = ("oracle", "adjust_lagged", "no_adjustment", "g_estimation", "g_estimation_no_time")


@dataclass(frozen=True)
class FeedbackWorld:
    family: str
    seed: int
    spend: dict[str, np.ndarray]
    media: dict[str, np.ndarray]
    """The true transformed media (its coefficient is the channel's effect)."""
    impulse: dict[str, np.ndarray]
    demand: np.ndarray
    season: np.ndarray
    kpi: np.ndarray
    true_roi: dict[str, float]
    reference: dict[str, float]
    """The spend the saturation's argument is scaled by (adstocked spend / reference)."""
    adstocked: dict[str, np.ndarray]
    stepped: dict[str, np.ndarray]
    """The true transformed media of every week's spend +1%."""
    true_mroi: dict[str, float]

    @property
    def weeks(self) -> int:
        return self.kpi.size


def _impulse(adstock, weeks: int = 26) -> np.ndarray:
    unit = np.zeros(weeks)
    unit[0] = 1.0
    return adstock(unit)


def simulate_feedback(family: str, seed: int, weeks: int = WEEKS) -> FeedbackWorld:
    """One world of `family` ("linear" or "ratio"); the seed fixes everything."""
    rng = np.random.default_rng([seed, 0 if family == "linear" else 1])
    n = weeks
    season = fourier_terms(n, 1)[:, 0]
    if family == "linear":
        demand = np.zeros(n)
        for t in range(1, n):
            demand[t] = 0.98 * demand[t - 1] + rng.normal(0, 30)
        adstock = {"tv": lambda s: geometric_adstock(s, 0.6), "digital": lambda s: geometric_adstock(s, 0.3)}
        curve = {"tv": lambda a: hill_saturation(a, 1.0, 1.2), "digital": lambda a: hill_saturation(a, 0.8, 1.0)}
    else:
        demand = np.cumsum(rng.normal(0, 25, n)) + np.where(rng.random(n) < 0.03, rng.normal(0, 200, n), 0).cumsum()
        demand -= demand.mean()
        adstock = {"tv": lambda s: weibull_pdf_adstock(s, 2.0, 3.0, 12),
                   "digital": lambda s: weibull_pdf_adstock(s, 1.2, 1.5, 8)}
        curve = {"tv": lambda a: 1 / (1 + np.exp(-2.5 * (a - 0.8))) - 1 / (1 + np.exp(2.0)),
                 "digital": lambda a: 1 / (1 + np.exp(-3.0 * (a - 0.5))) - 1 / (1 + np.exp(1.5))}
    beta = {"tv": 900.0 * rng.uniform(0.6, 1.4), "digital": 600.0 * rng.uniform(0.6, 1.4)}
    base = 5000.0 + 400.0 * season
    spend = {"tv": np.zeros(n), "digital": np.zeros(n)}
    kpi = np.zeros(n)
    tv_mean, dig_mean = 2000.0, 800.0
    reference = {"tv": tv_mean, "digital": dig_mean}
    noise = rng.normal(0, 80, n)
    for t in range(n):
        y_hist = kpi[:t]
        last_year = y_hist[t - 52] if t >= 52 else 5000.0
        last4 = y_hist[t - 4:t].mean() if t >= 4 else 5000.0
        if family == "linear":
            spend["tv"][t] = max(0.0, tv_mean + 1.6 * (last_year - 5000.0) + rng.normal(0, 500))
            spend["digital"][t] = max(0.0, dig_mean + 0.8 * (last4 - 5000.0) + rng.normal(0, 200))
        else:
            on_air = rng.random() < 0.7
            spend["tv"][t] = on_air * 0.4 * max(last_year, 1.0) * rng.lognormal(0, 0.35)
            spend["digital"][t] = 0.16 * max(last4, 1.0) * rng.lognormal(0, 0.3)
        media_t = {c: curve[c](adstock[c](spend[c][:t + 1])[t:t + 1] / reference[c])[0] for c in spend}
        kpi[t] = base[t] + demand[t] + sum(beta[c] * media_t[c] for c in spend) + noise[t]
    media = {c: curve[c](adstock[c](spend[c]) / reference[c]) for c in spend}
    stepped = {c: curve[c](adstock[c](spend[c] * (1 + MARGINAL_STEP)) / reference[c]) for c in spend}
    impulse = {c: _impulse(adstock[c]) for c in spend}
    true_roi = {c: beta[c] * float(media[c].sum()) / float(spend[c].sum()) for c in spend}
    true_mroi = {c: beta[c] * float((stepped[c] - media[c]).sum()) / (MARGINAL_STEP * float(spend[c].sum()))
                 for c in spend}
    return FeedbackWorld(family, seed, spend, media, impulse, demand, season, kpi, true_roi, reference,
                         {c: adstock[c](spend[c]) for c in spend}, stepped, true_mroi)


Interval = tuple[float, float, float]
"""A coefficient on the transformed media and its 90% interval."""


def _regression(world: FeedbackWorld, extra: np.ndarray | None, rows: np.ndarray) -> dict[str, Interval]:
    """Each channel's coefficient and 90% HAC interval from OLS of the KPI on media, seasonality and `extra`."""
    columns = [np.ones(world.weeks), world.media["tv"], world.media["digital"], world.season]
    x = np.column_stack(columns + ([extra] if extra is not None else []))
    fit = sm.OLS(world.kpi[rows], x[rows]).fit(cov_type="HAC", cov_kwds={"maxlags": newey_west_lags(rows.size)})
    low, high = fit.conf_int(0.10).T
    return {c: (fit.params[j], low[j], high[j]) for j, c in enumerate(("tv", "digital"), start=1)}


def _by_coefficient(world: FeedbackWorld, found: dict[str, Interval]) -> dict[str, tuple[Interval, Interval]]:
    """(ROI, mROI) with intervals from a coefficient on the true transformed media."""
    out = {}
    for c, (b, low, high) in found.items():
        roi = float(world.media[c].sum()) / float(world.spend[c].sum())
        mroi = float((world.stepped[c] - world.media[c]).sum()) / (MARGINAL_STEP * float(world.spend[c].sum()))
        out[c] = ((b * roi, low * roi, high * roi), (b * mroi, low * mroi, high * mroi))
    return out


def _g(world: FeedbackWorld, channels: list[FeedbackChannel], samples: int,
       knot_weeks: int | None = TIME_KNOT_WEEKS) -> dict[str, tuple[Interval, Interval]]:
    found = g_estimates(channels, np.empty((world.weeks, 0)), world.season[:, None], world.kpi, samples, 0.90, 8,
                        np.random.default_rng(world.seed), knot_weeks=knot_weeks)
    return {e.channel: ((e.roi, e.roi_ci_low, e.roi_ci_high), (e.mroi, e.mroi_ci_low, e.mroi_ci_high))
            for e in found}


def selected_channels(world: FeedbackWorld) -> list[FeedbackChannel]:
    """The channels with the transforms the pipeline selects from this world's data (its config lists
    seasonality and the two lagged-KPI controls, generated; every transform left to selection)."""
    n = world.weeks
    raw = pd.DataFrame({"week": pd.date_range("2022-01-03", periods=n, freq="W-MON"),
                        "tv_spend": world.spend["tv"], "digital_spend": world.spend["digital"], "sales": world.kpi})
    edges = [["seasonality", "tv"], ["seasonality", "digital"], ["seasonality", "sales"], [TV_DRIVER.node, "tv"],
             [DIGITAL_DRIVER.node, "digital"], ["tv", "sales"], ["digital", "sales"]]
    config = parse_config({"data": {"path": "weekly.csv", "date_column": "week", "kpi": "sales"},
                           "channels": {"tv": {"spend_column": "tv_spend"}, "digital": {"spend_column": "digital_spend"}},
                           "controls": ["seasonality", TV_DRIVER.node, DIGITAL_DRIVER.node],
                           "graph": {"edges": edges}}, Path("feedback.yaml").resolve())
    chosen = select_transforms(raw, config, SelectionSettings.from_config(config.estimation)).transforms
    out = []
    for c, driver in (("tv", TV_DRIVER), ("digital", DIGITAL_DRIVER)):
        t, spend = chosen[c], world.spend[c]
        out.append(FeedbackChannel(c, spend, t.apply(spend, t.reference(spend)), unit_impulse(t), (driver,),
                                   t.apply(spend * (1 + MARGINAL_STEP), t.reference(spend))))
    return out


def study_world(world: FeedbackWorld, samples: int, selected: bool = True) -> list[dict[str, object]]:
    lagged = np.column_stack([kpi_history(world.kpi, TV_DRIVER), kpi_history(world.kpi, DIGITAL_DRIVER)])
    rows = np.flatnonzero(np.isfinite(lagged).all(axis=1))
    results = {"oracle": _by_coefficient(world, _regression(world, world.demand, rows)),
               "adjust_lagged": _by_coefficient(world, _regression(world, lagged, rows)),
               "no_adjustment": _by_coefficient(world, _regression(world, None, rows))}
    channels = [FeedbackChannel(c, world.spend[c], world.media[c], world.impulse[c], (d,), world.stepped[c])
                for c, d in (("tv", TV_DRIVER), ("digital", DIGITAL_DRIVER))]
    results["g_estimation"] = _g(world, channels, samples)
    results["g_estimation_no_time"] = _g(world, channels, samples, knot_weeks=None)
    if selected:
        results["g_estimation_selected"] = _g(world, selected_channels(world), samples)
    out = []
    for method, by_channel in results.items():
        for channel, ((roi, low, high), (mroi, mlow, mhigh)) in by_channel.items():
            truth, mtruth = world.true_roi[channel], world.true_mroi[channel]
            out.append({"family": world.family, "seed": world.seed, "channel": channel, "method": method,
                        "truth": truth, "roi": roi, "low": low, "high": high, "error": roi - truth,
                        "covered": bool(low <= truth <= high), "mroi_truth": mtruth, "mroi": mroi,
                        "mroi_error": mroi - mtruth, "mroi_covered": bool(mlow <= mtruth <= mhigh)})
    return out


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    grouped = table.groupby(["family", "channel", "method"], sort=False)
    out = grouped.agg(worlds=("seed", "size"), withheld=("roi", lambda r: int(r.isna().sum())),
                      roi_truth=("truth", "median"), roi_error=("error", "median"),
                      roi_abs_error=("error", lambda e: float(np.median(np.abs(e)))),
                      roi_coverage=("covered", "mean"), mroi_truth=("mroi_truth", "median"),
                      mroi_abs_error=("mroi_error", lambda e: float(np.median(np.abs(e)))),
                      mroi_coverage=("mroi_covered", "mean")).reset_index()
    oracle = out[out["method"] == "oracle"].set_index(["family", "channel"])
    out["roi_ratio"] = [r.roi_abs_error / oracle.loc[(r.family, r.channel), "roi_abs_error"] for r in out.itertuples()]
    out["mroi_ratio"] = [r.mroi_abs_error / oracle.loc[(r.family, r.channel), "mroi_abs_error"]
                         for r in out.itertuples()]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--families", nargs="+", default=["linear", "ratio"])
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for family in args.families:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += study_world(simulate_feedback(family, seed), args.samples)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    pd.set_option("display.width", 160)
    print(f"{args.seeds} worlds per family, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
          f"{WEEKS} weeks, 90% intervals, {args.samples} bootstrap resamples for g-estimation")
    print(summarize(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
