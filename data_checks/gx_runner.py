"""Run a Great Expectations suite on a DataFrame and return a frozen, readable result.

One ephemeral context per process (GX 1.x): no files, no network, no analytics, no progress bars.
Every expectation carries the project's rule name in its `meta`, so a failure is reported as the
rule, the column, the failing rows (week dates) and the fix, and a data engineer can act without
opening the data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cmmm_pipeline.core.errors import DataError, format_rows

if TYPE_CHECKING:
    import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

MAX_EXAMPLES = 8
"""Failing rows shown per rule in messages and metadata (the count is always complete)."""

_RULE_KEY = "cmmm_rule"
_NOT_IDENTITY = {"id", "rendered_content", "notes", "meta"}
"""What GX's `ExpectationSuite._expectations_are_equalish` ignores when it compares expectations."""


@dataclass(frozen=True)
class Rule:
    """An expectation paired with the project's name for the rule it enforces, what the rule
    requires in words, and what the user should do when it fails."""

    name: str
    expectation: Any
    requirement: str = ""
    fix: str = ""
    values_label: str | None = "values"
    """How failing values are introduced in messages; None hides them (a spend of -10 helps the reader,
    the zero row count of a missing week does not)."""
    absent: str = ""
    """What to say when the rule fails without rows or an observed value (e.g. a column that is absent)."""


@dataclass(frozen=True)
class ExpectationFailure:
    table: str
    expectation: str
    column: str | None
    rule: str
    """The project's name for the rule (e.g. `spend-non-negative`): what the user reads."""
    unexpected_count: int | None
    example_rows: tuple[str, ...]
    example_values: tuple[str, ...]
    observed: str | None = None
    requirement: str = ""
    fix: str = ""
    row_noun: str = "row"
    values_label: str = "values"
    absent: str = "it does not hold"
    error: str | None = None
    """Set when the expectation could not be evaluated at all (e.g. a column of the wrong type)."""

    @property
    def place(self) -> str:
        return f"{self.table} column '{self.column}'" if self.column else self.table

    def sentence(self) -> str:
        """One paragraph, in the same shape as a `CmmmError`: [rule] place: what and where. Fix: ..."""
        return f"[{self.rule}] {self.place}: {self.detail()} Fix: {self.fix or 'correct the data.'}"

    def detail(self) -> str:
        requirement = self.requirement or f"expectation {self.expectation}"
        if self.error:
            return f"{requirement}; it could not be evaluated ({self.error})."
        if self.unexpected_count:
            rows = format_rows(self.example_rows, MAX_EXAMPLES) if self.example_rows else ""
            shown = f": {rows}" if rows else ""
            if self.example_rows and len(self.example_rows) < self.unexpected_count:
                shown += f" and {self.unexpected_count - len(self.example_rows)} more"
            values = f" ({self.values_label}: {', '.join(self.example_values)})" if self.example_values else ""
            return f"{requirement}; {self.unexpected_count} {self.row_noun}(s) fail{shown}{values}."
        if self.observed is not None:
            return f"{requirement}; observed {self.observed}."
        return f"{requirement}; {self.absent}."


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    evaluated: int
    failures: tuple[ExpectationFailure, ...]

    def message(self) -> str:
        """All expectations passed, or one paragraph per failed rule."""
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed."
        return "\n".join(f.sentence() for f in self.failures)

    def failed_rules(self) -> str:
        """A one-line summary for check lines: `rule (column), ...`."""
        return ", ".join(f"{f.rule} ({f.column})" if f.column else f.rule for f in self.failures)

    def failures_table(self) -> pd.DataFrame:
        import pandas as pd

        columns = ["rule", "column", "expectation", "failing", "observed", "example_rows", "example_values", "fix"]
        return pd.DataFrame([{"rule": f.rule, "column": f.column or "", "expectation": f.expectation,
                              "failing": f.unexpected_count if f.unexpected_count is not None else "",
                              "observed": f.observed or f.error or "",
                              "example_rows": ", ".join(f.example_rows[:MAX_EXAMPLES]),
                              "example_values": ", ".join(f.example_values[:MAX_EXAMPLES]),
                              "fix": f.fix} for f in self.failures], columns=columns)

    def raise_for_failures(self) -> None:
        """Raise the first failure as a `DataError` (naming how many other rules failed)."""
        if self.success:
            return
        if not self.failures:
            raise DataError("suite-failed", self.suite, "the suite failed without a failing expectation.",
                            "rerun; if it persists, inspect the check's metadata.")
        first, rest = self.failures[0], self.failures[1:]
        also = f" Also failed: {', '.join(f'{f.rule} ({f.column})' for f in rest)}." if rest else ""
        raise DataError(first.rule, first.place, first.detail() + also, first.fix or "correct the data.")

    @staticmethod
    def combine(suite: str, results: Iterable[SuiteResult]) -> SuiteResult:
        """One result from several validations of the same input (e.g. rows and calendar)."""
        parts = list(results)
        return SuiteResult(suite, all(r.success for r in parts), sum(r.evaluated for r in parts),
                           tuple(f for r in parts for f in r.failures))


@lru_cache(maxsize=1)
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@lru_cache(maxsize=None)
def _batch_definition(name: str) -> Any:
    """A pandas data source with one whole-dataframe batch definition per suite name."""
    source = _context().data_sources.add_pandas(f"cmmm_{name}")
    return source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")


def run_suite(name: str, df: pd.DataFrame, rules: Sequence[Rule], row_labels: pd.Series | None = None,
              row_noun: str = "row") -> SuiteResult:
    """Validate `df` against `rules`. `row_labels` (e.g. the week) names failing rows in messages."""
    import great_expectations as gx

    batch_definition = _batch_definition(name)  # creates the context that suites bind to
    by_name: dict[str, Rule] = {}
    expectations, identities = [], []
    for i, rule in enumerate(rules):
        key = f"{i}:{rule.name}"
        rule.expectation.meta = {**(rule.expectation.meta or {}), _RULE_KEY: key}
        by_name[key] = rule
        # A suite is set-like: `add_expectation` leaves out one equal but for its meta to one already
        # in it. Same test, with each expectation's attributes converted once instead of once per
        # pair (add_expectation's pairwise conversions were most of a sample run's GX time).
        identity = (rule.expectation.expectation_type, rule.expectation.dict(exclude=_NOT_IDENTITY))
        if identity not in identities:
            identities.append(identity)
            expectations.append(rule.expectation)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df.reset_index(drop=True)})
    verdicts = batch.validate(gx.ExpectationSuite(name=name, expectations=expectations),
                              result_format={"result_format": "BOOLEAN_ONLY"})
    failed = _failing_rows(name, batch, by_name, verdicts) if not verdicts.success else []
    labels = row_labels.reset_index(drop=True) if row_labels is not None else None
    order = {key: i for i, key in enumerate(by_name)}
    failed = sorted(failed, key=lambda r: order[r.expectation_config.meta[_RULE_KEY]])  # GX reorders; keep ours
    failures = [_failure(name, r, by_name[r.expectation_config.meta[_RULE_KEY]], labels, row_noun) for r in failed]
    return SuiteResult(name, bool(verdicts.success), len(verdicts.results), _without_consequences(failures))


def _failing_rows(name: str, batch: Any, by_name: dict[str, Rule], verdicts: Any) -> list[Any]:
    """The failed expectations validated again with their failing rows listed. A passing suite (every
    weekly run, nearly always) is validated once without row lists, which costs ~40% less."""
    import great_expectations as gx

    failed = [by_name[r.expectation_config.meta[_RULE_KEY]].expectation for r in verdicts.results if not r.success]
    detail = batch.validate(gx.ExpectationSuite(name=name, expectations=failed),
                            result_format={"result_format": "COMPLETE"})
    return [r for r in detail.results if not r.success]


def _without_consequences(failures: list[ExpectationFailure]) -> tuple[ExpectationFailure, ...]:
    """Drop expectations that could not be evaluated on a column that already failed a rule: once a
    spend column holds text, 'spend >= 0' cannot be judged, and saying so adds nothing."""
    judged = {f.column for f in failures if f.error is None}
    return tuple(f for f in failures if f.error is None or f.column not in judged)


def _failure(table: str, r: Any, rule: Rule, labels: pd.Series | None, row_noun: str) -> ExpectationFailure:
    config = r.expectation_config
    res = r.result or {}
    indices = list(res.get("unexpected_index_list") or res.get("partial_unexpected_index_list") or [])
    values = list(res.get("unexpected_list") or res.get("partial_unexpected_list") or [])
    observed = res.get("observed_value")
    return ExpectationFailure(
        table=table, expectation=config.type, column=config.kwargs.get("column"), rule=rule.name,
        unexpected_count=res.get("unexpected_count"),
        example_rows=tuple(_label(labels, idx) for idx in indices[:MAX_EXAMPLES]),
        example_values=tuple(_value(v) for v in values[:MAX_EXAMPLES]) if rule.values_label else (),
        observed=None if observed is None else _value(observed), requirement=rule.requirement, fix=rule.fix,
        row_noun=row_noun, values_label=rule.values_label or "values", absent=rule.absent or "it does not hold",
        error=_exception(r))


def _exception(r: Any) -> str | None:
    """GX records an expectation that raised (instead of failing) in `exception_info`."""
    info = r.exception_info or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "unknown error").strip().splitlines()
            return message[0] if message else "unknown error"
    return None


def _label(labels: pd.Series | None, index: Any) -> str:
    if labels is None or isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(labels):
        return f"row {index}"
    return _value(labels.iloc[index])


def _value(value: Any) -> str:
    """Readable values: dates without a time, floats without noise."""
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.6g}"
    return str(value)
