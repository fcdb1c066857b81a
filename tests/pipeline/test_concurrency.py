"""Runs on one warehouse never interleave: an OS file lock held for the whole run refuses a second
writer with `[warehouse-locked]` (naming the other run and its start), each run stages in its own
schema, and the Dagster run queue limits the job to one run in progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, asset, materialize

from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.definitions import WAREHOUSE_TAG
from resources.lock import WarehouseLock, holder_path
from resources.settings import WarehouseResource

ROOT = Path(__file__).resolve().parents[2]
CMMM = [sys.executable, "-m", "cmmm_pipeline.cli"]


def test_a_second_writer_is_refused_with_the_holders_run_and_start(tmp_path: Path) -> None:
    database = str(tmp_path / "w.duckdb")
    first = WarehouseLock(database, timeout=0)
    first.acquire("6b26cf52-12ab-40e8-a988-ab9c1ecab7dd")
    started = json.loads(holder_path(database).read_text(encoding="utf-8"))["started"]
    try:
        with pytest.raises(CmmmError) as refused:
            WarehouseLock(database, timeout=0.2).acquire("0f000000-0000-4000-8000-000000000001")
    finally:
        first.release()
    message = str(refused.value)
    assert message.startswith(f"[warehouse-locked] {database}: run 6b26cf52-12ab-40e8-a988-ab9c1ecab7dd (started {started}")
    assert "waited 0.2 s" in message and "Fix: wait for that run to finish" in message
    assert not holder_path(database).exists()
    WarehouseLock(database, timeout=0).acquire("0f000000-0000-4000-8000-000000000001")  # free again


def test_a_run_sweeps_the_staging_schemas_of_runs_that_died(tmp_path: Path) -> None:
    database = str(tmp_path / "w.duckdb")
    with duckdb.connect(database) as con:
        warehouse.write_tables(con, {"raw_spend": pd.DataFrame({"x": [1.0]})}, "staging_deadbeef0000")

    @asset
    def probe(duckdb: WarehouseResource) -> None:
        with duckdb.get_connection() as con:
            assert warehouse.run_staging_schemas(con) == []  # swept before the first step ran

    assert materialize([probe], resources={"duckdb": WarehouseResource(database=database)}).success


def test_the_instance_queues_runs_one_at_a_time_and_per_warehouse_and_market(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    with DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 1  # markets run in parallel inside one cmmm_markets run instead
    limits = [dict(limit) for limit in queue.tag_concurrency_limits]
    assert {"key": WAREHOUSE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


@pytest.mark.slow
def test_two_cmmm_runs_at_once_publish_one_run_each_never_the_others(tmp_path: Path) -> None:
    output = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    first = subprocess.Popen([*CMMM, "run", "--output", str(output)], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        holder = output / "cmmm.duckdb.lock.json"
        deadline = time.monotonic() + 180
        while not holder.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        held = json.loads(holder.read_text(encoding="utf-8"))
        # The first run is paused while it holds the lock, so the second (which pays a fresh
        # interpreter's imports first) asks for it while it is held, however fast the first run is.
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run([*CMMM, "run", "--output", str(output)], cwd=tmp_path, env=env, text=True,
                                    capture_output=True, timeout=300, check=False)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        _, first_err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode != 0
    assert f"[warehouse-locked] {output.resolve() / 'cmmm.duckdb'}: run {held['run_id']} " \
           f"(started {held['started']} UTC" in second.stderr, second.stderr

    def history() -> list[tuple[str, int]]:
        with duckdb.connect(str(output / "cmmm.duckdb"), read_only=True) as con:
            return con.execute("SELECT run_id, count(*) FROM published.estimates_history GROUP BY 1 "
                               "ORDER BY min(run_time)").fetchall()

    assert history() == [(held["run_id"], 6)]
    # Once the lock is free a run goes through; with DAGSTER_HOME set it is recorded in that instance.
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    third = subprocess.run([*CMMM, "run", "--output", str(output)], cwd=tmp_path, env={**env, "DAGSTER_HOME": str(home)},
                           text=True, capture_output=True, timeout=600, check=False)
    assert third.returncode == 0, third.stderr
    runs = history()
    with DagsterInstance.from_config(str(home)) as instance:
        recorded = [(r.dagster_run.run_id, r.dagster_run.status.value) for r in instance.get_run_records()]
    assert recorded == [(runs[1][0], "SUCCESS")]
    assert len(runs) == 2 and runs[0] == (held["run_id"], 6) and runs[1][1] == 6
    with duckdb.connect(str(output / "cmmm.duckdb"), read_only=True) as con:
        published = con.execute("SELECT channel, effect, roi FROM published.estimates ORDER BY 1, 2").df()
        latest = con.execute("SELECT channel, effect, roi FROM published.estimates_history WHERE run_id = ? "
                             "ORDER BY 1, 2", [runs[1][0]]).df()
        staged = con.execute("SELECT count(*) FROM information_schema.schemata "
                             "WHERE schema_name LIKE 'staging_%'").fetchall()[0][0]
    pd.testing.assert_frame_equal(published, latest)
    assert staged == 0
    csv = pd.read_csv(output / "estimates.csv").sort_values(["channel", "effect"]).reset_index(drop=True)
    assert csv["roi"].tolist() == pytest.approx(published["roi"].tolist(), rel=1e-12)
