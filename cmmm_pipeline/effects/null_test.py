"""A test of "no effect" that repeats the transform selection where the channel has no effect.

Why the bootstrap's p-value is not enough: where transforms are selected from the data, a channel
with no effect still gets the transform that fits the noise best, and the other channels' transforms
are chosen jointly with it. On held-out worlds with ten channels, the HAC t-statistic of a channel
with no effect spread 1.3–3.9 times as wide as a calibrated one (benchmarks/heldout/null_study.py);
the block bootstrap re-selects inside every resample, but a resample of the same weeks re-finds the
same lucky fit, so its error cannot show this, and null channels came out significant at 5% in
about a third of the runs.

The test (a bootstrap under the null hypothesis, as in Davidson & MacKinnon's bootstrap tests):
for each effect, remove the channel's fitted contribution from the KPI, add back the model's
residuals with random signs per block of weeks (a wild block bootstrap: the design and the
residuals' dependence within a block stay as observed), re-run the whole selection (every channel,
from the same start) and compute the same HAC t-statistic. Its root mean square over the null
datasets, `null_dispersion`, is how far the selected estimator's t-statistic strays by chance here;
the p-value compares the observed t-statistic with that spread, 2·(1 − Φ(|t| / dispersion)).

The published p-value is the larger of this and the bootstrap's; where this one does not reject
at the interval's level, the intervals are extended to zero, so no interval claims a sign the test
does not support. Only the test of no effect uses the dispersion: under a real effect the
channel's own transform is chosen by the signal, not by the noise, and its interval stays the
bootstrap's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.effects.bootstrap import EffectProblem, IntervalEstimate
from cmmm_pipeline.effects.estimation import EffectSpec, newey_west_lags, solve_normal_equations
from cmmm_pipeline.media.selection import Folds, SelectionSettings, coordinate_search

CHUNK = 64
"""Null datasets per batched selection: bounds memory (chunk × weeks × grid)."""


@dataclass(frozen=True)
class NullTest:
    """The test of no effect for one (channel, effect)."""

    channel: str
    effect: EffectType
    t_statistic: float
    """HAC t-statistic at the applied transforms."""
    dispersion: float
    """Root mean square of the same t-statistic over the null datasets (1 for a calibrated test)."""
    p_value: float


def batched_hac_t(design: np.ndarray, y: np.ndarray, lags: int) -> np.ndarray:
    """(B,) HAC t-statistic of column 1 in B regressions y_b ~ design_b at once: Bartlett weights
    over `lags` lags with the n / (n − p) correction, as statsmodels' `cov_type="HAC",
    use_correction=True` (Frisch–Waugh on the other columns). NaN where a design is singular."""
    _, n, p = design.shape
    others = np.delete(design, 1, axis=2)
    treatment = design[:, :, 1]
    gram = np.einsum("bnp,bnq->bpq", others, others)
    rhs = np.stack([np.einsum("bnp,bn->bp", others, treatment), np.einsum("bnp,bn->bp", others, y)], axis=2)
    ok, coef = solve_normal_equations(gram, rhs)
    out = np.full(design.shape[0], np.nan)
    if not ok.any():
        return out
    others, treatment, y = others[ok], treatment[ok], y[ok]
    x_resid = treatment - np.einsum("bnp,bp->bn", others, coef[:, :, 0])
    y_resid = y - np.einsum("bnp,bp->bn", others, coef[:, :, 1])
    xx = np.einsum("bn,bn->b", x_resid, x_resid)
    beta = np.einsum("bn,bn->b", x_resid, y_resid) / np.maximum(xx, 1e-300)
    psi = x_resid * (y_resid - beta[:, None] * x_resid)
    long_run = np.einsum("bn,bn->b", psi, psi)
    for lag in range(1, lags + 1):
        long_run += 2.0 * (1.0 - lag / (lags + 1.0)) * np.einsum("bn,bn->b", psi[:, lag:], psi[:, :-lag])
    long_run *= n / (n - p)
    out[ok] = beta / np.sqrt(np.maximum(long_run, 1e-300) / np.maximum(xx, 1e-300) ** 2)
    return out


def null_datasets(problem: EffectProblem, spec: EffectSpec, block_length: int, samples: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(samples, weeks) KPI series with the channel's fitted contribution removed and the
    residuals' signs flipped at random per block of `block_length` weeks."""
    n = problem.n
    x = problem.design(spec, np.arange(n)[None, :], problem.selected[None, :])[0]
    beta, *_ = np.linalg.lstsq(x, problem.inputs.y, rcond=None)
    fitted = x @ beta
    residual = problem.inputs.y - fitted
    without_channel = fitted - beta[1] * x[:, 1]
    blocks = np.arange(n) // max(1, block_length)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(samples, int(blocks[-1]) + 1))[:, blocks]
    return without_channel[None, :] + signs * residual[None, :]


def null_test(problem: EffectProblem, spec: EffectSpec, selection: SelectionSettings, block_length: int,
              samples: int, rng: np.random.Generator) -> NullTest:
    """The test of no effect for one spec (see the module docstring)."""
    from scipy import stats
    n = problem.n
    lags = newey_west_lags(n)
    observed = batched_hac_t(problem.design(spec, np.arange(n)[None, :], problem.selected[None, :]),
                             problem.inputs.y[None, :], lags)[0]
    nulls = null_datasets(problem, spec, block_length, samples, rng)
    folds = Folds.of(n, selection)
    start = problem.inputs.start()
    draws = []
    for i in range(0, samples, CHUNK):
        y = nulls[i:i + CHUNK]
        rows = np.tile(np.arange(n), (y.shape[0], 1))
        chosen = coordinate_search(problem.inputs, rows, start, folds, selection.max_passes, selection.criterion, y)
        draws.append(batched_hac_t(problem.design(spec, rows, chosen), y, lags))
    t = np.concatenate(draws)
    t = t[np.isfinite(t)]
    if t.size < 2 or not np.isfinite(observed):
        return NullTest(spec.channel, spec.effect, float(observed), float("nan"), float("nan"))
    dispersion = float(np.sqrt(np.mean(t**2)))
    return NullTest(spec.channel, spec.effect, float(observed), dispersion,
                    float(2.0 * stats.norm.sf(abs(observed) / dispersion)))


def null_tests(problem: EffectProblem, selection: SelectionSettings, block_length: int, samples: int,
               rng: np.random.Generator) -> dict[tuple[str, EffectType], NullTest]:
    """A test per spec when any channel's transform was selected (otherwise the bootstrap's and
    the HAC test's p-values need no correction for a selection, and none is run)."""
    if samples < 2 or not problem.inputs.searchable:
        return {}
    return {(s.channel, s.effect): null_test(problem, s, selection, block_length, samples, rng)
            for s in problem.specs}


def _to_zero(low: float, high: float) -> tuple[float, float]:
    return min(low, 0.0), max(high, 0.0)


def with_null_tests(estimates: list[IntervalEstimate], tests: dict[tuple[str, EffectType], NullTest],
                    level: float) -> list[IntervalEstimate]:
    """The estimates with the test applied: p-value the larger of the two; where the test does not
    reject no effect at the interval's level, every interval of that row extended to zero."""
    out = []
    for e in estimates:
        test = tests.get((e.channel, e.effect))
        if test is None or not np.isfinite(test.p_value):
            out.append(e)
            continue
        changes: dict[str, float] = {"p_value": float(np.nanmax([e.p_value, test.p_value])),
                                     "null_dispersion": test.dispersion, "null_p_value": test.p_value}
        if test.p_value >= 1.0 - level and np.isfinite(e.incremental_ci_low) and np.isfinite(e.incremental_ci_high):
            changes["incremental_ci_low"], changes["incremental_ci_high"] = _to_zero(e.incremental_ci_low,
                                                                                   e.incremental_ci_high)
            changes["roi_ci_low"], changes["roi_ci_high"] = _to_zero(e.roi_ci_low, e.roi_ci_high)
            if np.isfinite(e.mroi_ci_low) and np.isfinite(e.mroi_ci_high):
                changes["mroi_ci_low"], changes["mroi_ci_high"] = _to_zero(e.mroi_ci_low, e.mroi_ci_high)
        out.append(replace(e, **changes))
    return out
