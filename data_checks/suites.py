"""Great Expectations suites for the raw weekly table and the transformed media.

Each rule has a stable name (what the user reads and searches the docs for), a requirement in words
and a fix. The weekly-calendar rules (one row per week, no gaps, weekly cadence) run on a calendar
table derived from the data, one row per expected or observed week, so that a failure names the
missing or duplicated week dates themselves.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from enum import Enum

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig, is_generated_control
from cmmm_pipeline.data.outliers import ColumnKind, column_bound
from cmmm_pipeline.media.features import WEEK, node_columns
from data_checks.gx_runner import ExpectationFailure, Rule, SuiteResult, run_suite

RAW_SUITE = "raw_spend"
CALENDAR_SUITE = "raw_spend_calendar"
MEDIA_SUITE = "transformed_media"

ROWS = "rows"
ON_CADENCE = "on_cadence"

# Type names GX compares with: the column dtype, or each value's Python type in an object column.
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
                 "Float64", "Int64", "float", "int"]
_LARGEST = sys.float_info.max


class DataRule(Enum):
    """The data-quality rules, by the names messages, metadata and docs use."""

    COLUMN_PRESENT = "column-present"
    ENOUGH_HISTORY = "enough-history"
    NUMERIC_TYPE = "numeric-type"
    NO_MISSING_VALUES = "no-missing-values"
    VALUE_FINITE = "value-finite"
    SPEND_NON_NEGATIVE = "spend-non-negative"
    CHANNEL_NOT_ALL_ZERO = "channel-not-all-zero"
    CHANNEL_NOT_CONSTANT = "channel-not-constant"
    KPI_POSITIVE = "kpi-positive"
    KPI_NOT_CONSTANT = "kpi-not-constant"
    ONE_ROW_PER_WEEK = "one-row-per-week"
    NO_MISSING_WEEKS = "no-missing-weeks"
    WEEKLY_CADENCE = "weekly-cadence"
    MEDIA_NON_NEGATIVE = "media-non-negative"
    COLUMN_NOT_CONSTANT = "column-not-constant"
    VALUE_OUTLIER = "value-outlier"


_FIXES: dict[DataRule, str] = {
    DataRule.COLUMN_PRESENT: "add the column to the data, or correct its name in the config "
                             "(channels.<name>.spend_column, controls, data.kpi, data.date_column).",
    DataRule.ENOUGH_HISTORY: "supply more weeks of history, or lower checks.min_weeks if weaker estimates are "
                             "acceptable.",
    DataRule.NUMERIC_TYPE: "export numbers only: '.' as the decimal mark, no currency signs, no thousands "
                           "separators, no text such as 'n/a'.",
    DataRule.NO_MISSING_VALUES: "fill the empty cells at the source (a channel that did not run spent 0), or "
                                "drop the column from the config.",
    DataRule.VALUE_FINITE: "replace the infinities at the source; they usually come from a division by zero "
                           "in the export.",
    DataRule.SPEND_NON_NEGATIVE: "negative spend is usually a refund or a restatement booked as its own row: "
                                 "net it into the week it belongs to.",
    DataRule.CHANNEL_NOT_ALL_ZERO: "check that the spend column is the right one (a renamed export column often "
                                   "arrives empty), or drop the channel from the config.",
    DataRule.CHANNEL_NOT_CONSTANT: "a channel whose spend never changes carries no information about its "
                                   "effect: drop it from the config, or use a period in which it varied.",
    DataRule.KPI_POSITIVE: "correct the zero or negative KPI weeks at the source, or set "
                           "data.kpi_must_be_positive: false if they are real.",
    DataRule.KPI_NOT_CONSTANT: "a constant KPI has nothing to explain: check that data.kpi names the right column.",
    DataRule.ONE_ROW_PER_WEEK: "remove duplicated or restated rows: keep exactly one row per week (the latest "
                               "restatement).",
    DataRule.NO_MISSING_WEEKS: "add the missing weeks (with zero spend where nothing ran), or cut the data to a "
                               "period without gaps.",
    DataRule.WEEKLY_CADENCE: "aggregate daily data to weeks and date every week on the same weekday.",
    DataRule.MEDIA_NON_NEGATIVE: "transformed media below zero means negative spend reached the transforms: "
                                 "fix the raw spend.",
    DataRule.COLUMN_NOT_CONSTANT: "a control that never changes cannot be adjusted for: drop it from controls, "
                                  "or use a period in which it varied.",
    DataRule.VALUE_OUTLIER: "check the weeks at the source (a unit, currency or decimal-mark error, a doubled row); "
                            "if they are real, raise checks.outlier_columns.<column> or set it to off.",
}


_MEDIA_COLUMN_FIX = ("the transformed_media step did not produce it: check that every channel and control in the "
                     "config is spelled as in the graph.")


def _rule(rule: DataRule, expectation: object, requirement: str, values_label: str | None = "values",
          fix: str | None = None) -> Rule:
    return Rule(rule.value, expectation, requirement, fix or _FIXES[rule], values_label,
                "it is absent from the table" if rule is DataRule.COLUMN_PRESENT else "")


def _numeric_rules(column: str) -> list[Rule]:
    """Every used number column: numbers, no empty cells, no infinities."""
    import great_expectations as gx

    e = gx.expectations
    return [
        _rule(DataRule.NUMERIC_TYPE, e.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES),
              "values must be numbers"),
        _rule(DataRule.NO_MISSING_VALUES, e.ExpectColumnValuesToNotBeNull(column=column),
              "values must not be empty", values_label=None),
        _rule(DataRule.VALUE_FINITE, e.ExpectColumnValuesToBeBetween(column=column, min_value=-_LARGEST,
                                                                     max_value=_LARGEST),
              "values must be finite"),
    ]


def _kpi_rules(column: str, must_be_positive: bool) -> list[Rule]:
    import great_expectations as gx

    e = gx.expectations
    rules = _numeric_rules(column)
    if must_be_positive:
        rules.append(_rule(DataRule.KPI_POSITIVE, e.ExpectColumnValuesToBeBetween(column=column, min_value=0,
                                                                                  strict_min=True),
                           "the KPI must be > 0 (data.kpi_must_be_positive is true)"))
    return rules


def outlier_rule(data: pd.DataFrame, column: str, kind: ColumnKind, config: PipelineConfig) -> Rule | None:
    """`value-outlier` on one column: its values must lie within the robust bound computed from the
    column itself (`cmmm_pipeline.data.outliers`). None when the rule is off for the column, when the
    column is not all finite numbers (other rules report that) or too short to judge."""
    import great_expectations as gx

    threshold = config.checks.outlier_threshold(column, kind is ColumnKind.KPI)
    if threshold is None or not pd.api.types.is_numeric_dtype(data[column]):
        return None
    values = data[column].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        return None
    bound = column_bound(kind, values, column, threshold)
    if bound is None:
        return None
    outside = bound.flags(values)
    fix = None
    if outside.any():
        worst = float(np.max(bound.z(values)[outside]))
        fix = (f"check these weeks at the source: a unit, currency or decimal-mark error, a doubled or misplaced "
               f"row. If they are real, let them through with checks.outlier_columns.{column} set above "
               f"{_above(worst)} (their robust z-score; the threshold is now {threshold:g}), or off.")
    expectation = gx.expectations.ExpectColumnValuesToBeBetween(
        column=column, min_value=None if bound.lower is None else max(bound.lower, -_LARGEST),
        max_value=min(bound.upper, _LARGEST))
    return _rule(DataRule.VALUE_OUTLIER, expectation, bound.requirement(), fix=fix)


def _above(z: float) -> str:
    """A threshold just above a robust z-score, readable: 12.3 or 6.61e+08."""
    if z < 1e4:
        return f"{math.ceil(z * 10) / 10:g}"
    step = 10.0 ** (math.floor(math.log10(z)) - 2)
    return f"{math.ceil(z / step) * step:.3g}"


def raw_spend_rules(config: PipelineConfig, columns: pd.Index | None = None,
                    data: pd.DataFrame | None = None) -> list[Rule]:
    """Rules on the normalised raw table (see `cmmm_pipeline.data.ingest.normalise`).

    `columns` are the table's columns; rules on a column it lacks are replaced by the failing
    column-present rule alone, so one absent column reads as one clear failure. With `data` (the
    table itself), the value-outlier rule joins them: its bounds are computed from the data.
    """
    import great_expectations as gx

    e = gx.expectations
    spend = [c.spend_column for c in config.channels]
    controls = [c for c in config.controls
                if not is_generated_control(c, config.kpi) or (columns is not None and c in columns)]
    required = list(dict.fromkeys([WEEK, *spend, *controls, config.kpi]))
    present = set(required) if columns is None else {c for c in required if c in columns}
    rules = [_rule(DataRule.COLUMN_PRESENT, e.ExpectColumnToExist(column=c), "the column must be present")
             for c in required]
    rules.append(_rule(DataRule.ENOUGH_HISTORY, e.ExpectTableRowCountToBeBetween(min_value=config.checks.min_weeks),
                       f"at least {config.checks.min_weeks} weekly rows are required (checks.min_weeks)"))
    if WEEK in present:
        rules.append(_rule(DataRule.NO_MISSING_VALUES, e.ExpectColumnValuesToNotBeNull(column=WEEK),
                           "every row must have a date", values_label=None))
    for column in (c for c in spend if c in present):
        rules += _numeric_rules(column)
        rules += [
            _rule(DataRule.SPEND_NON_NEGATIVE, e.ExpectColumnValuesToBeBetween(column=column, min_value=0),
                  "spend must be >= 0"),
            _rule(DataRule.CHANNEL_NOT_ALL_ZERO, e.ExpectColumnMaxToBeBetween(column=column, min_value=0,
                                                                             strict_min=True),
                  "a channel must have spend in some week (maximum > 0)"),
            _rule(DataRule.CHANNEL_NOT_CONSTANT, e.ExpectColumnUniqueValueCountToBeBetween(column=column,
                                                                                          min_value=2),
                  "a channel's spend must vary (at least 2 distinct values)"),
        ]
    for column in (c for c in controls if c in present and c not in spend):
        rules += _numeric_rules(column)
    if config.kpi in present:
        rules += _kpi_rules(config.kpi, config.data.kpi_must_be_positive)
        rules.append(_rule(DataRule.KPI_NOT_CONSTANT,
                           e.ExpectColumnUniqueValueCountToBeBetween(column=config.kpi, min_value=2),
                           "the KPI must vary (at least 2 distinct values)"))
    if data is not None:
        judged = [(config.kpi, ColumnKind.KPI)] if config.kpi in present else []
        judged += [(c, ColumnKind.SPEND) for c in spend if c in present]
        rules += [r for r in (outlier_rule(data, c, kind, config) for c, kind in judged) if r is not None]
    return rules


def weekly_calendar(weeks: pd.Series) -> pd.DataFrame:
    """One row per week of the regular weekly grid from the first to the last week, plus any
    observed date off that grid: how many data rows fall on it and whether it is on the grid.

    The grid's weekday is the one most rows use, so one mis-dated row does not shift the grid.
    """
    observed = pd.to_datetime(weeks, errors="coerce").dropna()
    if observed.empty:
        return pd.DataFrame({WEEK: pd.Series(dtype="datetime64[ns]"), ROWS: pd.Series(dtype="int64"),
                             ON_CADENCE: pd.Series(dtype=bool)})
    first = observed.min()
    offsets = (observed - first).dt.days % 7
    anchor = int(offsets.mode().min())
    on_grid = observed[offsets == anchor]
    grid = pd.date_range(on_grid.min(), on_grid.max(), freq="7D")
    counts = observed.value_counts()
    dates = grid.union(pd.DatetimeIndex(counts.index)).sort_values()
    return pd.DataFrame({
        WEEK: dates,
        ROWS: counts.reindex(dates, fill_value=0).to_numpy(dtype="int64"),
        ON_CADENCE: ((dates - first).days % 7 == anchor),
    })


def calendar_rules() -> list[Rule]:
    import great_expectations as gx

    e = gx.expectations
    return [
        _rule(DataRule.ONE_ROW_PER_WEEK, e.ExpectColumnValuesToBeBetween(column=ROWS, max_value=1),
              "each week must appear exactly once", values_label="rows found"),
        _rule(DataRule.NO_MISSING_WEEKS, e.ExpectColumnValuesToBeBetween(column=ROWS, min_value=1),
              "the weekly calendar must have no gaps between the first and the last week", values_label=None),
        _rule(DataRule.WEEKLY_CADENCE, e.ExpectColumnValuesToBeInSet(column=ON_CADENCE, value_set=[True]),
              "dates must be 7 days apart, on one weekday", values_label=None),
    ]


def validate_raw_spend(raw: pd.DataFrame, config: PipelineConfig) -> SuiteResult:
    """The raw-table rules and the weekly-calendar rules, as one result."""
    rows = run_suite(RAW_SUITE, raw, raw_spend_rules(config, raw.columns, raw),
                     row_labels=raw[WEEK] if WEEK in raw.columns else None, row_noun="week")
    if WEEK not in raw.columns:
        return rows
    calendar = weekly_calendar(raw[WEEK])
    weeks = run_suite(CALENDAR_SUITE, calendar, calendar_rules(), row_labels=calendar[WEEK], row_noun="week")
    weeks = SuiteResult(RAW_SUITE, weeks.success, weeks.evaluated,
                        tuple(_rename(f, RAW_SUITE, WEEK) for f in weeks.failures))
    return SuiteResult.combine(RAW_SUITE, [rows, weeks])


def _rename(failure: ExpectationFailure, table: str, column: str) -> ExpectationFailure:
    """Report calendar failures against the raw table's week column, where the user looks."""
    return replace(failure, table=table, column=column)


def transformed_media_rules(config: PipelineConfig, columns: pd.Index) -> list[Rule]:
    """Rules on the model table: every graph node's column present, numeric and finite, media >= 0,
    no constant channel or control, one row per week, enough history."""
    import great_expectations as gx

    e = gx.expectations
    nodes = node_columns(pd.DataFrame(columns=columns), config)
    channels = [c for name in config.channel_names for c in nodes[name]]
    controls = [c for name in config.controls for c in nodes[name]]
    required = list(dict.fromkeys([WEEK, *channels, *controls, config.kpi]))
    present = {c for c in required if c in columns}
    rules = [_rule(DataRule.COLUMN_PRESENT, e.ExpectColumnToExist(column=c), "the column must be present",
                   fix=_MEDIA_COLUMN_FIX) for c in required]
    rules.append(_rule(DataRule.ENOUGH_HISTORY, e.ExpectTableRowCountToBeBetween(min_value=config.checks.min_weeks),
                       f"at least {config.checks.min_weeks} weekly rows are required (checks.min_weeks)"))
    if WEEK in present:
        rules.append(_rule(DataRule.ONE_ROW_PER_WEEK, e.ExpectColumnValuesToBeUnique(column=WEEK),
                           "each week must appear exactly once", values_label=None))
    for column in (c for c in channels if c in present):
        rules += _numeric_rules(column)
        rules += [
            _rule(DataRule.MEDIA_NON_NEGATIVE, e.ExpectColumnValuesToBeBetween(column=column, min_value=0),
                  "transformed media must be >= 0"),
            _rule(DataRule.CHANNEL_NOT_CONSTANT, e.ExpectColumnUniqueValueCountToBeBetween(column=column,
                                                                                          min_value=2),
                  "a channel's transformed media must vary (at least 2 distinct values)"),
        ]
    for column in (c for c in controls if c in present and c not in channels):
        rules += _numeric_rules(column)
        rules.append(_rule(DataRule.COLUMN_NOT_CONSTANT,
                           e.ExpectColumnUniqueValueCountToBeBetween(column=column, min_value=2),
                           "a control must vary (at least 2 distinct values)"))
    if config.kpi in present:
        rules += _kpi_rules(config.kpi, config.data.kpi_must_be_positive)
    return rules


def validate_transformed_media(features: pd.DataFrame, config: PipelineConfig) -> SuiteResult:
    return run_suite(MEDIA_SUITE, features, transformed_media_rules(config, features.columns),
                     row_labels=features[WEEK] if WEEK in features.columns else None, row_noun="week")
