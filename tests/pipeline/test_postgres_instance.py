"""The production instance: Dagster's run history, event logs and schedule state in PostgreSQL
through dagster-postgres, configured by `deploy/dagster.yaml` exactly as shipped.

A local PostgreSQL 15 server (`tests/postgres_server.py`: Debian's `postgresql-15` in a temporary
folder, on 127.0.0.1, stopped at the end; run as the `postgres` user under root, as CI runs). The test
records a run of the weekly job there, restarts the database server, re-opens the instance and finds the
run, its tags and its materialisation again; then runs `dagster-daemon` and `dagster-webserver` on it as
the systemd units do. Skipped, with the reason, where the server cannot start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from assets.sensors import TAG_CONFIG_PATH, TAG_DATA_SHA256, file_sha256, run_tags
from cmmm_pipeline.definitions import JOB_NAME, SAMPLE_CONFIG, build_definitions
from tests.postgres_server import PostgresServer, PostgresUnavailable, free_port, local_postgres

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (extra `postgres`)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (comes with dagster-postgres)")
    try:
        with local_postgres() as server:
            yield server
    except PostgresUnavailable as why:
        pytest.skip(str(why))


@pytest.fixture()
def dagster_home(postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for key, value in postgres.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_runs_are_recorded_in_postgresql_and_survive_a_restart(postgres: PostgresServer, dagster_home: Path,
                                                              tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(SAMPLE_CONFIG.parent / "weekly.csv", project / "weekly.csv")
    config = project / "config.yaml"
    config.write_text(SAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    sha = file_sha256(project / "weekly.csv")
    defs = build_definitions(config_path=str(config), output_dir=str(tmp_path / "out"),
                             warehouse_path=str(tmp_path / "w.duckdb"))

    instance = DagsterInstance.get()  # from $DAGSTER_HOME/dagster.yaml, as the webserver and daemon load it
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, asset_selection=[AssetKey("raw_spend")], tags=run_tags(str(config), sha, "test"),
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        assert result.success
        run_id = result.run_id
    finally:
        instance.dispose()

    con = postgres.connect()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT status, pipeline_name FROM runs WHERE run_id = %s", (run_id,))
            assert cur.fetchall() == [("SUCCESS", JOB_NAME)]
            cur.execute("SELECT value FROM run_tags WHERE run_id = %s AND key = %s", (run_id, TAG_DATA_SHA256))
            assert cur.fetchall() == [(sha,)]
            cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                        (run_id, "ASSET_MATERIALIZATION"))
            assert cur.fetchall() == [(1,)]
    finally:
        con.close()

    postgres.stop()  # the database server restarts; nothing was kept in memory or on Dagster's side
    postgres.start()

    reopened = DagsterInstance.get()
    try:
        run = reopened.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS and run.job_name == JOB_NAME
        assert run.tags[TAG_CONFIG_PATH] == str(config) and run.tags[TAG_DATA_SHA256] == sha
        event = reopened.get_latest_materialization_event(AssetKey("raw_spend"))
        assert event is not None and event.run_id == run_id
        metadata = event.asset_materialization.metadata
        assert metadata["data_sha256"].value == sha and metadata["rows"].value == 156
        assert [r.run_id for r in reopened.get_runs()] == [run_id]
    finally:
        reopened.dispose()


def test_the_example_units_bind_the_ui_to_loopback_and_read_secrets_from_the_environment() -> None:
    web = (REPO / "deploy" / "systemd" / "cmmm-webserver.service").read_text(encoding="utf-8")
    daemon = (REPO / "deploy" / "systemd" / "cmmm-daemon.service").read_text(encoding="utf-8")
    exec_web = next(line for line in web.splitlines() if line.startswith("ExecStart="))
    assert "dagster-webserver" in exec_web and "-h 127.0.0.1" in exec_web
    assert any(line.startswith("ExecStart=") and "dagster-daemon run" in line for line in daemon.splitlines())
    for unit in (web, daemon):
        assert "EnvironmentFile=/etc/cmmm/cmmm.env" in unit and "PASSWORD" not in unit
    instance_yaml = (REPO / "deploy" / "dagster.yaml").read_text(encoding="utf-8")
    assert "password: {env: DAGSTER_PG_PASSWORD}" in instance_yaml


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this test started, SIGKILL after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", method="POST", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


TICKS = """{ sensorOrError(sensorSelector: {repositoryLocationName: "cmmm", repositoryName: "__repository__",
  sensorName: "%s"}) { ... on Sensor { sensorState { status ticks(limit: 20) { status skipReason runIds } } } } }"""
DAEMON_TIMEOUT_SECONDS = 240.0


def test_the_daemon_and_webserver_on_postgresql_run_the_sensor_and_alert(postgres: PostgresServer,
                                                                         dagster_home: Path, tmp_path: Path) -> None:
    """`dagster-daemon run` and `dagster-webserver`, as the systemd units start them, on the PostgreSQL
    instance with CMMM_CONFIG set: the data-arrival sensor (on by default now) starts a run on a data
    file with a negative spend, the run fails its blocking check, and the failure sensor's tick says
    which run it alerted and for which rule."""
    project = tmp_path / "project"
    project.mkdir()
    raw = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")
    raw.loc[5, "tv_spend"] = -10.0
    raw.to_csv(project / "weekly.csv", index=False)
    (project / "config.yaml").write_text(SAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMMM_", "DAGSTER_"))}
    env.update(postgres.env(), DAGSTER_HOME=str(dagster_home), CMMM_CONFIG=str(project / "config.yaml"),
               CMMM_OUTPUT_DIR=str(tmp_path / "out"), CMMM_WAREHOUSE=str(tmp_path / "w.duckdb"),
               GX_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    bin_dir = Path(sys.executable).parent
    port = free_port()
    started: list[subprocess.Popen] = []
    try:
        for name, args in (("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]),
                           ("webserver", [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml",
                                          "-h", "127.0.0.1", "-p", str(port)])):
            with (tmp_path / f"{name}.log").open("w") as log:
                started.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + DAEMON_TIMEOUT_SECONDS
        alerted: list[dict] = []
        while not alerted:
            assert time.monotonic() < deadline, (
                f"no alert tick after {DAEMON_TIMEOUT_SECONDS:.0f} s:\n"
                + (tmp_path / "daemon.log").read_text(errors="replace")[-3000:])
            assert all(p.poll() is None for p in started), (tmp_path / "daemon.log").read_text(errors="replace")
            time.sleep(2.0)
            try:
                ticks = _graphql(url, TICKS % "cmmm_run_failure_alert")["sensorOrError"]["sensorState"]["ticks"]
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
                continue
            alerted = [t for t in ticks if (t["skipReason"] or "").startswith("alerted run ")]
        arrival = _graphql(url, TICKS % "cmmm_data_arrival_sensor")["sensorOrError"]["sensorState"]
        assert arrival["status"] == "RUNNING"
        (run_id,) = [r for t in arrival["ticks"] for r in t["runIds"]]
        assert alerted[0]["skipReason"].startswith(f"alerted run {run_id} of {JOB_NAME}: rule spend-non-negative")
        assert alerted[0]["skipReason"].endswith("logged only ($CMMM_ALERT_WEBHOOK not set)")
    finally:
        for process in started:
            _stop_group(process)

    instance = DagsterInstance.get()
    try:
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert run.tags["cmmm/trigger"] == "data-arrival"
        assert run.tags[TAG_DATA_SHA256] == file_sha256(project / "weekly.csv")
    finally:
        instance.dispose()
