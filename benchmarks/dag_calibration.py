"""Calibration and power of the DAG independence tests on simulated weekly data.

    python benchmarks/dag_calibration.py [--seeds 200] [--first-seed 1000]

For each scenario (a simulated world and the DAG a user wrote) and each test (Fisher z,
chi-squared, either), prints the seeds, the false-rejection rate of implications that are true
in the simulated world (unadjusted p < alpha; nominal = alpha), the family-wise false alarm rate
(any true implication rejected after Holm) and the power (some false implication rejected after
Holm), for the calibrated tests and for textbook iid tests on the same data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.independence_study import (
    naive_settings,
    run_study,
    standard_scenarios,
    summarize,
)
from cmmm_pipeline.dag.independence import IndependenceSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    calibrated = IndependenceSettings(alpha=args.alpha)
    tables = []
    for label, settings in (("calibrated", calibrated), ("naive iid", naive_settings(calibrated))):
        start = time.perf_counter()
        rows = run_study(standard_scenarios(), seeds, settings)
        summary = summarize(rows, args.alpha)
        summary.insert(0, "method", label)
        tables.append(summary)
        worst = (rows[rows["true_in_world"]].assign(r=lambda d: d["p_value"] < args.alpha)
                 .groupby(["scenario", "implication", "test"])["r"].mean().sort_values(ascending=False).head(5))
        print(f"{label}: {time.perf_counter() - start:.1f} s; highest per-implication false-rejection rates:")
        print(worst.round(3).to_string())
        print()
    pd.set_option("display.width", 200)
    table = pd.concat(tables, ignore_index=True)
    print(f"alpha = {args.alpha}, seeds {seeds.start}..{seeds.stop - 1} ({args.seeds} per scenario), "
          "adjustment: Holm over all tests of a DAG")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
