"""The `cmmm` command: `run` materialises the whole asset graph in process, with the same Definitions
the UI loads; `validate` checks a config, its graph and its data's columns without running; `init`
writes a starter config from a data file; `suggest` proposes DAG edits for the implications the data
reject."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUTPUT = "cmmm_output"
SAMPLE_CONFIG = Path(__file__).resolve().parent / "sample" / "config.yaml"
REFUSED = 2
"""Exit status for input refused before anything runs (a bad config, graph or data schema)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cmmm-pipeline")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmmm", description="Causal marketing mix modelling on Dagster.")
    parser.add_argument("--version", action="version", version=f"cmmm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline once (default: on the bundled sample data)")
    run.add_argument("--config", type=Path, default=None, help="YAML config (default: the bundled sample)")
    run.add_argument("--output", type=Path, default=Path(DEFAULT_OUTPUT),
                     help=f"folder for estimates.csv, report.html and the warehouse (default: ./{DEFAULT_OUTPUT})")
    run.add_argument("--warehouse", type=Path, default=None,
                     help="DuckDB file (default: OUTPUT/cmmm.duckdb)")
    check = sub.add_parser("validate", help="report every config, graph and data-schema problem at once; no run")
    check.add_argument("--config", type=Path, default=None, help="YAML config (default: the bundled sample)")
    init = sub.add_parser("init", help="write a starter config from a data file's header (CSV or Parquet)")
    init.add_argument("data_file", type=Path, metavar="DATA_FILE", help="the weekly table")
    init.add_argument("--output", type=Path, default=Path("config.yaml"),
                      help="where to write the config (default: ./config.yaml; never overwritten)")
    _add_plan_parser(sub)
    suggest = sub.add_parser("suggest", help="for the DAG implications the data reject, the smallest edits that fit, "
                             "ranked by evidence (the config is never changed)")
    suggest.add_argument("--config", type=Path, default=None, help="YAML config (default: the bundled sample)")
    suggest.add_argument("--permutations", type=int, default=20,
                         help="node permutations of DoWhy's graph falsification (0 skips it; default 20, ~4 s)")
    suggest.add_argument("--no-pc", action="store_true", help="skip causal-learn's PC search shown for comparison")
    suggest.add_argument("--market", default=None, help="with data.market_column: the market whose rows to test")
    return parser


def _add_plan_parser(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser("plan", help="evaluate or optimise a budget plan inside the data's support")
    plan.add_argument("--config", type=Path, default=None, help="YAML config (default: the bundled sample)")
    plan.add_argument("--plan", type=Path, required=True, metavar="PLAN.yaml",
                      help="the plan: {weeks, spend} to evaluate, or {weeks, total_budget, bounds, risk} to optimise")
    plan.add_argument("--market", default=None, help="with data.market_column: the market to plan for")
    plan.add_argument("--output", type=Path, default=Path(DEFAULT_OUTPUT),
                      help=f"folder for plan.csv and plan_forecast.csv (default: ./{DEFAULT_OUTPUT})")


def _print_problems(error: BaseException) -> None:
    for problem in getattr(error, "problems", (error,)):
        print(f"cmmm: {problem}", file=sys.stderr)


def validate(config_path: Path) -> int:
    """Every problem of the config, its graph and the data's columns, types and ranges at once."""
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config

    try:
        config = load_config(config_path)
    except CmmmError as exc:
        _print_problems(exc)
        count = len(exc.problems)
        print(f"cmmm: {config_path.resolve()}: {count} problem{'s' * (count != 1)} in the config "
              "(the data is checked once the config is valid).", file=sys.stderr)
        return REFUSED
    from cmmm_pipeline.data.ingest import schema_problems  # pandas: only once the config is valid

    problems = schema_problems(config)
    for problem in problems:
        print(f"cmmm: {problem}", file=sys.stderr)
    if problems:
        print(f"cmmm: {config.data.path}: {len(problems)} problem{'s' * (len(problems) != 1)} in the data.",
              file=sys.stderr)
        return REFUSED
    print(f"{config.source}: valid ({len(config.channels)} channels, {len(config.controls)} controls, "
          f"{f'{len(config.edges)} edges' if config.edges else 'graph from ' + config.graph_file.name}; data {config.data.path.name} has the columns and types it needs).")
    return 0


def init(data_file: Path, output: Path) -> int:
    """Write a starter config; a file that cannot be read gets the rule `cmmm run` would name."""
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.starter import refuse_existing, write_starter
    from cmmm_pipeline.data.ingest import read_data_file

    try:
        refuse_existing(output)
        starter = write_starter(read_data_file(data_file.resolve()), data_file, output)
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    decide = f"decide the {starter.decisions} item(s) marked DECIDE, " if starter.decisions else ""
    print(f"Wrote {output.resolve()}: {starter.summary()}.\n"
          f"Next: {decide}read the reason given for each guess, then `cmmm validate --config {output}` and "
          f"`cmmm run --config {output}`.")
    return 0


def plan(config_path: Path, plan_path: Path, output: Path, market: str | None = None) -> int:
    """Evaluate or optimise a plan: the model is re-fitted from the config's data exactly as `cmmm run`
    fits it (same selection, estimates and seeded bootstrap draws), then read inside the support."""
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config

    try:
        config = load_config(config_path)
        from cmmm_pipeline.plan.spec import load_plan

        spec = load_plan(plan_path, config)
        from cmmm_pipeline.data.ingest import load_raw
        from cmmm_pipeline.plan.model import fit_model
        from cmmm_pipeline.plan.planner import run_plan, summary_lines, write_plan

        result = run_plan(fit_model(load_raw(config, market), config), spec)
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    print("\n".join(summary_lines(result, spec.weeks)))
    for note in result.notes:
        print(f"Note: {note}")
    try:
        written = write_plan(result, output.resolve())
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    print("\nWrote:")
    for path in written:
        print(f"  {path}")
    return 0


def suggest(config_path: Path, permutations: int, structure_search: bool = True, market: str | None = None) -> int:
    """Test the DAG's implications on the data (configured transforms; defaults where a run would
    select them) and print the edits that would make it consistent; nothing is written."""
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config

    try:
        config = load_config(config_path)
        from cmmm_pipeline.core.graph import build_graph
        from cmmm_pipeline.dag.audit import generated_nodes, independence_settings
        from cmmm_pipeline.dag.graph import node_roles
        from cmmm_pipeline.dag.independence import implied_independences, run_independence_tests
        from cmmm_pipeline.dag.suggest import suggest as suggest_edits
        from cmmm_pipeline.dag.suggest import suggestions_text
        from cmmm_pipeline.data.ingest import load_raw
        from cmmm_pipeline.media.features import build_features, configured_transform, node_columns

        raw = load_raw(config, market)
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    transforms = {c.name: configured_transform(c) for c in config.channels}
    features = build_features(raw, config, transforms)
    g = build_graph(config)
    columns = node_columns(raw, config)
    deterministic = generated_nodes(raw, config)
    settings = independence_settings(config)
    trend = "trend" if "trend" in config.controls else None
    report = run_independence_tests(features, implied_independences(g, columns, {n: len(c) for n, c in columns.items()},
                                                                     deterministic),
                                    columns, deterministic, settings, trend)
    result = suggest_edits(g, report, features, columns, node_roles(config), deterministic, settings, config.kpi,
                           permutations=max(0, permutations), trend_node=trend,
                           structure_search=structure_search,
                           spend={c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels})
    print(f"{config.source}: tests at {settings.correction.value.upper()}-adjusted p < {settings.alpha:g}, on the "
          "configured transforms (defaults where a run would select them).")
    print(suggestions_text(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    if args.command == "plan":
        return plan((args.config or SAMPLE_CONFIG).resolve(), args.plan, args.output, args.market)
    if args.command == "validate":
        return validate(args.config or SAMPLE_CONFIG)
    if args.command == "init":
        return init(args.data_file, args.output)
    if args.command == "suggest":
        return suggest((args.config or SAMPLE_CONFIG).resolve(), args.permutations, not args.no_pc, args.market)
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config

    config_path = (args.config or SAMPLE_CONFIG).resolve()
    output = args.output.resolve()
    warehouse_path = (args.warehouse or output / "cmmm.duckdb").resolve()
    try:
        config = load_config(config_path)  # refuse a bad config before anything starts
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    from cmmm_pipeline.publish.preflight import check_run_targets

    try:  # an output folder or warehouse that cannot take a run is refused before anything is written
        check_run_targets(output, warehouse_path, config.data.path)
    except CmmmError as exc:
        _print_problems(exc)
        return REFUSED
    if config.data.market_column is not None:
        return _run_markets(str(config_path), str(output), str(warehouse_path))
    from cmmm_pipeline.run import run_pipeline

    outcome = run_pipeline(str(config_path), str(output), str(warehouse_path))
    for line in outcome.check_lines:
        print(line)
    if not outcome.success:
        print(f"cmmm: run failed; nothing was published and earlier results are intact.\n{outcome.error}",
              file=sys.stderr)
        return 1
    print(outcome.summary)
    if outcome.notes:
        print(f"\nTo review ({len(outcome.notes)}):")
        for note in outcome.notes:
            print(f"  {note}")
    print("\nWrote:")
    for path in outcome.written:
        print(f"  {path}")
    return 0


def _run_markets(config_path: str, output: str, warehouse_path: str) -> int:
    """Every market in parallel (one Dagster step per market), then the pooled summary."""
    from cmmm_pipeline.run import pooled_summary_table, run_markets

    outcome = run_markets(config_path, output, warehouse_path)
    for market in outcome.markets:
        print(f"market {market.market}: {'published' if market.success else 'FAILED'} (run {market.run_id})")
    for market in outcome.markets:
        if not market.success:
            print(f"cmmm: market {market.market} failed; its earlier results are intact.\n{market.error}",
                  file=sys.stderr)
    if outcome.error:
        print(f"cmmm: {outcome.error}", file=sys.stderr)
    print(f"\nAcross markets ({sum(m.success for m in outcome.markets)} of {len(outcome.markets)} published):")
    print(pooled_summary_table(outcome.pooled))
    print(f"\nWrote:\n  {outcome.summary_path}")
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
