"""Alerting: every failed run is logged with its failed steps and errors and, when
CMMM_ALERT_WEBHOOK is set, posted as JSON to that URL (Slack-style `text` plus structured fields).

A webhook that cannot be reached is logged as an error on the sensor tick and not retried: the
failure stays visible in the run's page and the sensor's tick log, and later failures still alert.
"""


import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dagster import DagsterEventType, DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

ALERT_WEBHOOK_ENV = "CMMM_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 10.0
MAX_ERROR_CHARS = 600
"""Step errors are cut to this length in the alert; the full traceback is in the run's logs."""


@dataclass(frozen=True)
class StepFailure:
    step: str
    error: str


@dataclass(frozen=True)
class CheckFailure:
    check: str
    """asset.check_name"""
    severity: str
    description: str


@dataclass(frozen=True)
class FailureAlert:
    """What an on-call engineer needs from a failed run, without opening the UI."""

    run_id: str
    job: str
    message: str
    steps: tuple[StepFailure, ...]
    checks: tuple[CheckFailure, ...]

    def text(self) -> str:
        lines = [f"cmmm run {self.run_id} of job {self.job} failed: {self.message}"]
        lines += [f"- check {c.check} ({c.severity}): {c.description}" for c in self.checks]
        lines += [f"- step {s.step}: {s.error}" for s in self.steps]
        return "\n".join(lines)

    def payload(self) -> dict[str, object]:
        return {"text": self.text(), "run_id": self.run_id, "job": self.job, "message": self.message,
                "failed_checks": [{"check": c.check, "severity": c.severity, "description": c.description}
                                  for c in self.checks],
                "failed_steps": [{"step": s.step, "error": s.error} for s in self.steps]}


def _short(text: str) -> str:
    """One line, at most MAX_ERROR_CHARS."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 1] + "…"


def _root_message(error: Any) -> str:
    """The innermost cause of a step's error (dagster's SerializableErrorInfo): the user's own error
    rather than the framework's wrapper around it."""
    if error is None:
        return "unknown error"
    while error.cause is not None:
        error = error.cause
    return _short(error.message)


def failure_alert(context: RunFailureSensorContext) -> FailureAlert:
    """The alert for the failed run in `context`: run, job, failure message, the asset checks that
    failed (with their rule messages) and each failed step's root error."""
    run = context.dagster_run
    steps = tuple(StepFailure(str(e.step_key), _root_message(e.step_failure_data.error))
                  for e in context.get_step_failure_events())
    checks = []
    for record in context.instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if not evaluation.passed:
            checks.append(CheckFailure(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}",
                                       evaluation.severity.value, _short(evaluation.description or "failed")))
    return FailureAlert(run.run_id, run.job_name, _short(context.failure_event.message or "run failed"), steps,
                        tuple(checks))


def post_alert(url: str, alert: FailureAlert, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> int:
    """POST the alert as JSON; returns the HTTP status (raises on a network error or an HTTP error)."""
    body = json.dumps(alert.payload()).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "cmmm-pipeline"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
        return int(response.status)


@run_failure_sensor(name="cmmm_run_failure_alert", default_status=DefaultSensorStatus.RUNNING,
                    description="Alerts on any failed run: an error log line with the failed steps, and a JSON POST "
                                f"to ${ALERT_WEBHOOK_ENV} when that variable is set.")
def run_failure_alert(context: RunFailureSensorContext) -> None:
    alert = failure_alert(context)
    context.log.error(alert.text())
    url = os.environ.get(ALERT_WEBHOOK_ENV, "").strip()
    if not url:
        return
    try:
        status = post_alert(url, alert)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        context.log.error(f"could not post the alert for run {alert.run_id} to {ALERT_WEBHOOK_ENV}: {exc}")
        return
    context.log.info(f"alert for run {alert.run_id} posted to {ALERT_WEBHOOK_ENV}: HTTP {status}")
