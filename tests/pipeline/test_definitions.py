"""The one Definitions: what the UI loads, and an in-process materialisation that lands rows in DuckDB,
parses the config once, stages in its own schema and shows ROI and the report in the UI."""

from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from cmmm_pipeline.core import loading
from cmmm_pipeline.data.warehouse import run_staging_schemas
from cmmm_pipeline.definitions import JOB_NAME, WAREHOUSE_TAG, build_definitions, defs

ASSETS = ["raw_spend", "transformed_media", "causal_dag", "ate_estimates", "budget_plan", "robustness_report"]


def test_definitions_expose_the_six_assets_job_schedule_and_sensor() -> None:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert set(ASSETS) <= keys
    schedule = defs.resolve_schedule_def("cmmm_weekly_schedule")
    assert schedule.cron_schedule == "0 6 * * 1" and schedule.job_name == JOB_NAME
    assert defs.resolve_sensor_def("cmmm_run_failure_alert") is not None
    for key in ASSETS:
        node = repo.asset_graph.get(AssetKey(key))
        assert node.group_name == "cmmm" and node.description and node.owners, key


def test_the_job_runs_in_process_and_is_tagged_for_the_run_queue() -> None:
    job = build_definitions(warehouse_path="/data/w.duckdb").resolve_job_def(JOB_NAME)
    assert job.executor_def.name == "in_process"  # one set-up of the run's resources serves every step
    assert job.run_tags[WAREHOUSE_TAG] == "/data/w.duckdb"  # one run in progress per warehouse (dagster.yaml)


@pytest.mark.slow
def test_in_process_materialisation_writes_every_step_to_duckdb(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[Path] = []
    parse = loading.parse_config

    def counted(raw: object, source: Path, *args: object, **kwargs: object) -> object:
        parses.append(source)
        return parse(raw, source, *args, **kwargs)

    monkeypatch.setattr(loading, "parse_config", counted)
    warehouse = tmp_path / "w.duckdb"
    local = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(warehouse))
    parses.clear()  # loading the code reads the config once to learn its markets; the run reads it once more
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = local.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                    for e in result.get_asset_materialization_events()}
        report = metadata["robustness_report"]
        run_id = result.run_id
    assert result.success
    assert set(ASSETS) <= materialised
    assert len(parses) == 1, parses  # every asset and check of the run read the one parsed config
    # ROI per channel and effect as top-level floats (plotted across runs), the report as a link
    assert report["roi/tv/total"].value > 0 and {"roi/search/total", "roi/tv/direct"} <= set(report)
    assert report["report"].value == (tmp_path / "out" / "report.html").resolve().as_uri()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        count = lambda table: con.execute(f"SELECT count(*) FROM published.{table}").fetchall()[0][0]
        assert count("raw_spend") == 156
        assert count("transformed_media") == 156
        assert count("dag_edges") == 10
        assert count("ate_estimates") == 6
        assert con.execute("SELECT DISTINCT run_id FROM published.estimates_history").fetchall() == [(run_id,)]
        tv = con.execute("SELECT roi, roi_ci_low, roi_ci_high FROM published.estimates "
                         "WHERE channel = 'tv' AND effect = 'total'").fetchall()[0]
        staged = run_staging_schemas(con)
        steps = [r[0] for r in con.execute("SELECT step FROM published.step_values ORDER BY step").fetchall()]
    assert tv[1] < tv[0] < tv[2]
    # Rounded to two significant digits of the interval's width, in the float and in the table, whose
    # headers name the estimand; ate_estimates says its ROI is the one at the applied transforms.
    decimals = 1 - math.floor(math.log10(tv[2] - tv[1]))
    assert report["roi/tv/total"].value == round(tv[0], decimals)
    shown = f"{tv[0]:.{decimals}f} [{tv[1]:.{decimals}f}, {tv[2]:.{decimals}f}]"
    assert f"| tv | {shown} |" in report["estimates"].value
    assert report["estimates"].value.splitlines()[0] == "| estimate | ROI, published [95%] | robustness |"
    ate = metadata["ate_estimates"]["estimates"].value
    assert ate.splitlines()[0].startswith("| estimate | ROI at applied transforms | naive ROI (one OLS, no DAG) |")
    assert re.search(r"\| tv \| \d\.\d\d \| \d\.\d\d \| \d{3},000 \|", ate)
    assert report["forest_plot"].value.startswith("![") and "data:image/svg+xml," in report["forest_plot"].value
    assert len(report["forest_plot"].value) < 1000  # short enough for the UI to show the image in place
    assert staged == []  # the run's own staging schema is gone once it published
    assert steps == ["ate_estimates", "budget_plan", "causal_dag", "raw_spend", "transformed_media"]
    assert (tmp_path / "out" / "estimates.csv").is_file() and (tmp_path / "out" / "report.html").is_file()


def test_a_refusal_heads_the_failed_step_with_its_rule_paragraph(tmp_path: Path) -> None:
    """In the UI a failed run is headed by the rule paragraph, not a stack trace."""
    from assets.raw_spend import raw_spend
    from resources.io_manager import StagingIOManager
    from resources.settings import CmmmSettings

    config = yaml.safe_load((Path(loading.__file__).parents[1] / "sample" / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(Path(loading.__file__).parents[1] / "sample" / "weekly.csv")
    config["data"]["kpi"] = "revenue"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = materialize([raw_spend], raise_on_error=False, resources={
        "settings": CmmmSettings(config_path=str(tmp_path / "config.yaml"), output_dir=str(tmp_path)),
        "io_manager": StagingIOManager(database=str(tmp_path / "w.duckdb"))})
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("[") and "revenue" in description and "Fix:" in description
    assert failure.step_failure_data.user_failure_data.metadata["rule"].value == description[1:].split("]")[0]


def test_a_failed_blocking_check_heads_its_step_failure_with_the_rule_paragraph(tmp_path: Path) -> None:
    """Negative spend in one week: the run page's step failure carries the rule paragraph (rule, place,
    week, value, fix) as its description, the same text as the check's own result, not "1 blocking
    asset check failed"; nothing downstream runs."""
    import pandas as pd

    from assets.raw_spend import raw_spend
    from assets.transformed_media import transformed_media
    from data_checks.checks import raw_spend_quality
    from resources.io_manager import StagingIOManager
    from resources.settings import CmmmSettings

    sample = Path(loading.__file__).parents[1] / "sample"
    data = pd.read_csv(sample / "weekly.csv")
    data.loc[10, "tv_spend"] = -250.0
    data.to_csv(tmp_path / "weekly.csv", index=False)
    config = yaml.safe_load((sample / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(tmp_path / "weekly.csv")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = materialize([raw_spend, transformed_media, raw_spend_quality], raise_on_error=False, resources={
        "settings": CmmmSettings(config_path=str(tmp_path / "config.yaml"), output_dir=str(tmp_path)),
        "io_manager": StagingIOManager(database=str(tmp_path / "w.duckdb"))})
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    (evaluation,) = result.get_asset_check_evaluations()
    user = failure.step_failure_data.user_failure_data
    assert failure.step_key == "raw_spend_raw_spend_quality" and user is not None
    week = str(pd.Timestamp(data.loc[10, "week"]).date())
    assert user.description.startswith("[spend-non-negative] raw_spend column 'tv_spend'")
    assert week in user.description and "-250" in user.description and "Fix:" in user.description
    assert user.description == evaluation.description and not evaluation.passed
    assert user.metadata["check"].value == "raw_spend.raw_spend_quality"
    assert "transformed_media" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
