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

import os
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    DynamicOut,
    DynamicOutput,
    ExecutorDefinition,
    In,
    MaterializeResult,
    OpExecutionContext,
    Out,
    Output,
    asset,
    job,
    multiprocess_executor,
    op,
)

from resources.metadata import OWNERS, markdown_table
from resources.settings import CmmmSettings

MARKETS_JOB = "cmmm_markets"
SUMMARY_ASSET = "markets_summary"
EXECUTOR_ENV = "CMMM_EXECUTOR"
DASK_SCHEDULER_ENV = "CMMM_DASK_SCHEDULER"
MARKET_TAG = "cmmm/market"
STEP_IO = "markets_io"
"""The op job's values (market names, outcomes) are small and pickled to the instance's storage,
which every worker of a cluster shares; the per-market tables stay in each market's warehouse."""


def markets_executor() -> ExecutorDefinition:
    """Multiprocess on one machine (at most one market per core), or the Dask cluster that
    `CMMM_DASK_SCHEDULER` names when `CMMM_EXECUTOR=dask`."""
    if os.environ.get(EXECUTOR_ENV, "").strip().lower() == "dask":
        from dagster_dask import dask_executor

        address = os.environ.get(DASK_SCHEDULER_ENV, "").strip()
        cluster = {"existing": {"address": address}} if address else {"local": {}}
        return dask_executor.configured({"cluster": cluster}, name="dask")
    return multiprocess_executor.configured({"max_concurrent": os.cpu_count() or 1}, name="multiprocess")


@op(out=DynamicOut(str, io_manager_key=STEP_IO), description="One output per market of the config or the export.")
def market_list(context: OpExecutionContext, settings: CmmmSettings) -> Any:
    from cmmm_pipeline.data.markets import export_markets

    data = settings.config.data
    markets = list(data.markets) or export_markets(data.path, data.table, data.market_column or "")
    context.log.info(f"{len(markets)} markets: {', '.join(markets[:20])}{' …' if len(markets) > 20 else ''}")
    for market in markets:
        yield DynamicOutput(market, mapping_key=market.replace("-", "_").replace(".", "_"))


@op(out=Out(dict, io_manager_key=STEP_IO), ins={"market": In(str)},
    description="The market's partition of cmmm_weekly, run in process with every gate.")
def refresh_market(context: OpExecutionContext, settings: CmmmSettings, market: str) -> dict[str, Any]:
    from cmmm_pipeline.run import run_market

    outcome = run_market(settings.config_path, settings.output_dir, settings.warehouse_path(), market, context.instance,
                         tags={MARKET_TAG: market, "cmmm/parent_run": context.run_id})
    if outcome.success:
        context.log.info(f"market {market}: published (run {outcome.run_id})")
    else:
        context.log.error(f"market {market} failed (run {outcome.run_id}):\n{outcome.error}")
    return {"market": market, "success": outcome.success, "run_id": outcome.run_id, "error": outcome.error}


def _pool(settings: CmmmSettings, markets: list[str]) -> dict[str, Any]:
    """Pool the published markets and publish the summary; the metadata shown in the UI."""
    from cmmm_pipeline.markets.summary import publish_summary

    summary = publish_summary(settings.output_dir, settings.warehouse_path(), markets, settings.config.kpi)
    return {
        "markets": len(markets), "published_markets": summary.published,
        "markets_without_publication": ", ".join(summary.missing) or "none",
        "pooled": markdown_table(summary.pooled_table(), digits=3),
        "summary_path": str(summary.report),
    }


@op(ins={"outcomes": In(list)}, description="Pool every market's published ROI and mROI (random effects).")
def pool_markets(context: OpExecutionContext, settings: CmmmSettings, outcomes: list[dict[str, Any]]) -> Output[None]:
    failed = [o for o in outcomes if not o["success"]]
    metadata = _pool(settings, [o["market"] for o in outcomes])
    metadata["failed_markets"] = ", ".join(o["market"] for o in failed) or "none"
    context.log_event(AssetMaterialization(asset_key=SUMMARY_ASSET, metadata=metadata))
    if failed:  # the others published and were pooled; the run says which markets need attention
        from dagster import Failure

        raise Failure(description="\n\n".join(f"market {o['market']}: {o['error']}" for o in failed),
                      metadata={"failed_markets": metadata["failed_markets"]})
    return Output(None)


def build_markets_job(executor: ExecutorDefinition | None = None) -> Any:
    @job(name=MARKETS_JOB, executor_def=executor or markets_executor(),
         description="Every market's weekly refresh in parallel (one step per market), then the pooled summary.",
         tags={"cmmm/kind": "markets"})
    def cmmm_markets() -> None:
        pool_markets(market_list().map(refresh_market).collect())

    return cmmm_markets


@asset(name=SUMMARY_ASSET, group_name="cmmm_markets", kinds={"duckdb", "html"}, owners=OWNERS,
       deps=["robustness_report"])
def markets_summary(context: AssetExecutionContext, settings: CmmmSettings) -> MaterializeResult:
    """Every market's published ROI and marginal ROI pooled across markets: a random-effects
    mean with its interval, the between-market spread (tau, I²) and partially pooled per-market
    estimates. Reads the markets' publications; writes `markets/pooled.csv`, `markets/shrunken.csv`
    and `markets/summary.html`."""
    from cmmm_pipeline.data.markets import export_markets

    data = settings.config.data
    markets = list(data.markets) or export_markets(data.path, data.table, data.market_column or "")
    return MaterializeResult(metadata=_pool(settings, markets))
