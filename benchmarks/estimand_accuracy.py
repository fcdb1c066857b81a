"""Marginal ROI and the mediator's equation against the simulator's truth by intervention.

For each world (the project simulator's default scenario, and one where search is bought in
proportion to TV's carried-over spend) and seed: the pipeline's estimates with the true transforms
configured, the block bootstrap the robustness step runs, and the truth from
`simulation.simulate.marginal_truth` (each week's spend × 1.01, noise held fixed). Prints per
effect the median relative error and 95% coverage of mROI and ROI, and which mediator model
(equation, noise) was chosen.

    .venv/bin/python -m benchmarks.estimand_accuracy --seeds 20 --samples 200
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.effects.bootstrap import BootstrapSettings, bootstrap, effect_problem, intervals
from cmmm_pipeline.effects.estimation import MARGINAL_STEP, estimate_channels
from cmmm_pipeline.effects.robustness import published_gcomputation
from cmmm_pipeline.media.features import build_features, configured_transform
from cmmm_pipeline.media.selection import SelectionSettings
from cmmm_pipeline.simulation.simulate import Scenario, marginal_truth, simulate

SAMPLE = Path(__file__).resolve().parents[1] / "cmmm_pipeline" / "sample" / "config.yaml"
WORLDS = {"default (search linear in TV's media)": Scenario(),
          "search answers TV's carried-over spend": Scenario(search_on_carryover=True)}


def run_world(scenario: Scenario, seeds: int, samples: int) -> pd.DataFrame:
    config = replace(load_config(SAMPLE), experiments=())
    rows = []
    for seed in range(seeds):
        sim = simulate(scenario, seed)
        raw = sim.data
        transforms = {c.name: configured_transform(c) for c in config.channels}
        features = build_features(raw, config, transforms)
        estimated = estimate_channels(raw, features, config, build_graph(config), transforms)
        specs, table = list(estimated.specs), estimated.table
        problem = effect_problem(raw, config, {c: (t,) for c, t in transforms.items()}, {c: 0 for c in transforms},
                                 specs, spend_totals(raw, config),
                                 published_gcomputation(table, features, estimated.expanded, specs, config))
        settings = BootstrapSettings(samples=samples, level=0.95)
        draws = bootstrap(problem, settings, SelectionSettings(), np.random.default_rng(seed))
        records = list(table.itertuples(index=False))
        points = {(r.channel, EffectType(r.effect)): r.incremental_kpi for r in records}
        marginal = {(r.channel, EffectType(r.effect)): r.mroi * MARGINAL_STEP * r.spend for r in records}
        true_mroi = marginal_truth(scenario, seed).set_index(["channel", "effect"])["mroi"]
        true_roi = sim.truth.set_index(["channel", "effect"])["roi"]
        equation = table.loc[table["effect"] == "total", ["channel", "mediator_equation"]].set_index("channel")
        for i in intervals(problem, draws, points, settings, marginal):
            key = (i.channel, i.effect.value)
            roi = i.incremental_kpi / problem.spends[i.channel]
            rows.append({"seed": seed, "channel": i.channel, "effect": i.effect.value,
                         "mroi_error": abs(i.mroi / true_mroi[key] - 1.0),
                         "mroi_covered": i.mroi_ci_low <= true_mroi[key] <= i.mroi_ci_high,
                         "roi_error": abs(roi / true_roi[key] - 1.0),
                         "roi_covered": i.roi_ci_low <= true_roi[key] <= i.roi_ci_high,
                         "signed_mroi_error": i.mroi / true_mroi[key] - 1.0,
                         "mediator_equation": equation.loc[i.channel, "mediator_equation"]})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    for name, scenario in WORLDS.items():
        frame = run_world(scenario, args.seeds, args.samples)
        summary = frame.groupby(["channel", "effect"], sort=False).agg(
            mroi_median_error=("mroi_error", "median"), mroi_mean_signed=("signed_mroi_error", "mean"),
            mroi_coverage=("mroi_covered", "mean"), roi_median_error=("roi_error", "median"),
            roi_coverage=("roi_covered", "mean"))
        print(f"{name}: {args.seeds} seeds, {args.samples} resamples")
        print(summary.round(3).to_string())
        print(f"   all effects: mROI median error {frame['mroi_error'].median():.3f}, coverage "
              f"{frame['mroi_covered'].mean():.3f}; ROI median error {frame['roi_error'].median():.3f}, coverage "
              f"{frame['roi_covered'].mean():.3f}")
        chosen = frame[(frame["channel"] == "tv") & (frame["effect"] == "total")]["mediator_equation"]
        print("   mediator model chosen for TV → search:", chosen.value_counts().to_dict(), "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
