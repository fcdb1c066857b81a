"""The weekly run's plan: a plan inside support is computed with the planner's numbers; a plan
outside support is refused into rows that name the rule, the channel and its supported range, and
the run is not failed by it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmmm_pipeline.plan.planner import TOTAL, run_plan
from cmmm_pipeline.plan.spec import parse_plan
from cmmm_pipeline.plan.weekly import BUDGET_PLAN_COLUMNS, PlanStatus, empty_plan_table, weekly_plan

SOURCE = Path("plan.yaml")


def test_an_evaluated_plan_inside_support_matches_the_planner(sample_model, sample_config) -> None:
    spend = {"tv": 900, "search": 700, "digital": 600, "email": 150}
    spec = parse_plan({"weeks": 13, "spend": spend}, SOURCE, sample_config)
    plan = weekly_plan(sample_model, spec)
    assert plan.status is PlanStatus.PLANNED and plan.refusals == ()
    table = plan.table.set_index("channel")
    assert list(plan.table.columns) == BUDGET_PLAN_COLUMNS
    expected = run_plan(sample_model, spec).table.set_index("channel")
    np.testing.assert_allclose(table["incremental_kpi"], expected["incremental_kpi"], rtol=1e-12)
    assert table.loc[TOTAL, "weekly_spend"] == pytest.approx(sum(spend.values()))
    # The total's gain is the sum of the channels'.
    assert table.loc[TOTAL, "gain"] == pytest.approx(table.drop(TOTAL)["gain"].sum(), rel=1e-9)
    assert table["within_support"].all() and (table["status"] == "planned").all() and (table["weeks"] == 13).all()


def test_a_plan_outside_support_is_refused_into_rows_naming_rule_channel_and_range(sample_model,
                                                                                    sample_config) -> None:
    high = sample_model.supports["tv"].high
    spend = {"tv": round(high * 2), "search": 700, "digital": 600, "email": 150}
    plan = weekly_plan(sample_model, parse_plan({"weeks": 13, "spend": spend}, SOURCE, sample_config))
    assert plan.status is PlanStatus.REFUSED
    assert [e.rule for e in plan.refusals] == ["plan-outside-support"]
    table = plan.table.set_index("channel")
    tv = table.loc["tv"]
    assert tv["rule"] == "plan-outside-support" and not tv["within_support"]
    assert tv["weekly_spend"] == spend["tv"] and tv["supported_high"] == pytest.approx(high)
    assert f"{spend['tv']:,.0f}" in tv["message"] and sample_model.supports["tv"].text() in tv["message"]
    assert table.drop(["tv", TOTAL])["rule"].eq("").all() and table.drop(["tv", TOTAL])["within_support"].all()
    assert table.loc[TOTAL, "rule"] == "plan-outside-support" and not table.loc[TOTAL, "within_support"]
    assert (table["status"] == "refused").all() and table["incremental_kpi"].isna().all()


def test_an_optimised_budget_above_support_is_refused_on_the_total_row(sample_model, sample_config) -> None:
    budget = 13 * 1.5 * sum(s.high for s in sample_model.supports.values())
    plan = weekly_plan(sample_model, parse_plan({"weeks": 13, "total_budget": budget}, SOURCE, sample_config))
    assert plan.status is PlanStatus.REFUSED
    total = plan.table.set_index("channel").loc[TOTAL]
    assert total["rule"] == "plan-budget-above-support" and "supports:" in total["message"]
    assert total["weekly_spend"] == pytest.approx(budget / 13)


def test_the_table_of_a_run_without_a_plan_has_typed_columns_and_no_rows() -> None:
    table = empty_plan_table()
    assert list(table.columns) == BUDGET_PLAN_COLUMNS and table.empty
    assert table["weekly_spend"].dtype == float and table["within_support"].dtype == bool
