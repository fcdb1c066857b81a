"""Synergies of declared channel pairs (`graph.interactions`), never of undeclared ones.

Estimand, summed over the modelled weeks:

    synergy(a, b) = Σ_t [ Y_t(as run) − Y_t(a off) − Y_t(b off) + Y_t(both off) ]

with "a off" letting a's mediators respond (total effects). The outcome model is the linear
regression of the KPI on a's and b's transformed media, their product and an adjustment set valid
for the joint intervention on both (no descendant of either; it blocks every backdoor path of a
given b and of b given a, checked by d-separation):

    Y = α + β_a x_a + β_b x_b + γ x_a x_b + Z δ + e     ⇒     synergy = γ Σ_t x_a,t x_b,t

A pair where one channel causes the other has no such joint contrast and is withheld with its reason,
as is a pair whose product barely varies once its adjustment set and the two media are accounted for
(the same residual-share threshold the overlap gate applies to a channel). The bootstrap repeats the
regression on the resamples of the whole-history estimates, at their selected transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.dag.adjustment import criterion_graph, is_valid_adjustment
from cmmm_pipeline.effects.bootstrap import (
    BootstrapDraws,
    BootstrapSettings,
    EffectProblem,
    rests_on_selection,
    summarise_draws,
    wald_pvalue,
)
from cmmm_pipeline.effects.estimation import EffectSpec, batched_ols, hac_pvalue

SYNERGY_COLUMNS = ["channel_a", "channel_b", "incremental_kpi", "incremental_ci_low", "incremental_ci_high",
                   "p_value", "std_error", "share_of_smaller_effect", "interval_method", "adjustment",
                   "residual_share", "withheld_reason"]


@dataclass(frozen=True)
class SynergySpec:
    """A declared pair and the adjustment set of its joint regression."""

    channel_a: str
    channel_b: str
    adjustment: tuple[str, ...]

    def base(self) -> EffectSpec:
        """The regression without the product: [1, x_a, x_b, adjustment...]."""
        return EffectSpec(self.channel_a, EffectType.TOTAL, (self.channel_b, *self.adjustment), ())


@dataclass(frozen=True)
class Withheld:
    channel_a: str
    channel_b: str
    reason: str


def synergy_spec(g_expanded: nx.DiGraph, specs: Sequence[EffectSpec], a: str, b: str,
                 outcome: str) -> SynergySpec | Withheld:
    """The pair's adjustment set: both channels' total-effect sets, less the pair and every
    descendant of either, if that set is valid for a given b and for b given a."""
    for x, y in ((a, b), (b, a)):
        if y in nx.descendants(g_expanded, x):
            return Withheld(a, b, f"{x} causes {y} in the DAG, so '{x} off' already moves {y}: the pair has no "
                                  "joint contrast to estimate (its effect through it is the indirect effect).")
    totals = {s.channel: s for s in specs if s.effect is EffectType.TOTAL}
    if a not in totals or b not in totals:
        missing = a if a not in totals else b
        return Withheld(a, b, f"{missing}'s total effect is not estimated (see its row in estimates.csv).")
    forbidden = {a, b} | nx.descendants(g_expanded, a) | nx.descendants(g_expanded, b)
    adjustment = tuple(sorted((set(totals[a].adjustment) | set(totals[b].adjustment)) - forbidden))
    for x, y in ((a, b), (b, a)):
        # The union holds no descendant of either channel (removed above): the backdoor criterion is
        # then d-separation in the graph without x's outgoing edges.
        if not is_valid_adjustment(criterion_graph(g_expanded, x, outcome, EffectType.TOTAL), x, outcome,
                                   set(adjustment) | {y}):
            return Withheld(a, b, f"no adjustment set of observed columns is valid for both {a} and {b} under the "
                                  "DAG.")
    return SynergySpec(a, b, adjustment)


def product_design(problem: EffectProblem, spec: SynergySpec, rows: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """(B, n, p) [1, x_a, x_b, x_a·x_b, adjustment...] on the rows at their selected transforms."""
    base = problem.design(spec.base(), rows, selected)
    product = base[:, :, 1] * base[:, :, 2]
    return np.concatenate([base[:, :, :3], product[:, :, None], base[:, :, 3:]], axis=2)


def product_total(problem: EffectProblem, spec: SynergySpec, selected: np.ndarray) -> np.ndarray:
    """(B,) Σ_t x_a,t x_b,t over every modelled week at each selection."""
    ka, kb = (problem.inputs.channels.index(c) for c in (spec.channel_a, spec.channel_b))
    xa = problem.inputs.series[ka][:, selected[:, ka]]
    xb = problem.inputs.series[kb][:, selected[:, kb]]
    return (xa * xb).sum(axis=0)


def residual_share(x: np.ndarray) -> float:
    """SD of the product column left after the other regressors, over its SD: how much of the
    product's variation is its own (0: the product is a combination of the rest)."""
    product = x[:, 3]
    others = np.delete(x, 3, axis=1)
    coef, *_ = np.linalg.lstsq(others, product, rcond=None)
    sd = float(np.std(product))
    return float(np.std(product - others @ coef) / sd) if sd > 0 else 0.0


def synergies_table(problem: EffectProblem, draws: BootstrapDraws, g_expanded: nx.DiGraph,
                    specs: Sequence[EffectSpec], pairs: Sequence[tuple[str, str]], outcome: str,
                    settings: BootstrapSettings, min_residual_share: float,
                    effects: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per declared pair: the synergy with its interval and p-value from the bootstrap's
    resamples, or the reason it is withheld.

    Parameters
    ----------
    problem, draws
        The resampling problem and the bootstrap draws of the whole-history estimates.
    g_expanded
        The DAG over model columns.
    specs
        The identified effects (each channel's total-effect adjustment set).
    pairs
        The declared pairs (`graph.interactions`).
    outcome
        The KPI column.
    settings
        Interval level and kind, smoothing.
    min_residual_share
        Below this share of its own variation the product is withheld (`overlap_min_residual_share`).
    effects
        Channel → its published total incremental KPI (for `share_of_smaller_effect`).
    """
    nan = float("nan")
    rows = []
    identity = np.arange(problem.n)[None, :]
    df = problem.n - 1 - max(len(s.adjustment) + 1 for s in problem.specs) - 2
    for a, b in pairs:
        spec = synergy_spec(g_expanded, specs, a, b, outcome)
        empty = {"channel_a": a, "channel_b": b, "incremental_kpi": nan, "incremental_ci_low": nan,
                 "incremental_ci_high": nan, "p_value": nan, "std_error": nan, "share_of_smaller_effect": nan,
                 "interval_method": "", "adjustment": "", "residual_share": nan, "withheld_reason": ""}
        if isinstance(spec, Withheld):
            rows.append(empty | {"withheld_reason": spec.reason})
            continue
        x = product_design(problem, spec, identity, problem.selected[None, :])[0]
        share = residual_share(x)
        if share < min_residual_share:
            rows.append(empty | {"adjustment": "|".join(spec.adjustment), "residual_share": share,
                                 "withheld_reason": f"the product of {a} and {b} media barely varies given the two "
                                                    f"media and the adjustment set (residual share {share:.3f} < "
                                                    f"{min_residual_share}): the data cannot tell a synergy apart."})
            continue
        y = problem.inputs.y
        gamma = float(batched_ols(x[None], y[None])[0, 3])
        total = float(product_total(problem, spec, problem.selected[None, :])[0])
        point = gamma * total
        sample = (batched_ols(product_design(problem, spec, draws.rows, draws.selected), y[draws.rows])[:, 3]
                  * product_total(problem, spec, draws.selected))
        _, se = hac_pvalue(x, y, column=3)
        smooth = settings.smooths and (rests_on_selection(problem, a) or rests_on_selection(problem, b))
        summary = summarise_draws(point, sample, draws, smooth, settings.level, settings.interval, se * abs(total), df)
        smaller = min((abs(effects[c]) for c in (a, b) if effects and c in effects), default=nan)
        if summary is None:
            rows.append(empty | {"incremental_kpi": point, "adjustment": "|".join(spec.adjustment),
                                 "residual_share": share, "withheld_reason": "every resample was rank-deficient."})
            continue
        rows.append({"channel_a": a, "channel_b": b, "incremental_kpi": summary.estimate,
                     "incremental_ci_low": summary.low, "incremental_ci_high": summary.high,
                     "p_value": wald_pvalue(summary.estimate, summary.std_error, summary.df or df),
                     "std_error": summary.std_error,
                     "share_of_smaller_effect": summary.estimate / smaller if smaller else nan,
                     "interval_method": summary.method.value, "adjustment": "|".join(spec.adjustment),
                     "residual_share": share, "withheld_reason": ""})
    return pd.DataFrame(rows, columns=SYNERGY_COLUMNS)
