"""Many markets: the weekly refresh of every market in parallel on Dagster's executors, and the
pooled summary across markets.

- `cmmm_markets` (op job): `market_list` fans out one `refresh_market` step per market (a dynamic
  output); each step runs that market's partition of `cmmm_weekly` in process (every gate, its own
  warehouse and folder, recorded in the instance as the partition's run), then `pool_markets` pools
  what the markets published. The job's executor runs the markets in parallel: Dagster's
  multiprocess executor on one machine, or `dagster-dask` on a cluster (`CMMM_EXECUTOR=dask`,
  docs/operations.md). A market that fails is reported with its rule; the others still publish.
- `markets_summary` (asset): the same pooling, materialised on its own after a backfill of some
  markets from the UI.
"""

import dataclasses
import os
from collections.abc import Callable
from enum import Enum
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    DynamicOut,
    DynamicOutput,
    ExecutorDefinition,
    In,
    JobDefinition,
    MaterializeResult,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    asset,
    job,
    multiprocess_executor,
    op,
)

from cmmm_pipeline.core.heap import STEP_LIBRARIES
from resources.metadata import OWNERS
from resources.runs import MARKET_TAG, PARENT_TAG, QUIET_RUN_CONFIG, market_outcome, market_outcomes
from resources.settings import CmmmSettings

MARKETS_JOB = "cmmm_markets"
SUMMARY_ASSET = "markets_summary"
EXECUTOR_ENV = "CMMM_EXECUTOR"
DASK_SCHEDULER_ENV = "CMMM_DASK_SCHEDULER"
PRELOADED_MODULES = ("cmmm_pipeline.definitions", *STEP_LIBRARIES, "resources.step_preload")
STEP_IO = "markets_io"
"""The op job's values (market names, outcomes) are small and pickled to the instance's storage,
which every worker of a cluster shares; the per-market tables stay in each market's warehouse."""


class MarketsExecutor(Enum):
    """Where the markets' steps run."""

    MULTIPROCESS = "multiprocess"
    """Processes on this machine, at most one market per core."""
    DASK = "dask"
    """The Dask cluster whose scheduler CMMM_DASK_SCHEDULER names (a local one when unset)."""

    @classmethod
    def from_environment(cls) -> "MarketsExecutor":
        value = os.environ.get(EXECUTOR_ENV, "").strip().lower() or cls.MULTIPROCESS.value
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{EXECUTOR_ENV}={value!r} is not an executor: use "
                             f"{' or '.join(k.value for k in cls)}.") from None


def markets_executor(kind: MarketsExecutor | None = None) -> ExecutorDefinition:
    kind = kind or MarketsExecutor.from_environment()
    if kind is MarketsExecutor.DASK:
        from dagster_dask import dask_executor

        address = os.environ.get(DASK_SCHEDULER_ENV, "").strip()
        cluster = {"existing": {"address": address}} if address else {"local": {}}
        return dask_executor.configured({"cluster": cluster}, name="dask")
    # Steps fork from a server that imported the pipeline once: a market's step then costs its
    # compute, not another few seconds of imports (measured in benchmarks/markets_scaling.py).
    return multiprocess_executor.configured(
        {"max_concurrent": os.cpu_count() or 1,
         "start_method": {"forkserver": {"preload_modules": list(PRELOADED_MODULES)}}}, name="multiprocess")


@op(out=DynamicOut(str, io_manager_key=STEP_IO), description="One output per market of the config or the export.")
def market_list(context: OpExecutionContext, settings: CmmmSettings) -> Any:
    from cmmm_pipeline.data.ingest import export_markets

    data = settings.config.data
    markets = list(data.markets) or export_markets(data.path, data.table, data.market_column or "")
    context.log.info(f"{len(markets)} markets: {', '.join(markets[:20])}{' …' if len(markets) > 20 else ''}")
    for market, key in step_names(markets).items():
        yield DynamicOutput(market, mapping_key=key)


def step_names(markets: list[str]) -> dict[str, str]:
    """A step-key-safe name per market (letters, digits, `_`), made unique when two markets differ
    only in `-` or `.` (`de-1` and `de_1`)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for market in markets:
        base = name = market.replace("-", "_").replace(".", "_")
        suffix = 0
        while name in taken:  # a suffixed name can itself be a market's: count on until it is free
            suffix += 1
            name = f"{base}_{suffix}"
        names[market] = name
        taken.add(name)
    return names


MarketJob = Callable[[], JobDefinition]
"""Builds the partitioned `cmmm_weekly` job: handed in by the Definitions, so this module never
imports them (the Definitions import it)."""


def refresh_ops(market_job: MarketJob) -> tuple[Any, Callable[[str, str], Any]]:
    """The market step for a dynamic fan-out, and a factory of one step per named market for
    executors that plan the whole graph before they start (Dask)."""
    @op(name="refresh_market", out=Out(dict, io_manager_key=STEP_IO), ins={"market": In(str)},
        description="The market's partition of cmmm_weekly, run in process with every gate.")
    def refresh_market(context: OpExecutionContext, market: str) -> dict[str, Any]:
        return _refresh(context, market_job, market)

    def refresh_one_market(market: str, name: str) -> Any:
        @op(name=f"refresh_market_{name}", out=Out(dict, io_manager_key=STEP_IO),
            description=f"Market {market}'s partition of cmmm_weekly, run in process with every gate.")
        def refresh(context: OpExecutionContext) -> dict[str, Any]:
            return _refresh(context, market_job, market)

        return refresh

    return refresh_market, refresh_one_market


def _refresh(context: OpExecutionContext, market_job: MarketJob, market: str) -> dict[str, Any]:
    """One market's partition run, in process and recorded in the instance as that partition's run."""
    result = market_job().execute_in_process(instance=context.instance, partition_key=market, raise_on_error=False,
                                             run_config=QUIET_RUN_CONFIG,
                                             tags={MARKET_TAG: market, PARENT_TAG: context.run_id})
    outcome = market_outcome(context.instance, result.run_id)
    if outcome.success:
        context.log.info(f"market {market}: published (run {outcome.run_id})")
    else:
        context.log.error(f"market {market} failed (run {outcome.run_id}):\n{outcome.error}")
    return dataclasses.asdict(outcome)


def _pool(settings: CmmmSettings, markets: list[str], run_id: str,
          outcomes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pool the published markets and publish the summary; the metadata shown in the UI."""
    from cmmm_pipeline.markets.pooling import pooled_markdown
    from cmmm_pipeline.markets.summary import MarketRun, publish_summary

    runs = tuple(MarketRun(o["market"], o["success"], o["run_id"], o["error"]) for o in outcomes or [])
    summary = publish_summary(settings.output_dir, settings.warehouse_path(), markets, settings.config.kpi, run_id,
                              runs)
    return {
        "markets": len(markets), "published_markets": summary.published,
        "markets_without_publication": ", ".join(summary.missing) or "none",
        "pooled": MetadataValue.md(pooled_markdown(summary.pooled)) if not summary.pooled.empty
        else "no market published yet",
        "summary_path": str(summary.report),
    }


@op(ins={"refreshed": In(Nothing)}, description="Pool every market's published ROI and mROI (random effects).")
def pool_markets(context: OpExecutionContext, settings: CmmmSettings) -> Output[None]:
    # The markets' outcomes come from their runs in the instance, not from step values: every
    # executor records runs there, while not every one hands fanned-in values on (Dask does not).
    outcomes = [dataclasses.asdict(o) for o in market_outcomes(context.instance, context.run_id)]
    failed = [o for o in outcomes if not o["success"]]
    metadata = _pool(settings, [o["market"] for o in outcomes], context.run_id, outcomes)
    metadata["failed_markets"] = ", ".join(o["market"] for o in failed) or "none"
    context.log_event(AssetMaterialization(asset_key=SUMMARY_ASSET, metadata=metadata))
    if failed:  # the others published and were pooled; the run says which markets need attention
        from dagster import Failure

        raise Failure(description="\n\n".join(f"market {o['market']}: {o['error']}" for o in failed),
                      metadata={"failed_markets": metadata["failed_markets"]})
    return Output(None)


def build_markets_job(market_job: MarketJob, kind: MarketsExecutor | None = None,
                      markets: list[str] | None = None) -> Any:
    """Dynamic fan-out (new markets join without a code reload), or, on Dask, whose graphs are
    static, one step per market of `markets`."""
    kind = kind or MarketsExecutor.from_environment()
    refresh_market, refresh_one_market = refresh_ops(market_job)
    description = "Every market's weekly refresh in parallel (one step per market), then the pooled summary."
    if kind is MarketsExecutor.DASK:
        steps = [refresh_one_market(m, name) for m, name in step_names(markets or []).items()]

        @job(name=MARKETS_JOB, executor_def=markets_executor(kind), description=description,
             tags={"cmmm/kind": "markets"})
        def cmmm_markets_static() -> None:
            pool_markets([step() for step in steps])

        return cmmm_markets_static

    @job(name=MARKETS_JOB, executor_def=markets_executor(kind), description=description,
         tags={"cmmm/kind": "markets"})
    def cmmm_markets() -> None:
        pool_markets(market_list().map(refresh_market).collect())

    return cmmm_markets


@asset(name=SUMMARY_ASSET, group_name="cmmm_markets", kinds={"csv", "html"}, owners=OWNERS,
       deps=["robustness_report"])
def markets_summary(context: AssetExecutionContext, settings: CmmmSettings) -> MaterializeResult:
    """Every market's published ROI and marginal ROI pooled across markets: a random-effects
    mean with its interval, the between-market spread (tau, I²) and partially pooled per-market
    estimates. Reads the markets' publications; writes `markets/pooled.csv`, `markets/shrunken.csv`
    and `markets/summary.html`."""
    from cmmm_pipeline.data.ingest import export_markets

    data = settings.config.data
    markets = list(data.markets) or export_markets(data.path, data.table, data.market_column or "")
    return MaterializeResult(metadata=_pool(settings, markets, context.run_id))
