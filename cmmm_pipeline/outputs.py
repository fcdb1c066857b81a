"""The user-facing files of a published run: estimates.csv and report.html, written from the
`published` schema and swapped into place only when complete."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from cmmm_pipeline import warehouse
from cmmm_pipeline.config import PipelineConfig
from cmmm_pipeline.report import ReportInputs, render_report

ESTIMATE_COLUMNS = ["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "incremental_kpi",
                    "incremental_ci_low", "incremental_ci_high", "p_value", "naive_roi", "ate", "spend",
                    "adjustment", "mediators"]


# Published table → CSV file written beside report.html when the run produced it.
CSV_EXPORTS = {
    "estimates": "estimates.csv",
    "dag_tests": "dag_tests.csv",
    "overlap": "overlap.csv",
    "refutations": "refutations.csv",
    "experiments": "experiments.csv",
    "transform_selection": "transform_selection.csv",
}


@dataclass(frozen=True)
class WrittenOutputs:
    estimates: Path
    report: Path
    files: tuple[Path, ...]


def final_estimates(point: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """Point estimates joined with their intervals and p-values, in the documented column order."""
    merged = point.merge(intervals, on=["channel", "effect"], how="left", validate="one_to_one")
    rest = [c for c in merged.columns if c not in ESTIMATE_COLUMNS]
    return merged[ESTIMATE_COLUMNS + rest]


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write next to the target and rename over it: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(con: duckdb.DuckDBPyConnection, directory: Path, config: PipelineConfig,
                  run_id: str) -> WrittenOutputs:
    estimates = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
    raw = warehouse.read_table(con, "raw_spend", warehouse.PUBLISHED)
    transforms = warehouse.read_table(con, "transform_parameters", warehouse.PUBLISHED)
    weeks = pd.to_datetime(raw["week"])
    html = render_report(ReportInputs(
        estimates=estimates, transforms=transforms, data_range=(str(weeks.min().date()), str(weeks.max().date())),
        weeks=len(raw), kpi=config.kpi, config_text=config.source.read_text(encoding="utf-8"), run_id=run_id))
    published = set(warehouse.table_names(con, warehouse.PUBLISHED))
    files = []
    for table, filename in CSV_EXPORTS.items():
        if table in published:
            frame = estimates if table == "estimates" else warehouse.read_table(con, table, warehouse.PUBLISHED)
            atomic_write(directory / filename, frame.to_csv(index=False))
            files.append(directory / filename)
    atomic_write(directory / "report.html", html)
    return WrittenOutputs(estimates=directory / "estimates.csv", report=directory / "report.html",
                          files=(*files, directory / "report.html"))
