"""The asset-check results of the current run, as the table the publication records (`check_results`),
so the report and the console list every check that did not pass, from the same published run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import DagsterEventType, DagsterInstance

if TYPE_CHECKING:
    import pandas as pd

BEFORE_PUBLICATION = {"dagster/priority": "1"}
"""Op tags of the checks that block nothing: the in-process executor runs a ready step of higher
priority first, so each of them has run before the publishing step (the last asset) starts, and
its result reaches the published `check_results`."""


def run_check_results(instance: DagsterInstance, run_id: str) -> pd.DataFrame:
    """One row per asset-check evaluation recorded so far in run `run_id` (the last one per check)."""
    import pandas as pd

    from cmmm_pipeline.publish.report import CHECK_RESULT_COLUMNS

    rows: dict[tuple[str, str], dict[str, object]] = {}
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        rules = (evaluation.metadata or {}).get("failed_rules")
        asset = evaluation.asset_key.to_user_string()
        rows[(asset, evaluation.check_name)] = {
            "asset": asset, "check": evaluation.check_name, "severity": evaluation.severity.value,
            "passed": bool(evaluation.passed), "failed_rules": str(getattr(rules, "value", rules or "")),
            "description": evaluation.description or ""}
    return pd.DataFrame(list(rows.values()), columns=list(CHECK_RESULT_COLUMNS)).astype(
        {"passed": bool, "asset": str, "check": str, "severity": str, "failed_rules": str, "description": str})
