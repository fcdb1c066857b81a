"""Week-over-week change of the published estimates.

Every published run appends its estimates to `published.estimates_history` with its run id and
time (see `warehouse.publish`). Here each estimate of a run is compared with the same channel and
effect in the run published before it: the ROI change, and a flag when the new ROI lies outside
the previous run's interval — the signal that something moved more than its uncertainty allows
(new data, a changed config, or a broken input). A week the previous run already had whose
values changed since (a restatement in the export) is named on every row of the change table, so
a move caused by restated history is told apart from one caused by the newest week.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from cmmm_pipeline.data import warehouse

KEYS = ["channel", "effect"]
CHANGE_COLUMNS = ["channel", "effect", "roi", "previous_roi", "change", "previous_roi_ci_low",
                  "previous_roi_ci_high", "outside_previous_interval", "restated_weeks"]
RESTATEMENT_COLUMNS = ["week", "column", "previous", "current"]
RESTATED_TOLERANCE = 1e-9
"""Relative difference above which a stored value counts as restated (round-trip noise is below it)."""
UNCHANGED = 0.005
"""A change smaller than this (half a unit of the report's two-decimal ROI) reads as unchanged."""


@dataclass(frozen=True)
class PreviousRun:
    run_id: str
    run_time: dt.datetime


@dataclass(frozen=True)
class EstimateChanges:
    """The change table of one run against the run published before it (`previous` is None on the
    first run, and then every `previous_*` value is missing and nothing is flagged)."""

    previous: PreviousRun | None
    table: pd.DataFrame
    """CHANGE_COLUMNS, one row per estimate of the current run."""
    restatements: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RESTATEMENT_COLUMNS))
    """RESTATEMENT_COLUMNS: the previous run's values that this run's data changed."""

    @property
    def flagged(self) -> pd.DataFrame:
        """Estimates that moved outside the previous run's interval."""
        return self.table[self.table["outside_previous_interval"]].reset_index(drop=True)

    def row(self, channel: str, effect: str) -> pd.Series | None:
        match = self.table[(self.table["channel"] == channel) & (self.table["effect"] == effect)]
        return None if match.empty else match.iloc[0]


def restated_values(previous_raw: pd.DataFrame, current_raw: pd.DataFrame) -> pd.DataFrame:
    """The values of weeks both runs' data hold that differ between them (RESTATEMENT_COLUMNS, one
    row per week and column, oldest first). Only columns both tables have are compared; a value
    that appears or disappears (NaN on one side) counts as restated."""
    if previous_raw.empty or current_raw.empty or "week" not in previous_raw or "week" not in current_raw:
        return pd.DataFrame(columns=RESTATEMENT_COLUMNS)
    columns = [c for c in current_raw.columns if c != "week" and c in previous_raw.columns]
    before = previous_raw.assign(week=pd.to_datetime(previous_raw["week"])).set_index("week")[columns]
    after = current_raw.assign(week=pd.to_datetime(current_raw["week"])).set_index("week")[columns]
    weeks = before.index.intersection(after.index)
    rows = []
    for column in columns:
        old = pd.to_numeric(before.loc[weeks, column], errors="coerce").to_numpy(dtype=float)
        new = pd.to_numeric(after.loc[weeks, column], errors="coerce").to_numpy(dtype=float)
        both = ~np.isnan(old) & ~np.isnan(new)
        moved = np.zeros(len(weeks), dtype=bool)
        moved[both] = np.abs(new[both] - old[both]) > RESTATED_TOLERANCE * np.maximum(1.0, np.abs(old[both]))
        moved |= np.isnan(old) != np.isnan(new)
        rows += [(weeks[i], column, old[i], new[i]) for i in np.flatnonzero(moved)]
    return pd.DataFrame(rows, columns=RESTATEMENT_COLUMNS).sort_values(["week", "column"], ignore_index=True)


def restated_label(restatements: pd.DataFrame) -> str:
    """`2025-06-02 (sales); 2025-06-09 (sales, tv_spend)`: the restated weeks and their columns."""
    if restatements.empty:
        return ""
    grouped = restatements.groupby("week", sort=True)["column"].apply(lambda c: ", ".join(sorted(c)))
    return "; ".join(f"{pd.Timestamp(w):%Y-%m-%d} ({cols})" for w, cols in grouped.items())


def compare_estimates(current: pd.DataFrame, previous: pd.DataFrame, restated: str = "") -> pd.DataFrame:
    """Each current estimate beside the previous one: ROI change and whether the current ROI lies
    outside the previous interval. Estimates the previous run did not have get missing values and
    no flag. `restated` (see `restated_label`) is repeated on every row."""
    now = current[[*KEYS, "roi"]].reset_index(drop=True)
    if previous.empty:
        before = pd.DataFrame(columns=[*KEYS, "previous_roi", "previous_roi_ci_low", "previous_roi_ci_high"])
    else:
        before = previous[[*KEYS, "roi", "roi_ci_low", "roi_ci_high"]].rename(columns={
            "roi": "previous_roi", "roi_ci_low": "previous_roi_ci_low", "roi_ci_high": "previous_roi_ci_high"})
    merged = now.merge(before, on=KEYS, how="left", validate="one_to_one")
    for column in ("previous_roi", "previous_roi_ci_low", "previous_roi_ci_high"):
        merged[column] = pd.to_numeric(merged[column], errors="coerce").astype(float)
    merged["change"] = merged["roi"] - merged["previous_roi"]
    low, high, roi = merged["previous_roi_ci_low"], merged["previous_roi_ci_high"], merged["roi"]
    merged["outside_previous_interval"] = np.asarray(
        low.notna() & high.notna() & ((roi < low) | (roi > high)), dtype=bool)
    merged["restated_weeks"] = restated
    return merged[CHANGE_COLUMNS]


def estimate_changes(con: duckdb.DuckDBPyConnection, run_id: str, current: pd.DataFrame,
                     restatements: pd.DataFrame | None = None) -> EstimateChanges:
    """`current` (this run's estimates) against the newest other run in the history;
    `restatements` (see `restated_values`) are the previous run's data values this run changed."""
    restated = pd.DataFrame(columns=RESTATEMENT_COLUMNS) if restatements is None else restatements
    previous = warehouse.previous_estimates(con, run_id)
    table = compare_estimates(current, previous, restated_label(restated))
    if previous.empty:
        return EstimateChanges(None, table, restated)
    first = previous.iloc[0]
    return EstimateChanges(PreviousRun(str(first["run_id"]), pd.Timestamp(first["run_time"]).to_pydatetime()),
                           table, restated)


def run_time(con: duckdb.DuckDBPyConnection, run_id: str) -> dt.datetime | None:
    """When `run_id` was published (None if it is not in the history)."""
    if warehouse.HISTORY_TABLE not in warehouse.table_names(con, warehouse.PUBLISHED):
        return None
    rows = con.execute(f'SELECT max(run_time) FROM "{warehouse.PUBLISHED}"."{warehouse.HISTORY_TABLE}" '
                       "WHERE run_id = ?", [run_id]).fetchall()
    value = rows[0][0] if rows else None
    return None if value is None else pd.Timestamp(value).to_pydatetime()


def roi_history(con: duckdb.DuckDBPyConnection, runs: int = 8, effect: str = "total") -> pd.DataFrame:
    """The ROI of `effect` per channel over the last `runs` published runs, oldest first:
    run_id, run_time, channel, roi, roi_ci_low, roi_ci_high."""
    columns = ["run_id", "run_time", "channel", "roi", "roi_ci_low", "roi_ci_high"]
    if warehouse.HISTORY_TABLE not in warehouse.table_names(con, warehouse.PUBLISHED):
        return pd.DataFrame(columns=columns)
    history = f'"{warehouse.PUBLISHED}"."{warehouse.HISTORY_TABLE}"'
    return con.execute(
        f"WITH recent AS (SELECT run_id, max(run_time) AS run_time FROM {history} GROUP BY run_id "
        f"ORDER BY run_time DESC LIMIT ?) "
        f"SELECT h.run_id, r.run_time, h.channel, h.roi, h.roi_ci_low, h.roi_ci_high FROM {history} h "
        f"JOIN recent r USING (run_id) WHERE h.effect = ? ORDER BY r.run_time, h.channel",
        [runs, effect]).df()[columns]
