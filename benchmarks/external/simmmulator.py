"""External validation: worlds from `pysimmmulator` (PyPI 0.6.2, a Python port of Meta's siMMMulator),
a simulator this project did not write, with a true ROI per channel.

Install it beside the project (a benchmark dependency, never a runtime one):

    python3.11 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -e '.[test,bench]'
    /tmp/bench-venv/bin/python -m benchmarks.external.simmmulator --seeds 4

What the simulator does (read from its source, 0.6.2), and what that makes the truth:

- Daily data. Every day is a campaign (`frequency_of_campaigns: 1`) with a truncated-normal total spend,
  split over the channels by uniform shares; every channel's spend is multiplied by (1 + trend/base), the
  KPI's own trend, so the trend confounds spend and revenue.
- Impressions = spend / noisy CPM · 1000; clicks = spend / noisy CPC. Channels priced by the click get no
  CPM (1e10), so their impressions round to 0, and 0.6.2 caps clicks at impressions: a click-priced
  channel (Search) has zero clicks and zero conversions. Its true ROI is 0, a null channel.
- Response: the day's metric is adstocked (geometric, daily λ), then `scurve`: a·a^α/(a^α + g^α) with g
  the γ-quantile of a's range, times a noisy conversion rate; revenue = 14 · conversions + 14 · baseline.
  The S-curve multiplies the impressions, so the response is convex at low spend and grows linearly,
  unbounded, above g: no member of the pipeline's families (a bounded Hill curve of weekly adstocked spend)
  has that form, so the true transforms cannot be written into a config. The oracle here is therefore
  outside the pipeline, as in `benchmarks/heldout/oracle.py`: OLS of weekly revenue on each channel's true
  weekly response (Σ over the week's days of the S-curve of the adstocked metric), a linear trend and two
  Fourier harmonics, with a HAC (Newey–West, 3 lags) interval.
- Its ROI is net of spend, (14 · conversions − spend) / spend: the comparable truth is its ROI + 1, the
  pipeline's gross incremental revenue per unit of spend (turning a channel off removes all its
  conversions). The marginal ROI is computed here by intervention on the same equations: every day's
  spend × 1.01 (impressions scale with it, CPM and conversion rate held), g held at its factual value.

Weekly output (its `aggregation_level: weekly`, weeks starting Monday); the partial first and last
weeks are dropped, as a user would, and the truth is taken over the weeks kept. Every world is written
as a new user writes it: the CSV with snake-case columns (`amazon_spend`, ..., `revenue`), a config
with only `spend_column` per channel, controls `seasonality` and `trend`, and the simulator's graph
(trend → every channel and revenue, seasonality → revenue, every channel → revenue); then `cmmm run`.

Printed per world and channel: ROI and mROI truth, the pipeline's estimate, relative error, coverage
and interval width with selected transforms; the oracle's; the ratio of the errors; withheld channels;
and the transform the pipeline selected.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.heldout.run import Case, Outcome, relative_error, run_case, score  # noqa: E402

Z95 = 1.959964
MROI_STEP = 0.01
REVENUE_PER_CONVERSION = 14.0

EXAMPLE_CONFIG: dict = {
    # The values of pysimmmulator's examples/example_config.yaml, with `years: 3` (the issue's worlds) and
    # `aggregation_level: weekly`.
    "basic_params": {"years": 3, "channels_impressions": ["Amazon", "TV", "Long-Form Video"],
                     "channels_clicks": ["Search"], "frequency_of_campaigns": 1, "start_date": "2017/1/1",
                     "true_cvr": {"Amazon": 0.006, "TV": 0.001, "Long-Form Video": 0.002, "Search": 0.007},
                     "revenue_per_conv": 14},
    "baseline_params": {"base_p": 100000, "trend_p": 100000, "temp_var": 8, "temp_coef_mean": 20,
                        "temp_coef_sd": 3, "error_std": 90},
    "ad_spend_params": {"campaign_spend_mean": 329000, "campaign_spend_std": 100000,
                        "max_min_proportion_on_each_channel": {"Amazon": {"min": 0.10, "max": 0.35},
                                                               "TV": {"min": 0.05, "max": 0.30},
                                                               "Long-Form Video": {"min": 0.01, "max": 0.10}}},
    "media_params": {"true_cpm": {"Amazon": 3.50, "TV": 12.50, "Long-Form Video": 6.50}, "true_cpc": {"Search": 2.60},
                     "noisy_cpm_cpc": {"Amazon": {"loc": 0.0, "scale": 0.25}, "TV": {"loc": 0.0, "scale": 1.0},
                                       "Long-Form Video": {"loc": 0.0, "scale": 1.0},
                                       "Search": {"loc": 0.0, "scale": 0.25}}},
    "cvr_params": {"noisy_cvr": {"Amazon": {"loc": 0.0, "scale": 0.01}, "TV": {"loc": 0.0, "scale": 0.0025},
                                 "Long-Form Video": {"loc": 0.0, "scale": 0.005},
                                 "Search": {"loc": 0.0, "scale": 0.01}}},
    "adstock_params": {
        "adstock": {"Amazon": {"type": "geometric", "params": {"lambda": 0.1}},
                    "TV": {"type": "geometric", "params": {"lambda": 0.2}},
                    "Long-Form Video": {"type": "geometric", "params": {"lambda": 0.15}},
                    "Search": {"type": "geometric", "params": {"lambda": 0.08}}},
        "saturation": {"Amazon": {"type": "scurve", "params": {"alpha": 4.0, "gamma": 0.20}},
                       "TV": {"type": "scurve", "params": {"alpha": 3.0, "gamma": 0.30}},
                       "Long-Form Video": {"type": "scurve", "params": {"alpha": 2.0, "gamma": 0.40}},
                       "Search": {"type": "scurve", "params": {"alpha": 1.0, "gamma": 0.50}}}},
    "output_params": {"aggregation_level": "weekly"},
}


def snake(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class ExternalWorld:
    """One generated world: the weekly CSV a user gets, the truth, the oracle's design."""

    seed: int
    data: pd.DataFrame
    """week, `<channel>_spend` per channel, revenue (full weeks only)."""
    truth: pd.DataFrame
    """channel, roi, mroi, simulator_roi_plus_1 (its own figure, all days), zero_in_support, always_on, null."""
    response: dict[str, np.ndarray]
    """Channel → the true weekly response Σ_days scurve(adstock(metric)) and the same at spend × 1.01."""
    daily: dict[str, tuple[np.ndarray, np.ndarray, float, float, float]]
    """Channel → its daily metric and conversion rate, adstock λ, S-curve α and inflection g."""
    day_week: np.ndarray
    """Per day, the row of its week in `data` (−1: a partial week, dropped)."""


def _geometric(x: np.ndarray, lam: float) -> np.ndarray:
    out = np.empty_like(x)
    acc = 0.0
    for i, v in enumerate(x):
        acc = v + lam * acc
        out[i] = acc
    return out


def _scurve(a: np.ndarray, alpha: float, g: float) -> np.ndarray:
    """pysimmmulator's `scurve_saturation` with its inflection g held fixed: the S-curve times a."""
    return a**alpha / (a**alpha + g**alpha) * a


def generate(seed: int, config: dict | None = None) -> ExternalWorld:
    """Run the simulator stage by stage (the calls `run_with_config` makes, in its order, so the same
    seed gives the same data) and keep the daily internals the truth needs."""
    from pysimmmulator import Simulate
    from pysimmmulator.load_parameters import create_all_parameters

    logging.getLogger("pysimmmulator").setLevel(logging.ERROR)
    cfg = copy.deepcopy(config or EXAMPLE_CONFIG)
    params = create_all_parameters(cfg)
    sim = Simulate(random_seed=seed)
    sim.basic_params = params["basic_params"]
    sim.total_population = None
    basic = params["basic_params"]
    baseline = sim.simulate_baseline(params["baseline_params"])
    spend = sim.simulate_ad_spend(baseline_sales_df=baseline, params=params["ad_spend_params"])
    spend = sim.simulate_media(spend_df=spend, params=params["media_params"])
    spend = sim.simulate_cvr(spend_df=spend, params=params["cvr_params"])
    daily = sim.simulate_decay_returns(spend_df=spend, params=params["adstock_params"])
    daily = sim.calculate_conversions(mmm_df=daily)
    internals = daily.copy()
    with warnings.catch_warnings():
        # It assigns columns to a slice (the values land where it means them to), and divides by the
        # conversions of the click-priced channel, which it gives none (its ROI is 0: see `truth`).
        warnings.filterwarnings("ignore", category=pd.errors.SettingWithCopyWarning, module="pysimmmulator")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="pysimmmulator")
        consolidated = sim.consolidate_dataframe(mmm_df=daily, baseline_sales_df=baseline)
        own_roi = sim.calculate_channel_roi(mmm_df=consolidated)
    weekly = sim.finalize_output(mmm_df=consolidated.copy(), params=params["output_params"])

    dates = pd.to_datetime(internals["date"]).reset_index(drop=True)
    week_start = dates - pd.to_timedelta(dates.dt.weekday, unit="D")
    days_in_week = week_start.map(week_start.value_counts())
    full_days = (days_in_week == 7).to_numpy()
    full_weeks = sorted(week_start[full_days].unique())
    weekly = weekly.loc[full_weeks]

    data = pd.DataFrame({"week": pd.to_datetime(weekly.index).strftime("%Y-%m-%d")})
    rows, response, daily = [], {}, {}
    sat = cfg["adstock_params"]["saturation"]
    ads = cfg["adstock_params"]["adstock"]
    for channel in basic.all_channels:
        name = snake(channel)
        data[f"{name}_spend"] = weekly[f"{channel}_spend"].to_numpy()
        metric = "impressions" if channel in basic.channels_impressions else "clicks"
        m = internals[f"{channel}_{metric}"].to_numpy(dtype=float)
        cvr = internals[f"{channel}_cvr"].to_numpy(dtype=float)
        a = _geometric(m, float(ads[channel]["params"]["lambda"]))
        alpha, gamma = float(sat[channel]["params"]["alpha"]), float(sat[channel]["params"]["gamma"])
        # Its date backbone has one day more than its campaigns (a NaN last day), and a channel without
        # any metric gives 0/0: both count as zero in its sums, and here.
        g = float(np.quantile(np.linspace(np.nanmin(a), np.nanmax(a), num=100), gamma))
        conversions = internals[f"{channel}_conversions"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            base, up = _scurve(a, alpha, g), _scurve((1 + MROI_STEP) * a, alpha, g)
        assert np.allclose(conversions, base * cvr, rtol=1e-9, atol=1e-6, equal_nan=True), \
            "the truth's equations left the simulator's"
        daily[name] = (m, cvr, float(ads[channel]["params"]["lambda"]), alpha, g)
        base, up, cvr = np.nan_to_num(base), np.nan_to_num(up), np.nan_to_num(cvr)
        s = np.nan_to_num(internals[f"{channel}_spend"].to_numpy(dtype=float))[full_days]
        kept = full_days
        roi = REVENUE_PER_CONVERSION * float((base * cvr)[kept].sum()) / float(s.sum())
        mroi = REVENUE_PER_CONVERSION * float(((up - base) * cvr)[kept].sum()) / (MROI_STEP * float(s.sum()))
        frame = pd.DataFrame({"w": week_start[kept].to_numpy(), "base": base[kept], "up": up[kept]})
        by_week = frame.groupby("w").sum().loc[full_weeks]
        response[name] = np.column_stack([by_week["base"].to_numpy(), by_week["up"].to_numpy()])
        rows.append({"channel": name, "spend": float(s.sum()), "roi": roi, "mroi": mroi,
                     "simulator_roi_plus_1": float(own_roi[channel]) + 1.0, "zero_in_support": False,
                     "always_on": True, "null": roi == 0.0})
    data["revenue"] = weekly["total_revenue"].to_numpy()
    row = {w: i for i, w in enumerate(full_weeks)}
    day_week = np.array([row.get(w, -1) if full else -1 for w, full in zip(week_start, full_days)])
    return ExternalWorld(seed, data, pd.DataFrame(rows), response, daily, day_week)


def window_lift(world: ExternalWorld, channel: str, start: int, weeks: int, measured_weeks: int) -> float:
    """The revenue a lift test of `channel` finds with its spend off in the weeks [start, start + weeks)
    of `data` (its metric zero on their days, everything else as simulated), summed over the days of the
    weeks [start, start + measured_weeks): the window's, or with the carryover after it."""
    m, cvr, lam, alpha, g = world.daily[channel]
    off = m.copy()
    off[(world.day_week >= start) & (world.day_week < start + weeks)] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lost = _scurve(_geometric(m, lam), alpha, g) - _scurve(_geometric(off, lam), alpha, g)
    measured = (world.day_week >= start) & (world.day_week < start + measured_weeks)
    return REVENUE_PER_CONVERSION * float(np.nan_to_num(lost * cvr)[measured].sum())


def edges(world: ExternalWorld) -> tuple[tuple[str, str], ...]:
    """The simulator's graph as a user would draw it."""
    channels = list(world.truth["channel"])
    return (*(("trend", c) for c in channels), ("trend", "revenue"), ("seasonality", "revenue"),
            *((c, "revenue") for c in channels))


def case(world: ExternalWorld) -> Case:
    return Case("simmmulator", world.seed, world.data, world.truth, edges(world), ("seasonality", "trend"),
                kpi="revenue")


def oracle(world: ExternalWorld) -> pd.DataFrame:
    """OLS of weekly revenue on every channel's true weekly response, a linear trend and two yearly
    harmonics (HAC, 3 lags): ROI and mROI with 95% intervals per channel."""
    import statsmodels.api as sm

    n = len(world.data)
    channels = list(world.truth["channel"])
    active = [c for c in channels if world.response[c][:, 0].any()]  # a channel without conversions: known 0
    w = 2 * np.pi * np.arange(n) / 52.1775
    design = np.column_stack([world.response[c][:, 0] for c in active]
                             + [np.arange(n) / n, np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)])
    fit = sm.OLS(world.data["revenue"].to_numpy(), sm.add_constant(design)).fit(cov_type="HAC",
                                                                               cov_kwds={"maxlags": 3})
    rows = [{"channel": c, "what": what, "est": 0.0, "low": 0.0, "high": 0.0}
            for c in channels if c not in active for what in ("roi", "mroi")]
    for i, c in enumerate(active, start=1):
        spend = float(world.data[f"{c}_spend"].sum())
        r = world.response[c]
        per_unit = {"roi": r[:, 0].sum() / spend, "mroi": (r[:, 1] - r[:, 0]).sum() / (MROI_STEP * spend)}
        for what, per_coef in per_unit.items():
            est, se = fit.params[i] * per_coef, fit.bse[i] * per_coef
            rows.append({"channel": c, "what": what, "est": float(est), "low": float(est - Z95 * se),
                         "high": float(est + Z95 * se)})
    return pd.DataFrame(rows).pivot(index="channel", columns="what").reindex(channels)


def _cover(low: float, high: float, truth: float) -> float:
    return math.nan if any(math.isnan(v) for v in (low, high, truth)) else float(low <= truth <= high)


def _f(value: float, spec: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def selected_transforms(folder: Path) -> dict[str, str]:
    path = folder / "out" / "transform_selection.csv"
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    table = table[table["selected"].astype(bool)]
    out = {}
    for r in table.itertuples(index=False):
        carry = (f"geo {r.decay:g}" if r.adstock == "geometric"
                 else f"{r.adstock} {r.weibull_shape:g}/{r.weibull_scale:g}")
        out[r.channel] = f"{carry}, hill K {r.half_saturation:g} s {r.slope:g}"
    return out


def rows_for(world: ExternalWorld, outcome: Outcome, transforms: dict[str, str]) -> pd.DataFrame:
    scored = score(outcome).set_index("channel")
    orc = oracle(world)
    out = []
    for t in world.truth.itertuples(index=False):
        s = scored.loc[t.channel]
        o = orc.loc[t.channel]
        row = {"seed": world.seed, "channel": t.channel, "roi_truth": t.roi, "sim_roi_plus_1": t.simulator_roi_plus_1,
               "mroi_truth": t.mroi, "withheld": s["withheld"], "transform": transforms.get(t.channel, "")}
        for what in ("roi", "mroi"):
            truth = float(getattr(t, what))
            row |= {f"{what}": s[what], f"{what}_err": s[f"{what}_err"],
                    f"{what}_cover": s[f"{what}_cover"], f"{what}_width": s[f"{what}_ci_high"] - s[f"{what}_ci_low"],
                    f"{what}_oracle": o[("est", what)], f"{what}_oracle_err": relative_error(o[("est", what)], truth),
                    f"{what}_oracle_cover": _cover(o[("low", what)], o[("high", what)], truth),
                    f"{what}_oracle_width": o[("high", what)] - o[("low", what)]}
        out.append(row)
    return pd.DataFrame(out)


def print_world(frame: pd.DataFrame, outcome: Outcome) -> None:
    head = f"--- simmmulator seed {outcome.case.seed}: "
    if outcome.refused or outcome.crashed:
        verdict = "REFUSED" if outcome.refused else "CRASHED"
        print(head + f"{verdict} ({', '.join(outcome.rules)}) {outcome.message[-300:]}")
    else:
        print(head + f"published in {outcome.seconds:.0f} s")
    print(f"  {'channel':<16} {'ROI truth':>9} {'(sim+1)':>8} {'est':>7} {'err':>6} {'cov':>3} {'width':>7} | "
          f"{'oracle':>7} {'err':>6} {'cov':>3} {'width':>7} | {'ratio':>5} || {'mROI truth':>10} {'est':>7} "
          f"{'err':>6} {'cov':>3} {'width':>7} | {'oracle':>7} {'err':>6} {'cov':>3} {'width':>7} | {'ratio':>5} "
          f"| selected transform; withheld")
    for r in frame.itertuples(index=False):
        ratio = r.roi_err / r.roi_oracle_err if r.roi_oracle_err else math.nan
        mratio = r.mroi_err / r.mroi_oracle_err if r.mroi_oracle_err else math.nan
        print(f"  {r.channel:<16} {r.roi_truth:>9.3f} {r.sim_roi_plus_1:>8.3f} {_f(r.roi):>7} {_f(r.roi_err):>6} "
              f"{_f(r.roi_cover, '.0f'):>3} {_f(r.roi_width, '.2f'):>7} | {_f(r.roi_oracle):>7} "
              f"{_f(r.roi_oracle_err):>6} {_f(r.roi_oracle_cover, '.0f'):>3} {_f(r.roi_oracle_width, '.2f'):>7} | "
              f"{_f(ratio, '.2f'):>5} || {r.mroi_truth:>10.3f} {_f(r.mroi):>7} {_f(r.mroi_err):>6} "
              f"{_f(r.mroi_cover, '.0f'):>3} {_f(r.mroi_width, '.2f'):>7} | {_f(r.mroi_oracle):>7} "
              f"{_f(r.mroi_oracle_err):>6} {_f(r.mroi_oracle_cover, '.0f'):>3} {_f(r.mroi_oracle_width, '.2f'):>7} | "
              f"{_f(mratio, '.2f'):>5} | {r.transform}; {r.withheld or '-'}")


def _median(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.median()) if len(s) else math.nan


def print_summary(table: pd.DataFrame) -> None:
    """Pooled over worlds; the null channel (truth 0) is scored by its absolute error, apart."""
    effect = table[table["roi_truth"] != 0]
    null = table[table["roi_truth"] == 0]
    print("\n=== pooled over worlds, channels with an effect (ROI median relative error, coverage, median width)")
    for what in ("roi", "mroi"):
        sel, orc = _median(effect[f"{what}_err"]), _median(effect[f"{what}_oracle_err"])
        print(f"  {what.upper():<4} selected err {_f(sel)} cover {_f(effect[f'{what}_cover'].mean(), '.2f')} "
              f"width {_f(_median(effect[f'{what}_width']), '.2f')} | oracle err {_f(orc)} cover "
              f"{_f(effect[f'{what}_oracle_cover'].mean(), '.2f')} "
              f"width {_f(_median(effect[f'{what}_oracle_width']), '.2f')}"
              f" | selected/oracle {_f(sel / orc if orc else math.nan, '.2f')}")
    if len(null):
        names = ", ".join(sorted(set(null["channel"])))
        print(f"  null channel ({names}, truth 0): |ROI| median {_f(_median(null['roi_err']))}, "
              f"interval covers 0 in {_f(null['roi_cover'].mean(), '.2f')} of {len(null)}")
    withheld = table[table["withheld"].astype(str) != ""]
    print(f"  withheld: {len(withheld)} of {len(table)} channels"
          + ("" if withheld.empty else ": " + "; ".join(f"seed {r.seed} {r.channel} ({r.withheld})"
                                                          for r in withheld.itertuples(index=False))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1-4", help="seeds, e.g. 1-4 or 1,3")
    parser.add_argument("--keep", type=Path, default=None, help="keep every run's inputs and outputs here")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-channel rows to this CSV")
    parser.add_argument("--tree", type=Path, default=None,
                        help="import cmmm_pipeline from this copy of the tree (an ablation's variant)")
    parser.add_argument("--estimation", action="append", default=[], metavar="KEY=VALUE",
                        help="ablation, not a default: set an `estimation` key of every config (repeatable)")
    args = parser.parse_args(argv)
    import yaml

    estimation = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.estimation)}
    if "-" in args.seeds:
        lo, hi = (int(v) for v in args.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(v) for v in args.seeds.split(",")]
    keep = args.keep or Path(tempfile.mkdtemp(prefix="simmmulator-"))
    print(f"pysimmmulator worlds (its example config, 3 years, weekly), seeds {seeds}; cmmm at "
          f"{'estimation ' + str(estimation) + ' (ablation)' if estimation else 'default settings'}, "
          "every transform left to selection")
    started = time.perf_counter()
    frames = []
    for seed in seeds:
        world = generate(seed)
        outcome = run_case(case(world), keep, args.tree, estimation=estimation or None)
        frame = rows_for(world, outcome, selected_transforms(keep / f"simmmulator-{seed}"))
        print_world(frame, outcome)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    print_summary(table)
    print(f"\n{len(seeds)} runs in {time.perf_counter() - started:.0f} s")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
