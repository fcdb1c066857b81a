"""Intervals that widen where the data cannot tell transforms apart.

Why: the bootstrap repeats the selection, but where the cross-validation surface is flat the
resamples keep choosing alike, and the spread of their estimates says nothing about the candidates
the data fit just as well. For the marginal ROI this is the dominant uncertainty: it is the slope of
the response curve at observed spend, and curves that fit the weeks equally well (a concave Hill
curve, one bent like an S) can have very different slopes there. On the held-out worlds
(benchmarks/heldout) the bootstrap's mROI intervals covered the truth for 86% of channels, and
radio's (an S-curve in its convex part) in 3% of 30 runs.

How: the near-equivalent selections are every grid point within the one-SE band of a channel's
best (the band the `one_se` criterion uses; `media.selection.near_equivalent`), one channel changed
at a time. Each is estimated on the data like the applied one, and the published interval is
extended by the largest shift any of them makes to the estimate: the union of the interval moved
to each near-equivalent candidate. Where every candidate in the band gives the same answer, nothing
changes. By default (`estimation.selection_band: mroi`) only the marginal ROI's interval widens:
widening the ROI's too, with the p-value to match, cost much power for little coverage on the
held-out worlds (docs/accuracy.md).

Averaging (`estimation.selection_average: true`, an ablation, off by default): the published
estimate moves to the mean of the band's estimates weighted by each model's out-of-sample
predictive likelihood (`media.selection.predictive_weights`), and its interval moves with it;
measured against the minimum in docs/accuracy.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.effects.bootstrap import (
    BootstrapDraws,
    EffectProblem,
    IntervalEstimate,
    IntervalKind,
    estimate_all,
    wald_pvalue,
)
from cmmm_pipeline.effects.estimation import MARGINAL_STEP
from cmmm_pipeline.media.selection import (
    Folds,
    SelectionSettings,
    near_equivalent_fit,
    predictive_weights,
)

CHUNK = 64
"""Alternative selections estimated per batched call: bounds memory (chunk × weeks × columns)."""


@dataclass(frozen=True)
class BandRange:
    """Per (channel, effect): the smallest and largest estimate on the data over the applied and the
    near-equivalent selections, of the incremental KPI and of the extra KPI of +1% spend."""

    incremental: dict[tuple[str, EffectType], tuple[float, float]]
    marginal: dict[tuple[str, EffectType], tuple[float, float]]
    candidates: int
    """How many near-equivalent selections were estimated (0: the band holds the applied one only)."""
    averaged_incremental: dict[tuple[str, EffectType], float] | None = None
    """Per key, the band's estimates of the incremental KPI weighted by predictive likelihood."""
    averaged_marginal: dict[tuple[str, EffectType], float] | None = None
    """Likewise the extra KPI of +1% spend."""
    applied_incremental: dict[tuple[str, EffectType], float] | None = None
    """Per key, the applied selection's estimate on the data (what the averages are compared with)."""
    applied_marginal: dict[tuple[str, EffectType], float] | None = None


def band_range(problem: EffectProblem, selection: SelectionSettings, keys: list[tuple[str, EffectType]]) -> BandRange:
    """Every key's estimates over the applied and the near-equivalent selections."""
    alternatives, errors, applied = near_equivalent_fit(problem.inputs, problem.selected, selection)
    every = np.vstack([problem.selected[None, :], alternatives])
    weights = predictive_weights(np.concatenate([[applied], errors]), Folds.of(problem.n, selection).test_weeks)
    identity = np.arange(problem.n)
    parts = [estimate_all(problem, np.tile(identity, (len(chunk), 1)), chunk)
             for chunk in (every[i:i + CHUNK] for i in range(0, every.shape[0], CHUNK))]
    # Laid out as draws, so the indirect effect is read as total − direct the way the bootstrap reads it.
    estimates = BootstrapDraws(problem.specs, np.concatenate([p.ate for p in parts]),
                               np.concatenate([p.incremental for p in parts]), every, block_length=0,
                               reselected=False, marginal=np.concatenate([p.marginal for p in parts]))

    def span(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        return (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)

    def average(values: np.ndarray) -> float:
        finite = np.isfinite(values)
        return float(np.sum(weights[finite] * values[finite]) / weights[finite].sum()) if finite.any() else np.nan

    return BandRange({k: span(estimates.incremental_of(*k)) for k in keys},
                     {k: span(estimates.marginal_of(*k)) for k in keys}, int(alternatives.shape[0]),
                     {k: average(estimates.incremental_of(*k)) for k in keys},
                     {k: average(estimates.marginal_of(*k)) for k in keys},
                     {k: float(estimates.incremental_of(*k)[0]) for k in keys},
                     {k: float(estimates.marginal_of(*k)[0]) for k in keys})


def with_average(estimates: list[IntervalEstimate], problem: EffectProblem, band: BandRange) -> list[IntervalEstimate]:
    """The estimates moved by the band average's shift from the applied selection's estimate on the
    data (incremental KPI and ROI together, the marginal ROI apart), with their intervals. The shift,
    not the average itself, so an estimate the bootstrap smoothed stays smoothed over resamples."""
    if band.candidates == 0 or band.averaged_incremental is None:
        return list(estimates)
    out = []
    for e in estimates:
        if e.method is not IntervalKind.SMOOTHED:  # a configured channel's estimate is published as it is
            out.append(e)
            continue
        key = (e.channel, e.effect)
        spend = problem.spends[e.channel]
        changes: dict[str, float] = {}
        shift = band.averaged_incremental.get(key, np.nan) - band.applied_incremental.get(key, np.nan)
        if spend and np.isfinite(shift) and np.isfinite(e.incremental_kpi):
            changes.update(incremental_kpi=e.incremental_kpi + shift, incremental_ci_low=e.incremental_ci_low + shift,
                           incremental_ci_high=e.incremental_ci_high + shift,
                           roi_ci_low=e.roi_ci_low + shift / spend, roi_ci_high=e.roi_ci_high + shift / spend)
        step = MARGINAL_STEP * spend
        marginal = band.averaged_marginal.get(key, np.nan) - band.applied_marginal.get(key, np.nan)
        if step and np.isfinite(marginal) and np.isfinite(e.mroi):
            m = marginal / step
            changes.update(mroi=e.mroi + m, mroi_ci_low=e.mroi_ci_low + m, mroi_ci_high=e.mroi_ci_high + m)
        out.append(replace(e, **changes))
    return out


def _widen(low: float, high: float, estimate: float, band: tuple[float, float]) -> tuple[float, float]:
    """The interval moved to each value of the band (estimate + shift), united with itself."""
    lowest, highest = band
    if not (np.isfinite(lowest) and np.isfinite(highest) and np.isfinite(estimate)):
        return low, high
    return low + min(0.0, lowest - estimate), high + max(0.0, highest - estimate)


def _least_significant(e: IntervalEstimate, band: tuple[float, float]) -> float:
    """The p-value of the estimate moved to the band's value nearest zero (1 where the band spans
    zero): the interval moved there is the one that comes closest to zero, so the p-value and the
    widened interval agree on significance."""
    lowest, highest = band
    if not (np.isfinite(lowest) and np.isfinite(highest) and np.isfinite(e.incremental_kpi)):
        return float("nan")
    estimate = e.incremental_kpi
    moved = (estimate + min(0.0, lowest - estimate), estimate + max(0.0, highest - estimate))
    if moved[0] <= 0.0 <= moved[1]:
        return 1.0
    return wald_pvalue(min(moved, key=abs), e.std_error, e.df)


def with_band(estimates: list[IntervalEstimate], problem: EffectProblem, band: BandRange,
              widen_roi: bool) -> list[IntervalEstimate]:
    """The estimates with the marginal ROI's interval (and, with `widen_roi`, the incremental KPI's
    and ROI's) extended to the near-equivalent selections' estimates. Without near-equivalent
    selections nothing changes (the applied selection alone is what the bootstrap summarised)."""
    if band.candidates == 0:
        return list(estimates)
    out = []
    for e in estimates:
        key = (e.channel, e.effect)
        spend = problem.spends[e.channel]
        changes: dict[str, float] = {}
        step = MARGINAL_STEP * spend
        if step and key in band.marginal and np.isfinite(e.mroi_ci_low):
            lo, hi = band.marginal[key]
            changes["mroi_ci_low"], changes["mroi_ci_high"] = _widen(e.mroi_ci_low, e.mroi_ci_high, e.mroi,
                                                                     (lo / step, hi / step))
        if widen_roi and spend and key in band.incremental and np.isfinite(e.incremental_ci_low):
            low, high = _widen(e.incremental_ci_low, e.incremental_ci_high, e.incremental_kpi, band.incremental[key])
            changes["p_value"] = float(np.nanmax([e.p_value, _least_significant(e, band.incremental[key])]))
            changes.update(incremental_ci_low=low, incremental_ci_high=high,
                           roi_ci_low=e.roi_ci_low + (low - e.incremental_ci_low) / spend,
                           roi_ci_high=e.roi_ci_high + (high - e.incremental_ci_high) / spend)
        out.append(replace(e, **changes))
    return out
