"""How often `cmmm suggest` proposes the right edit, and how often it proposes one for a correct DAG.

    python benchmarks/dag_suggest.py [--seeds 20] [--first-seed 500]

Worlds from the project's simulator (`--families project`, the default) and from the held-out
family's `seed_graph` world (`heldout`: flighted TV with a delayed peak, search driven by TV, two
years), with the true transforms (the question is the suggestion, not
the transform selection). For the correct DAG: the share of seeds with any edit proposed (a false
alarm; edits are proposed only below `PROPOSE_BELOW`, Holm-adjusted). For a DAG missing one confounding edge
(seasonality -> digital, seasonality -> tv): the share of seeds whose first-ranked edit is the
missing edge. Every seed is printed, for the tests `cmmm suggest` runs ("media + spend": the
implications naming a channel tested on its transformed media and on its log spend over active
weeks) and for the model-table tests alone ("media only", as before spend was tested).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.heldout.run import true_transforms, world_edges  # noqa: E402
from benchmarks.heldout.worlds import WORLDS, simulate_world  # noqa: E402
from benchmarks.independence_study import GENERATED, TRUE_EDGES, study_config, without  # noqa: E402
from cmmm_pipeline.core.config import PipelineConfig  # noqa: E402
from cmmm_pipeline.core.loading import parse_config  # noqa: E402
from cmmm_pipeline.dag.graph import node_roles  # noqa: E402
from cmmm_pipeline.dag.independence import (  # noqa: E402
    IndependenceSettings,
    implied_independences,
    run_independence_tests,
)
from cmmm_pipeline.dag.suggest import PROPOSE_BELOW, suggest  # noqa: E402
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns  # noqa: E402
from cmmm_pipeline.simulation.simulate import Scenario, simulate  # noqa: E402

CASES: tuple[tuple[str, tuple[str, str] | None], ...] = (
    ("correct DAG", None),
    ("DAG misses seasonality -> digital", ("seasonality", "digital")),
    ("DAG misses seasonality -> tv", ("seasonality", "tv")),
)


def _project_world(seed: int) -> tuple[pd.DataFrame, PipelineConfig, tuple[tuple[str, str], ...]]:
    world = Scenario()
    return simulate(world, seed).data, study_config(world), TRUE_EDGES


def _heldout_world(seed: int) -> tuple[pd.DataFrame, PipelineConfig, tuple[tuple[str, str], ...]]:
    """The held-out family's `seed_graph` world (two years, flighted and delayed TV, search driven by
    TV), with its true transforms and graph as a user would draw it."""
    world = WORLDS["seed_graph"]
    data = simulate_world(world, seed).data
    transforms = true_transforms(world, data)
    channels = {c: {"spend_column": f"{c}_spend", **transforms.get(c, {})} for c in world.channels}
    edges = world_edges(world)
    raw = {"data": {"path": "weekly.csv", "date_column": "week", "kpi": "sales"}, "channels": channels,
           "controls": ["seasonality", "trend"], "graph": {"edges": [list(e) for e in edges]}}
    return data, parse_config(raw, Path("heldout.yaml").resolve()), edges


FAMILIES = {"project": _project_world, "heldout": _heldout_world}


def run(seeds: range, alpha: float, propose_below: float = PROPOSE_BELOW,
        families: Sequence[str] = ("project",)) -> pd.DataFrame:
    settings = IndependenceSettings(alpha=alpha)
    rows = []
    for family in families:
        for name, missing in CASES:
            for seed in seeds:
                data, config, edges = FAMILIES[family](seed)
                transforms = {c.name: configured_transform(c) for c in config.channels}
                features = build_features(data, config, transforms)
                columns = node_columns(data, config)
                g = nx.DiGraph(edges if missing is None else without(edges, missing))
                g.add_nodes_from(columns)
                widths = {n: len(c) for n, c in columns.items()}
                report = run_independence_tests(features, implied_independences(g, columns, widths, GENERATED),
                                                columns, GENERATED, settings)
                spend = {c.name: data[c.spend_column].to_numpy(dtype=float) for c in config.channels}
                for tests, given in (("media + spend", spend), ("media only", None)):
                    result = suggest(g, report, features, columns, node_roles(config), GENERATED, settings, "sales",
                                     propose_below=propose_below, spend=given)
                    first = result.edits[0].text() if result.edits else ""
                    rows.append({"family": family, "case": name, "tests": tests, "seed": seed,
                                 "rejected": len(result.rejected), "first_edit": first,
                                 "proposed": bool(result.edits),
                                 "first_is_missing": missing is not None and first == f"{missing[0]} -> {missing[1]}"})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=500)
    parser.add_argument("--alpha", type=float, default=0.05, help="the tests' level (the pipeline's default)")
    parser.add_argument("--propose-below", type=float, default=PROPOSE_BELOW,
                        help="adjusted p below which an edit is proposed")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=["project"])
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(range(args.first_seed, args.first_seed + args.seeds), args.alpha, args.propose_below, args.families)
    pd.set_option("display.width", 200)
    print(rows.to_string(index=False))
    summary = rows.groupby(["family", "case", "tests"], sort=False).agg(seeds=("seed", "size"), any_edit_proposed=("proposed", "mean"),
                                                     first_edit_is_missing_edge=("first_is_missing", "mean"))
    print(f"\ntests at alpha = {args.alpha} (Holm), edits proposed below adjusted p = {args.propose_below}, "
          f"{time.perf_counter() - start:.0f} s")
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
