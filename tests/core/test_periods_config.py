"""Campaigns, effect modifiers and declared synergy pairs in the config: parsed into typed values,
and every mistake refused with its rule, by the config alone or against the data's weeks, from
`cmmm validate` and from `cmmm run`."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from cmmm_pipeline.cli import REFUSED, main
from cmmm_pipeline.core.config import CampaignConfig, EffectModifierConfig
from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.core.loading import load_config, parse_config
from cmmm_pipeline.data.ingest import load_raw

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
NO_TV_WEEK = "2023-02-06"
"""A week in which the sample's TV was off air (a dark flight)."""


def sample_raw() -> dict:
    return yaml.safe_load((SAMPLE / "config.yaml").read_text(encoding="utf-8"))


def rules(error: CmmmError) -> list[str]:
    return [p.rule for p in error.problems]


def write(tmp_path: Path, raw: dict) -> Path:
    shutil.copyfile(SAMPLE / "weekly.csv", tmp_path / "weekly.csv")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_the_keys_parse_into_typed_values() -> None:
    raw = sample_raw()
    raw["campaigns"].append({"name": "q4", "channel": "digital", "start": "2024-10-07", "end": "2024-12-30"})
    raw["effect_modifiers"] = {"tv": ["price"], "digital": [{"column": "price", "cut_points": [9.8, 10.2]}]}
    raw["graph"]["interactions"] = [["tv", "digital"], ["digital", "email"]]
    config = parse_config(raw, SAMPLE / "config.yaml")
    assert config.campaigns[1] == CampaignConfig("q4", "digital", dt.date(2024, 10, 7), dt.date(2024, 12, 30))
    assert config.effect_modifiers == (EffectModifierConfig("tv", "price"),
                                       EffectModifierConfig("digital", "price", (9.8, 10.2)))
    assert config.interactions == (("tv", "digital"), ("digital", "email"))


def test_config_mistakes_are_refused_together_with_their_rules() -> None:
    raw = sample_raw()
    raw["campaigns"] = [{"name": "a", "channel": "radio", "start": "2024-03-04", "end": "2024-03-11"},
                        {"name": "a", "channel": "tv", "start": "2024-03-11", "end": "2024-03-04"}]
    raw["effect_modifiers"] = {"radio": ["price"], "tv": ["seasonality", "sales"],
                               "digital": [{"column": "price", "cut_points": [10.2, 9.8]}]}
    raw["graph"]["interactions"] = [["tv", "tv"], ["tv", "radio"], ["digital", "email"], ["email", "digital"]]
    with pytest.raises(CmmmError) as caught:
        parse_config(raw, SAMPLE / "config.yaml")
    found = rules(caught.value)
    assert found.count("campaign-channel") == 1 and found.count("campaign-dates") == 1
    assert "duplicate-campaign" in found
    assert "effect-modifier-channel" in found and found.count("effect-modifier-column") == 2
    assert "config-range" in found  # cut points not increasing
    assert found.count("interaction-channel") == 2 and "duplicate-interaction" in found
    text = str(caught.value)
    assert "'radio' is not a configured channel" in text and "key 'campaigns[1].end'" in text


def test_a_modifier_the_channel_causes_is_refused_with_the_reason() -> None:
    raw = sample_raw()
    raw["graph"]["edges"].append(["tv", "price"])
    with pytest.raises(CmmmError) as caught:
        parse_config(raw, SAMPLE / "config.yaml")
    (problem,) = [p for p in caught.value.problems if p.rule == "effect-modifier-descendant"]
    assert "'price' is a descendant of 'tv'" in problem.detail and "pre-treatment" in problem.fix


@pytest.mark.parametrize(("campaign", "rule", "says"), [
    ({"start": "2022-03-07", "end": "2022-05-30"}, "campaign-outside-data", "starts before the data"),
    ({"start": "2025-10-06", "end": "2026-03-02"}, "campaign-outside-data", "ends after the data"),
    ({"start": "2024-03-05", "end": "2024-05-27"}, "campaign-not-a-week", "2024-03-04"),
    ({"start": NO_TV_WEEK, "end": NO_TV_WEEK}, "campaign-no-spend", "spent nothing"),
], ids=["before", "after", "not-a-week", "no-spend"])
def test_a_campaign_outside_the_datas_weeks_is_refused_by_validate_and_by_ingestion(
        tmp_path: Path, capsys: pytest.CaptureFixture, campaign: dict, rule: str, says: str) -> None:
    raw = sample_raw()
    raw["campaigns"] = [{"name": "spring_tv", "channel": "tv", **campaign}]
    path = write(tmp_path, raw)
    assert main(["validate", "--config", str(path)]) == REFUSED
    err = capsys.readouterr().err
    assert f"[{rule}]" in err and says in err and "campaigns[0]" in err
    with pytest.raises(CmmmError) as caught:
        load_raw(load_config(path))  # what the run's raw_spend step calls
    assert rules(caught.value) == [rule]


def test_every_campaign_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = sample_raw()
    raw["campaigns"] = [{"name": "early", "channel": "tv", "start": "2022-03-07", "end": "2022-05-30"},
                        {"name": "dark", "channel": "tv", "start": NO_TV_WEEK, "end": NO_TV_WEEK}]
    with pytest.raises(CmmmError) as caught:
        load_raw(load_config(write(tmp_path, raw)))
    assert rules(caught.value) == ["campaign-outside-data", "campaign-no-spend"]


@pytest.mark.slow
def test_cmmm_run_refuses_a_campaign_without_spend_and_publishes_nothing(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    raw = sample_raw()
    raw["campaigns"] = [{"name": "dark", "channel": "tv", "start": NO_TV_WEEK, "end": NO_TV_WEEK}]
    out = tmp_path / "out"
    assert main(["run", "--config", str(write(tmp_path, raw)), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "[campaign-no-spend]" in err and "nothing was published" in err
    assert not (out / "estimates.csv").exists() and not (out / "effects_by_period.csv").exists()
