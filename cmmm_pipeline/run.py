"""Execute the Definitions' job in process and turn its events into a user-facing outcome.
(Part of the composition root with definitions.py and cli.py.)"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    run_id: str
    error: str
    """One paragraph per failure: the rule, the place and the fix (empty on success)."""
    check_lines: tuple[str, ...]
    summary: str


# Dagster logs every step failure at ERROR with its stack trace; the outcome below already carries
# each failure as a user-facing paragraph, so the console logger only speaks for CRITICAL events.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_pipeline(config_path: str, output_dir: str, warehouse_path: str) -> RunOutcome:
    from dagster import DagsterEventType, DagsterInstance

    from cmmm_pipeline.data import warehouse
    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    defs = build_definitions(config_path=config_path, output_dir=output_dir, warehouse_path=warehouse_path)
    job = defs.resolve_job_def(JOB_NAME)
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG)
    checks, failed_checks = _check_lines(result.get_asset_check_evaluations())
    errors = [_step_error(e) for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    messages = [m for m in (*failed_checks, *errors) if m]
    if result.success and not failed_checks:
        import duckdb

        with duckdb.connect(warehouse_path, read_only=True) as con:
            estimates = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
        return RunOutcome(True, result.run_id, "", tuple(checks), summary_table(estimates))
    return RunOutcome(False, result.run_id, "\n".join(dict.fromkeys(messages)) or "the run failed.",
                      tuple(checks), "")


_OWN_ERRORS = frozenset({"CmmmError", "ConfigError", "DataError", "EstimationError"})
_CHECK_FAILED = "DagsterAssetCheckFailedError"


def _check_lines(evaluations: Iterable[Any]) -> tuple[list[str], list[str]]:
    """One stdout line per check (PASS, or the status and the failed rules), and for every failed
    ERROR-severity check its full message: one paragraph per failed rule."""
    lines: list[str] = []
    failures: list[str] = []
    for evaluation in evaluations:
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        if evaluation.passed:
            lines.append(f"check {name}: PASS")
            continue
        description = (evaluation.description or "").strip()
        blocking = evaluation.severity.value == "ERROR"
        rules = getattr((evaluation.metadata or {}).get("failed_rules"), "value", None)
        summary = f"failed rules: {rules}" if rules else (description.splitlines() or ["failed"])[0]
        lines.append(f"check {name}: {'FAIL' if blocking else evaluation.severity.value} — {summary}")
        if blocking:
            failures.append(f"Check '{name}' failed:\n{description}" if description else f"Check '{name}' failed.")
    return lines, failures


def _step_error(event: object) -> str:
    """The user's exception message (our own errors carry rule, place and fix) without a traceback.
    A blocking check's step failure says nothing its check result has not said: it is left out."""
    error = event.step_failure_data.error  # type: ignore[attr-defined]
    while error is not None:
        if error.cls_name == _CHECK_FAILED:
            return ""
        if error.cls_name in _OWN_ERRORS:
            head, _, rest = error.message.partition(": ")
            return (rest if rest and head.split(".")[-1] == error.cls_name else error.message).strip()
        if error.cause is None:
            first = error.message.strip().splitlines()
            return f"step {event.step_key} failed: {first[0] if first else error.cls_name}"  # type: ignore[attr-defined]
        error = error.cause
    return ""


def summary_table(estimates: pd.DataFrame) -> str:
    """The terminal summary: ROI with interval, p-value and naive ROI per channel and effect."""
    rows = [f"{'channel':<10} {'effect':<9} {'ROI':>7} {'95% interval':>19} {'p-value':>9} {'naive ROI':>10}"]
    for r in estimates.itertuples(index=False):
        naive = "" if pd.isna(r.naive_roi) else f"{r.naive_roi:.3f}"
        rows.append(f"{r.channel:<10} {r.effect:<9} {r.roi:>7.3f} [{r.roi_ci_low:>7.3f}, {r.roi_ci_high:>7.3f}] "
                    f"{r.p_value:>9.2g} {naive:>10}")
    return "\n".join(rows)
