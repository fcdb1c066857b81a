"""How identification's cost grows with the DAG: DoWhy's subset search (before) against the
d-separation minimum cut of `cmmm_pipeline.dag.adjustment` (after).

The DAG is the sample's, widened: Fourier seasonality (4 columns) drives every channel and the KPI,
a trend drives the KPI, the first channel drives the second (a mediator, so it has a direct effect
too), and every control has an edge to the KPI; every third control also drives a channel (a
confounder). For each size the script times identification of every channel's total effect (and
the mediated channel's direct effect) as the `causal_dag` step runs it:

- before: DoWhy's `identify_effect` (the default backdoor search) plus the precision controls, as
  the pipeline did until it computed the set itself; each size runs in its own process and is
  stopped at `--bound` seconds (a size whose smaller neighbour already hit the bound is not run);
- after: `dag.identification.identify_channels`, with the work its budget meter counted.

Where both finish, the adjustment sets must be equal (the `same` column).

    python benchmarks/identification_growth.py               # the full table, --bound 30
    python benchmarks/identification_growth.py --controls 5 15 --channels 4 --bound 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmmm_pipeline.core.config import EffectType  # noqa: E402
from cmmm_pipeline.dag.adjustment import IdentificationMeter  # noqa: E402
from cmmm_pipeline.dag.graph import expand_graph  # noqa: E402

KPI = "sales"
SEASONALITY = ["seasonality_sin1", "seasonality_cos1", "seasonality_sin2", "seasonality_cos2"]


def wide_dag(controls: int, channels: int) -> tuple[nx.DiGraph, dict[str, list[str]], list[str]]:
    """The node-level DAG, each node's columns (seasonality spans four) and the channel names."""
    names = [f"ch{j:02d}" for j in range(channels)]
    g = nx.DiGraph()
    g.add_edges_from([("seasonality", KPI), ("trend", KPI), (names[0], names[1])])
    for name in names:
        g.add_edges_from([("seasonality", name), (name, KPI)])
    for i in range(controls):
        g.add_edge(f"x{i:03d}", KPI)
        if i % 3 == 0:
            g.add_edge(f"x{i:03d}", names[(i // 3) % channels])
    columns = {node: [node] for node in g.nodes}
    columns["seasonality"] = list(SEASONALITY)
    return g, columns, names


def wide_features(g: nx.DiGraph, columns: dict[str, list[str]], weeks: int = 10) -> pd.DataFrame:
    """A table with every observed column (identification reads the columns, not the values)."""
    cols = [c for node in g.nodes for c in columns[node]]
    return pd.DataFrame(np.zeros((weeks, len(cols))), columns=cols)


def write_wide_config(folder: Path, controls: int, seed: int = 7) -> Path:
    """The bundled sample's config and data widened by `controls` observed controls x000, x001, ...
    (AR(1) noise, each with an edge to the KPI and a small effect on it), written to `folder`:
    the whole-run test of a wide config. Returns the config's path."""
    import yaml

    from cmmm_pipeline.simulation.simulate import Scenario, ar1, simulate

    folder.mkdir(parents=True, exist_ok=True)
    data = simulate(Scenario(), seed).data.drop(columns=["seasonality_true"], errors="ignore")
    rng = np.random.default_rng(seed)
    names = [f"x{i:03d}" for i in range(controls)]
    extra = pd.DataFrame({name: 100.0 + ar1(rng, len(data), 0.5, 10.0) for name in names}, index=data.index)
    data[KPI] = data[KPI] + (extra - 100.0).to_numpy() @ rng.normal(0.0, 3.0, controls)
    data = pd.concat([data, extra], axis=1)
    data.to_csv(folder / "weekly.csv", index=False)
    sample = Path(__file__).resolve().parents[1] / "cmmm_pipeline" / "sample" / "config.yaml"
    config = yaml.safe_load(sample.read_text(encoding="utf-8"))
    config["data"]["path"] = "weekly.csv"
    config["controls"] = [*config["controls"], *names]
    config["graph"]["edges"] = [*config["graph"]["edges"], *([name, KPI] for name in names)]
    config.pop("experiments", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _effects(g: nx.DiGraph, names: list[str]) -> list[tuple[str, EffectType]]:
    from cmmm_pipeline.effects.estimation import has_mediator

    return [(c, e) for c in names for e in (EffectType.TOTAL, EffectType.DIRECT)
            if e is EffectType.TOTAL or has_mediator(g, c, KPI)]


def dowhy_identify(data: pd.DataFrame, g: nx.DiGraph, treatment: str, effect: EffectType) -> tuple[str, ...] | None:
    """The pipeline's identification before: DoWhy's default backdoor set plus the precision controls."""
    from cmmm_pipeline.effects.estimation import _causal_model, observed_nodes, with_precision_controls

    model = _causal_model(data, g, treatment, KPI)
    estimand_type = "nonparametric-ate" if effect is EffectType.TOTAL else "nonparametric-cde"
    estimand = model.identify_effect(estimand_type=estimand_type, proceed_when_unidentifiable=False)
    if estimand.estimands.get("backdoor") is None:
        return None
    backdoor = set(estimand.get_backdoor_variables())
    return with_precision_controls(g, treatment, KPI, backdoor, effect, set(observed_nodes(data, g)))


def run_case(method: str, controls: int, channels: int) -> dict[str, object]:
    """One size, one method: seconds and every (channel, effect)'s adjustment set."""
    warnings.filterwarnings("ignore")
    g, columns, names = wide_dag(controls, channels)
    expanded = expand_graph(g, columns)
    features = wide_features(g, columns)
    meter = IdentificationMeter()
    from cmmm_pipeline.dag.identification import identify_channels

    if method == "before":
        import dowhy  # noqa: F401 - imported before the clock starts, as in a run

    start = time.perf_counter()
    if method == "before":
        sets = {f"{c}/{e.value}": dowhy_identify(features, expanded, c, e) for c, e in _effects(g, names)}
    else:
        rows = identify_channels(features, g, expanded, names, KPI, (), meter)
        sets = {f"{r.channel}/{r.effect.value}": r.adjustment if r.identifiable else None for r in rows}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sets": {k: list(v) if v is not None else None for k, v in sets.items()},
            "work": meter.spent, "nodes": expanded.number_of_nodes(), "edges": expanded.number_of_edges()}


def step_costs(controls: int, folder: Path) -> list[tuple[str, float, float]]:
    """(step, CPU seconds, wall seconds) of each stage of a whole run on `write_wide_config`'s data,
    calling the functions the Dagster assets call, in their order."""
    from cmmm_pipeline.core.config import TREND
    from cmmm_pipeline.core.graph import build_graph
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.dag.audit import generated_nodes, independence_settings, overlap_thresholds
    from cmmm_pipeline.dag.diagnostics import DiagnosticSettings, diagnose_missing_drivers
    from cmmm_pipeline.dag.identification import identify_channels, total_adjustments
    from cmmm_pipeline.dag.independence import implied_independences, run_independence_tests
    from cmmm_pipeline.dag.overlap import overlap_strata
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.effects.estimation import estimate_channels
    from cmmm_pipeline.effects.robustness import assess
    from cmmm_pipeline.media.features import build_features, node_columns
    from cmmm_pipeline.media.selection import SelectionSettings, select_transforms

    costs: list[tuple[str, float, float]] = []
    found: dict[str, object] = {}

    def timed(name: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        costs.append((name, time.process_time() - cpu, time.perf_counter() - wall))
        return out

    config = load_config(write_wide_config(folder, controls))
    raw = timed("ingest (read and type the CSV)", load_raw, config)
    selection = timed("transform selection (CV grid)", select_transforms, raw, config,
                      SelectionSettings.from_config(config.estimation))
    features = timed("features", build_features, raw, config, selection.transforms)
    g, columns = build_graph(config), node_columns(raw, config)
    expanded = expand_graph(g, columns)
    deterministic = generated_nodes(raw, config)
    implications = timed("implied independences (enumerate)", implied_independences, g, columns,
                         {n: len(c) for n, c in columns.items()}, deterministic)
    report = timed("independence tests", run_independence_tests, features, implications, columns, deterministic,
                   independence_settings(config), TREND, first=config.channel_names)
    found["implications"] = (len(implications), report.not_tested)
    rows = timed("identification (all channels)", identify_channels, features, g, expanded,
                 list(config.channel_names), config.kpi, config.latent)
    spend = {c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    timed("overlap", overlap_strata, features, spend, total_adjustments(rows), overlap_thresholds(config), expanded)
    timed("missing drivers", diagnose_missing_drivers, features, expanded, config.kpi, DiagnosticSettings())
    result = timed("estimates (identification, DoWhy fits, g-computation)", estimate_channels, raw, features, config,
                   g, selection.transforms)
    timed("robustness (bootstrap with re-selection, null test, refuters)", assess, raw, features, config,
          result.table, result.specs, result.expanded, selection.candidates, selection.selected_index)
    tested = found["implications"]
    costs.append((f"(implications: {tested[0]:,} implied, {tested[0] - tested[1]:,} tested)", 0.0, 0.0))
    return costs


def budget_case(controls: int, channels: int) -> tuple[float, str]:
    """Seconds until a DAG too large for the default budget is refused, and the refusal."""
    from cmmm_pipeline.core.errors import EstimationError
    from cmmm_pipeline.dag.identification import identify_channels

    g, columns, names = wide_dag(controls, channels)
    expanded, features = expand_graph(g, columns), wide_features(g, columns)
    start = time.perf_counter()
    try:
        identify_channels(features, g, expanded, names, KPI, ())
    except EstimationError as error:
        return time.perf_counter() - start, str(error)
    return time.perf_counter() - start, "not refused"


def bounded(method: str, controls: int, channels: int, bound: float) -> dict[str, object] | None:
    """`run_case` in a child process, stopped after `bound` seconds (None then)."""
    command = [sys.executable, __file__, "--case", method, str(controls), str(channels)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=bound, check=True)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controls", type=int, nargs="+", default=[5, 15, 23, 33, 60, 100])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 10, 20, 30])
    parser.add_argument("--bound", type=float, default=30.0, help="seconds before a 'before' case is stopped")
    parser.add_argument("--no-before", action="store_true", help="time only the new identification")
    parser.add_argument("--budget-controls", type=int, default=1500,
                        help="controls of the DAG that shows the budget's refusal (30 channels; 0: skip)")
    parser.add_argument("--steps", type=int, metavar="CONTROLS",
                        help="instead: the cost of every step of a whole run with this many extra controls")
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), int(args.case[2]))))
        return 0
    if args.steps is not None:
        import tempfile

        warnings.filterwarnings("ignore")
        with tempfile.TemporaryDirectory() as folder:
            costs = step_costs(args.steps, Path(folder))
        print(f"whole run, sample + {args.steps} controls (each with an edge to the KPI): seconds per step")
        print(f"{'step':<64} {'CPU s':>7} {'wall s':>7}")
        for name, cpu, wall in costs:
            print(f"{name:<64} {cpu:>7.2f} {wall:>7.2f}" if cpu or wall else name)
        return 0

    print(f"{'controls':>8} {'channels':>8} {'nodes':>6} {'edges':>6} {'before s':>10} {'after s':>8} "
          f"{'work':>11} {'same':>5}")
    hit: list[tuple[int, int]] = []  # sizes whose 'before' hit the bound
    for channels in args.channels:
        for controls in args.controls:
            after = bounded("after", controls, channels, 600.0)
            if after is None:
                print(f"{controls:>8} {channels:>8}  after did not finish in 600 s")
                continue
            dominated = any(controls >= c and channels >= k for c, k in hit)
            before = None if args.no_before or dominated else bounded("before", controls, channels, args.bound)
            if before is None and not args.no_before and not dominated:
                hit.append((controls, channels))
            if args.no_before:
                before_text, same = "-", "-"
            elif before is None:
                before_text, same = f">{args.bound:g}" + ("*" if dominated else ""), "-"
            else:
                before_text, same = f"{before['seconds']:.2f}", "yes" if before["sets"] == after["sets"] else "NO"
            print(f"{controls:>8} {channels:>8} {after['nodes']:>6} {after['edges']:>6} {before_text:>10} "
                  f"{after['seconds']:>8.3f} {after['work']:>11,} {same:>5}", flush=True)
    print(f"before: DoWhy identify_effect, stopped at {args.bound:g} s (* not run: a smaller size already was); "
          f"after: d-separation minimum cut; work: nodes + edges the budget meter counted "
          f"(budget {IdentificationMeter().budget:,}).")
    if args.budget_controls:
        seconds, refusal = budget_case(args.budget_controls, 30)
        print(f"{args.budget_controls} controls, 30 channels: refused after {seconds:.1f} s: {refusal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
