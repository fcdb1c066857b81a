"""Calibrate the overlap gate by simulation: false refusals on identifiable worlds from several
generators, and power against a real positivity violation (TV on air only in the high season).

For every world the pipeline's own overlap measures are computed exactly as the DAG step does
(the sample's graph, DoWhy's adjustment sets, the configured transforms): per channel its
residual share (sqrt(1 − R²) of its media on its adjustment set), the smallest stratum spread
(within-stratum SD of the media over its overall SD) and the share of its incremental KPI that
lies below the comparable weeks' floor (ROI support). It prints

1. the lower tail of the two gated measures on identifiable worlds, by generator;
2. the refusal rate (a run with at least one withheld channel) at the default thresholds, by
   generator, beside the rate of the hard cut at the thresholds (each share's estimate compared,
   not its upper 95% bound: `confidence` 0.5) and of the gate before strata on confounders, and
   the rate at which each kind of channel is flagged `extrapolated`;
3. power: the share of violation worlds whose TV is withheld, by how much TV varies when on air,
   with the test and with the hard cut.

Identifiable worlds come from three generators: the project simulator, an independent one written
here, and the held-out family's (`benchmarks/heldout/worlds.py`: delayed-peak TV, a budget TV and
digital share, 70 weeks: where a hard cut withheld TV at "spread 0.09 < 0.1").

    .venv/bin/python -m benchmarks.overlap_calibration --seeds 40
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from benchmarks.heldout.worlds import WORLDS as HELDOUT_WORLDS
from benchmarks.heldout.worlds import World, simulate_world
from cmmm_pipeline.core.config import (
    AdstockConfig,
    ChannelConfig,
    DataConfig,
    PipelineConfig,
    SaturationConfig,
)
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.dag.identification import identify_channels, total_adjustments
from cmmm_pipeline.dag.overlap import (
    OverlapThresholds,
    RoiSupport,
    channel_supports,
    overlap_strata,
    propensity_score,
    strata,
)
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.media.transforms import geometric_adstock
from cmmm_pipeline.simulation.simulate import WEEKS_PER_YEAR, Scenario, ar1, simulate

EDGES = (("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
         ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
         ("trend", "sales"))
TRANSFORMS = {"tv": (0.6, 1.0, 1.4), "search": (0.2, 2.0, 1.0), "digital": (0.3, 1.0, 1.2),
              "email": (0.1, 1.5, 1.0)}


def study_config() -> PipelineConfig:
    channels = tuple(ChannelConfig(name, f"{name}_spend", AdstockConfig(decay=d),
                                   SaturationConfig(half_saturation=h, slope=s))
                     for name, (d, h, s) in TRANSFORMS.items())
    return PipelineConfig(source=Path("overlap-calibration.yaml"), data=DataConfig(Path("simulated"), "week", "sales"),
                          channels=channels, controls=("seasonality", "trend", "price"), edges=EDGES)


# ---------------------------------------------------------------------------------------------
# Generators. The project simulator, and an independent one written here: lognormal AR(1) plans,
# search driven by TV's carried-over spend, optional always-on TV, a channel launched later.


@dataclass(frozen=True)
class Independent:
    """A second generator: the sample's graph with other functional forms and plans."""

    n_weeks: int = 156
    tv_always_on: bool = False
    launch_week: int = 0
    """Digital spends nothing before this week (a channel launched later)."""
    tv_high_season_only: float | None = None
    """Violation: TV on air only in weeks whose season is above this quantile; its on-air level
    then varies by `tv_on_air_sd` (log scale) only."""
    tv_on_air_sd: float = 0.3
    confounding: float = 0.6
    tv_noise_sd: float = 0.4
    """Week-to-week variation of TV's plan beyond the season (log scale); near 0, the season fixes TV."""

    def draw(self, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        n = self.n_weeks
        t = np.arange(n)
        phase = rng.uniform(0, 2 * np.pi)
        season = np.sin(2 * np.pi * t / WEEKS_PER_YEAR + phase)
        if self.tv_high_season_only is not None:
            on = season > np.quantile(season, self.tv_high_season_only)
            tv = np.where(on, 1200.0 * np.exp(rng.normal(0.0, self.tv_on_air_sd, n)), 0.0)
        else:
            level = 1200.0 * np.exp(self.confounding * season + ar1(rng, n, 0.6, self.tv_noise_sd))
            flights = np.repeat(rng.random(n // 3 + 1) < 0.7, 3)[:n] if not self.tv_always_on else np.ones(n, bool)
            tv = np.where(flights, level, 0.0)
        carry = geometric_adstock(tv, 0.5)
        search = 250.0 * (1.0 + 1.5 * carry / max(carry.mean(), 1e-9)) * np.exp(ar1(rng, n, 0.3, 0.25))
        digital = 600.0 * np.exp(self.confounding * season + ar1(rng, n, 0.5, 0.35))
        digital[: self.launch_week] = 0.0
        email = np.where(rng.random(n) < 0.2, 0.0, 90.0 * np.exp(rng.normal(0.0, 0.5, n)))
        price = 10.0 + ar1(rng, n, 0.7, 0.4)
        sales = 5000.0 + 800.0 * season + rng.normal(0.0, 100.0, n)  # overlap never reads the KPI
        return pd.DataFrame({"week": pd.date_range("2023-01-02", periods=n, freq="W-MON"), "tv_spend": tv,
                             "search_spend": search, "digital_spend": digital, "email_spend": email, "price": price,
                             "sales": sales})


def _project(scenario: Scenario) -> Callable[[int], pd.DataFrame]:
    return lambda seed: simulate(scenario, seed=seed).data


def _heldout(world: World) -> Callable[[int], pd.DataFrame]:
    """A held-out world's data with a price column (an AR(1) the KPI would follow; overlap never
    reads the KPI) so that it fits the study's config."""
    def draw(seed: int) -> pd.DataFrame:
        data = simulate_world(world, seed).data
        return data.assign(price=10.0 + ar1(np.random.default_rng([seed, 7]), len(data), 0.7, 0.4))
    return draw


def _heldout_world(name: str, **changes: object) -> World:
    return replace(HELDOUT_WORLDS[name], **changes)


IDENTIFIABLE: dict[str, Callable[[int], pd.DataFrame]] = {
    "simulate: default (sample)": _project(Scenario()),
    "simulate: pulsed digital/email": _project(Scenario(dark_weeks=0.25)),
    "simulate: heavy confounding + collinearity": _project(Scenario(confounding=1.2, collinearity=0.6)),
    "simulate: 70 weeks": _project(Scenario(n_weeks=70)),
    "simulate: strong mediation (x4)": _project(Scenario(mediation=8.0)),
    "independent: flighted TV": Independent().draw,
    "independent: always-on TV": Independent(tv_always_on=True).draw,
    "independent: 70 weeks, always-on TV": Independent(n_weeks=70, tv_always_on=True).draw,
    "independent: digital launched in week 52": Independent(launch_week=52).draw,
    "independent: strong confounding (1.2)": Independent(confounding=1.2).draw,
    "held-out: seed graph (delayed TV)": _heldout(HELDOUT_WORLDS["seed_graph"]),
    "held-out: 70 weeks": _heldout(HELDOUT_WORLDS["short_history"]),
    "held-out: shared budget 0.8": _heldout(HELDOUT_WORLDS["shared_budget"]),
    "held-out: shared budget 0.7, 70 weeks": _heldout(_heldout_world("shared_budget", n_weeks=70, shared_budget=0.7)),
    "held-out: heavy confounding": _heldout(HELDOUT_WORLDS["heavy_confounding"]),
}
VIOLATIONS: dict[str, Callable[[int], pd.DataFrame]] = {
    f"TV only in top {round(100 * (1 - q))}% season weeks, on-air sd {sd}":
        Independent(tv_high_season_only=q, tv_on_air_sd=sd).draw
    for q in (0.5, 0.6) for sd in (0.0, 0.3, 0.6)
} | {f"TV set by the season (always on, noise sd {sd})":
         Independent(tv_always_on=True, confounding=1.0, tv_noise_sd=sd).draw for sd in (0.01, 0.02, 0.05)}


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldMeasures:
    frame: pd.DataFrame
    """channel, residual_share, min_spread, min_weeks, extrapolated_share, withheld, roi_support."""


def _adjustments(config: PipelineConfig, raw: pd.DataFrame,
                 features: pd.DataFrame) -> tuple[dict[str, tuple[str, ...]], nx.DiGraph]:
    g = build_graph(config)
    expanded = expand_graph(g, node_columns(raw, config))
    identified = identify_channels(features, g, expanded, list(config.channel_names), config.kpi, ())
    return total_adjustments(identified), expanded


def previous_rule_refuses(media: np.ndarray, spend: np.ndarray, adjusters: np.ndarray) -> bool:
    """The gate this one replaced: 3 strata of the whole adjustment set, each with spend CV at
    least 0.5 × the overall CV and weeks both at/below and above the median spend."""
    labels = strata(propensity_score(media, adjusters), 3)
    cv = (lambda v: float(v.std() / v.mean()) if v.mean() > 0 else 0.0)
    overall, median = cv(spend), float(np.median(spend))
    for k in range(3):
        s = spend[labels == k]
        if (cv(s) / overall if overall > 0 else 0.0) < 0.5 or not (s <= median).any() or not (s > median).any():
            return True
    return False


def measure(data: pd.DataFrame, config: PipelineConfig, thresholds: OverlapThresholds,
            graph: tuple[dict[str, tuple[str, ...]], nx.DiGraph] | None = None
            ) -> tuple[pd.DataFrame, tuple[dict[str, tuple[str, ...]], nx.DiGraph]]:
    """The overlap measures of one world; `graph` (adjustment sets and expanded DAG) is the same
    for every seed of a world, so it is computed once."""
    transforms = {c.name: configured_transform(c) for c in config.channels}
    features = build_features(data, config, transforms)
    graph = graph or _adjustments(config, data, features)
    adjustments, expanded = graph
    spend = {c.name: data[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    rows = overlap_strata(features, spend, adjustments, thresholds, expanded)
    supports = channel_supports(rows, thresholds)
    previous = {c: previous_rule_refuses(features[c].to_numpy(dtype=float), spend[c],
                                         features[list(adj)].to_numpy(dtype=float)) for c, adj in adjustments.items()}
    frame = pd.DataFrame([{
        "channel": c, "residual_share": s.residual_share,
        "residual_share_upper": next(r.residual_share_upper for r in rows if r.channel == c),
        "min_spread": min(r.spread for r in rows if r.channel == c),
        "min_spread_upper": min(r.spread_upper for r in rows if r.channel == c),
        "min_weeks": min(r.weeks for r in rows if r.channel == c),
        "extrapolated_share": s.extrapolated_share, "withheld": s.withheld,
        "hard_cut_withheld": (s.residual_share < thresholds.min_residual_share
                              or min(r.spread for r in rows if r.channel == c) < thresholds.min_spread
                              or min(r.weeks for r in rows if r.channel == c) < thresholds.min_weeks),
        "extrapolated": s.roi_support is RoiSupport.EXTRAPOLATED, "previous_rule_refuses": previous[c]}
        for c, s in supports.items()])
    return frame, graph


def run(generators: dict[str, Callable[[int], pd.DataFrame]], seeds: int,
        thresholds: OverlapThresholds) -> pd.DataFrame:
    config = study_config()
    frames = []
    for name, draw in generators.items():
        graph = None
        for seed in range(seeds):
            frame, graph = measure(draw(seed), config, thresholds, graph)
            frames.append(frame.assign(world=name, seed=seed))
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args(argv)
    thresholds = OverlapThresholds()
    print(f"Thresholds: bins {thresholds.bins}, min_weeks {thresholds.min_weeks}, min_spread "
          f"{thresholds.min_spread}, min_residual_share {thresholds.min_residual_share}; ROI observed when "
          f"extrapolated_share <= {thresholds.max_extrapolated_share}; a share fails when its "
          f"{thresholds.confidence:.0%} upper bound is below its threshold. {args.seeds} seeds per world.\n")
    ok = run(IDENTIFIABLE, args.seeds, thresholds)
    print("1. Identifiable worlds: lower tail of the gated measures (over channels and seeds)")
    tail = ok.groupby("world", sort=False).agg(
        residual_share_min=("residual_share", "min"), residual_share_p01=("residual_share", lambda s: s.quantile(0.01)),
        spread_min=("min_spread", "min"), spread_p01=("min_spread", lambda s: s.quantile(0.01)))
    print(tail.round(3).to_string(), "\n")
    lowest = ok.groupby("channel").agg(residual_share_min=("residual_share", "min"), spread_min=("min_spread", "min"))
    print("   by channel (all identifiable worlds):")
    print(lowest.round(3).to_string(), "\n")

    print("2. False refusals: share of runs with at least one withheld channel, and ROI support")
    runs = ok.groupby(["world", "seed"], sort=False)["withheld"].any().groupby("world", sort=False).mean()
    extrap = ok.pivot_table(index="world", columns="channel", values="extrapolated", aggfunc="mean", sort=False)
    before = (ok.groupby(["world", "seed"], sort=False)["previous_rule_refuses"].any()
              .groupby("world", sort=False).mean())
    hard = ok.groupby(["world", "seed"], sort=False)["hard_cut_withheld"].any().groupby("world", sort=False).mean()
    out = pd.concat([runs.rename("runs_refused"), hard.rename("hard_cut_refused"),
                     before.rename("previous_rule_refused"), extrap.add_prefix("extrapolated_")], axis=1)
    print(out.round(3).to_string())
    print(f"   overall: {ok.groupby(['world', 'seed'])['withheld'].any().mean():.3f} of runs, "
          f"{ok['withheld'].mean():.3f} of channels (hard cut: "
          f"{ok.groupby(['world', 'seed'])['hard_cut_withheld'].any().mean():.3f} of runs, "
          f"{ok['hard_cut_withheld'].mean():.3f} of channels)")
    near = ok[(ok["min_spread"] < 2 * thresholds.min_spread)
              | (ok["residual_share"] < 2 * thresholds.min_residual_share)]
    print(f"   channels within a factor 2 of a threshold: {len(near)}; withheld {int(near['withheld'].sum())}, "
          f"by the hard cut {int(near['hard_cut_withheld'].sum())}")
    if len(near):
        print(near[["world", "seed", "channel", "min_spread", "min_spread_upper", "residual_share",
                    "residual_share_upper", "withheld", "hard_cut_withheld"]].round(3).to_string(index=False))
    print()

    bad = run(VIOLATIONS, args.seeds, thresholds)
    tv = bad[bad["channel"] == "tv"]
    print("3. Power: share of violation worlds whose TV is withheld (others withheld alongside)")
    power = tv.groupby("world", sort=False).agg(tv_withheld=("withheld", "mean"),
                                                 tv_hard_cut=("hard_cut_withheld", "mean"),
                                                 tv_min_spread_median=("min_spread", "median"),
                                                 tv_spread_upper_median=("min_spread_upper", "median"),
                                                 tv_residual_share_median=("residual_share", "median"))
    others = bad[bad["channel"] != "tv"].groupby("world", sort=False)["withheld"].mean().rename("others_withheld")
    print(pd.concat([power, others], axis=1).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
