"""Refutation and sensitivity: how far to trust each channel's estimate, as PASS / REVIEW / FAIL.

Per estimated effect, with DoWhy's typed refuter functions on the same data, estimand and estimate
(one function per refuter below, each with a budgeted number of simulations and its own
`np.random.RandomState`):
- placebo treatment (`refute_placebo_treatment`): the spend series permuted; its effect must be ≈ 0;
- random common cause (`refute_random_common_cause`): an independent random column added to the
  adjustment set; the estimate must not move;
- data subset (`refute_data_subset`): re-estimated on random 80% subsets; the estimate must not move;
- unobserved common cause (`sensitivity_simulation`): DoWhy's simulated confounder with linear
  effects of explicit strength (partial R² `confounder_partial_r2` with both treatment and KPI);
  the effect must survive it;
- robustness value (Cinelli & Hazlett 2020), computed from the regression itself: the partial R²
  a hidden confounder would need with both spend and KPI to make the effect not significant
  (RV_α), and to erase it (RV).

Shifts are judged in standard errors of the regression (HAC), so the thresholds mean the same for
a large and a small channel; whether an effect stands clear of zero is judged with the pipeline's
standard error, which carries the transform selection. Each refuter's verdicts are the members of
its case enum (status, message, recommendation in one place). A channel's robustness is the worst
status of its refuters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.status import CaseResult, CheckCase, Status
from cmmm_pipeline.effects.estimation import DowhyFit, EffectSpec, design, fit_dowhy, hac_pvalue, observed_nodes

REFUTATION_COLUMNS = ["channel", "effect", "refuter", "status", "estimate", "new_effect", "p_value", "statistic",
                      "message", "recommendation"]
NO_ACTION = "no action."
UNPROVEN = "treat the channel's effect as unproven; a lift test would settle it."


class RefuterKind(Enum):
    PLACEBO_TREATMENT = "placebo_treatment"
    RANDOM_COMMON_CAUSE = "random_common_cause"
    DATA_SUBSET = "data_subset"
    UNOBSERVED_COMMON_CAUSE = "unobserved_common_cause"
    ROBUSTNESS_VALUE = "robustness_value"


class PlaceboCase(CheckCase):
    """Placebo treatment. Details: `in_se` (mean placebo effect in SEs), `t` (the estimate in SEs)."""

    SPURIOUS = (Status.FAIL, ("the permuted spend still shows an effect ({in_se:+.2f} SE on average): the design "
                              "attributes KPI movements to spend that cannot have caused them."),
                "check the adjustment set and the controls (seasonality, trend) for a missing common driver.")
    UNPROVEN = (Status.REVIEW, ("placebo effects centre on zero, but the real estimate is not distinguishable from "
                                "zero either ({t:+.2f} SE)."), UNPROVEN)
    CLEAR = (Status.PASS, ("permuted spend shows no effect ({in_se:+.2f} SE on average) while the real estimate "
                           "stands well clear of it."), NO_ACTION)


_RANDOM_CAUSE = "adding an independent random common cause moved the estimate by {shift:.2f} SE."
_FRAGILE_TO_CONTROLS = "the estimate is fragile to irrelevant controls; inspect collinearity."


class RandomCommonCauseCase(CheckCase):
    """Random common cause. Details: `shift` (|mean shift| in SEs)."""

    STABLE = (Status.PASS, _RANDOM_CAUSE, NO_ACTION)
    MOVED = (Status.REVIEW, _RANDOM_CAUSE, _FRAGILE_TO_CONTROLS)
    UNSTABLE = (Status.FAIL, _RANDOM_CAUSE, _FRAGILE_TO_CONTROLS)


_SUBSET = "re-estimated on random {share}% subsets of the weeks, the estimate moved by {shift:.2f} SE on average."
_FEW_WEEKS = "a few weeks drive the estimate; look for outliers or a change in the channel's role over time."


class DataSubsetCase(CheckCase):
    """Data subset. Details: `share` (percent of weeks kept), `shift` (|mean shift| in SEs)."""

    STABLE = (Status.PASS, _SUBSET, NO_ACTION)
    MOVED = (Status.REVIEW, _SUBSET, _FEW_WEEKS)
    UNSTABLE = (Status.FAIL, _SUBSET, _FEW_WEEKS)


class HiddenConfounderCase(CheckCase):
    """Simulated unobserved common cause. Details: `pct` (its partial R² in percent), `in_se`."""

    REVERSED = (Status.FAIL, ("a hidden confounder explaining {pct}% of spend and KPI variation reverses the sign of "
                              "the effect."), "do not act on this channel's estimate without a lift test.")
    NOT_SIGNIFICANT = (Status.REVIEW, ("a hidden confounder explaining {pct}% of spend and KPI variation leaves the "
                                       "effect {direction} but no longer distinguishable from zero ({in_se:+.2f} SE)."),
                       ("name the plausible hidden drivers of this channel's spend and measure them, or run a lift "
                        "test."))
    SURVIVES = (Status.PASS, ("a hidden confounder explaining {pct}% of spend and KPI variation leaves the effect at "
                              "{in_se:+.2f} SE."), NO_ACTION)


_RV = ("a hidden confounder would have to explain {rv_alpha:.0f}% of the residual variation of both spend and KPI "
       "to make the effect not significant, {rv:.0f}% to erase it.")


class RobustnessValueCase(CheckCase):
    """Cinelli–Hazlett robustness value. Details: `rv_alpha`, `rv` (percent), `level` (percent)."""

    ROBUST = (Status.PASS, _RV, NO_ACTION)
    UNPROVEN = (Status.REVIEW, ("the effect is not significant at {level}% even without hidden confounding; a "
                                "confounder explaining {rv:.0f}% of the residual variation of spend and KPI would "
                                "erase the point estimate."), UNPROVEN)
    FRAGILE = (Status.REVIEW, _RV, ("list the plausible hidden drivers of this channel's spend and judge their "
                                    "strength."))
    VERY_FRAGILE = (Status.FAIL, _RV, "a weak hidden confounder could erase the effect: validate with a lift test.")


@dataclass(frozen=True)
class RefutationThresholds:
    """When a refuter's result becomes REVIEW or FAIL. Shifts are in standard errors."""

    significance: float = 0.05
    """Placebo: FAIL when 0 is rejected as the centre of the placebo effects at this level; an
    estimate not significant at this level is REVIEW (indistinguishable from a placebo)."""
    shift_review: float = 0.5
    shift_fail: float = 1.0
    """Random common cause and data subset: REVIEW / FAIL above these mean shifts."""
    subset_fraction: float = 0.8
    confounder_partial_r2: float = 0.05
    """Strength of the simulated hidden confounder: its partial R² with the spend and with the KPI."""
    rv_pass: float = 0.10
    rv_fail: float = 0.02
    """Robustness value RV_α: PASS at or above `rv_pass`, FAIL below `rv_fail` (significant, yet a
    weak confounder removes that), REVIEW between — and REVIEW at 0 (not significant to begin with)."""

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.significance < 0.5, "significance", "use a level in (0, 0.5), e.g. 0.05."),
            (0.0 < self.shift_review <= self.shift_fail, "shift_review / shift_fail",
             "use 0 < shift_review <= shift_fail (standard errors)."),
            (0.1 <= self.subset_fraction < 1.0, "subset_fraction", "use a fraction in [0.1, 1)."),
            (0.0 < self.confounder_partial_r2 < 1.0, "confounder_partial_r2", "use a partial R² in (0, 1)."),
            (0.0 <= self.rv_fail <= self.rv_pass < 1.0, "rv_fail / rv_pass", "use 0 <= rv_fail <= rv_pass < 1."),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise ConfigError("threshold-range", f"refutation.{name}", "is out of range.", fix)


@dataclass(frozen=True)
class RefutationResult(CaseResult):
    """One refuter's verdict on one effect: its case (status and recommendation) and the message
    with the numbers filled in."""

    channel: str
    effect: EffectType
    refuter: RefuterKind
    case: CheckCase
    estimate: float
    """DoWhy's estimate (KPI per unit of transformed media)."""
    new_effect: float
    """The estimate after the refuter's change (mean over its simulations)."""
    p_value: float
    statistic: float
    """Placebo: placebo effect in SEs; random cause / subset: |shift| in SEs; unobserved cause: the
    adjusted effect in SEs; robustness value: RV_α (the strength that removes significance)."""
    message: str


@dataclass(frozen=True)
class RegressionSummary:
    """What the sensitivity formulas need from the spec's OLS."""

    estimate: float
    ols_se: float
    hac_se: float
    inference_se: float
    """For 'is it distinguishable from zero': the larger of the HAC and the pipeline's standard error."""
    df: int
    treatment_residual_sd: float
    outcome_residual_sd: float


def regression_summary(data: pd.DataFrame, spec: EffectSpec, outcome: str,
                       pipeline_se: float | None = None) -> RegressionSummary:
    """OLS facts of one spec; `pipeline_se` is the ATE's standard error from the bootstrap (with
    the transform selection in the loop), when known."""
    x = design(data, spec)
    y = data[outcome].to_numpy(dtype=float)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    df = len(y) - x.shape[1]
    sigma2 = float(resid @ resid) / df
    xtx_inv = np.linalg.inv(x.T @ x)
    others = np.delete(x, 1, axis=1)
    gamma, *_ = np.linalg.lstsq(others, x[:, 1], rcond=None)
    _, hac_se = hac_pvalue(x, y)
    inference_se = float(np.nanmax([hac_se, np.nan if pipeline_se is None else pipeline_se]))
    return RegressionSummary(float(beta[1]), float(np.sqrt(sigma2 * xtx_inv[1, 1])), hac_se, inference_se, df,
                             float(np.std(x[:, 1] - others @ gamma)), float(np.std(resid)))


def robustness_value(t_stat: float, df: int, alpha: float | None = None) -> float:
    """Cinelli–Hazlett robustness value (q = 1): the partial R² a confounder needs with both
    treatment and outcome to bring the estimate to zero (alpha None), or to make it not significant
    at level `alpha` (RV_α, 0 when it is not significant to begin with). With f = |t|/√df:
    RV = ½(√(f⁴ + 4f²) − f²); for RV_α, f is reduced by f* = t*_{α, df−1}/√(df − 1)."""
    f = abs(t_stat) / np.sqrt(df)
    if alpha is not None:
        f_star = stats.t.ppf(1 - alpha / 2, df - 1) / np.sqrt(df - 1)
        if f <= f_star:
            return 0.0
        if f > 1.0 / f_star:
            return float((f**2 - f_star**2) / (1.0 + f**2))
        f = f - f_star
    return float(0.5 * (np.sqrt(f**4 + 4.0 * f**2) - f**2))


@dataclass(frozen=True)
class RefutationTarget:
    """What every refuter works on: the model's data (the graph's observed columns), DoWhy's fit of
    one effect, its spec and the regression facts its thresholds are read in."""

    data: pd.DataFrame
    fit: DowhyFit
    spec: EffectSpec
    summary: RegressionSummary


def _seed(base: int, *keys: int) -> int:
    return int(np.random.SeedSequence([base, *keys]).generate_state(1)[0])


@contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """DoWhy's simulated confounder draws from numpy's global generator (through scipy); seed it for
    the call and put the caller's state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _shift_case(shift: float, thresholds: RefutationThresholds,
                cases: type[RandomCommonCauseCase | DataSubsetCase]) -> CheckCase:
    if shift <= thresholds.shift_review:
        return cases.STABLE
    return cases.MOVED if shift <= thresholds.shift_fail else cases.UNSTABLE


def _p(result: object) -> float:
    value = (getattr(result, "refutation_result", None) or {}).get("p_value", float("nan"))
    return float(value)


def placebo(target: RefutationTarget, simulations: int, seed: int,
            thresholds: RefutationThresholds) -> RefutationResult:
    """DoWhy's `refute_placebo_treatment` with the spend permuted across weeks."""
    from dowhy.causal_refuters.placebo_treatment_refuter import PlaceboType, refute_placebo_treatment

    data, fit, spec, summary = target.data, target.fit, target.spec, target.summary
    r = refute_placebo_treatment(data, fit.estimand, fit.estimate, fit.estimand.treatment_variable,
                                 num_simulations=simulations, placebo_type=PlaceboType.PERMUTE,
                                 random_state=np.random.RandomState(seed))
    new, p = float(r.new_effect), _p(r)
    z = stats.norm.ppf(1 - thresholds.significance / 2)
    in_se = new / summary.hac_se
    if p < thresholds.significance:
        case = PlaceboCase.SPURIOUS
    elif abs(summary.estimate) < z * summary.inference_se:
        case = PlaceboCase.UNPROVEN
    else:
        case = PlaceboCase.CLEAR
    message = case.render(in_se=in_se, t=summary.estimate / summary.inference_se)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.PLACEBO_TREATMENT, case, fit.value, new, p,
                            in_se, message)


def random_common_cause(target: RefutationTarget, simulations: int, seed: int,
                        thresholds: RefutationThresholds) -> RefutationResult:
    """DoWhy's `refute_random_common_cause`: a standard-normal column added to the adjustment set."""
    from dowhy.causal_refuters.random_common_cause import refute_random_common_cause

    data, fit, spec, summary = target.data, target.fit, target.spec, target.summary
    r = refute_random_common_cause(data, fit.estimand, fit.estimate, num_simulations=simulations,
                                   random_state=np.random.RandomState(seed))
    new = float(r.new_effect)
    shift = abs(new - fit.value) / summary.hac_se
    case = _shift_case(shift, thresholds, RandomCommonCauseCase)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.RANDOM_COMMON_CAUSE, case, fit.value, new,
                            _p(r), shift, case.render(shift=shift))


def data_subset(target: RefutationTarget, simulations: int, seed: int,
                thresholds: RefutationThresholds) -> RefutationResult:
    """DoWhy's `refute_data_subset` on random `subset_fraction` shares of the weeks."""
    from dowhy.causal_refuters.data_subset_refuter import refute_data_subset

    data, fit, spec, summary = target.data, target.fit, target.spec, target.summary
    # A RandomState object, not an int: with an int DoWhy redraws the same subset every simulation.
    r = refute_data_subset(data, fit.estimand, fit.estimate, subset_fraction=thresholds.subset_fraction,
                           num_simulations=simulations, random_state=np.random.RandomState(seed))
    new = float(r.new_effect)
    shift = abs(new - fit.value) / summary.hac_se
    case = _shift_case(shift, thresholds, DataSubsetCase)
    message = case.render(share=round(100 * thresholds.subset_fraction), shift=shift)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.DATA_SUBSET, case, fit.value, new, _p(r), shift,
                            message)


def unobserved_common_cause(target: RefutationTarget, seed: int, thresholds: RefutationThresholds) -> RefutationResult:
    """DoWhy's `sensitivity_simulation` (direct simulation, linear effects): it adds κ_t·w to the spend
    and −κ_y·w to the KPI (w standard normal). With κ = s·sd(residual) and s = √(r²/(1 − r²)), w
    explains a share r² of the residual variance of each; κ_y takes the estimate's sign so that the
    confounder pushes the estimate toward zero. The expected shift is r²·sd(KPI residual)/sd(spend
    residual) from the confounding plus β·r² from the noise w adds to the observed spend."""
    from dowhy.causal_refuters.add_unobserved_common_cause import sensitivity_simulation

    data, fit, spec, summary = target.data, target.fit, target.spec, target.summary
    r2 = thresholds.confounder_partial_r2
    s = np.sqrt(r2 / (1.0 - r2))
    sign = 1.0 if fit.value >= 0 else -1.0
    with _global_numpy_seed(seed):
        r = sensitivity_simulation(data, fit.estimand, fit.estimate, fit.estimand.treatment_variable,
                                   fit.estimand.outcome_variable, kappa_t=float(s * summary.treatment_residual_sd),
                                   kappa_y=float(sign * s * summary.outcome_residual_sd),
                                   confounders_effect_on_treatment="linear", confounders_effect_on_outcome="linear")
    new = float(r.new_effect)
    in_se = new / summary.inference_se
    z = stats.norm.ppf(1 - thresholds.significance / 2)
    if np.sign(new) != np.sign(fit.value) or new == 0:
        case = HiddenConfounderCase.REVERSED
    elif abs(new) < z * summary.inference_se:
        case = HiddenConfounderCase.NOT_SIGNIFICANT
    else:
        case = HiddenConfounderCase.SURVIVES
    p = float(2 * stats.t.sf(abs(in_se), summary.df))
    return RefutationResult(spec.channel, spec.effect, RefuterKind.UNOBSERVED_COMMON_CAUSE, case, fit.value, new,
                            p, in_se, case.render(pct=round(100 * r2), in_se=in_se,
                                                  direction="negative" if fit.value < 0 else "positive"))


def sensitivity(spec: EffectSpec, summary: RegressionSummary, thresholds: RefutationThresholds) -> RefutationResult:
    """Cinelli–Hazlett. The status reads RV_α: the confounder strength (partial R² with both spend
    and KPI) that would make the effect not significant, computed with the pipeline's standard
    error (t = estimate / inference SE) so that the transform selection counts. Also reported: the
    estimate bias-adjusted for a confounder with partial R² `confounder_partial_r2` with both
    (|bias| = se·√df·√(r²·r²/(1 − r²))) and its p-value."""
    rv = robustness_value(summary.estimate / summary.ols_se, summary.df)
    rv_alpha = robustness_value(summary.estimate / summary.inference_se, summary.df, thresholds.significance)
    r2 = thresholds.confounder_partial_r2
    bias = summary.ols_se * np.sqrt(summary.df) * np.sqrt(r2 * r2 / (1.0 - r2))
    adjusted = summary.estimate - np.sign(summary.estimate) * bias
    # Adjusted standard error: se·√((1 − R²_y)/(1 − R²_d))·√(df/(df − 1)); the two partial R² are
    # equal here. Scaled to the inference SE so that the p-value carries the selection too.
    adjusted_se = summary.inference_se * np.sqrt(summary.df / (summary.df - 1))
    p = float(2 * stats.t.sf(abs(adjusted) / adjusted_se, summary.df - 1))
    if rv_alpha == 0.0:  # unproven rather than fragile: the placebo row says the same
        case = RobustnessValueCase.UNPROVEN
    elif rv_alpha >= thresholds.rv_pass:
        case = RobustnessValueCase.ROBUST
    elif rv_alpha >= thresholds.rv_fail:
        case = RobustnessValueCase.FRAGILE
    else:
        case = RobustnessValueCase.VERY_FRAGILE
    message = case.render(rv_alpha=100 * rv_alpha, rv=100 * rv, level=round(100 * (1 - thresholds.significance)))
    return RefutationResult(spec.channel, spec.effect, RefuterKind.ROBUSTNESS_VALUE, case, summary.estimate,
                            float(adjusted), p, rv_alpha, message)


def refute_effect(data: pd.DataFrame, g: nx.DiGraph, spec: EffectSpec, outcome: str, simulations: int, seed: int,
                  thresholds: RefutationThresholds, pipeline_se: float | None = None) -> list[RefutationResult]:
    """Every refuter on one estimated effect; seeds are derived from `seed` per refuter.

    Parameters
    ----------
    data
        The model table (transformed media, controls, KPI); DoWhy sees only the graph's columns.
    g
        The DAG over model columns (the expanded graph).
    spec
        The effect: channel, total or direct, and its adjustment set.
    outcome
        The KPI column.
    simulations
        DoWhy simulations per refuter (placebo, random common cause, data subset).
    seed
        Base seed; each refuter gets its own `np.random.RandomState` derived from it.
    thresholds
        When a refuter's result is REVIEW or FAIL.
    pipeline_se
        The ATE's standard error from the bootstrap (with the transform selection), when known:
        it decides whether the effect stands clear of zero.
    """
    fit = fit_dowhy(data, g, spec, outcome)
    summary = regression_summary(data, spec, outcome, pipeline_se)
    target = RefutationTarget(data[observed_nodes(data, g)], fit, spec, summary)
    return [
        placebo(target, simulations, _seed(seed, 1), thresholds),
        random_common_cause(target, simulations, _seed(seed, 2), thresholds),
        data_subset(target, simulations, _seed(seed, 3), thresholds),
        unobserved_common_cause(target, _seed(seed, 4), thresholds),
        sensitivity(spec, summary, thresholds),
    ]


def refute_all(data: pd.DataFrame, g: nx.DiGraph, specs: list[EffectSpec], outcome: str, simulations: int, seed: int,
               thresholds: RefutationThresholds,
               pipeline_se: dict[tuple[str, EffectType], float] | None = None) -> list[RefutationResult]:
    """Every refuter on every spec (see `refute_effect` for the arguments); `pipeline_se` maps
    (channel, effect) to the ATE's bootstrap standard error, and each spec's seed is derived from
    `seed` and its position."""
    ses = pipeline_se or {}
    return [r for j, spec in enumerate(specs)
            for r in refute_effect(data, g, spec, outcome, simulations, _seed(seed, 100 + j), thresholds,
                                   ses.get((spec.channel, spec.effect)))]


def refutations_table(results: list[RefutationResult]) -> pd.DataFrame:
    return pd.DataFrame([{
        "channel": r.channel, "effect": r.effect.value, "refuter": r.refuter.value, "status": r.status.value,
        "estimate": r.estimate, "new_effect": r.new_effect, "p_value": r.p_value, "statistic": r.statistic,
        "message": r.message, "recommendation": r.recommendation} for r in results], columns=REFUTATION_COLUMNS)


def channel_robustness(results: list[RefutationResult]) -> dict[str, Status]:
    """Per channel, the worst status over all its refuters and effects."""
    by_channel: dict[str, list[Status]] = {}
    for r in results:
        by_channel.setdefault(r.channel, []).append(r.status)
    return {c: Status.worst(s) for c, s in by_channel.items()}
