"""Uncertainty for every estimate: moving-block bootstrap intervals (weekly autocorrelation kept
inside blocks) and HAC p-values, computed on the same design matrices DoWhy's linear estimator
uses. Indirect effects are total − direct on the same resamples, so their interval is coherent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cmmm_pipeline.config import EffectType
from cmmm_pipeline.estimation import (EffectSpec, batched_ols, default_block_length, design, hac_pvalue,
                                      moving_block_indices)


@dataclass(frozen=True)
class IntervalEstimate:
    channel: str
    effect: EffectType
    incremental_ci_low: float
    incremental_ci_high: float
    roi_ci_low: float
    roi_ci_high: float
    p_value: float
    std_error: float
    block_length: int
    samples: int


def _two_sided_bootstrap_p(draws: np.ndarray) -> float:
    """Share of resamples on the far side of zero, doubled (a bootstrap test of 'no effect')."""
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan")
    below = (np.sum(draws <= 0) + 1) / (draws.size + 1)
    above = (np.sum(draws >= 0) + 1) / (draws.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def bootstrap_intervals(features: pd.DataFrame, specs: list[EffectSpec], spends: dict[str, float], kpi: str,
                        level: float, samples: int, block_length: int | None,
                        rng: np.random.Generator) -> list[IntervalEstimate]:
    """Intervals for each spec (and the indirect effect where both total and direct exist)."""
    n = len(features)
    block = block_length or default_block_length(n)
    idx = moving_block_indices(n, block, samples, rng)
    y = features[kpi].to_numpy(dtype=float)
    alpha = (1 - level) / 2
    draws: dict[tuple[str, EffectType], np.ndarray] = {}
    out: list[IntervalEstimate] = []
    for spec in specs:
        x = design(features, spec)
        incremental = batched_ols(x, y, idx)[:, 1] * float(features[spec.channel].sum())
        draws[(spec.channel, spec.effect)] = incremental
        p, se = hac_pvalue(x, y)
        out.append(_interval(spec.channel, spec.effect, incremental, spends[spec.channel], alpha, p, se, block))
    for channel in {s.channel for s in specs}:
        total, direct = draws.get((channel, EffectType.TOTAL)), draws.get((channel, EffectType.DIRECT))
        if total is not None and direct is not None:
            indirect = total - direct
            out.append(_interval(channel, EffectType.INDIRECT, indirect, spends[channel], alpha,
                                 _two_sided_bootstrap_p(indirect), float(np.nanstd(indirect)), block))
    return out


def _interval(channel: str, effect: EffectType, incremental: np.ndarray, spend: float, alpha: float,
              p_value: float, std_error: float, block: int) -> IntervalEstimate:
    finite = incremental[np.isfinite(incremental)]
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return IntervalEstimate(channel, effect, float(low), float(high), float(low / spend), float(high / spend),
                            p_value, std_error, block, int(finite.size))


def intervals_table(intervals: list[IntervalEstimate]) -> pd.DataFrame:
    return pd.DataFrame([{
        "channel": i.channel, "effect": i.effect.value, "incremental_ci_low": i.incremental_ci_low,
        "incremental_ci_high": i.incremental_ci_high, "roi_ci_low": i.roi_ci_low, "roi_ci_high": i.roi_ci_high,
        "p_value": i.p_value, "std_error": i.std_error, "block_length": i.block_length,
        "bootstrap_samples": i.samples} for i in intervals])
