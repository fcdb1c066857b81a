"""`cmmm run`: materialise the whole asset graph in process, with the same Definitions the UI loads."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUTPUT = "cmmm_output"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmmm", description="Causal marketing mix modelling on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline once (default: on the bundled sample data)")
    run.add_argument("--config", type=Path, default=None, help="YAML config (default: the bundled sample)")
    run.add_argument("--output", type=Path, default=Path(DEFAULT_OUTPUT),
                     help=f"folder for estimates.csv, report.html and the warehouse (default: ./{DEFAULT_OUTPUT})")
    run.add_argument("--warehouse", type=Path, default=None,
                     help="DuckDB file (default: OUTPUT/cmmm.duckdb)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.definitions import SAMPLE_CONFIG

    config_path = (args.config or SAMPLE_CONFIG).resolve()
    output = args.output.resolve()
    warehouse_path = (args.warehouse or output / "cmmm.duckdb").resolve()
    try:
        load_config(config_path)  # refuse a bad config before anything starts
    except CmmmError as exc:
        print(f"cmmm: {exc}", file=sys.stderr)
        return 2
    output.mkdir(parents=True, exist_ok=True)
    from cmmm_pipeline.run import run_pipeline

    outcome = run_pipeline(str(config_path), str(output), str(warehouse_path))
    for line in outcome.check_lines:
        print(line)
    if not outcome.success:
        print(f"cmmm: run failed; nothing was published and earlier results are intact.\n{outcome.error}",
              file=sys.stderr)
        return 1
    print(outcome.summary)
    print(f"\nWrote {output / 'estimates.csv'}, {output / 'report.html'} and {warehouse_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
