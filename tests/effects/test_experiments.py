"""Lift tests reconciled with the model over the same weeks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from cmmm_pipeline.core.config import ExperimentConfig
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.effects.estimation import estimate_channels
from cmmm_pipeline.effects.experiments import experiments_table, reconcile, window_mask
from cmmm_pipeline.effects.robustness import assess, in_table_order
from cmmm_pipeline.media.features import build_features
from cmmm_pipeline.media.selection import SelectionSettings, select_transforms
from cmmm_pipeline.simulation.simulate import SAMPLE_EXPERIMENT, SAMPLE_SEED, Scenario, simulate

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"


@pytest.fixture(scope="module")
def assessed() -> dict:
    """The robustness step on the bundled sample, called as the asset calls it."""
    config = load_config(SAMPLE)
    raw = load_raw(config)
    chosen = select_transforms(raw, config, SelectionSettings.from_config(config.estimation))
    features = build_features(raw, config, chosen.transforms)
    estimated = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    result = assess(raw, features, config, estimated.table, estimated.specs, estimated.expanded, chosen.candidates,
                    chosen.selected_index)
    return {"raw": raw, "result": result, "config": config, "features": features, "estimated": estimated,
            "chosen": chosen}


def test_the_sample_lift_test_agrees_with_the_model(assessed: dict) -> None:
    table = assessed["result"].experiments
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["channel"], row["weeks"]) == ("tv", 5)
    assert row["status"] == "PASS" and row["intervals_overlap"] and row["model_inside_measured"]
    # The simulator's true TV contribution over the test's weeks.
    sim = simulate(Scenario(), SAMPLE_SEED).contributions
    channel, start, end = SAMPLE_EXPERIMENT
    truth = sim.loc[(sim["week"] >= start) & (sim["week"] <= end), channel].sum()
    assert row["measured_ci_low"] <= truth <= row["measured_ci_high"]
    assert row["model_incremental_kpi"] == pytest.approx(truth, rel=0.12)
    assert row["model_ci_low"] < row["model_incremental_kpi"] < row["model_ci_high"]


def test_the_robustness_step_writes_refutations_and_a_status_per_channel(assessed: dict) -> None:
    result = assessed["result"]
    assert set(result.robustness) == {"tv", "search", "digital", "email"}
    assert set(result.refutations["status"]) <= {"PASS", "REVIEW", "FAIL"}
    assert len(result.refutations) == 6 * 5  # six refuters on tv total, tv direct, search, digital, email
    bench = result.refutations[result.refutations["refuter"] == "benchmark_confounder"].set_index(["channel", "effect"])
    assert "as strong as seasonality" in bench.loc[("tv", "total"), "message"]
    assert "would move the ROI from" in bench.loc[("tv", "total"), "message"]  # the ROI factor reached it
    assert result.robustness["tv"] == "PASS"
    assert len(result.intervals) == 6 and result.block_length >= 1


def _experiment(low: float, value: float, high: float) -> ExperimentConfig:
    return ExperimentConfig("tv", dt.date(2024, 3, 4), dt.date(2024, 4, 1), value, low, high)


def test_statuses_follow_the_overlap_of_the_intervals() -> None:
    model = (902.0, 1098.0)
    inside = reconcile(_experiment(800, 1000, 1200), 5, 1000.0, model, 0.95)
    assert inside.status is Status.PASS and inside.inside and inside.model_inside
    model_only = reconcile(_experiment(700, 800, 1100), 5, 1000.0, model, 0.95)
    assert model_only.status is Status.PASS and not model_only.inside and model_only.model_inside
    overlap = reconcile(_experiment(1050, 1300, 1500), 5, 1000.0, model, 0.95)
    assert overlap.status is Status.REVIEW and overlap.overlap and not overlap.inside
    apart = reconcile(_experiment(1200, 1400, 1600), 5, 1000.0, model, 0.95)
    assert apart.status is Status.FAIL and not apart.overlap
    assert (apart.model_low, apart.model_high) == model
    assert "[902, 1,098]" in apart.message


def test_a_test_outside_the_data_or_without_a_model_estimate_is_review() -> None:
    outside = reconcile(_experiment(800, 1000, 1200), 0, float("nan"), None, 0.95)
    assert outside.status is Status.REVIEW and "none of the test's weeks" in outside.message
    unidentified = reconcile(_experiment(800, 1000, 1200), 5, float("nan"), None, 0.95)
    assert unidentified.status is Status.REVIEW and "no estimate" in unidentified.message
    table = experiments_table([outside, unidentified])
    assert list(table["status"]) == ["REVIEW", "REVIEW"] and table["model_ci_low"].isna().all()


def test_window_is_inclusive_of_both_ends() -> None:
    weeks = pd.Series(pd.date_range("2024-02-26", periods=7, freq="W-MON"))
    mask = window_mask(weeks, dt.date(2024, 3, 4), dt.date(2024, 4, 1))
    assert mask.tolist() == [False, True, True, True, True, True, False]


def test_the_robustness_step_follows_the_table_not_the_order_specs_arrive_in(assessed: dict) -> None:
    """The specs are taken in the estimates table's row order (each refuter's seed follows its
    spec's position), so the published refutations and intervals do not depend on the order the
    estimation step identified the effects in (a pass-through of that order changes the refutations)."""
    estimated = assessed["estimated"]
    table = estimated.table
    rows = [(r.channel, r.effect) for r in table.itertuples(index=False) if r.effect != "indirect"]
    identified = [(s.channel, s.effect.value) for s in estimated.specs]
    assert identified != rows and sorted(identified) == sorted(rows)  # config order vs table order
    assert [(s.channel, s.effect.value) for s in in_table_order(table, estimated.specs)] == rows
    chosen = assessed["chosen"]
    again = assess(assessed["raw"], assessed["features"], assessed["config"], table, tuple(reversed(estimated.specs)),
                   estimated.expanded, chosen.candidates, chosen.selected_index)
    pd.testing.assert_frame_equal(again.intervals, assessed["result"].intervals, check_exact=True)
    pd.testing.assert_frame_equal(again.refutations, assessed["result"].refutations, check_exact=True)
