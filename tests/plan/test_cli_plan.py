"""`cmmm plan` end to end on the bundled sample: optimise writes plan.csv with a total row and the
current allocation beside it; a plan outside support exits non-zero naming the channel and range."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cmmm_pipeline.cli import REFUSED, main

pytestmark = pytest.mark.slow


def test_cmmm_plan_optimises_and_refuses_on_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("weeks: 13\ntotal_budget: 31200\nbounds: {tv: [0, 1200]}\nobjective: incremental_kpi\n"
                    "risk: none\n", encoding="utf-8")
    assert main(["plan", "--plan", str(plan), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert table["channel"].tolist() == ["tv", "search", "digital", "email", "total"]
    total = table.set_index("channel").loc["total"]
    assert total["weekly_spend"] * 13 == pytest.approx(31200.0)
    assert total["current_weekly_spend"] == pytest.approx(2400.0)
    assert total["gain"] >= 0 and bool(total["within_support"])
    assert total["gain_ci_low"] <= total["gain_shape_low"] <= total["gain"] <= total["gain_shape_high"]
    assert (tmp_path / "out" / "plan_weeks.csv").is_file()
    assert table.loc[table["channel"] == "tv", "weekly_spend"].iloc[0] <= 1200 + 1e-9
    assert (tmp_path / "out" / "plan_forecast.csv").is_file() and "KPI over the 13 weeks" in out

    outside = tmp_path / "outside.yaml"
    outside.write_text("weeks: 13\nspend: {tv: 9000, search: 700, digital: 600, email: 150}\n", encoding="utf-8")
    assert main(["plan", "--plan", str(outside), "--output", str(tmp_path / "refused")]) == REFUSED
    err = capsys.readouterr().err
    assert "[plan-outside-support]" in err and "spend.tv" in err and "0–2,380 per week" in err
    assert not (tmp_path / "refused" / "plan.csv").exists()
