"""Asset checks on the causal DAG, each a Great Expectations suite on a table the `causal_dag`
asset wrote:

- `dag_overlap` (blocking): per identifiable channel, enough variation left after its adjustment
  set, and in every stratum of it. A channel that fails is withheld (WARN: no estimate, its reason
  published) and the others go on; only when every channel fails is it an ERROR that stops the run.
- `dag_independence` (blocking, WARN by default): every implication of the DAG survives its tests.
  WARN reports without stopping anything; `checks.independence_blocking: true` raises it to ERROR,
  and then a rejected implication stops the estimates. (Dagster's `blocking` is fixed when the
  check is defined; only an ERROR result blocks, so the severity is the switch.)
- `dag_identification` (WARN): a channel whose effect the DAG does not identify; it gets no
  estimate, and the other channels go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from data_checks.checks import check_result, gated
from data_checks.gx_runner import Rule, SuiteResult, run_suite
from resources.check_results import BEFORE_PUBLICATION
from resources.metadata import markdown_table
from resources.settings import CmmmSettings
from resources.values import CausalDag

if TYPE_CHECKING:
    import pandas as pd

    from cmmm_pipeline.dag.overlap import OverlapThresholds


class DagRule(Enum):
    """The DAG rules, by the names messages, metadata and docs use."""

    OVERLAP_MIN_WEEKS = "overlap-min-weeks"
    OVERLAP_MIN_SPREAD = "overlap-min-spread"
    OVERLAP_RESIDUAL_VARIATION = "overlap-residual-variation"
    IMPLICATION_HOLDS = "dag-implication-holds"
    CHANNEL_IDENTIFIABLE = "channel-identifiable"


_OVERLAP_FIX = ("the channel is withheld, the others are estimated. Vary the channel's spend across comparable "
                "weeks (or run a lift test); lower checks.overlap_min_spread / overlap_min_residual_share only "
                "knowingly: the thresholds are calibrated to refuse few identifiable channels.")


def overlap_rules(thresholds: OverlapThresholds) -> list[Rule]:
    import great_expectations as gx

    e = gx.expectations
    return [
        Rule(DagRule.OVERLAP_MIN_WEEKS.value, e.ExpectColumnValuesToBeBetween(column="weeks",
                                                                             min_value=thresholds.min_weeks),
             f"each stratum needs at least {thresholds.min_weeks} weeks (checks.overlap_min_weeks)", _OVERLAP_FIX),
        Rule(DagRule.OVERLAP_MIN_SPREAD.value, e.ExpectColumnValuesToBeBetween(column="spread_upper",
                                                                              min_value=thresholds.min_spread),
             f"the channel's media in each stratum must vary at least {thresholds.min_spread} times as much (SD) "
             f"as over all weeks, up to its sampling error (the spread's {thresholds.confidence:.0%} upper bound; "
             "checks.overlap_min_spread)", _OVERLAP_FIX),
        Rule(DagRule.OVERLAP_RESIDUAL_VARIATION.value,
             e.ExpectColumnValuesToBeBetween(column="residual_share_upper", min_value=thresholds.min_residual_share),
             f"the channel's media must keep at least {thresholds.min_residual_share} of its SD after regressing it "
             f"on its adjustment set, up to its sampling error (the share's {thresholds.confidence:.0%} upper bound; "
             "checks.overlap_min_residual_share)", _OVERLAP_FIX),
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
                 "add the edge the check names (or a common cause of the two nodes), or explain why the DAG is "
                 "right.")]


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
def dag_overlap(settings: CmmmSettings, causal_dag: CausalDag) -> Iterator[AssetCheckResult]:
    """Overlap (positivity), per identifiable channel: the media's SD left after its adjustment set
    (`checks.overlap_min_residual_share`) and, in each stratum of the adjustment set
    (propensity-score quantiles), `checks.overlap_min_weeks` weeks and a media SD of at least
    `checks.overlap_min_spread` of its overall SD; both shares up to their sampling error (their
    upper 95% bounds are compared, so the last digit of a noisy ratio decides nothing). A channel
    that fails is withheld and the check WARNs; only when no channel is left to estimate is it an
    ERROR, which stops the run."""
    from cmmm_pipeline.dag.audit import overlap_thresholds
    from cmmm_pipeline.dag.overlap import overlap_message, withheld_channels

    config = settings.config
    table = causal_dag.overlap
    suite = validate_overlap(table, overlap_thresholds(config))
    shown = table[["channel", "stratum", "weeks", "spend_min", "spend_max", "spread", "spread_upper", "floor",
                   "residual_share", "extrapolated_share", "ok", "reason"]]
    message = overlap_message(table)
    withheld = withheld_channels(table)
    channels = list(dict.fromkeys(table["channel"]))
    severity = AssetCheckSeverity.ERROR if channels and len(withheld) == len(channels) else AssetCheckSeverity.WARN
    first = table.drop_duplicates("channel")
    support = {r.channel: (f"{'withheld' if r.channel in withheld else 'estimated'}; residual share "
                           f"{r.residual_share:.2f}; extrapolated share {r.extrapolated_share:.2f}")
               for r in first.itertuples()}
    yield from gated("causal_dag.dag_overlap", _with(
        suite, severity, message if suite.success else f"{message}\n{suite.message()}", {
        "strata": markdown_table(shown), "thin_strata": int((~table["ok"].astype(bool)).sum()),
        "withheld_channels": MetadataValue.text(", ".join(withheld) or "none"),
        "channels": MetadataValue.json(support)}))


def implication_failures(rejected: pd.DataFrame) -> str:
    """The one-line summary the CLI prints: each rejected implication once, with the edge to add
    (`dag-implication-holds (digital ⟂ seasonality: add the edge seasonality → digital or a common
    cause of digital and seasonality)`)."""
    import pandas as pd

    from cmmm_pipeline.dag.independence import rejection_advice

    first = rejected.sort_values("p_adjusted", kind="stable").drop_duplicates("implication")
    edges = first["edge_to_add"] if "edge_to_add" in first.columns else pd.Series("", index=first.index)
    parts = [f"{str(i).split(' | ')[0]}: {rejection_advice(str(i), e if isinstance(e, str) else '')}"
             for i, e in zip(first["implication"], edges)]
    return f"{DagRule.IMPLICATION_HOLDS.value} ({'; '.join(parts)})"


@asset_check(asset="causal_dag", blocking=True)
def dag_independence(settings: CmmmSettings, causal_dag: CausalDag) -> Iterator[AssetCheckResult]:
    """The conditional independences the DAG implies, tested on the data (Fisher z and chi-squared
    on prewhitened residuals, Holm-adjusted). WARN by default; ERROR, which blocks the estimates,
    with `checks.independence_blocking: true`."""
    from cmmm_pipeline.dag.independence import rejection_message

    config = settings.config
    table = causal_dag.dag_tests
    suite = validate_independence(table, config.checks.independence_alpha)
    severity = AssetCheckSeverity.ERROR if config.checks.independence_blocking else AssetCheckSeverity.WARN
    rejected = table[table["rejected"].astype(bool)]
    shown = rejected[["implication", "test", "statistic", "p_value", "p_adjusted",
                      *(["edge_to_add"] if "edge_to_add" in rejected.columns else [])]]
    yield from gated("causal_dag.dag_independence", _with(suite, severity, rejection_message(
        table, causal_dag.implications_not_tested), {
        **({"failed_rules": MetadataValue.text(implication_failures(rejected))} if len(rejected) else {}),
        "tests": len(table), "implications": int(table["implication"].nunique()),
        "implications_not_tested": causal_dag.implications_not_tested,
        "rejected_implications": int(rejected["implication"].nunique()),
        "blocking": MetadataValue.bool(config.checks.independence_blocking),
        **({"rejected": markdown_table(shown)} if len(rejected) else {})}))


@asset_check(asset="causal_dag", op_tags=BEFORE_PUBLICATION)
def dag_identification(causal_dag: CausalDag) -> AssetCheckResult:
    """Every channel's effect identifiable by adjustment under the DAG (latent nodes included). A
    channel that is not gets no estimate, with the reason; the others go on."""
    table = causal_dag.identification
    suite = validate_identification(table)
    missing = table[~table["identifiable"].astype(bool)]
    description = ("Every channel's effect is identified by adjustment." if missing.empty else
                   " ".join(f"{r.channel} ({r.effect}): {r.reason}" for r in missing.itertuples()))
    return _with(suite, AssetCheckSeverity.WARN, description,
                 {"identification": markdown_table(table[["channel", "effect", "identifiable", "reason"]])})


DAG_CHECKS = [dag_overlap, dag_independence, dag_identification]
