"""Plans on a fitted model: the optimiser never does worse than the current allocation on its
objective and keeps budget and bounds exactly; support is enforced per channel; the risk mode
trades mean for a better 10th percentile; and a forecast of a known world lands on its truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.plan.planner import PLAN_COLUMNS, TOTAL, current_allocation, run_plan
from cmmm_pipeline.plan.spec import PlanError, parse_plan

SOURCE = Path("plan.yaml")
WEEKS = 13


def optimise(model, config, **plan):  # noqa: ANN001, ANN003, ANN201
    return run_plan(model, parse_plan({"weeks": WEEKS, **plan}, SOURCE, config))


def test_optimised_plan_beats_the_current_allocation_within_bounds_and_budget(sample_model, sample_config) -> None:
    budget = WEEKS * 2400.0
    result = optimise(sample_model, sample_config, total_budget=budget, bounds={"tv": [0, 850], "email": [120, 400]})
    table = result.table.set_index("channel")
    assert list(result.table.columns) == PLAN_COLUMNS and result.table["channel"].iloc[-1] == TOTAL
    spend = table.loc[list(sample_model.channels), "weekly_spend"]
    assert spend.sum() * WEEKS == pytest.approx(budget, rel=1e-12)
    assert spend["tv"] <= 850 + 1e-9 and spend["email"] >= 120 - 1e-9
    for channel, s in spend.items():
        support = sample_model.supports[channel]
        assert support.low - 1e-9 <= s <= support.high + 1e-9
    assert table["within_support"].all()
    # The objective is the expected incremental KPI over the draws: the plan's is at least the current's.
    total = table.loc[TOTAL]
    assert total["gain"] >= 0 and total["incremental_kpi"] >= total["current_incremental_kpi"]
    assert total["current_weekly_spend"] == pytest.approx(2400.0)
    # The gain's interval holds the draws' interval and the gains of the near-equivalent curves.
    assert total["gain_ci_low"] <= total["gain_shape_low"] <= total["gain"] <= total["gain_shape_high"]
    assert total["gain_shape_high"] <= total["gain_ci_high"]
    # The total is lowered by the optimiser's optimism (the plan was chosen for its high estimate).
    assert 0 < total["gain_optimism"] < table.loc[list(sample_model.channels), "gain"].sum()
    assert np.isclose(table.loc[list(sample_model.channels), "gain"].sum(), total["gain"] + total["gain_optimism"],
                      rtol=1e-6)
    assert table.loc[list(sample_model.channels), "gain_optimism"].isna().all()


def test_evaluating_the_current_allocation_gains_nothing(sample_model, sample_config) -> None:
    current = current_allocation(sample_model, sample_model.channels, WEEKS, 2000.0)
    spend = dict(zip(sample_model.channels, current.tolist()))
    total = optimise(sample_model, sample_config, spend=spend).table.set_index("channel").loc[TOTAL]
    assert total["gain"] == pytest.approx(0.0, abs=1e-6)
    assert total["gain_optimism"] == 0.0  # nothing was chosen, so nothing to correct
    assert total["gain_ci_low"] == pytest.approx(0.0, abs=1e-6)
    assert total["gain_ci_high"] == pytest.approx(0.0, abs=1e-6)


def test_spend_outside_support_is_refused_naming_channel_and_range(sample_model, sample_config) -> None:
    tv = sample_model.supports["tv"]
    spend = {"tv": 2 * tv.high, "search": 700, "digital": 600, "email": 10_000}
    with pytest.raises(PlanError) as info:
        optimise(sample_model, sample_config, spend=spend)
    problems = {p.place.split("'")[1]: str(p) for p in info.value.problems}
    assert set(problems) == {"spend.tv", "spend.email"}
    assert all(p.startswith("[plan-outside-support]") for p in problems.values())
    assert f"{tv.low:,.0f}–{tv.high:,.0f} per week" in problems["spend.tv"]
    allowed = optimise(sample_model, sample_config, spend=spend, allow_extrapolation=True).table.set_index("channel")
    assert not allowed.loc["tv", "within_support"] and allowed.loc["search", "within_support"]
    assert not allowed.loc[TOTAL, "within_support"]


def test_a_budget_the_support_cannot_absorb_is_refused(sample_model, sample_config) -> None:
    most = sum(s.high for c, s in sample_model.supports.items() if c in sample_model.channels)
    with pytest.raises(PlanError) as info:
        optimise(sample_model, sample_config, total_budget=WEEKS * most * 1.5)
    assert info.value.rule == "plan-budget-above-support" and "tv 0–" in str(info.value)
    with pytest.raises(PlanError) as info:
        optimise(sample_model, sample_config, total_budget=WEEKS * 8000, bounds={"tv": [5000, 6000]})
    assert info.value.rule == "plan-bounds-outside-support" and "bounds.tv" in info.value.place


def test_the_risk_objective_raises_the_gains_10th_percentile(sample_model, sample_config) -> None:
    mean_plan = optimise(sample_model, sample_config, total_budget=WEEKS * 2400.0)
    risk_plan = optimise(sample_model, sample_config, total_budget=WEEKS * 2400.0, risk="p10")
    mean_total = mean_plan.table.set_index("channel").loc[TOTAL]
    risk_total = risk_plan.table.set_index("channel").loc[TOTAL]
    assert risk_total["gain_p10"] >= mean_total["gain_p10"] - 1e-6
    front = risk_plan.pareto
    assert front["risk_weight"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert front["p10_gain"].iloc[-1] >= front["p10_gain"].iloc[0] - 1e-6
    assert front["mean_gain"].iloc[0] >= front["mean_gain"].iloc[-1] - 1e-6


@pytest.fixture(scope="module")
def known_world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a simulated world and its fitted model
    """A world of the sample's simulator drawn over 156 + 13 weeks, the model fitted on the first 156."""
    from cmmm_pipeline.core.loading import parse_config
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.plan.model import fit_model
    from cmmm_pipeline.simulation.simulate import Scenario, simulate

    from tests.plan.conftest import sample_raw_config

    folder = tmp_path_factory.mktemp("known")
    n, seed = 156, 11
    scenario = Scenario(n_weeks=n + WEEKS)
    world = simulate(scenario, seed)
    data = world.data.iloc[:n].assign(week=lambda d: d["week"].dt.strftime("%Y-%m-%d"))
    data.to_csv(folder / "weekly.csv", index=False)
    raw = sample_raw_config()
    raw.pop("experiments")
    config = parse_config(raw, folder / "config.yaml")
    return scenario, seed, n, world, data, config, fit_model(load_raw(config), config)


def test_the_forecast_of_a_known_world_lands_on_its_truth(known_world) -> None:
    from cmmm_pipeline.simulation.simulate import planned_kpi

    scenario, seed, n, world, data, config, model = known_world
    spend = {c: float(data[f"{c}_spend"].mean()) for c in model.channels}
    price = world.data["price"].to_numpy()[n:]
    result = run_plan(model, parse_plan({"weeks": WEEKS, "spend": spend, "controls": {"price": price.tolist()}},
                                        SOURCE, config))
    table = result.table.set_index("channel")
    plan = {c: np.full(WEEKS, s) for c, s in spend.items()}
    kpi = planned_kpi(scenario, seed, plan)[n:]
    for channel in model.channels:
        truth = (kpi - planned_kpi(scenario, seed, dict(plan, **{channel: np.zeros(WEEKS)}))[n:]).sum()
        row = table.loc[channel]
        assert row["incremental_ci_low"] <= truth <= row["incremental_ci_high"], (channel, truth, row.to_dict())
        assert row["incremental_kpi"] == pytest.approx(truth, rel=0.15)
    total = table.loc[TOTAL]
    assert total["kpi_ci_low"] <= kpi.sum() <= total["kpi_ci_high"]
    assert total["kpi_forecast"] == pytest.approx(kpi.sum(), rel=0.02)
    weekly = result.forecast
    assert np.mean((kpi >= weekly["kpi_ci_low"]) & (kpi <= weekly["kpi_ci_high"])) >= 0.75
    first = weekly["week"].iloc[0]
    assert isinstance(first, pd.Timestamp) and first == pd.Timestamp(data["week"].iloc[-1]) + pd.Timedelta(weeks=1)


def test_writing_a_plan_never_writes_through_a_link(sample_model, sample_config, tmp_path: Path) -> None:
    """`plan.csv` linked to a stand-in folder's file (as a weekly run links its published plan.csv):
    refused with the rule, nothing written anywhere; into a clean folder the files are written."""
    import os

    from cmmm_pipeline.core.errors import CmmmError
    from cmmm_pipeline.plan.planner import write_plan

    current = current_allocation(sample_model, sample_model.channels, WEEKS, 2000.0)
    result = optimise(sample_model, sample_config, spend=dict(zip(sample_model.channels, current.tolist())))
    stand_in = tmp_path / "stand_in_etc"
    stand_in.mkdir()
    (stand_in / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(stand_in / "passwd", out / "plan.csv")
    with pytest.raises(CmmmError) as refused:
        write_plan(result, out)
    assert refused.value.rule == "output-not-ours" and str(out / "plan.csv") in str(refused.value)
    assert (stand_in / "passwd").read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert sorted(p.name for p in out.iterdir()) == ["plan.csv"]
    written = write_plan(result, tmp_path / "clean")
    assert [Path(p).name for p in written] == ["plan.csv", "plan_forecast.csv", "plan_weeks.csv"]
    assert pd.read_csv(written[0])["channel"].tolist() == result.table["channel"].tolist()


def test_across_weeks_the_plan_does_at_least_as_well_as_even_spend_in_true_kpi(known_world) -> None:
    """allocate_weeks on a world with a known truth: every week's spend within support, the budget
    spent exactly, and the simulator's KPI under the weeks plan at least that of the same budget
    spent evenly over the weeks (the optimised constant plan)."""
    from cmmm_pipeline.simulation.simulate import planned_kpi

    scenario, seed, n, _, data, config, model = known_world
    channels = model.channels
    budget = float(sum(data[f"{c}_spend"].iloc[-WEEKS:].sum() for c in channels))
    even = optimise(model, config, total_budget=budget).table.set_index("channel")
    across = optimise(model, config, total_budget=budget, allocate_weeks=True)
    weeks = across.weeks.pivot(index="week", columns="channel", values="spend")[list(channels)]
    assert weeks.to_numpy().sum() == pytest.approx(budget, rel=1e-9)
    for c in channels:
        support = model.supports[c]
        assert weeks[c].between(support.low - 1e-6, support.high + 1e-6).all()
        assert across.table.set_index("channel").loc[c, "weekly_spend"] == pytest.approx(weeks[c].mean())
    # plan_weeks.csv's weekly incremental KPI adds up to each channel's.
    by_channel = across.weeks.groupby("channel")["incremental_kpi"].sum()
    table = across.table.set_index("channel")
    assert np.allclose(by_channel[list(channels)], table.loc[list(channels), "incremental_kpi"], rtol=1e-6)
    assert weeks.to_numpy().std(axis=0).max() > 1.0  # it does not just repeat the constant plan

    def truth(plan: dict[str, np.ndarray]) -> float:
        return float(planned_kpi(scenario, seed, plan)[n:].sum())

    constant = truth({c: np.full(WEEKS, even.loc[c, "weekly_spend"]) for c in channels})
    flighted = truth({c: weeks[c].to_numpy() for c in channels})
    assert flighted >= constant, (flighted, constant)


def test_the_weeks_objective_has_the_exact_gradient_and_the_risk_front_holds(sample_model, sample_config) -> None:
    from cmmm_pipeline.plan.planner import _Objectives, _WeeklyObjectives

    curves = {c: sample_model.curve(c, 4) for c in sample_model.channels}
    k = len(curves)
    objective = _WeeklyObjectives(curves, np.tile(np.full(k, 600.0), 4))
    x = np.random.default_rng(3).uniform(100.0, 1200.0, 4 * k)
    step = 1e-3
    numeric = np.array([(objective.mean(x + step * e) - objective.mean(x - step * e)) / (2 * step)
                        for e in np.eye(4 * k)])
    assert np.allclose(objective.mean_gradient(x), numeric, rtol=1e-5, atol=1e-7)
    # The draws at a constant plan equal the constant-plan objective's (the same curves, another path).
    constant = np.array([900.0, 700.0, 600.0, 150.0])
    assert np.allclose(objective.draws(np.tile(constant, 4)), _Objectives(curves, constant).total(constant), rtol=1e-10)

    result = run_plan(sample_model, parse_plan({"weeks": 4, "total_budget": 4 * 2400.0, "allocate_weeks": True,
                                                "risk": "p10"}, SOURCE, sample_config))
    front = result.pareto
    assert front["risk_weight"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert front["p10_gain"].iloc[-1] >= front["p10_gain"].iloc[0] - 1e-6
    assert front["mean_gain"].iloc[0] >= front["mean_gain"].iloc[-1] - 1e-6
    assert result.weeks["spend"].sum() == pytest.approx(4 * 2400.0, rel=1e-9)
