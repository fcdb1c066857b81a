"""Evaluate or optimise a plan on a fitted model, inside each channel's support, and lay the result
out as `plan.csv`: per channel and in total, the plan's weekly spend and incremental KPI with its
interval, whether it lies within support, the current allocation at the same budget beside it, and
the gain over it with its interval.

The current allocation is the channels' shares of spend over the last N observed weeks (N the
plan's horizon; the whole history if those weeks spent nothing), scaled to the plan's weekly budget.

The gains' intervals are the draws' widened to the gains of the response curves the data fit as
well (`shape_shifts`). An optimised plan's total gain is then lowered by the optimiser's optimism
(`selection_optimism`: the plan was chosen because its estimated gain is high, so that estimate is
high too): on simulated worlds neither alone covered the true gain of a reallocation where the
current mix was already near the best one; together they did (docs/planning.md). An
optimised plan spends the same every week, or with `allocate_weeks` a weeks × channels matrix
(`_WeeklyObjectives`), every week within support; `plan_weeks.csv` lays out either week by week.
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
    Interval,
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
PLAN_COLUMNS = ["channel", "effect", "weekly_spend", "incremental_kpi", "incremental_ci_low", "incremental_ci_high",
                "within_support", "supported_low", "supported_high", "current_weekly_spend", "current_incremental_kpi",
                "current_ci_low", "current_ci_high", "gain", "gain_ci_low", "gain_ci_high", "gain_p10",
                "gain_shape_low", "gain_shape_high", "gain_optimism", "kpi_forecast", "kpi_ci_low", "kpi_ci_high"]
OPTIMISM_DRAWS = 100
"""How many bootstrap draws (evenly spaced) estimate the optimiser's optimism."""


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
    weeks: pd.DataFrame | None = None
    """plan_weeks.csv: per plan week and channel, the spend and the KPI the plan adds in that week."""


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


class _WeeklyObjectives:
    """The draws of the plan's total incremental KPI for a weeks × channels spend matrix, flattened
    week by week (x[t·C + c]), with exact gradients: adstock is linear in spend, so a transform's
    carried-over spend is the history's carryover plus A · s (A its weeks × weeks impulse response),
    and the Hill curve's derivative is closed-form. With carryover and an S-shaped curve, pulsing
    (spend concentrated in some weeks) and an even spend differ; this objective sees the difference."""

    def __init__(self, curves: Mapping[str, ChannelCurve], current: np.ndarray) -> None:
        self.curves = list(curves.values())
        weeks = self.curves[0].weeks
        self.weeks, self.k = weeks, len(self.curves)
        self.impulse = [np.stack([t.adstocked(np.eye(weeks)) for t in c.transforms]) for c in self.curves]
        self.current = self.draws(current)

    def _channel(self, i: int, spend: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(U,) the channel's summed media over the channel off per transform, and (U, N) its gradient."""
        curve, impulse = self.curves[i], self.impulse[i]
        ref = curve.references[:, None]
        z = np.maximum((curve.carry + impulse @ spend) / ref, 1e-12)
        k = np.array([t.half_saturation for t in curve.transforms])[:, None]
        a = np.array([t.slope for t in curve.transforms])[:, None]
        za, ka = z**a, k**a
        value = (za / (za + ka) - curve.baseline_media).sum(axis=1)
        if not with_gradient:
            return value, None
        slope = a * ka * za / z / (za + ka) ** 2 / ref
        return value, np.einsum("ut,utj->uj", slope, impulse)

    def draws(self, x: np.ndarray) -> np.ndarray:
        spend = np.asarray(x, dtype=float).reshape(self.weeks, self.k)
        return sum(c.ate * self._channel(i, spend[:, i], False)[0][c.draw_index] for i, c in enumerate(self.curves))

    def draws_gradient(self, x: np.ndarray) -> np.ndarray:
        """(B, N·C) every draw's gradient."""
        spend = np.asarray(x, dtype=float).reshape(self.weeks, self.k)
        out = np.zeros((len(self.curves[0].ate), self.weeks, self.k))
        for i, c in enumerate(self.curves):
            out[:, :, i] = c.ate[:, None] * self._channel(i, spend[:, i], True)[1][c.draw_index]
        return out.reshape(out.shape[0], -1)

    def mean(self, x: np.ndarray) -> float:
        return float(np.mean(self.draws(x)))

    def mean_gradient(self, x: np.ndarray) -> np.ndarray:
        return self.draws_gradient(x).mean(axis=0)

    def weighted(self, weight: float) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]]:
        """(1 − w)·mean gain + w·p10 gain and its gradient (the p10's: its order statistics' gradients)."""
        def value(x: np.ndarray) -> float:
            gain = self.draws(x) - self.current
            return float((1.0 - weight) * gain.mean() + weight * np.quantile(gain, RISK_QUANTILE))

        def gradient(x: np.ndarray) -> np.ndarray:
            gain, grads = self.draws(x) - self.current, self.draws_gradient(x)
            order = np.argsort(gain)
            position = RISK_QUANTILE * (gain.size - 1)
            low, frac = int(np.floor(position)), position - np.floor(position)
            high = min(low + 1, gain.size - 1)
            quantile = (1.0 - frac) * grads[order[low]] + frac * grads[order[high]]
            return (1.0 - weight) * grads.mean(axis=0) + weight * quantile
        return value, gradient


def allocate_weeks(objectives: _WeeklyObjectives, lower: np.ndarray, upper: np.ndarray, weekly_budget: float,
                   starts: list[np.ndarray], rng: np.random.Generator,
                   weight: float | None = None) -> Allocation:
    """Optimise a weeks × channels plan: Σ spend = the budget over the weeks, each week's spend per
    channel within the channel's bounds (its support ∩ the plan's bounds). `starts` are constant plans
    (channels,) or whole ones (weeks·channels,); started from the constant optimum, it never does worse
    than the even spend on its objective. `weight`: the risk's weight (None: the mean alone)."""
    weeks = objectives.weeks
    tiled = [np.tile(s, weeks) if s.size == objectives.k else s for s in starts]
    if weight is None:
        value, gradient = objectives.mean, objectives.mean_gradient
    else:
        value, gradient = objectives.weighted(weight)
    # No random starts: a random point of the weeks × channels set is a spiky plan far from any optimum
    # the constant plans lead to, and each local search costs a few hundred gradient steps.
    return allocate(value, np.tile(lower, weeks), np.tile(upper, weeks), weekly_budget * weeks, tiled, rng,
                    random_starts=0, gradient=gradient)


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
        if spec.risk is Risk.P10 and not spec.allocate_weeks:
            # Started from the mean-optimal plan (and the current one): the front never falls below either.
            front = [(w, allocate(objectives.weighted(w), lower, upper, budget, [best.spend, current], rng,
                                  random_starts=0)) for w in PARETO_WEIGHTS[1:]]
            pareto = _pareto(channels, [(0.0, best), *front], objectives, 1)
            best = front[-1][1]
        if spec.allocate_weeks:
            across = _WeeklyObjectives(curves, np.tile(current, spec.weeks))
            chosen = allocate_weeks(across, lower, upper, budget, [best.spend, current], rng)
            if spec.risk is Risk.P10:
                # Started from the weeks' mean-optimal plan (and the current one): never below either.
                front = [(w, allocate_weeks(across, lower, upper, budget, [chosen.spend, current], rng, weight=w))
                         for w in PARETO_WEIGHTS[1:]]
                pareto = _pareto(channels, [(0.0, chosen), *front], across, spec.weeks)
                chosen = front[-1][1]
            matrix = chosen.spend.reshape(spec.weeks, len(channels))
            weekly = {c: matrix[:, i] for i, c in enumerate(channels)}
        else:
            weekly = {c: np.full(spec.weeks, s) for c, s in zip(channels, best.spend)}
    plan_effects = {c: channel_effect(model, curves[c], weekly[c]) for c in channels}
    current_effects = {c: channel_effect(model, curves[c], np.full(spec.weeks, s)) for c, s in zip(channels, current)}
    controls, projected = future_controls(model, spec.weeks, spec.controls)
    if projected:
        notes.append(f"projected over the plan's weeks (not given in the plan): {', '.join(projected)}.")
    forecast = kpi_forecast(model, plan_effects, baseline(model, curves, controls),
                            any(c.smooth for c in curves.values()))
    shifts = shape_shifts(model, channels, weekly, {c: np.full(spec.weeks, s) for c, s in zip(channels, current)})
    optimism = 0.0 if spec.mode is PlanMode.EVALUATE else selection_optimism(
        model, curves, current, lower, upper, budget, objectives, best.spend)
    table = plan_table(model, spec, plan_effects, current_effects, curves, forecast, shifts, optimism)
    total = table.iloc[-1]
    if total["gain_ci_low"] <= 0 <= total["gain_ci_high"] and abs(total["current_weekly_spend"]) > 0:
        notes.append(f"the gain over the current allocation, {total['gain']:,.0f} [{total['gain_ci_low']:,.0f}, "
                     f"{total['gain_ci_high']:,.0f}], includes zero: the data do not show that this plan beats the "
                     "current mix.")
    return PlanResult(spec.mode, table, forecast.weekly, pareto, tuple(notes),
                      week_table(curves, weekly, forecast.weekly["week"]))


def week_table(curves: Mapping[str, ChannelCurve], weekly: Mapping[str, np.ndarray],
               dates: pd.Series) -> pd.DataFrame:
    """Per plan week and channel: the spend and the KPI the channel's plan adds in that week over the
    channel off in the plan's weeks (its earlier plan weeks' carryover included; the channel's rows
    add up to its incremental KPI)."""
    rows = []
    for c, spend in weekly.items():
        _, point = curves[c].weekly_effect(np.asarray(spend, dtype=float)[:, None])
        rows += [{"week": d, "channel": c, "spend": float(s), "incremental_kpi": float(e)}
                 for d, s, e in zip(dates, spend, point[:, 0])]
    return pd.DataFrame(rows, columns=["week", "channel", "spend", "incremental_kpi"])


def shape_shifts(model: FittedModel, channels: tuple[str, ...], plan: Mapping[str, np.ndarray],
                 current: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """How the gain of `plan` over `current` (weekly spend per channel, (N,) each) moves when the
    curves change to a near-equivalent selection (`media.selection.near_equivalent_fit`: every grid
    point within one standard error of a channel's best cross-validated fit, one channel changed at a
    time, the coefficients estimated on the data at it): per channel and in total (`TOTAL`), (A,) the
    gain at each less the gain at the applied selection. The bootstrap repeats the selection, but
    where the fit cannot tell a concave curve from an S-curve the resamples keep choosing alike: these
    are the curves the data fit as well, and a plan's gain can differ much between them."""
    from cmmm_pipeline.effects.bootstrap import estimate_all
    from cmmm_pipeline.media.selection import SelectionSettings, near_equivalent_fit
    from cmmm_pipeline.plan.model import selection_curve

    problem = model.problem
    alternatives, _, _ = near_equivalent_fit(problem.inputs, problem.selected,
                                             SelectionSettings.from_config(model.config.estimation))
    every = np.vstack([problem.selected[None, :], alternatives])
    ate = estimate_all(problem, np.tile(np.arange(problem.n), (every.shape[0], 1)), every).ate
    weeks = next(iter(plan.values())).size
    gains = {}
    for c in channels:
        k, column = problem.inputs.channels.index(c), model.draws.column(c, model.effect(c))
        both = np.column_stack([plan[c], current[c]])
        cache: dict[tuple[int, float], float] = {}
        gains[c] = np.zeros(every.shape[0])
        for j, row in enumerate(every):
            key = (int(row[k]), float(ate[j, column]))
            if key not in cache:
                _, point = selection_curve(model, c, weeks, *key).weekly_effect(both)
                cache[key] = float(point[:, 0].sum() - point[:, 1].sum())
            gains[c][j] = cache[key]
    gains[TOTAL] = sum(gains[c] for c in channels)
    return {name: g[1:] - g[0] for name, g in gains.items()}


def widen(low: float, high: float, shifts: np.ndarray | None) -> tuple[float, float]:
    """The interval moved by each near-equivalent selection's shift, united with itself."""
    if shifts is None or shifts.size == 0 or not np.all(np.isfinite(shifts)):
        return low, high
    return low + min(0.0, float(shifts.min())), high + max(0.0, float(shifts.max()))


def _pareto(channels: tuple[str, ...], solutions: list[tuple[float, Allocation]],
            objectives: _Objectives | _WeeklyObjectives, weeks: int) -> pd.DataFrame:
    """One row per weight: the mean and p10 gain and each channel's (mean) weekly spend."""
    rows = []
    for weight, allocation in solutions:
        draws = objectives.total(allocation.spend) if isinstance(objectives, _Objectives) else objectives.draws(
            allocation.spend)
        gain = draws - objectives.current
        spend = allocation.spend.reshape(weeks, len(channels)).mean(axis=0)
        rows.append({"risk_weight": weight, "mean_gain": float(gain.mean()),
                     "p10_gain": float(np.quantile(gain, RISK_QUANTILE)),
                     **{f"{c}_weekly_spend": float(s) for c, s in zip(channels, spend)}})
    return pd.DataFrame(rows)


def selection_optimism(model: FittedModel, curves: Mapping[str, ChannelCurve], current: np.ndarray,
                       lower: np.ndarray, upper: np.ndarray, budget: float, objectives: _Objectives,
                       start: np.ndarray) -> float:
    """The optimiser's optimism over the plan's weeks (Efron's bootstrap estimate of a selection's
    bias): in each of `OPTIMISM_DRAWS` draws' worlds the draw's curves play the estimate and the mean
    over the draws the truth; the optimism is how much more the plan chosen on the draw's curves gains
    on them than on the mean, averaged. Scaled by rho squared, rho the smoothed error of the gain over
    the draws' spread (the smoothed estimate varies less than one draw). Estimated for the constant
    plan; a weeks x channels plan (`allocate_weeks`) and the risk front take the same figure."""
    draws = len(next(iter(curves.values())).ate)
    picks = np.unique(np.linspace(0, draws - 1, min(draws, OPTIMISM_DRAWS)).round().astype(int))
    rng = np.random.default_rng(0)
    gaps = []
    for b in picks:
        single = _Objectives({c: curve.single(int(b)) for c, curve in curves.items()}, current)
        chosen = allocate(single.mean, lower, upper, budget, [start, current], rng, random_starts=0)
        gaps.append(chosen.value - single.mean(current) - (objectives.mean(chosen.spend) - objectives.mean(current)))
    gain = objectives.total(start) - objectives.current
    spread = float(np.std(gain, ddof=1))
    ratio = 1.0
    if any(c.smooth for c in curves.values()) and spread > 0:
        summary = summarise_draws(float(gain.mean()), gain, model.draws, True, model.level, IntervalKind.PERCENTILE)
        ratio = min(1.0, summary.bootstrap_std_error / spread) if summary is not None else 1.0
    return float(ratio**2 * np.mean(gaps))


def plan_table(model: FittedModel, spec: PlanSpec, plan: Mapping[str, ChannelEffect],
               current: Mapping[str, ChannelEffect], curves: Mapping[str, ChannelCurve],
               forecast: KpiForecast, shifts: Mapping[str, np.ndarray] | None = None,
               optimism: float = 0.0) -> pd.DataFrame:
    """The rows of plan.csv. The gains' intervals are read from the draws and widened to the gains
    of the near-equivalent curves (`shifts`, see `shape_shifts`), whose range is `gain_shape_low` –
    `gain_shape_high`. The total's gain columns are lowered by `optimism` (recorded as
    `gain_optimism`; 0 for an evaluated plan): the channels' gains add up to the total's plus it."""
    nan = float("nan")
    shifts = shifts or {}

    def gain_columns(name: str, summary: Interval) -> dict[str, float]:
        low, high = widen(summary.low, summary.high, shifts.get(name))
        shift = shifts.get(name)
        band = (summary.estimate + min(0.0, float(shift.min())), summary.estimate + max(0.0, float(shift.max()))) if (
            shift is not None and shift.size and np.all(np.isfinite(shift))) else (summary.estimate, summary.estimate)
        return {"gain": summary.estimate, "gain_ci_low": low, "gain_ci_high": high, "gain_shape_low": band[0],
                "gain_shape_high": band[1]}

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
                     **gain_columns(c, gain),
                     "gain_p10": float(np.quantile(e.draws - cur.draws, RISK_QUANTILE)),
                     "kpi_forecast": nan, "kpi_ci_low": nan, "kpi_ci_high": nan})
    smooth = any(curves[c].smooth for c in plan)
    plan_draws = sum(e.draws for e in plan.values())
    current_draws = sum(e.draws for e in current.values())
    plan_point, current_point = sum(e.point for e in plan.values()), sum(e.point for e in current.values())
    total = draw_interval(model, plan_point, plan_draws, smooth)
    cur = draw_interval(model, current_point, current_draws, smooth)
    gain = draw_interval(model, plan_point - current_point, plan_draws - current_draws, smooth)
    lowered = {k: v - optimism for k, v in gain_columns(TOTAL, gain).items()}
    rows.append({"channel": TOTAL, "effect": "", "weekly_spend": float(sum(np.mean(e.spend) for e in plan.values())),
                 "incremental_kpi": total.estimate, "incremental_ci_low": total.low,
                 "incremental_ci_high": total.high,
                 "within_support": all(r["within_support"] for r in rows), "supported_low": nan, "supported_high": nan,
                 "current_weekly_spend": float(sum(np.mean(e.spend) for e in current.values())),
                 "current_incremental_kpi": cur.estimate, "current_ci_low": cur.low, "current_ci_high": cur.high,
                 **lowered, "gain_optimism": optimism,
                 "gain_p10": float(np.quantile(plan_draws - current_draws, RISK_QUANTILE)) - optimism,
                 "kpi_forecast": forecast.total.estimate, "kpi_ci_low": forecast.total.low,
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
    if total["gain_shape_low"] < total["gain_shape_high"]:
        lines.append(f"Response curves the data fit as well put the total gain between {total['gain_shape_low']:,.0f} "
                     f"and {total['gain_shape_high']:,.0f}; the gains' intervals include them.")
    lines.append(f"KPI over the {weeks} weeks: {total['kpi_forecast']:,.0f} [{total['kpi_ci_low']:,.0f}, "
                 f"{total['kpi_ci_high']:,.0f}] (95% prediction interval).")
    return lines


def write_plan(result: PlanResult, output: object) -> list[str]:
    """plan.csv, plan_forecast.csv, plan_weeks.csv and (risk: p10) plan_pareto.csv into the folder `output`. Each is
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
    if result.weeks is not None:
        frames["plan_weeks.csv"] = result.weeks
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
