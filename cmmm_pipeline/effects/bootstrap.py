"""Honest uncertainty for every estimate: a block bootstrap of weeks that repeats the transform
selection inside every resample; for an estimate that rests on a selected transform, the estimate
smoothed over that selection with its own standard error; percentile intervals for the rest; and
p-values from the bootstrap standard error.

Why each choice (checked on simulated data with known truth, see benchmarks/accuracy.py):
- Pairs resampled in blocks of consecutive weeks (non-overlapping blocks by default, their length
  chosen from the data by the Politis–White rule on each coefficient's influence series): weekly
  residuals and spend are autocorrelated, and iid resampling would understate the variance.
- Re-selection inside each resample: the transform parameters were chosen on the same data; a
  bootstrap that holds them fixed forgets that choice and is far too narrow for those channels.
  The resample's rows are sorted by week first, so its forward-chaining CV still trains on the
  past and tests on the future, and the copies of a week never sit on both sides of a fold. Its
  coordinate search starts where the selection on the data started (the reference transforms):
  started at the data's choice it settles back there, and the draws forget how the choice was made.
- Smoothing over the selection (Efron 2014, "Estimation and accuracy after model selection"): an
  estimate at the one selected grid point jumps with the selection, and its draws are
  heavy-tailed, so their percentiles over-cover while the point itself errs widely. The mean of
  the re-selected draws (the bagged estimate) averages the jumps away — about half the error on
  simulated data — and its standard error comes from the covariance of each resampling unit's
  count with the draws (the nonparametric delta method). The units are the non-overlapping blocks,
  drawn with replacement, which is what makes that formula exact for a block bootstrap.
- Percentile intervals where nothing is selected (configured transforms): the draws of a g-computed
  total are skewed, and reflecting them (basic intervals) moves the interval away from the truth.
- Never more precise than HAC: the p-value is a t-test with the larger of the bootstrap and the
  HAC (Newey–West) standard error, and an interval narrower than the HAC error allows is widened
  about the estimate to match. The bootstrap error carries the selection step (a HAC test at the
  selected transform rejects a true null far too often); the HAC error guards against a bootstrap
  that under-disperses (few long blocks).

Everything is vectorised numpy: the transformed series of every grid point is computed once on the
full series; a resample gathers rows, re-selects with the CV kernel of `selection`, and solves all
its regressions in one batched call. A total effect computed by g-computation (a channel whose
mediators are channels) is repeated the same way: outcome and mediator-spend regressions on the
resample's rows, the counterfactual mediator series through the resample's selected transform, the
mediator's model re-chosen on the rows. The marginal ROI (+1% spend) is read from the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property, partial
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.effects.estimation import (
    EQUATIONS,
    MARGINAL_STEP,
    EffectSpec,
    GComputationSpec,
    GComputed,
    MediatorArrays,
    MediatorEquation,
    MediatorModel,
    batched_ols,
    counterfactual_media,
    gcomputation_weekly,
    hac_pvalue,
)
from cmmm_pipeline.media.features import ChannelTransform, control_features
from cmmm_pipeline.media.selection import SelectionInputs, SelectionSettings, reselect, selection_inputs


class IntervalKind(Enum):
    """How an estimate and its interval are read from the bootstrap draws."""

    SMOOTHED = "smoothed"
    """The mean of the draws (the estimate smoothed over the transform selection) ± t × Efron's
    standard error of that mean. Used wherever an estimate rests on a selected transform."""
    PERCENTILE = "percentile"
    """[q(α/2), q(1−α/2)] of the bootstrap draws."""
    BASIC = "basic"
    """[2θ̂ − q(1−α/2), 2θ̂ − q(α/2)]: reflects the draws about the estimate. Kept for comparison:
    it under-covers once the transform selection is in the loop."""


@dataclass(frozen=True)
class BootstrapSettings:
    samples: int
    level: float
    interval: IntervalKind = IntervalKind.PERCENTILE
    """How estimates that rest on no selected transform get their interval (percentile or basic)."""
    block_length: int | None = None
    """None: chosen from the data (Politis–White)."""
    reselect: bool = True
    """Repeat the transform selection inside every resample."""
    smooth_selection: bool = True
    """Publish the smoothed estimate (IntervalKind.SMOOTHED) where an estimate rests on a selected
    transform; needs re-selection and a scheme that counts its blocks (`NonOverlappingBlocks`),
    else percentile intervals are used."""

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError("the bootstrap needs at least 2 resamples")
        if not 0.5 < self.level < 1.0:
            raise ValueError("interval level must be in (0.5, 1)")
        if self.block_length is not None and self.block_length < 1:
            raise ValueError("block length must be a positive number of weeks")
        if self.interval is IntervalKind.SMOOTHED:
            raise ValueError("smoothing is chosen per estimate (smooth_selection); interval takes percentile or basic")

    @property
    def smooths(self) -> bool:
        return self.smooth_selection and self.reselect


# ---------------------------------------------------------------------------------------------
# Block length and resampling


@dataclass(frozen=True)
class Resamples:
    """Row indices of every resample; for non-overlapping blocks also how often each block was drawn."""

    rows: np.ndarray
    """(samples, n) row indices made of runs of consecutive weeks."""
    unit_counts: np.ndarray | None = None
    """(samples, units) draws of each block; None for overlapping and stationary schemes."""
    unit_stratum_sizes: np.ndarray | None = None
    """(units,) how many blocks share each block's length (the pool it is drawn from)."""


class Resampling(Protocol):
    """A resampling scheme: resamples of n weeks made of runs of consecutive weeks. The pipeline
    uses `NonOverlappingBlocks`; benchmarks/bootstrap_kinds.py holds the schemes it was compared with."""

    @property
    def variance_constant(self) -> float:
        """The constant of the bootstrap's variance estimate in the Politis–White block length: 2 for
        non-overlapping and stationary blocks, 4/3 for overlapping ones (Lahiri 1999)."""
        ...

    def __call__(self, n: int, block_length: int, samples: int, rng: np.random.Generator) -> Resamples:
        """`samples` resamples of the n weeks cut from runs of about `block_length` weeks."""
        ...


@dataclass(frozen=True)
class NonOverlappingBlocks:
    """The weeks cut into k ≈ n / block_length runs of near-equal length (Carlstein 1986); each
    resample draws, for every run length, as many runs of that length as there are, with
    replacement, so every resample has n weeks. The runs are the resampling units: the smoothed
    estimate's standard error needs their counts."""

    variance_constant: ClassVar[float] = 2.0

    def __call__(self, n: int, block_length: int, samples: int, rng: np.random.Generator) -> Resamples:
        k = max(2, min(n, round(n / block_length)))
        sizes = np.array([n // k + 1] * (n % k) + [n // k] * (k - n % k))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        drawn = np.empty((samples, k), dtype=int)
        stratum_sizes = np.empty(k, dtype=int)
        for size in np.unique(sizes):
            pool = np.flatnonzero(sizes == size)
            drawn[:, pool] = pool[rng.integers(0, pool.size, size=(samples, pool.size))]
            stratum_sizes[pool] = pool.size
        counts = (drawn[:, :, None] == np.arange(k)[None, None, :]).sum(axis=1)
        rows = np.concatenate([starts[drawn[:, j]][:, None] + np.arange(sizes[j])[None, :] for j in range(k)], axis=1)
        return Resamples(rows, counts, stratum_sizes)


NON_OVERLAPPING = NonOverlappingBlocks()
"""The pipeline's resampling scheme."""


def politis_white_block_length(series: np.ndarray, resampling: Resampling = NON_OVERLAPPING) -> float:
    """Automatic block length (Politis & White 2004, corrected by Patton, Politis & White 2009):
    the flat-top lag-window estimate of the MSE-optimal block for the variance of the mean, for
    the scheme `resampling` (its variance constant)."""
    x = np.asarray(series, dtype=float)
    n = x.size
    e = x - x.mean()
    if n < 8 or not np.any(e):
        return 1.0
    kn = max(5, int(np.ceil(np.sqrt(np.log10(n)))))
    m_max = int(np.ceil(np.sqrt(n))) + kn
    acv = np.array([e[k:] @ e[:n - k] / n for k in range(m_max + kn + 1)])
    rho = np.abs(acv / acv[0])
    crit = 2.0 * np.sqrt(np.log10(n) / n)
    m_hat = next((m for m in range(m_max + 1) if np.all(rho[m + 1:m + kn + 1] < crit)), m_max)
    big_m = min(2 * max(m_hat, 1), m_max)
    k = np.arange(1, big_m + 1)
    lam = np.where(k / big_m <= 0.5, 1.0, 2.0 * (1.0 - k / big_m))
    g = 2.0 * np.sum(lam * k * acv[1:big_m + 1])
    long_run = acv[0] + 2.0 * np.sum(lam * acv[1:big_m + 1])
    d = resampling.variance_constant * long_run**2
    if d <= 0:
        return 1.0
    b = (2.0 * g**2 / d) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(np.clip(b, 1.0, np.ceil(min(3.0 * np.sqrt(n), n / 3.0))))


# ---------------------------------------------------------------------------------------------
# The resampled estimator


@dataclass(frozen=True)
class EffectProblem:
    """The estimator on the full series: candidate transforms per channel (selection inputs), the
    other adjustment columns, the specs to estimate, and the transforms applied to the data."""

    inputs: SelectionInputs
    columns: dict[str, np.ndarray]
    """Non-channel regressors by column name (controls, Fourier terms, trend)."""
    specs: tuple[EffectSpec, ...]
    selected: np.ndarray
    """(channels,) the grid index applied to the data, per channel."""
    spends: dict[str, float]
    mediation: tuple[GComputationSpec, ...] = ()
    """Channels whose total effect is g-computed through their mediator channels."""
    spend_series: dict[str, np.ndarray] = field(default_factory=dict)
    """Observed weekly spend of every channel (the mediators' counterfactuals start from it)."""

    @property
    def n(self) -> int:
        return self.inputs.y.size

    def gcomputation(self, channel: str) -> GComputationSpec | None:
        return next((g for g in self.mediation if g.channel == channel), None)

    def media(self, channel: str, selected: np.ndarray) -> np.ndarray:
        """(B, weeks) the channel's transformed media over all weeks at each resample's selection."""
        k = self.inputs.channels.index(channel)
        return self.inputs.series[k][:, selected[:, k]].T

    def design(self, spec: EffectSpec, rows: np.ndarray, selected: np.ndarray) -> np.ndarray:
        """(B, n, p) [1, treatment, adjustment...] on each resample's rows and selected transforms."""
        cols = [np.ones(rows.shape)]
        for name in (spec.channel, *spec.adjustment):
            if name in self.inputs.channels:
                cols.append(self.inputs.column(name, rows, selected))
            else:
                cols.append(self.columns[name][rows])
        return np.stack(cols, axis=2)

    def treatment_total(self, channel: str, selected: np.ndarray) -> np.ndarray:
        """Σ_t x_t over the modelled weeks, at each resample's selected transform of `channel`."""
        k = self.inputs.channels.index(channel)
        return self.inputs.series[k].sum(axis=0)[selected[:, k]]

    @cached_property
    def marginal_series(self) -> tuple[np.ndarray, ...]:
        """Per channel (weeks, grid): x_t(spend) − x_t(1.01 · spend) of each candidate transform."""
        out = []
        for name, candidates, series in zip(self.inputs.channels, self.inputs.candidates, self.inputs.series):
            spend = self.spend_series[name]
            up = np.column_stack([c.apply((1.0 + MARGINAL_STEP) * spend, c.reference(spend)) for c in candidates])
            out.append(series - up)
        return tuple(out)

    @cached_property
    def carryover_series(self) -> tuple[np.ndarray, ...]:
        """Per channel (weeks, grid): adstocked spend over its mean, of each candidate transform."""
        out = []
        for name, candidates in zip(self.inputs.channels, self.inputs.candidates):
            spend = self.spend_series[name]
            out.append(np.column_stack([c.adstocked(spend) / c.reference(spend) for c in candidates]))
        return tuple(out)

    def at_selection(self, table: tuple[np.ndarray, ...], channel: str, selected: np.ndarray) -> np.ndarray:
        """(B, weeks) a per-candidate series (`marginal_series`, `carryover_series`) at each selection."""
        k = self.inputs.channels.index(channel)
        return table[k][:, selected[:, k]].T

    def marginal_total(self, channel: str, selected: np.ndarray) -> np.ndarray:
        """Σ_t [x_t(1.01 · spend) − x_t(spend)] at each resample's selected transform."""
        k = self.inputs.channels.index(channel)
        return -self.marginal_series[k].sum(axis=0)[selected[:, k]]


@dataclass(frozen=True)
class BootstrapDraws:
    """Per resample: each spec's ATE and incremental KPI, and each channel's selected grid index."""

    specs: tuple[EffectSpec, ...]
    ate: np.ndarray
    """(B, specs)"""
    incremental: np.ndarray
    """(B, specs)"""
    selected: np.ndarray
    """(B, channels)"""
    block_length: int
    reselected: bool
    weekly: dict[str, np.ndarray] = field(default_factory=dict)
    """(B, weeks) per g-computed channel: its total effect in each week (for lift-test windows)."""
    unit_counts: np.ndarray | None = None
    """(B, units) how often each non-overlapping block was drawn (see `Resamples`)."""
    unit_stratum_sizes: np.ndarray | None = None
    marginal: np.ndarray | None = None
    """(B, specs) extra KPI of +1% spend in every week (the marginal ROI's numerator)."""
    rows: np.ndarray | None = None
    """(B, n) each resample's rows (sorted by week): estimates read later from the same resamples
    (campaigns, effect modifiers, synergies in `periods` and `synergies`) refit on exactly these."""

    def column(self, channel: str, effect: EffectType) -> int:
        for j, s in enumerate(self.specs):
            if s.channel == channel and s.effect is effect:
                return j
        raise KeyError((channel, effect))

    def incremental_of(self, channel: str, effect: EffectType) -> np.ndarray:
        """Draws of the incremental KPI; the indirect effect is total − direct on the same resamples."""
        if effect is EffectType.INDIRECT:
            return (self.incremental[:, self.column(channel, EffectType.TOTAL)]
                    - self.incremental[:, self.column(channel, EffectType.DIRECT)])
        return self.incremental[:, self.column(channel, effect)]

    def marginal_of(self, channel: str, effect: EffectType) -> np.ndarray:
        """Draws of the extra KPI of +1% spend; the indirect one is total − direct."""
        if self.marginal is None:
            return np.full(self.incremental.shape[0], np.nan)
        if effect is EffectType.INDIRECT:
            return (self.marginal[:, self.column(channel, EffectType.TOTAL)]
                    - self.marginal[:, self.column(channel, EffectType.DIRECT)])
        return self.marginal[:, self.column(channel, effect)]


def estimate_spec(problem: EffectProblem, spec: EffectSpec, rows: np.ndarray, selected: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) ATE and incremental KPI of one spec for each row set, selection and KPI series."""
    ate = batched_ols(problem.design(spec, rows, selected), y)[:, 1]
    return ate, ate * problem.treatment_total(spec.channel, selected)


def _shifted_media(problem: EffectProblem, channel: str, selected: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(B, weeks) the channel's media at spend − shift, each resample through its selected transform."""
    k = problem.inputs.channels.index(channel)
    out = np.empty_like(shift)
    for g in np.unique(selected[:, k]):
        pick = selected[:, k] == g
        out[pick] = counterfactual_media(problem.spend_series[channel], problem.inputs.candidates[k][g], shift[pick])
    return out


def gcomputation_on_rows(problem: EffectProblem, spec: GComputationSpec, rows: np.ndarray,
                         selected: np.ndarray, y: np.ndarray) -> GComputed:
    """Both contrasts of the g-computed total per week: the regressions (and the mediator's
    equation) on each resample's rows, the counterfactual over all weeks at its selected
    transforms (see `gcomputation_weekly`)."""
    media = problem.media(spec.channel, selected)
    marginal = problem.at_selection(problem.marginal_series, spec.channel, selected)
    carry = problem.at_selection(problem.carryover_series, spec.channel, selected)
    deltas = {MediatorEquation.SATURATED: (media, marginal), MediatorEquation.CARRYOVER: (carry, -MARGINAL_STEP * carry)}
    return gcomputation_contrasts(problem, spec, rows, selected, y, (media, marginal), deltas)


def gcomputation_contrasts(problem: EffectProblem, spec: GComputationSpec, rows: np.ndarray, selected: np.ndarray,
                           y: np.ndarray, treatment_deltas: tuple[np.ndarray, ...],
                           mediator_deltas: dict[MediatorEquation, tuple[np.ndarray, ...]]) -> GComputed:
    """The g-computed contrasts `treatment_deltas` (changes of the channel's media, one per contrast)
    on each row set, the mediators' spend answering through `mediator_deltas` (the same changes as
    each mediator equation reads them: saturated media or carryover)."""
    carry = problem.at_selection(problem.carryover_series, spec.channel, selected)
    every_week = np.broadcast_to(np.arange(problem.n), rows.shape)

    def designs(m: MediatorModel, on: np.ndarray) -> tuple[np.ndarray, ...]:
        saturated = problem.design(m.spec(spec.channel), on, selected)
        carried = saturated.copy()
        carried[:, :, 1] = np.take_along_axis(carry, on, axis=1)
        by = {MediatorEquation.SATURATED: saturated, MediatorEquation.CARRYOVER: carried}
        return tuple(by[e] for e in EQUATIONS)

    mediators = [MediatorArrays(
        designs(m, rows), problem.spend_series[m.mediator][rows], spec.column(m.mediator),
        problem.media(m.mediator, selected), partial(_shifted_media, problem, m.mediator, selected),
        tuple(mediator_deltas[e] for e in EQUATIONS), problem.spend_series[m.mediator], designs(m, every_week))
        for m in spec.mediators]
    return gcomputation_weekly(problem.design(spec.direct, rows, selected), y, treatment_deltas, mediators)


@dataclass(frozen=True)
class RowEstimates:
    """Every spec on B row sets."""

    ate: np.ndarray
    """(B, specs)"""
    incremental: np.ndarray
    """(B, specs) against zero spend"""
    marginal: np.ndarray
    """(B, specs) extra KPI of +1% spend in every week"""
    weekly: dict[str, np.ndarray]
    """(B, weeks) per g-computed channel: its total effect against zero spend in each week."""


def estimate_all(problem: EffectProblem, rows: np.ndarray, selected: np.ndarray) -> RowEstimates:
    """Every spec's ATE, incremental KPI and marginal extra KPI on each row set and selection. A
    g-computed total keeps the linear ATE (DoWhy's reference) beside its g-computed effects."""
    y = problem.inputs.y[rows]
    ates, incrementals, marginals, weekly = [], [], [], {}
    for s in problem.specs:
        ate, incremental = estimate_spec(problem, s, rows, selected, y)
        marginal = ate * problem.marginal_total(s.channel, selected)
        gspec = problem.gcomputation(s.channel) if s.effect is EffectType.TOTAL else None
        if gspec is not None:
            computed = gcomputation_on_rows(problem, gspec, rows, selected, y)
            weekly[s.channel] = computed.weekly[0]
            incremental = computed.weekly[0].sum(axis=1)
            marginal = -computed.weekly[1].sum(axis=1)
        ates.append(ate)
        incrementals.append(incremental)
        marginals.append(marginal)
    return RowEstimates(np.column_stack(ates), np.column_stack(incrementals), np.column_stack(marginals), weekly)


def influence_block_length(problem: EffectProblem, resampling: Resampling = NON_OVERLAPPING) -> int:
    """The largest Politis–White block over the specs' influence series x̃_t·e_t (the treatment
    residualised on its adjustment set, times the regression residual): the series whose
    dependence sets the variance of each coefficient."""
    rows = np.arange(problem.n)[None, :]
    selected = problem.selected[None, :]
    best = 1.0
    for spec in problem.specs:
        x = problem.design(spec, rows, selected)[0]
        y = problem.inputs.y
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        others = np.delete(x, 1, axis=1)
        gamma, *_ = np.linalg.lstsq(others, x[:, 1], rcond=None)
        psi = (x[:, 1] - others @ gamma) * (y - x @ beta)
        best = max(best, politis_white_block_length(psi, resampling))
    return int(np.ceil(best))


def bootstrap(problem: EffectProblem, settings: BootstrapSettings, selection: SelectionSettings,
              rng: np.random.Generator, resampling: Resampling = NON_OVERLAPPING) -> BootstrapDraws:
    """Resample blocks of weeks, re-select the transforms (unless told not to), re-estimate every spec.

    Parameters
    ----------
    problem
        The estimator on the full series (`effect_problem`).
    settings
        Resamples, interval level, block length (None: Politis–White), re-selection.
    selection
        The CV settings the transform selection repeats in every resample.
    rng
        The only source of randomness: the same generator state gives the same draws.
    resampling
        How resamples are cut from the weeks; the pipeline's non-overlapping blocks by default.
    """
    block = settings.block_length or influence_block_length(problem, resampling)
    resamples = resampling(problem.n, block, settings.samples, rng)
    # Regressions ignore row order, the selection's forward-chaining CV does not: sorted by week,
    # a resample's folds still train on earlier weeks and test on later ones, and the copies of
    # a week sit together instead of landing on both sides of a fold.
    rows = np.sort(resamples.rows, axis=1)
    if settings.reselect:
        selected = reselect(problem.inputs, rows, problem.inputs.start(), selection)
    else:
        selected = np.tile(problem.selected, (settings.samples, 1))
    out = estimate_all(problem, rows, selected)
    return BootstrapDraws(problem.specs, out.ate, out.incremental, selected, block, settings.reselect,
                          out.weekly, resamples.unit_counts, resamples.unit_stratum_sizes, out.marginal, rows)


# ---------------------------------------------------------------------------------------------
# Intervals and p-values


def interval(point: float, draws: np.ndarray, level: float, kind: IntervalKind) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    alpha = (1.0 - level) / 2.0
    low_q, high_q = np.quantile(finite, [alpha, 1.0 - alpha])
    if kind is IntervalKind.PERCENTILE:
        return float(low_q), float(high_q)
    return float(2.0 * point - high_q), float(2.0 * point - low_q)


def wald_pvalue(point: float, std_error: float, df: int | None) -> float:
    """Two-sided t-test of 'no effect' with the given standard error (None: normal)."""
    from scipy import stats
    if not np.isfinite(std_error) or std_error <= 0:
        return float("nan")
    return float(2.0 * (stats.t.sf(abs(point) / std_error, df) if df else stats.norm.sf(abs(point) / std_error)))


def smoothed_standard_error(draws: np.ndarray, unit_counts: np.ndarray, stratum_sizes: np.ndarray) -> float:
    """Standard error of the mean of the draws as an estimator in its own right (Efron 2014, the
    nonparametric delta method): sqrt(Σ_j cov_j²), cov_j the bootstrap covariance of block j's count
    with the draw, less the Monte-Carlo part of that sum (Σ_j var(count_j) · var(draw) / B), which
    would otherwise inflate it when the resamples are few against the blocks."""
    b = draws.size
    centred = draws - draws.mean()
    cov = (unit_counts - unit_counts.mean(axis=0)).T @ centred / b
    count_variance = 1.0 - 1.0 / stratum_sizes
    monte_carlo = float(np.sum(count_variance)) * float(centred @ centred) / b / b
    return float(np.sqrt(max(float(cov @ cov) - monte_carlo, 0.0)))


@dataclass(frozen=True)
class DrawSummary:
    """An estimate read from its bootstrap draws: the published value, its interval and errors."""

    estimate: float
    low: float
    high: float
    std_error: float
    """max(bootstrap, floor): the error behind the p-value and the interval's width."""
    bootstrap_std_error: float
    method: IntervalKind
    samples: int
    df: int | None
    """Degrees of freedom of the t quantile and test (None: normal)."""


def summarise_draws(point: float, sample: np.ndarray, draws: BootstrapDraws, smooth: bool, level: float,
                    kind: IntervalKind, floor: float = float("nan"), df: int | None = None) -> DrawSummary | None:
    """`point` with its draws as an interval; smoothed (mean of the draws ± t·Efron error) when
    `smooth`, else `kind` (percentile or basic) about `point`. An interval whose draws are narrower
    than `floor` (the HAC error, on `df` degrees of freedom) is widened about the estimate to match.
    The smoothed error is a sum over the k blocks, so its t quantile has k − 1 degrees of freedom
    (few long blocks are an honest reason for a wider interval). None: fewer than 2 finite draws.

    Parameters
    ----------
    point
        The estimate on the data (ignored when smoothed).
    sample
        (B,) its bootstrap draws; non-finite ones (rank-deficient resamples) are dropped.
    draws
        The bootstrap the sample came from: its block counts give the smoothed error.
    smooth
        Publish the mean of the draws with Efron's error (the estimate rests on a selection).
    level
        Interval level, e.g. 0.95.
    kind
        Percentile or basic, for the unsmoothed interval.
    floor
        The smallest standard error allowed (the HAC error); NaN: none.
    df
        Degrees of freedom of the floor's t quantile (None: normal).
    """
    finite_rows = np.isfinite(sample)
    finite = sample[finite_rows]
    if finite.size < 2:
        return None
    if smooth and draws.unit_counts is not None and draws.unit_stratum_sizes is not None:
        estimate = float(finite.mean())
        boot_se = smoothed_standard_error(finite, draws.unit_counts[finite_rows], draws.unit_stratum_sizes)
        floored = bool(floor > boot_se)
        se = floor if floored else boot_se
        df_used = df if floored else draws.unit_counts.shape[1] - 1
        half = _quantile(level, df_used) * se
        return DrawSummary(estimate, estimate - half, estimate + half, se, boot_se, IntervalKind.SMOOTHED,
                           int(finite.size), df_used)
    boot_se = float(np.std(finite, ddof=1))
    se = float(np.nanmax([boot_se, floor]))
    low, high = interval(point, finite, level, kind)
    stretch = se / boot_se if boot_se > 0 else 1.0
    return DrawSummary(point, point + (low - point) * stretch, point + (high - point) * stretch, se, boot_se, kind,
                       int(finite.size), df)


def _quantile(level: float, df: int | None) -> float:
    from scipy import stats
    upper = 0.5 + level / 2.0
    return float(stats.t.ppf(upper, df) if df else stats.norm.ppf(upper))


@dataclass(frozen=True)
class IntervalEstimate:
    channel: str
    effect: EffectType
    incremental_kpi: float
    """The published estimate: the point estimate given, or its smoothed value (see `method`)."""
    incremental_ci_low: float
    incremental_ci_high: float
    roi_ci_low: float
    roi_ci_high: float
    p_value: float
    std_error: float
    """Standard error of the incremental KPI used by the p-value."""
    bootstrap_std_error: float
    hac_std_error: float
    block_length: int
    samples: int
    method: IntervalKind | None
    """None: no interval (every resample rank-deficient)."""
    mroi: float = float("nan")
    """The published marginal ROI (smoothed where the incremental KPI is)."""
    mroi_ci_low: float = float("nan")
    mroi_ci_high: float = float("nan")
    null_dispersion: float = float("nan")
    """Spread of the t-statistic under no effect with the selection repeated (`null_test`); NaN: not run."""
    null_p_value: float = float("nan")
    """That test's p-value; `p_value` is the larger of it and the bootstrap's."""
    df: int | None = None
    """Degrees of freedom of the t-test behind `p_value` (None: normal)."""


def hac_incremental_se(problem: EffectProblem, spec: EffectSpec) -> tuple[float, float]:
    """HAC p-value and standard error of the incremental KPI at the applied transforms."""
    rows = np.arange(problem.n)[None, :]
    selected = problem.selected[None, :]
    x = problem.design(spec, rows, selected)[0]
    p, se = hac_pvalue(x, problem.inputs.y)
    return p, se * float(problem.treatment_total(spec.channel, selected)[0])


def rests_on_selection(problem: EffectProblem, channel: str) -> bool:
    """Whether the channel's estimates are sums over a selected transform: its own, or (when its
    total is g-computed) a mediator's. A selected transform among the adjustment columns only
    moves the estimate a little and stays with percentile intervals. Decided per channel, so
    total = direct + indirect holds among the published estimates."""
    selected = {problem.inputs.channels[k] for k in problem.inputs.searchable}
    g = problem.gcomputation(channel)
    scaled_by = {channel} | ({m.mediator for m in g.mediators} if g is not None else set())
    return bool(scaled_by & selected)


def intervals(problem: EffectProblem, draws: BootstrapDraws, points: dict[tuple[str, EffectType], float],
              settings: BootstrapSettings,
              marginal_points: dict[tuple[str, EffectType], float] | None = None) -> list[IntervalEstimate]:
    """One interval per estimated (channel, effect) in `points` (incremental KPI point estimates,
    indirect included where total and direct exist); with `marginal_points` (the extra KPI of +1%
    spend) the marginal ROI's interval too, read from the same resamples the same way, its HAC floor
    scaled from the incremental KPI's by the ratio of the two point estimates.

    Parameters
    ----------
    problem
        The estimator the draws came from (specs, spends, HAC errors at the applied transforms).
    draws
        The bootstrap's draws of every spec.
    points
        (channel, effect) → the published incremental KPI; an interval is given for each key.
    settings
        Interval level, unsmoothed interval kind, and whether selected estimates are smoothed.
    marginal_points
        (channel, effect) → the extra KPI of +1% spend; None: no marginal ROI intervals.
    """
    df = problem.n - 1 - max(len(s.adjustment) + 1 for s in problem.specs)
    hac = {(s.channel, s.effect): hac_incremental_se(problem, s)[1] for s in problem.specs}
    out = []
    nan = float("nan")
    for (channel, effect), point in points.items():
        hac_se = hac.get((channel, effect), nan)
        smooth = settings.smooths and rests_on_selection(problem, channel)
        summary = summarise_draws(point, draws.incremental_of(channel, effect), draws, smooth, settings.level,
                                  settings.interval, hac_se, df)
        if summary is None:  # every resample rank-deficient: no honest interval to give
            out.append(IntervalEstimate(channel, effect, point, nan, nan, nan, nan, nan, nan, nan, hac_se,
                                        draws.block_length, 0, None))
            continue
        spend = problem.spends[channel]
        step = MARGINAL_STEP * spend
        marginal_point = (marginal_points or {}).get((channel, effect), nan)
        marginal = None
        if np.isfinite(marginal_point) and step:
            floor = hac_se * abs(marginal_point / point) if point else nan
            marginal = summarise_draws(marginal_point, draws.marginal_of(channel, effect), draws, smooth,
                                       settings.level, settings.interval, floor, df)
        out.append(IntervalEstimate(
            channel, effect, summary.estimate, summary.low, summary.high, summary.low / spend, summary.high / spend,
            wald_pvalue(summary.estimate, summary.std_error, summary.df or df), summary.std_error,
            summary.bootstrap_std_error, hac_se, draws.block_length, summary.samples, summary.method,
            *((marginal.estimate / step, marginal.low / step, marginal.high / step) if marginal else (nan, nan, nan)),
            df=summary.df or df))
    return out


INTERVAL_COLUMNS = ["channel", "effect", "smoothed_incremental_kpi", "interval_method", "incremental_ci_low",
                    "incremental_ci_high", "roi_ci_low", "roi_ci_high", "mroi_estimate", "mroi_ci_low", "mroi_ci_high", "p_value", "std_error",
                    "bootstrap_std_error", "hac_std_error", "null_dispersion", "null_p_value", "block_length",
                    "bootstrap_samples"]


def intervals_table(estimates: list[IntervalEstimate]) -> pd.DataFrame:
    """The intervals; `smoothed_incremental_kpi` is set where the published estimate is smoothed."""
    return pd.DataFrame([{
        "channel": i.channel, "effect": i.effect.value,
        "smoothed_incremental_kpi": i.incremental_kpi if i.method is IntervalKind.SMOOTHED else float("nan"),
        "interval_method": i.method.value if i.method else "",
        "incremental_ci_low": i.incremental_ci_low,
        "incremental_ci_high": i.incremental_ci_high, "roi_ci_low": i.roi_ci_low, "roi_ci_high": i.roi_ci_high,
        "mroi_estimate": i.mroi, "mroi_ci_low": i.mroi_ci_low, "mroi_ci_high": i.mroi_ci_high,
        "p_value": i.p_value, "std_error": i.std_error, "bootstrap_std_error": i.bootstrap_std_error,
        "hac_std_error": i.hac_std_error, "null_dispersion": i.null_dispersion,
        "null_p_value": i.null_p_value, "block_length": i.block_length, "bootstrap_samples": i.samples}
        for i in estimates], columns=INTERVAL_COLUMNS)


def effect_problem(raw: pd.DataFrame, config: PipelineConfig, candidates: dict[str, tuple[ChannelTransform, ...]],
                   selected: dict[str, int], specs: list[EffectSpec] | tuple[EffectSpec, ...],
                   spends: dict[str, float], mediation: tuple[GComputationSpec, ...] = ()) -> EffectProblem:
    """The resampling problem: the estimator on the full series, ready to be resampled.

    Parameters
    ----------
    raw
        The weekly table (spend, KPI, controls) as ingested.
    config
        The pipeline config (channels, controls, KPI).
    candidates
        Channel → the candidate transforms the selection searched (one for a configured channel).
    selected
        Channel → the index of the applied transform among its candidates.
    specs
        The effects to estimate, in the order the draws' columns take.
    spends
        Channel → total spend (the ROI's denominator).
    mediation
        The channels whose total effect is g-computed (as in the point estimates).
    """
    inputs = selection_inputs(raw, config, candidates)
    controls = control_features(raw, config)
    columns = {c: controls[c].to_numpy(dtype=float) for c in controls.columns}
    spend_series = {c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    return EffectProblem(inputs, columns, tuple(specs), np.array([selected[c] for c in inputs.channels]), spends,
                         tuple(mediation), spend_series)


