"""Asset checks that diagnose the model rather than gate it (WARN, never blocking):

- `missing_drivers`: a trend, seasonality or strong autocorrelation in the KPI's residual, given
  all its parents in the DAG, that no node of the DAG explains; the description names the fix
  ("add trend to controls") in one line, the metadata carries the statistics.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from cmmm_pipeline.core.status import Status
from resources.check_results import BEFORE_PUBLICATION
from resources.metadata import markdown_table
from resources.values import CausalDag


def _shown(value: object) -> float:
    """Two significant digits: what a p-value or an autocorrelation of one series supports."""
    return float(f"{float(value):.2g}")


@asset_check(asset="causal_dag", op_tags=BEFORE_PUBLICATION)
def missing_drivers(causal_dag: CausalDag) -> AssetCheckResult:
    """The KPI regressed on all its parents in the DAG; a trend or yearly seasonality left in the
    residual (F tests on AR-prewhitened columns, Bonferroni-adjusted, level 0.01) or a lag-1
    autocorrelation above 0.5 is a driver the DAG leaves out. WARN: it names the fix and blocks
    nothing. The `causal_dag` step runs the diagnosis and publishes its table; this check judges it."""
    from cmmm_pipeline.dag.diagnostics import Driver

    table = causal_dag.missing_drivers
    warned = table[table["status"] != Status.PASS.value]
    by_driver = table.set_index("driver")
    return AssetCheckResult(
        passed=warned.empty, severity=AssetCheckSeverity.WARN, description=causal_dag.missing_drivers_summary,
        metadata={
            "missing_drivers": MetadataValue.text(", ".join(warned["driver"]) or "none"),
            "trend_p_adjusted": MetadataValue.float(_shown(by_driver.loc[Driver.TREND.value, "p_adjusted"])),
            "seasonality_p_adjusted": MetadataValue.float(_shown(by_driver.loc[Driver.SEASONALITY.value,
                                                                              "p_adjusted"])),
            "residual_lag1_autocorrelation": MetadataValue.float(_shown(by_driver.loc[Driver.AUTOCORRELATION.value,
                                                                                     "statistic"])),
            "diagnostics": markdown_table(table[["driver", "status", "tested", "statistic", "p_adjusted",
                                                 "effect_size", "message"]]),
        })


DIAGNOSTIC_CHECKS = [missing_drivers]
