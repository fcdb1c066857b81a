"""Week-over-week change: ROI against the previous published run, and the flag for an estimate that
left the previous run's interval — on constructed histories in a real DuckDB warehouse."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.data import history, warehouse
from cmmm_pipeline.data.history import CHANGE_COLUMNS, compare_estimates


def _estimates(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """channel, effect, roi, roi_ci_low, roi_ci_high (plus the other columns the history keeps)."""
    frame = pd.DataFrame(rows, columns=["channel", "effect", "roi", "roi_ci_low", "roi_ci_high"])
    frame["p_value"] = 0.001
    return frame


PREVIOUS = _estimates([("tv", "total", 1.80, 1.60, 1.95), ("search", "total", 1.70, 1.50, 1.90),
                       ("email", "total", 1.90, 1.20, 2.50), ("digital", "total", 1.30, np.nan, np.nan)])
CURRENT = _estimates([("tv", "total", 1.83, 1.65, 1.99),        # inside, up 0.03
                      ("search", "total", 1.40, 1.20, 1.60),    # below the previous low
                      ("email", "total", 2.60, 2.00, 3.10),     # above the previous high
                      ("digital", "total", 1.00, 0.80, 1.20),   # previous interval missing: no flag
                      ("radio", "total", 0.50, 0.10, 0.90)])    # new channel


def test_compare_flags_exactly_the_estimates_outside_the_previous_interval() -> None:
    table = compare_estimates(CURRENT, PREVIOUS).set_index("channel")
    assert list(compare_estimates(CURRENT, PREVIOUS).columns) == CHANGE_COLUMNS
    assert table.loc["tv", "change"] == pytest.approx(0.03)
    assert table.loc["search", "change"] == pytest.approx(-0.30)
    assert table.loc["email", "previous_roi_ci_high"] == pytest.approx(2.50)
    assert table["outside_previous_interval"].to_dict() == {
        "tv": False, "search": True, "email": True, "digital": False, "radio": False}
    assert np.isnan(table.loc["radio", "previous_roi"]) and np.isnan(table.loc["radio", "change"])
    assert table["outside_previous_interval"].dtype == bool


def test_an_roi_on_the_interval_bound_is_inside() -> None:
    on_bound = _estimates([("tv", "total", 1.95, 1.7, 2.1)])
    assert not compare_estimates(on_bound, PREVIOUS)["outside_previous_interval"].iloc[0]


def test_first_run_has_nothing_to_compare() -> None:
    table = compare_estimates(CURRENT, pd.DataFrame())
    assert len(table) == len(CURRENT)
    assert table["previous_roi"].isna().all() and not table["outside_previous_interval"].any()


def _publish(con: duckdb.DuckDBPyConnection, run_id: str, when: dt.datetime, estimates: pd.DataFrame) -> None:
    warehouse.write_tables(con, {"estimates": estimates})
    warehouse.publish(con, run_id, when, "estimates")


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    with duckdb.connect(":memory:") as connection:
        yield connection


def test_changes_compare_with_the_run_published_just_before(con: duckdb.DuckDBPyConnection) -> None:
    week = dt.timedelta(days=7)
    first = dt.datetime(2026, 11, 2, 6, 0)
    _publish(con, "run-1", first, PREVIOUS.assign(roi=PREVIOUS["roi"] - 1.0))
    _publish(con, "run-2", first + week, PREVIOUS)
    _publish(con, "run-3", first + 2 * week, CURRENT)

    changes = history.estimate_changes(con, "run-3", CURRENT)
    assert changes.previous is not None
    assert changes.previous.run_id == "run-2" and changes.previous.run_time == first + week
    assert sorted(changes.flagged["channel"]) == ["email", "search"]
    assert changes.row("tv", "total")["change"] == pytest.approx(0.03)
    assert changes.row("tv", "direct") is None

    assert history.run_time(con, "run-3") == first + 2 * week
    assert history.run_time(con, "no-such-run") is None


def test_first_published_run_has_no_previous(con: duckdb.DuckDBPyConnection) -> None:
    _publish(con, "only", dt.datetime(2026, 11, 2), CURRENT)
    changes = history.estimate_changes(con, "only", CURRENT)
    assert changes.previous is None and changes.flagged.empty
    assert len(changes.table) == len(CURRENT)


def test_republishing_a_run_does_not_compare_it_with_itself(con: duckdb.DuckDBPyConnection) -> None:
    _publish(con, "run-1", dt.datetime(2026, 11, 2), PREVIOUS)
    _publish(con, "run-2", dt.datetime(2026, 11, 9), CURRENT)
    _publish(con, "run-2", dt.datetime(2026, 11, 9, 1), CURRENT)
    changes = history.estimate_changes(con, "run-2", CURRENT)
    assert changes.previous is not None and changes.previous.run_id == "run-1"
    count = con.execute("SELECT count(*) FROM published.estimates_history WHERE run_id = ?", ["run-2"]).fetchall()
    assert count == [(len(CURRENT),)]


def test_roi_history_keeps_the_last_runs_oldest_first(con: duckdb.DuckDBPyConnection) -> None:
    assert history.roi_history(con).empty
    start = dt.datetime(2026, 10, 5)
    for i in range(5):
        _publish(con, f"run-{i}", start + dt.timedelta(days=7 * i), PREVIOUS.assign(roi=PREVIOUS["roi"] + i / 10))
    recent = history.roi_history(con, runs=3)
    assert list(dict.fromkeys(recent["run_id"])) == ["run-2", "run-3", "run-4"]
    tv = recent[recent["channel"] == "tv"]["roi"].to_numpy()
    np.testing.assert_allclose(tv, [2.0, 2.1, 2.2])
