"""The allocator on problems with a known optimum: budget and bounds hold exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cmmm_pipeline.plan.optimise import allocate, project


def test_projection_meets_the_budget_and_bounds_exactly() -> None:
    lower, upper = np.array([0.0, 100.0, 0.0]), np.array([500.0, 400.0, 50.0])
    s = project(np.array([900.0, -20.0, 10.0]), lower, upper, 600.0)
    assert s.sum() == pytest.approx(600.0, abs=1e-9)
    assert np.all(s >= lower) and np.all(s <= upper)
    with pytest.raises(ValueError):
        project(np.zeros(3), lower, upper, 1000.0)


def test_allocation_finds_the_equal_marginal_return_optimum() -> None:
    # Σ a_i log(1 + s_i): the optimum spends where a_i / (1 + s_i) is equal (all interior here).
    a = np.array([3.0, 2.0, 1.0])
    budget = 60.0
    optimum = a / a.sum() * (budget + 3) - 1
    result = allocate(lambda s: float(np.sum(a * np.log1p(s))), np.zeros(3), np.full(3, budget), budget,
                      [np.full(3, 20.0)], np.random.default_rng(0))
    assert np.allclose(result.spend, optimum, atol=1e-3)
    assert result.spend.sum() == pytest.approx(budget, abs=1e-9)


def test_an_s_curve_is_solved_from_several_starts_and_bounds_bind() -> None:
    # Two S-shaped channels: from an even split the local optimum starves neither; the global one
    # fills the steeper curve up to its bound.
    def value(s: np.ndarray) -> float:
        return float(np.sum(np.array([10.0, 6.0]) * s**3 / (s**3 + np.array([40.0, 30.0]) ** 3)))

    result = allocate(value, np.zeros(2), np.array([70.0, 100.0]), 100.0, [np.array([50.0, 50.0])],
                      np.random.default_rng(1))
    grid = np.linspace(0.0, 70.0, 7001)
    best = max(value(np.array([x, 100.0 - x])) for x in grid)
    assert result.value >= best - 1e-6
    assert result.spend[0] <= 70.0 + 1e-12 and result.spend.sum() == pytest.approx(100.0, abs=1e-9)
