"""The one Dagster Definitions that the UI, the schedule, the CLI and the tests all run.

Paths come from environment variables when set (shown as such in the UI) and fall back to
working defaults: the bundled sample config and `./cmmm_output/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import (
    AssetSelection,
    Definitions,
    EnvVar,
    define_asset_job,
    in_process_executor,
)

from assets.ate_estimates import ate_estimates
from assets.budget_plan import budget_plan
from assets.causal_dag import causal_dag
from assets.raw_spend import raw_spend
from assets.robustness_report import robustness_report
from assets.sensors import build_data_arrival_sensor, build_weekly_schedule, run_failure_alert, sensor_status
from assets.transformed_media import transformed_media
from data_checks.checks import ALL_CHECKS
from data_checks.dag_checks import DAG_CHECKS
from data_checks.diagnostic_checks import DIAGNOSTIC_CHECKS
from data_checks.freshness import FRESHNESS_CHECKS, freshness_checks_sensor, published_freshness_checks
from data_checks.plan_checks import PLAN_CHECKS
from resources.io_manager import StagingIOManager
from resources.settings import CmmmSettings, WarehouseResource

SAMPLE_CONFIG = Path(__file__).resolve().parent / "sample" / "config.yaml"
DEFAULT_OUTPUT = "cmmm_output"
JOB_NAME = "cmmm_weekly"
WAREHOUSE_TAG = "cmmm/warehouse"
"""Run tag naming the warehouse a run writes; `dagster_home/dagster.yaml` limits it to one run in
progress per value, so the schedule, a sensor and a manual launch queue instead of colliding."""


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
    database = _setting("CMMM_WAREHOUSE", warehouse_path, str(Path(output) / "cmmm.duckdb"))
    warehouse = WarehouseResource(database=database, output_dir=_setting("CMMM_OUTPUT_DIR", output_dir, DEFAULT_OUTPUT))
    # Dagster's freshness checks judge time since the last run: their sensor evaluates them, not the job.
    freshness = published_freshness_checks()
    # In process: the run's resources (parsed config, warehouse lock, staging schema) are set up
    # once and serve every step; the lock is what keeps two runs off one warehouse.
    job = define_asset_job(JOB_NAME, selection=AssetSelection.all() - AssetSelection.checks(*freshness),
                           description="Weekly refresh: ingest → transform → DAG → estimates → robustness report.",
                           executor_def=in_process_executor,
                           run_tags={WAREHOUSE_TAG: database.get_value("") if isinstance(database, EnvVar)
                                     else database})
    # Schedule and sensors start only when CMMM_CONFIG names a config: never on the sample by surprise.
    return Definitions(
        assets=[raw_spend, transformed_media, causal_dag, ate_estimates, budget_plan, robustness_report],
        asset_checks=[*ALL_CHECKS, *DAG_CHECKS, *DIAGNOSTIC_CHECKS, *FRESHNESS_CHECKS, *PLAN_CHECKS, *freshness],
        jobs=[job],
        schedules=[build_weekly_schedule(job)],
        sensors=[run_failure_alert, build_data_arrival_sensor(job), freshness_checks_sensor(freshness, sensor_status())],
        resources={"settings": settings, "duckdb": warehouse, "io_manager": StagingIOManager(database=database)},
    )


defs = build_definitions()
