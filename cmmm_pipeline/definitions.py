"""The one Dagster Definitions that the UI, the schedule, the CLI and the tests all run.

Paths come from environment variables when set (shown as such in the UI) and fall back to
working defaults: the bundled sample config and `./cmmm_output/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    EnvVar,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from assets.ate_estimates import ate_estimates
from assets.causal_dag import causal_dag
from assets.raw_spend import raw_spend
from assets.resources import CmmmSettings, WarehouseResource
from assets.robustness_report import robustness_report
from assets.sensors import run_failure_alert
from assets.transformed_media import transformed_media
from data_checks.checks import ALL_CHECKS
from data_checks.dag_checks import DAG_CHECKS

SAMPLE_CONFIG = Path(__file__).resolve().parent / "sample" / "config.yaml"
DEFAULT_OUTPUT = "cmmm_output"
JOB_NAME = "cmmm_weekly"


def _setting(env: str, explicit: str | None, default: str) -> str | EnvVar:
    """Explicit argument > environment variable (kept as EnvVar, visible in the UI) > default."""
    if explicit is not None:
        return explicit
    return EnvVar(env) if os.environ.get(env) else default


def build_definitions(config_path: str | None = None, output_dir: str | None = None,
                      warehouse_path: str | None = None) -> Definitions:
    output = output_dir if output_dir is not None else os.environ.get("CMMM_OUTPUT_DIR", DEFAULT_OUTPUT)
    settings = CmmmSettings(config_path=_setting("CMMM_CONFIG", config_path, str(SAMPLE_CONFIG)),
                            output_dir=_setting("CMMM_OUTPUT_DIR", output_dir, DEFAULT_OUTPUT))
    warehouse = WarehouseResource(database=_setting("CMMM_WAREHOUSE", warehouse_path,
                                                 str(Path(output) / "cmmm.duckdb")))
    job = define_asset_job(JOB_NAME, selection=AssetSelection.all(),
                           description="Weekly refresh: ingest → transform → DAG → estimates → robustness report.",
                           executor_def=in_process_executor)
    schedule = ScheduleDefinition(name="cmmm_weekly_schedule", job=job, cron_schedule="0 6 * * 1",
                                  execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
                                  description="Every Monday 06:00 UTC, after the weekly spend export lands.")
    return Definitions(
        assets=[raw_spend, transformed_media, causal_dag, ate_estimates, robustness_report],
        asset_checks=[*ALL_CHECKS, *DAG_CHECKS],
        jobs=[job],
        schedules=[schedule],
        sensors=[run_failure_alert],
        resources={"settings": settings, "duckdb": warehouse},
    )


defs = build_definitions()
