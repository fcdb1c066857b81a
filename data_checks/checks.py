"""Dagster asset checks that run the Great Expectations suites. Blocking: a failure stops every
downstream asset, so nothing is estimated or published from data that broke a rule."""


from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check
from dagster_duckdb import DuckDBResource

from assets.common import markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline import warehouse
from data_checks.gx_runner import SuiteResult
from data_checks.suites import validate_raw_spend


def _result(result: SuiteResult) -> AssetCheckResult:
    metadata = {"expectations": result.evaluated, "failed": len(result.failures),
                "summary": MetadataValue.text(result.message())}
    if result.failures:
        metadata["failures"] = markdown_table(result.failures_table())
    return AssetCheckResult(passed=result.success, severity=AssetCheckSeverity.ERROR, metadata=metadata,
                            description=result.message())


@asset_check(asset="raw_spend", blocking=True)
def raw_spend_quality(settings: CmmmSettings, duckdb: DuckDBResource) -> AssetCheckResult:
    """Great Expectations suite on the raw table: history length, one row per week, no nulls,
    spend >= 0, no all-zero channel, finite KPI."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
    return _result(validate_raw_spend(raw, config))


ALL_CHECKS = [raw_spend_quality]
