"""Intervals widened to the transforms the data cannot tell apart: which selections are near-equivalent,
how an interval is moved to them, and that a configured transform leaves every interval as it was."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.effects.bootstrap import IntervalEstimate, IntervalKind, wald_pvalue
from cmmm_pipeline.effects.selection_band import BandRange, band_range, with_band
from cmmm_pipeline.media.selection import SelectionSettings, fold_bounds, near_equivalent
from tests.effects.test_null_test import _problem
from tests.conftest import sample_config_selecting

SELECTION = SelectionSettings()


def _fold_mse_by_least_squares(inputs, selected: np.ndarray, k: int) -> np.ndarray:  # (G, folds)
    """Each candidate of channel k, the others at `selected`: forward-chaining out-of-sample MSE per
    fold from ordinary least squares, one regression per candidate and fold."""
    n = inputs.y.size
    edges = fold_bounds(n, SELECTION.folds, SELECTION.initial_fraction)
    others = [inputs.series[i][:, selected[i]] for i in range(len(inputs.channels)) if i != k]
    out = np.empty((inputs.series[k].shape[1], len(edges) - 2))
    for g in range(inputs.series[k].shape[1]):
        x = np.column_stack([inputs.base, *others, inputs.series[k][:, g]])
        for j in range(1, len(edges) - 1):
            train, test = slice(0, edges[j]), slice(edges[j], edges[j + 1])
            beta = np.linalg.lstsq(x[train], inputs.y[train], rcond=None)[0]
            out[g, j - 1] = np.mean((inputs.y[test] - x[test] @ beta) ** 2)
    return out


def test_near_equivalent_selections_are_the_one_se_band_one_channel_at_a_time() -> None:
    problem = _problem(sample_config_selecting("digital", "email"))
    inputs, selected = problem.inputs, problem.selected
    alternatives = near_equivalent(inputs, selected, SELECTION)
    changed = alternatives != selected[None, :]
    assert (changed.sum(axis=1) == 1).all()  # one channel moved at a time, never the applied selection
    for k in inputs.searchable:
        fold_mse = _fold_mse_by_least_squares(inputs, selected, k)
        diff = fold_mse - fold_mse[fold_mse.mean(axis=1).argmin()]
        band = set(np.flatnonzero(diff.mean(axis=1) <= diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1])))
        found = set(alternatives[changed[:, k], k]) | {int(selected[k])}
        assert found == band
        assert 1 < len(band) < inputs.series[k].shape[1]  # the sample cannot pin its transforms, nor is all a tie
    assert set(np.flatnonzero(changed.any(axis=0))) <= set(inputs.searchable)


def _row(estimate: float, low: float, high: float, mroi: float, mroi_low: float, mroi_high: float) -> IntervalEstimate:
    return IntervalEstimate("tv", EffectType.TOTAL, estimate, low, high, low / 50, high / 50, 0.001, 10.0, 10.0,
                            9.0, 3, 400, IntervalKind.SMOOTHED, mroi, mroi_low, mroi_high, df=40)


def test_intervals_move_to_every_near_equivalent_estimate() -> None:
    problem = _problem(sample_config_selecting("digital", "email"))
    spend = problem.spends["tv"]
    step = 0.01 * spend
    row = _row(100.0, 80.0, 130.0, 1.0, 0.8, 1.3)
    band = BandRange(incremental={("tv", EffectType.TOTAL): (90.0, 160.0)},
                     marginal={("tv", EffectType.TOTAL): (0.5 * step, 1.2 * step)}, candidates=7)
    mroi_only = with_band([row], problem, band, widen_roi=False)[0]
    assert (mroi_only.mroi_ci_low, mroi_only.mroi_ci_high) == (0.8 - 0.5, 1.3 + 0.2)
    assert (mroi_only.incremental_ci_low, mroi_only.incremental_ci_high) == (80.0, 130.0)
    both = with_band([row], problem, band, widen_roi=True)[0]
    assert (both.incremental_ci_low, both.incremental_ci_high) == (80.0 - 10.0, 130.0 + 60.0)
    assert np.allclose((both.roi_ci_low, both.roi_ci_high), (80.0 / 50 - 10.0 / spend, 130.0 / 50 + 60.0 / spend))
    assert mroi_only.p_value == both.p_value == 0.001  # the band's p-value at 90 ± 10 is smaller
    wide = replace(row, std_error=40.0)
    assert with_band([wide], problem, band, widen_roi=True)[0].p_value == wald_pvalue(90.0, 40.0, 40)  # nearest zero
    crossing = BandRange({("tv", EffectType.TOTAL): (-5.0, 120.0)}, band.marginal, 3)
    assert with_band([row], problem, crossing, widen_roi=True)[0].p_value == 1.0  # a sign the band cannot tell
    agreeing = BandRange({("tv", EffectType.TOTAL): (100.0, 100.0)}, {("tv", EffectType.TOTAL): (step, step)}, 2)
    assert with_band([row], problem, agreeing, widen_roi=True)[0] == row  # candidates that agree move nothing


def test_configured_transforms_leave_a_band_of_the_applied_selection_only() -> None:
    problem = _problem(sample_config_selecting())
    keys = [(s.channel, s.effect) for s in problem.specs]
    band = band_range(problem, SELECTION, keys)
    assert band.candidates == 0
    for key in keys:
        low, high = band.marginal[key]
        assert low == high and np.isfinite(low)


def test_near_equivalent_fit_gives_each_alternative_its_whole_model_cv_error() -> None:
    from cmmm_pipeline.media.selection import near_equivalent_fit

    problem = _problem(sample_config_selecting("digital", "email"))
    inputs, selected = problem.inputs, problem.selected
    alternatives, errors, applied = near_equivalent_fit(inputs, selected, SELECTION)
    np.testing.assert_array_equal(alternatives, near_equivalent(inputs, selected, SELECTION))
    for alternative, error in zip(alternatives, errors):
        k = int(np.flatnonzero(alternative != selected)[0])
        fold_mse = _fold_mse_by_least_squares(inputs, selected, k)
        edges = fold_bounds(inputs.y.size, SELECTION.folds, SELECTION.initial_fraction)
        weeks = np.diff(edges)[1:]
        assert abs(error - (fold_mse[alternative[k]] * weeks).sum() / weeks.sum()) <= 1e-6 * error
        assert abs(applied - (fold_mse[selected[k]] * weeks).sum() / weeks.sum()) <= 1e-6 * applied


def test_predictive_weights_are_the_normalised_gaussian_likelihoods() -> None:
    from cmmm_pipeline.media.selection import predictive_weights

    w = predictive_weights(np.array([1.0, 1.01, 2.0, np.inf]), 78)
    assert abs(w.sum() - 1.0) < 1e-12
    assert abs(w[1] / w[0] - 1.01 ** -39) < 1e-12 and abs(1.01 ** -39 - 0.678) < 1e-3
    assert w[2] < 1e-10 and w[3] == 0.0


def test_averaging_moves_a_smoothed_estimate_and_its_interval_by_the_band_shift() -> None:
    from cmmm_pipeline.effects.selection_band import with_average

    problem = _problem(sample_config_selecting("digital", "email"))
    spend = problem.spends["tv"]
    key = ("tv", EffectType.TOTAL)
    band = BandRange({key: (900.0, 1300.0)}, {key: (5.0, 9.0)}, 3, {key: 1100.0}, {key: 8.0}, {key: 1000.0},
                     {key: 6.0})
    row = _row(1000.0, 600.0, 1400.0, 0.6, 0.4, 0.8)
    moved = with_average([row], problem, band)[0]
    assert (moved.incremental_kpi, moved.incremental_ci_low, moved.incremental_ci_high) == (1100.0, 700.0, 1500.0)
    assert abs(moved.roi_ci_low - (row.roi_ci_low + 100.0 / spend)) < 1e-12
    shift = 2.0 / (0.01 * spend)
    assert abs(moved.mroi - (0.6 + shift)) < 1e-12 and abs(moved.mroi_ci_high - (0.8 + shift)) < 1e-12
    configured = replace(row, method=IntervalKind.PERCENTILE)
    assert with_average([configured], problem, band)[0] == configured  # published as it is
    assert with_average([row], problem, replace(band, candidates=0))[0] == row
