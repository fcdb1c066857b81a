"""Effects by period, campaign and condition, and declared synergies: read from the whole-history
bootstrap's draws, adding up exactly, and covering the simulator's truths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import CampaignConfig, EffectModifierConfig
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.effects.estimation import estimate_channels
from cmmm_pipeline.effects.periods import calendar_periods, equal_effect_test, modifier_levels
from cmmm_pipeline.effects.robustness import assess
from cmmm_pipeline.media.features import build_features
from cmmm_pipeline.media.selection import SelectionSettings, channel_candidates, select_transforms
from cmmm_pipeline.publish.outputs import final_estimates
from cmmm_pipeline.simulation.simulate import Scenario, campaign_truth, simulate, synergy_truth, weekly_truth
from tests.conftest import sample_config_selecting

SPRING = ("tv", "2024-03-04", "2024-05-27")


def run_assessment(config, raw: pd.DataFrame | None = None) -> dict:  # noqa: ANN001 - PipelineConfig
    """Estimation and robustness exactly as the pipeline's steps compose them."""
    selection = SelectionSettings.from_config(config.estimation)
    raw = load_raw(config) if raw is None else raw
    chosen = select_transforms(raw, config, selection)
    features = build_features(raw, config, chosen.transforms)
    est = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    candidates = {c.name: channel_candidates(c, selection.grid) for c in config.channels}
    assessment = assess(raw, features, config, est.table, est.specs, est.expanded, candidates, chosen.selected_index)
    return {"raw": raw, "assessment": assessment,
            "estimates": final_estimates(est.table, assessment.intervals, assessment.robustness)}


@pytest.fixture(scope="module")
def sample() -> dict:
    """The bundled sample (its campaign, effect modifier and declared pair) with digital's and
    email's transforms selected from the data, so smoothed estimates are among the periods."""
    return run_assessment(sample_config_selecting("digital", "email"))


def test_periods_add_up_to_the_whole_history_estimate(sample: dict) -> None:
    periods = sample["assessment"].periods
    whole = sample["estimates"].set_index(["channel", "effect"])["incremental_kpi"]
    assert set(periods["interval_method"]) >= {"smoothed", "percentile"}  # both kinds are exercised
    for kind, count in (("year", 3), ("quarter", 12)):
        rows = periods[periods["period_type"] == kind]
        sums = rows.groupby(["channel", "effect"])["incremental_kpi"].sum()
        assert set(sums.index) == set(whole.index)
        for key, value in sums.items():
            assert value == pytest.approx(whole[key], rel=1e-9, abs=1e-6), (kind, key)
        assert (rows.groupby(["channel", "effect"]).size() >= count).all()
    years = periods[(periods["period_type"] == "year") & (periods["effect"] == "total")]
    spend = years.groupby("channel")["spend"].sum()
    totals = sample["estimates"].drop_duplicates("channel").set_index("channel")["spend"]
    assert np.allclose(spend.sort_index(), totals[spend.index].sort_index())


def test_period_intervals_cover_the_yearly_and_quarterly_truth(sample: dict) -> None:
    truth = weekly_truth()
    truth["year"] = truth["week"].dt.year.astype(str)
    truth["quarter"] = truth["week"].dt.year.astype(str) + "-Q" + truth["week"].dt.quarter.astype(str)
    periods = sample["assessment"].periods
    covered = []
    for kind in ("year", "quarter"):
        sums = truth.groupby(["channel", "effect", kind])["weekly"].sum()
        rows = periods[periods["period_type"] == kind]
        for r in rows.itertuples(index=False):
            value = sums[(r.channel, r.effect, r.period)]
            covered.append(r.incremental_ci_low <= value <= r.incremental_ci_high)
            assert r.incremental_ci_low < r.incremental_kpi < r.incremental_ci_high
    # One world: the periods of a channel share its coefficient's error, so this is no coverage rate
    # (benchmarks/effects_by_period.py measures that); most periods of the sample must still cover.
    assert np.mean(covered) >= 0.8, np.mean(covered)


def test_the_spring_campaign_covers_its_truth_and_its_roi_uses_the_campaign_spend(sample: dict) -> None:
    periods = sample["assessment"].periods
    row = periods[(periods["period_type"] == "campaign") & (periods["effect"] == "total")].iloc[0]
    truth = campaign_truth(*SPRING)
    assert row["period"] == "spring_tv" and row["weeks"] == 13
    assert row["incremental_ci_low"] <= truth <= row["incremental_ci_high"]
    assert row["incremental_kpi"] == pytest.approx(truth, rel=0.1)
    raw = sample["raw"]
    window = (raw["week"] >= SPRING[1]) & (raw["week"] <= SPRING[2])
    assert row["spend"] == pytest.approx(raw.loc[window, "tv_spend"].sum())
    assert row["roi"] == pytest.approx(row["incremental_kpi"] / row["spend"])
    assert row["roi_support"] == "observed"
    campaign = periods[periods["period_type"] == "campaign"].set_index("effect")["incremental_kpi"]
    assert set(campaign.index) == {"total", "direct", "indirect"}
    assert campaign["indirect"] == pytest.approx(campaign["total"] - campaign["direct"])


def test_a_declared_pair_without_synergy_covers_zero_on_the_sample(sample: dict) -> None:
    synergies = sample["assessment"].synergies
    assert list(zip(synergies["channel_a"], synergies["channel_b"])) == [("tv", "digital")]
    row = synergies.iloc[0]
    assert synergy_truth("tv", "digital") == pytest.approx(0.0, abs=1e-6)
    assert row["incremental_ci_low"] < 0.0 < row["incremental_ci_high"]
    assert row["p_value"] > 0.05
    assert "search" not in row["adjustment"].split("|")  # tv's mediator is no adjustment for the pair


def test_conditions_split_the_effect_by_price_tercile_with_an_equality_test(sample: dict) -> None:
    periods = sample["assessment"].periods
    rows = periods[periods["period_type"] == "condition"]
    assert list(rows["period"].str.contains("price")) == [True] * 3
    assert rows["weeks"].sum() == len(sample["raw"])
    p = rows["equal_effect_p_value"].unique()
    assert len(p) == 1 and p[0] > 0.01  # the sample's TV effect does not depend on price


def test_calendar_periods_and_modifier_levels() -> None:
    weeks = pd.Series(pd.date_range("2023-12-25", periods=6, freq="W-MON"))
    periods = calendar_periods(weeks)
    assert [p.label for p in periods] == ["2023", "2024", "2023-Q4", "2024-Q1"]
    assert [int(p.mask.sum()) for p in periods] == [1, 5, 1, 5]
    levels = modifier_levels(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "price", [2.5, 4.5])
    assert levels.labels == ("price<=2.5", "2.5<price<=4.5", "price>4.5")
    assert [int(m.sum()) for m in levels.masks] == [2, 2, 2]
    assert modifier_levels(np.arange(9.0), "x").labels == ("x<=2.667", "2.667<x<=5.333", "x>5.333")


def test_the_equal_effect_test_is_uniform_under_the_null_and_rejects_a_difference() -> None:
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.1], [0.2, 0.1, 1.0]])
    draws = rng.multivariate_normal(np.zeros(3), cov, size=2000)
    nulls = [equal_effect_test(rng.multivariate_normal(np.zeros(3), cov), draws) for _ in range(400)]
    assert 0.03 < np.mean(np.array(nulls) < 0.05) < 0.08
    assert equal_effect_test(np.array([0.0, 5.0, 0.0]), draws) < 1e-3


def simulated_run(scenario: Scenario, seed: int, pair: tuple[str, str]) -> dict:
    """The pipeline's estimation and robustness on a simulated world, with the sample's graph and
    true transforms, the pair declared and TV's effect split by price tercile."""
    import yaml

    from cmmm_pipeline.core.loading import parse_config
    from tests.conftest import SAMPLE_DIR

    raw_config = yaml.safe_load((SAMPLE_DIR / "config.yaml").read_text(encoding="utf-8"))
    raw_config["graph"]["interactions"] = [list(pair)]
    raw_config["experiments"] = []
    raw_config["campaigns"] = []
    raw_config["estimation"] = {"null_test_samples": 0, "refuter_simulations": 2}
    config = parse_config(raw_config, SAMPLE_DIR / "config.yaml")
    return run_assessment(config, simulate(scenario, seed).data)


@pytest.mark.slow
def test_a_real_synergy_is_detected_and_covered() -> None:
    """Digital and email reinforce each other (about 40% of email's effect; both paused in 30% of
    weeks, so their product varies on its own): the synergy is found and its truth covered."""
    scenario = replace(Scenario(dark_weeks=0.3), synergy=("digital", "email", 700.0))
    row = simulated_run(scenario, 11, ("digital", "email"))["assessment"].synergies.iloc[0]
    truth = synergy_truth("digital", "email", scenario, seed=11)
    email = float(simulate(scenario, 11).truth.set_index("channel").loc["email", "incremental_kpi"])
    assert 0.3 < truth / email < 0.6
    assert row["incremental_ci_low"] <= truth <= row["incremental_ci_high"]
    assert row["p_value"] < 0.001
    assert row["withheld_reason"] == ""


@pytest.mark.slow
def test_effect_modification_by_price_is_detected() -> None:
    """TV works better when the price is low (× 1 − 0.5·(price − 10)/0.4): the equal-effect test
    rejects and the low-price tercile shows the higher ROI."""
    scenario = replace(Scenario(), modification=-0.5)
    periods = simulated_run(scenario, 11, ("tv", "digital"))["assessment"].periods
    conditions = periods[periods["period_type"] == "condition"]
    assert conditions["equal_effect_p_value"].iloc[0] < 1e-3
    low, high = conditions.iloc[0], conditions.iloc[-1]
    assert low["period"].startswith("price<=") and high["period"].startswith("price>")
    assert low["roi"] > 1.5 * high["roi"]


def test_campaign_and_modifier_configs_reach_the_domain(sample: dict) -> None:
    config = sample_config_selecting()
    assert config.campaigns == (CampaignConfig("spring_tv", "tv", pd.Timestamp(SPRING[1]).date(),
                                               pd.Timestamp(SPRING[2]).date()),)
    assert config.effect_modifiers == (EffectModifierConfig("tv", "price"),)
    assert config.interactions == (("tv", "digital"),)


def test_a_pair_where_one_channel_causes_the_other_is_withheld_and_a_flat_product_is_measured() -> None:
    from cmmm_pipeline.effects.synergies import SynergySpec, Withheld, residual_share, synergy_spec

    config = sample_config_selecting()
    raw = load_raw(config)
    chosen = select_transforms(raw, config, SelectionSettings.from_config(config.estimation))
    features = build_features(raw, config, chosen.transforms)
    est = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    mediated = synergy_spec(est.expanded, est.specs, "tv", "search", config.kpi)
    assert isinstance(mediated, Withheld) and "tv causes search" in mediated.reason
    pair = synergy_spec(est.expanded, est.specs, "tv", "digital", config.kpi)
    assert isinstance(pair, SynergySpec)
    assert "search" not in pair.adjustment and {"price", "trend"} <= set(pair.adjustment)
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200)
    own = np.column_stack([np.ones(200), a, b, a * b])
    flat = np.column_stack([np.ones(200), a, b, 2.0 * a + 0.5 * b])
    assert residual_share(own) > 0.2 and residual_share(flat) < 1e-9
