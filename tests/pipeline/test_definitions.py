"""The one Definitions: what the UI loads, and an in-process materialisation that lands rows in DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster import AssetKey, DagsterInstance

from cmmm_pipeline.definitions import JOB_NAME, build_definitions, defs

ASSETS = ["raw_spend", "transformed_media", "causal_dag", "ate_estimates", "robustness_report"]


def test_definitions_expose_the_five_assets_job_schedule_and_sensor() -> None:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert set(ASSETS) <= keys
    schedule = defs.resolve_schedule_def("cmmm_weekly_schedule")
    assert schedule.cron_schedule == "0 6 * * 1" and schedule.job_name == JOB_NAME
    assert defs.resolve_sensor_def("cmmm_run_failure_alert") is not None
    for key in ASSETS:
        node = repo.asset_graph.get(AssetKey(key))
        assert node.group_name == "cmmm" and node.description and node.owners, key


def test_in_process_materialisation_writes_every_step_to_duckdb(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    local = build_definitions(output_dir=str(tmp_path / "out"), warehouse_path=str(warehouse))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = local.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        run_id = result.run_id
    assert result.success
    assert set(ASSETS) <= materialised
    with duckdb.connect(str(warehouse), read_only=True) as con:
        count = lambda table: con.execute(f"SELECT count(*) FROM published.{table}").fetchall()[0][0]  # noqa: E731
        assert count("raw_spend") == 156
        assert count("transformed_media") == 156
        assert count("dag_edges") == 10
        assert count("ate_estimates") == 6
        assert con.execute("SELECT DISTINCT run_id FROM published.estimates_history").fetchall() == [(run_id,)]
        tv = con.execute("SELECT roi, roi_ci_low, roi_ci_high FROM published.estimates "
                         "WHERE channel = 'tv' AND effect = 'total'").fetchall()[0]
    assert tv[1] < tv[0] < tv[2]
    assert (tmp_path / "out" / "estimates.csv").is_file() and (tmp_path / "out" / "report.html").is_file()
