"""Transform selection by time-series cross validation: the kernel, the search, the records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import AdstockConfig, ChannelConfig, DataConfig, PipelineConfig, SaturationConfig
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.media.features import ParameterSource, build_features, configured_transform, transforms_table
from cmmm_pipeline.media.selection import (
    ParameterGrid,
    SelectionSettings,
    candidates_from_tables,
    channel_candidates,
    cv_errors,
    fold_bounds,
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
    fast = cv_errors(fixed, cand, y, edges)
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
    assert chosen.transforms["digital"].half_saturation == pick["half_saturation"]
    assert chosen.transforms["tv"] == configured_transform(config.channel("tv"))
    assert set(chosen.cv_error) == {"digital"}


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


def test_recorded_tables_give_back_the_same_candidates_and_choice() -> None:
    config = sample_config_selecting("digital", "email")
    raw = load_raw(config)
    settings = SelectionSettings()
    chosen = select_transforms(raw, config, settings)
    candidates, index = candidates_from_tables(config, transforms_table(chosen.transforms, chosen.cv_error),
                                               chosen.table)
    for c in config.channels:
        assert candidates[c.name] == channel_candidates(c, settings.grid)
    assert index == chosen.selected_index


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
