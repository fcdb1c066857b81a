"""Run a Great Expectations suite on a DataFrame and return a frozen, readable result.

One ephemeral context per process (GX 1.x): no files, no network, no progress bars. Failures
are reported with the expectation, the column, the rule and example rows, so a data engineer
can act without opening the data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class ExpectationFailure:
    expectation: str
    column: str | None
    rule: str
    """The project's name for the rule (e.g. `spend-non-negative`): what the user reads."""
    unexpected_count: int | None
    example_rows: tuple[str, ...]
    example_values: tuple[str, ...]

    def sentence(self) -> str:
        where = f"column '{self.column}'" if self.column else "the table"
        count = f"{self.unexpected_count} row(s)" if self.unexpected_count else "the check"
        rows = f" at {', '.join(self.example_rows)}" if self.example_rows else ""
        values = f" (values: {', '.join(self.example_values)})" if self.example_values else ""
        return f"rule '{self.rule}' failed on {where}: {count}{rows}{values}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    evaluated: int
    failures: tuple[ExpectationFailure, ...]

    def message(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed."
        return f"{self.suite}: " + "; ".join(f.sentence() for f in self.failures) + "."

    def failures_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"rule": f.rule, "expectation": f.expectation, "column": f.column or "",
                              "unexpected_count": f.unexpected_count,
                              "example_rows": ", ".join(f.example_rows)} for f in self.failures],
                            columns=["rule", "expectation", "column", "unexpected_count", "example_rows"])


@dataclass(frozen=True)
class Rule:
    """An expectation paired with the project's name for the rule it enforces."""

    name: str
    expectation: Any


@lru_cache(maxsize=1)
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(name: str, df: pd.DataFrame, rules: Sequence[Rule], row_labels: pd.Series | None = None) -> SuiteResult:
    """Validate `df` against `rules`. `row_labels` (e.g. the week) names failing rows in messages."""
    import great_expectations as gx

    context = _context()
    source_name = f"cmmm_{name}"
    try:
        source = context.data_sources.get(source_name)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(source_name)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        batch_definition = asset.get_batch_definition("whole")
    except (KeyError, ValueError, LookupError):
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=name)
    names: list[str] = []
    for rule in rules:
        suite.add_expectation(rule.expectation)
        names.append(rule.name)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df.reset_index(drop=True)})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "partial_unexpected_count": 5})
    labels = row_labels.reset_index(drop=True) if row_labels is not None else None
    failures = []
    by_id = {r.expectation.id: r.name for r in rules}
    for i, r in enumerate(result.results):
        if r.success:
            continue
        config = r.expectation_config
        rule = by_id.get(config.id) or names[i]
        indices = list((r.result or {}).get("partial_unexpected_index_list") or [])[:5]
        values = list((r.result or {}).get("partial_unexpected_list") or [])[:5]
        rows = tuple(_label(labels, idx) for idx in indices)
        failures.append(ExpectationFailure(expectation=config.type, column=config.kwargs.get("column"), rule=rule,
                                           unexpected_count=(r.result or {}).get("unexpected_count"),
                                           example_rows=rows, example_values=tuple(str(v) for v in values)))
    return SuiteResult(name, bool(result.success), len(result.results), tuple(failures))


def _label(labels: pd.Series | None, index: Any) -> str:
    if labels is None or not isinstance(index, (int,)) or not 0 <= index < len(labels):
        return f"row {index}"
    value = labels.iloc[index]
    return str(value.date()) if hasattr(value, "date") else str(value)
