"""Budgets that follow sales: g-estimation for channels planned from the KPI's past.

When spend is planned from a lagged KPI (`dag/feedback.py`), no regression adjustment of the weekly
columns is valid: the lagged KPI confounds spend and KPI, and it is also a result of earlier spend,
which the adstocked treatment carries. Robins' g-estimation of a linear structural nested mean
model is valid there (Robins 1994; Vansteelandt & Joffe 2014):
- the planning rule is fitted: each week's spend regressed on the lagged KPI it was planned from,
  the spend of the week before and the planning covariates;
- its residual, the part of spend the plan did not set, is adstocked like the spend;
- the KPI's effect is the coefficient at which the KPI, less the effect of the media, is
  uncorrelated with that adstocked residual (a just-identified instrumental-variable equation, the
  other regressors instrumenting themselves).
The lagged KPI itself is never adjusted for, so nothing conditions on a result of earlier spend.

The assumptions, stated with every estimate:
- sequential exchangeability: given the lagged KPI, the spend before and the planning covariates,
  what moves spend is unrelated to the KPI's own drivers (the plan reads the KPI's past, not a
  forecast of its future, and nothing unobserved moves both);
- the planning rule's mean is linear in those inputs (no distribution is assumed);
- positivity: spend varies around the plan (a planning residual strong enough to be a relevant
  instrument, checked by its first-stage F statistic);
- the KPI is linear in the transformed media given the covariates, and the configured transforms are
  the true ones (a transform left to the data is selected by a regression the feedback confounds:
  no estimate then).
The interval is a block bootstrap that refits the planning rules in every resample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.dag.feedback import LaggedKpi, feedback_reason, kpi_history, lagged_kpi_nodes
from cmmm_pipeline.dag.overlap import OverlapThresholds, media_support
from cmmm_pipeline.effects.bootstrap import NON_OVERLAPPING, IntervalKind, interval, politis_white_block_length
from cmmm_pipeline.effects.estimation import MARGINAL_STEP, Estimator
from cmmm_pipeline.media.features import ChannelTransform, ParameterSource, node_columns

ADSTOCK_SHARE = 0.9
"""An estimate uses the weeks whose adstock window (this share of a unit spend's effect) has a
planning residual: the KPI's history the plan read must reach back that far."""
MAX_WINDOW = 26
MIN_FIRST_STAGE_F = 10.0
"""Below this first-stage F statistic the planning residual is a weak instrument (Staiger & Stock
1997): spend barely varies around the plan, and the channel is withheld."""
MIN_RESAMPLES = 20
TIME_KNOT_WEEKS = 13
"""A piecewise-linear function of time with a knot every quarter enters the KPI's equation and the
planning rules. Time is not moved by spend, so it keeps the equation valid; it absorbs the KPI's slow
drift (the persistent demand the plan follows), which otherwise stays in the residual as noise.
Measured in benchmarks/feedback_study.py (`g_estimation_no_time` is the equation without it)."""
ASSUMPTIONS = ("sequential exchangeability given the lagged KPI, the spend before and the planning covariates "
               "(the plan reads only the KPI's past); a planning rule linear in them; positivity (spend varies "
               "around the plan); a KPI linear in the transformed media; the configured transforms")


class FeedbackStatus(Enum):
    ESTIMATED = "estimated"
    WEAK_PLANNING_RESIDUAL = "weak_planning_residual"
    TOO_FEW_WEEKS = "too_few_weeks"
    TRANSFORM_NOT_CONFIGURED = "transform_not_configured"
    """A planned channel's adstock or saturation was left to the data: the selection fits a regression
    that the feedback confounds, and on the benchmark's worlds g-estimation on selected transforms
    covers the truth in 15-35% of worlds (benchmarks/feedback_study.py). No estimate then."""


@dataclass(frozen=True)
class FeedbackChannel:
    """One channel planned from the KPI's past: its spend, transformed media and planning inputs."""

    channel: str
    spend: np.ndarray
    media: np.ndarray
    impulse: np.ndarray
    """The adstock of a unit spend in week 0 over the following weeks (adstocks the residual)."""
    drivers: tuple[LaggedKpi, ...]
    media_step: np.ndarray | None = None
    """The transformed media of every week's spend × (1 + `MARGINAL_STEP`), on the same scale, for the
    marginal ROI (None: no marginal ROI)."""


@dataclass(frozen=True)
class FeedbackEstimate:
    channel: str
    status: FeedbackStatus
    roi: float
    roi_ci_low: float
    roi_ci_high: float
    incremental_kpi: float
    spend: float
    p_value: float
    mroi: float
    """The KPI of the next unit of spend: every week's spend +1% (needs no curve below the data)."""
    mroi_ci_low: float
    mroi_ci_high: float
    weeks: int
    """Weeks in the estimating equation (those whose adstock window the KPI's history reaches)."""
    first_stage_f: float
    """How strongly the planning residual moves the channel's media (below 10: a weak instrument)."""
    planning_r2: float
    """The share of spend's variance the planning rule explains (near 1: positivity fails)."""


def adstock_window(impulse: np.ndarray) -> int:
    """Weeks (this one included) carrying `ADSTOCK_SHARE` of the adstocked effect, at most `MAX_WINDOW`."""
    total = float(np.sum(impulse))
    if total <= 0:
        return 1
    reached = np.flatnonzero(np.cumsum(impulse) / total >= ADSTOCK_SHARE - 1e-12)
    return int(min(MAX_WINDOW, (reached[0] + 1) if reached.size else impulse.size))


def time_basis(n: int, knot_weeks: int = TIME_KNOT_WEEKS) -> np.ndarray:
    """(n, k) a linear trend plus one hinge per knot: a continuous piecewise-linear drift in time."""
    t = np.arange(n, dtype=float)
    knots = np.arange(knot_weeks, n - knot_weeks // 2, knot_weeks)
    return np.column_stack([t / max(n, 1), *(np.maximum(t - k, 0.0) / max(n, 1) for k in knots)])


def planning_inputs(channel: FeedbackChannel, kpi: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """(n, k) what the plan read: a constant, the spend before, the covariates, the lagged KPI."""
    n = kpi.size
    previous = np.concatenate([[np.nan], channel.spend[:-1]])
    history = [kpi_history(kpi, d) for d in channel.drivers]
    return np.column_stack([np.ones(n), previous, covariates, *history])


def planning_residual(spend: np.ndarray, inputs: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Spend less the planning rule fitted by OLS on `rows` (0 where the inputs are missing), and R²."""
    defined = np.isfinite(inputs).all(axis=1)
    fit_rows = rows[defined[rows]]
    x = np.nan_to_num(inputs)
    beta, *_ = np.linalg.lstsq(x[fit_rows], spend[fit_rows], rcond=None)
    resid = np.where(defined, spend - x @ beta, 0.0)
    centred = spend[fit_rows] - spend[fit_rows].mean()
    r2 = 1.0 - float(np.sum(resid[fit_rows] ** 2)) / max(float(np.sum(centred ** 2)), 1e-300)
    return resid, r2


def _instruments(channels: Sequence[FeedbackChannel], inputs: Sequence[np.ndarray],
                 rows: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    n = inputs[0].shape[0]
    out = np.empty((n, len(channels)))
    r2 = {}
    for j, (ch, x) in enumerate(zip(channels, inputs)):
        resid, r2[ch.channel] = planning_residual(ch.spend, x, rows)
        out[:, j] = np.convolve(resid, ch.impulse)[:n]
    return out, r2


def usable_weeks(channels: Sequence[FeedbackChannel], inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Weeks whose every feedback channel has a planning residual over its whole adstock window."""
    n = inputs[0].shape[0]
    keep = np.ones(n, dtype=bool)
    for ch, x in zip(channels, inputs):
        defined = np.flatnonzero(np.isfinite(x).all(axis=1))
        first = (int(defined[0]) if defined.size else n) + adstock_window(ch.impulse) - 1
        keep[:min(first, n)] = False
    return np.flatnonzero(keep)


def _solve(design: np.ndarray, instruments: np.ndarray, kpi: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The just-identified estimating equation Z'(y - X b) = 0 on `rows`."""
    z, x = instruments[rows], design[rows]
    return np.linalg.lstsq(z.T @ x, z.T @ kpi[rows], rcond=None)[0]


def first_stage_f(media: np.ndarray, instrument: np.ndarray, exogenous: np.ndarray) -> float:
    """F statistic of the instrument in the regression of the media on it and the exogenous columns."""
    restricted = np.linalg.lstsq(exogenous, media, rcond=None)[0]
    full_x = np.column_stack([exogenous, instrument])
    full = np.linalg.lstsq(full_x, media, rcond=None)[0]
    rss_r = float(np.sum((media - exogenous @ restricted) ** 2))
    rss_f = float(np.sum((media - full_x @ full) ** 2))
    dof = max(1, media.size - full_x.shape[1])
    return (rss_r - rss_f) / max(rss_f / dof, 1e-300)


def _bootstrap_p_value(draws: np.ndarray) -> float:
    """Two-sided: twice the share of resamples on the far side of zero (the percentile interval's dual)."""
    tail = min(float(np.sum(draws <= 0)), float(np.sum(draws >= 0)))
    return float(min(1.0, 2 * (tail + 1) / (draws.size + 1)))


def g_estimates(channels: Sequence[FeedbackChannel], other_media: np.ndarray, covariates: np.ndarray,
                kpi: np.ndarray, samples: int, level: float, block_length: int, rng: np.random.Generator,
                knot_weeks: int | None = TIME_KNOT_WEEKS) -> list[FeedbackEstimate]:
    """Every feedback channel's ROI from one estimating equation over all media and the covariates
    (no lagged KPI), with block-bootstrap intervals that refit the planning rules.

    Parameters
    ----------
    channels
        The channels planned from the KPI's past.
    other_media
        (n, m) the transformed media of the other channels (they instrument themselves).
    covariates
        (n, p) observed controls that are not results of spend: seasonality, trend, price. They
        enter both the planning rules and the KPI's equation, with `time_basis`.
    kpi
        The KPI per week.
    samples, level, block_length
        The bootstrap's resamples, interval level and block length (weeks).
    knot_weeks
        The spacing of `time_basis`'s knots; None leaves time out (an ablation of the benchmark).
    """
    kpi = np.asarray(kpi, dtype=float)
    n, k = kpi.size, len(channels)
    if knot_weeks is not None:
        covariates = np.column_stack([covariates, time_basis(n, knot_weeks)])
    exogenous = np.column_stack([np.ones(n), other_media, covariates])
    design = np.column_stack([*(c.media for c in channels), exogenous])
    inputs = [planning_inputs(c, kpi, covariates) for c in channels]
    usable = usable_weeks(channels, inputs)
    nan = float("nan")
    if usable.size < design.shape[1] + 10:
        return [FeedbackEstimate(c.channel, FeedbackStatus.TOO_FEW_WEEKS, nan, nan, nan, nan, float(c.spend.sum()),
                                 nan, nan, nan, nan, int(usable.size), nan, nan) for c in channels]
    every = np.arange(n)
    z, r2 = _instruments(channels, inputs, every)
    beta = _solve(design, np.column_stack([z, exogenous]), kpi, usable)
    others = [np.delete(z[usable], j, axis=1) for j in range(k)]
    strength = [first_stage_f(c.media[usable], z[usable, j], np.column_stack([others[j], exogenous[usable]]))
                for j, c in enumerate(channels)]
    draws = np.full((samples, k), np.nan)
    resamples = NON_OVERLAPPING(n, max(1, block_length), samples, rng).rows
    usable_mask = np.zeros(n, dtype=bool)
    usable_mask[usable] = True
    for b in range(samples):
        rows = resamples[b]
        zb, _ = _instruments(channels, inputs, rows)
        kept = rows[usable_mask[rows]]
        if kept.size > design.shape[1] + 5:
            draws[b] = _solve(design, np.column_stack([zb, exogenous]), kpi, kept)[:k]
    out = []
    for j, ch in enumerate(channels):
        media_sum, spend = float(ch.media.sum()), float(ch.spend.sum())
        scale = media_sum / spend if spend else nan
        step = (float((ch.media_step - ch.media).sum()) / (MARGINAL_STEP * spend)
                if ch.media_step is not None and spend else nan)
        good = draws[:, j][np.isfinite(draws[:, j])]
        weak = not strength[j] >= MIN_FIRST_STAGE_F
        enough = good.size >= MIN_RESAMPLES and not weak
        low, high = interval(beta[j], good, level, IntervalKind.PERCENTILE) if enough else (nan, nan)
        status = FeedbackStatus.WEAK_PLANNING_RESIDUAL if weak else FeedbackStatus.ESTIMATED
        coefficient = nan if weak else float(beta[j])
        out.append(FeedbackEstimate(
            channel=ch.channel, status=status, roi=coefficient * scale, roi_ci_low=low * scale,
            roi_ci_high=high * scale, incremental_kpi=coefficient * media_sum, spend=spend,
            p_value=_bootstrap_p_value(good) if enough else nan, mroi=coefficient * step,
            mroi_ci_low=min(low * step, high * step), mroi_ci_high=max(low * step, high * step),
            weeks=int(usable.size), first_stage_f=float(strength[j]), planning_r2=r2[ch.channel]))
    return out


FEEDBACK_COLUMNS = ["channel", "effect", "estimator", "status", "roi", "roi_ci_low", "roi_ci_high", "mroi",
                    "mroi_ci_low", "mroi_ci_high", "roi_support", "extrapolated_share", "incremental_kpi", "spend",
                    "p_value", "weeks", "first_stage_f", "planning_r2", "planned_from", "held_fixed", "reason",
                    "assumptions"]


def planned_channels(g: nx.DiGraph, channels: Sequence[str], outcome: str,
                     lagged: Mapping[str, LaggedKpi]) -> dict[str, tuple[LaggedKpi, ...]]:
    """Channel → the lagged-KPI nodes its spend is planned from (those with a path to it in the DAG)."""
    out = {}
    for channel in channels:
        if feedback_reason(g, channel, outcome, lagged) is not None:
            out[channel] = tuple(lagged[n] for n in lagged if nx.has_path(g, n, channel))
    return out


def feedback_table(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig, g_expanded: nx.DiGraph,
                   transforms: Mapping[str, ChannelTransform], rng: np.random.Generator) -> pd.DataFrame:
    """One row per channel whose budget follows sales: its g-estimate with the assumptions, or the
    reason it has none. The other channels and the covariates (every control that is neither the
    KPI's past nor a result of spend) enter the estimating equation; the lagged-KPI columns never do."""
    kpi = config.kpi
    columns = node_columns(raw, config)
    control_columns = [c for node in config.controls for c in columns[node]]
    lagged = lagged_kpi_nodes(features, kpi, [c for c in control_columns if c in g_expanded])
    planned = planned_channels(g_expanded, config.channel_names, kpi, lagged)
    if not planned:
        return pd.DataFrame(columns=FEEDBACK_COLUMNS)
    unconfigured = [c for c in planned if transforms[c].source is not ParameterSource.CONFIG]
    if unconfigured:
        return _not_configured(planned, raw, config, unconfigured)
    moved_by_spend = set().union(*(nx.descendants(g_expanded, c) for c in config.channel_names if c in g_expanded))
    covariates = features[[c for c in control_columns if c not in lagged and c not in moved_by_spend]]
    others = [c for c in config.channel_names if c not in planned]
    spends = {c: raw[config.channel(c).spend_column].to_numpy(dtype=float) for c in planned}
    feedback = [FeedbackChannel(c, spends[c], features[c].to_numpy(dtype=float), unit_impulse(transforms[c]), planned[c],
                                transforms[c].apply(spends[c] * (1 + MARGINAL_STEP), transforms[c].reference(spends[c])))
                for c in planned]
    supports = media_support(features, spends, {c: () for c in planned}, OverlapThresholds.from_checks(config.checks))
    est = config.estimation
    y = features[kpi].to_numpy(dtype=float)
    exogenous = np.column_stack([np.ones(len(y)), covariates.to_numpy(dtype=float)])
    residual = y - exogenous @ np.linalg.lstsq(exogenous, y, rcond=None)[0]
    block = est.block_length or max(2, round(politis_white_block_length(residual)))
    estimates = g_estimates(feedback, features[others].to_numpy(dtype=float), covariates.to_numpy(dtype=float),
                            y, est.bootstrap_samples, est.ci_level, block, rng)
    rows = []
    for e, ch in zip(estimates, feedback):
        held = [c for c in planned if c != e.channel and nx.has_path(g_expanded, e.channel, c)]
        rows.append({"channel": e.channel, "effect": (EffectType.DIRECT if held else EffectType.TOTAL).value,
                     "estimator": Estimator.G_ESTIMATION.value, "status": e.status.value, "roi": e.roi,
                     "roi_ci_low": e.roi_ci_low, "roi_ci_high": e.roi_ci_high, "mroi": e.mroi,
                     "mroi_ci_low": e.mroi_ci_low, "mroi_ci_high": e.mroi_ci_high,
                     "roi_support": supports[e.channel].roi_support.value,
                     "extrapolated_share": supports[e.channel].extrapolated_share, "incremental_kpi": e.incremental_kpi,
                     "spend": e.spend, "p_value": e.p_value, "weeks": e.weeks, "first_stage_f": e.first_stage_f,
                     "planning_r2": e.planning_r2, "planned_from": "|".join(d.node for d in ch.drivers),
                     "held_fixed": "|".join(held), "reason": _reason(e), "assumptions": ASSUMPTIONS})
    return pd.DataFrame(rows, columns=FEEDBACK_COLUMNS)


def _reason(e: FeedbackEstimate) -> str:
    if e.status is FeedbackStatus.WEAK_PLANNING_RESIDUAL:
        return (f"spend barely varies around the plan: the planning residual's first-stage F is "
                f"{e.first_stage_f:.1f} (< {MIN_FIRST_STAGE_F:g}), a weak instrument.")
    if e.status is FeedbackStatus.TOO_FEW_WEEKS:
        return f"only {e.weeks} weeks have the KPI history the planning rule reads."
    return ""


def _not_configured(planned: Mapping[str, tuple[LaggedKpi, ...]], raw: pd.DataFrame, config: PipelineConfig,
                    unconfigured: Sequence[str]) -> pd.DataFrame:
    """Every planned channel without numbers: they are solved jointly, so one channel's transform left
    to the data leaves them all without a valid equation."""
    names = ", ".join(unconfigured)
    reason = (f"the transform of {names} was selected from the data by a regression that the feedback confounds; "
              f"configure the adstock and saturation of every channel planned from the KPI's past (from a lift "
              f"test or an earlier model) to get their g-estimates.")
    rows = [{"channel": c, "effect": EffectType.TOTAL.value, "estimator": Estimator.G_ESTIMATION.value,
             "status": FeedbackStatus.TRANSFORM_NOT_CONFIGURED.value, "spend": float(raw[config.channel(c).spend_column].sum()),
             "planned_from": "|".join(d.node for d in drivers), "held_fixed": "", "reason": reason,
             "assumptions": ASSUMPTIONS}
            for c, drivers in planned.items()]
    return pd.DataFrame(rows, columns=FEEDBACK_COLUMNS)


def unit_impulse(transform: ChannelTransform) -> np.ndarray:
    """The adstock of a unit spend in week 0, over `4 · MAX_WINDOW` weeks."""
    unit = np.zeros(MAX_WINDOW * 4)
    unit[0] = 1.0
    return transform.adstocked(unit)
