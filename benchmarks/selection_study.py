"""Transform selection on the project simulator: where the choice lands and what it costs in ROI.

For each scenario and seed, every channel's transform is selected from the data (nothing
configured, as a new user starts) under each `SelectionCriterion`; the DAG's estimate at the
selected transforms is compared with the simulator's truth. Printed per scenario, channel and
criterion: the median relative error of the total ROI, the share of selections whose
half-saturation sits on an edge of its grid, and the share choosing the delayed-peak kernel.
This is the point estimate at one selection; the published estimate is smoothed over
re-selections in the bootstrap (benchmarks/accuracy.py).

    python benchmarks/selection_study.py --seeds 12
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from benchmarks.accuracy import SCENARIOS, study_config
from cmmm_pipeline.core.config import AdstockType, SelectionCriterion
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.effects.estimation import estimate_channels
from cmmm_pipeline.media.features import build_features
from cmmm_pipeline.media.selection import SelectionSettings, select_transforms
from cmmm_pipeline.simulation.simulate import simulate


def study(seeds: int, scenarios: list[str]) -> pd.DataFrame:
    rows = []
    for name in scenarios:
        scenario = SCENARIOS[name]
        config = study_config(scenario, tuple(scenario.channels))
        graph = build_graph(config)
        for seed in range(seeds):
            sim = simulate(scenario, seed=seed)
            truth = sim.truth.set_index(["channel", "effect"])["roi"]
            for criterion in SelectionCriterion:
                settings = SelectionSettings(criterion=criterion)
                chosen = select_transforms(sim.data, config, settings)
                features = build_features(sim.data, config, chosen.transforms)
                table = estimate_channels(sim.data, features, config, graph, chosen.transforms).table
                for r in table[table["effect"] == "total"].itertuples():
                    t = chosen.transforms[r.channel]
                    rows.append({"scenario": name, "seed": seed, "criterion": criterion.value, "channel": r.channel,
                                 "error": abs(r.roi / truth[(r.channel, "total")] - 1),
                                 "k_on_edge": "half_saturation" in chosen.grid_edges.get(r.channel, ()),
                                 "delayed_peak": t.adstock is AdstockType.WEIBULL_PDF})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--scenarios", default="1,4", help="comma-separated scenario numbers (1-4)")
    args = parser.parse_args(argv)
    names = list(SCENARIOS)
    chosen = [names[int(i) - 1] for i in args.scenarios.split(",")]
    start = time.perf_counter()
    frame = study(args.seeds, chosen)
    summary = frame.groupby(["scenario", "channel", "criterion"]).agg(
        median_error=("error", "median"), k_on_edge=("k_on_edge", "mean"), delayed_peak=("delayed_peak", "mean"))
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.unstack("criterion").round(3).to_string())
        print(frame.groupby(["scenario", "criterion"]).agg(median_error=("error", "median"),
                                                           k_on_edge=("k_on_edge", "mean")).round(3).to_string())
    print(f"\n{args.seeds} seeds per scenario, {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
