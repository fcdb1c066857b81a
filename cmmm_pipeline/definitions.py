"""The one Dagster Definitions that the UI, the schedule, the CLI and the tests all run.

Paths come from environment variables when set (shown as such in the UI) and fall back to
working defaults: the bundled sample config and `./cmmm_output/`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from dagster import (
    AssetSelection,
    BetaWarning,
    Definitions,
    DynamicPartitionsDefinition,
    EnvVar,
    FilesystemIOManager,
    JobDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    define_asset_job,
    in_process_executor,
)

from assets.ate_estimates import ate_estimates
from assets.markets import STEP_IO, MarketsExecutor, build_markets_job, markets_summary
from assets.budget_plan import budget_plan
from assets.causal_dag import causal_dag
from assets.raw_spend import raw_spend
from assets.robustness_report import robustness_report
from assets.sensors import build_data_arrival_sensor, build_weekly_schedule, run_failure_alert, sensor_status
from assets.transformed_media import transformed_media
from cmmm_pipeline.core.config import DataConfig
from data_checks.checks import ALL_CHECKS
from data_checks.dag_checks import DAG_CHECKS
from data_checks.diagnostic_checks import DIAGNOSTIC_CHECKS
from data_checks.freshness import FRESHNESS_CHECKS, freshness_checks_sensor, published_freshness_checks
from data_checks.plan_checks import PLAN_CHECKS
from resources.io_manager import StagingIOManager
from resources.settings import CmmmSettings, WarehouseResource

# Dagster rebuilds a sensor with `owners=[]` when it attaches resources to the op job the sensor targets
# (the markets job) and then warns about its own beta parameter on every resolution, in every step process.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer `SensorDefinition\.__init__`",
                        category=BetaWarning)

SAMPLE_CONFIG = Path(__file__).resolve().parent / "sample" / "config.yaml"
DEFAULT_OUTPUT = "cmmm_output"
JOB_NAME = "cmmm_weekly"
MARKET_PARTITIONS = "cmmm_markets"
"""The dynamic partitions of a multi-market export without a static `data.markets` list."""
WAREHOUSE_TAG = "cmmm/warehouse"
"""Run tag naming the warehouse a run writes; `dagster_home/dagster.yaml` limits it to one run in
progress per value, so the schedule, a sensor and a manual launch queue instead of colliding."""


def _setting(env: str, explicit: str | None, default: str) -> str | EnvVar:
    """Explicit argument > environment variable (kept as EnvVar, visible in the UI) > default."""
    if explicit is not None:
        return explicit
    return EnvVar(env) if os.environ.get(env) else default


def market_data(config_path: str) -> DataConfig | None:
    """The config's data section when it models several markets (`data.market_column`). A config
    that does not load gives none here: the run reports its rule paragraphs."""
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.core.loading import load_config

    try:
        data = load_config(config_path).data
    except (CmmmError, OSError):
        return None
    return data if data.market_column is not None else None


def market_partitions(data: DataConfig | None) -> PartitionsDefinition | None:
    """One partition per market: static when the config lists `data.markets`, dynamic otherwise
    (the data-arrival sensor adds markets as they appear)."""
    if data is None:
        return None
    if data.markets:
        return StaticPartitionsDefinition(list(data.markets))
    return DynamicPartitionsDefinition(name=MARKET_PARTITIONS)


def known_markets(data: DataConfig) -> list[str]:
    """The markets when the code loads: the static list, or those in the export (its market
    column only); none when the export cannot be read yet."""
    if data.markets:
        return list(data.markets)
    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.data.ingest import export_markets

    try:
        return export_markets(data.path, data.table, data.market_column or "")
    except (CmmmError, OSError):
        return []


def build_definitions(config_path: str | None = None, output_dir: str | None = None,
                      warehouse_path: str | None = None, markets_executor: MarketsExecutor | None = None) -> Definitions:
    output = output_dir if output_dir is not None else os.environ.get("CMMM_OUTPUT_DIR", DEFAULT_OUTPUT)
    data = market_data(config_path or os.environ.get("CMMM_CONFIG") or str(SAMPLE_CONFIG))
    markets = market_partitions(data)
    database = _setting("CMMM_WAREHOUSE", warehouse_path, str(Path(output) / "cmmm.duckdb"))
    settings = CmmmSettings(config_path=_setting("CMMM_CONFIG", config_path, str(SAMPLE_CONFIG)),
                            output_dir=_setting("CMMM_OUTPUT_DIR", output_dir, DEFAULT_OUTPUT), warehouse=database)
    warehouse = WarehouseResource(database=database, output_dir=_setting("CMMM_OUTPUT_DIR", output_dir, DEFAULT_OUTPUT))
    # Dagster's freshness checks judge time since the last run: their sensor evaluates them, not the job.
    freshness = published_freshness_checks()
    # In process: the run's resources (parsed config, warehouse lock, staging schema) are set up
    # once and serve every step; the lock is what keeps two runs off one warehouse. With markets,
    # each partition's run locks its own market's warehouse, and the queue limits one run per
    # partition (dagster_home/dagster.yaml) instead of one per warehouse.
    summary = [markets_summary] if markets is not None else []
    warehouse_tag = {} if markets is not None else {
        WAREHOUSE_TAG: database.get_value("") if isinstance(database, EnvVar) else database}
    job = define_asset_job(JOB_NAME, selection=AssetSelection.all() - AssetSelection.assets(*summary)
                           - AssetSelection.checks(*freshness),
                           description="Weekly refresh: ingest → transform → DAG → estimates → robustness report"
                                       + (", one market per partition." if markets is not None else "."),
                           executor_def=in_process_executor, run_tags=warehouse_tag)
    steps = [raw_spend, transformed_media, causal_dag, ate_estimates, budget_plan, robustness_report]
    jobs: list = [job]
    resources = {"settings": settings, "duckdb": warehouse, "io_manager": StagingIOManager(database=database)}
    automated = job
    if markets is not None:  # one model per market: every step and its checks run per partition
        steps = [a.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=markets)) for a in steps]
        kind = markets_executor or MarketsExecutor.from_environment()

        def market_job() -> JobDefinition:  # rebuilt in the step's process from the same arguments
            return build_definitions(config_path, output_dir, warehouse_path, kind).resolve_job_def(JOB_NAME)

        # Dask plans the whole graph before it starts: its job names the markets known now.
        static = known_markets(data) if kind is MarketsExecutor.DASK else None
        automated = build_markets_job(market_job, kind, static)
        jobs.append(automated)
        resources[STEP_IO] = FilesystemIOManager()
    dynamic = markets if isinstance(markets, DynamicPartitionsDefinition) else None
    # Schedule and sensors start only when CMMM_CONFIG names a config: never on the sample by surprise.
    return Definitions(
        assets=[*steps, *summary],
        asset_checks=[*ALL_CHECKS, *DAG_CHECKS, *DIAGNOSTIC_CHECKS, *FRESHNESS_CHECKS, *PLAN_CHECKS, *freshness],
        jobs=jobs,
        schedules=[build_weekly_schedule(automated)],
        sensors=[run_failure_alert, build_data_arrival_sensor(automated, dynamic),
                 freshness_checks_sensor(freshness, sensor_status())],
        resources=resources,
    )


defs = build_definitions()
