"""Evaluate or optimise a plan on a fitted model, inside each channel's support, and lay the result
out as `plan.csv`: per channel and in total, the plan's weekly spend and incremental KPI with its
interval, whether it lies within support, the current allocation at the same budget beside it, and
the gain over it with its interval.

The current allocation is the channels' shares of spend over the last N observed weeks (N the
plan's horizon; the whole history if those weeks spent nothing), scaled to the plan's weekly budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cmmm_pipeline.core.errors import Problems
from cmmm_pipeline.effects.bootstrap import IntervalKind, summarise_draws
from cmmm_pipeline.plan.forecast import (
    ChannelEffect,
    KpiForecast,
    baseline,
    channel_effect,
    draw_interval,
    future_controls,
    kpi_forecast,
)
from cmmm_pipeline.plan.model import ChannelCurve, FittedModel, SupportRange
from cmmm_pipeline.plan.optimise import Allocation, allocate
from cmmm_pipeline.plan.spec import PlanError, PlanMode, PlanSpec, Risk, raise_all

TOTAL = "total"
RISK_QUANTILE = 0.1
PARETO_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Weights of the risk objective along the two-objective front: (1 − w)·mean gain + w·p10 gain."""
OPTIMISM_DRAWS = 100
"""How many bootstrap draws (evenly spaced) estimate the optimiser's optimism."""
PLAN_COLUMNS = ["channel", "effect", "weekly_spend", "incremental_kpi", "incremental_ci_low", "incremental_ci_high",
                "within_support", "supported_low", "supported_high", "current_weekly_spend", "current_incremental_kpi",
                "current_ci_low", "current_ci_high", "gain", "gain_ci_low", "gain_ci_high", "gain_p10",
                "gain_optimism", "kpi_forecast", "kpi_ci_low", "kpi_ci_high"]


@dataclass(frozen=True)
class PlanResult:
    mode: PlanMode
    table: pd.DataFrame
    """plan.csv: one row per channel and a `total` row."""
    forecast: pd.DataFrame
    """The plan's KPI per week with its prediction interval and each channel's contribution."""
    pareto: pd.DataFrame | None
    """risk: p10 only: the mean-versus-p10 front of the gain, one row per weight."""
    notes: tuple[str, ...]


def current_allocation(model: FittedModel, channels: tuple[str, ...], weeks: int, budget: float) -> np.ndarray:
    """(channels,) the recent spend mix, scaled to `budget` per week."""
    recent = np.array([model.spend(c)[-weeks:].sum() for c in channels])
    if recent.sum() <= 0:
        recent = np.array([model.spend(c).sum() for c in channels])
    if recent.sum() <= 0:
        return np.full(len(channels), budget / len(channels))
    return budget * recent / recent.sum()


def outside_support(support: SupportRange, spend: np.ndarray, source: object, key: str) -> PlanError | None:
    bad = spend[(spend < support.low - 1e-9) | (spend > support.high + 1e-9)]
    if bad.size == 0:
        return None
    return PlanError("plan-outside-support", f"{source} key '{key}'",
                     f"weekly spend {bad[0]:,.0f} lies outside what {support.channel}'s comparable weeks show: "
                     f"{support.text()} (observed {support.observed_low:,.0f}–{support.observed_high:,.0f} plus a "
                     f"{support.margin:.0%} margin); its response curve would be read past its evidence.",
                     f"keep {support.channel} within {support.text()}, or set allow_extrapolation: true to compute "
                     "it marked outside support.")


def _bounds(model: FittedModel, spec: PlanSpec, channels: tuple[str, ...],
            budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Weekly bounds: the user's ∩ the support (the user's alone when extrapolation is allowed)."""
    p = Problems()
    lower, upper = np.zeros(len(channels)), np.full(len(channels), budget)
    for i, c in enumerate(channels):
        low, high = spec.bounds.get(c, (0.0, budget))
        if not spec.allow_extrapolation:
            support = model.supports[c]
            if low > support.high or high < support.low:
                p.add(PlanError("plan-bounds-outside-support", f"{spec.source} key 'bounds.{c}'",
                                f"[{low:,.0f}, {high:,.0f}] does not meet {c}'s support, {support.text()}.",
                                f"bound {c} within {support.text()}, or set allow_extrapolation: true."))
                continue
            low, high = max(low, support.low), min(high, support.high)
        lower[i], upper[i] = low, high
    raise_all(p)
    where = f"{spec.source} key 'total_budget'"
    if lower.sum() > budget + 1e-9:
        raise PlanError("plan-budget-below-bounds", where,
                        f"{budget * spec.weeks:,.2f} is below the {lower.sum() * spec.weeks:,.2f} the channels' lower "
                        f"bounds{'' if spec.allow_extrapolation else ' and supports'} need over {spec.weeks} weeks.",
                        "raise the budget or lower the bounds.")
    if upper.sum() < budget - 1e-9:
        ranges = ", ".join(f"{c} {model.supports[c].text()}" for c in channels)
        raise PlanError("plan-budget-above-support" if not spec.allow_extrapolation else "plan-budget-above-bounds",
                        where, f"{budget * spec.weeks:,.2f} is more than the channels can spend over {spec.weeks} "
                        f"weeks within their {'bounds' if spec.allow_extrapolation else 'support and bounds'} "
                        f"({upper.sum() * spec.weeks:,.2f}; supports: {ranges}).",
                        "lower the budget, widen the bounds, or set allow_extrapolation: true to read the curves "
                        "past the data.")
    return lower, upper


class _Objectives:
    """The draws of the plan's total incremental KPI for a constant weekly spend, and the objectives."""

    def __init__(self, curves: Mapping[str, ChannelCurve], current: np.ndarray) -> None:
        self.curves = list(curves.values())
        self.current = self.total(current)

    def total(self, spend: np.ndarray) -> np.ndarray:
        return sum(c.constant_effect(np.array([s]))[0][:, 0] for c, s in zip(self.curves, spend))

    def mean(self, spend: np.ndarray) -> float:
        return float(np.mean(self.total(spend)))

    def weighted(self, weight: float) -> Callable[[np.ndarray], float]:
        def value(spend: np.ndarray) -> float:
            gain = self.total(spend) - self.current
            return float((1.0 - weight) * gain.mean() + weight * np.quantile(gain, RISK_QUANTILE))
        return value


def run_plan(model: FittedModel, spec: PlanSpec) -> PlanResult:
    """Evaluate the plan's spend, or optimise its budget; refuse spend outside support unless allowed."""
    notes: list[str] = []
    channels = model.channels
    named = set(spec.spend) | set(spec.bounds)
    for c in sorted(named & set(model.withheld)):
        notes.append(f"{c} has no estimate ({model.withheld[c]}); the plan leaves it out and its effect stays in "
                     "the baseline.")
    curves = {c: model.curve(c, spec.weeks) for c in channels}
    budget = spec.weekly_budget if spec.mode is PlanMode.OPTIMISE else float(
        sum(np.mean(spec.spend[c]) for c in channels))
    current = current_allocation(model, channels, spec.weeks, budget)
    objectives = _Objectives(curves, current)
    pareto = None
    optimism = 0.0
    if spec.mode is PlanMode.EVALUATE:
        p = Problems()
        if not spec.allow_extrapolation:
            for c in channels:
                error = outside_support(model.supports[c], spec.spend[c], spec.source, f"spend.{c}")
                if error is not None:
                    p.add(error)
        raise_all(p)
        weekly = {c: spec.spend[c] for c in channels}
    else:
        lower, upper = _bounds(model, spec, channels, budget)
        rng = np.random.default_rng(model.config.estimation.seed)
        best = allocate(objectives.mean, lower, upper, budget, [current], rng)
        if spec.risk is Risk.P10:
            # Started from the mean-optimal plan (and the current one): the front never falls below either.
            front = [(w, allocate(objectives.weighted(w), lower, upper, budget, [best.spend, current], rng,
                                  random_starts=0)) for w in PARETO_WEIGHTS[1:]]
            pareto = _pareto(channels, [(0.0, best), *front], objectives)
            best = front[-1][1]
        optimism = selection_optimism(model, curves, current, lower, upper, budget, objectives, best.spend)
        weekly = {c: np.full(spec.weeks, s) for c, s in zip(channels, best.spend)}
    plan_effects = {c: channel_effect(model, curves[c], weekly[c]) for c in channels}
    current_effects = {c: channel_effect(model, curves[c], np.full(spec.weeks, s)) for c, s in zip(channels, current)}
    controls, projected = future_controls(model, spec.weeks, spec.controls)
    if projected:
        notes.append(f"projected over the plan's weeks (not given in the plan): {', '.join(projected)}.")
    forecast = kpi_forecast(model, plan_effects, baseline(model, curves, controls),
                            any(c.smooth for c in curves.values()))
    table = plan_table(model, spec, plan_effects, current_effects, curves, forecast, optimism)
    total = table.iloc[-1]
    if total["gain_ci_low"] <= 0 <= total["gain_ci_high"] and abs(total["current_weekly_spend"]) > 0:
        notes.append(f"the gain over the current allocation, {total['gain']:,.0f} [{total['gain_ci_low']:,.0f}, "
                     f"{total['gain_ci_high']:,.0f}], includes zero: the data do not show that this plan beats the "
                     "current mix.")
    return PlanResult(spec.mode, table, forecast.weekly, pareto, tuple(notes))


def selection_optimism(model: FittedModel, curves: Mapping[str, ChannelCurve], current: np.ndarray,
                       lower: np.ndarray, upper: np.ndarray, budget: float, objectives: _Objectives,
                       start: np.ndarray) -> float:
    """How much the optimiser's own choice inflates the predicted gain (the optimiser's curse): a
    plan chosen because its estimated gain is high is, on average, one whose gain was over-estimated.

    Bootstrap estimate (Efron's optimism): in each draw's world the draw's curves are the estimate
    and the mean over draws the truth; the plan optimal for the draw gains G_b(s_b) by the draw's
    reckoning and Ĝ(s_b) by the truth's, and the mean difference is the optimism of an estimate as
    variable as one draw. The published curves are the mean of the draws where the transforms are
    selected (smoothed over the selection), far less variable than one draw; near the optimum the
    optimism grows with the square of the estimate's error, so it is scaled by ρ², ρ the smoothed
    standard error of the gain over the draws' standard deviation (1 where nothing is smoothed)."""
    draws = len(next(iter(curves.values())).ate)
    picks = np.unique(np.linspace(0, draws - 1, min(draws, OPTIMISM_DRAWS)).round().astype(int))
    rng = np.random.default_rng(0)
    gaps = []
    for b in picks:
        single = _Objectives({c: curve.single(int(b)) for c, curve in curves.items()}, current)
        chosen = allocate(single.mean, lower, upper, budget, [start, current], rng, random_starts=0)
        estimated = chosen.value - single.mean(current)
        truth = objectives.mean(chosen.spend) - objectives.mean(current)
        gaps.append(estimated - truth)
    gain = objectives.total(start) - objectives.current
    spread = float(np.std(gain, ddof=1))
    ratio = 1.0
    if any(c.smooth for c in curves.values()) and spread > 0:
        summary = summarise_draws(float(gain.mean()), gain, model.draws, True, model.level, IntervalKind.PERCENTILE)
        ratio = min(1.0, summary.bootstrap_std_error / spread) if summary is not None else 1.0
    return float(ratio**2 * np.mean(gaps))


def _pareto(channels: tuple[str, ...], solutions: list[tuple[float, Allocation]],
            objectives: _Objectives) -> pd.DataFrame:
    rows = []
    for weight, allocation in solutions:
        gain = objectives.total(allocation.spend) - objectives.current
        rows.append({"risk_weight": weight, "mean_gain": float(gain.mean()),
                     "p10_gain": float(np.quantile(gain, RISK_QUANTILE)),
                     **{f"{c}_weekly_spend": float(s) for c, s in zip(channels, allocation.spend)}})
    return pd.DataFrame(rows)


def plan_table(model: FittedModel, spec: PlanSpec, plan: Mapping[str, ChannelEffect],
               current: Mapping[str, ChannelEffect], curves: Mapping[str, ChannelCurve],
               forecast: KpiForecast, optimism: float = 0.0) -> pd.DataFrame:
    """The rows of plan.csv. `optimism` (an optimised plan's, see `selection_optimism`) is taken off
    the total row's incremental KPI and gain with their intervals; the channels' rows are as read
    from the draws, so their gains add up to the total's before the correction."""
    nan = float("nan")
    rows = []
    for c, e in plan.items():
        support = model.supports[c]
        cur = current[c]
        gain = draw_interval(model, e.point - cur.point, e.draws - cur.draws, curves[c].smooth)
        rows.append({"channel": c, "effect": model.effect(c).value, "weekly_spend": float(np.mean(e.spend)),
                     "incremental_kpi": e.interval.estimate, "incremental_ci_low": e.interval.low,
                     "incremental_ci_high": e.interval.high,
                     "within_support": bool(all(support.contains(s) for s in e.spend)),
                     "supported_low": support.low, "supported_high": support.high,
                     "current_weekly_spend": float(np.mean(cur.spend)),
                     "current_incremental_kpi": cur.interval.estimate,
                     "current_ci_low": cur.interval.low, "current_ci_high": cur.interval.high,
                     "gain": gain.estimate, "gain_ci_low": gain.low, "gain_ci_high": gain.high,
                     "gain_p10": float(np.quantile(e.draws - cur.draws, RISK_QUANTILE)), "gain_optimism": nan,
                     "kpi_forecast": nan, "kpi_ci_low": nan, "kpi_ci_high": nan})
    smooth = any(curves[c].smooth for c in plan)
    plan_draws = sum(e.draws for e in plan.values())
    current_draws = sum(e.draws for e in current.values())
    plan_point, current_point = sum(e.point for e in plan.values()), sum(e.point for e in current.values())
    total = draw_interval(model, plan_point, plan_draws, smooth)
    cur = draw_interval(model, current_point, current_draws, smooth)
    gain = draw_interval(model, plan_point - current_point, plan_draws - current_draws, smooth)
    rows.append({"channel": TOTAL, "effect": "", "weekly_spend": float(sum(np.mean(e.spend) for e in plan.values())),
                 "incremental_kpi": total.estimate - optimism, "incremental_ci_low": total.low - optimism,
                 "incremental_ci_high": total.high - optimism,
                 "within_support": all(r["within_support"] for r in rows), "supported_low": nan, "supported_high": nan,
                 "current_weekly_spend": float(sum(np.mean(e.spend) for e in current.values())),
                 "current_incremental_kpi": cur.estimate, "current_ci_low": cur.low, "current_ci_high": cur.high,
                 "gain": gain.estimate - optimism, "gain_ci_low": gain.low - optimism,
                 "gain_ci_high": gain.high - optimism,
                 "gain_p10": float(np.quantile(plan_draws - current_draws, RISK_QUANTILE)) - optimism,
                 "gain_optimism": optimism, "kpi_forecast": forecast.total.estimate, "kpi_ci_low": forecast.total.low,
                 "kpi_ci_high": forecast.total.high})
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def summary_lines(result: PlanResult, weeks: int) -> list[str]:
    """The terminal summary: per channel and in total, spend and incremental KPI against the current mix."""
    lines = [f"{'channel':<10} {'weekly':>9} {'incremental KPI':>16} {'95% interval':>22} {'support':<8} "
             f"{'current':>9} {'gain':>9} {'95% interval':>22}"]
    for r in result.table.to_dict("records"):
        support = "yes" if r["within_support"] else "OUTSIDE"
        lines.append(f"{r['channel']:<10} {r['weekly_spend']:>9,.0f} {r['incremental_kpi']:>16,.0f} "
                     f"[{r['incremental_ci_low']:>9,.0f}, {r['incremental_ci_high']:>9,.0f}] {support:<8} "
                     f"{r['current_weekly_spend']:>9,.0f} {r['gain']:>9,.0f} [{r['gain_ci_low']:>9,.0f}, "
                     f"{r['gain_ci_high']:>9,.0f}]")
    total = result.table.iloc[-1]
    if np.isfinite(total["gain_optimism"]) and total["gain_optimism"] != 0:
        lines.append(f"The total's incremental KPI and gain are net of the optimiser's optimism, "
                     f"{total['gain_optimism']:,.0f} (a plan chosen for its estimated gain over-states it); the "
                     "channels' rows are not.")
    lines.append(f"KPI over the {weeks} weeks: {total['kpi_forecast']:,.0f} [{total['kpi_ci_low']:,.0f}, "
                 f"{total['kpi_ci_high']:,.0f}] (95% prediction interval).")
    return lines


def write_plan(result: PlanResult, output: object) -> list[str]:
    """plan.csv, plan_forecast.csv and (risk: p10) plan_pareto.csv into the folder `output`. Each is
    written to a fresh file and renamed over the name, so nothing is written through a link; a name
    that is a link or anything but a regular file (the weekly run's published `plan.csv` link, a
    user's link elsewhere) is refused with `output-not-ours` before any file is written."""
    import os
    import secrets
    import stat
    from pathlib import Path

    from cmmm_pipeline.core.errors import CmmmError

    folder = Path(str(output))
    folder.mkdir(parents=True, exist_ok=True)
    frames = {"plan.csv": result.table, "plan_forecast.csv": result.forecast}
    if result.pareto is not None:
        frames["plan_pareto.csv"] = result.pareto
    for name in frames:
        path = folder / name
        if os.path.lexists(path) and not stat.S_ISREG(path.lstat().st_mode):
            raise CmmmError("output-not-ours", str(path),
                            "is a link or not a regular file (a weekly run publishes plan.csv as a link into its run "
                            "folder); it is neither followed nor replaced, so nothing was written.",
                            "write the plan to another folder with --output.")
    for name, frame in frames.items():
        tmp = folder / f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp, folder / name)
    return [str(folder / name) for name in frames]
