"""Per-channel causal effects with DoWhy, under the user's DAG.

For each channel: DoWhy identifies the adjustment set (backdoor for the total effect; the
controlled-direct-effect set, which holds the mediators, for the direct effect), we add the
KPI's other causes that keep the set valid (they cut noise, not bias; validity is re-checked by
d-separation), and DoWhy's `backdoor.linear_regression` estimates the effect per unit of
transformed media. Transformed media is zero when spend is zero, so

    incremental_kpi = ATE × Σ_t x_t        roi = incremental_kpi / Σ_t spend_t

The same design matrices feed the vectorised block bootstrap and the HAC p-value, so the
intervals describe exactly the estimator whose point value DoWhy reports.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.config import EffectType
from cmmm_pipeline.errors import EstimationError

logging.getLogger("dowhy").setLevel(logging.WARNING)


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
                            effect: EffectType) -> tuple[str, ...]:
    """Add the outcome's other parents where the set stays valid: unbiased, and far less noisy."""
    result = set(adjustment)
    forbidden = {treatment} | (nx.descendants(g, treatment) if effect is EffectType.TOTAL else set())
    for parent in sorted(g.predecessors(outcome)):
        if parent in result or parent in forbidden:
            continue
        if _valid_adjustment(g, treatment, outcome, result | {parent}, effect):
            result.add(parent)
    return tuple(sorted(result))


def _causal_model(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str):  # noqa: ANN202
    from dowhy import CausalModel

    return CausalModel(data=data[list(g.nodes)], treatment=treatment, outcome=outcome, graph=g,
                       effect_modifiers=[])


def identify(data: pd.DataFrame, g: nx.DiGraph, treatment: str, outcome: str, effect: EffectType) -> EffectSpec:
    """DoWhy identification on the expanded graph; raises EstimationError when not identifiable."""
    if effect is EffectType.INDIRECT:
        raise ValueError("the indirect effect is total − direct; identify those two instead")
    model = _causal_model(data, g, treatment, outcome)
    estimand_type = "nonparametric-ate" if effect is EffectType.TOTAL else "nonparametric-cde"
    estimand = model.identify_effect(estimand_type=estimand_type, proceed_when_unidentifiable=False)
    backdoor = estimand.get_backdoor_variables()
    if backdoor is None:
        raise EstimationError("not-identifiable", f"channel '{treatment}'",
                              f"its {effect.value} effect on '{outcome}' has no valid adjustment set under the DAG.",
                              "add the missing confounders as observed controls, or revise the DAG.")
    adjustment = with_precision_controls(g, treatment, outcome, set(backdoor), effect)
    mediator_set = tuple(sorted(n for n in nx.descendants(g, treatment)
                                if n != outcome and nx.has_path(g, n, outcome)))
    return EffectSpec(treatment, effect, adjustment, mediator_set if effect is EffectType.DIRECT else ())


def estimate(data: pd.DataFrame, g: nx.DiGraph, spec: EffectSpec, outcome: str, spend: float) -> EffectEstimate:
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
    ate = float(result.value)
    incremental = ate * float(data[spec.channel].sum())
    return EffectEstimate(spec.channel, spec.effect, ate, incremental, spend, incremental / spend if spend else
                          float("nan"), spec.adjustment, spec.mediators)


def design(data: pd.DataFrame, spec: EffectSpec) -> np.ndarray:
    """[1, treatment, adjustment...]: the exact regressors of the linear backdoor estimator."""
    cols = [spec.channel, *spec.adjustment]
    return np.column_stack([np.ones(len(data)), data[cols].to_numpy(dtype=float)])


def naive_coefficients(data: pd.DataFrame, channels: list[str], controls: list[str], outcome: str) -> dict[str, float]:
    """One OLS of the KPI on every channel and control, no DAG: it conditions on mediators, so a
    channel that works through another (TV through search) loses that part of its credit."""
    x = np.column_stack([np.ones(len(data)), data[channels + controls].to_numpy(dtype=float)])
    beta, *_ = np.linalg.lstsq(x, data[outcome].to_numpy(dtype=float), rcond=None)
    return {c: float(b) for c, b in zip(channels, beta[1:1 + len(channels)])}


# ---------------------------------------------------------------------------------------------
# Uncertainty


def default_block_length(n: int) -> int:
    """n^(1/3) weeks: the classic rate for moving-block bootstrap of smooth statistics."""
    return max(2, int(round(n ** (1.0 / 3.0))))


def moving_block_indices(n: int, block_length: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, n) row indices: concatenated runs of `block_length` consecutive weeks, so each
    resample keeps the short-range autocorrelation of the weekly series."""
    blocks = -(-n // block_length)
    starts = rng.integers(0, n - block_length + 1, size=(samples, blocks))
    idx = (starts[:, :, None] + np.arange(block_length)[None, None, :]).reshape(samples, -1)
    return idx[:, :n]


def batched_ols(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """OLS coefficients for each resample at once: (samples, p). Rank-deficient resamples give NaN."""
    xb = x[idx]
    yb = y[idx]
    xtx = np.einsum("bnp,bnq->bpq", xb, xb)
    xty = np.einsum("bnp,bn->bp", xb, yb)
    out = np.full((idx.shape[0], x.shape[1]), np.nan)
    ok = np.linalg.cond(xtx) < 1e12
    out[ok] = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
    return out


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


def channel_specs(data: pd.DataFrame, g_expanded: nx.DiGraph, g_nodes: nx.DiGraph, channels: list[str],
                  outcome: str) -> list[EffectSpec]:
    """Total effect for every channel; direct as well where the DAG gives it a mediator."""
    specs: list[EffectSpec] = []
    for channel in channels:
        specs.append(identify(data, g_expanded, channel, outcome, EffectType.TOTAL))
        if any(nx.has_path(g_nodes, m, outcome) for m in g_nodes.successors(channel) if m != outcome):
            specs.append(identify(data, g_expanded, channel, outcome, EffectType.DIRECT))
    return specs


def estimates_table(data: pd.DataFrame, g_expanded: nx.DiGraph, specs: list[EffectSpec], outcome: str,
                    spends: dict[str, float], naive: dict[str, float]) -> pd.DataFrame:
    """One row per (channel, effect): DoWhy's ATE, incremental KPI, ROI, and the naive ROI beside it."""
    rows = []
    by_channel: dict[str, dict[EffectType, EffectEstimate]] = {}
    for spec in specs:
        est = estimate(data, g_expanded, spec, outcome, spends[spec.channel])
        by_channel.setdefault(spec.channel, {})[spec.effect] = est
        rows.append(_row(est, naive, data))
    for channel, effects in by_channel.items():
        if EffectType.DIRECT in effects:
            total, direct = effects[EffectType.TOTAL], effects[EffectType.DIRECT]
            incremental = total.incremental_kpi - direct.incremental_kpi
            rows.append({"channel": channel, "effect": EffectType.INDIRECT.value, "ate": total.ate - direct.ate,
                         "incremental_kpi": incremental, "spend": total.spend,
                         "roi": incremental / total.spend if total.spend else float("nan"),
                         "naive_roi": float("nan"), "adjustment": "", "mediators": "|".join(direct.mediators)})
    order = {e.value: i for i, e in enumerate(EffectType)}
    table = pd.DataFrame(rows)
    return table.sort_values(["channel", "effect"], key=lambda s: s.map(order) if s.name == "effect" else s,
                             kind="stable").reset_index(drop=True)


def _row(est: EffectEstimate, naive: dict[str, float], data: pd.DataFrame) -> dict[str, object]:
    naive_roi = (naive[est.channel] * float(data[est.channel].sum()) / est.spend
                 if est.effect is EffectType.TOTAL and est.spend else float("nan"))
    return {"channel": est.channel, "effect": est.effect.value, "ate": est.ate, "incremental_kpi": est.incremental_kpi,
            "spend": est.spend, "roi": est.roi, "naive_roi": naive_roi, "adjustment": "|".join(est.adjustment),
            "mediators": "|".join(est.mediators)}


def specs_from_table(table: pd.DataFrame) -> list[EffectSpec]:
    """The specs behind stored estimates (indirect rows are derived, not estimated)."""
    out = []
    for row in table.to_dict("records"):
        effect = EffectType(row["effect"])
        if effect is EffectType.INDIRECT:
            continue
        split = (lambda s: tuple(x for x in str(s or "").split("|") if x))
        out.append(EffectSpec(row["channel"], effect, split(row["adjustment"]), split(row["mediators"])))
    return out
