"""Per-channel identification under the DAG, with latent (unobserved) nodes allowed.

`estimation.identify` (the same call the estimates use: DoWhy's default backdoor set, computed by
d-separation in `dag.adjustment`) decides whether a channel's total effect, and its direct effect
where it has a mediator, can be estimated by adjustment on observed columns. A channel that cannot
is reported with the reason, naming the confounding path that no observed set blocks, and the other
channels go on. Every step is polynomial in the size of the DAG, and the whole run shares one
`IdentificationMeter`: a DAG too large for it is refused (`identification-budget`), never left to hang.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.dag.adjustment import BUDGET_RULE, IdentificationMeter, open_path
from cmmm_pipeline.dag.feedback import feedback_reason, lagged_kpi_nodes
from cmmm_pipeline.effects.estimation import has_mediator, identify


@dataclass(frozen=True)
class Identification:
    channel: str
    effect: EffectType
    identifiable: bool
    adjustment: tuple[str, ...]
    """Columns the estimate adjusts for (backdoor set plus precision controls); empty if not identifiable."""
    reason: str


def confounding_path(g: nx.DiGraph, treatment: str, outcome: str, observed: Collection[str]) -> list[str] | None:
    """A shortest backdoor path (into the treatment) that stays open even given every observed
    non-descendant of the treatment: the path that makes the effect unidentifiable by adjustment
    (found in time linear in the graph, see `adjustment.open_path`)."""
    h = g.copy()
    h.remove_edges_from(list(g.out_edges(treatment)))
    given = set(observed) - nx.descendants(g, treatment) - {treatment, outcome}
    return open_path(h, treatment, outcome, given)


def describe_path(g: nx.DiGraph, path: Sequence[str]) -> str:
    parts = [path[0]]
    for a, b in zip(path, path[1:]):
        parts.append(f"→ {b}" if g.has_edge(a, b) else f"← {b}")
    return " ".join(parts)


def identify_channel(features: pd.DataFrame, g_nodes: nx.DiGraph, g_expanded: nx.DiGraph, channel: str,
                     outcome: str, effect: EffectType, latent: Collection[str],
                     meter: IdentificationMeter | None = None) -> Identification:
    """One channel and effect: its adjustment set, and the reason when it has none."""
    try:
        spec = identify(features, g_expanded, channel, outcome, effect, meter)
    except EstimationError as exc:
        if exc.rule == BUDGET_RULE:
            raise
        observed = set(g_nodes.nodes) - set(latent)
        path = confounding_path(g_nodes, channel, outcome, observed) if effect is EffectType.TOTAL else None
        hidden = [n for n in (path or []) if n in latent]
        if path and hidden:
            why = (f"the confounding path {describe_path(g_nodes, path)} runs through the unobserved "
                   f"{', '.join(repr(h) for h in hidden)}, and no set of observed columns blocks it")
        else:
            why = exc.detail.rstrip(".")
        return Identification(channel, effect, False, (), f"not identifiable by adjustment: {why}. Fix: {exc.fix}")
    backdoor = ", ".join(spec.adjustment) or "nothing"
    return Identification(channel, effect, True, spec.adjustment,
                          f"identified by adjustment for {backdoor} (backdoor criterion"
                          + (", mediators held fixed)" if effect is EffectType.DIRECT else ")"))


def identify_channels(features: pd.DataFrame, g_nodes: nx.DiGraph, g_expanded: nx.DiGraph,
                      channels: Sequence[str], outcome: str, latent: Collection[str],
                      meter: IdentificationMeter | None = None) -> list[Identification]:
    """The total effect of every channel, and its direct effect where the DAG gives it an observed
    mediator (the same specs the estimates are made for), within one budget (`meter`)."""
    meter = meter if meter is not None else IdentificationMeter()
    out: list[Identification] = []
    lagged = lagged_kpi_nodes(features, outcome, [n for n in g_nodes if n not in channels and n != outcome])
    for channel in channels:
        effects = [EffectType.TOTAL] + ([EffectType.DIRECT] if has_mediator(g_nodes, channel, outcome, latent) else [])
        feedback = feedback_reason(g_nodes, channel, outcome, lagged)  # budgets that follow sales
        for effect in effects:
            out.append(Identification(channel, effect, False, (), feedback) if feedback is not None else
                       identify_channel(features, g_nodes, g_expanded, channel, outcome, effect, latent, meter))
    return out


TABLE_COLUMNS = ["channel", "effect", "identifiable", "adjustment", "reason"]


def identification_table(rows: Sequence[Identification]) -> pd.DataFrame:
    return pd.DataFrame([{"channel": r.channel, "effect": r.effect.value, "identifiable": r.identifiable,
                          "adjustment": "|".join(r.adjustment), "reason": r.reason} for r in rows],
                        columns=TABLE_COLUMNS)


def total_adjustments(rows: Sequence[Identification]) -> dict[str, tuple[str, ...]]:
    """Channel → adjustment columns of its total effect, for the identifiable channels only."""
    return {r.channel: r.adjustment for r in rows if r.effect is EffectType.TOTAL and r.identifiable}
