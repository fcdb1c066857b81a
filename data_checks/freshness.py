"""Is this week's data new? A stale export (the same file three weeks running) passes every
data-quality rule and publishes last week's answer as this week's; these checks say so.

- `raw_spend_newest_week` (WARN, never blocks): the data must hold a week newer than the newest week
  of the last published run, and the newest week must be at most `checks.max_data_age_days` old.
- Dagster freshness checks on every published asset (`freshness_check` on each card): an asset not
  refreshed by the weekly run shows as overdue in the asset graph. Their sensor evaluates them.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    asset_check,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

from cmmm_pipeline.core.errors import CmmmError
from resources.check_results import BEFORE_PUBLICATION
from resources.settings import CmmmSettings, WarehouseResource
from resources.values import DataFrame

if TYPE_CHECKING:
    import pandas as pd

WEEK_COLUMN = "week"
PUBLISHED_ASSETS = ("raw_spend", "transformed_media", "causal_dag", "ate_estimates", "robustness_report")
"""Every asset of the weekly job: each one's tables are published together."""
FRESHNESS_MAX_LAG = dt.timedelta(days=8)
"""A published asset older than this is overdue: one weekly refresh plus a day's grace, whether the
run came from the Monday schedule or from the data-arrival sensor on another day."""
FRESHNESS_SENSOR_NAME = "cmmm_freshness_checks_sensor"


@dataclass(frozen=True)
class FreshnessVerdict:
    """How new the data's newest week is, against the last published run and today's date."""

    newest_week: dt.date
    published_newest_week: dt.date | None
    """None before the first publication."""
    today: dt.date
    max_age_days: int

    @property
    def age_days(self) -> int:
        return (self.today - self.newest_week).days

    @property
    def not_newer(self) -> bool:
        return self.published_newest_week is not None and self.newest_week <= self.published_newest_week

    @property
    def too_old(self) -> bool:
        return self.age_days > self.max_age_days

    @property
    def passed(self) -> bool:
        return not (self.not_newer or self.too_old)

    def problems(self, source: str) -> tuple[str, ...]:
        """One rule paragraph per problem ("[rule] place: detail Fix: fix"); `source` names the data."""
        found = []
        if self.not_newer:
            found.append(str(CmmmError(
                "data-not-newer", source,
                f"the newest week in the data is {self.newest_week}, not newer than {self.published_newest_week}, "
                "the newest week of the last published run: this run would publish last run's weeks again.",
                "check that this week's export landed (same file, new rows); a restated past week alone "
                "needs no action.")))
        if self.too_old:
            found.append(str(CmmmError(
                "data-too-old", source,
                f"the newest week in the data is {self.newest_week}, {self.age_days} days before {self.today} "
                f"(checks.max_data_age_days: {self.max_age_days}).",
                "check the export job that writes this file, or raise checks.max_data_age_days if the data "
                "arrive later by design.")))
        return tuple(found)

    def message(self, source: str) -> str:
        problems = self.problems(source)
        if problems:
            return "\n".join(problems)
        against = (f"newer than {self.published_newest_week}, the last published run's newest week"
                   if self.published_newest_week is not None else "no earlier publication to compare with")
        return (f"The newest week is {self.newest_week} ({self.age_days} days old, at most "
                f"{self.max_age_days} allowed); {against}.")


def assess_freshness(weeks: pd.Series, published_newest_week: dt.date | None, today: dt.date,
                     max_age_days: int) -> FreshnessVerdict:
    """The verdict for a run whose data hold `weeks` (any date-like values; at least one)."""
    import pandas as pd

    newest = pd.Timestamp(pd.to_datetime(weeks).max()).date()
    return FreshnessVerdict(newest, published_newest_week, today, max_age_days)


def published_newest_week(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The newest week of the last published run's raw table, or None before the first publication."""
    import pandas as pd

    from cmmm_pipeline.data import warehouse

    if "raw_spend" not in warehouse.table_names(con, warehouse.PUBLISHED):
        return None
    value = con.execute(f'SELECT max("{WEEK_COLUMN}") FROM "{warehouse.PUBLISHED}"."raw_spend"').fetchall()[0][0]
    return None if value is None else pd.Timestamp(value).date()


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@asset_check(asset="raw_spend", op_tags=BEFORE_PUBLICATION, description="Warns when the data hold no week newer than the last published run's "
             "newest week, or when the newest week is older than `checks.max_data_age_days`.")
def raw_spend_newest_week(settings: CmmmSettings, duckdb: WarehouseResource, raw_spend: DataFrame) -> AssetCheckResult:
    """WARN (never blocks): a stale export is published with a warning the UI, the CLI and the alert show."""
    config = settings.config
    with duckdb.get_connection() as con:
        last_published = published_newest_week(con)
    verdict = assess_freshness(raw_spend[WEEK_COLUMN], last_published, _today(), config.checks.max_data_age_days)
    source = f"data file {config.data.path.name}"
    failed = [rule for rule, hit in (("data-not-newer", verdict.not_newer), ("data-too-old", verdict.too_old)) if hit]
    return AssetCheckResult(
        passed=verdict.passed, severity=AssetCheckSeverity.WARN, description=verdict.message(source),
        metadata={
            "newest_week": MetadataValue.text(str(verdict.newest_week)),
            "published_newest_week": MetadataValue.text(str(verdict.published_newest_week or "none yet")),
            "age_days": verdict.age_days,
            "max_data_age_days": verdict.max_age_days,
            "failed_rules": MetadataValue.text(", ".join(failed) or "none"),
        })


def published_freshness_checks(assets: Sequence[str] = PUBLISHED_ASSETS) -> list[AssetChecksDefinition]:
    """Dagster's last-update freshness checks: every published asset must have been materialised within
    FRESHNESS_MAX_LAG, else its check fails (WARN) and the asset graph shows it overdue.

    Dagster 1.12+ marks these builders as superseded by `FreshnessPolicy`; the checks still work, are
    evaluated by their sensor and are what the asset graph shows as check status, so the notice is silenced
    here rather than printed on every code-location load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is superseded.*")
        return list(build_last_update_freshness_checks(
            assets=list(assets), lower_bound_delta=FRESHNESS_MAX_LAG, severity=AssetCheckSeverity.WARN))


def freshness_checks_sensor(checks: Sequence[AssetChecksDefinition], status: DefaultSensorStatus,
                            tags: dict[str, str] | None = None) -> SensorDefinition:
    """The sensor that evaluates the freshness checks (a check-only run when one is due)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is superseded.*")
        return build_sensor_for_freshness_checks(freshness_checks=list(checks), name=FRESHNESS_SENSOR_NAME,
                                                 default_status=status, tags=tags)


FRESHNESS_CHECKS = [raw_spend_newest_week]
