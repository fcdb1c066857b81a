"""Calibrate the `value-outlier` gate: how often it refuses clean data, and how often it catches one
wild week injected into the KPI or into a spend column.

Clean data, each dataset judged as the raw_spend suite judges it (the KPI and every spend column):

- `sample`: the bundled sample;
- `simulate`: the project's simulator (`cmmm_pipeline.simulation.simulate`) in six scenarios (the
  sample's, dark weeks, collinear plans, strong confounding, 60 and 520 weeks), seeds 1000+;
- `heldout`: the held-out family (`benchmarks.heldout.worlds`, all eleven worlds), seeds 5000+;
- `public`: PyMC-Marketing's ROAS case-study data (`benchmarks/heldout/data`), x1, x2 and y;
- `bursty`: legitimate bursts a clean export can hold, laid on the simulator's worlds (seeds 9000+):
  holiday KPI peaks (up to 3.5x the median week for six weeks a year, as in a retail KPI around Black
  Friday), a Black-Friday search burst (8x) and a Q4 digital push (4x), a channel launched after
  30 dark weeks with a 6x launch burst, a steady always-on channel (3% noise) with a 2.5x Q4 push, TV
  flights of very different weights, and a KPI whose level steps up by 60% half-way.

Wild weeks, one per dataset (simulate, heldout, sample, public), in a random week: the KPI or a random
spend column's spending week multiplied by 5, 10 or 100, or set to 9.9e11 (just under ingestion's 1e12
bound). Detected when that week is refused.

Printed: per threshold, the share of clean datasets refused (any column) and of clean weeks refused,
by family; and the detection rate of each size, for the KPI and for spend; then one-off events the
gate may refuse (a sponsorship week at 20x and 60x the channel's median week), which a per-column
threshold in `checks.outlier_columns` lets through.

    python -m benchmarks.outlier_calibration --seeds 200      # the figures in docs/checks.md (4 to 6 min)
    python -m benchmarks.outlier_calibration --seeds 20       # a quick look (about 25 s)
    python -m benchmarks.outlier_calibration --csv weekly.csv --kpi sales --spend tv_spend,search_spend
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.heldout import public  # noqa: E402
from benchmarks.heldout.worlds import WORLDS, simulate_world  # noqa: E402
from cmmm_pipeline.data.outliers import ColumnKind, OutlierBound, column_bound  # noqa: E402
from cmmm_pipeline.simulation.simulate import Scenario, simulate  # noqa: E402

KPI_THRESHOLDS = (8.0, 10.0, 12.0, 15.0, 20.0, 25.0)
SPEND_THRESHOLDS = (6.0, 7.0, 8.0, 9.0, 10.0, 12.0)
SIZES: tuple[tuple[str, float | None], ...] = (("x5", 5.0), ("x10", 10.0), ("x100", 100.0), ("9.9e11", None))
WILD = 9.9e11
SCENARIOS = {"sample": Scenario(), "dark_weeks": Scenario(dark_weeks=0.3), "collinear": Scenario(collinearity=0.6),
             "confounding": Scenario(confounding=1.0), "60_weeks": Scenario(n_weeks=60),
             "520_weeks": Scenario(n_weeks=520)}


@dataclass(frozen=True)
class Dataset:
    family: str
    name: str
    data: pd.DataFrame
    kpi: str
    spend: tuple[str, ...]


def _spend_columns(df: pd.DataFrame) -> tuple[str, ...]:
    return tuple(c for c in df.columns if c.endswith("_spend"))


def clean_datasets(seeds: int) -> Iterator[Dataset]:
    sample = pd.read_csv(ROOT / "cmmm_pipeline" / "sample" / "weekly.csv")
    yield Dataset("sample", "sample", sample, "sales", _spend_columns(sample))
    for name, scenario in SCENARIOS.items():
        for seed in range(1000, 1000 + seeds):
            df = simulate(scenario, seed=seed).data
            yield Dataset("simulate", f"{name}/{seed}", df, "sales", _spend_columns(df))
    for name, world in WORLDS.items():
        for seed in range(5000, 5000 + seeds):
            df = simulate_world(world, seed).data
            yield Dataset("heldout", f"{name}/{seed}", df, "sales", _spend_columns(df))
    for dataset in public.load_all()[:1]:
        yield Dataset("public", "pymc_roas", dataset.data, "sales", ("x1_spend", "x2_spend"))


def bursty(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Legitimate bursts on a simulated world (see the module docstring)."""
    out = df.copy()
    n = len(out)
    week_of_year = pd.to_datetime(out["week"]).dt.isocalendar().week.to_numpy(dtype=int)
    holiday = {47: 3.5, 48: 2.5, 49: 2.0, 50: 3.0, 51: 3.5, 52: 1.5}
    out["sales"] = out["sales"] * np.array([holiday.get(w, 1.0) for w in week_of_year])
    out.loc[np.arange(n) >= n // 2, "sales"] *= 1.6
    out["search_spend"] = out["search_spend"] * np.where(week_of_year == 47, 8.0, 1.0)
    out["digital_spend"] = out["digital_spend"] * np.where(week_of_year >= 44, 4.0, 1.0)
    launch = np.zeros(n)
    launch[30:] = 500.0 * np.exp(rng.normal(0.0, 0.3, n - 30))
    launch[30:32] *= 6.0
    out["launch_spend"] = launch.round(2)
    steady = 100.0 * np.exp(rng.normal(0.0, 0.03, n)) * np.where(week_of_year >= 46, 2.5, 1.0)
    out["steady_spend"] = steady.round(2)
    flights = np.repeat(np.exp(rng.normal(0.0, 0.8, n // 4 + 1)), 4)[:n]
    out["tv_spend"] = (out["tv_spend"] * flights).round(2)
    return out


def bursty_datasets(seeds: int) -> Iterator[Dataset]:
    for seed in range(9000, 9000 + seeds):
        df = bursty(simulate(Scenario(), seed=seed).data, np.random.default_rng(seed))
        yield Dataset("bursty", f"bursty/{seed}", df, "sales", _spend_columns(df))


def max_z(dataset: Dataset) -> tuple[float, float, int, int]:
    """The largest robust z of the KPI and of any spend column, and how many KPI and spend weeks
    there are (z is threshold-free: a week is refused at threshold k when its z exceeds k)."""
    kpi = column_bound(ColumnKind.KPI, dataset.data[dataset.kpi].to_numpy(float), dataset.kpi, 1.0)
    kpi_z = float(np.max(kpi.z(dataset.data[dataset.kpi].to_numpy(float)))) if kpi else -np.inf
    spend_z, spend_weeks = -np.inf, 0
    for column in dataset.spend:
        values = dataset.data[column].to_numpy(float)
        bound = column_bound(ColumnKind.SPEND, values, column, 1.0)
        spend_weeks += len(values)
        if bound is not None:
            spend_z = max(spend_z, _spend_exceedance(bound, values))
    return kpi_z, spend_z, len(dataset.data), spend_weeks


def _spend_exceedance(bound: OutlierBound, values: np.ndarray) -> float:
    """The threshold below which a week of this column would be refused: its largest robust z."""
    return float(np.max(bound.z(values)))


def week_zs(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Every week's robust z: KPI weeks, and spend weeks of every column (zero spend scores -inf)."""
    y = dataset.data[dataset.kpi].to_numpy(float)
    kpi = column_bound(ColumnKind.KPI, y, dataset.kpi, 1.0)
    spend = []
    for column in dataset.spend:
        values = dataset.data[column].to_numpy(float)
        bound = column_bound(ColumnKind.SPEND, values, column, 1.0)
        spend.append(bound.z(values) if bound is not None else np.full(len(values), -np.inf))
    return (kpi.z(y) if kpi else np.full(len(y), -np.inf)), np.concatenate(spend)


def injected_z(dataset: Dataset, kind: ColumnKind, size: float | None, rng: np.random.Generator) -> float:
    """The robust z of one wild week injected into the KPI or a random spend column (its spending weeks)."""
    column = dataset.kpi if kind is ColumnKind.KPI else dataset.spend[int(rng.integers(len(dataset.spend)))]
    values = dataset.data[column].to_numpy(float).copy()
    candidates = np.arange(len(values)) if kind is ColumnKind.KPI else np.flatnonzero(values > 0)
    week = int(candidates[int(rng.integers(len(candidates)))])
    values[week] = WILD if size is None else values[week] * size
    bound = column_bound(kind, values, column, 1.0)
    return float(bound.z(values)[week]) if bound is not None else -np.inf


def false_alarm_table(clean: list[Dataset]) -> pd.DataFrame:
    rows = []
    for dataset in clean:
        kpi_z, spend_z = week_zs(dataset)
        rows.append({"family": dataset.family, "kpi_max": kpi_z.max(), "spend_max": spend_z.max(),
                     "kpi_z": kpi_z, "spend_z": spend_z})
    table = pd.DataFrame(rows)
    out = []
    for family, part in [("all", table), *table.groupby("family", sort=False)]:
        row: dict[str, object] = {"family": family, "datasets": len(part)}
        kpi_weeks = np.concatenate(part["kpi_z"].to_list())
        spend_weeks = np.concatenate(part["spend_z"].to_list())
        for k in KPI_THRESHOLDS:
            row[f"kpi>{k:g}"] = _rate(part["kpi_max"] > k, (kpi_weeks > k).sum(), len(kpi_weeks))
        for k in SPEND_THRESHOLDS:
            row[f"spend>{k:g}"] = _rate(part["spend_max"] > k, (spend_weeks > k).sum(), len(spend_weeks))
        row["kpi max z"] = f"{part['kpi_max'].max():.1f}"
        row["spend max z"] = f"{part['spend_max'].max():.1f}"
        out.append(row)
    return pd.DataFrame(out).set_index("family").T


def _rate(refused: pd.Series, weeks: int, total: int) -> str:
    """Share of datasets refused, with refused weeks per 10,000."""
    return f"{100 * refused.mean():.1f}% ({10_000 * weeks / max(total, 1):.1f})"


def detection_table(clean: list[Dataset], kind: ColumnKind, thresholds: tuple[float, ...],
                    seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    targets = [d for d in clean if d.family != "bursty"]
    rows = []
    for label, size in SIZES:
        z = np.array([injected_z(d, kind, size, rng) for d in targets])
        rows.append({"wild week": label, "injections": len(z),
                     **{f"z>{k:g}": f"{100 * np.mean(z > k):.1f}%" for k in thresholds}})
    return pd.DataFrame(rows)


def one_off_table(seeds: int, thresholds: tuple[float, ...]) -> pd.DataFrame:
    """Real one-offs: TV's median spending week multiplied into a sponsorship week."""
    rows = []
    for factor in (20.0, 60.0):
        z = []
        for seed in range(9500, 9500 + seeds):
            values = simulate(Scenario(), seed=seed).data["tv_spend"].to_numpy(float)
            active = np.flatnonzero(values > 0)
            week = int(active[np.argsort(values[active])[len(active) // 2]])
            values[week] *= factor
            bound = column_bound(ColumnKind.SPEND, values, "tv_spend", 1.0)
            z.append(float(bound.z(values)[week]) if bound else -np.inf)
        arr = np.array(z)
        rows.append({"event": f"tv sponsorship week, {factor:g}x its median week", "worlds": len(arr),
                     **{f"z>{k:g}": f"{100 * np.mean(arr > k):.1f}%" for k in thresholds}})
    return pd.DataFrame(rows)


def judge_file(path: Path, kpi: str, spend: list[str]) -> pd.DataFrame:
    """Each column of a user's weekly export as the gate sees it at the default thresholds: its median
    (spending) week, robust scale, largest robust z and that week's share of the median."""
    from cmmm_pipeline.core.config import CheckConfig

    data = pd.read_csv(path)
    defaults = CheckConfig()
    rows = []
    for column, kind in [(kpi, ColumnKind.KPI), *((c, ColumnKind.SPEND) for c in spend)]:
        values = data[column].to_numpy(float)
        threshold = defaults.outlier_threshold(column, kind is ColumnKind.KPI)
        bound = column_bound(kind, values, column, threshold or 1.0)
        if bound is None:
            rows.append({"column": column, "kind": kind.value, "note": "too few weeks to judge"})
            continue
        z = bound.z(values)
        rows.append({"column": column, "kind": kind.value, "weeks": bound.weeks, "median": f"{bound.center:.4g}",
                     "robust scale": f"{bound.scale:.3g}", "max z": f"{z.max():.2f}",
                     "max / median": f"{np.nanmax(values) / bound.center:.2f}",
                     "refused at default": int(bound.flags(values).sum())})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="datasets per scenario / world (default 200)")
    parser.add_argument("--seed", type=int, default=20240101, help="seed of the injections")
    parser.add_argument("--csv", type=Path, help="judge this weekly CSV instead (with --kpi and --spend)")
    parser.add_argument("--kpi", help="the KPI column of --csv")
    parser.add_argument("--spend", default="", help="comma-separated spend columns of --csv")
    args = parser.parse_args(argv)
    if args.csv is not None:
        print(judge_file(args.csv, args.kpi, [c for c in args.spend.split(",") if c]).to_string(index=False))
        return
    started = time.perf_counter()
    clean = [*clean_datasets(args.seeds), *bursty_datasets(args.seeds)]
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(f"Clean data: {len(clean)} datasets. False alarms: % of datasets refused "
          "(refused weeks per 10,000 weeks), by robust-z threshold")
    print(false_alarm_table(clean).to_string())
    for kind, thresholds in ((ColumnKind.KPI, KPI_THRESHOLDS), (ColumnKind.SPEND, SPEND_THRESHOLDS)):
        print(f"\nDetection of one wild week injected into the {kind.value}: % refused, by robust-z threshold")
        print(detection_table(clean, kind, thresholds, args.seed).to_string(index=False))
    print("\nReal one-off weeks: % refused (let them through with checks.outlier_columns.<column>)")
    print(one_off_table(args.seeds, SPEND_THRESHOLDS).to_string(index=False))
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
