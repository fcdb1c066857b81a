"""Asset checks on the causal DAG, each a Great Expectations suite on a table the `causal_dag`
asset wrote:

- `dag_overlap` (blocking, ERROR): every stratum of every identifiable channel's adjustment set
  has enough weeks and spread in spend; a thin stratum stops the estimates, naming the channel
  and the strata.
- `dag_independence` (blocking, WARN by default): every implication of the DAG survives its tests.
  WARN reports without stopping anything; `checks.independence_blocking: true` raises it to ERROR,
  and then a rejected implication stops the estimates. (Dagster's `blocking` is fixed when the
  check is defined; only an ERROR result blocks, so the severity is the switch.)
- `dag_identification` (WARN): a channel whose effect the DAG does not identify; it gets no
  estimate, and the other channels go on.
"""


from enum import Enum

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check
from dagster_duckdb import DuckDBResource

from assets.common import markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.dag.audit import overlap_thresholds
from cmmm_pipeline.dag.independence import rejection_message
from cmmm_pipeline.dag.overlap import OverlapThresholds, overlap_message
from cmmm_pipeline.data import warehouse
from data_checks.checks import check_result
from data_checks.gx_runner import Rule, SuiteResult, run_suite


class DagRule(Enum):
    """The DAG rules, by the names messages, metadata and docs use."""

    OVERLAP_MIN_WEEKS = "overlap-min-weeks"
    OVERLAP_MIN_SPREAD = "overlap-min-spread"
    OVERLAP_LOW_SPEND_WEEKS = "overlap-low-spend-weeks"
    OVERLAP_HIGH_SPEND_WEEKS = "overlap-high-spend-weeks"
    IMPLICATION_HOLDS = "dag-implication-holds"
    CHANNEL_IDENTIFIABLE = "channel-identifiable"


_OVERLAP_FIX = ("vary the channel's spend across comparable weeks (or run a lift test); coarser strata "
                "(checks.overlap_bins) or a lower checks.overlap_min_spread accept more extrapolation.")


def overlap_rules(thresholds: OverlapThresholds) -> list[Rule]:
    import great_expectations as gx

    e = gx.expectations
    return [
        Rule(DagRule.OVERLAP_MIN_WEEKS.value, e.ExpectColumnValuesToBeBetween(column="weeks",
                                                                             min_value=thresholds.min_weeks),
             f"each stratum needs at least {thresholds.min_weeks} weeks (checks.overlap_min_weeks)", _OVERLAP_FIX),
        Rule(DagRule.OVERLAP_MIN_SPREAD.value, e.ExpectColumnValuesToBeBetween(column="spread",
                                                                              min_value=thresholds.min_spread),
             f"spend in each stratum must vary at least {thresholds.min_spread} times as much (coefficient of "
             "variation) as over all weeks (checks.overlap_min_spread)", _OVERLAP_FIX),
        Rule(DagRule.OVERLAP_LOW_SPEND_WEEKS.value,
             e.ExpectColumnValuesToBeBetween(column="low_spend_weeks", min_value=1),
             "each stratum needs weeks at or below the channel's median spend", _OVERLAP_FIX),
        Rule(DagRule.OVERLAP_HIGH_SPEND_WEEKS.value,
             e.ExpectColumnValuesToBeBetween(column="high_spend_weeks", min_value=1),
             "each stratum needs weeks above the channel's median spend", _OVERLAP_FIX),
    ]


def validate_overlap(table: pd.DataFrame, thresholds: OverlapThresholds) -> SuiteResult:
    """The overlap table against the configured thresholds; failing rows are named 'channel stratum k/n'."""
    return run_suite("overlap", table, overlap_rules(thresholds), row_labels=table["label"], row_noun="stratum")


def independence_rules(alpha: float) -> list[Rule]:
    import great_expectations as gx

    return [Rule(DagRule.IMPLICATION_HOLDS.value,
                 gx.expectations.ExpectColumnValuesToBeBetween(column="p_adjusted", min_value=alpha),
                 f"each implication of the DAG must hold in the data (adjusted p >= {alpha}, "
                 "checks.independence_alpha)",
                 "add the missing edge (or common cause) between the two nodes, or explain why the DAG is right.")]


def validate_independence(table: pd.DataFrame, alpha: float) -> SuiteResult:
    labels = table["implication"].astype(str) + " [" + table["test"].astype(str) + "]"
    return run_suite("dag_tests", table, independence_rules(alpha), row_labels=labels, row_noun="test")


def identification_rules() -> list[Rule]:
    import great_expectations as gx

    return [Rule(DagRule.CHANNEL_IDENTIFIABLE.value,
                 gx.expectations.ExpectColumnValuesToBeInSet(column="identifiable", value_set=[True]),
                 "each channel's effect must be identifiable by adjustment under the DAG",
                 "measure the hidden confounder and add it as a control, run a lift test, or revise the DAG.",
                 values_label=None)]


def validate_identification(table: pd.DataFrame) -> SuiteResult:
    labels = table["channel"].astype(str) + " (" + table["effect"].astype(str) + ")"
    return run_suite("identification", table, identification_rules(), row_labels=labels, row_noun="effect")


def _failed_where(suite: SuiteResult) -> str:
    """`rule (failing rows)` per failed rule: the one-line summary the CLI prints for a failed check."""
    return ", ".join(f"{f.rule} ({', '.join(f.example_rows) or f.column})" for f in suite.failures) or "none"


def _with(suite: SuiteResult, severity: AssetCheckSeverity, description: str,
          extra: dict[str, object]) -> AssetCheckResult:
    """`check_result`'s metadata, with the failed rules named by their rows, this check's severity,
    description and extra metadata."""
    result = check_result(suite)
    metadata = {**result.metadata, "failed_rules": MetadataValue.text(_failed_where(suite)), **extra}
    return AssetCheckResult(passed=result.passed, severity=severity, metadata=metadata, description=description)


@asset_check(asset="causal_dag", blocking=True)
def dag_overlap(settings: CmmmSettings, duckdb: DuckDBResource) -> AssetCheckResult:
    """Overlap (positivity): per identifiable channel, the weeks cut into strata of its adjustment set
    (propensity-score quantiles) must each hold `checks.overlap_min_weeks` weeks, spend spread of at
    least `checks.overlap_min_spread` (CV relative to all weeks), and both low- and high-spend weeks."""
    config = settings.load()
    with duckdb.get_connection() as con:
        table = warehouse.read_table(con, "overlap")
    suite = validate_overlap(table, overlap_thresholds(config))
    shown = table[["channel", "stratum", "weeks", "spend_min", "spend_max", "cv", "spread", "low_spend_weeks",
                   "high_spend_weeks", "ok", "reason"]]
    message = overlap_message(table)
    return _with(suite, AssetCheckSeverity.ERROR, message if suite.success else
                 f"{message}\n{suite.message()}", {"strata": markdown_table(shown),
                                                    "thin_strata": int((~table["ok"].astype(bool)).sum())})


@asset_check(asset="causal_dag", blocking=True)
def dag_independence(settings: CmmmSettings, duckdb: DuckDBResource) -> AssetCheckResult:
    """The conditional independences the DAG implies, tested on the data (Fisher z and chi-squared
    on prewhitened residuals, Holm-adjusted). WARN by default; ERROR, which blocks the estimates,
    with `checks.independence_blocking: true`."""
    config = settings.load()
    with duckdb.get_connection() as con:
        table = warehouse.read_table(con, "dag_tests")
    suite = validate_independence(table, config.checks.independence_alpha)
    severity = AssetCheckSeverity.ERROR if config.checks.independence_blocking else AssetCheckSeverity.WARN
    rejected = table[table["rejected"].astype(bool)]
    shown = rejected[["implication", "test", "statistic", "p_value", "p_adjusted"]]
    return _with(suite, severity, rejection_message(table), {
        "tests": len(table), "implications": int(table["implication"].nunique()),
        "rejected_implications": int(rejected["implication"].nunique()),
        "blocking": MetadataValue.bool(config.checks.independence_blocking),
        **({"rejected": markdown_table(shown)} if len(rejected) else {})})


@asset_check(asset="causal_dag")
def dag_identification(duckdb: DuckDBResource) -> AssetCheckResult:
    """Every channel's effect identifiable by adjustment under the DAG (latent nodes included). A
    channel that is not gets no estimate, with the reason; the others go on."""
    with duckdb.get_connection() as con:
        table = warehouse.read_table(con, "identification")
    suite = validate_identification(table)
    missing = table[~table["identifiable"].astype(bool)]
    description = ("Every channel's effect is identified by adjustment." if missing.empty else
                   " ".join(f"{r.channel} ({r.effect}): {r.reason}" for r in missing.itertuples()))
    return _with(suite, AssetCheckSeverity.WARN, description,
                 {"identification": markdown_table(table[["channel", "effect", "identifiable", "reason"]])})


DAG_CHECKS = [dag_overlap, dag_independence, dag_identification]
