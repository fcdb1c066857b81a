"""The Great Expectations suites on the raw table and the transformed media: each corruption fails
exactly its rule, on its column, naming the week dates; clean data passes; GX stays quiet."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import CheckConfig, PipelineConfig
from cmmm_pipeline.core.errors import DataError
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.media.features import WEEK, build_features, configured_transform
from data_checks.gx_runner import SuiteResult
from data_checks.suites import DataRule, validate_raw_spend, validate_transformed_media, weekly_calendar

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(SAMPLE)


@pytest.fixture(scope="module")
def raw(config: PipelineConfig) -> pd.DataFrame:
    return load_raw(config)


def features_of(raw: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    return build_features(raw, config, {c.name: configured_transform(c) for c in config.channels})


def week(raw: pd.DataFrame, i: int) -> str:
    return str(raw[WEEK].iloc[i].date())


def failed(result: SuiteResult) -> list[tuple[str, str | None]]:
    return [(f.rule, f.column) for f in result.failures]


def test_the_sample_passes_both_suites(raw: pd.DataFrame, config: PipelineConfig) -> None:
    result = validate_raw_spend(raw, config)
    assert result.success and result.failures == () and result.evaluated >= 30
    assert result.message() == f"raw_spend: all {result.evaluated} expectations passed."
    media = validate_transformed_media(features_of(raw, config), config)
    assert media.success and media.evaluated >= 30


def _set(column: str, row: int, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df
    return edit


def _fill(column: str, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df[column] = value
        return df
    return edit


@pytest.mark.parametrize(("edit", "rule", "column", "rows"), [
    (_set("tv_spend", 5, -10.0), DataRule.SPEND_NON_NEGATIVE, "tv_spend", [5]),
    (_set("search_spend", 7, np.nan), DataRule.NO_MISSING_VALUES, "search_spend", [7]),
    (_set("sales", 9, np.inf), DataRule.VALUE_FINITE, "sales", [9]),
    (_set("digital_spend", 11, -np.inf), DataRule.VALUE_FINITE, "digital_spend", [11]),
    (_set("price", 3, np.nan), DataRule.NO_MISSING_VALUES, "price", [3]),
    (_fill("email_spend", 0.0), DataRule.CHANNEL_NOT_ALL_ZERO, "email_spend", []),
    (_fill("sales", 5000.0), DataRule.KPI_NOT_CONSTANT, "sales", []),
    (lambda df: df.drop(columns=["digital_spend"]), DataRule.COLUMN_PRESENT, "digital_spend", []),
    (lambda df: df.assign(tv_spend=df["tv_spend"].astype(object).where(df.index != 4, "1,234")),
     DataRule.NUMERIC_TYPE, "tv_spend", [4]),
], ids=["negative-spend", "null-spend", "inf-kpi", "minus-inf-spend", "null-control", "all-zero-channel",
        "constant-kpi", "absent-column", "text-in-numbers"])
def test_each_corruption_fails_its_rule_on_its_column_with_the_week(
        raw: pd.DataFrame, config: PipelineConfig, edit: Callable[[pd.DataFrame], pd.DataFrame], rule: DataRule,
        column: str, rows: list[int]) -> None:
    result = validate_raw_spend(edit(raw.copy()), config)
    assert not result.success
    assert (rule.value, column) in failed(result), result.message()
    failure = next(f for f in result.failures if (f.rule, f.column) == (rule.value, column))
    assert list(failure.example_rows) == [week(raw, i) for i in rows]
    assert failure.sentence().startswith(f"[{rule.value}] raw_spend column '{column}': ")
    assert failure.fix and failure.fix in failure.sentence()


def test_a_failure_is_reported_once_and_against_the_right_expectation(raw: pd.DataFrame,
                                                                      config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[5, "tv_spend"] = -10.0
    result = validate_raw_spend(bad, config)
    assert failed(result) == [("spend-non-negative", "tv_spend")]
    failure = result.failures[0]
    assert failure.expectation == "expect_column_values_to_be_between"
    assert (failure.unexpected_count, failure.example_values) == (1, ("-10",))
    assert result.message() == (
        f"[spend-non-negative] raw_spend column 'tv_spend': spend must be >= 0; 1 week(s) fail: {week(raw, 5)} "
        "(values: -10). Fix: negative spend is usually a refund or a restatement booked as its own row: net it "
        "into the week it belongs to.")


def test_text_in_a_number_column_is_one_failure_not_a_cascade(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.assign(tv_spend=raw["tv_spend"].astype(object))
    bad.loc[4, "tv_spend"] = "1,234"
    result = validate_raw_spend(bad, config)
    assert failed(result) == [("numeric-type", "tv_spend")]
    assert result.failures[0].example_values == ("1,234",)


def test_an_expectation_that_cannot_be_evaluated_is_reported_as_such(raw: pd.DataFrame,
                                                                     config: PipelineConfig) -> None:
    import great_expectations as gx

    from data_checks.gx_runner import Rule, run_suite

    rule = Rule("spend-non-negative", gx.expectations.ExpectColumnValuesToBeBetween(column="label", min_value=0),
                "spend must be >= 0", "fix the export.")
    result = run_suite("adhoc", pd.DataFrame({"label": ["a", "b"]}), [rule])
    assert not result.success and failed(result) == [("spend-non-negative", "label")]
    assert result.failures[0].error and "could not be evaluated" in result.message()


def test_a_constant_channel_fails_even_when_it_is_not_zero(raw: pd.DataFrame, config: PipelineConfig) -> None:
    result = validate_raw_spend(raw.assign(email_spend=100.0), config)
    assert failed(result) == [("channel-not-constant", "email_spend")]
    assert result.failures[0].observed == "1"


def test_missing_weeks_are_named_by_their_dates(raw: pd.DataFrame, config: PipelineConfig) -> None:
    result = validate_raw_spend(raw.drop(index=[20, 21, 90]), config)
    assert failed(result) == [("no-missing-weeks", WEEK)]
    failure = result.failures[0]
    assert failure.unexpected_count == 3
    assert list(failure.example_rows) == [week(raw, 20), week(raw, 21), week(raw, 90)]
    assert failure.example_values == ()  # the zero count of a missing week tells the reader nothing


def test_duplicated_weeks_are_named_with_their_row_counts(raw: pd.DataFrame, config: PipelineConfig) -> None:
    restated = pd.concat([raw, raw.iloc[[30, 30, 31]]]).sort_values(WEEK, kind="stable")
    result = validate_raw_spend(restated, config)
    assert failed(result) == [("one-row-per-week", WEEK)]
    failure = result.failures[0]
    assert list(failure.example_rows) == [week(raw, 30), week(raw, 31)]
    assert list(failure.example_values) == ["3", "2"]


def test_an_off_cadence_date_is_named_and_its_week_reported_missing(raw: pd.DataFrame,
                                                                    config: PipelineConfig) -> None:
    shifted = raw.copy()
    shifted.loc[40, WEEK] = shifted.loc[40, WEEK] + pd.Timedelta(days=2)
    result = validate_raw_spend(shifted, config)
    assert failed(result) == [("no-missing-weeks", WEEK), ("weekly-cadence", WEEK)]
    missing, off = result.failures
    assert list(missing.example_rows) == [week(raw, 40)]
    assert list(off.example_rows) == [str((raw[WEEK].iloc[40] + pd.Timedelta(days=2)).date())]


def test_the_calendar_takes_the_weekday_most_rows_use() -> None:
    weeks = pd.Series(pd.to_datetime(["2024-01-02", "2024-01-08", "2024-01-15", "2024-01-29"]))
    calendar = weekly_calendar(weeks)
    assert [str(d.date()) for d in calendar[WEEK]] == ["2024-01-02", "2024-01-08", "2024-01-15", "2024-01-22",
                                                       "2024-01-29"]
    assert calendar["rows"].tolist() == [1, 1, 1, 0, 1]
    assert calendar["on_cadence"].tolist() == [False, True, True, True, True]
    assert weekly_calendar(pd.Series([], dtype="datetime64[ns]")).empty


def test_history_length_follows_the_configured_threshold(raw: pd.DataFrame, config: PipelineConfig) -> None:
    strict = dataclasses.replace(config, checks=CheckConfig(min_weeks=200))
    result = validate_raw_spend(raw, strict)
    assert failed(result) == [("enough-history", None)]
    assert result.failures[0].observed == "156"
    assert "at least 200 weekly rows are required (checks.min_weeks); observed 156." in result.message()
    assert validate_raw_spend(raw.head(60), config).success
    assert failed(validate_raw_spend(raw.head(51), config)) == [("enough-history", None)]


def test_kpi_positivity_is_checked_only_when_configured(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[[12, 13], "sales"] = [0.0, -5.0]
    assert validate_raw_spend(bad, config).success
    positive = dataclasses.replace(config, data=dataclasses.replace(config.data, kpi_must_be_positive=True))
    result = validate_raw_spend(bad, positive)
    assert failed(result) == [("kpi-positive", "sales")]
    assert list(result.failures[0].example_rows) == [week(raw, 12), week(raw, 13)]


def test_many_failing_rows_are_counted_in_full_and_shown_in_part(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[0:19, "tv_spend"] = -1.0
    failure = validate_raw_spend(bad, config).failures[0]
    assert failure.unexpected_count == 20 and len(failure.example_rows) == 8
    assert "20 week(s) fail: " in failure.sentence() and " and 12 more (values: " in failure.sentence()


def test_the_transformed_media_suite(raw: pd.DataFrame, config: PipelineConfig) -> None:
    features = features_of(raw, config)
    result = validate_transformed_media(features.assign(price=10.0), config)
    assert failed(result) == [("column-not-constant", "price")]
    result = validate_transformed_media(features.drop(columns=["seasonality_sin1"]), config)
    assert failed(result) == [("column-present", "seasonality_sin1")]
    negative = features.copy()
    negative.loc[3, "tv"] = -0.5
    result = validate_transformed_media(negative, config)
    assert failed(result) == [("media-non-negative", "tv")]
    assert list(result.failures[0].example_rows) == [week(raw, 3)]
    result = validate_transformed_media(pd.concat([features, features.iloc[[7]]]), config)
    assert failed(result) == [("one-row-per-week", WEEK)]


def test_failures_become_a_data_error_and_a_table(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.drop(index=[50]).copy()
    bad.loc[2, "email_spend"] = -3.0
    result = validate_raw_spend(bad, config)
    with pytest.raises(DataError) as info:
        result.raise_for_failures()
    assert info.value.rule == "spend-non-negative" and info.value.place == "raw_spend column 'email_spend'"
    assert "Also failed: no-missing-weeks (week)." in info.value.detail
    table = result.failures_table()
    assert table["rule"].tolist() == ["spend-non-negative", "no-missing-weeks"]
    assert table["example_rows"].tolist() == [week(raw, 2), week(raw, 50)]
    assert result.failed_rules() == "spend-non-negative (email_spend), no-missing-weeks (week)"
    validate_raw_spend(raw, config).raise_for_failures()  # a passing result raises nothing


def test_validation_prints_nothing(raw: pd.DataFrame, config: PipelineConfig, capfd: pytest.CaptureFixture) -> None:
    validate_raw_spend(raw.drop(index=[3]), config)
    validate_transformed_media(features_of(raw, config), config)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_the_dagster_checks_are_blocking_and_carry_the_failures(raw: pd.DataFrame, config: PipelineConfig) -> None:
    from dagster import AssetCheckSeverity

    from data_checks.checks import ALL_CHECKS, check_result

    specs = {(s.asset_key.to_user_string(), s.name): s for check in ALL_CHECKS for s in check.check_specs}
    for key in [("raw_spend", "raw_spend_quality"), ("transformed_media", "transformed_media_quality")]:
        assert specs[key].blocking, key
    bad = raw.drop(index=[10]).copy()
    bad.loc[4, "tv_spend"] = -1.0
    result = check_result(validate_raw_spend(bad, config))
    assert result.passed is False and result.severity == AssetCheckSeverity.ERROR
    assert result.metadata["failed"].value == 2
    assert result.metadata["failed_rules"].value == "spend-non-negative (tv_spend), no-missing-weeks (week)"
    table = result.metadata["failures"].value
    assert "| spend-non-negative | tv_spend |" in table and week(raw, 4) in table and week(raw, 10) in table
    assert result.description.splitlines()[0].startswith("[spend-non-negative] raw_spend column 'tv_spend'")
    assert check_result(validate_raw_spend(raw, config)).passed is True


def test_a_suite_keeps_one_of_two_rules_with_the_same_expectation_as_gx_does() -> None:
    """The suite is built in one go (cheap), but stays set-like as `add_expectation` keeps it: the
    same expectation under two rules is validated once; a different bound is its own expectation."""
    import great_expectations as gx

    from data_checks.gx_runner import Rule, run_suite

    def between(low: float) -> Rule:
        return Rule("spend-non-negative", gx.expectations.ExpectColumnValuesToBeBetween(column="x", min_value=low))

    result = run_suite("dedupe", pd.DataFrame({"x": [-1.0, 2.0, 3.0]}), [between(0), between(0), between(-5)])
    assert result.evaluated == 2
    assert not result.success
    assert [f.unexpected_count for f in result.failures] == [1]


def test_failing_rules_list_the_same_rows_as_one_complete_validation() -> None:
    """A suite is validated once for verdicts and again with row lists for the failed rules only:
    the failures, their rows and values are those of one validation that lists every row."""
    import great_expectations as gx

    from data_checks import gx_runner
    from data_checks.gx_runner import Rule, run_suite

    e = gx.expectations
    frame = pd.DataFrame({"x": [-1.0, 2.0, -3.0, 4.0], "y": [1.0, 1.0, 1.0, 1.0], "z": [0.0, 5.0, 6.0, 7.0]})
    rules = [Rule("spend-non-negative", e.ExpectColumnValuesToBeBetween(column="x", min_value=0)),
             Rule("channel-not-constant", e.ExpectColumnUniqueValueCountToBeBetween(column="y", min_value=2)),
             Rule("spend-non-negative", e.ExpectColumnValuesToBeBetween(column="z", min_value=0)),
             Rule("column-present", e.ExpectColumnToExist(column="w"))]

    two_pass = run_suite("two_pass", frame, rules)
    complete = gx_runner._batch_definition("two_pass").get_batch(batch_parameters={"dataframe": frame}).validate(
        gx.ExpectationSuite(name="two_pass", expectations=[r.expectation for r in rules]),
        result_format={"result_format": "COMPLETE"})
    by_column = {r.expectation.column: r for r in rules}
    one_pass = sorted((gx_runner._failure("two_pass", r, by_column[r.expectation_config.kwargs["column"]], None, "row")
                       for r in complete.results if not r.success), key=lambda f: "xyw".index(f.column))
    assert two_pass.evaluated == len(complete.results) == 4 and not two_pass.success
    assert list(two_pass.failures) == one_pass
    assert [(f.rule, f.column) for f in two_pass.failures] == [
        ("spend-non-negative", "x"), ("channel-not-constant", "y"), ("column-present", "w")]
    assert two_pass.failures[0].unexpected_count == 2 and two_pass.failures[0].example_values == ("-1", "-3")
