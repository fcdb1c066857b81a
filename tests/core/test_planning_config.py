"""`planning: {plan: plan.yaml}`: optional, the path relative to the config, and the plan file parsed
with the config so its problems come out of `cmmm validate` and `cmmm run` under their plan rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cmmm_pipeline.cli import REFUSED, main
from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.plan.spec import PlanMode

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"


def write(tmp_path: Path, planning: object = None, plan: dict | None = None, **extra: object) -> Path:
    raw = yaml.safe_load((SAMPLE / "config.yaml").read_text(encoding="utf-8"))
    if planning is not None:
        raw["planning"] = planning
    raw.update(extra)
    shutil.copyfile(SAMPLE / "weekly.csv", tmp_path / "weekly.csv")
    if plan is not None:
        (tmp_path / "plans").mkdir(exist_ok=True)
        (tmp_path / "plans" / "q1.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def rules(error: CmmmError) -> list[str]:
    return [p.rule for p in error.problems]


def test_without_the_key_there_is_no_plan(tmp_path: Path) -> None:
    assert load_config(write(tmp_path)).planning is None


def test_the_plan_file_is_read_relative_to_the_config_and_parsed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"plan": "plans/q1.yaml"},
                               {"weeks": 13, "total_budget": 31200, "bounds": {"tv": [0, 1200]}}))
    planning = config.planning
    assert planning.plan == (tmp_path / "plans" / "q1.yaml").resolve()
    assert planning.spec.mode is PlanMode.OPTIMISE and planning.spec.weeks == 13
    assert planning.spec.total_budget == 31200 and planning.spec.bounds == {"tv": (0.0, 1200.0)}


def test_an_evaluated_plan_keeps_its_weekly_spend(tmp_path: Path) -> None:
    spend = {"tv": 900, "search": [700] * 4, "digital": 600, "email": 0}
    spec = load_config(write(tmp_path, {"plan": "plans/q1.yaml"}, {"weeks": 4, "spend": spend})).planning.spec
    assert spec.mode is PlanMode.EVALUATE
    np.testing.assert_array_equal(spec.spend["tv"], [900.0] * 4)


@pytest.mark.parametrize(("planning", "rule", "key"), [
    ({"plan": "plans/none.yaml"}, "plan-missing", "planning.plan"),
    ({"plan": ""}, "config-type", "planning.plan"),
    ({}, "config-missing-key", "planning.plan"),
    ({"plan": "plans/q1.yaml", "plans": "x"}, "config-unknown-key", "planning.plans"),
    ("plans/q1.yaml", "config-type", "planning"),
])
def test_a_bad_planning_key_is_refused_by_its_rule(tmp_path: Path, planning: object, rule: str, key: str) -> None:
    with pytest.raises(CmmmError) as caught:
        load_config(write(tmp_path, planning, {"weeks": 13, "total_budget": 100}))
    assert rules(caught.value) == [rule] and f"key '{key}'" in str(caught.value)


def test_the_plan_files_problems_come_with_the_configs_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, {"plan": "plans/q1.yaml"}, {"weeks": 13, "spend": {"tv": -5, "search": 700, "digitl": 1}},
                 features=3)
    with pytest.raises(CmmmError) as caught:
        load_config(path)
    assert rules(caught.value)[0] == "config-type"
    assert sorted(rules(caught.value)[1:]) == ["plan-missing-channel", "plan-negative-spend", "plan-unknown-channel"]
    assert "q1.yaml key 'spend.tv'" in str(caught.value) and "did you mean 'digital'" in str(caught.value)


def test_validate_and_run_refuse_a_bad_plan_file_before_anything_runs(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, {"plan": "plans/q1.yaml"}, {"weeks": 13, "total_budget": 1000, "risk": "p5"})
    assert main(["validate", "--config", str(path)]) == REFUSED
    assert "[plan-unknown-value]" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--output", str(out)]) == REFUSED
    assert "[plan-unknown-value]" in capsys.readouterr().err and not out.exists()
