"""DoWhy identification and estimation: adjustment sets, direct/indirect against the simulator's
truth, and a channel that is not identifiable failing alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.data.ingest import load_raw, spend_totals
from cmmm_pipeline.effects.estimation import (
    ChannelSeries,
    Estimator,
    channel_series,
    design,
    estimates_table,
    gcomputation_point,
    gcomputation_specs,
    identify,
    identify_channels,
    naive_coefficients,
)
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.simulation.simulate import SAMPLE_SEED, Scenario, simulate
from tests.conftest import sample_world

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"


@pytest.fixture(scope="module")
def sample() -> dict:
    """The sample with the simulator's true transforms for every channel (no selection noise)."""
    world = sample_world()
    config, raw, columns = world["config"], world["raw"], world["columns"]
    return {**world, "controls": [c for node in config.controls for c in columns[node]],
            "series": channel_series(raw, config, world["transforms"])}


def _table(sample: dict, failures: bool = False, g: nx.DiGraph | None = None,
           series: dict[str, ChannelSeries] | None = None) -> pd.DataFrame:
    """The published table; with the channels' spend and transforms unless `series` is given empty."""
    config, features = sample["config"], sample["features"]
    expanded = g if g is not None else sample["expanded"]
    channels = list(config.channel_names)
    specs, missing = identify_channels(features, expanded, sample["g"], channels, config.kpi)
    naive = naive_coefficients(features, channels, sample["controls"], config.kpi)
    return estimates_table(features, expanded, specs, config.kpi, spend_totals(sample["raw"], config), naive,
                           missing if failures else None, sample["series"] if series is None else series)


def test_total_effect_never_adjusts_for_a_mediator_and_direct_does(sample: dict) -> None:
    total = identify(sample["features"], sample["expanded"], "tv", "sales", EffectType.TOTAL)
    direct = identify(sample["features"], sample["expanded"], "tv", "sales", EffectType.DIRECT)
    assert "search" not in total.adjustment
    assert {"seasonality_sin1", "seasonality_cos1"} <= set(total.adjustment)  # the confounder is adjusted for
    assert "search" in direct.adjustment and direct.mediators == ("search",)
    email = identify(sample["features"], sample["expanded"], "email", "sales", EffectType.TOTAL)
    assert {"tv", "search", "digital", "price", "trend"} <= set(email.adjustment)  # precision controls


def test_total_direct_and_indirect_are_close_to_the_simulated_truth(sample: dict, sample_truth: pd.DataFrame) -> None:
    est = _table(sample).set_index(["channel", "effect"])
    truth = sample_truth.set_index(["channel", "effect"])
    for effect, tolerance in (("total", 0.03), ("direct", 0.06), ("indirect", 0.20)):
        assert est.loc[("tv", effect), "roi"] == pytest.approx(truth.loc[("tv", effect), "roi"], rel=tolerance), effect
    assert est.loc[("tv", "indirect"), "incremental_kpi"] == pytest.approx(
        est.loc[("tv", "total"), "incremental_kpi"] - est.loc[("tv", "direct"), "incremental_kpi"])
    for channel in ("search", "digital", "email"):
        assert est.loc[(channel, "total"), "roi"] == pytest.approx(truth.loc[(channel, "total"), "roi"], rel=0.12)


def test_tv_total_is_g_computed_and_ate_keeps_dowhys_linear_total(sample: dict) -> None:
    est = _table(sample).set_index(["channel", "effect"])
    linear = _table(sample, series={}).set_index(["channel", "effect"])
    for effect in ("total", "indirect"):
        assert est.loc[("tv", effect), "estimator"] == Estimator.G_COMPUTATION.value
        assert linear.loc[("tv", effect), "estimator"] == Estimator.LINEAR.value
    assert est.loc[("tv", "direct"), "estimator"] == Estimator.LINEAR.value
    assert est.loc[("tv", "total"), "ate"] == pytest.approx(linear.loc[("tv", "total"), "ate"], rel=1e-12)
    assert est.loc[("tv", "total"), "incremental_kpi"] != pytest.approx(linear.loc[("tv", "total"), "incremental_kpi"],
                                                                      rel=1e-3)
    for channel in ("search", "digital", "email"):  # not mediated: the linear estimate, unchanged
        assert est.loc[(channel, "total"), "estimator"] == Estimator.LINEAR.value
        assert est.loc[(channel, "total"), "roi"] == linear.loc[(channel, "total"), "roi"]


def test_g_computation_falls_back_where_a_mediator_is_not_a_channel(sample: dict) -> None:
    specs, _ = identify_channels(sample["features"], sample["expanded"], sample["g"],
                                 list(sample["config"].channel_names), "sales")
    assert set(gcomputation_specs(sample["features"], sample["expanded"], specs, ["tv", "search"])) == {"tv"}
    assert gcomputation_specs(sample["features"], sample["expanded"], specs, ["tv", "digital", "email"]) == {}


def test_g_computed_tv_total_is_unbiased_where_the_linear_total_is_not() -> None:
    """30 simulated datasets, true transforms configured. One dataset's error has a standard
    deviation of ~4% (mostly the sampling error of search's response to TV), so the test is on the
    mean: the g-computed TV total is within 2% of the truth on average, the linear total regression
    misses search's saturation by more (-2.4% on these seeds), and the typical error is smaller."""
    config = load_config(SAMPLE)
    truth_params = Scenario().channels
    transforms = {c.name: replace(configured_transform(c), decay=truth_params[c.name].decay,
                                  half_saturation=truth_params[c.name].half_saturation,
                                  slope=truth_params[c.name].slope) for c in config.channels}
    g = build_graph(config)
    errors, linear_errors, gspec, total = [], [], None, None
    for seed in range(30):
        sim = simulate(Scenario(), seed)
        raw = sim.data
        features = build_features(raw, config, transforms)
        expanded = expand_graph(g, node_columns(raw, config))
        if gspec is None:
            specs, _ = identify_channels(features, expanded, g, list(config.channel_names), "sales")
            gspec = gcomputation_specs(features, expanded, specs, list(config.channel_names))["tv"]
            total = next(s for s in specs if s.channel == "tv" and s.effect is EffectType.TOTAL)
        truth = float(sim.truth.set_index(["channel", "effect"]).loc[("tv", "total"), "incremental_kpi"])
        point = float(gcomputation_point(features, gspec, channel_series(raw, config, transforms), "sales").sum())
        beta = np.linalg.lstsq(design(features, total), features["sales"].to_numpy(), rcond=None)[0][1]
        errors.append(point / truth - 1.0)
        linear_errors.append(beta * features["tv"].sum() / truth - 1.0)
    bias, linear_bias = float(np.mean(errors)), float(np.mean(linear_errors))
    assert abs(bias) < 0.02 and linear_bias < -0.015 and abs(bias) < abs(linear_bias)
    assert np.median(np.abs(errors)) < np.median(np.abs(linear_errors))


def test_naive_ols_loses_tv_halo_through_search(sample: dict, sample_truth: pd.DataFrame) -> None:
    est = _table(sample).set_index(["channel", "effect"])
    truth_roi = sample_truth.set_index(["channel", "effect"]).loc[("tv", "total"), "roi"]
    naive = est.loc[("tv", "total"), "naive_roi"]
    assert naive < 0.85 * truth_roi
    assert naive == pytest.approx(est.loc[("tv", "direct"), "roi"], rel=1e-9)  # it is the direct effect


def test_dowhy_estimate_is_the_ols_on_the_adjustment_set(sample: dict) -> None:
    table = _table(sample)
    y = sample["features"]["sales"].to_numpy()
    specs, _ = identify_channels(sample["features"], sample["expanded"], sample["g"],
                                 list(sample["config"].channel_names), sample["config"].kpi)
    assert len(specs) == 5  # tv total and direct, search, digital, email
    for spec in specs:
        beta = np.linalg.lstsq(design(sample["features"], spec), y, rcond=None)[0][1]
        row = table[(table["channel"] == spec.channel) & (table["effect"] == spec.effect.value)].iloc[0]
        assert row["ate"] == pytest.approx(beta, rel=1e-9)


def _with_latent_confounder(sample: dict, channel: str) -> nx.DiGraph:
    g = sample["expanded"].copy()
    g.add_edge("brand_buzz", channel)
    g.add_edge("brand_buzz", "sales")
    return g


def test_identify_raises_when_a_hidden_confounder_blocks_every_adjustment_set(sample: dict) -> None:
    g = _with_latent_confounder(sample, "email")
    with pytest.raises(EstimationError) as err:
        identify(sample["features"], g, "email", "sales", EffectType.TOTAL)
    assert err.value.rule == "not-identifiable" and "brand_buzz" in err.value.detail
    # The other channels stay identifiable: the latent node is not one of their confounders.
    assert identify(sample["features"], g, "tv", "sales", EffectType.TOTAL).adjustment


def test_a_channel_that_is_not_identifiable_fails_alone_with_its_reason(sample: dict) -> None:
    g = _with_latent_confounder(sample, "email")
    table = _table(sample, failures=True, g=g).set_index(["channel", "effect"])
    row = table.loc[("email", "total")]
    assert np.isnan(row["ate"]) and np.isnan(row["roi"]) and "no valid adjustment set" in row["reason"]
    assert "brand_buzz" not in "|".join(table["adjustment"])  # a latent node is never adjusted for
    for channel in ("tv", "search", "digital"):
        assert np.isfinite(table.loc[(channel, "total"), "roi"]) and table.loc[(channel, "total"), "reason"] == ""
    specs, missing = identify_channels(sample["features"], g, sample["g"], list(sample["config"].channel_names),
                                       sample["config"].kpi)
    assert ("email", EffectType.TOTAL) not in {(s.channel, s.effect) for s in specs}
    assert [(f.channel, f.effect) for f in missing] == [("email", EffectType.TOTAL)]


def test_a_hidden_mediator_outcome_confounder_removes_only_the_direct_effect(sample: dict) -> None:
    g = sample["expanded"].copy()
    g.add_edge("hidden", "search")
    g.add_edge("hidden", "sales")
    table = _table(sample, failures=True, g=g).set_index(["channel", "effect"])
    assert np.isfinite(table.loc[("tv", "total"), "roi"])
    assert np.isnan(table.loc[("tv", "direct"), "roi"]) and np.isnan(table.loc[("tv", "indirect"), "roi"])
    assert table.loc[("tv", "indirect"), "reason"] == "the direct effect is not identified."
    assert np.isnan(table.loc[("search", "total"), "roi"])  # search itself is now confounded


def test_the_sample_is_the_seeded_simulation() -> None:
    """Guards the truth used above: the bundled data is `simulate(Scenario(), SAMPLE_SEED)`."""
    config = load_config(SAMPLE)
    raw = load_raw(config)
    data = simulate(Scenario(), SAMPLE_SEED).data
    np.testing.assert_allclose(raw["sales"].to_numpy(), data["sales"].to_numpy())


def test_batched_ols_is_scale_free_and_still_refuses_collinear_designs() -> None:
    """A control measured in millions (Robyn's competitor sales, ~7e6) made every resample look
    rank-deficient, so the intervals came out NaN; only collinear columns may do that."""
    from cmmm_pipeline.effects.estimation import batched_ols

    rng = np.random.default_rng(3)
    n = 120
    media, control = rng.gamma(2.0, 1.0, n), rng.normal(0.0, 1.0, n)
    y = 2.0 + 1.5 * media + 0.8 * control + rng.normal(0.0, 0.1, n)
    x = np.column_stack([np.ones(n), media, control])
    wide = x * np.array([1.0, 1.0, 7e6])
    collinear = np.column_stack([np.ones(n), media, 3.0 * media])
    beta = batched_ols(np.stack([x, wide, collinear]), np.stack([y, y, y]))
    assert beta[0, 1] == pytest.approx(1.5, abs=0.05)
    assert beta[1, :2] == pytest.approx(beta[0, :2], rel=1e-9)
    assert beta[1, 2] * 7e6 == pytest.approx(beta[0, 2], rel=1e-9)
    assert np.isnan(beta[2]).all()


def test_the_singularity_cut_is_the_condition_number_of_the_scaled_gram_matrix() -> None:
    """Solvable exactly when the column-scaled Gram matrix's condition number (its eigenvalue ratio)
    is below MAX_CONDITION, as `np.linalg.cond` judges it, from well-posed to exactly collinear."""
    from cmmm_pipeline.effects.estimation import MAX_CONDITION, solve_normal_equations

    rng = np.random.default_rng(5)
    n = 156
    media = rng.gamma(2.0, 1.0, n)
    noise = rng.normal(0.0, 1.0, n)
    grams = []
    for gap in (1.0, 1e-2, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 0.0):  # a second column ever nearer the first
        x = np.column_stack([np.ones(n), media, media + gap * noise])
        grams.append(x.T @ x)
    gram = np.stack(grams)
    ok, _ = solve_normal_equations(gram, np.ones((len(grams), 3, 1)))
    scale = np.sqrt(np.einsum("bii->bi", gram))
    expected = np.linalg.cond(gram / (scale[:, :, None] * scale[:, None, :])) < MAX_CONDITION
    assert ok.tolist() == expected.tolist()
    assert ok.tolist() == [True] * 4 + [False] * 4  # conditions 4e11 and 4e13 on either side of the cut
