"""Great Expectations suites for the raw weekly table and the transformed media."""

from __future__ import annotations

import pandas as pd

from cmmm_pipeline.config import PipelineConfig
from cmmm_pipeline.features import WEEK
from data_checks.gx_runner import Rule, SuiteResult, run_suite


def raw_spend_rules(config: PipelineConfig) -> list[Rule]:
    import great_expectations as gx

    e = gx.expectations
    spend_columns = [c.spend_column for c in config.channels]
    rules = [Rule("enough-history", e.ExpectTableRowCountToBeBetween(min_value=config.checks.min_weeks)),
             Rule("one-row-per-week", e.ExpectColumnValuesToBeUnique(column=WEEK))]
    for column in [*spend_columns, config.kpi]:
        rules.append(Rule("no-missing-values", e.ExpectColumnValuesToNotBeNull(column=column)))
    for column in spend_columns:
        rules.append(Rule("spend-non-negative", e.ExpectColumnValuesToBeBetween(column=column, min_value=0)))
        rules.append(Rule("channel-not-all-zero", e.ExpectColumnMaxToBeBetween(column=column, min_value=1e-12)))
    rules.append(Rule("kpi-finite", e.ExpectColumnValuesToBeBetween(column=config.kpi, min_value=-1e300,
                                                                      max_value=1e300)))
    return rules


def validate_raw_spend(raw: pd.DataFrame, config: PipelineConfig) -> SuiteResult:
    return run_suite("raw_spend", raw, raw_spend_rules(config), row_labels=raw[WEEK])
