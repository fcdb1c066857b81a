"""Execute the Definitions' job in process and turn its events into a user-facing outcome.
(Part of the composition root with definitions.py and cli.py.)"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    run_id: str
    error: str
    """One paragraph per failure: the rule, the place and the fix (empty on success)."""
    check_lines: tuple[str, ...]
    summary: str


QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_pipeline(config_path: str, output_dir: str, warehouse_path: str) -> RunOutcome:
    from dagster import DagsterEventType, DagsterInstance

    from cmmm_pipeline import warehouse
    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    defs = build_definitions(config_path=config_path, output_dir=output_dir, warehouse_path=warehouse_path)
    job = defs.resolve_job_def(JOB_NAME)
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG)
    checks = []
    failed_checks = []
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        status = "PASS" if evaluation.passed else evaluation.severity.value
        description = evaluation.description or ""
        checks.append(f"check {name}: {status}" + ("" if evaluation.passed else f" — {description}"))
        if not evaluation.passed and evaluation.severity.value == "ERROR":
            failed_checks.append(f"Check '{name}' failed: {description}")
    errors = [_step_error(e) for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    messages = [m for m in (*failed_checks, *errors) if m]
    if result.success and not failed_checks:
        import duckdb

        with duckdb.connect(warehouse_path, read_only=True) as con:
            estimates = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
        return RunOutcome(True, result.run_id, "", tuple(checks), summary_table(estimates))
    return RunOutcome(False, result.run_id, "\n".join(dict.fromkeys(messages)) or "the run failed.",
                      tuple(checks), "")


def _step_error(event: object) -> str:
    """The user's exception message (our own errors carry rule, place and fix) without a traceback."""
    error = event.step_failure_data.error  # type: ignore[attr-defined]
    while error is not None:
        if error.cls_name and error.cls_name.endswith("Error") and error.cls_name in {
                "CmmmError", "ConfigError", "DataError", "EstimationError"}:
            return error.message.split(": ", 1)[-1].strip() if error.message.startswith(error.cls_name) \
                else error.message.strip()
        if error.cause is None:
            return f"{event.step_key}: {error.message.strip()}"  # type: ignore[attr-defined]
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
