"""False alarms and power of the missing-driver diagnostics, by simulation with known truth.

    python benchmarks/diagnostics_calibration.py [--seeds 100] [--first-seed 2000]

Each world pairs the project's simulator (`simulation.simulate`) with the config a user wrote.
Worlds with no missing driver (every cause of the KPI in the DAG, or a cause left out that the KPI
does not have) measure false alarms; worlds whose config leaves out the KPI's trend or seasonality,
or whose KPI carries a slow-moving driver nobody measured, measure power. Transforms are the true
ones (the study isolates the diagnostics from transform selection). Prints, per world, the share
of seeds with each warning and with any warning.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.independence_study import TRUE_EDGES
from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.loading import parse_config
from cmmm_pipeline.dag.diagnostics import DiagnosticSettings, Driver, diagnose_missing_drivers
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.simulation.simulate import Scenario, ar1, simulate

ALL_CONTROLS = ("seasonality", "trend", "price")


@dataclass(frozen=True)
class World:
    name: str
    scenario: Scenario
    controls: tuple[str, ...]
    missing: frozenset[Driver]
    """The drivers the config leaves out that the KPI really has (empty: a null world)."""
    hidden_driver_sd: float = 0.0
    """A slow-moving AR(0.9) cause of the KPI that no column measures (KPI units)."""


def worlds() -> list[World]:
    no_trend, no_season = ("seasonality", "price"), ("trend", "price")
    return [
        World("every driver in the DAG", Scenario(), ALL_CONTROLS, frozenset()),
        World("no trend in truth or config", Scenario(trend_effect=0.0), no_trend, frozenset()),
        World("no KPI seasonality in truth or config", Scenario(season_effect=0.0), no_season, frozenset()),
        World("config leaves out the trend (600)", Scenario(), no_trend, frozenset({Driver.TREND})),
        World("config leaves out the trend (200)", Scenario(trend_effect=200.0), no_trend, frozenset({Driver.TREND})),
        World("config leaves out seasonality (900)", Scenario(), no_season, frozenset({Driver.SEASONALITY})),
        World("config leaves out seasonality (300)", Scenario(season_effect=300.0), no_season,
              frozenset({Driver.SEASONALITY})),
        World("unmeasured slow driver (AR 0.9, sd 200)", Scenario(), ALL_CONTROLS,
              frozenset({Driver.AUTOCORRELATION}), hidden_driver_sd=200.0),
    ]


def world_config(world: World) -> PipelineConfig:
    channels = {name: {"spend_column": ch.spend_column, "adstock": {"type": "geometric", "decay": ch.decay},
                       "saturation": {"type": "hill", "half_saturation": ch.half_saturation, "slope": ch.slope}}
                for name, ch in world.scenario.channels.items()}
    known = {*world.scenario.channels, *world.controls, "sales"}
    edges = [list(e) for e in TRUE_EDGES if set(e) <= known]
    raw = {"data": {"path": "weekly.csv", "date_column": "week", "kpi": "sales"}, "channels": channels,
           "controls": list(world.controls), "graph": {"edges": edges}}
    return parse_config(raw, Path("simulated.yaml").resolve())


def hidden_driver(n: int, sd: float, seed: int) -> np.ndarray:
    """A stationary AR(0.9) series of marginal standard deviation `sd`."""
    return ar1(np.random.default_rng([seed, 99]), n, 0.9, sd)


def run_world(world: World, seeds: Sequence[int], settings: DiagnosticSettings) -> pd.DataFrame:
    """One row per seed: which drivers were reported."""
    config = world_config(world)
    transforms = {c.name: configured_transform(c) for c in config.channels}
    g = nx.DiGraph([tuple(e) for e in config.edges])
    rows = []
    for seed in seeds:
        data = simulate(world.scenario, seed).data
        if world.hidden_driver_sd:
            data = data.assign(sales=data["sales"] + hidden_driver(len(data), world.hidden_driver_sd, seed))
        features = build_features(data, config, transforms)
        expanded = expand_graph(g, node_columns(data, config))
        report = diagnose_missing_drivers(features, expanded, config.kpi, settings)
        warned = {f.driver for f in report.warnings}
        rho = next(f.statistic for f in report.findings if f.driver is Driver.AUTOCORRELATION)
        rows.append({"world": world.name, "seed": seed, **{d.value: d in warned for d in Driver},
                     "any": bool(warned), "missing": bool(world.missing), "lag1": rho})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=2000)
    args = parser.parse_args()
    settings = DiagnosticSettings()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    start = time.perf_counter()
    table = pd.concat([run_world(w, seeds, settings) for w in worlds()], ignore_index=True)
    groups = table.groupby(["world", "missing"], sort=False)
    summary = groups[[d.value for d in Driver] + ["any"]].mean()
    summary["lag1_median"] = groups["lag1"].median()
    summary["lag1_q95"] = groups["lag1"].quantile(0.95)
    pd.set_option("display.width", 200)
    print(f"seeds {seeds.start}..{seeds.stop - 1} ({args.seeds} per world), alpha = {settings.alpha}, "
          f"max lag-1 autocorrelation = {settings.max_autocorrelation}; {time.perf_counter() - start:.1f} s")
    print("share of seeds with each warning (null worlds: false alarms; worlds with a missing driver: power)")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    null = table[~table["missing"]]
    print(f"false alarm (any warning, worlds with no missing driver): {null['any'].mean():.3f}")
    for w in worlds():
        for driver in w.missing:
            part = table[table["world"] == w.name]
            print(f"power ({w.name}, {driver.value} reported): {part[driver.value].mean():.3f}")


if __name__ == "__main__":
    main()
