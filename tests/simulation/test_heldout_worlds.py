"""The held-out simulator family (benchmarks/heldout): truth by intervention, shapes, carryover,
always-on plans, the public dataset's published truth and the harness's scoring."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.heldout import public
from benchmarks.heldout.run import Case, Outcome, covered, relative_error, score, world_edges, write_inputs
from benchmarks.heldout.worlds import (
    MROI_STEP,
    TV_DELAYED,
    WORLDS,
    Carryover,
    Curve,
    Plan,
    Response,
    _draw_noise,
    _Equations,
    carry,
    simulate_world,
)


@pytest.fixture(scope="module")
def ten():
    return simulate_world(WORLDS["ten_channels"], seed=3)


def test_every_world_has_its_shape_and_is_reproducible():
    for name, world in WORLDS.items():
        draw = simulate_world(world, seed=2)
        assert len(draw.data) == world.n_weeks, name
        assert list(draw.data.columns) == ["week", *(f"{c}_spend" for c in world.channels), "sales"]
        assert list(draw.truth["channel"]) == list(world.channels)
        assert (draw.data.drop(columns="week") >= 0).all().all()
        assert pd.infer_freq(draw.data["week"]) == "W-MON"
        pd.testing.assert_frame_equal(draw.data, simulate_world(world, seed=2).data)
    assert len(WORLDS) >= 8
    assert {w.n_weeks for w in WORLDS.values()} >= {70, 104}


def test_ten_channel_world_has_two_null_channels_with_zero_truth(ten):
    assert WORLDS["ten_channels"].nulls == ("podcast", "ooh")
    nulls = ten.truth[ten.truth["null"]]
    assert list(nulls["channel"]) == ["podcast", "ooh"]
    assert (nulls["roi"] == 0).all() and (nulls["mroi"] == 0).all()
    assert (ten.truth.loc[~ten.truth["null"], "roi"] > 0.3).all()


def test_tv_carryover_is_a_weibull_pdf_that_peaks_after_lag_zero():
    w = TV_DELAYED.weights()
    assert w.sum() == pytest.approx(1.0)
    assert int(np.argmax(w)) in (2, 3)
    assert w[0] < 0.2 * w.max()
    # one week of spend arrives spread over the following weeks, peaking two to three weeks later
    pulse = np.zeros(12)
    pulse[0] = 1000.0
    carried = carry(pulse, TV_DELAYED)
    assert int(np.argmax(carried)) in (2, 3) and carried.sum() == pytest.approx(1000.0)
    assert int(np.argmax(Carryover(1.0, 1.2, 6).weights())) == 0  # shape 1: the exponential density


def test_logistic_and_hill_responses_start_at_zero_and_saturate():
    x = np.array([0.0, 500.0, 1500.0, 3000.0, 1e6])
    for curve in Curve:
        r = Response(curve, 1500.0, 3.0)(x)
        assert r[0] == pytest.approx(0.0, abs=1e-12)
        assert np.all(np.diff(r) > 0) and r[-1] == pytest.approx(1.0, abs=1e-6)
    logistic = Response(Curve.LOGISTIC, 1500.0, 4.0)
    slopes = np.diff(logistic(np.linspace(0, 4000, 81)))
    assert 0 < int(np.argmax(slopes)) < 80  # an S-curve: steepest at its inflection, not at zero


def test_always_on_channels_never_go_dark_and_zero_lies_outside_their_support():
    for name in ("always_on", "ten_always_on"):
        world = WORLDS[name]
        draw = simulate_world(world, seed=5)
        for channel, spec in world.channels.items():
            if spec.plan is Plan.ALWAYS_ON:
                assert (draw.data[f"{channel}_spend"] > 0).all(), (name, channel)
                row = draw.truth.set_index("channel").loc[channel]
                assert row["always_on"] and not row["zero_in_support"], (name, channel)
    pulsed = simulate_world(WORLDS["seed_graph"], seed=5).truth.set_index("channel")
    assert pulsed.loc["email", "zero_in_support"] and pulsed.loc["tv", "zero_in_support"]


def test_truth_is_computed_by_intervention_with_the_noise_held_fixed():
    world = WORLDS["seed_graph"]
    draw = simulate_world(world, seed=11)
    eq = _Equations(world, _draw_noise(world, np.random.default_rng(11)))
    factual = eq.spends()
    y = eq.kpi(factual)
    np.testing.assert_allclose(y, draw.data["sales"], atol=0.006)
    truth = draw.truth.set_index("channel")
    # email has no mediator: switching it off changes only its own term
    email_off = dict(factual, email=np.zeros(world.n_weeks))
    expected = (y - eq.kpi(email_off)).sum() / factual["email"].sum()
    assert truth.loc["email", "roi"] == pytest.approx(expected, rel=1e-12)
    # TV's total effect runs through search: TV off lowers search spend
    tv_off = eq.spends({"tv": 0.0})
    assert tv_off["search"].sum() < 0.7 * factual["search"].sum()
    direct = (y - eq.kpi(dict(factual, tv=np.zeros(world.n_weeks)))).sum() / factual["tv"].sum()
    assert truth.loc["tv", "roi"] > direct * 1.1
    # mROI: +1% spend in every week, through the mediator
    up = eq.spends({"tv": 1.0 + MROI_STEP})
    assert up["search"].sum() > factual["search"].sum()
    assert truth.loc["tv", "mroi"] == pytest.approx((eq.kpi(up) - y).sum() / (MROI_STEP * factual["tv"].sum()))


def test_concave_channels_have_a_marginal_roi_below_their_average_roi(ten):
    truth = ten.truth.set_index("channel")
    for channel in ("email", "display", "affiliate"):  # Hill, slope ≤ 1.2, spend near the half point
        assert 0 < truth.loc[channel, "mroi"] < truth.loc[channel, "roi"], channel


def test_shared_budget_makes_tv_and_digital_collinear():
    def corr(name: str) -> float:
        data = simulate_world(WORLDS[name], seed=4).data
        on = (data["tv_spend"] > 0) & (data["digital_spend"] > 0)
        return float(np.corrcoef(np.log(data.loc[on, "tv_spend"]), np.log(data.loc[on, "digital_spend"]))[0, 1])

    assert corr("shared_budget") > corr("seed_graph") + 0.3


def test_late_launch_channel_spends_nothing_in_its_first_year():
    data = simulate_world(WORLDS["late_launch"], seed=1).data
    assert (data["email_spend"].iloc[:52] == 0).all() and (data["email_spend"].iloc[52:] > 0).mean() > 0.6


def test_world_graph_and_config_are_what_a_new_user_writes(tmp_path):
    world = WORLDS["shared_budget"]
    edges = world_edges(world)
    assert ("tv", "search") in edges and ("seasonality", "tv") in edges and ("seasonality", "digital") in edges
    assert ("seasonality", "email") not in edges and ("budget", "tv") in edges
    draw = simulate_world(world, seed=1)
    case = Case("shared_budget", 1, draw.data, draw.truth, edges, ("seasonality", "trend"), ("budget",))
    config = yaml.safe_load(write_inputs(case, tmp_path).read_text())
    assert config["channels"]["tv"] == {"spend_column": "tv_spend"}  # transforms left to selection
    assert config["controls"] == ["seasonality", "trend"] and config["graph"]["latent"] == ["budget"]
    assert "checks" not in config and "estimation" not in config
    assert len(pd.read_csv(tmp_path / "weekly.csv")) == world.n_weeks


def test_scoring_handles_refusals_and_columns_the_pipeline_does_not_write_yet():
    truth = pd.DataFrame({"channel": ["a", "b"], "spend": [10.0, 10.0], "roi": [2.0, 0.0], "mroi": [1.0, 0.0],
                          "zero_in_support": [True, True], "always_on": [False, False], "null": [False, True]})
    case = Case("w", 1, pd.DataFrame(), truth, (), ())
    estimates = pd.DataFrame({"channel": ["a", "b"], "effect": ["total", "total"], "roi": [2.5, 0.1],
                              "roi_ci_low": [1.9, -0.2], "roi_ci_high": [3.0, 0.4], "p_value": [0.01, 0.6],
                              "naive_roi": [3.0, 0.0]})
    scored = score(Outcome(case, False, False, (), estimates, 1.0, "")).set_index("channel")
    assert scored.loc["a", "roi_err"] == pytest.approx(0.25) and scored.loc["a", "roi_cover"] == 1.0
    assert scored.loc["b", "roi_err"] == pytest.approx(0.1)  # absolute error where the truth is 0
    assert scored.loc["a", "naive_err"] == pytest.approx(0.5)
    assert np.isnan(scored.loc["a", "mroi"]) and np.isnan(scored.loc["a", "mroi_cover"])
    assert scored.loc["a", "roi_support"] == ""
    refused = score(Outcome(case, True, False, ("overlap-min-spread",), None, 1.0, "")).set_index("channel")
    assert refused["refused"].all() and refused["roi"].isna().all()
    assert relative_error(1.1, 1.0) == pytest.approx(0.1) and covered(0.0, 1.0, 2.0) == 0.0


@pytest.mark.skipif(bool(public.missing()), reason="the public dataset file is absent")
def test_public_dataset_reproduces_its_published_truth():
    datasets = public.load_all()
    assert [d.name for d in datasets] == ["pymc_roas (z unobserved)", "pymc_roas (z observed)"]
    truth = datasets[0].truth.set_index("channel")
    for channel, published in public.PUBLISHED_ROAS.items():
        assert round(truth.loc[channel, "roi"], 2) == published
    assert truth.loc["x1", "always_on"] and not truth.loc["x1", "zero_in_support"]
    assert len(datasets[0].data) == 131 and "z" in datasets[1].data.columns and "z" not in datasets[0].data
    # the spend and KPI columns are the file's, unchanged
    raw = pd.read_csv(public.DATA)
    np.testing.assert_array_equal(datasets[0].data["sales"], raw["y"])


def test_worlds_are_frozen():
    with pytest.raises(AttributeError):
        WORLDS["seed_graph"].n_weeks = 10  # type: ignore[misc]
    assert replace(WORLDS["seed_graph"], n_weeks=70).n_weeks == 70


def test_the_oracle_config_reproduces_each_expressible_true_response() -> None:
    """`run.py --oracle` writes the true transforms into the config: our Weibull-PDF carryover and Hill
    curve follow the world's response up to the effect's scale; a logistic channel is left to selection."""
    from benchmarks.heldout.run import oracle_case, world_case
    from benchmarks.heldout.worlds import WORLDS, carry
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.media.features import configured_transform

    case = oracle_case(world_case("logistic", 1))
    assert set(case.transforms) == {"search", "email"}  # TV and digital are logistic in this world
    with tempfile.TemporaryDirectory() as tmp:
        path = write_inputs(case, Path(tmp))
        written = yaml.safe_load(path.read_text())["channels"]
        assert written["tv"] == {"spend_column": "tv_spend"}
        assert written["email"]["adstock"] == {"type": "weibull_pdf", "shape": 1.0, "scale": 1.2, "max_lag": 5}
        config = load_config(path)
    for name in case.transforms:
        spend = case.data[f"{name}_spend"].to_numpy(dtype=float)
        ours = configured_transform(config.channel(name))
        mine = ours.apply(spend, ours.reference(spend))
        spec = WORLDS["logistic"].channels[name]
        truth = spec.response(carry(spend, spec.carryover))
        assert np.corrcoef(mine, truth)[0, 1] > 0.999
        ratio = mine[truth > 0.01] / truth[truth > 0.01]
        assert np.std(ratio) < 0.02 * np.mean(ratio)  # the same curve up to the effect's scale
