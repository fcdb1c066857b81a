"""The value-outlier gate: a wild KPI or spend week is refused by name before any estimate, bursty but
real spend passes, a per-column threshold lets a known one-off through, and its config keys are checked."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cmmm_pipeline.core.config import CheckConfig, PipelineConfig
from cmmm_pipeline.core.errors import ConfigError, DataError
from cmmm_pipeline.core.loading import load_config, parse_config
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.data.outliers import (
    SPEND_MAX_LOG_SCALE,
    SPEND_MIN_LOG_SCALE,
    ColumnKind,
    kpi_bound,
    spend_bound,
)
from cmmm_pipeline.media.features import WEEK
from data_checks.gx_runner import SuiteResult
from data_checks.suites import DataRule, validate_raw_spend

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"
RULE = DataRule.VALUE_OUTLIER.value


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(SAMPLE)


@pytest.fixture(scope="module")
def raw(config: PipelineConfig) -> pd.DataFrame:
    return load_raw(config)


def with_checks(config: PipelineConfig, **checks: object) -> PipelineConfig:
    return dataclasses.replace(config, checks=CheckConfig(**checks))


def outliers(result: SuiteResult) -> list[tuple[str | None, tuple[str, ...]]]:
    return [(f.column, f.example_rows) for f in result.failures if f.rule == RULE]


def week(raw: pd.DataFrame, i: int) -> str:
    return str(raw[WEEK].iloc[i].date())


def median_spending_week(spend: pd.Series) -> int:
    """The row of the spending week nearest the median spending week (a x100 error there is wild)."""
    active = spend[spend > 0]
    return int((np.log(active) - np.log(active).median()).abs().idxmin())


# --- the robust bounds --------------------------------------------------------------------------------

def test_the_kpi_bound_is_median_plus_threshold_robust_scales_and_ignores_the_wild_week() -> None:
    y = np.random.default_rng(1).normal(10_000.0, 1_000.0, 200)
    clean = kpi_bound(y, "sales", 20.0)
    wild = kpi_bound(np.append(y, 9.9e11), "sales", 20.0)
    assert clean is not None and wild is not None
    assert clean.center == pytest.approx(np.median(y))
    assert clean.scale == pytest.approx(1.4826 * np.median(np.abs(y - np.median(y))))
    assert clean.scale == pytest.approx(1_000.0, rel=0.15)  # the MAD scale is the SD of normal data
    assert (clean.lower, clean.upper) == pytest.approx((clean.center - 20 * clean.scale,
                                                        clean.center + 20 * clean.scale))
    assert wild.upper == pytest.approx(clean.upper, rel=0.01)  # one wild week barely moves median and MAD
    assert wild.flags(np.array([9.9e11, -9.9e11, 10_500.0])).tolist() == [True, True, False]


def test_a_steady_kpi_keeps_a_scale_of_five_percent_of_its_median() -> None:
    y = np.full(104, 5_000.0)
    y[::2] += 1.0  # a KPI that barely moves: MAD scale 1.5
    bound = kpi_bound(y, "sales", 20.0)
    assert bound is not None and bound.scale == pytest.approx(0.05 * 5_000.5, rel=1e-3)
    assert not bound.flags(np.array([9_000.0])).any()  # a promotion week at 1.8x passes
    assert bound.flags(np.array([11_000.0])).all()


def test_the_spend_bound_uses_the_spending_weeks_on_a_log_scale() -> None:
    rng = np.random.default_rng(2)
    spend = np.where(rng.random(156) < 0.6, 0.0, 1_000.0 * np.exp(rng.normal(0.0, 0.3, 156)))
    bound = spend_bound(spend, "tv_spend", 10.0)
    logs = np.log(spend[spend > 0])
    assert bound is not None and bound.kind is ColumnKind.SPEND and bound.weeks == int((spend > 0).sum())
    assert bound.center == pytest.approx(np.exp(np.median(logs)))
    assert bound.scale == pytest.approx(1.4826 * np.median(np.abs(logs - np.median(logs))))
    assert bound.upper == pytest.approx(bound.center * np.exp(10 * bound.scale))
    assert bound.lower is None and not bound.flags(np.zeros(3)).any()  # dark weeks are never outliers


def test_the_spend_log_scale_is_held_between_its_limits() -> None:
    steady = 100.0 * np.exp(np.random.default_rng(3).normal(0.0, 0.01, 104))
    erratic = 100.0 * np.exp(np.random.default_rng(4).normal(0.0, 2.0, 104))
    assert spend_bound(steady, "a", 10.0).scale == SPEND_MIN_LOG_SCALE  # type: ignore[union-attr]
    assert spend_bound(erratic, "b", 10.0).scale == SPEND_MAX_LOG_SCALE  # type: ignore[union-attr]
    assert spend_bound(erratic, "b", 10.0).upper < 100.0 * 60  # type: ignore[union-attr]


def test_too_few_weeks_cannot_be_judged() -> None:
    assert spend_bound(np.array([0.0] * 100 + [5.0] * 7), "a", 10.0) is None
    assert kpi_bound(np.arange(7.0), "sales", 20.0) is None


# --- the raw_spend suite ---------------------------------------------------------------------------------

def test_the_wild_kpi_week_of_the_issue_is_refused_by_name(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[40, "sales"] = 9.9e11
    result = validate_raw_spend(bad, config)
    assert not result.success and outliers(result) == [("sales", (week(raw, 40),))]
    failure = result.failures[0]
    assert (failure.rule, failure.unexpected_count, failure.example_values) == (RULE, 1, ("9.9e+11",))
    assert failure.expectation == "expect_column_values_to_be_between"
    median = bad["sales"].median()
    assert f"median {median:,.6g}" in failure.sentence()
    assert "robust scale" in failure.sentence() and "checks.outlier_columns.sales" in failure.fix
    with pytest.raises(DataError) as info:
        result.raise_for_failures()
    assert info.value.rule == RULE and info.value.place == "raw_spend column 'sales'"
    assert str(info.value).startswith(f"[{RULE}] raw_spend column 'sales': a KPI week must lie within 20 robust "
                                      "scales of the median week")


def test_a_hundredfold_spend_week_is_refused(raw: pd.DataFrame, config: PipelineConfig) -> None:
    row = median_spending_week(raw["digital_spend"])
    bad = raw.copy()
    bad.loc[row, "digital_spend"] *= 100
    result = validate_raw_spend(bad, config)
    assert outliers(result) == [("digital_spend", (week(raw, row),))]
    assert "spending week must lie within 10 robust scales" in result.message()


def test_a_negative_wild_kpi_week_is_refused_too(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[7, "sales"] = -9.9e11
    assert outliers(validate_raw_spend(bad, config)) == [("sales", (week(raw, 7),))]


def flighted(raw: pd.DataFrame) -> pd.DataFrame:
    """Real-looking bursts: TV in four-week flights of very different weights with dark weeks between,
    a Q4 push of 4x; email launched after 30 dark weeks with a 6x launch week; search 8x on Black
    Friday; the KPI at up to 3.5x its median in the holiday weeks."""
    rng = np.random.default_rng(5)
    out = raw.copy()
    n = len(out)
    week_of_year = out[WEEK].dt.isocalendar().week.to_numpy(dtype=int)
    on_air = np.repeat(rng.random(n // 4 + 1) < 0.5, 4)[:n]
    weight = np.repeat(np.exp(rng.normal(0.0, 0.6, n // 4 + 1)), 4)[:n]
    out["tv_spend"] = np.where(on_air, 2_000.0 * weight * np.where(week_of_year >= 44, 4.0, 1.0), 0.0).round(2)
    email = 100.0 * np.exp(rng.normal(0.0, 0.3, n))
    email[:30] = 0.0
    email[30] *= 6.0
    out["email_spend"] = email.round(2)
    out["search_spend"] = out["search_spend"] * np.where(week_of_year == 47, 8.0, 1.0)
    out["sales"] = out["sales"] * np.select([week_of_year == 47, week_of_year >= 48], [3.5, 2.5], 1.0)
    return out


def test_flighted_spend_with_zeros_and_bursts_passes(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bursty = flighted(raw)
    assert (bursty["tv_spend"] == 0).mean() > 0.3 and (bursty["email_spend"] == 0).sum() == 30
    assert bursty["sales"].max() / bursty["sales"].median() > 3.0
    result = validate_raw_spend(bursty, config)
    assert result.success, result.message()


def test_the_bundled_sample_passes_with_room_to_spare(raw: pd.DataFrame, config: PipelineConfig) -> None:
    assert validate_raw_spend(raw, config).success
    tight = with_checks(config, outlier_kpi_threshold=3.0, outlier_spend_threshold=3.0)
    assert not validate_raw_spend(raw, tight).success  # the rule is live: at 3 scales the sample's own peaks fail


def _threshold_in_fix(result: SuiteResult) -> float:
    fix = next(f.fix for f in result.failures if f.rule == RULE)
    return float(re.search(r"set above ([0-9.e+]+) ", fix).group(1))  # type: ignore[union-attr]


def test_a_per_column_threshold_lets_a_known_one_off_through(raw: pd.DataFrame, config: PipelineConfig) -> None:
    row = median_spending_week(raw["tv_spend"])
    bad = raw.copy()
    bad.loc[row, "tv_spend"] *= 60  # a known one-off: real, and far beyond the channel's usual weeks
    refused = validate_raw_spend(bad, config)
    assert outliers(refused) == [("tv_spend", (week(raw, row),))]
    needed = _threshold_in_fix(refused)
    assert 10.0 < needed < 12.0
    assert validate_raw_spend(bad, with_checks(config, outlier_columns={"tv_spend": needed})).success
    assert not validate_raw_spend(bad, with_checks(config, outlier_columns={"tv_spend": needed - 0.2})).success
    assert validate_raw_spend(bad, with_checks(config, outlier_columns={"tv_spend": "off"})).success
    other = with_checks(config, outlier_columns={"search_spend": None})  # another column off: tv still judged
    assert outliers(validate_raw_spend(bad, other)) == [("tv_spend", (week(raw, row),))]


def test_the_kpi_can_be_switched_off_alone(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[40, "sales"] = 9.9e11
    assert validate_raw_spend(bad, with_checks(config, outlier_columns={"sales": False})).success


def test_a_column_that_other_rules_refuse_is_not_judged_twice(raw: pd.DataFrame, config: PipelineConfig) -> None:
    bad = raw.copy()
    bad.loc[9, "sales"] = np.inf
    result = validate_raw_spend(bad, config)
    assert [f.rule for f in result.failures] == [DataRule.VALUE_FINITE.value]


# --- the config keys ---------------------------------------------------------------------------------------

def parse_with_checks(checks: str) -> PipelineConfig:
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw["checks"] = yaml.safe_load(checks)
    return parse_config(raw, SAMPLE)


def test_the_config_reads_per_column_thresholds_and_off() -> None:
    config = parse_with_checks("{outlier_kpi_threshold: 25, outlier_columns: {tv_spend: 30, sales: off, "
                               "email_spend: 'off'}}")
    checks = config.checks
    assert checks.outlier_columns == (("tv_spend", 30.0), ("sales", None), ("email_spend", None))
    assert checks.outlier_threshold("tv_spend", False) == 30.0
    assert checks.outlier_threshold("sales", True) is None
    assert checks.outlier_threshold("search_spend", False) == 10.0
    assert parse_with_checks("{}").checks.outlier_threshold("sales", True) == 20.0
    hash(config)  # still a frozen, hashable config


@pytest.mark.parametrize(("checks", "rule", "place", "words"), [
    ("{outlier_columns: {tv_spnd: 30}}", "config-unknown-key", "checks.outlier_columns.tv_spnd",
     "did you mean 'tv_spend'?"),
    ("{outlier_columns: {price: 30}}", "config-unknown-key", "checks.outlier_columns.price", "sales, tv_spend"),
    ("{outlier_columns: {tv_spend: 2}}", "threshold-range", "checks.outlier_columns.tv_spend", "at least 3"),
    ("{outlier_columns: {tv_spend: lots}}", "config-type", "checks.outlier_columns.tv_spend", "number or off"),
    ("{outlier_columns: {tv_spend: true}}", "config-type", "checks.outlier_columns.tv_spend", "number or off"),
    ("{outlier_columns: [tv_spend]}", "config-type", "checks.outlier_columns", "mapping"),
    ("{outlier_kpi_threshold: 1}", "threshold-range", "checks.outlier_kpi_threshold", "at least 3"),
    ("{outlier_spend_threshold: high}", "config-type", "checks.outlier_spend_threshold", "finite number"),
], ids=["misspelt-column", "not-judged-column", "below-3", "text", "true", "list", "kpi-below-3", "spend-text"])
def test_bad_outlier_settings_are_refused_with_their_key(checks: str, rule: str, place: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_with_checks(checks)
    error = info.value
    assert (error.rule, error.place) == (rule, f"{SAMPLE} key '{place}'"), str(error)
    assert words in str(error)


def test_thresholds_built_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError) as info:
        CheckConfig(outlier_spend_threshold=0.5, outlier_columns={"tv_spend": -1})
    assert [p.rule for p in info.value.problems] == ["threshold-range", "threshold-range"]


@pytest.mark.parametrize("z", [3.01, 11.04, 9_999.99, 10_000.0, 100_040.0, 6.61177e8, 1.0004e12])
def test_the_threshold_a_message_suggests_lets_the_week_through(z: float) -> None:
    from data_checks.suites import _above

    suggested = float(_above(z))
    assert z <= suggested <= z * 1.011 + 0.1
