"""PyMC-Marketing's budget optimiser on the planner's simulated worlds, as a ratio of achieved true gain.

Benchmark only, never a dependency of the pipeline: pymc-marketing 1.3.0 needs Python 3.12 or newer and
runs in its own environment. Three steps:

    python3.12 -m venv /tmp/pymc && /tmp/pymc/bin/pip install pymc-marketing==1.3.0      # ~4 min
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.planner --worlds seed_graph,always_on,logistic \\
        --seeds 1 --first-seed 11 --save-plans /tmp/plans.csv                              # the project's venv
    PYTHONPATH=$PWD /tmp/pymc/bin/python -m benchmarks.external.pymc_planner /tmp/plans.csv [--worlds ...] [--seed 11]

For each fit in plans.csv (world, seed, history length, weekly budget, each channel's bounds, current
and planned weekly spend, the planner's true gain and the oracle's) it redraws the same world, fits
PyMC-Marketing's MMM to the same weeks as a user of it would (geometric adstock up to 8 weeks, logistic
saturation, yearly seasonality of order 2, a linear trend control; NUTS, 2 chains), runs its budget
optimiser (`MMM.budget_optimizer(...).allocate_budget`) at the same weekly budget within the same
bounds (the planner's supports, so both are held to the data's support), and judges its plan with the
simulator's equations like the planner's: the true KPI over the 13 plan weeks against the current
allocation's. It prints, per world, both true gains and their ratio (PyMC-Marketing's over ours).
Only `benchmarks.heldout.worlds` (numpy and pandas) is imported from the project.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.heldout.worlds import WORLDS, planned_kpi, simulate_world  # noqa: E402

HORIZON = 13
DRAWS = 400
TUNE = 400
L_MAX = 8


def true_total(world: object, seed: int, channels: list[str], spend: np.ndarray) -> float:
    plan = {c: np.full(HORIZON, s) for c, s in zip(channels, spend)}
    return float(planned_kpi(world, seed, plan)[-HORIZON:].sum())


def pymc_plan(data: pd.DataFrame, channels: list[str], budget: float, bounds: dict[str, tuple[float, float]],
              seed: int) -> tuple[np.ndarray, float]:
    """Fit PyMC-Marketing's MMM on `data` and allocate `budget` per week over the next 13 weeks."""
    from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation

    columns = [f"{c}_spend" for c in channels]
    x = data[["week", *columns]].copy()
    x["trend"] = np.arange(len(x), dtype=float) / max(len(x) - 1, 1)
    mmm = MMM(date_column="week", channel_columns=columns, target_column="sales", control_columns=["trend"],
              adstock=GeometricAdstock(l_max=L_MAX), saturation=LogisticSaturation(), yearly_seasonality=2)
    started = time.perf_counter()
    mmm.fit(x, data["sales"], chains=2, cores=2, draws=DRAWS, tune=TUNE, random_seed=seed, progressbar=False)
    fitted = time.perf_counter() - started
    last = pd.Timestamp(data["week"].iloc[-1])
    start, end = last + pd.Timedelta(weeks=1), last + pd.Timedelta(weeks=HORIZON)
    # The trend over the plan's weeks and its carry-over weeks (the optimiser asks for both).
    future = pd.DataFrame({"week": pd.date_range(start, periods=HORIZON + L_MAX, freq="7D")})
    future["trend"] = np.arange(len(x), len(x) + HORIZON + L_MAX, dtype=float) / max(len(x) - 1, 1)
    optimizer = mmm.budget_optimizer(start, end, control_data=future)
    allocation, _ = optimizer.allocate_budget(total_budget=budget,
                                              budget_bounds={f"{c}_spend": bounds[c] for c in channels})
    spend = np.array([float(allocation.sel(channel=f"{c}_spend")) for c in channels])
    return spend, fitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plans", type=Path, help="the CSV `benchmarks.planner --save-plans` wrote")
    parser.add_argument("--worlds", default=None, help="only these worlds (comma-separated)")
    parser.add_argument("--seed", type=int, default=None, help="only this seed")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    plans = pd.read_csv(args.plans)
    if args.worlds:
        plans = plans[plans["world"].isin(args.worlds.split(","))]
    if args.seed is not None:
        plans = plans[plans["seed"] == args.seed]
    print(f"{'world':<16} {'seed':>4} {'ours':>9} {'pymc-mkt':>9} {'ratio':>6} {'oracle':>9} {'pymc spend':>36} "
          f"{'fit s':>6}")
    ratios = []
    for row in plans.to_dict("records"):
        channels = row["channels"].split(",")
        world = replace(WORLDS[row["world"]], n_weeks=int(row["weeks"]) + HORIZON)
        data = simulate_world(world, int(row["seed"])).data.iloc[:-HORIZON]
        bounds = {c: (float(row[f"{c}_low"]), float(row[f"{c}_high"])) for c in channels}
        spend, seconds = pymc_plan(data, channels, float(row["budget"]), bounds, int(row["seed"]))
        current = np.array([row[f"{c}_current"] for c in channels], dtype=float)
        base = true_total(world, int(row["seed"]), channels, current)
        ours_check = true_total(world, int(row["seed"]), channels,
                                np.array([row[f"{c}_plan"] for c in channels], dtype=float)) - base
        if not np.isclose(ours_check, row["true_gain"], rtol=1e-6, atol=1e-6):
            raise RuntimeError(f"the world was not redrawn as the planner drew it ({ours_check} vs {row['true_gain']})")
        gain = true_total(world, int(row["seed"]), channels, spend) - base
        ratio = gain / row["true_gain"] if row["true_gain"] > 0 else float("nan")
        ratios.append(ratio)
        text = " ".join(f"{s:,.0f}" for s in spend)
        print(f"{row['world']:<16} {int(row['seed']):>4} {row['true_gain']:>9,.0f} {gain:>9,.0f} {ratio:>6.2f} "
              f"{row['oracle_gain']:>9,.0f} {text:>36} {seconds:>6.0f}", flush=True)
    budgets = ", ".join(f"{b:,.0f}" for b in plans["budget"])
    print(f"\n{len(ratios)} worlds: PyMC-Marketing's true gain over the planner's, median {np.nanmedian(ratios):.2f} "
          f"(range {np.nanmin(ratios):.2f}–{np.nanmax(ratios):.2f}); weekly budgets {budgets}, the same supports "
          "as bounds.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
