"""The selection-aware test of no effect: its t-statistic, its null datasets, its calibration on a
world this project did not generate, and how it changes the published rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.heldout.run import world_case, write_inputs
from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data.ingest import load_raw, spend_totals
from cmmm_pipeline.effects.bootstrap import IntervalEstimate, IntervalKind, effect_problem
from cmmm_pipeline.effects.estimation import estimate_channels, hac_pvalue, newey_west_lags
from cmmm_pipeline.effects.null_test import (
    batched_hac_t,
    null_datasets,
    null_test,
    with_null_tests,
)
from cmmm_pipeline.media.features import build_features
from cmmm_pipeline.media.selection import SelectionSettings, channel_candidates, select_transforms
from tests.conftest import sample_config_selecting

SELECTION = SelectionSettings()


def _problem(config):  # PipelineConfig in, EffectProblem out
    raw = load_raw(config)
    chosen = select_transforms(raw, config, SELECTION)
    features = build_features(raw, config, chosen.transforms)
    estimated = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    candidates = {c.name: channel_candidates(c, SELECTION.grid) for c in config.channels}
    return effect_problem(raw, config, candidates, chosen.selected_index, list(estimated.specs),
                          spend_totals(raw, config))


def test_the_batched_t_statistic_is_statsmodels_hac_t() -> None:
    rng = np.random.default_rng(4)
    n = 90
    designs, ys, expected = [], [], []
    for k in range(3):
        x = np.column_stack([np.ones(n), rng.gamma(2.0, size=n), rng.normal(size=(n, 2)), np.sin(np.arange(n) / 7.0)])
        noise = np.convolve(rng.normal(size=n + 3), np.ones(4), "valid")  # autocorrelated, as weekly residuals are
        y = x @ np.array([1.0, 0.2 * k, 1.0, -2.0, 0.5]) + noise
        _, se = hac_pvalue(x, y)
        expected.append(np.linalg.lstsq(x, y, rcond=None)[0][1] / se)
        designs.append(x)
        ys.append(y)
    found = batched_hac_t(np.stack(designs), np.stack(ys), newey_west_lags(n))
    np.testing.assert_allclose(found, expected, rtol=1e-9)


def test_null_datasets_remove_the_channel_and_flip_residual_signs_per_block() -> None:
    problem = _problem(sample_config_selecting("digital", "email"))
    spec = next(s for s in problem.specs if s.channel == "digital" and s.effect is EffectType.TOTAL)
    x = problem.design(spec, np.arange(problem.n)[None, :], problem.selected[None, :])[0]
    beta, *_ = np.linalg.lstsq(x, problem.inputs.y, rcond=None)
    residual = problem.inputs.y - x @ beta
    nulls = null_datasets(problem, spec, block_length=5, samples=200, rng=np.random.default_rng(0))
    without = x @ beta - beta[1] * x[:, 1]
    signs = (nulls - without) / residual
    np.testing.assert_allclose(np.abs(signs), 1.0, rtol=1e-8)
    blocks = np.sign(signs[:, : problem.n // 5 * 5]).reshape(200, -1, 5)
    assert (blocks == blocks[:, :, :1]).all()  # one sign per block of 5 weeks
    coefficients = np.linalg.lstsq(x, nulls.T, rcond=None)[0][1]
    assert beta[1] > 0.5  # digital works in the sample ...
    assert abs(coefficients.mean()) < 3 * coefficients.std() / np.sqrt(200)  # ... and not in its null datasets


@pytest.mark.slow
def test_null_channels_among_ten_selected_channels_are_rarely_significant(tmp_path: Path) -> None:
    """Held-out worlds with ten channels, every transform selected: podcast and ooh have no effect.
    The HAC t-statistic at the selected transforms strays far beyond a calibrated one there; the
    test's p-value rejects in at most 3 of 16 (the binomial 95% range of a 5% test), while email,
    which works, is rejected in every world."""
    null_p, email_p, dispersions = [], [], []
    for seed in range(1, 9):
        folder = tmp_path / str(seed)
        folder.mkdir()
        problem = _problem(load_config(write_inputs(world_case("ten_channels", seed), folder)))
        for spec in problem.specs:
            if spec.effect is not EffectType.TOTAL or spec.channel not in ("podcast", "ooh", "email"):
                continue
            test = null_test(problem, spec, SELECTION, block_length=4, samples=99, rng=np.random.default_rng(seed))
            (email_p if spec.channel == "email" else null_p).append(test.p_value)
            dispersions.append(test.dispersion)
    assert sum(p < 0.05 for p in null_p) <= 3
    assert all(p < 0.05 for p in email_p)
    assert np.median(dispersions) > 1.5  # the uncorrected t-test would be far too confident here


def _row(p: float, low: float, high: float) -> IntervalEstimate:
    return IntervalEstimate("tv", EffectType.TOTAL, 100.0, low, high, low / 50, high / 50, p, 10.0, 10.0, 9.0, 3,
                            400, IntervalKind.SMOOTHED, 1.2, low / 60, high / 60)


def test_rows_the_test_does_not_reject_get_intervals_that_reach_zero() -> None:
    from cmmm_pipeline.effects.null_test import NullTest

    rows = [_row(0.001, 60.0, 140.0)]
    not_rejected = with_null_tests(rows, {("tv", EffectType.TOTAL): NullTest("tv", EffectType.TOTAL, 3.1, 2.4, 0.2)},
                                   0.95)[0]
    assert not_rejected.p_value == 0.2 and not_rejected.null_p_value == 0.2 and not_rejected.null_dispersion == 2.4
    assert (not_rejected.incremental_ci_low, not_rejected.incremental_ci_high) == (0.0, 140.0)
    assert (not_rejected.roi_ci_low, not_rejected.roi_ci_high) == (0.0, 140.0 / 50)
    assert (not_rejected.mroi_ci_low, not_rejected.mroi_ci_high) == (0.0, 140.0 / 60)
    rejected = with_null_tests(rows, {("tv", EffectType.TOTAL): NullTest("tv", EffectType.TOTAL, 9.0, 2.0, 1e-5)},
                               0.95)[0]
    assert rejected.p_value == 0.001  # the larger of the two
    assert (rejected.incremental_ci_low, rejected.incremental_ci_high) == (60.0, 140.0)
    untested = with_null_tests(rows, {}, 0.95)[0]
    assert untested == rows[0]
