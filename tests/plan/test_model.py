"""The response curves a plan is read from: the fast paths equal the transforms applied to the whole
series, the resamples are the bootstrap's own, and the support spans what comparable weeks show."""

from __future__ import annotations

import numpy as np
import pytest

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.plan.model import SUPPORT_MARGIN, SupportRange, resample_rows


def test_curves_equal_the_transform_applied_to_history_and_plan(sample_model) -> None:
    rng = np.random.default_rng(3)
    for channel in sample_model.channels:
        curve = sample_model.curve(channel, 6)
        history = sample_model.spend(channel)
        plan = rng.uniform(0, 2 * history.mean(), 6)
        for u, transform in enumerate(curve.transforms):
            full = transform.apply(np.concatenate([history, plan]), transform.reference(history))[-6:]
            assert np.allclose(curve.media(plan[:, None])[u, :, 0], full, rtol=1e-10)
        draws, point = curve.weekly_effect(np.full((6, 1), 700.0))
        fast_draws, fast_point = curve.constant_effect(np.array([700.0]))
        assert np.allclose(draws.sum(axis=1)[:, 0], fast_draws[:, 0]) and np.isclose(point.sum(), fast_point[0])


def test_zero_spend_in_the_plan_adds_nothing_but_history_carries_over(sample_model) -> None:
    curve = sample_model.curve("tv", 13)
    draws, point = curve.constant_effect(np.array([0.0]))
    assert np.all(draws == 0) and point[0] == 0
    assert curve.carry[curve.point_index, 0] > 0  # the last weeks' TV still acts in the first plan week
    assert curve.carry[curve.point_index, -1] < curve.carry[curve.point_index, 0]


def test_a_mediated_channel_is_planned_by_its_direct_effect(sample_model) -> None:
    assert sample_model.effect("tv") is EffectType.DIRECT  # the plan sets search's spend itself
    assert sample_model.effect("search") is EffectType.TOTAL
    curve = sample_model.curve("tv", 1)
    j = sample_model.draws.column("tv", EffectType.DIRECT)
    assert np.array_equal(curve.ate, sample_model.draws.ate[:, j])


def test_the_resamples_are_redrawn_exactly(sample_model) -> None:
    model = sample_model
    rows = resample_rows(model.problem, model.draws, model.draws.ate.shape[0], model.config.estimation.seed)
    assert np.array_equal(rows, model.rows)
    with pytest.raises(RuntimeError):
        resample_rows(model.problem, model.draws, model.draws.ate.shape[0], model.config.estimation.seed + 1)


def test_support_spans_the_comparable_weeks_with_a_margin(sample_model) -> None:
    for channel, support in sample_model.supports.items():
        spend = sample_model.spend(channel)
        assert support.observed_high == pytest.approx(spend.max())
        assert spend.min() - 1e-9 <= support.observed_low <= np.quantile(spend, 0.1)
        width = support.observed_high - support.observed_low
        assert support.high == pytest.approx(support.observed_high + SUPPORT_MARGIN * width)
    assert sample_model.supports["tv"].low == 0.0  # TV runs in flights: zero spend is observed
    assert SupportRange("x", 100.0, 200.0).low == pytest.approx(90.0)
    assert not SupportRange("x", 100.0, 200.0).contains(211.0)
