"""Allocate a weekly budget across channels: maximise one objective (expected incremental KPI), or
a weighted pair of two (the expectation and a low quantile of the gain), never more, with SciPy's
SLSQP under the budget (an equality) and per-channel bounds.

Why SLSQP and several starts: a Hill curve with a slope above 1 is S-shaped (convex at low spend),
so the expected incremental KPI is not concave and a convex solver (cvxpy) does not apply; a local
method from several starts (the current allocation, an even split, the bounds' midpoints and a few
random points of the feasible set) finds the optimum of these smooth, low-dimensional problems,
and the best of the starts and of their solutions is kept, so the result is never worse than
the current allocation on the objective. Every start and result is projected onto the feasible
set exactly, so the budget and bounds hold to rounding.

Why never three objectives: each added objective is a weight nobody can defend; with two the
trade-off is one curve (a Pareto front) a reader can see and choose on, with three it is a surface
that a search can tilt toward any answer (Robyn's three-objective tuning drifts from the causal
fit for this reason). The second objective here is the risk the first one ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import warnings

import numpy as np

RANDOM_STARTS = 4


def project(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, budget: float) -> np.ndarray:
    """The point of {lower ≤ s ≤ upper, Σ s = budget} nearest to x along a common shift:
    clip(x + λ, lower, upper) with λ found by bisection (Σ is monotone in λ)."""
    if not lower.sum() - 1e-9 <= budget <= upper.sum() + 1e-9:
        raise ValueError("the budget lies outside the bounds' sums")
    lo, hi = float(lower.min() - x.max()) - 1.0, float(upper.max() - x.min()) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(x + mid, lower, upper).sum() < budget:
            lo = mid
        else:
            hi = mid
    s = np.clip(x + 0.5 * (lo + hi), lower, upper)
    # Put the last rounding on a channel with room, so Σ s equals the budget to the last digit.
    gap = budget - s.sum()
    room = np.flatnonzero((s + gap >= lower - 1e-12) & (s + gap <= upper + 1e-12))
    if room.size:
        s[room[0]] += gap
    return s


@dataclass(frozen=True)
class Allocation:
    spend: np.ndarray
    """(channels,) weekly spend."""
    value: float
    """The objective at `spend`."""
    starts: int
    converged: int
    """How many of the local searches SLSQP reported as converged."""


def allocate(objective: Callable[[np.ndarray], float], lower: np.ndarray, upper: np.ndarray, budget: float,
             starts: Sequence[np.ndarray], rng: np.random.Generator, random_starts: int = RANDOM_STARTS,
             gradient: Callable[[np.ndarray], np.ndarray] | None = None) -> Allocation:
    """Maximise `objective` (weekly spend per channel → value) over {lower ≤ s ≤ upper, Σ s = budget}.

    Parameters
    ----------
    objective
        The value to maximise; smooth in the spend for SLSQP to do well.
    lower, upper
        (channels,) weekly spend bounds (the support intersected with the user's bounds).
    budget
        The weekly spend to allocate: Σ s = budget.
    starts
        Allocations to start from (projected onto the feasible set), e.g. the current one.
    rng
        For the random starts.
    gradient
        The objective's gradient, when known (a weeks × channels plan has too many variables for
        finite differences to be cheap); None: SLSQP's finite differences.
    """
    from scipy.optimize import minimize
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    scale = max(budget, 1e-12)
    k = lower.size
    points = [project(np.asarray(s, dtype=float), lower, upper, budget) for s in starts]
    points.append(project(np.full(k, budget / k), lower, upper, budget))
    points.append(project(0.5 * (lower + upper), lower, upper, budget))
    points += [project(budget * rng.dirichlet(np.ones(k)), lower, upper, budget) for _ in range(random_starts)]
    reference = max(abs(objective(points[0])), 1.0)

    def loss(z: np.ndarray) -> float:
        return -objective(z * scale) / reference

    def loss_gradient(z: np.ndarray) -> np.ndarray:
        return -gradient(z * scale) * scale / reference

    best_spend, best_value, converged = points[0], objective(points[0]), 0
    bounds = list(zip(lower / scale, upper / scale))
    constraint = {"type": "eq", "fun": lambda z: np.array([z.sum() - budget / scale]), "jac": lambda z: np.ones((1, k))}
    for start in points:
        value = objective(start)
        if value > best_value:
            best_spend, best_value = start, value
        with warnings.catch_warnings():
            # SLSQP's finite differences step just past a bound, which it clips; the result is projected anyway.
            warnings.filterwarnings("ignore", message="Values in x were outside bounds", category=RuntimeWarning)
            result = minimize(loss, start / scale, method="SLSQP", bounds=bounds, constraints=[constraint],
                              jac=loss_gradient if gradient is not None else None,
                              options={"maxiter": 300, "ftol": 1e-10})
        converged += int(result.success)
        candidate = project(result.x * scale, lower, upper, budget)
        value = objective(candidate)
        if value > best_value:
            best_spend, best_value = candidate, value
    return Allocation(best_spend, float(best_value), len(points), converged)
