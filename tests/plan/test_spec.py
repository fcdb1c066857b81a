"""The plan file: every broken rule named at once, with the place and the fix; YAML read with the
config's loader (aliases bounded, duplicate keys refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmmm_pipeline.plan.spec import PlanError, PlanMode, Risk, load_plan, parse_plan

SOURCE = Path("plan.yaml")


def rules(error: PlanError) -> list[str]:
    return [p.rule for p in error.problems]


def test_an_evaluation_plan_gives_weekly_spend_per_channel(sample_config) -> None:
    spec = parse_plan({"weeks": 4, "spend": {"tv": 900, "search": [400, 410, 420, 430], "digital": 500, "email": 0}},
                      SOURCE, sample_config)
    assert spec.mode is PlanMode.EVALUATE
    assert spec.spend["tv"].tolist() == [900.0] * 4 and spec.spend["search"].tolist() == [400, 410, 420, 430]
    assert spec.weekly_budget == pytest.approx(900 + 415 + 500)


def test_an_optimisation_plan_gives_a_budget_bounds_and_the_risk(sample_config) -> None:
    spec = parse_plan({"weeks": 13, "total_budget": 26000, "bounds": {"tv": [0, 1200]}, "risk": "p10"},
                      SOURCE, sample_config)
    assert spec.mode is PlanMode.OPTIMISE and spec.risk is Risk.P10
    assert spec.bounds == {"tv": (0.0, 1200.0)} and spec.weekly_budget == pytest.approx(2000.0)
    assert not spec.allocate_weeks
    assert parse_plan({"weeks": 13, "total_budget": 26000, "allocate_weeks": True}, SOURCE,
                      sample_config).allocate_weeks


@pytest.mark.parametrize(("plan", "rule", "words"), [
    ({"weeks": 13, "spend": {"tv": -5, "search": 1, "digital": 1, "email": 1}}, "plan-negative-spend", "spend.tv"),
    ({"weeks": 13, "spend": {"tv": 5, "radio": 1, "search": 1, "digital": 1, "email": 1}}, "plan-unknown-channel",
     "radio"),
    ({"weeks": 13, "spend": {"tv": 5}}, "plan-missing-channel", "search, digital, email"),
    ({"weeks": 13, "total_budget": 1000, "bounds": {"tv": [100, 200], "search": [50, 60]}},
     "plan-budget-below-bounds", "1,950.00"),
    ({"weeks": 13, "total_budget": 1000, "bounds": {"tv": [300, 200]}}, "plan-bounds-order", "bounds.tv"),
    ({"weeks": 13}, "plan-mode", "neither"),
    ({"weeks": 13, "total_budget": 1, "spend": {"tv": 1}}, "plan-mode", "both"),
    ({"weeks": 0, "total_budget": 1}, "plan-type", "weeks"),
    ({"weeks": 13, "total_budget": 1000, "objective": "roi"}, "plan-unknown-value", "incremental_kpi"),
    ({"weeks": 13, "total_budget": 1000, "risk": "p5"}, "plan-unknown-value", "p10"),
    ({"weeks": 13, "total_budget": 1000, "budgte": 3}, "plan-unknown-key", "budgte"),
    ({"weeks": 2, "spend": {"tv": [1, 2, 3], "search": 1, "digital": 1, "email": 1}}, "plan-length", "3 values"),
    ({"weeks": 2, "total_budget": 10, "controls": {"weather": 3}}, "plan-unknown-control", "weather"),
    ({"weeks": 2, "total_budget": 10, "allocate_weeks": "yes"}, "plan-type", "allocate_weeks"),
    ({"weeks": 2, "spend": {"tv": 1, "search": 1, "digital": 1, "email": 1}, "allocate_weeks": True}, "plan-mode",
     "allocate_weeks"),
])
def test_a_bad_plan_is_refused_by_rule(sample_config, plan: dict, rule: str, words: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(plan, SOURCE, sample_config)
    assert rule in rules(info.value)
    assert words in str(info.value)
    assert "Fix:" in str(info.value)


def test_every_problem_is_reported_at_once(sample_config) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan({"weeks": 13, "spend": {"tv": -1, "radio": 2, "search": 1, "digital": 1, "email": 1},
                    "risk": "max"}, SOURCE, sample_config)
    assert sorted(rules(info.value)) == ["plan-negative-spend", "plan-unknown-channel", "plan-unknown-value"]


def test_plan_files_are_read_with_the_configs_yaml_rules(sample_config, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    bomb.write_text("\n".join(lines) + "\nweeks: 13\ntotal_budget: 100\n", encoding="utf-8")
    with pytest.raises(PlanError) as info:
        load_plan(bomb, sample_config)
    assert info.value.rule == "config-aliases"
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("weeks: 13\nweeks: 4\ntotal_budget: 100\n", encoding="utf-8")
    with pytest.raises(PlanError) as info:
        load_plan(duplicate, sample_config)
    assert info.value.rule == "config-duplicate-key"
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "absent.yaml", sample_config)
    assert info.value.rule == "plan-missing"
    good = tmp_path / "plan.yaml"
    good.write_text("weeks: 13\ntotal_budget: 26000\nbounds: {tv: [0, 1200]}\n", encoding="utf-8")
    assert np.isclose(load_plan(good, sample_config).weekly_budget, 2000.0)
