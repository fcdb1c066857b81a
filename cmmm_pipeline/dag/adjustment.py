"""Backdoor adjustment sets by d-separation, in time polynomial in the size of the DAG.

DoWhy's `identify_effect` looks for a valid adjustment set by trying subsets of the eligible
variables, the largest first and then by increasing size: its cost grows combinatorially with the
number of controls (60 controls ran for more than ten minutes). The set it settles on (its
default) is a valid set of the smallest size, among those with the fewest instruments. That set is
found here directly, as a minimum vertex cut (van der Zander, Liśkiewicz and Textor, 2019):

- the graph of the criterion: the treatment's outgoing edges removed (backdoor, total effect) or
  only its edge into the outcome (DoWhy's controlled-direct-effect criterion, mediators held fixed);
- its ancestral subgraph of {treatment, outcome}, moralised (co-parents joined, directions dropped):
  a set inside the ancestors d-separates the two exactly when it separates them there;
- each node that may be adjusted for (observed, and neither a descendant of the treatment for the
  total effect nor of the outcome for the direct one) costs 1 to cut, an instrument a little more;
  latent and forbidden nodes cannot be cut. A minimum cut is then a smallest valid set with the fewest
  instruments; no finite cut means no observed set is valid (the effect is not identified).

Among several smallest sets (DoWhy then takes whichever its iteration over a Python set meets
first) the cut nearest the outcome is taken: its nodes explain the outcome, not the treatment,
which keeps the treatment's variation. The cost is one maximum flow on the moral graph (leaves,
such as controls that only point at the KPI, pruned first) per effect: polynomial in the size of
the DAG, where DoWhy's search is exponential (`benchmarks/identification_growth.py` prints both).
Every graph search is charged to an `IdentificationMeter`; past its budget identification stops
with the rule `identification-budget` instead of running for hours.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import networkx as nx
from networkx.algorithms.flow import shortest_augmenting_path

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import EstimationError

BUDGET_RULE = "identification-budget"
"""The rule of `IdentificationMeter`'s refusal: never one channel's 'not identifiable'."""

DEFAULT_BUDGET = 20_000_000
"""Graph elements (nodes + edges) visited by all the graph searches of one identification run.
A DAG with 100 controls and 30 channels uses about 4% of it; at the budget identification takes
on the order of a minute (`benchmarks/identification_growth.py` prints both)."""


@dataclass
class IdentificationMeter:
    """The work spent on graph searches (nodes + edges visited per search), against a budget. One
    meter is shared by every channel and effect of a run, so the whole identification is bounded."""

    budget: int = DEFAULT_BUDGET
    spent: int = 0
    searches: int = 0
    largest: tuple[int, int] = field(default=(0, 0))
    """Nodes and edges of the largest graph searched."""

    def charge(self, g: nx.Graph | tuple[int, int], channel: str, effect: EffectType) -> None:
        """Charge one search over `g` (a graph, or its node and edge counts); refuse when the
        budget is exhausted."""
        nodes, edges = g if isinstance(g, tuple) else size(g)
        self.spent += nodes + edges
        self.searches += 1
        self.largest = max(self.largest, (nodes, edges))
        if self.spent > self.budget:
            raise EstimationError(
                "identification-budget", f"channel '{channel}' ({effect.value} effect)",
                f"identification stopped after {self.searches:,} graph searches visiting {self.spent:,} nodes and "
                f"edges, past its budget of {self.budget:,} (under a minute of work; the largest graph searched "
                f"has {self.largest[0]:,} nodes and {self.largest[1]:,} edges).",
                "make the DAG smaller: merge controls that play the same role into one node, drop controls with no "
                "edge to a channel or the KPI, and drop edges the business does not believe in.")


def size(g: nx.Graph) -> tuple[int, int]:
    """Nodes and edges (networkx counts edges by summing degrees: call it once per graph)."""
    return g.number_of_nodes(), g.number_of_edges()


def criterion_graph(g: nx.DiGraph, treatment: str, outcome: str, effect: EffectType) -> nx.DiGraph:
    """The graph in which a valid set must d-separate treatment and outcome: the treatment's
    outgoing edges removed (total effect), or only its edge into the outcome (direct effect)."""
    h = g.copy()
    if effect is EffectType.TOTAL:
        h.remove_edges_from(list(g.out_edges(treatment)))
    elif h.has_edge(treatment, outcome):
        h.remove_edge(treatment, outcome)
    return h


def forbidden_nodes(g: nx.DiGraph, treatment: str, outcome: str, effect: EffectType) -> set[str]:
    """Nodes no adjustment set may hold: descendants of the treatment (total effect: they carry the
    effect) or of the outcome (direct effect: mediators are allowed, as in DoWhy), and the two ends."""
    base = treatment if effect is EffectType.TOTAL else outcome
    return nx.descendants(g, base) | {treatment, outcome}


def instruments(g: nx.DiGraph, treatment: str, outcome: str) -> set[str]:
    """DoWhy's instruments (`dowhy.graph.get_instruments`): parents of the treatment that are not
    ancestors of the outcome, nor descendants of one, once the treatment's incoming edges are cut.
    DoWhy's default adjustment set holds as few of them as it can; so does `minimum_adjustment`."""
    cut = g.copy()
    cut.remove_edges_from(list(g.in_edges(treatment)))
    ancestors = ancestral_closure(cut, [outcome]) - {outcome}
    children = _closure(cut.successors, ancestors, include_start=False)
    return set(g.predecessors(treatment)) - ancestors - children


def _closure(step: Callable[[str], Iterable[str]], start: Collection[str], include_start: bool = True) -> set[str]:
    """Every node reached from `start` by `step` (a node's parents or children), in one search;
    `start` itself only where `include_start` or where it is reached again."""
    seen: set[str] = set()
    queue = deque(start)
    if include_start:
        seen.update(start)
    while queue:
        for nxt in step(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def ancestral_closure(g: nx.DiGraph, nodes: Collection[str]) -> set[str]:
    """`nodes` and all their ancestors, in one backward search (not one per node)."""
    return _closure(g.predecessors, nodes)


def _moral_ancestral(h: nx.DiGraph, ends: tuple[str, str]) -> nx.Graph:
    """The moral graph of the ancestral subgraph of `ends`: d-separation there is plain separation.
    Co-parents of an end are not joined: a path through such an edge has a shorter one through the
    end itself, so the separators are the same, and the KPI's parents do not become a clique."""
    sub = h.subgraph(ancestral_closure(h, ends))
    moral = nx.Graph(sub.to_undirected(as_view=True))
    for node in sub:
        if node not in ends:
            moral.add_edges_from(itertools.combinations(sorted(sub.predecessors(node)), 2))
    # A node with one neighbour lies on no path between the ends: prune such leaves (the controls
    # that only point at the KPI), repeatedly, so the cut runs on the part that matters.
    leaves = [n for n in moral if n not in ends and moral.degree(n) <= 1]
    while leaves:
        node = leaves.pop()
        if node not in moral:
            continue
        neighbours = list(moral.neighbors(node))
        moral.remove_node(node)
        leaves.extend(n for n in neighbours if n not in ends and moral.degree(n) <= 1)
    return moral


def minimum_adjustment(g: nx.DiGraph, treatment: str, outcome: str, observed: Collection[str], effect: EffectType,
                       meter: IdentificationMeter | None = None) -> tuple[str, ...] | None:
    """A smallest valid adjustment set of observed nodes with the fewest instruments (DoWhy's
    default set), or None when no observed set is valid. Sorted."""
    meter = meter if meter is not None else IdentificationMeter()
    h = criterion_graph(g, treatment, outcome, effect)
    meter.charge(h, treatment, effect)
    moral = _moral_ancestral(h, (treatment, outcome))
    meter.charge(moral, treatment, effect)
    if moral.has_edge(treatment, outcome):
        return None
    eligible = (set(observed) & set(moral.nodes)) - forbidden_nodes(g, treatment, outcome, effect)
    preferred = instruments(g, treatment, outcome) & eligible
    unit = len(preferred) + 1  # a node costs `unit`, an instrument one more: size first, instruments second
    flow = nx.DiGraph()
    for node in moral.nodes:
        if node in (treatment, outcome):
            continue
        if node in eligible:
            flow.add_edge((node, "in"), (node, "out"), capacity=unit + (node in preferred))
        else:
            flow.add_edge((node, "in"), (node, "out"))  # no capacity: cannot be cut

    def head(node: str) -> object:
        return node if node in (treatment, outcome) else (node, "in")

    def tail(node: str) -> object:
        return node if node in (treatment, outcome) else (node, "out")

    for a, b in moral.edges:
        flow.add_edge(tail(a), head(b))
        flow.add_edge(tail(b), head(a))
    if outcome not in flow or treatment not in flow:
        return ()  # not connected at all: nothing to adjust for
    meter.charge(flow, treatment, effect)
    try:
        # networkx's sink side is what still reaches the sink in the residual graph: with the outcome
        # as the sink, the cut is the one nearest the outcome.
        _, (_, near) = nx.minimum_cut(flow, treatment, outcome, flow_func=shortest_augmenting_path)
    except nx.NetworkXUnbounded:
        return None
    return tuple(sorted(n for n in eligible if (n, "in") not in near and (n, "out") in near))


def open_path(h: nx.DiGraph, source: str, target: str, given: Collection[str]) -> list[str] | None:
    """A shortest path from `source` to `target` that is d-connecting given `given`, or None when
    `given` d-separates them.

    A breadth-first search over (node, direction of arrival) with the rules of d-connection (a
    non-collider passes unless conditioned on; a collider passes when it or a descendant is), so
    each node is visited at most twice: linear in the size of the graph, however many paths it has.
    A shortest such walk never visits a node twice (a repeat could be cut short), so it is a path."""
    given = set(given) - {source, target}
    opens = ancestral_closure(h, given)  # a collider here is open
    up, down = "up", "down"  # arrived from a child (against an edge) / from a parent (along one)
    start = (source, up)
    previous: dict[tuple[str, str], tuple[str, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        node, arrived = state
        if node == target:
            path = []
            at: tuple[str, str] | None = state
            while at is not None:
                path.append(at[0])
                at = previous[at]
            return path[::-1]
        passes = node == source or node not in given
        moves: list[tuple[str, str]] = []
        if arrived == up and passes:
            moves = [(p, up) for p in sorted(h.predecessors(node))] + [(c, down) for c in sorted(h.successors(node))]
        elif arrived == down:
            moves = [(c, down) for c in sorted(h.successors(node))] if passes else []
            if node in opens:
                moves += [(p, up) for p in sorted(h.predecessors(node))]
        for move in moves:
            if move[0] != source and move not in previous:
                previous[move] = state
                queue.append(move)
    return None


def is_valid_adjustment(h: nx.DiGraph, treatment: str, outcome: str, adjustment: Collection[str]) -> bool:
    """Whether `adjustment` d-separates treatment and outcome in the criterion graph `h`."""
    return open_path(h, treatment, outcome, adjustment) is None
