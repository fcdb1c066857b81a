"""Calibration and power of the DAG's independence tests, by simulation with known truth.

Each scenario pairs a simulated world (`simulate.Scenario`, whose true DAG is known) with the DAG a
user wrote. Every implication of the user's DAG is either also implied by the true DAG (a
rejection is a false alarm) or not (a rejection is a detection). Over many seeds:

- false-rejection rate: share of true implications with unadjusted p < alpha (should be ≈ alpha);
- family-wise false alarm: share of seeds with any true implication rejected after adjustment;
- power: share of seeds in which some false implication is rejected after adjustment.

The benchmark (`benchmarks/dag_calibration.py`) runs it at full size; the tests at a small one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.loading import parse_config
from cmmm_pipeline.dag.independence import (
    IndependenceSettings,
    SerialDependence,
    implied_independences,
    run_independence_tests,
)
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.simulation.simulate import Scenario, simulate

TRUE_EDGES: tuple[tuple[str, str], ...] = (
    ("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
    ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
    ("trend", "sales"))
"""The simulator's structural graph (see `cmmm_pipeline.simulation.simulate`)."""

GENERATED = frozenset({"seasonality", "trend"})


@dataclass(frozen=True)
class StudyScenario:
    name: str
    world: Scenario
    user_edges: tuple[tuple[str, str], ...]
    true_edges: tuple[tuple[str, str], ...]


def without(edges: Sequence[tuple[str, str]], edge: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(e for e in edges if e != edge)


def standard_scenarios() -> list[StudyScenario]:
    """The correct DAG; a DAG missing seasonality → digital; data with an edge the DAG lacks."""
    return [
        StudyScenario("correct DAG", Scenario(), TRUE_EDGES, TRUE_EDGES),
        StudyScenario("DAG misses seasonality -> digital", Scenario(),
                      without(TRUE_EDGES, ("seasonality", "digital")), TRUE_EDGES),
        StudyScenario("data has seasonality -> search (0.5)", Scenario(season_to_search=0.5), TRUE_EDGES,
                      (*TRUE_EDGES, ("seasonality", "search"))),
        StudyScenario("data has seasonality -> search (0.25)", Scenario(season_to_search=0.25), TRUE_EDGES,
                      (*TRUE_EDGES, ("seasonality", "search"))),
    ]


def study_config(world: Scenario) -> PipelineConfig:
    """The pipeline config of a simulated world, with the true transforms (the study isolates the
    tests from transform selection)."""
    channels = {name: {"spend_column": ch.spend_column, "adstock": {"type": "geometric", "decay": ch.decay},
                       "saturation": {"type": "hill", "half_saturation": ch.half_saturation, "slope": ch.slope}}
                for name, ch in world.channels.items()}
    raw = {"data": {"path": "weekly.csv", "date_column": "week", "kpi": "sales"}, "channels": channels,
           "controls": ["seasonality", "trend", "price"], "graph": {"edges": [list(e) for e in TRUE_EDGES]}}
    return parse_config(raw, Path("simulated.yaml").resolve())


def naive_settings(settings: IndependenceSettings) -> IndependenceSettings:
    """Textbook iid tests on the same implications: no prewhitening, no detrending, linear conditioning."""
    return replace(settings, serial=SerialDependence.IGNORE, detrend=False, quadratic=False)


def run_study(scenarios: Sequence[StudyScenario], seeds: Sequence[int], settings: IndependenceSettings) -> pd.DataFrame:
    """One row per scenario, seed, implication and test: p-values, the verdict, and whether the
    true DAG implies the statement too."""
    frames: list[pd.DataFrame] = []
    for study in scenarios:
        config = study_config(study.world)
        transforms = {c.name: configured_transform(c) for c in config.channels}
        truth = nx.DiGraph(study.true_edges)
        user = nx.DiGraph(study.user_edges)
        for seed in seeds:
            data = simulate(study.world, seed).data
            features = build_features(data, config, transforms)
            columns = node_columns(data, config)
            user.add_nodes_from(columns)
            truth.add_nodes_from(columns)
            widths = {node: len(cols) for node, cols in columns.items()}
            implications = implied_independences(user, columns, widths, GENERATED)
            table = run_independence_tests(features, implications, columns, GENERATED, settings).table()
            table["true_in_world"] = [nx.is_d_separator(truth, {x}, {y}, set(g.split("|")) - {""})
                                      for x, y, g in zip(table["x"], table["y"], table["given"])]
            table.insert(0, "seed", seed)
            table.insert(0, "scenario", study.name)
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def summarize(rows: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per scenario and test (and both tests together, `any`): seeds, false-rejection rate of true
    implications (unadjusted), family-wise false alarm rate and power (adjusted)."""
    out = []
    for (scenario, test), part in [*rows.groupby(["scenario", "test"], sort=False),
                                   *((((s, "any"), p) for s, p in rows.groupby("scenario", sort=False)))]:
        true_rows = part[part["true_in_world"]]
        false_rows = part[~part["true_in_world"]]
        seeds = part["seed"].nunique()
        out.append({
            "scenario": scenario, "test": test, "seeds": seeds,
            "false_rejection_rate": float((true_rows["p_value"] < alpha).mean()) if len(true_rows) else float("nan"),
            "familywise_false_alarm": float(true_rows.groupby("seed")["rejected"].any().reindex(
                part["seed"].unique(), fill_value=False).mean()),
            "power": float(false_rows.groupby("seed")["rejected"].any().reindex(
                part["seed"].unique(), fill_value=False).mean()) if len(false_rows) else float("nan"),
        })
    return pd.DataFrame(out)
