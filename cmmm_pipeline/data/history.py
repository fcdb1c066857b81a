"""Week-over-week change of the published estimates.

Every published run appends its estimates to `published.estimates_history` with its run id and
time (see `warehouse.publish`). Here each estimate of a run is compared with the same channel and
effect in the run published before it: the ROI change, and a flag when the new ROI lies outside
the previous run's interval — the signal that something moved more than its uncertainty allows
(new data, a changed config, or a broken input).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from cmmm_pipeline.data import warehouse

KEYS = ["channel", "effect"]
CHANGE_COLUMNS = ["channel", "effect", "roi", "previous_roi", "change", "previous_roi_ci_low",
                  "previous_roi_ci_high", "outside_previous_interval"]
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

    @property
    def flagged(self) -> pd.DataFrame:
        """Estimates that moved outside the previous run's interval."""
        return self.table[self.table["outside_previous_interval"]].reset_index(drop=True)

    def row(self, channel: str, effect: str) -> pd.Series | None:
        match = self.table[(self.table["channel"] == channel) & (self.table["effect"] == effect)]
        return None if match.empty else match.iloc[0]


def compare_estimates(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Each current estimate beside the previous one: ROI change and whether the current ROI lies
    outside the previous interval. Estimates the previous run did not have get missing values and
    no flag."""
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
    return merged[CHANGE_COLUMNS]


def estimate_changes(con: duckdb.DuckDBPyConnection, run_id: str, current: pd.DataFrame) -> EstimateChanges:
    """`current` (this run's estimates) against the newest other run in the history."""
    previous = warehouse.previous_estimates(con, run_id)
    if previous.empty:
        return EstimateChanges(None, compare_estimates(current, previous))
    first = previous.iloc[0]
    return EstimateChanges(PreviousRun(str(first["run_id"]), pd.Timestamp(first["run_time"]).to_pydatetime()),
                           compare_estimates(current, previous))


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
