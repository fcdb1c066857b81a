"""A run's events turned into a user-facing outcome: check lines, one paragraph per failure (rule,
place, fix), the summary table. Shared by `cmmm run` (cmmm_pipeline/run.py) and the markets job,
which judges each market's run from the events the instance recorded."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    run_id: str
    error: str
    """One paragraph per failure: the rule, the place and the fix (empty on success)."""
    check_lines: tuple[str, ...]
    summary: str
    notes: tuple[str, ...] = ()
    """The published report's attention list (every check that did not pass, every REVIEW/FAIL item),
    one line each."""
    written: tuple[str, ...] = ()
    """Every file the run published (CSVs, report.html, the warehouse)."""


# Dagster logs every step failure at ERROR with its stack trace; the outcome below already carries
# each failure as a user-facing paragraph, so the console logger only speaks for CRITICAL events.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


MARKET_TAG = "cmmm/market"
PARENT_TAG = "cmmm/markets_run"
"""On every market's run: the `cmmm_markets` run that started it."""


@dataclass(frozen=True)
class MarketOutcome:
    market: str
    success: bool
    run_id: str
    error: str


@dataclass(frozen=True)
class MarketsOutcome:
    """A `cmmm_markets` run: each market's own outcome and the pooled summary across markets."""

    run_id: str
    markets: tuple[MarketOutcome, ...]
    pooled: pd.DataFrame
    summary_path: str
    error: str
    """Failures outside any market (listing the markets, pooling); empty when there were none."""

    @property
    def success(self) -> bool:
        return not self.error and all(m.success for m in self.markets)


def market_outcome(instance: Any, run_id: str) -> MarketOutcome:
    """A market's run judged from its recorded events as `outcome_of` judges an executed run:
    published only if it succeeded and no blocking check failed."""
    from dagster import DagsterEventType, DagsterRunStatus

    run = instance.get_run_by_id(run_id)
    events = [r.dagster_event for r in instance.all_logs(run_id) if r.dagster_event is not None]
    _, failed_checks = _check_lines(e.event_specific_data for e in events
                                    if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION)
    errors = [_step_error(e) for e in events
              if e.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE)]
    success = run is not None and run.status == DagsterRunStatus.SUCCESS and not failed_checks
    message = "\n".join(dict.fromkeys(m for m in (*failed_checks, *errors) if m))
    return MarketOutcome(run.tags.get(MARKET_TAG, "") if run is not None else "", success, run_id,
                         "" if success else message or "the run failed.")


def market_outcomes(instance: Any, markets_run_id: str) -> list[MarketOutcome]:
    """Every market run that the `cmmm_markets` run `markets_run_id` started."""
    from dagster import RunsFilter

    runs = instance.get_runs(RunsFilter(tags={PARENT_TAG: markets_run_id}))
    return sorted((market_outcome(instance, r.run_id) for r in runs), key=lambda o: o.market)


def pooled_summary_table(pooled: pd.DataFrame) -> str:
    """Per channel, effect and metric: the pooled mean across markets with its interval and I²."""
    import pandas as pd

    if pooled.empty:
        return "no market published: nothing to pool."
    rows = [f"{'channel':<10} {'effect':<9} {'metric':<5} {'markets':>7} {'pooled':>7} {'95% interval':>17} "
            f"{'I²':>5}"]
    for r in pooled.to_dict("records"):
        if pd.isna(r.get("pooled")):
            rows.append(f"{r['channel']:<10} {r['effect']:<9} {r['metric']:<5} {r['k_markets']:>7} not pooled: "
                        f"{r.get('reason', '')}")
            continue
        rows.append(f"{r['channel']:<10} {r['effect']:<9} {r['metric']:<5} {r['k_markets']:>7} {r['pooled']:>7.3f} "
                    f"[{r['ci_low']:>6.3f}, {r['ci_high']:>6.3f}] {r['i2']:>5.2f}")
    return "\n".join(rows)


def outcome_of(result: Any, output_dir: str, warehouse_path: str) -> RunOutcome:
    """The user-facing outcome of an executed run: check lines, error paragraphs, the summary."""
    from dagster import DagsterEventType

    from cmmm_pipeline.data import warehouse

    checks, failed_checks = _check_lines(result.get_asset_check_evaluations())
    errors = [_step_error(e) for e in result.all_events  # a refused warehouse lock fails resource setup
              if e.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE)]
    messages = [m for m in (*failed_checks, *errors) if m]
    if _ran_out_of_space(result.all_events):  # a library's rollback error says nothing of the cause
        from pathlib import Path

        from cmmm_pipeline.publish.preflight import disk_full_error, space_need

        need = space_need(Path(warehouse_path).parent, Path(warehouse_path), None)
        messages = [str(disk_full_error(Path(warehouse_path).parent, need.needed, need.free))]
    if result.success and not failed_checks:
        import duckdb

        with duckdb.connect(warehouse_path, read_only=True) as con:
            estimates = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
        return RunOutcome(True, result.run_id, "", tuple(checks), summary_table(estimates),
                          published_attention(result), written_files(output_dir, warehouse_path))
    return RunOutcome(False, result.run_id, "\n".join(dict.fromkeys(messages)) or "the run failed.",
                      tuple(checks), "")


_OWN_ERRORS = frozenset({"CmmmError", "ConfigError", "ConfigErrors", "DataError", "EstimationError", "PublicationError",
                         "OutputError"})
_CHECK_FAILED = "DagsterAssetCheckFailedError"
_CHECK_STEP_FAILURE = "check"
"""Metadata key of the Failure a blocking check raises (data_checks.checks.CHECK_FAILURE_KEY)."""


def _check_lines(evaluations: Iterable[Any]) -> tuple[list[str], list[str]]:
    """One stdout line per check (PASS, or the status and the failed rules), and for every failed
    ERROR-severity check its full message: one paragraph per failed rule."""
    lines: list[str] = []
    failures: list[str] = []
    for evaluation in evaluations:
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        if evaluation.passed:
            lines.append(f"check {name}: PASS")
            continue
        description = (evaluation.description or "").strip()
        blocking = evaluation.severity.value == "ERROR"
        rules = getattr((evaluation.metadata or {}).get("failed_rules"), "value", None)
        summary = f"failed rules: {rules}" if rules else (description.splitlines() or ["failed"])[0]
        lines.append(f"check {name}: {'FAIL' if blocking else evaluation.severity.value} — {summary}")
        if blocking:
            failures.append(f"Check '{name}' failed:\n{description}" if description else f"Check '{name}' failed.")
    return lines, failures


def _error_texts(event: object) -> Iterable[str]:
    error = getattr(getattr(event, "event_specific_data", None), "error", None)
    while error is not None:
        yield error.message
        error = error.cause or getattr(error, "context", None)


def _ran_out_of_space(events: Iterable[Any]) -> bool:
    from dagster import DagsterEventType

    from cmmm_pipeline.publish.preflight import is_disk_full_message

    return any(is_disk_full_message(text) for e in events
               if e.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE)
               for text in _error_texts(e))


def _step_error(event: object) -> str:
    """The user's exception message (our own errors carry rule, place and fix) without a traceback.
    A blocking check's step failure says nothing its check result has not said: it is left out."""
    user = getattr(event.event_specific_data, "user_failure_data", None)  # type: ignore[attr-defined]
    if user is not None and _CHECK_STEP_FAILURE in (user.metadata or {}):
        return ""  # a blocking check's own step failure: its check result already said it
    error = getattr(event.event_specific_data, "error", None)  # type: ignore[attr-defined]
    while error is not None:
        if error.cls_name == _CHECK_FAILED:
            return ""
        if error.cls_name in _OWN_ERRORS:
            head, _, rest = error.message.partition(": ")
            return (rest if rest and head.split(".")[-1] == error.cls_name else error.message).strip()
        if error.cause is None:
            first = error.message.strip().splitlines()
            return f"step {event.step_key} failed: {first[0] if first else error.cls_name}"  # type: ignore[attr-defined]
        error = error.cause
    return ""


def summary_table(estimates: pd.DataFrame) -> str:
    """The terminal summary per channel and effect: ROI against zero spend with its interval and
    whether the data support it (`observed`) or the response curve extrapolates it, the marginal
    ROI (the next unit of spend, always within the data) with its interval, the p-value and the
    naive ROI. A withheld channel shows its reason instead of numbers."""
    import pandas as pd

    rows = [f"{'channel':<10} {'effect':<9} {'ROI':>6} {'95% interval':>16} {'support':<12} "
            f"{'mROI':>6} {'95% interval':>16} {'p-value':>8} {'naive ROI':>9}"]
    for r in estimates.to_dict("records"):
        reason = r.get("withheld_reason")
        if isinstance(reason, str) and reason.strip():
            rows.append(f"{r['channel']:<10} {r['effect']:<9} withheld: {reason.strip()}")
            continue
        naive = "" if pd.isna(r.get("naive_roi")) else f"{r['naive_roi']:.3f}"
        support = r.get("roi_support") if isinstance(r.get("roi_support"), str) else ""
        mroi = (f"{r['mroi']:>6.3f} [{r['mroi_ci_low']:>6.3f}, {r['mroi_ci_high']:>6.3f}]"
                if "mroi" in r and pd.notna(r["mroi"]) else f"{'':>6} {'':>16}")
        rows.append(f"{r['channel']:<10} {r['effect']:<9} {r['roi']:>6.3f} [{r['roi_ci_low']:>6.3f}, "
                    f"{r['roi_ci_high']:>6.3f}] {support:<12} {mroi} {r['p_value']:>8.2g} {naive:>9}")
    return "\n".join(rows)


def published_attention(result: Any) -> tuple[str, ...]:
    """The attention list the publication put in the report ("What needs attention"), one console line
    per item: read from the `robustness_report` materialisation of this run, so the console and the
    report show the same items from the same function (`report.attention_items`)."""
    from cmmm_pipeline.publish.report import AttentionItem, Level, attention_lines
    from resources.metadata import ATTENTION_KEY

    materializations = result.asset_materializations_for_node("robustness_report")
    if not materializations:
        return ()
    entry = materializations[-1].metadata.get(ATTENTION_KEY)
    items = [AttentionItem(Level[i["level"]], i["text"], "") for i in getattr(entry, "value", None) or []]
    return tuple(attention_lines(items))


def written_files(output_dir: str, warehouse_path: str) -> tuple[str, ...]:
    """The published files: every CSV and report.html of the output folder, then the warehouse."""
    from pathlib import Path

    from cmmm_pipeline.publish.outputs import CHANGES_FILE, CSV_EXPORTS

    names = [*CSV_EXPORTS.values(), CHANGES_FILE, "report.html"]
    folder = Path(output_dir)
    return (*(str(folder / n) for n in names if (folder / n).is_file()), warehouse_path)
