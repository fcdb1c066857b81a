"""Dagster asset checks that run the Great Expectations suites. Blocking: a failure stops every
downstream asset, so nothing is estimated or published from data that broke a rule.

Each result carries, as metadata, the failed rules with their column, failing week dates, values
and fix, so the Dagster UI and the CLI show the same refusal."""

from __future__ import annotations

from collections.abc import Iterator

from dagster import AssetCheckResult, AssetCheckSeverity, Failure, MetadataValue, asset_check

from data_checks.gx_runner import SuiteResult
from resources.metadata import markdown_table
from resources.settings import CmmmSettings
from resources.values import DataFrame, TransformedMedia


def check_result(result: SuiteResult) -> AssetCheckResult:
    """The suite's outcome as an ERROR-severity check result (blocking when the check is)."""
    metadata = {
        "expectations": result.evaluated,
        "failed": len(result.failures),
        "failed_rules": MetadataValue.text(result.failed_rules() or "none"),
        "summary": MetadataValue.text(result.message()),
    }
    if result.failures:
        metadata["failures"] = markdown_table(result.failures_table())
    return AssetCheckResult(passed=result.success, severity=AssetCheckSeverity.ERROR, metadata=metadata,
                            description=result.message())


CHECK_FAILURE_KEY = "check"
"""Metadata key of the step failure a blocking check raises: the check it stands for."""


def gated(check: str, result: AssetCheckResult) -> Iterator[AssetCheckResult]:
    """Record the result; when it blocks (failed, ERROR), fail the step with the rule paragraph as the
    failure's description, so the run page is headed by the rule (rule, place, rows, fix) rather
    than Dagster's "1 blocking asset check failed" and a stack trace."""
    yield result
    if not result.passed and result.severity == AssetCheckSeverity.ERROR:
        rules = result.metadata.get("failed_rules")
        raise Failure(description=result.description or f"check {check} failed",
                      metadata={CHECK_FAILURE_KEY: check, "failed_rules": getattr(rules, "value", rules) or ""})


@asset_check(asset="raw_spend", blocking=True)
def raw_spend_quality(settings: CmmmSettings, raw_spend: DataFrame) -> Iterator[AssetCheckResult]:
    """Great Expectations suite on the raw weekly table: columns present and numeric, no empty cells
    or infinities, spend >= 0, no all-zero or constant channel, KPI finite (and > 0 if configured),
    no wild KPI or spend week beyond its robust bound, one row per week, no gaps in the weekly
    calendar, at least `checks.min_weeks` weeks."""
    from data_checks.suites import validate_raw_spend

    yield from gated("raw_spend.raw_spend_quality", check_result(validate_raw_spend(raw_spend, settings.config)))


@asset_check(asset="transformed_media", blocking=True)
def transformed_media_quality(settings: CmmmSettings, transformed_media: TransformedMedia) -> Iterator[AssetCheckResult]:
    """Great Expectations suite on the model table: a column for every graph node, numeric and
    finite, transformed media >= 0, no constant channel or control, one row per week, enough weeks."""
    from data_checks.suites import validate_transformed_media

    yield from gated("transformed_media.transformed_media_quality",
                     check_result(validate_transformed_media(transformed_media.transformed_media, settings.config)))


ALL_CHECKS = [raw_spend_quality, transformed_media_quality]
