"""Execute the Definitions' jobs and turn their events into a user-facing outcome (the outcomes
themselves are read in resources/runs.py). Part of the composition root with definitions.py and cli.py."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from resources.runs import (  # noqa: F401 - the outcome types and tables are this module's API too
    QUIET_RUN_CONFIG,
    MarketOutcome,
    MarketsOutcome,
    RunOutcome,
    _step_error,
    market_outcomes,
    outcome_of,
    pooled_summary_table,
    summary_table,
)


def run_pipeline(config_path: str, output_dir: str, warehouse_path: str) -> RunOutcome:
    from dagster import DagsterInstance

    from cmmm_pipeline.core.heap import freeze_step_libraries
    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    defs = build_definitions(config_path=config_path, output_dir=output_dir, warehouse_path=warehouse_path)
    job = defs.resolve_job_def(JOB_NAME)
    freeze_step_libraries()
    # With DAGSTER_HOME set, the run is recorded in that instance: the UI's run history shows it.
    with (DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else
          DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}})) as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG)
    return outcome_of(result, output_dir, warehouse_path)


def run_market(config_path: str, output_dir: str, warehouse_path: str, market: str, instance: Any,
               tags: dict[str, str] | None = None) -> RunOutcome:
    """One market's partition of the weekly job, in process, recorded in `instance`; its outcome
    names the market's own folder and warehouse."""
    from cmmm_pipeline.core.heap import freeze_step_libraries
    from cmmm_pipeline.data.markets import market_folder, market_warehouse
    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    job = build_definitions(config_path=config_path, output_dir=output_dir,
                            warehouse_path=warehouse_path).resolve_job_def(JOB_NAME)
    freeze_step_libraries()  # preloaded by the process server: this only freezes them
    result = job.execute_in_process(instance=instance, partition_key=market, raise_on_error=False,
                                    run_config=QUIET_RUN_CONFIG, tags=tags)
    return outcome_of(result, str(market_folder(output_dir, market)), str(market_warehouse(warehouse_path, market)))


NO_CAPTURE = {"compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                                "class": "NoOpComputeLogManager"}}
"""Instance setting for market runs: no stdout/stderr capture. Each market's step runs a whole
partition run inside it, and nested captures of one process's file descriptors can hang a long-lived
worker (seen on Dask after a few markets: the capture's `tail` never exits). Steps log through
Dagster's structured log instead, which the UI shows in full."""


def markets_job(config_path: str, output_dir: str, warehouse_path: str, executor: str) -> Any:
    """The `cmmm_markets` job for these paths: Dagster's executors rebuild it from this function and
    its arguments in every step process (or cluster worker), whatever their environment holds."""
    from assets.markets import MarketsExecutor
    from cmmm_pipeline.definitions import build_definitions

    return build_definitions(config_path=config_path, output_dir=output_dir, warehouse_path=warehouse_path,
                             markets_executor=MarketsExecutor(executor)).resolve_job_def("cmmm_markets")


def run_markets(config_path: str, output_dir: str, warehouse_path: str) -> MarketsOutcome:
    """Every market of the export, in parallel on the job's executor (CMMM_EXECUTOR: multiprocess by
    default), then pooled. Steps run in their own processes, so the run is recorded in a persistent
    instance: DAGSTER_HOME's, or a temporary one."""
    import tempfile
    from contextlib import ExitStack

    from dagster import DagsterInstance, build_reconstructable_job, execute_job

    from assets.markets import MarketsExecutor
    from cmmm_pipeline.markets.summary import MARKETS_DIR

    with ExitStack() as stack:
        if os.environ.get("DAGSTER_HOME"):
            instance = stack.enter_context(DagsterInstance.get())
        else:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="cmmm-instance-"))
            instance = stack.enter_context(DagsterInstance.local_temp(home, overrides=NO_CAPTURE))
        job = build_reconstructable_job("cmmm_pipeline.run", "markets_job", reconstructable_args=(
            config_path, output_dir, warehouse_path, MarketsExecutor.from_environment().value))
        result = stack.enter_context(execute_job(job, instance=instance, run_config=QUIET_RUN_CONFIG,
                                                 raise_on_error=False))
        markets = tuple(market_outcomes(instance, result.run_id))
        failed = {m.market for m in markets if not m.success}
        errors = [e for e in (_step_error(ev) for ev in result.all_events
                              if ev.event_type_value == "STEP_FAILURE" and ev.step_key == "market_list") if e]
        pooled_csv = os.path.join(output_dir, MARKETS_DIR, "pooled.csv")
        pooled = pd.read_csv(pooled_csv) if os.path.isfile(pooled_csv) else pd.DataFrame()
        if result.success and not markets and not errors:
            errors = ["no market ran: the export lists none, or the executor did not start their steps."]
        if not result.success and not failed and not errors:
            errors = ["the markets run failed outside any market; see its logs in the Dagster UI."]
        return MarketsOutcome(result.run_id, markets, pooled, os.path.join(output_dir, MARKETS_DIR, "summary.html"),
                              "\n".join(errors))
