"""Stale data, seen: the WARN check `raw_spend_newest_week` (no week newer than the last published
run's newest week; newest week too old), its config key, and Dagster's freshness checks on every
published asset with the sensor that evaluates them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    Definitions,
    RunRequest,
    build_sensor_context,
)
from dagster._core.test_utils import freeze_time

from cmmm_pipeline.core.config import CheckConfig
from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.definitions import JOB_NAME, SAMPLE_CONFIG, build_definitions
from data_checks.freshness import (
    FRESHNESS_SENSOR_NAME,
    PUBLISHED_ASSETS,
    assess_freshness,
    published_newest_week,
)

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SAMPLE_LAST_WEEK = dt.date(2025, 12, 22)


def _weeks(last: dt.date, n: int = 4) -> pd.Series:
    return pd.Series(pd.date_range(end=pd.Timestamp(last), periods=n, freq="7D"))


def test_data_with_no_newer_week_name_both_dates() -> None:
    verdict = assess_freshness(_weeks(dt.date(2026, 11, 23)), dt.date(2026, 11, 23), dt.date(2026, 11, 25), 10)
    assert verdict.not_newer and not verdict.too_old and not verdict.passed
    (problem,) = verdict.problems("data file weekly.csv")
    assert problem.startswith("[data-not-newer] data file weekly.csv: the newest week in the data is 2026-11-23, "
                              "not newer than 2026-11-23, the newest week of the last published run")
    assert "Fix: " in problem


def test_an_older_newest_week_than_published_is_also_not_newer() -> None:
    verdict = assess_freshness(_weeks(dt.date(2026, 11, 16)), dt.date(2026, 11, 23), dt.date(2026, 11, 20), 10)
    assert verdict.not_newer
    assert "2026-11-16, not newer than 2026-11-23" in verdict.message("x")


def test_old_data_name_the_age_and_the_key() -> None:
    verdict = assess_freshness(_weeks(dt.date(2026, 11, 2)), dt.date(2026, 10, 26), dt.date(2026, 11, 25), 10)
    assert verdict.too_old and not verdict.not_newer and verdict.age_days == 23
    assert verdict.message("data file w.csv") == (
        "[data-too-old] data file w.csv: the newest week in the data is 2026-11-02, 23 days before 2026-11-25 "
        "(checks.max_data_age_days: 10). Fix: check the export job that writes this file, or raise "
        "checks.max_data_age_days if the data arrive later by design.")


def test_a_new_recent_week_passes_and_says_what_it_compared() -> None:
    verdict = assess_freshness(_weeks(dt.date(2026, 11, 23)), dt.date(2026, 11, 16), dt.date(2026, 11, 30), 10)
    assert verdict.passed and verdict.age_days == 7
    assert verdict.message("x") == ("The newest week is 2026-11-23 (7 days old, at most 10 allowed); newer than "
                                    "2026-11-16, the last published run's newest week.")
    first = assess_freshness(_weeks(dt.date(2026, 11, 23)), None, dt.date(2026, 11, 30), 10)
    assert first.passed and "no earlier publication" in first.message("x")


def test_the_age_bound_is_a_validated_config_key(tmp_path: Path) -> None:
    assert CheckConfig().max_data_age_days == 10
    with pytest.raises(ConfigError, match=r"\[threshold-range\] checks.max_data_age_days: is 0"):
        CheckConfig(max_data_age_days=0)
    config = tmp_path / "config.yaml"
    raw = yaml.safe_load(SAMPLE_CONFIG.read_text(encoding="utf-8"))
    raw["data"]["path"] = str(SAMPLE_CONFIG.parent / "weekly.csv")
    raw["checks"] = {"max_data_age_days": 3}
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_config(config).checks.max_data_age_days == 3
    raw["checks"] = {"max_data_age_days": -1}
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match="max_data_age_days"):
        load_config(config)


def _project(folder: Path, last_week: dt.date, extra_weeks: int = 0, max_age_days: int = 10) -> Path:
    """The sample shifted so its newest week is `last_week` (plus `extra_weeks` appended copies of its
    final rows), with its own config; experiments dropped as their dates no longer apply."""
    raw = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv", parse_dates=["week"])
    if extra_weeks:
        raw = pd.concat([raw, raw.tail(extra_weeks).assign(week=lambda d: d["week"] + pd.Timedelta(weeks=extra_weeks))])
    raw["week"] = raw["week"] + (pd.Timestamp(last_week) - raw["week"].max())
    raw.to_csv(folder / "weekly.csv", index=False, date_format="%Y-%m-%d")
    config = yaml.safe_load(SAMPLE_CONFIG.read_text(encoding="utf-8"))
    config.pop("experiments", None)
    config.pop("campaigns", None)  # dated windows of the sample's calendar, which this project shifts
    config["checks"] = {"max_data_age_days": max_age_days}
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder / "config.yaml"


def _raw_spend_run(folder: Path, config: Path, published: pd.DataFrame | None):
    """raw_spend and its checks, on a warehouse whose `published` schema holds `published` as the last
    run's raw table (when given)."""
    database = folder / "w.duckdb"
    if published is not None:
        with duckdb.connect(str(database)) as con:
            warehouse.write_tables(con, {"raw_spend": published}, schema=warehouse.PUBLISHED)
    defs = build_definitions(config_path=str(config), output_dir=str(folder / "out"), warehouse_path=str(database))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        return defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, asset_selection=[AssetKey("raw_spend")], raise_on_error=False, run_config=QUIET)


def _freshness(result) -> object:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "raw_spend_newest_week")


def test_the_same_export_again_warns_with_both_dates_and_does_not_block(tmp_path: Path) -> None:
    recent = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    config = _project(tmp_path, recent)
    published = pd.read_csv(tmp_path / "weekly.csv", parse_dates=["week"])
    result = _raw_spend_run(tmp_path, config, published)
    assert result.success  # WARN: the run goes on
    check = _freshness(result)
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.description.startswith(f"[data-not-newer] data file weekly.csv: the newest week in the data is "
                                        f"{recent}, not newer than {recent}, the newest week of the last published run")
    assert "data-too-old" not in check.description
    assert check.metadata["newest_week"].value == str(recent)
    assert check.metadata["published_newest_week"].value == str(recent)
    assert check.metadata["failed_rules"].value == "data-not-newer"


def test_a_new_week_passes(tmp_path: Path) -> None:
    recent = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    config = _project(tmp_path, recent)
    published = pd.read_csv(tmp_path / "weekly.csv", parse_dates=["week"]).iloc[:-1]
    check = _freshness(_raw_spend_run(tmp_path, config, published))
    assert check.passed, check.description
    assert check.metadata["published_newest_week"].value == str(recent - dt.timedelta(days=7))
    assert check.metadata["age_days"].value == 3


def test_old_data_warn_on_their_age(tmp_path: Path) -> None:
    old = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)
    config = _project(tmp_path, old, max_age_days=14)
    check = _freshness(_raw_spend_run(tmp_path, config, None))
    assert not check.passed
    assert check.description.startswith(f"[data-too-old] data file weekly.csv: the newest week in the data is {old}, "
                                        "30 days before")
    assert "(checks.max_data_age_days: 14)" in check.description
    assert check.metadata["published_newest_week"].value == "none yet"


def test_published_newest_week_reads_the_last_publication(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert published_newest_week(con) is None
        warehouse.write_tables(con, {"raw_spend": pd.DataFrame({"week": _weeks(SAMPLE_LAST_WEEK), "x": 1.0})},
                               schema=warehouse.PUBLISHED)
        assert published_newest_week(con) == SAMPLE_LAST_WEEK


def test_every_published_asset_has_a_freshness_check_and_a_sensor_that_evaluates_it(tmp_path: Path) -> None:
    defs = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(tmp_path / "w.duckdb"))
    graph = defs.get_repository_def().asset_graph
    for asset in PUBLISHED_ASSETS:
        spec = graph.get_check_spec(AssetCheckKey(AssetKey(asset), "freshness_check"))
        assert spec is not None, asset
    assert defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME) is not None


def _sensor_tick(defs: Definitions, instance: DagsterInstance) -> None:
    """One tick of the freshness sensor, and the check-only run it requests (if any)."""
    request = defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME)(build_sensor_context(instance=instance, definitions=defs))
    if isinstance(request, RunRequest):
        run = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection=set(request.asset_check_keys)).execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False)
        assert run.success  # a WARN check fails the check, not the run


def _latest(instance: DagsterInstance, key: AssetCheckKey) -> AssetCheckEvaluation:
    record = instance.event_log_storage.get_asset_check_summary_records([key])[key]
    return record.last_completed_check_execution_record.event.asset_check_evaluation


def test_the_weekly_job_leaves_the_freshness_checks_to_their_sensor(tmp_path: Path) -> None:
    defs = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(tmp_path / "w.duckdb"))
    in_job = {k.to_user_string() for k in defs.resolve_job_def(JOB_NAME).asset_layer.asset_graph.asset_check_keys}
    assert "raw_spend:raw_spend_newest_week" in in_job
    assert not any(k.endswith(":freshness_check") for k in in_job)


def test_an_asset_not_refreshed_for_eight_days_shows_overdue(tmp_path: Path) -> None:
    """raw_spend materialised on a Tuesday: the sensor's check passes; nine days later with no new run
    (a missed weekly refresh) the sensor asks again and the check fails (WARN): the graph shows it overdue."""
    config = _project(tmp_path, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3))
    defs = build_definitions(config_path=str(config), output_dir=str(tmp_path / "out"),
                             warehouse_path=str(tmp_path / "w.duckdb"))
    tuesday = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    key = AssetCheckKey(AssetKey("raw_spend"), "freshness_check")
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        with freeze_time(tuesday):
            defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance, asset_selection=[AssetKey("raw_spend")],
                                                              run_config=QUIET)
            _sensor_tick(defs, instance)
            fresh = _latest(instance, key)
        with freeze_time(tuesday + dt.timedelta(days=9)):
            _sensor_tick(defs, instance)
            stale = _latest(instance, key)
    assert fresh.passed
    assert not stale.passed and stale.severity == AssetCheckSeverity.WARN
    assert "9 days ago" in stale.description and "8 days" in stale.description
    assert stale.metadata["dagster/last_updated_timestamp"].value == pytest.approx(tuesday.timestamp(), abs=120)
