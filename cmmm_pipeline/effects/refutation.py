"""Refutation and sensitivity: how far to trust each channel's estimate, as PASS / REVIEW / FAIL.

Per estimated effect, on the same data, estimand and estimate (one function per refuter below, each
with a budgeted number of simulations and its own `np.random.RandomState`). The three resampling
refuters are DoWhy's (`refute_placebo_treatment`, `refute_random_common_cause`, `refute_data_subset`),
computed as they are — the same draws from the same state, the same regression, the same
significance test — with all simulations of one refuter in one least-squares solve instead of one
DoWhy fit each (300 fits on the sample; tests/effects/test_refutation.py compares them with
DoWhy's side by side):
- placebo treatment: the spend series permuted; its effect must be ≈ 0;
- random common cause: an independent random column added to the adjustment set; the estimate must
  not move;
- data subset: re-estimated on random 80% subsets; the estimate must not move;
- unobserved common cause: DoWhy's simulated confounder (`sensitivity_simulation`, direct simulation)
  with linear effects of explicit strength (partial R² `confounder_partial_r2` with both treatment
  and KPI), the same draw from the same seed and the same regression, solved in numpy (DoWhy's refit
  also renders a statsmodels summary it only logs at debug level); the effect must survive it;
- robustness value (Cinelli & Hazlett 2020), computed from the regression itself: the partial R²
  a hidden confounder would need with both spend and KPI to make the effect not significant
  (RV_α), and to erase it (RV);
- benchmarked confounder (Cinelli & Hazlett 2020, section 4.4): the strength a hidden confounder
  would have if it were `benchmark_multiple` times as strong as an observed control of the
  adjustment set, in explaining spend and KPI, and the estimate and interval bias-adjusted for it.

Whether a hidden confounder matters is judged against the observed controls: the hidden-confounder
rows are REVIEW only when a confounder no stronger than the strongest observed control (times
`benchmark_multiple`) could make the effect not significant, or when it is not significant at all.
A partial R² on its own (how much is "a lot"?) does not decide a status.

Shifts are judged in standard errors of the regression (HAC), so the thresholds mean the same for
a large and a small channel; whether an effect stands clear of zero is judged with the pipeline's
standard error, which carries the transform selection. Each refuter's verdicts are the members of
its case enum (status, message, recommendation in one place). A channel's robustness is the worst
status of its refuters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.status import CaseResult, CheckCase, Status
from cmmm_pipeline.effects.estimation import (EffectSpec, batched_ols, design, fit_dowhy, hac_pvalue,
                                               observed_nodes)

REFUTATION_COLUMNS = ["channel", "effect", "refuter", "status", "estimate", "new_effect", "p_value", "statistic",
                      "message", "recommendation", "new_effect_low", "new_effect_high"]
NO_ACTION = "no action."
UNPROVEN = "treat the channel's effect as unproven; a lift test would settle it."


class RefuterKind(Enum):
    PLACEBO_TREATMENT = "placebo_treatment"
    RANDOM_COMMON_CAUSE = "random_common_cause"
    DATA_SUBSET = "data_subset"
    UNOBSERVED_COMMON_CAUSE = "unobserved_common_cause"
    ROBUSTNESS_VALUE = "robustness_value"
    BENCHMARK_CONFOUNDER = "benchmark_confounder"


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


_STRONGER = (" That is stronger than a confounder as strong as the strongest observed control ({benchmark}{multiple}: "
             "{bench_d:.1f}% of spend, {bench_y:.1f}% of KPI variation), so it does not count against the estimate.")


class HiddenConfounderCase(CheckCase):
    """Simulated unobserved common cause. Details: `pct` (its partial R² in percent), `in_se`,
    `direction`; for the STRONGER_* cases also the benchmark's name, strengths and multiple."""

    REVERSED = (Status.FAIL, ("a hidden confounder explaining {pct}% of spend and KPI variation reverses the sign of "
                              "the effect."), "do not act on this channel's estimate without a lift test.")
    NOT_SIGNIFICANT = (Status.REVIEW, ("a hidden confounder explaining {pct}% of spend and KPI variation leaves the "
                                       "effect {direction} but no longer distinguishable from zero ({in_se:+.2f} SE)."),
                       ("name the plausible hidden drivers of this channel's spend and measure them, or run a lift "
                        "test."))
    SURVIVES = (Status.PASS, ("a hidden confounder explaining {pct}% of spend and KPI variation leaves the effect at "
                              "{in_se:+.2f} SE."), NO_ACTION)
    STRONGER_REVERSED = (Status.PASS, ("a hidden confounder explaining {pct}% of spend and KPI variation reverses the "
                                       "sign of the effect." + _STRONGER), NO_ACTION)
    STRONGER_NOT_SIGNIFICANT = (Status.PASS, ("a hidden confounder explaining {pct}% of spend and KPI variation "
                                              "leaves the effect {direction} but no longer distinguishable from zero "
                                              "({in_se:+.2f} SE)." + _STRONGER), NO_ACTION)


_RV = ("a hidden confounder would have to explain {rv_alpha:.0f}% of the residual variation of both spend and KPI "
       "to make the effect not significant, {rv:.0f}% to erase it")
_AGAINST = ("; one as strong as the strongest observed control ({benchmark}{multiple}) would explain "
            "{bench_d:.1f}% of spend and {bench_y:.1f}% of KPI variation.")


class RobustnessValueCase(CheckCase):
    """Cinelli–Hazlett robustness value, read against the strongest observed control. Details:
    `rv_alpha`, `rv` (percent), `level` (percent), `benchmark`, `bench_d`, `bench_y` (percent),
    `multiple` (text)."""

    ROBUST = (Status.PASS, _RV + _AGAINST, NO_ACTION)
    ROBUST_ALONE = (Status.PASS, _RV + "; no observed confounder to compare with.", NO_ACTION)
    UNPROVEN = (Status.REVIEW, ("the effect is not significant at {level}% even without hidden confounding; a "
                                "confounder explaining {rv:.0f}% of the residual variation of spend and KPI would "
                                "erase the point estimate."), UNPROVEN)
    FRAGILE = (Status.REVIEW, _RV + _AGAINST + " A confounder no stronger than it could remove the significance.",
               ("list the plausible hidden drivers of this channel's spend and judge their strength against "
                "the control named; a lift test would settle it."))


_BENCH = ("a hidden confounder {multiple_text}as strong as {benchmark} (partial R² {r2dz:.1f}% with spend, "
          "{r2yz:.1f}% with KPI) would move the {unit} from {estimate:.3g} to {adjusted:.3g} "
          "[{low:.3g}, {high:.3g}]")


class BenchmarkConfounderCase(CheckCase):
    """A hidden confounder as strong as the strongest observed control (Cinelli–Hazlett bounds).
    Details: `benchmark`, `multiple_text`, `r2dz`, `r2yz` (percent), `unit`, `estimate`, `adjusted`,
    `low`, `high`, `level` (percent), `excluded` (text, may be empty)."""

    CLEAR = (Status.PASS, _BENCH + ", still clear of zero.{excluded}", NO_ACTION)
    ERASED = (Status.REVIEW, _BENCH + ", no longer distinguishable from zero at {level}%.{excluded}",
              ("the estimate holds only if no unmeasured driver of spend and KPI is as strong as the control "
               "named: measure the plausible ones or run a lift test."))
    REVERSED = (Status.REVIEW, _BENCH + ": the sign would reverse.{excluded}",
                ("the estimate holds only if no unmeasured driver of spend and KPI is as strong as the control "
                 "named: do not act on it without a lift test."))
    UNPROVEN = (Status.REVIEW, ("the effect is not significant at {level}% even without hidden confounding; "
                                "no benchmark is needed to doubt it."), UNPROVEN)
    NO_BENCHMARK = (Status.PASS, ("the adjustment set has no observed confounder to compare a hidden one with "
                                  "(nothing observed drives this channel's spend under the DAG); the robustness value "
                                  "row says how strong one would have to be."), NO_ACTION)
    IMPOSSIBLE = (Status.PASS, ("the observed confounders explain so much of the spend that a hidden confounder "
                                "{multiple_text}as strong could not exist ({names}); no comparison is possible, and "
                                "the robustness value row says how strong one would have to be."),
                  NO_ACTION)


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
    """Strength of DoWhy's simulated hidden confounder: its partial R² with the spend and with the
    KPI. Its verdict counts only when it is no stronger than the benchmarked confounder."""
    benchmark_multiple: float = 1.0
    """A hidden confounder this many times as strong as the strongest observed control (in explaining
    spend and KPI, k_D = k_Y) is the one the estimate must survive."""

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.significance < 0.5, "significance", "use a level in (0, 0.5), e.g. 0.05."),
            (0.0 < self.shift_review <= self.shift_fail, "shift_review / shift_fail",
             "use 0 < shift_review <= shift_fail (standard errors)."),
            (0.1 <= self.subset_fraction < 1.0, "subset_fraction", "use a fraction in [0.1, 1)."),
            (0.0 < self.confounder_partial_r2 < 1.0, "confounder_partial_r2", "use a partial R² in (0, 1)."),
            (0.0 < self.benchmark_multiple <= 10.0, "benchmark_multiple",
             "use a multiple in (0, 10], e.g. 1 (as strong as the strongest observed control)."),
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
    adjusted effect in SEs; robustness value: RV_α (the strength that removes significance);
    benchmark confounder: the bias-adjusted t statistic."""
    message: str
    new_effect_low: float = float("nan")
    new_effect_high: float = float("nan")
    """Benchmark confounder: the bias-adjusted estimate's interval (NaN for the other refuters)."""


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
    from scipy import stats
    f = abs(t_stat) / np.sqrt(df)
    if alpha is not None:
        f_star = stats.t.ppf(1 - alpha / 2, df - 1) / np.sqrt(df - 1)
        if f <= f_star:
            return 0.0
        if f > 1.0 / f_star:
            return float((f**2 - f_star**2) / (1.0 + f**2))
        f = f - f_star
    return float(0.5 * (np.sqrt(f**4 + 4.0 * f**2) - f**2))


def partial_r2(y: np.ndarray, x: np.ndarray, columns: list[int]) -> float:
    """Partial R² of the `columns` of `x` with `y` given the other columns: 1 − RSS(full) / RSS(without
    them). For one column it equals t²/(t² + df) of its OLS coefficient (Cinelli & Hazlett eq. 17)."""
    def rss(design: np.ndarray) -> float:
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ beta
        return float(resid @ resid)

    full, reduced = rss(x), rss(np.delete(x, columns, axis=1))
    return float(max(0.0, 1.0 - full / reduced)) if reduced > 0 else 0.0


def confounder_bound(r2_treatment: float, r2_outcome: float, kd: float = 1.0,
                     ky: float | None = None) -> tuple[float, float] | None:
    """Cinelli & Hazlett (2020, section 4.4 and appendix): the partial R² of a hidden confounder Z
    with the treatment (R²_{D~Z|X}) and with the outcome (R²_{Y~Z|D,X}) when Z is `kd` times as
    strong as the benchmark covariate X_j in explaining the treatment and `ky` times in explaining
    the outcome (Z orthogonal to X given X_j's strength). `r2_treatment` = R²_{D~Xj|X−j},
    `r2_outcome` = R²_{Y~Xj|D,X−j}. None when the implied strength is impossible (R²_{D~Z|X} ≥ 1);
    R²_{Y~Z|D,X} is capped at 1, as `sensemakr` does:

        R²_{D~Z|X}   = kd · f²,  f² = R²_{D~Xj|X−j} / (1 − R²_{D~Xj|X−j})
        η            = kd · R²_{D~Xj|X−j}² / ((1 − kd·R²_{D~Xj|X−j})(1 − R²_{D~Xj|X−j}))
        R²_{Y~Z|D,X} = ((√ky + √η) / √(1 − η))² · R²_{Y~Xj|D,X−j} / (1 − R²_{Y~Xj|D,X−j})
    """
    ky = kd if ky is None else ky
    r2dz = kd * r2_treatment / (1.0 - r2_treatment)
    if r2dz >= 1.0:
        return None
    eta = kd * r2_treatment**2 / ((1.0 - kd * r2_treatment) * (1.0 - r2_treatment))
    if eta >= 1.0:
        return None
    r2yz = ((np.sqrt(ky) + np.sqrt(eta)) / np.sqrt(1.0 - eta)) ** 2 * (r2_outcome / (1.0 - r2_outcome))
    return float(r2dz), float(min(1.0, r2yz))


def omitted_bias(ols_se: float, df: int, r2dz: float, r2yz: float) -> float:
    """|bias| of the OLS coefficient from omitting a confounder with partial R² `r2dz` (treatment)
    and `r2yz` (outcome): se·√df·√(R²_{Y~Z|D,X}·R²_{D~Z|X} / (1 − R²_{D~Z|X}))
    (Cinelli & Hazlett eq. 10)."""
    return float(ols_se * np.sqrt(df) * np.sqrt(r2yz * r2dz / (1.0 - r2dz)))


def adjusted_se(se: float, df: int, r2dz: float, r2yz: float) -> float:
    """The standard error the coefficient would have with the confounder in the regression:
    se·√((1 − R²_{Y~Z|D,X}) / (1 − R²_{D~Z|X}))·√(df / (df − 1)) (Cinelli & Hazlett eq. 11)."""
    return float(se * np.sqrt((1.0 - r2yz) / (1.0 - r2dz)) * np.sqrt(df / (df - 1)))


@dataclass(frozen=True)
class ConfounderBenchmark:
    """A hidden confounder as strong as one observed control (a DAG node: all its columns)."""

    benchmark: str
    columns: tuple[str, ...]
    r2_treatment: float
    """R²_{D~Xj|X−j}: the control's partial R² with the spend, given the other adjustment columns."""
    r2_outcome: float
    """R²_{Y~Xj|D,X−j}: its partial R² with the KPI, given the spend and the other columns."""
    bound: tuple[float, float] | None
    """(R²_{D~Z|X}, R²_{Y~Z|D,X}) of a confounder `multiple` times as strong; None if impossible."""
    bias: float
    """|bias| of the estimate such a confounder would cause (inf when the bound is impossible)."""


def benchmark_groups(adjustment: tuple[str, ...], nodes: Collection[str] = ()) -> dict[str, tuple[str, ...]]:
    """Adjustment columns grouped by the DAG node they carry (`seasonality_sin1` → `seasonality`, the
    longest node name that is the column or its prefix before `_`); a column of no node stands alone."""
    ordered = sorted(nodes, key=len, reverse=True)
    groups: dict[str, list[str]] = {}
    for column in adjustment:
        node = next((n for n in ordered if column == n or column.startswith(f"{n}_")), column)
        groups.setdefault(node, []).append(column)
    return {k: tuple(v) for k, v in groups.items()}


def confounder_benchmarks(data: pd.DataFrame, spec: EffectSpec, outcome: str, summary: RegressionSummary,
                          multiple: float, nodes: Collection[str] = (),
                          confounders: Collection[str] | None = None) -> list[ConfounderBenchmark]:
    """The observed confounders of the spec's adjustment set as benchmarks, strongest first (largest
    bias): the columns in `confounders` (the treatment's ancestors in the DAG; None: every
    adjustment column), mediators never. Causes of the KPI alone are left out: a hidden confounder
    "as strong as the trend" would borrow the trend's grip on the KPI and its chance correlation with
    the spend, and flag sound estimates. Partial R² from the treatment regression (spend on the
    adjustment set) and the outcome regression (the spec's own)."""
    x = design(data, spec)
    y = data[outcome].to_numpy(dtype=float)
    d = x[:, 1]
    x_treatment = np.delete(x, 1, axis=1)  # [1, adjustment...]
    out = []
    for name, cols in benchmark_groups(spec.adjustment, nodes).items():
        if set(cols) & set(spec.mediators) or (confounders is not None and not set(cols) & set(confounders)):
            continue
        idx = [spec.adjustment.index(c) for c in cols]
        r2d = partial_r2(d, x_treatment, [1 + i for i in idx])
        r2y = partial_r2(y, x, [2 + i for i in idx])
        bound = confounder_bound(r2d, r2y, multiple)
        bias = float("inf") if bound is None else omitted_bias(summary.ols_se, summary.df, *bound)
        out.append(ConfounderBenchmark(name, cols, r2d, r2y, bound, bias))
    return sorted(out, key=lambda b: b.bias, reverse=True)


def _multiple_text(multiple: float) -> str:
    return "" if multiple == 1.0 else f"{multiple:g} times "


def benchmark_confounder(spec: EffectSpec, summary: RegressionSummary, thresholds: RefutationThresholds,
                         benchmarks: list[ConfounderBenchmark], roi_factor: float | None = None) -> RefutationResult:
    """The estimate bias-adjusted for a hidden confounder `benchmark_multiple` times as strong as the
    strongest observed confounder (the one that would bias it most), with its interval: adjusted ±
    t_{α/2, df}·SE·√(1/(1 − R²_{D~Z|X}))·√(df/(df − 1)), SE the pipeline's (inference) standard
    error so the transform selection counts. REVIEW when the interval reaches zero or the sign reverses, or when
    the estimate is not significant to begin with. A control for which a confounder that strong
    could not exist (it would explain all the spend's remaining variation) is left out and named.
    `roi_factor` (ROI per unit of estimate) puts the message in ROI units."""
    from scipy import stats
    alpha, k = thresholds.significance, thresholds.benchmark_multiple
    level = round(100 * (1 - alpha))
    crit = float(stats.t.ppf(1 - alpha / 2, summary.df))
    possible = [b for b in benchmarks if b.bound is not None]
    impossible = [b.benchmark for b in benchmarks if b.bound is None]
    excluded = (f" Not usable as benchmarks, since a confounder {_multiple_text(k)}as strong as them could not exist: "
                f"{', '.join(impossible)}." if impossible else "")
    estimate = summary.estimate
    if abs(estimate) < crit * summary.inference_se:
        case = BenchmarkConfounderCase.UNPROVEN
        return RefutationResult(spec.channel, spec.effect, RefuterKind.BENCHMARK_CONFOUNDER, case, estimate,
                                estimate, float("nan"), estimate / summary.inference_se, case.render(level=level))
    if not possible:
        case = BenchmarkConfounderCase.IMPOSSIBLE if impossible else BenchmarkConfounderCase.NO_BENCHMARK
        names = ", ".join(f"{b.benchmark} explains {100 * b.r2_treatment:.0f}% of the spend" for b in benchmarks)
        low, high = estimate - crit * summary.inference_se, estimate + crit * summary.inference_se
        p = float(2 * stats.t.sf(abs(estimate) / summary.inference_se, summary.df))
        return RefutationResult(spec.channel, spec.effect, RefuterKind.BENCHMARK_CONFOUNDER, case, estimate,
                                estimate, p, estimate / summary.inference_se,
                                case.render(multiple_text=_multiple_text(k), names=names), low, high)
    top = possible[0]
    r2dz, r2yz = top.bound
    adjusted = estimate - np.sign(estimate) * top.bias
    # Not shrunk by √(1 − R²_{Y~Z|D,X}) as sensemakr's would be: the inference SE is a bootstrap one,
    # and with strong controls the bound reaches R²_{Y~Z|D,X} = 1, where that interval collapses.
    se = adjusted_se(summary.inference_se, summary.df, r2dz, 0.0)
    low, high = adjusted - crit * se, adjusted + crit * se
    t_adj = adjusted / se
    if np.sign(adjusted) != np.sign(estimate):
        case = BenchmarkConfounderCase.REVERSED
    elif abs(t_adj) < crit:
        case = BenchmarkConfounderCase.ERASED
    else:
        case = BenchmarkConfounderCase.CLEAR
    scale, unit = (roi_factor, "ROI") if roi_factor is not None and np.isfinite(roi_factor) else (1.0, "estimate")
    values = sorted([low * scale, high * scale])
    message = case.render(multiple_text=_multiple_text(k), benchmark=top.benchmark, r2dz=100 * r2dz, r2yz=100 * r2yz,
                          unit=unit, estimate=estimate * scale, adjusted=adjusted * scale, low=values[0],
                          high=values[1], level=level, excluded=excluded)
    p = float(2 * stats.t.sf(abs(t_adj), summary.df - 1))
    return RefutationResult(spec.channel, spec.effect, RefuterKind.BENCHMARK_CONFOUNDER, case, estimate,
                            float(adjusted), p, float(t_adj), message, float(low), float(high))


def _benchmark_details(benchmarks: list[ConfounderBenchmark], multiple: float) -> dict[str, object] | None:
    """The strongest possible benchmark's name and strengths (percent), for the other hidden-confounder rows."""
    top = next((b for b in benchmarks if b.bound is not None), None)
    if top is None:
        return None
    return {"benchmark": top.benchmark, "multiple": "" if multiple == 1.0 else f", ×{multiple:g}",
            "bench_d": 100 * top.bound[0], "bench_y": 100 * top.bound[1]}


@dataclass(frozen=True)
class RefutationTarget:
    """What every refuter works on: the model's data (the graph's observed columns), its KPI column,
    DoWhy's estimate of one effect, its spec and the regression facts its thresholds are read in."""

    data: pd.DataFrame
    outcome: str
    estimate: float
    spec: EffectSpec
    summary: RegressionSummary

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The spec's design [1, treatment, adjustment...] and the KPI, as DoWhy's estimator regresses them."""
        return design(self.data, self.spec), self.data[self.outcome].to_numpy(dtype=float)


def _seed(base: int, *keys: int) -> int:
    return int(np.random.SeedSequence([base, *keys]).generate_state(1)[0])


def _shift_case(shift: float, thresholds: RefutationThresholds,
                cases: type[RandomCommonCauseCase | DataSubsetCase]) -> CheckCase:
    if shift <= thresholds.shift_review:
        return cases.STABLE
    return cases.MOVED if shift <= thresholds.shift_fail else cases.UNSTABLE


def _residualise(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """`a` (n or n × B) minus its least-squares projection on the columns of `z`: one solve for every
    column of `a` (Frisch–Waugh–Lovell: a coefficient is the regression of residual on residual)."""
    coef, *_ = np.linalg.lstsq(z, a, rcond=None)
    return a - z @ coef


def placebo_effects(x: np.ndarray, y: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """(B,) treatment coefficients with the treatment (column 1 of the design `x`) permuted by each
    row of `permutations` (B × n), the controls left in place: one projection of all B placebo
    series on the controls, then B residual-on-residual slopes."""
    z = np.delete(x, 1, axis=1)
    t = _residualise(z, x[:, 1][permutations].T)
    e = _residualise(z, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (t.T @ e) / np.einsum("nb,nb->b", t, t)


def random_cause_effects(x: np.ndarray, y: np.ndarray, causes: np.ndarray) -> np.ndarray:
    """(B,) treatment coefficients with each row of `causes` (B × n) added to the controls: the
    controls are projected out of treatment, outcome and all B causes at once, and each draw's
    coefficient is the closed-form two-regressor solution on those residuals."""
    z = np.delete(x, 1, axis=1)
    r = _residualise(z, np.column_stack([x[:, 1], y, causes.T]))
    t, e, w = r[:, 0], r[:, 1], r[:, 2:]
    tt, te = float(t @ t), float(t @ e)
    tw, ww, we = t @ w, np.einsum("nb,nb->b", w, w), w.T @ e
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ww * te - tw * we) / (tt * ww - tw**2)


def subset_effects(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(B,) treatment coefficients re-estimated on each row set of `rows` (B × k): one batched
    least-squares solve (the bootstrap's `batched_ols`; an ill-conditioned subset gives NaN)."""
    return batched_ols(x[rows], y[rows])[:, 1]


def hidden_confounder_effect(x: np.ndarray, y: np.ndarray, w: np.ndarray, kappa_t: float,
                             kappa_y: float) -> float:
    """The treatment coefficient (column 1 of the design `x`) once a confounder `w` is added to the
    treatment with weight κ_t and subtracted from the outcome with weight κ_y: DoWhy's linear
    `sensitivity_simulation` refit, as one least-squares solve."""
    confounded = x.copy()
    confounded[:, 1] += kappa_t * w
    coef, *_ = np.linalg.lstsq(confounded, y - kappa_y * w, rcond=None)
    return float(coef[1])


def hidden_confounder_strength(target: RefutationTarget, r2: float) -> tuple[float, float]:
    """(κ_t, κ_y): weights with which a standard-normal confounder explains a share `r2` of the residual
    variance of spend and of KPI (κ = √(r²/(1 − r²))·sd(residual)); κ_y takes the estimate's sign, so
    that subtracting κ_y·w from the KPI pushes the estimate toward zero."""
    s = float(np.sqrt(r2 / (1.0 - r2)))
    sign = 1.0 if target.estimate >= 0 else -1.0
    return s * target.summary.treatment_residual_sd, sign * s * target.summary.outcome_residual_sd


def hidden_confounder(n: int, seed: int) -> np.ndarray:
    """(n,) the standard-normal confounder DoWhy's `sensitivity_simulation` draws through scipy from
    numpy's global generator, when that generator is seeded with `seed`."""
    return np.random.RandomState(seed).standard_normal(n)


def placebo_permutations(n: int, simulations: int, random_state: np.random.RandomState) -> np.ndarray:
    """(B, n) the permutations DoWhy's permute placebo draws, in its order, from the same state."""
    return np.stack([random_state.choice(n, size=n, replace=False) for _ in range(simulations)])


def random_causes(n: int, simulations: int, random_state: np.random.RandomState) -> np.ndarray:
    """(B, n) the standard-normal columns DoWhy's random common cause draws, in its order."""
    return np.stack([random_state.normal(size=n) for _ in range(simulations)])


def subset_rows(n: int, fraction: float, simulations: int, random_state: np.random.RandomState) -> np.ndarray:
    """(B, k) the row positions `DataFrame.sample(frac=fraction)` draws in DoWhy's data subset refuter,
    in its order (k = round(fraction · n), without replacement)."""
    k = round(fraction * n)
    return np.stack([random_state.choice(n, size=k, replace=False) for _ in range(simulations)])


def refuter_p_value(value: float, draws: np.ndarray) -> float:
    """DoWhy's `test_significance` (AUTO) of `value` against the refuter's draws: the two-sided
    percentile p-value from 100 draws on, below that the one-sided normal tail of DoWhy's code."""
    from scipy import stats

    if len(draws) >= 100:
        half = float(np.mean((draws > value) + 0.5 * (draws == value)))
        return 2.0 * min(half, 1.0 - half)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (value - float(np.mean(draws))) / float(np.std(draws))
    return float(1.0 - stats.norm.cdf(z) if z > 0 else stats.norm.cdf(z))


def placebo(target: RefutationTarget, simulations: int, seed: int,
            thresholds: RefutationThresholds) -> RefutationResult:
    """Placebo treatment: the spend permuted across weeks, as DoWhy's `refute_placebo_treatment`
    (PERMUTE) does it, with the same draws from the same `np.random.RandomState(seed)`, the B refits
    done at once (`placebo_effects`); its p-value tests 0 against the placebo effects."""
    from scipy import stats

    estimate, spec, summary = target.estimate, target.spec, target.summary
    x, y = target.arrays()
    draws = placebo_effects(x, y, placebo_permutations(len(y), simulations, np.random.RandomState(seed)))
    new, p = float(np.mean(draws)), refuter_p_value(0.0, draws)
    z = stats.norm.ppf(1 - thresholds.significance / 2)
    in_se = new / summary.hac_se
    if p < thresholds.significance:
        case = PlaceboCase.SPURIOUS
    elif abs(summary.estimate) < z * summary.inference_se:
        case = PlaceboCase.UNPROVEN
    else:
        case = PlaceboCase.CLEAR
    message = case.render(in_se=in_se, t=summary.estimate / summary.inference_se)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.PLACEBO_TREATMENT, case, estimate, new, p,
                            in_se, message)


def random_common_cause(target: RefutationTarget, simulations: int, seed: int,
                        thresholds: RefutationThresholds) -> RefutationResult:
    """Random common cause: a standard-normal column added to the adjustment set, as DoWhy's
    `refute_random_common_cause` draws it, the B refits done at once (`random_cause_effects`)."""
    estimate, spec, summary = target.estimate, target.spec, target.summary
    x, y = target.arrays()
    draws = random_cause_effects(x, y, random_causes(len(y), simulations, np.random.RandomState(seed)))
    new = float(np.mean(draws))
    shift = abs(new - estimate) / summary.hac_se
    case = _shift_case(shift, thresholds, RandomCommonCauseCase)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.RANDOM_COMMON_CAUSE, case, estimate, new,
                            refuter_p_value(estimate, draws), shift, case.render(shift=shift))


def data_subset(target: RefutationTarget, simulations: int, seed: int,
                thresholds: RefutationThresholds) -> RefutationResult:
    """Data subset: re-estimated on random `subset_fraction` shares of the weeks, the subsets DoWhy's
    `refute_data_subset` draws from a `np.random.RandomState(seed)` (a state, not an int: with an int
    DoWhy redraws the same subset every simulation), the B refits done at once (`subset_effects`)."""
    estimate, spec, summary = target.estimate, target.spec, target.summary
    x, y = target.arrays()
    rows = subset_rows(len(y), thresholds.subset_fraction, simulations, np.random.RandomState(seed))
    draws = subset_effects(x, y, rows)
    new = float(np.mean(draws))
    shift = abs(new - estimate) / summary.hac_se
    case = _shift_case(shift, thresholds, DataSubsetCase)
    message = case.render(share=round(100 * thresholds.subset_fraction), shift=shift)
    return RefutationResult(spec.channel, spec.effect, RefuterKind.DATA_SUBSET, case, estimate, new,
                            refuter_p_value(estimate, draws), shift, message)


def unobserved_common_cause(target: RefutationTarget, seed: int, thresholds: RefutationThresholds,
                            benchmarks: list[ConfounderBenchmark] | None = None) -> RefutationResult:
    """DoWhy's `sensitivity_simulation` (direct simulation, linear effects), refitted in numpy from the
    same draw (`hidden_confounder_effect`): it adds κ_t·w to the spend and −κ_y·w to the KPI (w
    standard normal). With κ = s·sd(residual) and s = √(r²/(1 − r²)), w explains a share r² of the
    residual variance of each; κ_y takes the estimate's sign so that the confounder pushes the
    estimate toward zero. The expected shift is r²·sd(KPI residual)/sd(spend residual) from the
    confounding plus β·r² from the noise w adds to the observed spend.

    With `benchmarks`, a verdict against the estimate counts only when the simulated confounder is
    no stronger than one as strong as the strongest observed confounder (r² at most its partial R²
    with spend and with KPI), or when no comparison is possible (every benchmark impossible);
    otherwise the row says so and passes. With no observed confounder at all, any is stronger."""
    from scipy import stats

    estimate, spec, summary = target.estimate, target.spec, target.summary
    r2 = thresholds.confounder_partial_r2
    x, y = target.arrays()
    new = hidden_confounder_effect(x, y, hidden_confounder(len(y), seed), *hidden_confounder_strength(target, r2))
    in_se = new / summary.inference_se
    z = stats.norm.ppf(1 - thresholds.significance / 2)
    details: dict[str, object] = {}
    if benchmarks is not None and not benchmarks:  # nothing observed confounds it: any confounder is stronger
        details = {"benchmark": "none under the DAG", "multiple": "", "bench_d": 0.0, "bench_y": 0.0}
    elif benchmarks is not None:  # all impossible: no comparison, the verdict stands
        details = _benchmark_details(benchmarks, thresholds.benchmark_multiple) or {}
    stronger = bool(details) and (r2 > details["bench_d"] / 100 or r2 > details["bench_y"] / 100)
    unproven = abs(estimate) < z * summary.inference_se
    if np.sign(new) != np.sign(estimate) or new == 0:
        case = HiddenConfounderCase.STRONGER_REVERSED if stronger and not unproven else HiddenConfounderCase.REVERSED
    elif abs(new) < z * summary.inference_se:
        case = (HiddenConfounderCase.STRONGER_NOT_SIGNIFICANT if stronger and not unproven
                else HiddenConfounderCase.NOT_SIGNIFICANT)
    else:
        case = HiddenConfounderCase.SURVIVES
    p = float(2 * stats.t.sf(abs(in_se), summary.df))
    return RefutationResult(spec.channel, spec.effect, RefuterKind.UNOBSERVED_COMMON_CAUSE, case, estimate, new,
                            p, in_se, case.render(pct=round(100 * r2), in_se=in_se,
                                                  direction="negative" if estimate < 0 else "positive", **details))


def sensitivity(spec: EffectSpec, summary: RegressionSummary, thresholds: RefutationThresholds,
                benchmarks: list[ConfounderBenchmark] | None = None) -> RefutationResult:
    """Cinelli–Hazlett robustness value RV_α: the confounder strength (partial R² with both spend
    and KPI) that would make the effect not significant, computed with the pipeline's standard
    error (t = estimate / inference SE) so that the transform selection counts. Its status reads it
    against the benchmarks: REVIEW when the effect is not significant, or when a confounder as
    strong as the strongest observed control would make it so (the `benchmark_confounder` row);
    PASS otherwise. Also reported: the estimate bias-adjusted for a confounder with partial R²
    `confounder_partial_r2` with both (|bias| = se·√df·√(r²·r²/(1 − r²))) and its p-value."""
    from scipy import stats
    rv = robustness_value(summary.estimate / summary.ols_se, summary.df)
    rv_alpha = robustness_value(summary.estimate / summary.inference_se, summary.df, thresholds.significance)
    r2 = thresholds.confounder_partial_r2
    adjusted = summary.estimate - np.sign(summary.estimate) * omitted_bias(summary.ols_se, summary.df, r2, r2)
    # Scaled to the inference SE so that the p-value carries the selection too.
    se = adjusted_se(summary.inference_se, summary.df, r2, r2)
    p = float(2 * stats.t.sf(abs(adjusted) / se, summary.df - 1))
    bench = benchmark_confounder(spec, summary, thresholds, benchmarks or [])
    details = _benchmark_details(benchmarks or [], thresholds.benchmark_multiple)
    if rv_alpha == 0.0:  # unproven rather than fragile: the placebo row says the same
        case = RobustnessValueCase.UNPROVEN
    elif bench.case in (BenchmarkConfounderCase.ERASED, BenchmarkConfounderCase.REVERSED):
        case = RobustnessValueCase.FRAGILE
    else:
        case = RobustnessValueCase.ROBUST if details else RobustnessValueCase.ROBUST_ALONE
    message = case.render(rv_alpha=100 * rv_alpha, rv=100 * rv, level=round(100 * (1 - thresholds.significance)),
                          **(details or {}))
    return RefutationResult(spec.channel, spec.effect, RefuterKind.ROBUSTNESS_VALUE, case, summary.estimate,
                            float(adjusted), p, rv_alpha, message)


def refute_effect(data: pd.DataFrame, g: nx.DiGraph, spec: EffectSpec, outcome: str, simulations: int, seed: int,
                  thresholds: RefutationThresholds, pipeline_se: float | None = None, nodes: Collection[str] = (),
                  roi_factor: float | None = None, controls: Collection[str] | None = None,
                  estimate: float | None = None) -> list[RefutationResult]:
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
    nodes
        The DAG's node names, so a control carried by several columns (Fourier seasonality) is one
        benchmark; without them every adjustment column is its own.
    roi_factor
        ROI per unit of the estimate, so the benchmark row's message reads in ROI.
    controls
        The DAG nodes that may serve as benchmarks (the config's controls); None: every observed
        ancestor of the treatment, other channels included. A channel that drives another (TV →
        search) is not a yardstick for hidden confounders: it flags sound estimates.
    estimate
        DoWhy's estimate of the effect as the estimation step published it; None: fitted here.
    """
    if estimate is None:
        estimate = fit_dowhy(data, g, spec, outcome).value
    summary = regression_summary(data, spec, outcome, pipeline_se)
    target = RefutationTarget(data[observed_nodes(data, g)], outcome, estimate, spec, summary)
    ancestors = nx.ancestors(g, spec.channel)
    if controls is not None:  # benchmarks are observed controls, not other channels
        grouped = benchmark_groups(spec.adjustment, nodes)
        ancestors = {c for name, cols in grouped.items() if name in controls for c in cols} & ancestors
    benchmarks = confounder_benchmarks(data, spec, outcome, summary, thresholds.benchmark_multiple, nodes, ancestors)
    return [
        placebo(target, simulations, _seed(seed, 1), thresholds),
        random_common_cause(target, simulations, _seed(seed, 2), thresholds),
        data_subset(target, simulations, _seed(seed, 3), thresholds),
        unobserved_common_cause(target, _seed(seed, 4), thresholds, benchmarks),
        sensitivity(spec, summary, thresholds, benchmarks),
        benchmark_confounder(spec, summary, thresholds, benchmarks, roi_factor),
    ]


def refute_all(data: pd.DataFrame, g: nx.DiGraph, specs: list[EffectSpec], outcome: str, simulations: int, seed: int,
               thresholds: RefutationThresholds,
               pipeline_se: dict[tuple[str, EffectType], float] | None = None, nodes: Collection[str] = (),
               roi_factors: dict[tuple[str, EffectType], float] | None = None,
               controls: Collection[str] | None = None,
               estimates: dict[tuple[str, EffectType], float] | None = None) -> list[RefutationResult]:
    """Every refuter on every spec (see `refute_effect` for the arguments); `pipeline_se` maps
    (channel, effect) to the ATE's bootstrap standard error, `roi_factors` to the ROI per unit of
    ATE, `estimates` to DoWhy's published ATE (not fitted again), and each spec's seed is derived
    from `seed` and its position."""
    ses, factors, published = pipeline_se or {}, roi_factors or {}, estimates or {}
    return [r for j, spec in enumerate(specs)
            for r in refute_effect(data, g, spec, outcome, simulations, _seed(seed, 100 + j), thresholds,
                                   ses.get((spec.channel, spec.effect)), nodes,
                                   factors.get((spec.channel, spec.effect)), controls,
                                   published.get((spec.channel, spec.effect)))]


def refutations_table(results: list[RefutationResult]) -> pd.DataFrame:
    return pd.DataFrame([{
        "channel": r.channel, "effect": r.effect.value, "refuter": r.refuter.value, "status": r.status.value,
        "estimate": r.estimate, "new_effect": r.new_effect, "p_value": r.p_value, "statistic": r.statistic,
        "message": r.message, "recommendation": r.recommendation, "new_effect_low": r.new_effect_low,
        "new_effect_high": r.new_effect_high} for r in results], columns=REFUTATION_COLUMNS)


def channel_robustness(results: list[RefutationResult]) -> dict[str, Status]:
    """Per channel, the worst status over all its refuters and effects."""
    by_channel: dict[str, list[Status]] = {}
    for r in results:
        by_channel.setdefault(r.channel, []).append(r.status)
    return {c: Status.worst(s) for c, s in by_channel.items()}
