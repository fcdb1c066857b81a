"""The report's budget plan section: current against proposed spend with intervals and the total
gain, the curves with the plan's supported range; a refused plan with its rule and ranges; and a
run without a plan saying so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.plan.weekly import BUDGET_PLAN_COLUMNS, empty_plan_table
from cmmm_pipeline.publish.plots import ResponseCurve, response_curves_figure
from cmmm_pipeline.publish.report import NO_PLAN, ReportInputs, plan_section, render_report
from tests.publish.test_report import _changes, _run, _tables


@pytest.fixture(scope="module")
def inputs() -> ReportInputs:
    tables = _tables()
    return ReportInputs.from_tables(_run(), tables, _changes(tables["estimates"]))


def plan_table(status: str = "planned") -> pd.DataFrame:
    nan = float("nan")
    rows = [
        {"channel": "tv", "effect": "direct", "weekly_spend": 900.0, "incremental_kpi": 16000.0,
         "incremental_ci_low": 15000.0, "incremental_ci_high": 17000.0, "within_support": True, "supported_low": 0.0,
         "supported_high": 2400.0, "current_weekly_spend": 800.0, "current_incremental_kpi": 15000.0,
         "current_ci_low": 14100.0, "current_ci_high": 15900.0, "gain": 1000.0, "gain_ci_low": 900.0,
         "gain_ci_high": 1100.0},
        {"channel": "search", "effect": "total", "weekly_spend": 400.0, "incremental_kpi": 5000.0,
         "incremental_ci_low": 4000.0, "incremental_ci_high": 6000.0, "within_support": True, "supported_low": 100.0,
         "supported_high": 1400.0, "current_weekly_spend": 500.0, "current_incremental_kpi": 5600.0,
         "current_ci_low": 4500.0, "current_ci_high": 6700.0, "gain": -600.0, "gain_ci_low": -800.0,
         "gain_ci_high": -400.0},
        {"channel": "total", "effect": "", "weekly_spend": 1300.0, "incremental_kpi": 20900.0,
         "incremental_ci_low": 19400.0, "incremental_ci_high": 22400.0, "within_support": True, "supported_low": nan,
         "supported_high": nan, "current_weekly_spend": 1300.0, "current_incremental_kpi": 20600.0,
         "current_ci_low": 19000.0, "current_ci_high": 22100.0, "gain": 300.0, "gain_ci_low": -120.0,
         "gain_ci_high": 700.0, "gain_shape_low": 150.0, "gain_shape_high": 650.0, "kpi_forecast": 140000.0, "kpi_ci_low": 139000.0,
         "kpi_ci_high": 141000.0}]
    frame = pd.DataFrame(rows).reindex(columns=BUDGET_PLAN_COLUMNS)
    return frame.assign(weeks=13, status=status, rule="", message="")


def texts(table: object) -> list[list[str]]:
    return [[c.text for c in row] for row in table.rows]


def test_a_planned_budget_shows_current_against_proposed_with_intervals_and_the_gain(inputs: ReportInputs) -> None:
    section = plan_section(dataclasses.replace(inputs, budget_plan=plan_table()))
    assert section.id == "plan" and [b.kind for b in section.blocks] == ["table", "paragraph", "image", "paragraph"]
    rows = texts(section.blocks[0])
    assert rows[0][:7] == ["tv", "direct", "800", "15,000 (14,100–15,900)", "900", "16,000 (15,000–17,000)",
                           "1,000 (900–1,100)"]
    assert rows[0][8] == "0–2,400" and rows[2][8] == "—"
    gain = section.blocks[1].text
    assert "300 sales over the plan's 13 weeks (95% interval -120 to 700)" in gain
    assert "includes zero" in gain and "between 150 and 650" in gain and "140,000" in gain


def test_a_refused_plan_names_its_rule_and_the_supported_ranges(inputs: ReportInputs) -> None:
    table = plan_table("refused")
    table.loc[:, ["incremental_kpi", "gain", "current_weekly_spend"]] = np.nan
    table.loc[0, ["weekly_spend", "within_support", "rule", "message"]] = [
        5000.0, False, "plan-outside-support", "weekly spend 5,000 lies outside what tv's comparable weeks show"]
    table.loc[2, "rule"] = "plan-outside-support"
    section = plan_section(dataclasses.replace(inputs, budget_plan=table))
    assert "refused (plan-outside-support)" in section.blocks[0].text
    rows = texts(section.blocks[1])
    assert rows[0][:5] == ["tv", "5,000", "0–2,400", "no", "plan-outside-support"]
    assert "5,000 lies outside" in rows[0][5]


@pytest.mark.parametrize("table", [None, empty_plan_table()], ids=["older run", "no plan configured"])
def test_without_a_plan_the_section_says_none_was_configured(inputs: ReportInputs, table: object) -> None:
    section = plan_section(dataclasses.replace(inputs, budget_plan=table))
    assert [b.text for b in section.blocks] == [NO_PLAN]
    assert '<section id="plan">' in render_report(dataclasses.replace(inputs, budget_plan=table))


def test_the_plan_curves_shade_the_plans_range_and_mark_current_and_plan() -> None:
    spend = np.linspace(0.0, 3000.0, 61)
    curve = ResponseCurve("tv", spend, np.sqrt(spend), 0.9 * np.sqrt(spend), 1.1 * np.sqrt(spend), 0.0, 2000.0,
                          800.0, 100.0, support_high=2200.0, marks=(("current mix", 800.0), ("plan", 900.0)))
    assert curve.supported.sum() == ((spend >= 100.0) & (spend <= 2200.0)).sum()
    ax = response_curves_figure([curve], "sales").axes[0]
    span = [p for p in ax.patches if p.get_gid() == "support"][0]
    assert span.get_x() == pytest.approx(100.0) and span.get_x() + span.get_width() == pytest.approx(2200.0)
    marks = [line for line in ax.lines if line.get_gid() == "mark"]
    assert [(m.get_label(), m.get_xdata()[0], m.get_ydata()[0]) for m in marks] == [
        ("current mix", 800.0, pytest.approx(np.sqrt(800.0), rel=1e-3)), ("plan", 900.0, pytest.approx(30.0))]
