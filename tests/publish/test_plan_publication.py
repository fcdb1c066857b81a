"""The weekly run's budget plan is part of the one publication: `published.budget_plan` and
`plan.csv` of the same run, with the report's section; a plan outside support is refused without
failing the run; a run without a plan publishes no plan.csv and says so."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from cmmm_pipeline.data import warehouse
from cmmm_pipeline.publish import outputs
from tests.publish.test_publication import fast_sample_config

pytestmark = pytest.mark.slow

WEEKS = 13
BUDGET = 31200.0


def planned_config(directory: Path, plan: dict | None) -> Path:
    path = fast_sample_config(directory)
    if plan is not None:
        (directory / "plan.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
        path.write_text(path.read_text(encoding="utf-8") + "planning: {plan: plan.yaml}\n", encoding="utf-8")
    return path


def run(config: Path, out: Path):  # noqa: ANN201 - RunOutcome
    from cmmm_pipeline.run import run_pipeline

    outcome = run_pipeline(str(config), str(out), str(out / "cmmm.duckdb"))
    assert outcome.success, outcome.error
    return outcome


def published(out: Path) -> tuple[pd.DataFrame, outputs.PublicationCheck, str]:
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        table = warehouse.read_table(con, "budget_plan", warehouse.PUBLISHED)
        check = outputs.verify_publication(con, out)
        run_id = warehouse.published_run(con).run_id
    return table, check, run_id


def plan_section(out: Path) -> str:
    html = (out / outputs.REPORT_FILE).read_text(encoding="utf-8")
    section = re.search(r'<section id="plan">.*?</section>', html, re.S)
    assert section is not None
    return section.group(0)


def test_the_plan_publishes_with_the_run_is_refused_outside_support_and_goes_when_unconfigured(
        tmp_path: Path) -> None:
    from dagster import DagsterInstance

    from cmmm_pipeline.definitions import JOB_NAME, build_definitions

    out = tmp_path / "out"
    # Run A: an optimised plan inside support, through the job itself to read the asset's metadata.
    config = planned_config(tmp_path / "a", {"weeks": WEEKS, "total_budget": BUDGET, "bounds": {"tv": [0, 1200]}})
    defs = build_definitions(str(config), str(out), str(out / "cmmm.duckdb"))
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        result = defs.resolve_job_def(JOB_NAME).execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert result.success
    metadata = next(e for e in result.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == "budget_plan").materialization.metadata
    check_results = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    table, check, run_a = published(out)
    assert check.ok, check.problems
    csv = pd.read_csv(out / "plan.csv", keep_default_na=False, na_values=[""])
    assert (out / "plan.csv").resolve().parent.name == run_a
    assert csv.shape == table.shape and list(csv["channel"]) == ["tv", "search", "digital", "email", "total"]
    channels, total = table[table["channel"] != "total"], table[table["channel"] == "total"].iloc[0]
    assert channels["weekly_spend"].sum() == pytest.approx(BUDGET / WEEKS, rel=1e-9)
    assert total["weekly_spend"] == pytest.approx(BUDGET / WEEKS, rel=1e-9)
    assert channels.set_index("channel").loc["tv", "weekly_spend"] <= 1200 + 1e-6
    assert ((channels["weekly_spend"] >= channels["supported_low"] - 1e-6)
            & (channels["weekly_spend"] <= channels["supported_high"] + 1e-6)).all()
    assert table["within_support"].astype(bool).all() and (table["status"] == "planned").all()
    # The total's gain is the channels' gains less the optimiser's optimism; its interval includes the
    # near-equivalent curves' gains.
    assert total["gain"] + total["gain_optimism"] == pytest.approx(channels["gain"].sum(), rel=1e-9)
    assert total["gain_optimism"] > 0
    assert total["gain_ci_low"] <= total["gain_shape_low"] <= total["gain"] <= total["gain_shape_high"]
    assert total["gain_shape_high"] <= total["gain_ci_high"]
    assert total["gain_ci_low"] < total["gain"] < total["gain_ci_high"]
    assert (channels["incremental_ci_low"] < channels["incremental_kpi"]).all()
    assert (channels["incremental_kpi"] < channels["incremental_ci_high"]).all()
    # Week by week (plan_weeks.csv, from the same run): each channel's weeks add up to its plan.csv row.
    weeks = pd.read_csv(out / "plan_weeks.csv", parse_dates=["week"])
    assert (out / "plan_weeks.csv").resolve().parent.name == run_a
    assert len(weeks) == WEEKS * len(channels) and weeks["week"].nunique() == WEEKS
    by_channel = weeks.groupby("channel")[["spend", "incremental_kpi"]].sum()
    rows_a = channels.set_index("channel")
    assert by_channel["spend"].to_dict() == pytest.approx((rows_a["weekly_spend"] * WEEKS).to_dict(), rel=1e-9)
    assert by_channel["incremental_kpi"].to_dict() == pytest.approx(rows_a["incremental_kpi"].to_dict(), rel=1e-6)
    # The UI: the gain and its interval as floats, a flag per channel, the table with estimand headers.
    for key in ("gain", "gain_ci_low", "gain_ci_high"):
        assert metadata[f"total_{key}"].value == pytest.approx(total[key], rel=1e-9)
    assert all(metadata[f"within_support/{c}"].value is True for c in channels["channel"])
    assert metadata["status"].value == "planned" and metadata["mode"].value == "optimise"
    plan_md = metadata["plan"].value
    assert "incremental sales over 13 weeks" in plan_md and "gain in sales vs current" in plan_md
    assert check_results["plan_within_support"] is True
    section = plan_section(out)
    assert f"Total gain over the current allocation: {total['gain']:,.0f} sales" in section
    assert f"{total['gain_ci_low']:,.0f} to {total['gain_ci_high']:,.0f}" in section
    assert section.count("data:image/svg+xml") == 1 and "current weekly spend" in section

    # Run B: an evaluated plan with TV at twice its supported top: refused, the run still publishes.
    tv_high = float(channels.set_index("channel").loc["tv", "supported_high"])
    spend = {"tv": round(2 * tv_high), "search": 700, "digital": 600, "email": 150}
    outcome = run(planned_config(tmp_path / "b", {"weeks": WEEKS, "spend": spend}), out)
    table, check, run_b = published(out)
    assert check.ok, check.problems
    assert run_b != run_a
    rows = table.set_index("channel")
    assert (rows["status"] == "refused").all() and rows.loc["tv", "rule"] == "plan-outside-support"
    assert not rows.loc["tv", "within_support"] and rows.loc[["search", "digital", "email"], "within_support"].all()
    assert f"{spend['tv']:,.0f}" in rows.loc["tv", "message"] and f"{tv_high:,.0f}" in rows.loc["tv", "message"]
    assert pd.read_csv(out / "plan.csv").shape == table.shape
    assert not (out / "plan_weeks.csv").exists()  # a refused plan has no weeks; run A's are not left published
    assert any(n.startswith("WARN") and "plan_within_support" in n and "plan-outside-support" in n
               for n in outcome.notes), outcome.notes
    assert "was refused (plan-outside-support)" in plan_section(out)
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        assert len(warehouse.read_table(con, "estimates", warehouse.PUBLISHED))

    # Run C: no plan in the config: an empty table (no stale plan stays published), no plan.csv.
    run(planned_config(tmp_path / "c", None), out)
    table, check, _ = published(out)
    assert check.ok, check.problems
    assert table.empty and not (out / "plan.csv").exists() and not (out / "current" / "plan.csv").exists()
    assert not (out / "plan_weeks.csv").exists()
    assert "No plan was configured" in plan_section(out)
