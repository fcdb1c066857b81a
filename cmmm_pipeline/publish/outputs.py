"""The user-facing files of a published run: estimates.csv and report.html, written from the
`published` schema and swapped into place only when complete."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.data import history, warehouse
from cmmm_pipeline.data.history import EstimateChanges
from cmmm_pipeline.publish.report import ReportInputs, RunInfo, forest_plot_png, render_report

ESTIMATE_COLUMNS = ["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "incremental_kpi",
                    "incremental_ci_low", "incremental_ci_high", "p_value", "naive_roi", "robustness", "ate", "spend",
                    "adjustment", "mediators", "reason", "interval_method", "applied_transform_roi"]


# Published table → CSV file written beside report.html when the run produced it.
CSV_EXPORTS = {
    "estimates": "estimates.csv",
    "dag_tests": "dag_tests.csv",
    "overlap": "overlap.csv",
    "refutations": "refutations.csv",
    "experiments": "experiments.csv",
    "transform_selection": "transform_selection.csv",
}


# Published tables the report reads when the run produced them.
REPORT_TABLES = ("estimates", "raw_spend", "transform_parameters", "transformed_media", "dag_edges", "dag_tests",
                 "overlap", "identification", "refutations", "experiments", "transform_selection")
CHANGES_FILE = "estimate_changes.csv"


@dataclass(frozen=True)
class WrittenOutputs:
    estimates: Path
    report: Path
    files: tuple[Path, ...]
    changes: EstimateChanges
    """This run's estimates against the previously published run."""
    forest_png: bytes
    """The report's ROI forest plot, for the Dagster UI."""


def final_estimates(point: pd.DataFrame, intervals: pd.DataFrame,
                    robustness: dict[str, str] | None = None) -> pd.DataFrame:
    """Point estimates joined with their intervals and p-values, and each channel's robustness
    status (the worst of its refuters; empty where nothing was refuted), in the documented column
    order. Where an estimate rests on a selected transform, the published incremental KPI and ROI
    are its smoothed values; `applied_transform_roi` keeps the ROI at the applied transforms.
    Rows that could not be estimated keep NaN numbers and their `reason`."""
    merged = point.merge(intervals, on=["channel", "effect"], how="left", validate="one_to_one")
    merged["applied_transform_roi"] = merged["roi"]
    if "smoothed_incremental_kpi" in merged.columns:
        smoothed = merged["smoothed_incremental_kpi"].notna()
        merged.loc[smoothed, "incremental_kpi"] = merged.loc[smoothed, "smoothed_incremental_kpi"]
        merged.loc[smoothed, "roi"] = merged.loc[smoothed, "incremental_kpi"] / merged.loc[smoothed, "spend"]
        merged = merged.drop(columns="smoothed_incremental_kpi")
    if "interval_method" not in merged.columns:
        merged["interval_method"] = ""
    merged["interval_method"] = merged["interval_method"].fillna("")
    status = robustness or {}
    merged["robustness"] = [status.get(c, "") if pd.notna(a) else "" for c, a in zip(merged["channel"], merged["ate"])]
    if "reason" not in merged.columns:
        merged["reason"] = ""
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
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the report and CSVs are for the whole team to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(con: duckdb.DuckDBPyConnection, directory: Path, config: PipelineConfig,
                  run_id: str) -> WrittenOutputs:
    published = set(warehouse.table_names(con, warehouse.PUBLISHED))
    tables = {t: warehouse.read_table(con, t, warehouse.PUBLISHED) for t in REPORT_TABLES if t in published}
    estimates = tables["estimates"]
    changes = history.estimate_changes(con, run_id, estimates)
    run = RunInfo(run_id=run_id, run_time=history.run_time(con, run_id), kpi=config.kpi,
                  config_path=str(config.source), config_text=config.source.read_text(encoding="utf-8"),
                  ci_level=config.estimation.ci_level,
                  spend_columns={c.name: c.spend_column for c in config.channels})
    html = render_report(ReportInputs.from_tables(run, tables, changes, history.roi_history(con)))
    files = []
    for table, filename in CSV_EXPORTS.items():
        if table in published:
            frame = tables.get(table)
            frame = warehouse.read_table(con, table, warehouse.PUBLISHED) if frame is None else frame
            atomic_write(directory / filename, frame.to_csv(index=False))
            files.append(directory / filename)
    atomic_write(directory / CHANGES_FILE, changes.table.to_csv(index=False))
    atomic_write(directory / "report.html", html)
    return WrittenOutputs(estimates=directory / "estimates.csv", report=directory / "report.html",
                          files=(*files, directory / CHANGES_FILE, directory / "report.html"), changes=changes,
                          forest_png=forest_plot_png(estimates, config.estimation.ci_level))
