"""The run-failure alert, on a real failed run of the weekly job (a negative spend trips the
blocking data-quality check): the log line, and the JSON posted to a local webhook."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from assets.sensors import ALERT_WEBHOOK_ENV, failure_alert, run_failure_alert
from cmmm_pipeline.definitions import JOB_NAME, SAMPLE_CONFIG, build_definitions

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
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
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


def _context(failed_run: tuple[DagsterInstance, str, object],  # noqa: ANN202 - dagster's context type
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


def test_the_alert_names_the_run_the_failed_check_and_its_rows(failed_run) -> None:  # noqa: ANN001
    alert = failure_alert(_context(failed_run))
    assert alert.run_id == failed_run[1] and alert.job == JOB_NAME
    assert [c.check for c in alert.checks] == ["raw_spend.raw_spend_quality"]
    assert alert.checks[0].severity == "ERROR"
    week = str(pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")["week"][BAD_WEEK])
    assert "tv_spend" in alert.checks[0].description and week in alert.checks[0].description
    assert [s.step for s in alert.steps] == ["raw_spend_raw_spend_quality"]
    assert alert.text().startswith(f"cmmm run {alert.run_id} of job {JOB_NAME} failed: ")


def test_the_sensor_logs_and_posts_the_alert_to_the_webhook(failed_run, webhook: Webhook,  # noqa: ANN001
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, webhook.url)
    run_failure_alert(_context(failed_run, caplog))
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


def test_an_unreachable_or_failing_webhook_is_logged_not_raised(failed_run, webhook: Webhook,  # noqa: ANN001
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    webhook.status = 500
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, webhook.url)
    run_failure_alert(_context(failed_run, caplog))
    assert len(webhook.requests) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("could not post the alert" in m and "HTTP Error 500" in m for m in errors)

    monkeypatch.setenv(ALERT_WEBHOOK_ENV, "http://127.0.0.1:9/closed")  # discard port: connection refused
    caplog.clear()
    run_failure_alert(_context(failed_run, caplog))
    assert any("could not post the alert" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_without_a_webhook_the_alert_is_only_logged(failed_run, webhook: Webhook,  # noqa: ANN001
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    run_failure_alert(_context(failed_run, caplog))
    assert webhook.requests == []
    assert [r.levelno for r in caplog.records if "cmmm run" in r.getMessage()] == [logging.ERROR]
