"""Automation and alerting. The run-failure alert on a real failed run of the weekly job (a negative
spend trips the blocking data-quality check): the log line, the JSON posted to a local webhook, the
tick that says what it alerted, and a webhook URL that never leaks, whatever urllib makes of it.
The schedule and the data-arrival sensor: STOPPED unless CMMM_CONFIG is set, a run when the data
file's content changes, and runs tagged with the config path and the data's SHA-256."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    SensorEvaluationContext,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
)

from assets.sensors import (
    ALERT_WEBHOOK_ENV,
    CONFIG_ENV,
    DATA_SENSOR_NAME,
    MISSING,
    SCHEDULE_NAME,
    TAG_CONFIG_PATH,
    TAG_DATA_SHA256,
    TAG_TRIGGER,
    decide_arrival,
    failure_alert,
    file_sha256,
    mask_url,
    post_alert,
    run_failure_alert,
)
from cmmm_pipeline.definitions import JOB_NAME, SAMPLE_CONFIG, build_definitions
from data_checks.freshness import FRESHNESS_SENSOR_NAME

BAD_WEEK = 5


@dataclass
class Webhook:
    """A local HTTP endpoint that records what it is sent and answers with `status`."""

    url: str
    status: int
    requests: list[dict[str, object]] = field(default_factory=list)


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    received: list[dict[str, object]] = []
    hook = Webhook("", 204, received)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "content_type": self.headers["Content-Type"],
                             "body": json.loads(body)})
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/cmmm"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DagsterInstance, str, object]]:
    """The weekly job on the sample with one negative TV spend: the blocking check fails the run."""
    folder = tmp_path_factory.mktemp("bad_spend")
    raw = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")
    raw.loc[BAD_WEEK, "tv_spend"] = -10.0
    raw.to_csv(folder / "weekly.csv", index=False)
    (folder / "config.yaml").write_text(SAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    defs = build_definitions(config_path=str(folder / "config.yaml"), output_dir=str(folder / "out"),
                             warehouse_path=str(folder / "w.duckdb"))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        yield instance, result.run_id, failure


def _context(failed_run: tuple[DagsterInstance, str, object],
             caplog: pytest.LogCaptureFixture | None = None):
    """The sensor's context for the failed run; its log also feeds `caplog` when given."""
    instance, run_id, failure = failed_run
    context = build_run_status_sensor_context(sensor_name="cmmm_run_failure_alert", dagster_event=failure,
                                              dagster_instance=instance,
                                              dagster_run=instance.get_run_by_id(run_id)).for_run_failure()
    if caplog is not None:
        caplog.handler.setLevel(logging.DEBUG)
        context.log.setLevel(logging.DEBUG)
        context.log.addHandler(caplog.handler)
    return context


def test_the_alert_names_the_run_the_failed_check_and_its_rows(failed_run) -> None:
    alert = failure_alert(_context(failed_run))
    assert alert.run_id == failed_run[1] and alert.job == JOB_NAME
    # The blocking cause first; the sample's old weeks also trip the (non-blocking) freshness warning.
    assert [(c.check, c.severity) for c in alert.checks] == [("raw_spend.raw_spend_quality", "ERROR"),
                                                             ("raw_spend.raw_spend_newest_week", "WARN")]
    week = str(pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")["week"][BAD_WEEK])
    assert "tv_spend" in alert.checks[0].description and week in alert.checks[0].description
    assert [s.step for s in alert.steps] == ["raw_spend_raw_spend_quality"]
    assert alert.text().startswith(f"cmmm run {alert.run_id} of job {JOB_NAME} failed: ")


def test_the_sensor_logs_and_posts_the_alert_to_the_webhook(failed_run, webhook: Webhook,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, webhook.url)
    tick = run_failure_alert(_context(failed_run, caplog))
    assert isinstance(tick, SkipReason)
    assert tick.skip_message == (f"alerted run {failed_run[1]} of {JOB_NAME}: rule spend-non-negative, data-too-old "
                                 "(raw_spend.raw_spend_quality, raw_spend.raw_spend_newest_week); posted to "
                                 "$CMMM_ALERT_WEBHOOK: HTTP 204")
    assert len(webhook.requests) == 1
    request = webhook.requests[0]
    assert request["path"] == "/hooks/cmmm" and request["content_type"] == "application/json"
    body = request["body"]
    assert body["run_id"] == failed_run[1] and body["job"] == JOB_NAME
    assert body["failed_checks"][0]["check"] == "raw_spend.raw_spend_quality"
    assert "tv_spend" in body["failed_checks"][0]["description"]
    assert body["failed_steps"] == [{"step": "raw_spend_raw_spend_quality", "error": body["failed_steps"][0]["error"]}]
    assert body["text"].startswith(f"cmmm run {failed_run[1]} of job {JOB_NAME} failed")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"cmmm run {failed_run[1]}") and r.levelno == logging.ERROR
               for m, r in zip(messages, caplog.records))
    assert any("posted to CMMM_ALERT_WEBHOOK: HTTP 204" in m for m in messages)
    assert webhook.url not in " ".join(messages)  # the URL may carry a token: never logged


def test_an_unreachable_or_failing_webhook_is_logged_not_raised(failed_run, webhook: Webhook,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    webhook.status = 500
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, webhook.url)
    run_failure_alert(_context(failed_run, caplog))
    assert len(webhook.requests) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("could not post the alert" in m and "the webhook answered HTTP 500" in m for m in errors)

    monkeypatch.setenv(ALERT_WEBHOOK_ENV, "http://127.0.0.1:9/closed")  # discard port: connection refused
    caplog.clear()
    run_failure_alert(_context(failed_run, caplog))
    assert any("could not post the alert" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_without_a_webhook_the_alert_is_only_logged(failed_run, webhook: Webhook,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    tick = run_failure_alert(_context(failed_run, caplog))
    assert tick.skip_message.endswith("; logged only ($CMMM_ALERT_WEBHOOK not set)")
    assert webhook.requests == []
    assert [r.levelno for r in caplog.records if "cmmm run" in r.getMessage()] == [logging.ERROR]


def test_the_daemon_tick_says_what_it_alerted(failed_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through Dagster's own sensor evaluation (what the daemon runs): the tick is a skip whose message
    names the run and the rule, not an empty "0 runs requested"."""
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    instance, run_id, _ = failed_run
    start = json.dumps({"__class__": "RunStatusSensorCursor", "record_id": 0, "record_timestamp": None,
                        "update_timestamp": None})
    tick = run_failure_alert.evaluate_tick(build_sensor_context(instance=instance, cursor=start))
    assert tick.run_requests == []
    assert tick.skip_message.startswith(f"alerted run {run_id} of {JOB_NAME}: rule spend-non-negative")
    assert json.loads(tick.cursor)["record_id"] > 0


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SECRET = "T0K3N-s3cr3t-9f8e7d"
LEAKY_URLS = {
    "no scheme": f"hooks.example.com/services/T000/B000/{SECRET}",
    "bad port": f"http://127.0.0.1:notaport/services/{SECRET}",
    "unreachable loopback port": f"http://127.0.0.1:{_closed_port()}/services/{SECRET}",
    "control characters": f"http://127.0.0.1:{_closed_port()}/services/{SECRET} x\r\nX-Injected: 1",
    "non-ASCII character": f"http://127.0.0.1:{_closed_port()}/services/{SECRET}é",
    "unknown scheme": f"gopher://hooks.example.com/{SECRET}",
    "unbalanced IPv6 bracket": f"http://[::1/services/{SECRET}",
    "token in the query": f"http://127.0.0.1:{_closed_port()}/hook?token={SECRET}&x=1",
}


@pytest.mark.parametrize("url", list(LEAKY_URLS.values()), ids=list(LEAKY_URLS))
def test_the_webhook_url_never_appears_in_logs_ticks_or_errors(failed_run, url: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, url)
    context = _context(failed_run, caplog)
    with pytest.raises(Exception) as raised:  # what urllib itself says about this URL
        post_alert(url, failure_alert(context), timeout=2.0)
    tick = run_failure_alert(context)  # must not raise
    logged = [r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(m.startswith(f"could not post the alert for run {failed_run[1]} to CMMM_ALERT_WEBHOOK: ")
               for m in errors)
    assert "posting to $CMMM_ALERT_WEBHOOK failed: " in tick.skip_message
    for text in [*logged, tick.skip_message]:
        assert SECRET not in text and url not in text
    if url == LEAKY_URLS["no scheme"]:
        assert SECRET in str(raised.value)  # urllib does quote it: the sensor must not pass it on


def test_mask_url_removes_every_part_of_the_url() -> None:
    url = f"https://user:{SECRET}@hooks.example.com/services/{SECRET}?token={SECRET}#frag-{SECRET}"
    masked = mask_url(f"failed for {url} (path /services/{SECRET}, host hooks.example.com)", url)
    assert SECRET not in masked and "hooks.example.com" not in masked
    assert masked.startswith("failed for <CMMM_ALERT_WEBHOOK> (path ")
    assert mask_url("could not connect (ConnectionRefusedError: Connection refused)", url) == \
        "could not connect (ConnectionRefusedError: Connection refused)"


# --- The schedule and the data-arrival sensor ---------------------------------------------------------

AUTOMATION = [SCHEDULE_NAME, DATA_SENSOR_NAME, FRESHNESS_SENSOR_NAME]


def _statuses(defs: Definitions) -> dict[str, str]:
    out = {s.name: s.default_status.value for s in defs.schedules}
    out.update({s.name: s.default_status.value for s in defs.sensors})
    return out


def test_without_cmmm_config_nothing_starts_by_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    defs = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(tmp_path / "w.duckdb"))
    statuses = _statuses(defs)
    assert {name: statuses[name] for name in AUTOMATION} == dict.fromkeys(AUTOMATION, "STOPPED")
    assert statuses["cmmm_run_failure_alert"] == "RUNNING"  # it starts no run
    assert "bundled sample" in defs.resolve_schedule_def(SCHEDULE_NAME).description
    assert "bundled sample" in defs.resolve_sensor_def(DATA_SENSOR_NAME).description


def test_with_cmmm_config_the_schedule_and_sensors_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(SAMPLE_CONFIG))
    defs = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(tmp_path / "w.duckdb"))
    statuses = _statuses(defs)
    assert {name: statuses[name] for name in AUTOMATION} == dict.fromkeys(AUTOMATION, "RUNNING")
    assert defs.resolve_schedule_def(SCHEDULE_NAME).default_status is DefaultScheduleStatus.RUNNING
    assert defs.resolve_sensor_def(DATA_SENSOR_NAME).default_status is DefaultSensorStatus.RUNNING
    assert "bundled sample" not in defs.resolve_schedule_def(SCHEDULE_NAME).description


def test_the_arrival_decision(tmp_path: Path) -> None:
    data = tmp_path / "weekly.csv"
    missing = decide_arrival(data, None, None)
    assert not missing.run and missing.sha256 == MISSING and "not found" in missing.reason
    data.write_text("week,x\n2026-11-23,1\n", encoding="utf-8")
    sha = file_sha256(data)
    first = decide_arrival(data, None, None)
    assert first.run and first.sha256 == sha and "never processed" in first.reason
    assert not decide_arrival(data, sha, None).run
    assert not decide_arrival(data, None, sha).run  # the last materialisation already read this content
    data.write_text("week,x\n2026-11-23,1\n2026-11-30,2\n", encoding="utf-8")
    changed = decide_arrival(data, sha, None)
    assert changed.run and changed.sha256 == file_sha256(data) != sha
    assert changed.reason == f"data file weekly.csv changed (sha256 {sha[:12]}… → sha256 {changed.sha256[:12]}…)"


def _project(folder: Path) -> tuple[str, Path]:
    shutil.copyfile(SAMPLE_CONFIG.parent / "weekly.csv", folder / "weekly.csv")
    (folder / "config.yaml").write_text(SAMPLE_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    return str(folder / "config.yaml"), folder / "weekly.csv"


def _sensor_context(instance: DagsterInstance, defs: Definitions, cursor: str | None = None) -> SensorEvaluationContext:
    """What the daemon gives the sensor: the instance, its cursor and the resource it asks for."""
    return build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                resources={"settings": defs.resources["settings"]})


def test_the_data_sensor_starts_a_run_when_the_file_changes(tmp_path: Path) -> None:
    config, data = _project(tmp_path)
    defs = build_definitions(config_path=config, output_dir=str(tmp_path / "out"),
                             warehouse_path=str(tmp_path / "w.duckdb"))
    sensor_def = defs.resolve_sensor_def(DATA_SENSOR_NAME)
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        first = sensor_def.evaluate_tick(_sensor_context(instance, defs))
        (request,) = first.run_requests
        assert request.tags == {TAG_CONFIG_PATH: config, TAG_DATA_SHA256: file_sha256(data),
                                TAG_TRIGGER: "data-arrival", "dagster/sensor_name": DATA_SENSOR_NAME}
        assert first.cursor == file_sha256(data)

        same = sensor_def.evaluate_tick(_sensor_context(instance, defs, first.cursor))
        assert same.run_requests == [] and same.skip_message.startswith("data file weekly.csv unchanged")

        with data.open("a", encoding="utf-8") as handle:
            handle.write("2025-12-29,1500.0,500.0,600.0,90.0,10.0,9000.0\n")
        changed = sensor_def.evaluate_tick(_sensor_context(instance, defs, first.cursor))
        (request,) = changed.run_requests
        assert request.tags[TAG_DATA_SHA256] == file_sha256(data) == changed.cursor != first.cursor


def test_a_run_records_the_config_and_data_hash_and_the_sensor_then_waits(tmp_path: Path) -> None:
    """raw_spend's metadata names the config and the data's hash; a sensor switched on afterwards
    (no cursor) sees that content was already processed and starts nothing."""
    config, data = _project(tmp_path)
    defs = build_definitions(config_path=config, output_dir=str(tmp_path / "out"),
                             warehouse_path=str(tmp_path / "w.duckdb"))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, asset_selection=[AssetKey("raw_spend")],
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("raw_spend")]
        metadata = event.materialization.metadata
        assert metadata["config_path"].value == config
        assert metadata["data_sha256"].value == file_sha256(data)
        tick = defs.resolve_sensor_def(DATA_SENSOR_NAME).evaluate_tick(
            _sensor_context(instance, defs))
        assert tick.run_requests == [] and "unchanged" in tick.skip_message


def test_the_schedule_tags_its_runs_with_the_config_and_data_hash(tmp_path: Path) -> None:
    config, data = _project(tmp_path)
    defs = build_definitions(config_path=config, output_dir=str(tmp_path / "out"),
                             warehouse_path=str(tmp_path / "w.duckdb"))
    schedule_def = defs.resolve_schedule_def(SCHEDULE_NAME)
    assert schedule_def.cron_schedule == "0 6 * * 1" and schedule_def.execution_timezone == "UTC"
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        tick = schedule_def.evaluate_tick(build_schedule_context(instance=instance, resources={"settings": defs.resources["settings"]}))
    (request,) = tick.run_requests
    assert request.tags == {TAG_CONFIG_PATH: config, TAG_DATA_SHA256: file_sha256(data), TAG_TRIGGER: "schedule",
                            "dagster/schedule_name": SCHEDULE_NAME}


def test_the_ui_binds_to_loopback_by_default() -> None:
    from dagster_webserver.cli import dagster_webserver

    host = next(p for p in dagster_webserver.params if p.name == "host")
    assert host.default == "127.0.0.1"
