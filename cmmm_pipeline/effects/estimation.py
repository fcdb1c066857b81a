"""Per-channel causal effects with DoWhy, under the user's DAG.

For each channel: DoWhy identifies the adjustment set (backdoor for the total effect; the
controlled-direct-effect set, which holds the mediators, for the direct effect), we add the
KPI's other causes that keep the set valid (they cut noise, not bias; validity is re-checked by
d-separation), and DoWhy's `backdoor.linear_regression` estimates the effect per unit of
transformed media. Transformed media is zero when spend is zero, so

    incremental_kpi = ATE × Σ_t x_t        roi = incremental_kpi / Σ_t spend_t

A channel whose mediators are themselves channels (tv → search → sales) reaches the KPI through
the mediator's own adstock and saturation, which a regression linear in the channel's media
cannot follow; its total effect is computed by g-computation instead (`gcomputation_weekly`):
the outcome model is the direct-effect regression, a linear model of each mediator's spend gives
the mediator's counterfactual spend, and that spend goes through the mediator's transform.

The bootstrap (`robustness`) rebuilds exactly these design matrices, with the transforms
re-selected in every resample, so its intervals describe the estimator whose point value DoWhy
reports. A channel whose effect the DAG does not identify fails alone, with its reason.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.media.features import ChannelTransform, node_columns

logging.getLogger("dowhy").setLevel(logging.WARNING)


class Estimator(Enum):
    """How a row's incremental KPI was computed (the `estimator` column)."""

    LINEAR = "linear_regression"
    """DoWhy's backdoor.linear_regression: ATE × Σ_t x_t."""
    G_COMPUTATION = "g_computation"
    """Total (and indirect) effect through mediator channels' own transforms, see `gcomputation_weekly`."""


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


def _valid_adjustment(g: nx.DiGraph, treatment: str, outcome: str, adjustment: set[str],
                      effect: EffectType) -> bool:
    """Backdoor criterion (total) or DoWhy's controlled-direct-effect criterion (direct)."""
    h = g.copy()
    if effect is EffectType.TOTAL:
        if adjustment & nx.descendants(g, treatment):
            return False
        h.remove_edges_from(list(g.out_edges(treatment)))
    else:
        if h.has_edge(treatment, outcome):
            h.remove_edge(treatment, outcome)
    return nx.is_d_separator(h, {treatment}, {outcome}, adjustment)


def with_precision_controls(g: nx.DiGraph, treatment: str, outcome: str, adjustment: set[str],
                            effect: EffectType, observed: set[str] | None = None) -> tuple[str, ...]:
    """Add the outcome's other observed parents where the set stays valid: unbiased, and far less
    noisy. `observed` (default: every node) excludes latent nodes, which have no data column."""
    result = set(adjustment)
    forbidden = {treatment} | (nx.descendants(g, treatment) if effect is EffectType.TOTAL else set())
    for parent in sorted(g.predecessors(outcome)):
        if parent in result or parent in forbidden or (observed is not None and parent not in observed):
            continue
        if _valid_adjustment(g, treatment, outcome, result | {parent}, effect):
            result.add(parent)
    return tuple(sorted(result))


def observed_nodes(data: pd.DataFrame, g: nx.DiGraph) -> list[str]:
    """Graph nodes with a data column; the others are latent, and DoWhy treats them as unobserved."""
    return [n for n in g.nodes if n in data.columns]


def _causal_model(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str):  # noqa: ANN202
    from dowhy import CausalModel

    with warnings.catch_warnings():
        # Latent nodes are left out of the data on purpose; DoWhy's notice about them is expected.
        warnings.filterwarnings("ignore", message=".*assumed unobserved because they are not in the dataset.*")
        return CausalModel(data=data[observed_nodes(data, g)], treatment=treatment, outcome=outcome, graph=g,
                           effect_modifiers=[])


def identify(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str, effect: EffectType) -> EffectSpec:
    """DoWhy identification on the expanded graph; raises EstimationError when no observed set
    satisfies the backdoor (total) or controlled-direct-effect (direct) criterion."""
    if effect is EffectType.INDIRECT:
        raise ValueError("the indirect effect is total − direct; identify those two instead")
    model = _causal_model(data, g, treatment, outcome)
    estimand_type = "nonparametric-ate" if effect is EffectType.TOTAL else "nonparametric-cde"
    estimand = model.identify_effect(estimand_type=estimand_type, proceed_when_unidentifiable=False)
    # DoWhy marks a failed backdoor identification by a missing estimand (the variable list is then
    # empty, which is also the valid answer for an unconfounded channel, so it cannot be the test).
    if estimand.estimands.get("backdoor") is None:
        latent = sorted(set(g.nodes) - set(observed_nodes(data, g)))
        raise EstimationError(
            "not-identifiable", f"channel '{treatment}'",
            f"its {effect.value} effect on '{outcome}' has no valid adjustment set of observed variables under "
            f"the DAG" + (f" (unobserved: {', '.join(latent)})." if latent else "."),
            "measure the hidden confounder and add it as a control, run a lift test for this channel, "
            "or revise the DAG.")
    observed = set(observed_nodes(data, g))
    backdoor = set(estimand.get_backdoor_variables())
    adjustment = with_precision_controls(g, treatment, outcome, backdoor, effect, observed)
    mediator_set = tuple(sorted(n for n in nx.descendants(g, treatment)
                                if n != outcome and n in observed and nx.has_path(g, n, outcome)))
    return EffectSpec(treatment, effect, adjustment, mediator_set if effect is EffectType.DIRECT else ())


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
    """DoWhy `backdoor.linear_regression` with the spec's adjustment set."""
    model = _causal_model(data, g, spec.channel, outcome)
    estimand_type = "nonparametric-ate" if spec.effect is EffectType.TOTAL else "nonparametric-cde"
    estimand = model.identify_effect(estimand_type=estimand_type)
    # The estimator reads the set stored under "backdoor" (its identifier method); store ours there
    # and under the default id so that every reader of the estimand sees the same set.
    for key in {"backdoor", estimand.default_backdoor_id}:
        estimand.set_backdoor_variables(list(spec.adjustment), key=key)
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
    out = np.full(xty.shape, np.nan)
    ok = np.linalg.cond(xtx) < 1e12
    if ok.any():
        out[ok] = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
    return out


@dataclass(frozen=True)
class ChannelSeries:
    """A channel's observed weekly spend and its applied transform: what a counterfactual needs to
    push a changed spend through the channel's own adstock and saturation."""

    spend: np.ndarray
    transform: ChannelTransform


def channel_series(raw: pd.DataFrame, config: PipelineConfig,
                   transforms: dict[str, ChannelTransform]) -> dict[str, ChannelSeries]:
    return {c.name: ChannelSeries(raw[c.spend_column].to_numpy(dtype=float), transforms[c.name])
            for c in config.channels}


@dataclass(frozen=True)
class MediatorModel:
    """The mediator's spend regressed on the treatment's transformed media and the backdoor set of
    treatment → mediator (DoWhy's identification of that effect)."""

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
    except EstimationError:
        return None
    return GComputationSpec(direct.channel, direct, models)


def counterfactual_media(spend: np.ndarray, transform: ChannelTransform, shift: np.ndarray) -> np.ndarray:
    """(B, weeks) transformed media of `spend − shift` (each row one shift, clipped at zero spend),
    on the scale of the observed spend: the reference stays that of the data."""
    changed = np.clip(spend[None, :] - shift, 0.0, None)
    return transform.apply(changed.T, transform.reference(spend)).T


@dataclass(frozen=True)
class MediatorArrays:
    """One mediator on B row sets: its spend model's design and response on the rows, and over all
    weeks its observed transformed media and how a shift of its spend transforms."""

    design: np.ndarray
    """(B, rows, q) [1, treatment, adjustment...]"""
    spend: np.ndarray
    """(B, rows)"""
    column: int
    """Its column in the outcome design."""
    observed: np.ndarray
    """(B, weeks)"""
    counterfactual: Callable[[np.ndarray], np.ndarray]
    """(B, weeks) spend shift → (B, weeks) counterfactual transformed media."""


def gcomputation_weekly(outcome_design: np.ndarray, y: np.ndarray, treatment: np.ndarray,
                        mediators: Sequence[MediatorArrays]) -> np.ndarray:
    """(B, weeks) total effect per week: β_c·x_c + Σ_m β_m·(x_m − x_m_cf), with x_m_cf the mediator's
    transform of spend_m − b_m·x_c (its noise held at the observed value). β from the outcome
    (direct-effect) regression, b_m from the mediator's spend regression, both on the rows."""
    beta = batched_ols(outcome_design, y)
    weekly = beta[:, 1:2] * treatment
    for m in mediators:
        b = batched_ols(m.design, m.spend)[:, 1]
        weekly = weekly + beta[:, m.column][:, None] * (m.observed - m.counterfactual(b[:, None] * treatment))
    return weekly


def gcomputation_point(data: pd.DataFrame, spec: GComputationSpec, series: dict[str, ChannelSeries],
                       outcome: str) -> np.ndarray:
    """(weeks,) the total effect per week on the observed data."""
    mediators = [MediatorArrays(design(data, m.spec(spec.channel))[None], series[m.mediator].spend[None],
                                spec.column(m.mediator), data[m.mediator].to_numpy(dtype=float)[None],
                                partial(counterfactual_media, series[m.mediator].spend, series[m.mediator].transform))
                 for m in spec.mediators]
    return gcomputation_weekly(design(data, spec.direct)[None], data[outcome].to_numpy(dtype=float)[None],
                               data[spec.channel].to_numpy(dtype=float)[None], mediators)[0]


def naive_coefficients(data: pd.DataFrame, channels: list[str], controls: list[str], outcome: str) -> dict[str, float]:
    """One OLS of the KPI on every channel and control, no DAG: it conditions on mediators, so a
    channel that works through another (TV through search) loses that part of its credit."""
    x = np.column_stack([np.ones(len(data)), data[channels + controls].to_numpy(dtype=float)])
    beta, *_ = np.linalg.lstsq(x, data[outcome].to_numpy(dtype=float), rcond=None)
    return {c: float(b) for c, b in zip(channels, beta[1:1 + len(channels)])}


# ---------------------------------------------------------------------------------------------
# Inference


def hac_pvalue(x: np.ndarray, y: np.ndarray, column: int = 1, maxlags: int | None = None) -> tuple[float, float]:
    """Two-sided p-value and HAC (Newey–West) standard error of one coefficient: valid under the
    serial correlation of weekly residuals, where the classical OLS p-value is too small."""
    import statsmodels.api as sm

    n = len(y)
    lags = maxlags if maxlags is not None else int(np.floor(4 * (n / 100.0) ** (2.0 / 9.0)))
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
                      outcome: str) -> tuple[list[EffectSpec], list[NotEstimated]]:
    """Like `channel_specs`, but a channel whose effect is not identifiable fails alone: it is
    returned with its reason while the other channels go on."""
    specs: list[EffectSpec] = []
    failures: list[NotEstimated] = []
    latent = [n for n in g_expanded.nodes if n not in data.columns]
    for channel in channels:
        mediated = has_mediator(g_nodes, channel, outcome, latent)
        effects = [EffectType.TOTAL] + ([EffectType.DIRECT] if mediated else [])
        for effect in effects:
            try:
                specs.append(identify(data, g_expanded, channel, outcome, effect))
            except EstimationError as exc:
                failures.append(NotEstimated(channel, effect, f"{exc.detail} {exc.fix}"))
    return specs, failures


def estimates_table(data: pd.DataFrame, g_expanded: nx.DiGraph, specs: list[EffectSpec], outcome: str,
                    spends: dict[str, float], naive: dict[str, float],
                    failures: list[NotEstimated] | None = None,
                    series: dict[str, ChannelSeries] | None = None) -> pd.DataFrame:
    """One row per (channel, effect): DoWhy's ATE, incremental KPI, ROI, and the naive ROI beside it.
    With `series` (every channel's spend and transform), a channel whose mediators are channels gets
    its total incremental KPI by g-computation (`ate` stays DoWhy's linear total ATE, for
    reference; `estimator` says which was published). An effect that could not be identified keeps
    its row, with NaN numbers and the reason."""
    rows = []
    by_channel: dict[str, dict[EffectType, EffectEstimate]] = {}
    for spec in specs:
        by_channel.setdefault(spec.channel, {})[spec.effect] = estimate(data, g_expanded, spec, outcome,
                                                                        spends[spec.channel])
    gspecs = gcomputation_specs(data, g_expanded, specs, list(series)) if series else {}
    for channel, effects in by_channel.items():
        if channel in gspecs:
            total = effects[EffectType.TOTAL]
            incremental = float(gcomputation_point(data, gspecs[channel], series or {}, outcome).sum())
            effects[EffectType.TOTAL] = replace(total, incremental_kpi=incremental,
                                                roi=incremental / total.spend if total.spend else float("nan"))
        estimator = (Estimator.G_COMPUTATION if channel in gspecs else Estimator.LINEAR).value
        for effect, est in effects.items():
            rows.append(_row(est, naive, data, Estimator.LINEAR.value if effect is EffectType.DIRECT else estimator))
        if EffectType.DIRECT in effects:
            total, direct = effects[EffectType.TOTAL], effects[EffectType.DIRECT]
            incremental = total.incremental_kpi - direct.incremental_kpi
            rows.append({"channel": channel, "effect": EffectType.INDIRECT.value, "ate": total.ate - direct.ate,
                         "incremental_kpi": incremental, "spend": total.spend,
                         "roi": incremental / total.spend if total.spend else float("nan"),
                         "naive_roi": float("nan"), "adjustment": "", "mediators": "|".join(direct.mediators),
                         "reason": "", "estimator": estimator})
    nan = float("nan")
    for failure in failures or []:
        rows.append({"channel": failure.channel, "effect": failure.effect.value, "ate": nan, "incremental_kpi": nan,
                     "spend": spends[failure.channel], "roi": nan, "naive_roi": nan, "adjustment": "",
                     "mediators": "", "reason": failure.reason, "estimator": ""})
        if failure.effect is EffectType.DIRECT:
            rows.append({"channel": failure.channel, "effect": EffectType.INDIRECT.value, "ate": nan,
                         "incremental_kpi": nan, "spend": spends[failure.channel], "roi": nan, "naive_roi": nan,
                         "adjustment": "", "mediators": "", "reason": "the direct effect is not identified.",
                         "estimator": ""})
    order = {e.value: i for i, e in enumerate(EffectType)}
    table = pd.DataFrame(rows)
    return table.sort_values(["channel", "effect"], key=lambda s: s.map(order) if s.name == "effect" else s,
                             kind="stable").reset_index(drop=True)


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


def estimate_channels(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig, g_nodes: nx.DiGraph,
                      transforms: dict[str, ChannelTransform]) -> ChannelEstimates:
    """Every channel's effects under the DAG, exactly as the `ate_estimates` step publishes them
    (the one place that composes identification, DoWhy estimates, g-computation and naive OLS)."""
    columns = node_columns(raw, config)
    expanded = expand_graph(g_nodes, columns)
    channels = list(config.channel_names)
    controls = [c for node in config.controls for c in columns[node]]
    specs, failures = identify_channels(features, expanded, g_nodes, channels, config.kpi)
    table = estimates_table(features, expanded, specs, config.kpi, spend_totals(raw, config),
                            naive_coefficients(features, channels, controls, config.kpi), failures,
                            series=channel_series(raw, config, transforms))
    return ChannelEstimates(table, tuple(specs), tuple(failures), expanded)


def _row(est: EffectEstimate, naive: dict[str, float], data: pd.DataFrame, estimator: str) -> dict[str, object]:
    naive_roi = (naive[est.channel] * float(data[est.channel].sum()) / est.spend
                 if est.effect is EffectType.TOTAL and est.spend else float("nan"))
    return {"channel": est.channel, "effect": est.effect.value, "ate": est.ate, "incremental_kpi": est.incremental_kpi,
            "spend": est.spend, "roi": est.roi, "naive_roi": naive_roi, "adjustment": "|".join(est.adjustment),
            "mediators": "|".join(est.mediators), "reason": "", "estimator": estimator}


def specs_from_table(table: pd.DataFrame) -> list[EffectSpec]:
    """The specs behind stored estimates (indirect rows are derived, and rows that could not be
    estimated carry no spec)."""
    out = []
    for row in table.to_dict("records"):
        effect = EffectType(row["effect"])
        if effect is EffectType.INDIRECT or not np.isfinite(row["ate"]):
            continue
        split = (lambda s: tuple(x for x in str(s or "").split("|") if x))
        out.append(EffectSpec(row["channel"], effect, split(row["adjustment"]), split(row["mediators"])))
    return out
