"""Per-channel causal effects with DoWhy, under the user's DAG.

For each channel: the adjustment set is DoWhy's default backdoor set (a smallest valid set for
the total effect; the controlled-direct-effect set, which holds the mediators, for the direct
effect), computed by d-separation in `dag.adjustment` in time polynomial in the DAG (DoWhy's own
subset search is combinatorial); we add the KPI's other causes that keep the set valid (they cut
noise, not bias; validity is re-checked by d-separation), and DoWhy's
`backdoor.linear_regression` estimates the effect per unit of transformed media, on an
IdentifiedEstimand that carries the set. Transformed media is zero when spend is zero, so

    incremental_kpi = ATE × Σ_t x_t        roi = incremental_kpi / Σ_t spend_t

A channel whose mediators are themselves channels (tv → search → sales) reaches the KPI through
the mediator's own adstock and saturation, which a regression linear in the channel's media
cannot follow; its total effect is computed by g-computation instead (`gcomputation_weekly`):
the outcome model is the direct-effect regression, a linear model of each mediator's spend gives
the mediator's counterfactual spend, and that spend goes through the mediator's transform.

The mediator's spend model is chosen from the data (linear in the treatment's saturated media or
in its carried-over spend; additive or proportional noise) by likelihood, and the choice recorded.

Every row also carries the marginal ROI (`mroi`: extra KPI per extra unit of spend when every
week's spend rises by 1%, through the channel's transform and its mediators) and where ROI against
zero stands (`roi_support`, `extrapolated_share`, from the overlap measures). A channel the overlap
gate withholds, or whose effect the DAG does not identify, fails alone, with its reason; the step
fails only when no channel is left.

The bootstrap (`robustness`) rebuilds exactly these design matrices, with the transforms
re-selected in every resample, so its intervals describe the estimator whose point value DoWhy
reports.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.dag.adjustment import (
    BUDGET_RULE,
    IdentificationMeter,
    criterion_graph,
    is_valid_adjustment,
    minimum_adjustment,
    size,
)
from cmmm_pipeline.dag.feedback import feedback_reason, lagged_kpi_nodes
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.dag.overlap import ChannelSupport, OverlapThresholds, RoiSupport, media_support
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.media.features import ChannelTransform, node_columns

logging.getLogger("dowhy").setLevel(logging.WARNING)


class Estimator(Enum):
    """How a row's incremental KPI was computed (the `estimator` column)."""

    LINEAR = "linear_regression"
    """DoWhy's backdoor.linear_regression: ATE × Σ_t x_t."""
    G_COMPUTATION = "g_computation"
    """Total (and indirect) effect through mediator channels' own transforms, see `gcomputation_weekly`."""
    G_ESTIMATION = "g_estimation"
    """A channel whose budget follows sales: the planning residual instruments its media (`effects.feedback`)."""


@dataclass(frozen=True)
class EffectSpec:
    """What one regression estimates: the treatment, the effect type and the adjustment columns."""

    channel: str
    effect: EffectType
    adjustment: tuple[str, ...]
    mediators: tuple[str, ...]


@dataclass(frozen=True)
class EffectEstimate:
    channel: str
    effect: EffectType
    ate: float
    """KPI change per unit of transformed media (DoWhy's estimate)."""
    incremental_kpi: float
    spend: float
    roi: float
    adjustment: tuple[str, ...]
    mediators: tuple[str, ...]


def with_precision_controls(g: nx.DiGraph, treatment: str, outcome: str, adjustment: set[str],
                            effect: EffectType, observed: set[str] | None = None,
                            meter: IdentificationMeter | None = None) -> tuple[str, ...]:
    """Add the outcome's other observed parents where the set stays valid: unbiased, and far less
    noisy. `observed` (default: every node) excludes latent nodes, which have no data column.
    One d-separation test per parent, in name order, on the criterion graph (built once)."""
    meter = meter if meter is not None else IdentificationMeter()
    result = set(adjustment)
    h = criterion_graph(g, treatment, outcome, effect)
    h_size = size(h)
    forbidden = {treatment} | (nx.descendants(g, treatment) if effect is EffectType.TOTAL else set())
    for parent in sorted(g.predecessors(outcome)):
        if parent in result or parent in forbidden or (observed is not None and parent not in observed):
            continue
        if h.in_degree(parent) == 0 and h.out_degree(parent) == 1:
            result.add(parent)  # a root whose only edge is into the outcome: on no other path, opens none
            continue
        meter.charge(h_size, treatment, effect)
        if is_valid_adjustment(h, treatment, outcome, result | {parent}):
            result.add(parent)
    return tuple(sorted(result))


def observed_nodes(data: pd.DataFrame, g: nx.DiGraph) -> list[str]:
    """Graph nodes with a data column; the others are latent, and DoWhy treats them as unobserved."""
    return [n for n in g.nodes if n in data.columns]


def _causal_model(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str):
    from dowhy import CausalModel

    with warnings.catch_warnings():
        # Latent nodes are left out of the data on purpose; DoWhy's notice about them is expected.
        warnings.filterwarnings("ignore", message=".*assumed unobserved because they are not in the dataset.*")
        return CausalModel(data=data[observed_nodes(data, g)], treatment=treatment, outcome=outcome, graph=g,
                           effect_modifiers=[])


def identify(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str, effect: EffectType,
             meter: IdentificationMeter | None = None) -> EffectSpec:
    """The adjustment set on the expanded graph: DoWhy's default backdoor set (a smallest valid set
    of observed nodes, computed by d-separation in `dag.adjustment`, not by DoWhy's subset search)
    plus the precision controls. Raises EstimationError `not-identifiable` when no observed set
    satisfies the backdoor (total) or controlled-direct-effect (direct) criterion, and
    `identification-budget` when the meter's budget runs out."""
    if effect is EffectType.INDIRECT:
        raise ValueError("the indirect effect is total − direct; identify those two instead")
    meter = meter if meter is not None else IdentificationMeter()
    observed = set(observed_nodes(data, g))
    backdoor = minimum_adjustment(g, treatment, outcome, observed, effect, meter)
    if backdoor is None:
        latent = sorted(set(g.nodes) - observed)
        raise EstimationError(
            "not-identifiable", f"channel '{treatment}'",
            f"its {effect.value} effect on '{outcome}' has no valid adjustment set of observed variables under "
            f"the DAG" + (f" (unobserved: {', '.join(latent)})." if latent else "."),
            "measure the hidden confounder and add it as a control, run a lift test for this channel, "
            "or revise the DAG.")
    adjustment = with_precision_controls(g, treatment, outcome, set(backdoor), effect, observed, meter)
    mediator_set = tuple(sorted((nx.descendants(g, treatment) & nx.ancestors(g, outcome)) & observed))
    return EffectSpec(treatment, effect, adjustment, mediator_set if effect is EffectType.DIRECT else ())


def estimand_for(spec: EffectSpec, outcome: str):
    """DoWhy's IdentifiedEstimand for the spec's adjustment set, as `identify_effect` would return it
    had it chosen this set: stored under "backdoor" (the key `backdoor.*` estimators and the
    refuters read) and under the default id, so that every reader sees the same set."""
    from dowhy.causal_identifier import EstimandType, IdentifiedEstimand, construct_adjustment_estimand

    adjustment = list(spec.adjustment)
    expression = construct_adjustment_estimand([spec.channel], [outcome], adjustment)
    estimand_type = (EstimandType.NONPARAMETRIC_ATE if spec.effect is EffectType.TOTAL
                     else EstimandType.NONPARAMETRIC_CDE)
    return IdentifiedEstimand(None, treatment_variable=[spec.channel], outcome_variable=[outcome],
                              estimand_type=estimand_type,
                              estimands={"backdoor1": expression, "backdoor": expression, "iv": None,
                                         "frontdoor": None},
                              backdoor_variables={"backdoor1": adjustment, "backdoor": list(adjustment)},
                              instrumental_variables=[], frontdoor_variables=[], default_backdoor_id="backdoor1")


@dataclass(frozen=True)
class DowhyFit:
    """DoWhy's objects for one spec: the model, the estimand carrying our adjustment set, and the
    estimate (refuters need all three)."""

    model: Any
    """dowhy.CausalModel"""
    estimand: Any
    """dowhy IdentifiedEstimand, with the spec's adjustment set"""
    estimate: Any
    """dowhy CausalEstimate"""

    @property
    def value(self) -> float:
        return float(self.estimate.value)


def fit_dowhy(data: pd.DataFrame, g: nx.DiGraph, spec: EffectSpec, outcome: str) -> DowhyFit:
    """DoWhy `backdoor.linear_regression` with the spec's adjustment set (no DoWhy identification:
    the estimand is built from the set, see `estimand_for`)."""
    model = _causal_model(data, g, spec.channel, outcome)
    estimand = estimand_for(spec, outcome)
    with warnings.catch_warnings():
        # dowhy's linear estimator groups by (absent) effect modifiers through a pandas path that
        # warns about a future default; the estimate does not depend on it.
        warnings.filterwarnings("ignore", category=FutureWarning, module="dowhy")
        result = model.estimate_effect(estimand, method_name="backdoor.linear_regression", effect_modifiers=[],
                                       control_value=0.0, treatment_value=1.0)
    return DowhyFit(model, estimand, result)


def estimate(data: pd.DataFrame, g: nx.DiGraph, spec: EffectSpec, outcome: str, spend: float) -> EffectEstimate:
    """DoWhy's ATE per unit of transformed media, turned into incremental KPI and ROI."""
    ate = fit_dowhy(data, g, spec, outcome).value
    incremental = ate * float(data[spec.channel].sum())
    return EffectEstimate(spec.channel, spec.effect, ate, incremental, spend, incremental / spend if spend else
                          float("nan"), spec.adjustment, spec.mediators)


def design(data: pd.DataFrame, spec: EffectSpec) -> np.ndarray:
    """[1, treatment, adjustment...]: the exact regressors of the linear backdoor estimator."""
    cols = [spec.channel, *spec.adjustment]
    return np.column_stack([np.ones(len(data)), data[cols].to_numpy(dtype=float)])


# ---------------------------------------------------------------------------------------------
# G-computation through mediator channels


def batched_ols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, p) OLS coefficients of B regressions at once; ill-conditioned ones give NaN. The point
    estimate and the bootstrap share it, so the bootstrap's identity resample is the point."""
    xt = x.transpose(0, 2, 1)
    xtx = xt @ x
    xty = (xt @ y[:, :, None])[..., 0]
    ok, solution = solve_normal_equations(xtx, xty[..., None])
    out = np.full(xty.shape, np.nan)
    out[ok] = solution[..., 0]
    return out


MAX_CONDITION = 1e12
"""Normal equations whose column-scaled Gram matrix is worse conditioned than this are singular."""


def solve_normal_equations(gram: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve B systems gram_b · s = rhs_b ((B, p, p) and (B, p, k)) after scaling each column to unit
    norm, so that a control measured in millions (a competitor's sales) does not make a well-posed
    design look singular: the condition number is judged on the scaled matrix, which only collinear
    columns make large. Returns the mask of solvable systems and their (n_ok, p, k) solutions."""
    diag = np.einsum("bii->bi", gram)
    scale = np.sqrt(np.where(diag > 0, diag, np.nan))
    scaled = gram / (scale[:, :, None] * scale[:, None, :])
    finite = np.isfinite(scaled).all(axis=(1, 2))
    ok = finite.copy()
    # The scaled Gram matrix is symmetric: its condition number is the ratio of its extreme eigenvalues,
    # which `eigvalsh` finds in half the time of the SVD behind `np.linalg.cond`.
    eigen = np.linalg.eigvalsh(scaled[finite])
    ok[finite] = (eigen[:, 0] > 0) & (eigen[:, -1] < MAX_CONDITION * eigen[:, 0])
    solution = np.linalg.solve(scaled[ok], rhs[ok] / scale[ok][:, :, None]) / scale[ok][:, :, None]
    return ok, solution


MARGINAL_STEP = 0.01
"""The marginal ROI's spend change: every week's spend × (1 + 0.01)."""


class Contrast(Enum):
    """The counterfactual an estimate compares the observed weeks with."""

    ZERO = "zero"
    """Spend 0 in every week: the incremental KPI and ROI."""
    MARGINAL = "marginal"
    """Spend × 1.01 in every week: the marginal ROI."""


CONTRASTS = tuple(Contrast)


class MediatorEquation(Enum):
    """What a mediator channel's spend is modelled as linear in (chosen from the data, per mediator)."""

    SATURATED = "saturated_media"
    """The treatment's transformed media (adstocked and saturated)."""
    CARRYOVER = "carryover"
    """The treatment's carried-over spend (adstocked, unsaturated, over its mean): a mediator bought
    in proportion to the treatment's spend (search answering TV) does not saturate with it."""


EQUATIONS = tuple(MediatorEquation)


class MediatorNoise(Enum):
    """How the mediator's own variation enters (chosen from the data with the equation): what the
    counterfactual holds fixed when the treatment changes."""

    ADDITIVE = "additive"
    """spend = fit + e: a change of the treatment shifts every week's spend by the same amount."""
    PROPORTIONAL = "proportional"
    """spend = fit × (1 + u): the shift is proportional to the week's own level, as for a mediator
    whose spend varies by multiplicative (lognormal) plans."""


MODELS = tuple((e, n) for e in EQUATIONS for n in MediatorNoise)
"""Every (equation, noise) pair the mediator's model is chosen among, in index order."""


def model_label(index: int) -> str:
    equation, noise = MODELS[index]
    return f"{equation.value}, {noise.value}"


@dataclass(frozen=True)
class ChannelSeries:
    """A channel's observed weekly spend and its applied transform: what a counterfactual needs to
    push a changed spend through the channel's own adstock and saturation."""

    spend: np.ndarray
    transform: ChannelTransform

    def media(self, factor: float = 1.0) -> np.ndarray:
        """Transformed media of `factor` × the observed spend, on the observed spend's scale."""
        return self.transform.apply(factor * self.spend, self.transform.reference(self.spend))

    def carryover(self) -> np.ndarray:
        """Adstocked spend over its mean (unsaturated): the CARRYOVER mediator equation's regressor."""
        return self.transform.adstocked(self.spend) / self.transform.reference(self.spend)

    def deltas(self, equation: MediatorEquation | None = None) -> tuple[np.ndarray, ...]:
        """Per contrast, the regressor as it ran minus at the counterfactual: the media (None or
        SATURATED) or the carryover (linear in spend, so its ×1.01 change is 1% of it)."""
        if equation is MediatorEquation.CARRYOVER:
            carry = self.carryover()
            return carry, -MARGINAL_STEP * carry
        media = self.media()
        return media, media - self.media(1.0 + MARGINAL_STEP)


def channel_series(raw: pd.DataFrame, config: PipelineConfig,
                   transforms: dict[str, ChannelTransform]) -> dict[str, ChannelSeries]:
    return {c.name: ChannelSeries(raw[c.spend_column].to_numpy(dtype=float), transforms[c.name])
            for c in config.channels}


def marginal_media_total(series: ChannelSeries) -> float:
    """Σ_t [x_t(1.01 · spend) − x_t(spend)]: a linear effect's extra KPI per unit ATE."""
    return float(-series.deltas()[1].sum())


@dataclass(frozen=True)
class MediatorModel:
    """The mediator's spend regressed on a regressor of the treatment (its media or its carryover,
    see `MediatorEquation`) and the backdoor set of treatment → mediator (DoWhy's identification)."""

    mediator: str
    adjustment: tuple[str, ...]

    def spec(self, treatment: str) -> EffectSpec:
        return EffectSpec(treatment, EffectType.TOTAL, self.adjustment, ())


@dataclass(frozen=True)
class GComputationSpec:
    """A channel's total effect by g-computation: the direct-effect regression as the outcome
    model and one linear spend model per mediator channel."""

    channel: str
    direct: EffectSpec
    mediators: tuple[MediatorModel, ...]

    def column(self, mediator: str) -> int:
        """The mediator's column in the outcome design [1, treatment, adjustment...]."""
        return 1 + (self.direct.channel, *self.direct.adjustment).index(mediator)


def gcomputation_spec(data: pd.DataFrame, g: nx.DiGraph, direct: EffectSpec,
                      channels: Sequence[str]) -> GComputationSpec | None:
    """The g-computation of `direct.channel`'s total effect, or None where it does not apply and the
    linear total regression stays: a mediator that is not a channel (no transform to push spend
    through), a chain of mediators, or a treatment → mediator effect the DAG does not identify."""
    mediators = direct.mediators
    if direct.effect is not EffectType.DIRECT or not mediators or any(m not in channels for m in mediators):
        return None
    if any(not g.has_edge(direct.channel, m) or nx.descendants(g, m) & set(mediators) for m in mediators):
        return None
    try:
        models = tuple(MediatorModel(m, identify(data, g, direct.channel, m, EffectType.TOTAL).adjustment)
                       for m in mediators)
    except EstimationError as exc:
        if exc.rule == BUDGET_RULE:
            raise
        return None
    return GComputationSpec(direct.channel, direct, models)


def counterfactual_media(spend: np.ndarray, transform: ChannelTransform, shift: np.ndarray) -> np.ndarray:
    """(B, weeks) transformed media of `spend − shift` (each row one shift, clipped at zero spend),
    on the scale of the observed spend: the reference stays that of the data."""
    changed = np.clip(spend[None, :] - shift, 0.0, None)
    return transform.apply(changed.T, transform.reference(spend)).T


@dataclass(frozen=True)
class MediatorArrays:
    """One mediator on B row sets: its spend model's designs (one per `MediatorEquation`) on the
    rows and over all weeks, its spend on the rows, and over all weeks its observed transformed
    media, how a shift of its spend transforms, and each equation's regressor change per contrast."""

    designs: tuple[np.ndarray, ...]
    """Per equation (B, rows, q): [1, regressor of the treatment, adjustment...]."""
    spend: np.ndarray
    """(B, rows)"""
    column: int
    """Its column in the outcome design."""
    observed: np.ndarray
    """(B, weeks)"""
    counterfactual: Callable[[np.ndarray], np.ndarray]
    """(B, weeks) spend shift → (B, weeks) counterfactual transformed media."""
    deltas: tuple[tuple[np.ndarray, ...], ...]
    """Per equation, per contrast: (B, weeks) the regressor as it ran minus at the counterfactual."""
    observed_spend: np.ndarray
    """(weeks,) its observed spend: the support its counterfactual spend is checked against."""
    full_designs: tuple[np.ndarray, ...]
    """Per equation (B, weeks, q): the design over all weeks (the fitted level a proportional
    shift is relative to)."""


@dataclass(frozen=True)
class GComputed:
    """The g-computed total effect on B row sets."""

    weekly: tuple[np.ndarray, ...]
    """Per contrast (B, weeks): the effect as it ran minus at the counterfactual (negative for the
    marginal contrast, whose counterfactual is more spend)."""
    equations: np.ndarray
    """(B, mediators) index into MODELS of each mediator's chosen (equation, noise)."""
    outside: np.ndarray
    """(B, mediators) share of weeks whose mediator spend with the treatment off lies below the
    lowest spend the mediator was observed at."""


@dataclass(frozen=True)
class MediatorFit:
    """The chosen mediator model on B row sets."""

    coef: np.ndarray
    """(B, q) its coefficients."""
    chosen: np.ndarray
    """(B,) index into MODELS."""


def choose_mediator_model(designs: Sequence[np.ndarray], spend: np.ndarray) -> MediatorFit:
    """Fit every (equation, noise) pair and keep the one of highest Gaussian likelihood: additive
    noise −n/2·log σ̂²; proportional noise −n/2·log σ̂_u² − Σ log fit (u = residual / fit, the last
    term the change of variables). The pairs have the same number of parameters, so this is also
    the AIC ranking. Proportional noise needs a positive fit in every row."""
    n = spend.shape[1]
    coefs, scores = [], []
    for x in designs:
        b = batched_ols(x, spend)
        ok = np.isfinite(b).all(axis=1)
        fit = (x @ np.nan_to_num(b)[:, :, None])[..., 0]
        r = spend - fit
        additive = -0.5 * n * np.log(np.maximum(np.mean(r**2, axis=1), 1e-300))
        positive = (fit > 0).all(axis=1)
        safe = np.where(fit > 0, fit, 1.0)
        proportional = (-0.5 * n * np.log(np.maximum(np.mean((r / safe) ** 2, axis=1), 1e-300))
                        - np.sum(np.log(safe), axis=1))
        for noise, score in ((MediatorNoise.ADDITIVE, additive), (MediatorNoise.PROPORTIONAL, proportional)):
            valid = ok & (positive if noise is MediatorNoise.PROPORTIONAL else True)
            coefs.append(b)
            scores.append(np.where(valid, score, -np.inf))
    chosen = np.argmax(np.column_stack(scores), axis=1)
    coef = np.stack(coefs, axis=1)[np.arange(len(chosen)), chosen]
    return MediatorFit(coef, chosen)


def gcomputation_weekly(outcome_design: np.ndarray, y: np.ndarray, treatment_deltas: Sequence[np.ndarray],
                        mediators: Sequence[MediatorArrays]) -> GComputed:
    """Per contrast (B, weeks): β_c·Δx_c + Σ_m β_m·(x_m − x_m_cf), with x_m_cf the mediator's
    transform of spend_m − shift: shift = b_m·Δd (additive noise held at its observed value) or
    spend_m·b_m·Δd / fit_m (proportional noise held), Δd the change of the chosen equation's
    regressor. β from the outcome (direct-effect) regression, the mediator's model fitted and
    chosen on the rows."""
    beta = batched_ols(outcome_design, y)
    weekly = [beta[:, 1:2] * d for d in treatment_deltas]
    b_count = beta.shape[0]
    equations = np.zeros((b_count, len(mediators)), dtype=int)
    outside = np.zeros((b_count, len(mediators)))
    for i, m in enumerate(mediators):
        fit = choose_mediator_model(m.designs, m.spend)
        equations[:, i] = fit.chosen
        equation = np.array([EQUATIONS.index(MODELS[c][0]) for c in fit.chosen])
        proportional = np.array([MODELS[c][1] is MediatorNoise.PROPORTIONAL for c in fit.chosen])
        full = np.select([equation[:, None, None] == e for e in range(len(EQUATIONS))], m.full_designs)
        level = (full @ np.nan_to_num(fit.coef)[:, :, None])[..., 0]
        scale = np.where(proportional[:, None] & (level > 0), m.observed_spend[None, :] / np.where(level > 0, level, 1.0),
                         1.0)
        for j in range(len(weekly)):
            delta = np.select([equation[:, None] == e for e in range(len(EQUATIONS))], [d[j] for d in m.deltas])
            shift = scale * fit.coef[:, 1][:, None] * delta
            weekly[j] = weekly[j] + beta[:, m.column][:, None] * (m.observed - m.counterfactual(shift))
            if j == 0:
                below = (m.observed_spend[None, :] - shift) < float(m.observed_spend.min()) - 1e-9
                outside[:, i] = below.mean(axis=1)
    return GComputed(tuple(weekly), equations, outside)


def design_with(data: pd.DataFrame, spec: EffectSpec, treatment: np.ndarray) -> np.ndarray:
    """`design(data, spec)` with the treatment's column replaced by `treatment`."""
    x = design(data, spec)
    x[:, 1] = treatment
    return x


def gcomputation_point(data: pd.DataFrame, spec: GComputationSpec, series: dict[str, ChannelSeries],
                       outcome: str) -> np.ndarray:
    """(weeks,) the total effect per week on the observed data (against zero spend)."""
    return gcomputation_full(data, spec, series, outcome).weekly[0][0]


def gcomputation_full(data: pd.DataFrame, spec: GComputationSpec, series: dict[str, ChannelSeries],
                      outcome: str) -> GComputed:
    """Every contrast of the g-computed total on the observed data (B = 1)."""
    treatment = series[spec.channel]
    regressors = {MediatorEquation.SATURATED: data[spec.channel].to_numpy(dtype=float),
                  MediatorEquation.CARRYOVER: treatment.carryover()}
    mediators = []
    for m in spec.mediators:
        designs = tuple(design_with(data, m.spec(spec.channel), regressors[e])[None] for e in EQUATIONS)
        mediators.append(MediatorArrays(
            designs, series[m.mediator].spend[None], spec.column(m.mediator),
            data[m.mediator].to_numpy(dtype=float)[None],
            partial(counterfactual_media, series[m.mediator].spend, series[m.mediator].transform),
            tuple(tuple(d[None] for d in treatment.deltas(e)) for e in EQUATIONS), series[m.mediator].spend, designs))
    deltas = [d[None] for d in treatment.deltas()]
    return gcomputation_weekly(design(data, spec.direct)[None], data[outcome].to_numpy(dtype=float)[None],
                               deltas, mediators)


def naive_coefficients(data: pd.DataFrame, channels: list[str], controls: list[str], outcome: str) -> dict[str, float]:
    """One OLS of the KPI on every channel and control, no DAG: it conditions on mediators, so a
    channel that works through another (TV through search) loses that part of its credit."""
    x = np.column_stack([np.ones(len(data)), data[channels + controls].to_numpy(dtype=float)])
    beta, *_ = np.linalg.lstsq(x, data[outcome].to_numpy(dtype=float), rcond=None)
    return {c: float(b) for c, b in zip(channels, beta[1:1 + len(channels)])}


# ---------------------------------------------------------------------------------------------
# Inference


def newey_west_lags(n: int) -> int:
    """Newey–West's rule of thumb for the HAC lags of n weeks: floor(4 (n / 100)^(2/9))."""
    return int(np.floor(4 * (n / 100.0) ** (2.0 / 9.0)))


def hac_pvalue(x: np.ndarray, y: np.ndarray, column: int = 1, maxlags: int | None = None) -> tuple[float, float]:
    """Two-sided p-value and HAC (Newey–West) standard error of one coefficient: valid under the
    serial correlation of weekly residuals, where the classical OLS p-value is too small."""
    import statsmodels.api as sm

    n = len(y)
    lags = maxlags if maxlags is not None else newey_west_lags(n)
    fit = sm.OLS(y, x).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)
    return float(fit.pvalues[column]), float(fit.bse[column])


# ---------------------------------------------------------------------------------------------
# All channels


@dataclass(frozen=True)
class NotEstimated:
    """An effect the DAG does not identify from the observed columns, and why."""

    channel: str
    effect: EffectType
    reason: str


def channel_specs(data: pd.DataFrame, g_expanded: nx.DiGraph, g_nodes: nx.DiGraph, channels: list[str],
                  outcome: str) -> list[EffectSpec]:
    """Total effect for every channel; direct as well where the DAG gives it a mediator. Raises
    EstimationError on the first effect that is not identifiable."""
    specs, failures = identify_channels(data, g_expanded, g_nodes, channels, outcome)
    if failures:
        raise EstimationError("not-identifiable", f"channel '{failures[0].channel}'", failures[0].reason,
                              "see the identification table.")
    return specs


def has_mediator(g_nodes: nx.DiGraph, channel: str, outcome: str, latent: Collection[str] = ()) -> bool:
    """Whether the DAG gives the channel an observed mediator, i.e. a direct effect to estimate."""
    return any(nx.has_path(g_nodes, m, outcome) for m in g_nodes.successors(channel)
               if m != outcome and m not in latent)


def identify_channels(data: pd.DataFrame, g_expanded: nx.DiGraph, g_nodes: nx.DiGraph, channels: list[str],
                      outcome: str, meter: IdentificationMeter | None = None
                      ) -> tuple[list[EffectSpec], list[NotEstimated]]:
    """Like `channel_specs`, but a channel whose effect is not identifiable fails alone: it is
    returned with its reason while the other channels go on. One budget (`meter`) for all of them."""
    specs: list[EffectSpec] = []
    failures: list[NotEstimated] = []
    latent = [n for n in g_expanded.nodes if n not in data.columns]
    meter = meter if meter is not None else IdentificationMeter()
    lagged = lagged_kpi_nodes(data, outcome, [n for n in g_nodes if n not in channels and n != outcome])
    for channel in channels:
        mediated = has_mediator(g_nodes, channel, outcome, latent)
        effects = [EffectType.TOTAL] + ([EffectType.DIRECT] if mediated else [])
        for effect in effects:
            feedback = feedback_reason(g_nodes, channel, outcome, lagged)
            if feedback is not None:  # budgets that follow sales: no valid adjustment, withheld
                failures.append(NotEstimated(channel, effect, feedback))
                continue
            try:
                specs.append(identify(data, g_expanded, channel, outcome, effect, meter))
            except EstimationError as exc:
                if exc.rule == BUDGET_RULE:
                    raise
                failures.append(NotEstimated(channel, effect, f"{exc.detail} {exc.fix}"))
    return specs, failures


def estimates_table(data: pd.DataFrame, g_expanded: nx.DiGraph, specs: list[EffectSpec], outcome: str,
                    spends: dict[str, float], naive: dict[str, float],
                    failures: list[NotEstimated] | None = None,
                    series: dict[str, ChannelSeries] | None = None,
                    supports: Mapping[str, ChannelSupport] | None = None) -> pd.DataFrame:
    """One row per (channel, effect): DoWhy's ATE, incremental KPI, ROI, marginal ROI and the naive
    ROI beside it. With `series` (every channel's spend and transform), a channel whose mediators
    are channels gets its total incremental KPI and marginal ROI by g-computation (`ate` stays
    DoWhy's linear total ATE, for reference; `estimator` says which was published; the mediator's
    chosen equation is recorded). `supports` (the overlap verdicts) say where ROI stands. An
    effect that could not be estimated keeps its row, with NaN numbers and the reason.

    Parameters
    ----------
    data
        The model table: transformed media per channel, control columns, the KPI.
    g_expanded
        The DAG over model columns (a multi-column node such as Fourier seasonality expanded).
    specs
        One identified effect per (channel, effect type): treatment, adjustment set, mediators.
    outcome
        The KPI column.
    spends
        Channel → total spend over the modelled weeks (the ROI's denominator).
    naive
        Channel → coefficient of the all-channels OLS, for the naive ROI beside the causal one.
    failures
        Effects identification could not estimate, kept as rows with their reason.
    series
        Channel → its spend and transform, for g-computed totals and marginal ROI.
    supports
        Channel → the overlap verdict: withheld, and whether ROI against zero is observed."""
    rows = []
    by_channel: dict[str, dict[EffectType, EffectEstimate]] = {}
    for spec in specs:
        by_channel.setdefault(spec.channel, {})[spec.effect] = estimate(data, g_expanded, spec, outcome,
                                                                        spends[spec.channel])
    gspecs = gcomputation_specs(data, g_expanded, specs, list(series)) if series else {}
    nan = float("nan")
    for channel, effects in by_channel.items():
        marginal: dict[EffectType, float] = {}
        for effect, est in effects.items():
            marginal[effect] = est.ate * marginal_media_total(series[channel]) if series else nan
        mediation = {"mediator_equation": "", "mediator_outside_share": nan}
        if channel in gspecs:
            total = effects[EffectType.TOTAL]
            computed = gcomputation_full(data, gspecs[channel], series or {}, outcome)
            incremental = float(computed.weekly[0][0].sum())
            marginal[EffectType.TOTAL] = -float(computed.weekly[1][0].sum())
            effects[EffectType.TOTAL] = replace(total, incremental_kpi=incremental,
                                                roi=incremental / total.spend if total.spend else nan)
            mediation = {"mediator_equation": "|".join(f"{m.mediator}: {model_label(e)}" for m, e in
                                                       zip(gspecs[channel].mediators, computed.equations[0])),
                         "mediator_outside_share": float(computed.outside[0].max())}
        estimator = (Estimator.G_COMPUTATION if channel in gspecs else Estimator.LINEAR).value
        support = supports.get(channel) if supports else None
        for effect, est in effects.items():
            row = _row(est, naive, data, Estimator.LINEAR.value if effect is EffectType.DIRECT else estimator)
            rows.append(row | _marginal(marginal[effect], est.spend)
                        | _support(support, mediation if effect is EffectType.TOTAL else None))
        if EffectType.DIRECT in effects:
            total, direct = effects[EffectType.TOTAL], effects[EffectType.DIRECT]
            incremental = total.incremental_kpi - direct.incremental_kpi
            rows.append({"channel": channel, "effect": EffectType.INDIRECT.value, "ate": total.ate - direct.ate,
                         "incremental_kpi": incremental, "spend": total.spend,
                         "roi": incremental / total.spend if total.spend else nan,
                         "naive_roi": nan, "adjustment": "", "mediators": "|".join(direct.mediators),
                         "reason": "", "estimator": estimator}
                        | _marginal(marginal[EffectType.TOTAL] - marginal[EffectType.DIRECT], total.spend)
                        | _support(support, mediation))
    for failure in failures or []:
        empty = {"ate": nan, "incremental_kpi": nan, "spend": spends[failure.channel], "roi": nan, "naive_roi": nan,
                 "adjustment": "", "mediators": "", "estimator": "", **_marginal(nan, 0.0), **_support(None, None)}
        rows.append({"channel": failure.channel, "effect": failure.effect.value, **empty, "reason": failure.reason,
                     "withheld_reason": failure.reason})
        if failure.effect is EffectType.DIRECT:
            reason = "the direct effect is not identified."
            rows.append({"channel": failure.channel, "effect": EffectType.INDIRECT.value, **empty, "reason": reason,
                         "withheld_reason": reason})
    order = {e.value: i for i, e in enumerate(EffectType)}
    table = pd.DataFrame(rows)
    return table.sort_values(["channel", "effect"], key=lambda s: s.map(order) if s.name == "effect" else s,
                             kind="stable").reset_index(drop=True)


def _marginal(extra_kpi: float, spend: float) -> dict[str, float]:
    """The marginal ROI: extra KPI of +1% spend every week, per extra unit of spend."""
    return {"mroi": extra_kpi / (MARGINAL_STEP * spend) if spend else float("nan")}


def _support(support: ChannelSupport | None, mediation: dict[str, object] | None) -> dict[str, object]:
    """Where ROI against zero stands: the treatment's extrapolated share, and for an effect through
    a mediator channel also the share of weeks whose 'treatment off' mediator spend lies below its
    observed range (either above the tolerance makes ROI `extrapolated`)."""
    out: dict[str, object] = {"roi_support": "", "extrapolated_share": float("nan"), "withheld_reason": "",
                              "mediator_equation": "", "mediator_outside_share": float("nan")}
    if mediation is not None:
        out.update(mediation)
    if support is None:
        return out
    share = support.extrapolated_share
    outside = float(out["mediator_outside_share"]) if mediation is not None else float("nan")
    extrapolated = support.roi_support is RoiSupport.EXTRAPOLATED or (
        np.isfinite(outside) and outside > OverlapThresholds.max_extrapolated_share)
    out.update(roi_support=(RoiSupport.EXTRAPOLATED if extrapolated else RoiSupport.OBSERVED).value,
               extrapolated_share=share)
    return out


def gcomputation_specs(data: pd.DataFrame, g_expanded: nx.DiGraph, specs: Sequence[EffectSpec],
                       channels: Sequence[str]) -> dict[str, GComputationSpec]:
    """Per channel whose total effect is g-computed: its spec (channels with an identified direct
    effect whose mediators are all channels, each a single step from the treatment)."""
    out = {}
    for spec in specs:
        if spec.effect is EffectType.DIRECT:
            gspec = gcomputation_spec(data, g_expanded, spec, channels)
            if gspec is not None:
                out[spec.channel] = gspec
    return out


@dataclass(frozen=True)
class ChannelEstimates:
    """The estimation step's result: the table, the specs behind it and what could not be estimated."""

    table: pd.DataFrame
    specs: tuple[EffectSpec, ...]
    failures: tuple[NotEstimated, ...]
    expanded: nx.DiGraph


@numeric_step()
def estimate_channels(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig, g_nodes: nx.DiGraph,
                      transforms: dict[str, ChannelTransform]) -> ChannelEstimates:
    """Every channel's effects under the DAG, exactly as the `ate_estimates` step publishes them
    (the one place that composes identification, DoWhy estimates, g-computation and naive OLS)."""
    columns = node_columns(raw, config)
    expanded = expand_graph(g_nodes, columns)
    channels = list(config.channel_names)
    controls = [c for node in config.controls for c in columns[node]]
    specs, failures = identify_channels(features, expanded, g_nodes, channels, config.kpi)
    supports = overlap_supports(raw, features, config, specs, expanded)
    withheld = {c for c, s in supports.items() if s.withheld}
    failures += [NotEstimated(spec.channel, spec.effect, supports[spec.channel].reason)
                 for spec in specs if spec.channel in withheld]
    specs = [spec for spec in specs if spec.channel not in withheld]
    if not specs:
        reasons = "; ".join(f"{f.channel} ({f.effect.value}): {f.reason}" for f in failures) or "no channel"
        raise EstimationError("no-estimable-channel", "estimates", f"no channel's effect can be estimated: {reasons}",
                              "see the overlap and identification tables; vary spend across comparable weeks, "
                              "add the missing controls or revise the DAG.")
    table = estimates_table(features, expanded, specs, config.kpi, spend_totals(raw, config),
                            naive_coefficients(features, channels, controls, config.kpi), failures,
                            series=channel_series(raw, config, transforms), supports=supports)
    return ChannelEstimates(table, tuple(specs), tuple(failures), expanded)


def overlap_supports(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig,
                     specs: Sequence[EffectSpec], g_expanded: nx.DiGraph | None = None) -> dict[str, ChannelSupport]:
    """The overlap verdict of every channel with a total effect, on its total effect's adjustment
    set, with the configured thresholds (the same measures the `dag_overlap` check judges)."""
    adjustments = {s.channel: s.adjustment for s in specs if s.effect is EffectType.TOTAL}
    spend = {c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    return media_support(features, spend, adjustments, OverlapThresholds.from_checks(config.checks), g_expanded)


def _row(est: EffectEstimate, naive: dict[str, float], data: pd.DataFrame, estimator: str) -> dict[str, object]:
    naive_roi = (naive[est.channel] * float(data[est.channel].sum()) / est.spend
                 if est.effect is EffectType.TOTAL and est.spend else float("nan"))
    return {"channel": est.channel, "effect": est.effect.value, "ate": est.ate, "incremental_kpi": est.incremental_kpi,
            "spend": est.spend, "roi": est.roi, "naive_roi": naive_roi, "adjustment": "|".join(est.adjustment),
            "mediators": "|".join(est.mediators), "reason": "", "estimator": estimator}

