"""Effects by period, by campaign and by condition, read from the same bootstrap draws as the
whole-history estimates.

- By period (calendar year, quarter): over the weeks of the period, Σ (KPI as run − KPI with the
  channel off every week). A channel's effect in week t is its coefficient times its transformed
  media x_t (the carryover lands in x_t, so it counts in the week it lands), or for a g-computed
  total its weekly g-computed effect; the periods therefore add up to the whole-history incremental
  KPI exactly, for the point estimate and for every draw (hence for the smoothed estimate, a mean).
- By campaign {name, channel, start, end}: KPI as run − KPI with the channel's spend removed in the
  window only, summed over every week (the carryover after the window is the campaign's). The
  media difference goes through each resample's selected transform; a g-computed total lets the
  mediator channels respond, refitted on the resample's rows.
- By condition (effect modification): the channel's linear total-effect regression with its media
  split by level of a pre-treatment column (terciles, or the user's cut points) plus the level
  indicators, under the same adjustment set; per level the incremental KPI within its weeks, and a
  Wald test (bootstrap covariance) that the effect per unit of media is the same at every level.

Intervals and p-values come from `summarise_draws` exactly as the whole-history ones: smoothed over
the transform selection where the channel's estimate rests on one, percentile otherwise, and never
narrower than the HAC error (scaled to the period's share of the media).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import CampaignConfig, EffectModifierConfig, EffectType
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.effects.bootstrap import (
    BootstrapDraws,
    BootstrapSettings,
    DrawSummary,
    EffectProblem,
    estimate_all,
    gcomputation_contrasts,
    hac_incremental_se,
    rests_on_selection,
    summarise_draws,
    wald_pvalue,
)
from cmmm_pipeline.effects.estimation import (
    EffectSpec,
    GComputationSpec,
    MediatorEquation,
    batched_ols,
    counterfactual_media,
    hac_pvalue,
)


class PeriodType(Enum):
    """What a row of `effects_by_period` is summed over."""

    YEAR = "year"
    QUARTER = "quarter"
    CAMPAIGN = "campaign"
    CONDITION = "condition"


PERIOD_COLUMNS = ["channel", "effect", "period_type", "period", "start", "end", "weeks", "incremental_kpi",
                  "incremental_ci_low", "incremental_ci_high", "p_value", "spend", "roi", "roi_ci_low",
                  "roi_ci_high", "interval_method", "roi_support", "equal_effect_p_value", "note"]


@dataclass(frozen=True)
class Period:
    """A set of weeks with a label (`2024`, `2024-Q4`)."""

    period_type: PeriodType
    label: str
    mask: np.ndarray
    """(weeks,) bool"""


def calendar_periods(weeks: pd.Series) -> list[Period]:
    """Every calendar year, then every quarter, the data's weeks fall in (a week by its date)."""
    dates = pd.to_datetime(weeks).reset_index(drop=True)
    out = [Period(PeriodType.YEAR, str(y), (dates.dt.year == y).to_numpy()) for y in sorted(dates.dt.year.unique())]
    quarters = sorted(set(zip(dates.dt.year, dates.dt.quarter)))
    out += [Period(PeriodType.QUARTER, f"{y}-Q{q}", ((dates.dt.year == y) & (dates.dt.quarter == q)).to_numpy())
            for y, q in quarters]
    return out


def campaign_mask(dates: np.ndarray, campaign: CampaignConfig) -> np.ndarray:
    """The campaign's weeks (`dates`: `week_dates`): week dates in [start, end], both inclusive."""
    return (dates >= np.datetime64(campaign.start, "D")) & (dates <= np.datetime64(campaign.end, "D"))


@dataclass(frozen=True)
class WeeklyEffect:
    """One (channel, effect)'s effect in every week: on the data and in every resample."""

    channel: str
    effect: EffectType
    point: np.ndarray
    """(weeks,) the point estimate's weekly effect (sums to the published point)."""
    draws: np.ndarray
    """(B, weeks)"""
    media: np.ndarray
    """(weeks,) the applied transformed media: the HAC floor is scaled by its share in a period."""
    hac_std_error: float
    """HAC error of the whole-history incremental KPI (NaN for the indirect effect, as there)."""
    smooth: bool


def weekly_effects(problem: EffectProblem, draws: BootstrapDraws, point: pd.DataFrame, features: pd.DataFrame,
                   settings: BootstrapSettings) -> list[WeeklyEffect]:
    """The weekly effect of every estimated (channel, effect) row of the point table: coefficient ×
    transformed media (linear), the g-computed weekly total, and indirect = total − direct."""
    hac = {(s.channel, s.effect): hac_incremental_se(problem, s)[1] for s in problem.specs}
    identity = np.arange(problem.n)[None, :]
    gweekly = estimate_all(problem, identity, problem.selected[None, :]).weekly if draws.weekly else {}
    out: dict[tuple[str, EffectType], WeeklyEffect] = {}
    estimated = point[np.isfinite(point["ate"].to_numpy(dtype=float))]
    for r in estimated.itertuples(index=False):
        channel, effect = r.channel, EffectType(r.effect)
        if effect is EffectType.INDIRECT:
            continue
        k = problem.inputs.channels.index(channel)
        media = features[channel].to_numpy(dtype=float)
        if effect is EffectType.TOTAL and channel in draws.weekly:
            point_weekly, sample = gweekly[channel][0], draws.weekly[channel]
        else:
            j = draws.column(channel, effect)
            point_weekly = float(r.ate) * media
            sample = draws.ate[:, j][:, None] * problem.inputs.series[k][:, draws.selected[:, k]].T
        smooth = settings.smooths and rests_on_selection(problem, channel)
        out[(channel, effect)] = WeeklyEffect(channel, effect, point_weekly, sample, media,
                                              hac.get((channel, effect), float("nan")), smooth)
    for (channel, effect), total in list(out.items()):
        direct = out.get((channel, EffectType.DIRECT))
        if effect is EffectType.TOTAL and direct is not None:
            out[(channel, EffectType.INDIRECT)] = WeeklyEffect(
                channel, EffectType.INDIRECT, total.point - direct.point, total.draws - direct.draws, total.media,
                float("nan"), total.smooth)
    order = {e: i for i, e in enumerate(EffectType)}
    return sorted(out.values(), key=lambda w: (w.channel, order[w.effect]))


def degrees_of_freedom(problem: EffectProblem) -> int:
    """As the whole-history intervals: weeks − 1 − the largest regression's regressors."""
    return problem.n - 1 - max(len(s.adjustment) + 1 for s in problem.specs)


def week_dates(weeks: pd.Series) -> np.ndarray:
    """The weeks as numpy dates, converted once per table (a row then costs microseconds)."""
    return np.asarray(weeks.to_numpy(), dtype="datetime64[D]")


def _row(channel: str, effect: EffectType, period_type: PeriodType, label: str, all_dates: np.ndarray,
         mask: np.ndarray, summary: DrawSummary | None, point: float, spend: float, df: int,
         roi_support: str = "", equal_p: float = float("nan"), note: str = "") -> dict[str, object]:
    """One row of the table; `all_dates` is `week_dates` of every week, `mask` the row's weeks."""
    nan = float("nan")
    dates = all_dates[mask]
    estimate, low, high, p = point, nan, nan, nan
    method = ""
    if summary is not None:
        estimate, low, high = summary.estimate, summary.low, summary.high
        p = wald_pvalue(summary.estimate, summary.std_error, summary.df or df)
        method = summary.method.value
    per = (lambda v: v / spend) if spend > 0 else (lambda v: nan)
    return {"channel": channel, "effect": effect.value, "period_type": period_type.value, "period": label,
            "start": str(dates.min()) if len(dates) else "", "end": str(dates.max()) if len(dates) else "",
            "weeks": int(mask.sum()),
            "incremental_kpi": estimate, "incremental_ci_low": low, "incremental_ci_high": high, "p_value": p,
            "spend": spend, "roi": per(estimate), "roi_ci_low": per(low), "roi_ci_high": per(high),
            "interval_method": method, "roi_support": roi_support, "equal_effect_p_value": equal_p, "note": note}


def period_rows(weekly: Sequence[WeeklyEffect], periods: Sequence[Period], draws: BootstrapDraws,
                dates: np.ndarray, spend: Mapping[str, np.ndarray], settings: BootstrapSettings, df: int,
                supports: Mapping[tuple[str, str], str]) -> list[dict[str, object]]:
    """One row per (channel, effect, period): the weekly effects summed over the period's weeks."""
    rows = []
    for w in weekly:
        whole = float(w.media.sum())
        for period in periods:
            point = float(w.point[period.mask].sum())
            floor = w.hac_std_error * abs(float(w.media[period.mask].sum()) / whole) if whole else float("nan")
            summary = summarise_draws(point, w.draws[:, period.mask].sum(axis=1), draws, w.smooth, settings.level,
                                      settings.interval, floor, df)
            rows.append(_row(w.channel, w.effect, period.period_type, period.label, dates, period.mask, summary, point,
                             float(spend[w.channel][period.mask].sum()), df,
                             supports.get((w.channel, w.effect.value), "")))
    return rows


# ---------------------------------------------------------------------------------------------
# Campaigns


def _window_media_change(problem: EffectProblem, channel: str, window: np.ndarray) -> np.ndarray:
    """(weeks, grid) x_t(spend) − x_t(spend with the window's weeks zeroed), per candidate transform."""
    k = problem.inputs.channels.index(channel)
    spend = problem.spend_series[channel]
    shift = (spend * window)[None, :]
    return np.column_stack([problem.inputs.series[k][:, g] - counterfactual_media(spend, c, shift)[0]
                            for g, c in enumerate(problem.inputs.candidates[k])])


def _window_carryover(problem: EffectProblem, channel: str, window: np.ndarray) -> np.ndarray:
    """(weeks, grid) the carried-over spend of the window's weeks over the mean (the CARRYOVER
    mediator equation's regressor change when the window's spend is removed)."""
    k = problem.inputs.channels.index(channel)
    spend = problem.spend_series[channel]
    return np.column_stack([c.adstocked(spend * window) / c.reference(spend)
                            for c in problem.inputs.candidates[k]])


def _at(table: np.ndarray, problem: EffectProblem, channel: str, selected: np.ndarray) -> np.ndarray:
    k = problem.inputs.channels.index(channel)
    return table[:, selected[:, k]].T


def gcomputed_window(problem: EffectProblem, spec: GComputationSpec, rows: np.ndarray, selected: np.ndarray,
                     window: np.ndarray) -> np.ndarray:
    """(B, weeks) the g-computed total effect of removing the treatment's spend in `window` only:
    the outcome and mediator-spend regressions on each row set (as `gcomputation_on_rows`), the
    mediator's spend responding to the changed treatment through its own transform."""
    y = problem.inputs.y[rows]
    media_change = _at(_window_media_change(problem, spec.channel, window), problem, spec.channel, selected)
    carry_change = _at(_window_carryover(problem, spec.channel, window), problem, spec.channel, selected)
    deltas = {MediatorEquation.SATURATED: (media_change,), MediatorEquation.CARRYOVER: (carry_change,)}
    return gcomputation_contrasts(problem, spec, rows, selected, y, (media_change,), deltas).weekly[0]


def campaign_rows(problem: EffectProblem, draws: BootstrapDraws, point: pd.DataFrame, features: pd.DataFrame,
                  campaigns: Sequence[CampaignConfig], dates: np.ndarray, settings: BootstrapSettings, df: int,
                  supports: Mapping[tuple[str, str], str]) -> list[dict[str, object]]:
    """Per campaign and estimated effect of its channel: Σ over every week of the KPI as run minus
    the KPI with the channel's spend removed in the window; ROI over the campaign's spend."""
    if draws.rows is None:
        raise ValueError("campaign effects need the bootstrap's rows (BootstrapDraws.rows)")
    rows = []
    estimated = point[np.isfinite(point["ate"].to_numpy(dtype=float))]
    identity = np.arange(problem.n)[None, :]
    for c in campaigns:
        window = campaign_mask(dates, c).astype(float)
        k = problem.inputs.channels.index(c.channel) if c.channel in problem.inputs.channels else None
        mine = estimated[estimated["channel"] == c.channel]
        if k is None or mine.empty:
            spend = float((problem.spend_series.get(c.channel, np.zeros(problem.n)) * window).sum())
            rows.append(_row(c.channel, EffectType.TOTAL, PeriodType.CAMPAIGN, c.name, dates, window.astype(bool), None,
                             float("nan"), spend, df, note=f"not estimated: {c.channel}'s effect is withheld or not "
                                                           "identified (see estimates.csv)"))
            continue
        change = _window_media_change(problem, c.channel, window)
        applied = int(problem.selected[k])
        hac = {(s.channel, s.effect): hac_incremental_se(problem, s)[1]
               for s in problem.specs if s.channel == c.channel}
        whole = float(features[c.channel].sum())
        results: dict[EffectType, tuple[float, np.ndarray, float]] = {}
        for r in mine.itertuples(index=False):
            effect = EffectType(r.effect)
            if effect is EffectType.INDIRECT:
                continue
            gspec = problem.gcomputation(c.channel) if effect is EffectType.TOTAL else None
            if gspec is not None:
                pt = float(gcomputed_window(problem, gspec, identity, problem.selected[None, :], window)[0].sum())
                sample = gcomputed_window(problem, gspec, draws.rows, draws.selected, window).sum(axis=1)
            else:
                j = draws.column(c.channel, effect)
                pt = float(r.ate) * float(change[:, applied].sum())
                sample = draws.ate[:, j] * change.sum(axis=0)[draws.selected[:, k]]
            floor = hac.get((c.channel, effect), float("nan")) * abs(float(change[:, applied].sum()) / whole) \
                if whole else float("nan")
            results[effect] = (pt, sample, floor)
        if EffectType.DIRECT in results and EffectType.TOTAL in results:
            (pt_t, s_t, _), (pt_d, s_d, _) = results[EffectType.TOTAL], results[EffectType.DIRECT]
            results[EffectType.INDIRECT] = (pt_t - pt_d, s_t - s_d, float("nan"))
        smooth = settings.smooths and rests_on_selection(problem, c.channel)
        spend = float((problem.spend_series[c.channel] * window).sum())
        for effect in EffectType:
            if effect not in results:
                continue
            pt, sample, floor = results[effect]
            summary = summarise_draws(pt, sample, draws, smooth, settings.level, settings.interval, floor, df)
            rows.append(_row(c.channel, effect, PeriodType.CAMPAIGN, c.name, dates, window.astype(bool), summary, pt,
                             spend, df, supports.get((c.channel, effect.value), ""),
                             note="carryover after the window included"))
    return rows


# ---------------------------------------------------------------------------------------------
# Conditions (effect modification)


@dataclass(frozen=True)
class Levels:
    """The levels of a modifier: labels and week masks."""

    labels: tuple[str, ...]
    masks: tuple[np.ndarray, ...]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def modifier_levels(values: np.ndarray, name: str, cut_points: Sequence[float] = ()) -> Levels:
    """Terciles of the modifier over the modelled weeks, or the user's cut points; empty levels are
    dropped (a cut point beyond the data's range)."""
    cuts = list(cut_points) or [float(q) for q in np.quantile(values, [1.0 / 3.0, 2.0 / 3.0])]
    edges = [-np.inf, *cuts, np.inf]
    labels, masks = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (values > lo) & (values <= hi)
        if not mask.any():
            continue
        if np.isinf(lo):
            label = f"{name}<={_fmt(hi)}"
        elif np.isinf(hi):
            label = f"{name}>{_fmt(lo)}"
        else:
            label = f"{_fmt(lo)}<{name}<={_fmt(hi)}"
        labels.append(label)
        masks.append(mask)
    return Levels(tuple(labels), tuple(masks))


def _modification_design(problem: EffectProblem, spec: EffectSpec, levels: Levels, rows: np.ndarray,
                         selected: np.ndarray) -> np.ndarray:
    """(B, n, p) [1, x·1{L1}, ..., x·1{LK}, 1{L2}, ..., 1{LK}, adjustment...] on the rows."""
    base = problem.design(spec, rows, selected)
    x = base[:, :, 1]
    indicators = [m.astype(float)[rows] for m in levels.masks]
    split = [x * ind for ind in indicators]
    return np.concatenate([base[:, :, :1], np.stack(split + indicators[1:], axis=2), base[:, :, 2:]], axis=2)


def equal_effect_test(point: np.ndarray, sample: np.ndarray) -> float:
    """p-value of 'the effect per unit of media is the same at every level': Wald test of the
    differences to the first level, with the bootstrap covariance of the coefficients (χ², K−1 df)."""
    from scipy import stats
    finite = np.isfinite(sample).all(axis=1)
    if point.size < 2 or finite.sum() < point.size + 2:
        return float("nan")
    diff = point[1:] - point[0]
    draws = sample[finite][:, 1:] - sample[finite][:, :1]
    cov = np.atleast_2d(np.cov(draws, rowvar=False))
    try:
        stat = float(diff @ np.linalg.solve(cov, diff))
    except np.linalg.LinAlgError:
        return float("nan")
    return float(stats.chi2.sf(stat, diff.size))


def condition_rows(problem: EffectProblem, draws: BootstrapDraws, raw: pd.DataFrame,
                   modifiers: Sequence[EffectModifierConfig], dates: np.ndarray, settings: BootstrapSettings,
                   df: int, supports: Mapping[tuple[str, str], str]) -> list[dict[str, object]]:
    """Per modifier, one row per level: the channel's total effect within the level's weeks, from its
    linear total-effect regression with the media split by level under the same adjustment set."""
    if draws.rows is None:
        raise ValueError("effect modification needs the bootstrap's rows (BootstrapDraws.rows)")
    out = []
    identity = np.arange(problem.n)[None, :]
    for m in modifiers:
        spec = next((s for s in problem.specs if s.channel == m.channel and s.effect is EffectType.TOTAL), None)
        if spec is None or m.modifier not in raw.columns:
            out.append(_row(m.channel, EffectType.TOTAL, PeriodType.CONDITION, m.modifier, dates,
                            np.ones(len(dates), dtype=bool), None, float("nan"), float("nan"), df,
                            note=f"not estimated: {m.channel}'s total effect is withheld or not identified "
                                 "(see estimates.csv)"))
            continue
        levels = modifier_levels(raw[m.modifier].to_numpy(dtype=float), m.modifier, m.cut_points)
        if len(levels.labels) < 2:
            raise EstimationError("effect-modifier-levels", f"effect_modifiers.{m.channel}",
                                  f"'{m.modifier}' gives fewer than two levels with weeks in them.",
                                  "choose cut points inside the column's range, or another modifier.")
        k = problem.inputs.channels.index(m.channel)
        kk = len(levels.labels)
        x_point = _modification_design(problem, spec, levels, identity, problem.selected[None, :])
        beta_point = batched_ols(x_point, problem.inputs.y[None, :])[0, 1:1 + kk]
        beta_draws = batched_ols(_modification_design(problem, spec, levels, draws.rows, draws.selected),
                                 problem.inputs.y[draws.rows])[:, 1:1 + kk]
        p_equal = equal_effect_test(beta_point, beta_draws)
        smooth = settings.smooths and rests_on_selection(problem, m.channel)
        series = problem.inputs.series[k]
        note = "linear total-effect regression split by level" + (
            " (the published total is g-computed)" if problem.gcomputation(m.channel) else "")
        for i, (label, mask) in enumerate(zip(levels.labels, levels.masks)):
            media_sum = float(series[mask, problem.selected[k]].sum())
            pt = float(beta_point[i]) * media_sum
            sample = beta_draws[:, i] * series[mask][:, draws.selected[:, k]].sum(axis=0)
            _, se = hac_pvalue(x_point[0], problem.inputs.y, column=1 + i)
            summary = summarise_draws(pt, sample, draws, smooth, settings.level, settings.interval, se * media_sum, df)
            spend = float(problem.spend_series[m.channel][mask].sum())
            out.append(_row(m.channel, EffectType.TOTAL, PeriodType.CONDITION, label, dates, mask, summary, pt, spend,
                            df, supports.get((m.channel, EffectType.TOTAL.value), ""), p_equal, note))
    return out


def effects_by_period(problem: EffectProblem, draws: BootstrapDraws, point: pd.DataFrame, features: pd.DataFrame,
                      raw: pd.DataFrame, settings: BootstrapSettings, campaigns: Sequence[CampaignConfig] = (),
                      modifiers: Sequence[EffectModifierConfig] = ()) -> pd.DataFrame:
    """The `effects_by_period` table: years and quarters for every estimated (channel, effect), then
    the campaigns, then the conditions (see the module docstring for each estimand).

    Parameters
    ----------
    problem, draws
        The resampling problem and the bootstrap draws behind the whole-history intervals.
    point
        The published point estimates (`ate_estimates`): ATEs, estimated rows, ROI support.
    features
        The model table (transformed media at the applied transforms).
    raw
        The weekly table as ingested (`week`, spend, modifier columns).
    settings
        Interval level and kind, smoothing.
    """
    weeks = raw["week"].reset_index(drop=True)
    dates = week_dates(weeks)
    df = degrees_of_freedom(problem)
    supports = {(r.channel, r.effect): (r.roi_support if isinstance(r.roi_support, str) else "")
                for r in point.itertuples(index=False)} if "roi_support" in point.columns else {}
    spend = problem.spend_series
    rows = period_rows(weekly_effects(problem, draws, point, features, settings), calendar_periods(weeks), draws,
                       dates, spend, settings, df, supports)
    rows += campaign_rows(problem, draws, point, features, campaigns, dates, settings, df, supports)
    rows += condition_rows(problem, draws, raw, modifiers, dates, settings, df, supports)
    return pd.DataFrame(rows, columns=PERIOD_COLUMNS)
