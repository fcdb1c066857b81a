"""Automation of the weekly job, and alerting.

- `cmmm_weekly_schedule` (Monday 06:00 UTC) and `cmmm_data_arrival_sensor` (a run when the configured
  data file's content changes; cursor = its SHA-256) start the job. Both are STOPPED by default unless
  CMMM_CONFIG is set, so the bundled sample never runs on its own. Every run they request is tagged with
  the config path and the data file's hash.
- `cmmm_run_failure_alert`: every failed run is logged with its failed checks and steps and, when
  CMMM_ALERT_WEBHOOK is set, posted as JSON to that URL (Slack-style `text` plus structured fields).
  The tick says what it alerted. It starts no run, so it is on by default.

The webhook URL often carries a token: it never appears in a log line, a tick or an exception text
(errors are described by their kind, and any trace of the URL is masked). A webhook that cannot be
reached is logged as an error on the sensor tick and not retried: later failures still alert.
"""


import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    DagsterEventType,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    schedule,
    sensor,
)

from resources.settings import CmmmSettings

if TYPE_CHECKING:
    from dagster import DynamicPartitionsDefinition
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

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
    checks.sort(key=lambda c: c.severity != "ERROR")  # the blocking cause first, warnings after
    return FailureAlert(run.run_id, run.job_name, _short(context.failure_event.message or "run failed"), steps,
                        tuple(checks))


def post_alert(url: str, alert: FailureAlert, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> int:
    """POST the alert as JSON; returns the HTTP status (raises on a network error or an HTTP error).
    The exceptions urllib raises may quote the URL: describe them with `describe_post_error`."""
    body = json.dumps(alert.payload()).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "cmmm-pipeline"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


URL_MASK = f"<{ALERT_WEBHOOK_ENV}>"
_MIN_MASKED_PART = 6
"""URL parts shorter than this (`https`, `:8080`, `hooks`) are too common to mask and carry no secret."""


def mask_url(text: str, url: str) -> str:
    """`text` with the URL and each of its parts (host, path, query, user info, fragment, and every
    path or query segment) replaced by a placeholder: whatever was quoted, the token is gone."""
    parts = {url, url.strip()}
    scheme = ""
    try:
        split = urllib.parse.urlsplit(url.strip())
        scheme = split.scheme
        parts |= {split.netloc, split.path, split.query, split.fragment, split.netloc.rpartition("@")[0],
                  split.path.lstrip("/")}
    except ValueError:
        pass
    parts |= set(re.split(r"[/?&#=@:\s]+", url))
    parts |= {urllib.parse.quote(p, safe="") for p in list(parts)} | {repr(p)[1:-1] for p in list(parts)}
    parts.discard(scheme)
    for part in sorted((p for p in parts if len(p) >= _MIN_MASKED_PART), key=len, reverse=True):
        text = text.replace(part, URL_MASK)
    return text


def describe_post_error(exc: BaseException, url: str) -> str:
    """What went wrong posting to the webhook, from the error's kind and codes only (urllib's own texts
    quote the URL for a missing scheme, a control character or a non-ASCII character); masked as a
    last guard."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"the webhook answered HTTP {exc.code}"
    elif isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError):
        text = f"no answer within {WEBHOOK_TIMEOUT_SECONDS:.0f} s"
    elif isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, OSError):
        reason = exc.reason
        text = f"could not connect ({type(reason).__name__}: {reason.strerror or 'no detail'})"
    elif isinstance(exc, TimeoutError):
        text = f"no answer within {WEBHOOK_TIMEOUT_SECONDS:.0f} s"
    elif isinstance(exc, (ValueError, urllib.error.URLError, http.client.InvalidURL)):
        text = (f"the URL was refused ({type(exc).__name__}): it must be a complete http:// or https:// URL "
                "with a valid host and port and no spaces, control or non-ASCII characters")
    elif isinstance(exc, OSError):
        text = f"could not connect ({type(exc).__name__}: {exc.strerror or 'no detail'})"
    else:
        text = f"the post failed ({type(exc).__name__})"
    return mask_url(text, url)


def _rules(alert: FailureAlert) -> list[str]:
    """The rule names (`[rule]`) the failed checks and steps quote, in order, without repeats."""
    found = re.findall(r"\[([a-z][a-z0-9-]*)\]", " ".join([*(c.description for c in alert.checks),
                                                            *(s.error for s in alert.steps)]))
    return list(dict.fromkeys(found))


def tick_summary(alert: FailureAlert, delivery: str) -> str:
    """The one line the sensor's tick shows: which run was alerted, for what, and where it went."""
    rules = _rules(alert)
    checks = [c.check for c in alert.checks]
    if rules:
        why = f"rule {', '.join(rules)}" + (f" ({', '.join(checks)})" if checks else "")
    elif checks:
        why = f"failed check {', '.join(checks)}"
    elif alert.steps:
        why = f"failed step {', '.join(s.step for s in alert.steps)}"
    else:
        why = alert.message
    return _short(f"alerted run {alert.run_id} of {alert.job}: {why}; {delivery}")


@run_failure_sensor(name="cmmm_run_failure_alert", default_status=DefaultSensorStatus.RUNNING,
                    description="Alerts on any failed run: an error log line with the failed checks and steps, and a "
                                f"JSON POST to ${ALERT_WEBHOOK_ENV} when that variable is set. Each tick says which "
                                "run it alerted and for which rule. Starts no run, so it is on by default.")
def run_failure_alert(context: RunFailureSensorContext) -> SkipReason:
    """Returns a SkipReason on purpose: the tick then reads "alerted run X: rule ..." instead of a
    bare "0 runs requested" (a run-status sensor requests no run)."""
    alert = failure_alert(context)
    context.log.error(alert.text())
    url = os.environ.get(ALERT_WEBHOOK_ENV, "").strip()
    if not url:
        return SkipReason(tick_summary(alert, f"logged only (${ALERT_WEBHOOK_ENV} not set)"))
    try:
        status = post_alert(url, alert)
    except Exception as exc:  # noqa: BLE001 - any failure to post is reported, never raised with the URL in it
        reason = describe_post_error(exc, url)
        context.log.error(f"could not post the alert for run {alert.run_id} to {ALERT_WEBHOOK_ENV}: {reason}")
        return SkipReason(tick_summary(alert, f"posting to ${ALERT_WEBHOOK_ENV} failed: {reason}"))
    context.log.info(f"alert for run {alert.run_id} posted to {ALERT_WEBHOOK_ENV}: HTTP {status}")
    return SkipReason(tick_summary(alert, f"posted to ${ALERT_WEBHOOK_ENV}: HTTP {status}"))


# --- Starting the job: the weekly schedule and the data-arrival sensor ----------------------------

CONFIG_ENV = "CMMM_CONFIG"
SCHEDULE_NAME = "cmmm_weekly_schedule"
DATA_SENSOR_NAME = "cmmm_data_arrival_sensor"
WEEKLY_CRON = "0 6 * * 1"
DATA_SENSOR_INTERVAL_SECONDS = 300
TAG_CONFIG_PATH = "cmmm/config_path"
TAG_DATA_SHA256 = "cmmm/data_sha256"
TAG_TRIGGER = "cmmm/trigger"
MISSING = "missing"
"""The data hash recorded when the data file does not exist (the run then fails with its rule)."""


def automation_enabled() -> bool:
    """True when CMMM_CONFIG names a config: only then do the schedule and sensors start by default."""
    return bool(os.environ.get(CONFIG_ENV, "").strip())


def schedule_status() -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if automation_enabled() else DefaultScheduleStatus.STOPPED


def sensor_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if automation_enabled() else DefaultSensorStatus.STOPPED


def _sample_note() -> str:
    return ("" if automation_enabled() else
            f" Stopped by default: ${CONFIG_ENV} is not set, so a run would use the bundled sample.")


HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's content, read in chunks (bounded memory for any export size)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_hash(path: Path) -> str:
    """The data file's SHA-256, or MISSING when there is no such file."""
    return file_sha256(path) if path.is_file() else MISSING


def run_tags(config_path: str, sha256: str, trigger: str) -> dict[str, str]:
    """Tags on every run the schedule or the sensor requests: which config and which data."""
    return {TAG_CONFIG_PATH: config_path, TAG_DATA_SHA256: sha256, TAG_TRIGGER: trigger}


@dataclass(frozen=True)
class ArrivalDecision:
    """Whether the data file's content is new since the last run the sensor knows of."""

    sha256: str
    run: bool
    reason: str


def decide_arrival(data_path: Path, cursor: str | None, last_materialized_sha256: str | None) -> ArrivalDecision:
    """New content → run. The baseline is the sensor's cursor, else the hash the latest `raw_spend`
    materialisation recorded (so switching the sensor on does not re-run unchanged data), else none:
    data never processed → run."""
    name = data_path.name
    if not data_path.is_file():
        return ArrivalDecision(MISSING, False, f"data file {name} not found at {data_path}: waiting for it")
    sha = file_sha256(data_path)
    baseline = cursor or last_materialized_sha256
    if sha == baseline:
        return ArrivalDecision(sha, False, f"data file {name} unchanged (sha256 {sha[:12]}…)")
    before = f"sha256 {baseline[:12]}…" if baseline else "never processed"
    return ArrivalDecision(sha, True, f"data file {name} changed ({before} → sha256 {sha[:12]}…)")


def _last_materialized_sha256(context: SensorEvaluationContext) -> str | None:
    event = context.instance.get_latest_materialization_event(AssetKey("raw_spend"))
    materialization = event.asset_materialization if event is not None else None
    value = materialization.metadata.get("data_sha256") if materialization is not None else None
    return getattr(value, "value", value) if value is not None else None


def build_weekly_schedule(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    @schedule(cron_schedule=WEEKLY_CRON, job=job, name=SCHEDULE_NAME, execution_timezone="UTC",
              default_status=schedule_status(),
              description="Every Monday 06:00 UTC, after the weekly spend export lands. Runs are tagged with "
                          "the config path and the data file's SHA-256." + _sample_note())
    def weekly_schedule(context: ScheduleEvaluationContext, settings: CmmmSettings) -> RunRequest:
        data_path = settings.config.data.path
        return RunRequest(tags=run_tags(settings.config_path, data_hash(data_path), "schedule"))

    return weekly_schedule


def new_markets(context: SensorEvaluationContext, settings: CmmmSettings,
                markets: "DynamicPartitionsDefinition") -> list[str]:
    """Markets of the export that are not yet partitions (read from the market column only)."""
    from cmmm_pipeline.data.ingest import export_markets

    data = settings.config.data
    known = set(context.instance.get_dynamic_partitions(markets.name or ""))
    return [m for m in export_markets(data.path, data.table, data.market_column or "") if m not in known]


def build_data_arrival_sensor(job: Any, markets: "DynamicPartitionsDefinition | None" = None) -> SensorDefinition:
    """With dynamic market partitions, a market that appears in the export is added as a partition
    in the same tick that starts the run which models it."""
    @sensor(name=DATA_SENSOR_NAME, job=job, minimum_interval_seconds=DATA_SENSOR_INTERVAL_SECONDS,
            default_status=sensor_status(),
            description="Starts the weekly job when the configured data file's content changes (cursor: its "
                        f"SHA-256; checked every {DATA_SENSOR_INTERVAL_SECONDS // 60} minutes)"
                        + ("; adds a partition for every new market." if markets is not None else ".")
                        + _sample_note())
    def data_arrival(context: SensorEvaluationContext, settings: CmmmSettings) -> SensorResult | SkipReason:
        data_path = settings.config.data.path
        decision = decide_arrival(data_path, context.cursor, _last_materialized_sha256(context))
        if not decision.run:
            return SkipReason(decision.reason)
        added = new_markets(context, settings, markets) if markets is not None else []
        context.update_cursor(decision.sha256)
        context.log.info(decision.reason + (f"; new markets: {', '.join(added)}" if added else ""))
        return SensorResult(run_requests=[RunRequest(tags=run_tags(settings.config_path, decision.sha256,
                                                                   "data-arrival"))],
                            dynamic_partitions_requests=[markets.build_add_request(added)] if added else [])

    return data_arrival
