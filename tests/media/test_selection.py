"""Transform selection by the profile likelihood (default) or time-series cross validation: the kernels,
the search, the records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import (AdstockConfig, ChannelConfig, CvScheme, DataConfig, EstimationConfig,
                                       PipelineConfig, SaturationConfig, SelectionCriterion)
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.media.features import ParameterSource, build_features, configured_transform, transforms_table
from cmmm_pipeline.media.selection import (
    Folds,
    ParameterGrid,
    SelectionSettings,
    channel_candidates,
    cv_errors,
    fold_bounds,
    in_sample_coefficients,
    in_sample_sse,
    select_transforms,
)
from cmmm_pipeline.simulation.simulate import Scenario, simulate
from tests.conftest import sample_config_selecting

EDGES = (("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
         ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
         ("trend", "sales"))


def _config(scenario: Scenario, selected: tuple[str, ...]) -> PipelineConfig:
    channels = tuple(
        ChannelConfig(name, ch.spend_column) if name in selected else
        ChannelConfig(name, ch.spend_column, AdstockConfig(decay=ch.decay),
                      SaturationConfig(half_saturation=ch.half_saturation, slope=ch.slope))
        for name, ch in scenario.channels.items())
    return PipelineConfig(source=Path("test.yaml"), data=DataConfig(Path("simulated"), "week", "sales"),
                          channels=channels, controls=("seasonality", "trend", "price"), edges=EDGES)


def test_cv_kernel_equals_explicit_forward_chaining_regressions() -> None:
    rng = np.random.default_rng(3)
    b, n, p, g = 2, 120, 6, 4
    fixed = np.concatenate([np.ones((b, n, 1)), rng.normal(size=(b, n, p - 1))], axis=2)
    cand = rng.random((b, n, g))
    y = fixed[:, :, 1] + 2.0 * cand[:, :, 2] + rng.normal(size=(b, n))
    edges = fold_bounds(n, 4, 0.5)
    fast = cv_errors(fixed, cand, y, Folds(edges))
    slow = np.empty((b, g))
    for i in range(b):
        for j in range(g):
            x = np.column_stack([fixed[i], cand[i, :, j]])
            errors = []
            for lo, hi in zip(edges[1:-1], edges[2:]):
                beta = np.linalg.lstsq(x[:lo], y[i, :lo], rcond=None)[0]
                errors.append(y[i, lo:hi] - x[lo:hi] @ beta)
            slow[i, j] = np.sqrt(np.mean(np.concatenate(errors) ** 2))
    np.testing.assert_allclose(fast, slow, rtol=1e-8)
    assert (fast.argmin(axis=1) == 2).all()  # the series that generated y predicts it best


def test_blocked_cv_kernel_equals_explicit_leave_one_block_out_regressions() -> None:
    rng = np.random.default_rng(5)
    b, n, p, g = 2, 100, 5, 4
    fixed = np.concatenate([np.ones((b, n, 1)), rng.normal(size=(b, n, p - 1))], axis=2)
    cand = rng.random((b, n, g))
    y = fixed[:, :, 1] - 1.5 * cand[:, :, 1] + rng.normal(size=(b, n))
    folds = Folds.of(n, SelectionSettings(folds=5, scheme=CvScheme.BLOCKED))
    assert folds.edges.tolist() == [0, 20, 40, 60, 80, 100] and folds.test_weeks == n
    fast = cv_errors(fixed, cand, y, folds)
    slow = np.empty((b, g))
    for i in range(b):
        for j in range(g):
            x = np.column_stack([fixed[i], cand[i, :, j]])
            errors = []
            for lo, hi in zip(folds.edges[:-1], folds.edges[1:]):
                train = np.r_[0:lo, hi:n]
                beta = np.linalg.lstsq(x[train], y[i, train], rcond=None)[0]
                errors.append(y[i, lo:hi] - x[lo:hi] @ beta)
            slow[i, j] = np.sqrt(np.mean(np.concatenate(errors) ** 2))
    np.testing.assert_allclose(fast, slow, rtol=1e-8)
    assert (fast.argmin(axis=1) == 1).all()  # the series that generated y predicts it best
    forward = cv_errors(fixed, cand, y, Folds.of(n, SelectionSettings(folds=5)))
    assert not np.allclose(fast, forward)  # the scheme reaches the kernel


def test_the_cv_scheme_is_read_from_the_config_and_unknown_ones_are_refused() -> None:
    from cmmm_pipeline.core.errors import ConfigError

    estimation = EstimationConfig(cv_scheme="blocked")
    assert estimation.cv_scheme is CvScheme.BLOCKED
    assert SelectionSettings.from_config(estimation).scheme is CvScheme.BLOCKED
    assert SelectionSettings.from_config(EstimationConfig()).scheme is CvScheme.FORWARD
    with pytest.raises(ConfigError, match=r"estimation\.cv_scheme.*not a known scheme.*forward, blocked"):
        EstimationConfig(cv_scheme="shuffled")


def test_in_sample_kernel_equals_explicit_regressions() -> None:
    rng = np.random.default_rng(4)
    b, n, p, g = 2, 90, 5, 3
    fixed = np.concatenate([np.ones((b, n, 1)), rng.normal(size=(b, n, p - 1))], axis=2)
    cand = rng.random((b, n, g))
    y = fixed[:, :, 2] + 1.5 * cand[:, :, 0] + rng.normal(size=(b, n))
    fast = in_sample_sse(fixed, cand, y)
    slow = np.array([[np.sum((y[i] - np.column_stack([fixed[i], cand[i, :, j]])
                              @ np.linalg.lstsq(np.column_stack([fixed[i], cand[i, :, j]]), y[i], rcond=None)[0]) ** 2)
                      for j in range(g)] for i in range(b)])
    np.testing.assert_allclose(fast, slow, rtol=1e-8)
    assert fast.argmin(axis=1).tolist() == [0, 0]  # the candidate that made y


def test_in_sample_coefficients_equal_explicit_regressions_and_are_nan_for_an_empty_candidate() -> None:
    rng = np.random.default_rng(5)
    b, n, p, g = 2, 90, 4, 3
    fixed = np.concatenate([np.ones((b, n, 1)), rng.normal(size=(b, n, p - 1))], axis=2)
    cand = rng.random((b, n, g))
    cand[:, :, 2] = 0.0  # a channel that never spent: no coefficient to estimate
    y = fixed[:, :, 2] + 1.5 * cand[:, :, 0] + rng.normal(size=(b, n))
    fast = in_sample_coefficients(fixed, cand, y)
    slow = np.array([[np.linalg.lstsq(np.column_stack([fixed[i], cand[i, :, j]]), y[i], rcond=None)[0][-1]
                      for j in range(2)] for i in range(b)])
    np.testing.assert_allclose(fast[:, :2], slow, rtol=1e-8)
    assert np.all(np.abs(fast[:, 0] - 1.5) < 0.3)  # the coefficient that made y
    assert np.isnan(fast[:, 2]).all()


def test_folds_train_on_the_past_and_test_on_the_future() -> None:
    edges = fold_bounds(156, 4, 0.5)
    assert edges[0] == 0 and edges[1] == 78 and edges[-1] == 156
    assert np.all(np.diff(edges) > 0) and len(edges) == 6  # initial window + 4 test segments


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_selection_recovers_the_simulated_decay_of_a_strong_channel(seed: int) -> None:
    """Every transform left to the data; TV (the largest channel) gets its true decay 0.6 back."""
    scenario = Scenario()
    chosen = select_transforms(simulate(scenario, seed).data, _config(scenario, tuple(scenario.channels)),
                               SelectionSettings())
    assert chosen.transforms["tv"].decay == pytest.approx(0.6, abs=0.1)
    assert chosen.transforms["tv"].source is ParameterSource.SELECTED


def test_selection_recovers_decay_when_the_signal_is_clear() -> None:
    scenario = replace(Scenario(), noise_sd=20.0)
    chosen = select_transforms(simulate(scenario, 1).data, _config(scenario, ("digital",)), SelectionSettings())
    assert chosen.transforms["digital"].decay == pytest.approx(0.3, abs=0.1)
    assert chosen.cv_error["digital"] < 40.0  # close to the noise level, far below the KPI's spread


def test_configured_values_are_used_as_given_and_the_grid_is_recorded() -> None:
    scenario = Scenario()
    config = _config(scenario, ())
    partly = replace(config.channel("digital"), saturation=SaturationConfig())  # decay 0.3 configured
    config = replace(config, channels=tuple(partly if c.name == "digital" else c for c in config.channels))
    grid = ParameterGrid()
    chosen = select_transforms(simulate(scenario, 4).data, config, SelectionSettings(grid=grid))
    table = chosen.table
    assert set(table["channel"]) == {"digital"}
    assert len(table) == len(grid.half_saturations) * len(grid.slopes)
    assert (table["decay"] == 0.3).all() and table["selected"].sum() == 1
    pick = table[table["selected"]].iloc[0]
    assert pick["cv_error"] == pytest.approx(table["cv_error"].min())
    assert (table["fit_rmse"] < table["cv_error"]).all()  # in-sample fit beats predicting the future
    assert chosen.transforms["digital"].half_saturation == pick["half_saturation"]
    assert chosen.transforms["tv"] == configured_transform(config.channel("tv"))
    assert set(chosen.cv_error) == {"digital"}
    by_fit = select_transforms(simulate(scenario, 4).data, config,
                               SelectionSettings(grid=grid, criterion=SelectionCriterion.IN_SAMPLE)).table
    fit_pick = by_fit[by_fit["selected"]].iloc[0]
    assert fit_pick["fit_rmse"] == pytest.approx(by_fit["fit_rmse"].min())


def test_the_selected_series_is_exactly_what_build_features_applies() -> None:
    config = sample_config_selecting("digital", "email")
    raw = load_raw(config)
    chosen = select_transforms(raw, config, SelectionSettings())
    features = build_features(raw, config, chosen.transforms)
    for name in ("digital", "email"):
        t = chosen.transforms[name]
        spend = raw[config.channel(name).spend_column].to_numpy()
        np.testing.assert_array_equal(features[name].to_numpy(), t.apply(spend, t.reference(spend)))
    parameters = transforms_table(chosen.transforms, chosen.cv_error)
    assert list(parameters.loc[parameters["source"] == "selected", "channel"]) == ["digital", "email"]
    assert parameters.loc[parameters["source"] == "config", "cv_error"].isna().all()


def test_the_selection_hands_on_its_candidates_and_choice() -> None:
    config = sample_config_selecting("digital", "email")
    raw = load_raw(config)
    settings = SelectionSettings()
    chosen = select_transforms(raw, config, settings)
    for c in config.channels:
        assert chosen.candidates[c.name] == channel_candidates(c, settings.grid)
        assert chosen.candidates[c.name][chosen.selected_index[c.name]] == chosen.transforms[c.name]
    assert len(chosen.candidates["digital"]) > 1 and len(chosen.candidates["tv"]) == 1  # tv is configured


def test_grid_and_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ParameterGrid(decays=(0.5, 1.0))
    with pytest.raises(ValueError):
        ParameterGrid(slopes=())
    with pytest.raises(ValueError):
        SelectionSettings(folds=1)


def test_no_channel_to_select_gives_an_empty_typed_table() -> None:
    config = _config(Scenario(), ())
    chosen = select_transforms(simulate(Scenario(), 0).data, config, SelectionSettings())
    assert chosen.table.empty and list(chosen.table.columns)[:2] == ["channel", "adstock"]
    assert chosen.cv_error == {}
    assert isinstance(chosen.table, pd.DataFrame) and chosen.table["cv_error"].dtype == np.float64


def _delayed_peak_world(seed: int, n: int = 156) -> tuple[pd.DataFrame, PipelineConfig]:
    """Sales respond to TV through a carryover that peaks three weeks after airing (Weibull-PDF
    weights), plus a pulsed second channel and seasonality: the world geometric decay cannot fit."""
    from cmmm_pipeline.media.transforms import fourier_terms, hill_saturation, weibull_pdf_adstock

    rng = np.random.default_rng(seed)
    season = fourier_terms(n, 1)[:, 0]
    tv = rng.gamma(3.0, 30.0, n) * (rng.random(n) < 0.6) * (1 + 0.3 * season)
    radio = rng.gamma(2.0, 10.0, n) * (rng.random(n) < 0.7)
    tv_carry = weibull_pdf_adstock(tv, 4.0, 3.5, 12)
    radio_carry = np.asarray(radio, dtype=float)
    sales = (1000 + 300 * hill_saturation(tv_carry / tv_carry.mean(), 1.0, 1.5)
             + 120 * hill_saturation(radio_carry / radio_carry.mean(), 1.0, 1.0) + 60 * season + rng.normal(0, 8, n))
    raw = pd.DataFrame({"week": pd.date_range("2022-01-03", periods=n, freq="7D"), "tv_spend": tv,
                        "radio_spend": radio, "sales": sales})
    config = PipelineConfig(source=Path("delayed.yaml"), data=DataConfig(Path("simulated"), "week", "sales"),
                            channels=(ChannelConfig("tv", "tv_spend"), ChannelConfig("radio", "radio_spend")),
                            controls=("seasonality",), edges=(("seasonality", "tv"), ("seasonality", "sales"),
                                                               ("tv", "sales"), ("radio", "sales")))
    return raw, config


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_delayed_peak_carryover_is_chosen_where_the_data_have_one(seed: int) -> None:
    from cmmm_pipeline.core.config import AdstockType
    from cmmm_pipeline.media.transforms import weibull_pdf_weights

    raw, config = _delayed_peak_world(seed)
    chosen = select_transforms(raw, config, SelectionSettings())
    tv = chosen.transforms["tv"]
    assert tv.adstock is AdstockType.WEIBULL_PDF
    peak = int(np.argmax(weibull_pdf_weights(tv.weibull_shape, tv.weibull_scale, tv.max_lag)))
    assert abs(peak - 3) <= 1
    # The channel without carryover keeps a geometric kernel: the family is chosen per channel.
    assert chosen.transforms["radio"].adstock is AdstockType.GEOMETRIC


def test_an_unconfigured_channel_searches_both_carryover_families() -> None:
    from cmmm_pipeline.core.config import AdstockType

    grid = ParameterGrid()
    candidates = channel_candidates(ChannelConfig("tv", "tv_spend"), grid)
    kinds = {t.adstock for t in candidates}
    assert kinds == {AdstockType.GEOMETRIC, AdstockType.WEIBULL_PDF}
    per_adstock = len(grid.half_saturations) * len(grid.slopes)
    assert len(candidates) == per_adstock * (len(grid.decays) + len(grid.weibull_pdf_shapes) * len(grid.weibull_pdf_scales))
    # A configured decay still means geometric, as it always did.
    only_geometric = channel_candidates(ChannelConfig("tv", "tv_spend", AdstockConfig(decay=0.4)), grid)
    assert {t.adstock for t in only_geometric} == {AdstockType.GEOMETRIC}


def test_selected_values_on_a_grid_edge_are_recorded() -> None:
    config = sample_config_selecting("digital", "email")
    raw = load_raw(config)
    grid = ParameterGrid(half_saturations=(1.0, 1.5), slopes=(1.0, 1.2, 1.5))
    chosen = select_transforms(raw, config, SelectionSettings(grid=grid))
    for name, edges in chosen.grid_edges.items():
        t = chosen.transforms[name]
        assert ("half_saturation" in edges) == (t.half_saturation in (1.0, 1.5))  # a two-point axis: always an edge
        assert ("slope" in edges) == (t.slope in (1.0, 1.5))
    parameters = transforms_table(chosen.transforms, chosen.cv_error, chosen.grid_edges)
    recorded = parameters.set_index("channel")["grid_edge"]
    assert recorded["digital"] == ", ".join(chosen.grid_edges["digital"])
    assert recorded["tv"] == ""  # configured: never flagged
    selected_rows = chosen.table[chosen.table["selected"]].set_index("channel")["grid_edge"]
    assert selected_rows["email"] == recorded["email"]


def test_the_one_se_criterion_prefers_the_reference_among_indistinguishable_points() -> None:
    from cmmm_pipeline.core.config import SelectionCriterion
    from cmmm_pipeline.media.selection import pick

    edges = Folds(np.array([0, 50, 60, 70, 80, 90]))
    # Three candidates, four folds of ten weeks each: candidate 0 is best by a hair, candidate 2
    # (nearest the reference) is within one paired standard error, candidate 1 is clearly worse.
    fold_mse = np.array([[[1.00, 1.10, 0.90, 1.00], [2.0, 2.1, 1.9, 2.0], [1.02, 1.05, 0.95, 1.01]]])
    fold_sse = fold_mse * 10
    distances = np.array([2.0, 0.5, 0.0])
    assert pick(fold_sse, edges, distances, SelectionCriterion.CV_MIN)[0] == 0
    assert pick(fold_sse, edges, distances, SelectionCriterion.ONE_SE)[0] == 2
    # A candidate clearly worse in every fold stays out of the band even when it is the reference.
    fold_sse[0, 2] = fold_mse[0, 1] * 10
    assert pick(fold_sse, edges, np.array([2.0, 0.5, 0.0]), SelectionCriterion.ONE_SE)[0] == 0
