"""A DAG the data can question: for the implications the data reject, the single-edge additions that
would make the DAG consistent with them, ranked by evidence; and DoWhy's graph falsification (how
the DAG's violations compare with those of random permutations of its nodes).

Never edits the user's DAG: it proposes, with the evidence, and the user decides.

Background knowledge bounds the edits: the KPI is a sink (no edge out of it); nothing causes the
generated nodes (Fourier seasonality, trend: time has no causes); channels cannot cause the
controls (seasonality, trend, price); an edit must keep the graph acyclic. Adding an edge only ever
removes implications (a supergraph implies a subset of the independences), so an edge resolves a
rejected implication when the edited DAG no longer implies it (d-separation). The edited DAG's local
Markov basis can state implications the original did not test (a parent more in a conditioning
set); those are tested with the same calibrated tests, adjusted together with the unchanged ones,
and an edit that the data would reject anew is ranked after the others.

Ranking: the number of rejected implications an edit resolves (more first), then the smallest
adjusted p-value among them (stronger evidence first), then edits with no new rejection first,
then upstream sources first (the graph's topological order, which follows time for generated
nodes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.dag.independence import (
    MIN_WEEKS,
    Implication,
    IndependenceReport,
    IndependenceSettings,
    IndependenceTestResult,
    Untestable,
    WeeklyColumns,
    adjust_results,
    check_implication,
    implied_independences,
)

PROPOSE_BELOW = 0.01
"""An edit is proposed only for implications rejected at this Holm-adjusted p-value (stricter than the
tests' flag at 0.05): changing the DAG needs more evidence than asking to review it. On the
simulator, proposals for a correct DAG fell from 3 in 20 seeds at 0.05 to 1 in 20 at 0.01 (0 in 40 on
seeds 600-639), with the missing seasonality -> digital edge still proposed first in every seed
(benchmarks/dag_suggest.py)."""


FAMILIES = 2
"""Each implication is judged by two families of tests, on the model table and on spend, each
Holm-adjusted: a rejection's p-value is doubled (Bonferroni over the families) before it is compared
with `PROPOSE_BELOW` or shown."""


@dataclass(frozen=True)
class EdgeEdit:
    """One proposed edge and the evidence for it."""

    source: str
    target: str
    resolves: tuple[str, ...]
    """The rejected implications (text) the edited DAG no longer implies."""
    evidence: float
    """The smallest adjusted p-value among them."""
    new_rejections: tuple[str, ...] = ()
    """Implications of the edited DAG, not tested before, that the data reject (after adjustment)."""
    checked: bool = False
    """Whether the edited DAG's new implications were tested (only the best-ranked edits are)."""

    def text(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True)
class Falsification:
    """DoWhy's `falsify_graph` summary: the share of local Markov conditions the DAG violates against
    that share over random node permutations (p: the share of permutations doing as well or better)."""

    violations: int
    tests: int
    permutation_p: float
    """Share of permuted DAGs with a violation share at most the given DAG's (small: the DAG is
    informative, better than a random DAG on these nodes)."""
    permutations: int
    falsified: bool | None
    falsifiable: bool | None


@dataclass(frozen=True)
class StructureSearch:
    """causal-learn's PC on the node series, with the background knowledge, shown beside the DAG."""

    edges: tuple[str, ...]
    """`a -> b` (oriented) or `a --- b` (PC could not orient it)."""
    missing_from_dag: tuple[str, ...]
    """Found by PC, adjacent in no direction in the user's DAG."""
    not_found: tuple[str, ...]
    """User's edges between the searched nodes that PC left out."""
    alpha: float


@dataclass(frozen=True)
class Suggestions:
    rejected: tuple[tuple[str, float], ...]
    """The rejected implications (text) and their adjusted p-value (the smallest of the tests; doubled
    when spend was tested too, see `FAMILIES`)."""
    edits: tuple[EdgeEdit, ...]
    falsification: Falsification | None
    tested: int
    """How many implications were tested."""
    propose_below: float = PROPOSE_BELOW
    search: StructureSearch | None = None
    on_spend: tuple[str, ...] = ()
    """The rejected implications that only the tests on spend reject."""


def forbidden(source: str, target: str, roles: Mapping[str, str], generated: Collection[str]) -> str | None:
    """Why background knowledge rules the edge out, or None."""
    if roles.get(source) == "kpi":
        return "the KPI is a sink"
    if target in generated:
        return "nothing causes a generated node (seasonality, trend)"
    if roles.get(source) == "channel" and roles.get(target) == "control":
        return "channels cannot cause seasonality, trend or price"
    if "latent" in (roles.get(source), roles.get(target)):
        return "latent nodes have no data to question"
    return None


RUN_SPEND_TESTS = 60
"""A run tests at most this many implications on spend (those pairing a channel with a non-channel
first): on a DAG with 60 controls the spend tests would otherwise add a quarter to the run's DAG step.
`cmmm suggest` tests them all."""


def spend_results(report: IndependenceReport, data: pd.DataFrame, columns: Mapping[str, Sequence[str]],
                  spend: Mapping[str, np.ndarray], deterministic: Collection[str], settings: IndependenceSettings,
                  trend_node: str | None = "trend", limit: int | None = None) -> list[IndependenceTestResult]:
    """Every tested implication with a channel on one side, tested again with that channel as the log of
    its spend over the weeks it is active, adjusted together (Holm).

    Why: a channel's node in the model table is its transformed media, whose variance is mostly
    *whether* it is on air (flights) and its carryover; what a confounder moves is mostly *how much*
    is spent when it is. On the simulator's flighted TV, the test of `tv ⟂ seasonality` on media rejects
    in a third of the worlds at 0.01, on log spend in almost all (benchmarks/dag_suggest.py). Restricting
    to active weeks conditions on a function of the channel, which keeps an independence that holds.
    `limit` bounds how many implications are tested (channel–control pairs first; None: all)."""
    results: list[IndependenceTestResult] = []
    named = [(imp, next((n for n in (imp.x, imp.y) if n in spend and len(columns.get(n, ())) == 1), None))
             for imp in dict.fromkeys(r.implication for r in report.results)]
    named = sorted([(imp, c) for imp, c in named if c is not None], key=lambda ic: ic[0].x in spend and ic[0].y in spend)
    tables: dict[str, WeeklyColumns] = {}  # one per channel: its active weeks, its log spend
    for imp, channel in named[:limit]:
        values = np.asarray(spend[channel], dtype=float)
        active = values > 0
        if int(active.sum()) < MIN_WEEKS:
            continue
        if channel not in tables:
            frame = data.loc[active].reset_index(drop=True).copy()
            frame[columns[channel][0]] = np.log(values[active])
            tables[channel] = WeeklyColumns(frame)
        outcome = check_implication(tables[channel], imp, columns, deterministic, settings, trend_node)
        if not isinstance(outcome, Untestable):
            results.extend(outcome)
    return adjust_results(results, settings)


def _rejections(results: Sequence[IndependenceTestResult], below: float, factor: float) -> dict[Implication, float]:
    out: dict[Implication, float] = {}
    for r in results:
        p = min(1.0, factor * r.p_adjusted)
        if r.rejected and p < below:
            out[r.implication] = min(out.get(r.implication, 1.0), p)
    return out


def candidate_edits(g: nx.DiGraph, rejected: Mapping[Implication, float], roles: Mapping[str, str],
                    generated: Collection[str]) -> list[EdgeEdit]:
    """Every allowed single edge (acyclic, background knowledge) that resolves at least one rejected
    implication, ranked (see the module docstring; new rejections are not known yet)."""
    if not rejected:
        return []
    order = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(g))}
    nodes = [n for n in g.nodes if roles.get(n) != "latent"]
    edits = []
    for a in nodes:
        for b in nodes:
            if a == b or g.has_edge(a, b) or g.has_edge(b, a) or forbidden(a, b, roles, generated):
                continue
            if nx.has_path(g, b, a):  # a -> b would close a cycle
                continue
            h = g.copy()
            h.add_edge(a, b)
            resolved = [(imp, p) for imp, p in rejected.items()
                        if not nx.is_d_separator(h, {imp.x}, {imp.y}, set(imp.given))]
            if resolved:
                edits.append(EdgeEdit(a, b, tuple(imp.text() for imp, _ in resolved),
                                      float(min(p for _, p in resolved))))
    return sorted(edits, key=lambda e: (-len(e.resolves), e.evidence, order[e.source], order[e.target]))


def check_edit(edit: EdgeEdit, g: nx.DiGraph, data: pd.DataFrame, columns: Mapping[str, Sequence[str]],
               deterministic: Collection[str], settings: IndependenceSettings,
               cache: dict[Implication, list[IndependenceTestResult] | Untestable],
               trend_node: str | None = "trend") -> EdgeEdit:
    """The edit with its new rejections: the edited DAG's implications tested (each implication once
    per call site, through `cache`) and adjusted together, as the pipeline would test that DAG."""
    h = g.copy()
    h.add_edge(edit.source, edit.target)
    widths = {node: len(cols) for node, cols in columns.items()}
    implications = implied_independences(h, columns, widths, deterministic)
    results: list[IndependenceTestResult] = []
    table = WeeklyColumns(data)
    for imp in implications:
        if imp not in cache:
            cache[imp] = check_implication(table, imp, columns, deterministic, settings, trend_node)
        outcome = cache[imp]
        if not isinstance(outcome, Untestable):
            results.extend(outcome)
    adjusted = adjust_results(results, settings)
    new = sorted({r.implication.text() for r in adjusted if r.rejected and r.implication.text() not in edit.resolves})
    return EdgeEdit(edit.source, edit.target, edit.resolves, edit.evidence, tuple(new), True)


def rank(edits: Sequence[EdgeEdit]) -> list[EdgeEdit]:
    """Checked edits that create no new rejection ahead of those that do, the order otherwise kept."""
    return sorted(edits, key=lambda e: (-len(e.resolves), bool(e.new_rejections), e.evidence))


def node_series(data: pd.DataFrame, columns: Mapping[str, Sequence[str]], outcome: str) -> pd.DataFrame:
    """One column per node for DoWhy's falsification: a node carried by several columns (Fourier
    seasonality) is represented by its fitted contribution to the KPI (least squares on its columns)."""
    out = {}
    y = data[outcome].to_numpy(dtype=float)
    for node, cols in columns.items():
        if len(cols) == 1:
            out[node] = data[cols[0]].to_numpy(dtype=float)
            continue
        x = np.column_stack([np.ones(len(data)), data[list(cols)].to_numpy(dtype=float)])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        out[node] = x[:, 1:] @ beta[1:]
    return pd.DataFrame(out)


def _partial_correlation_p(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """Fisher-z p-value of the partial correlation of x and y given z (iid: the falsification ranks
    the DAG against its permutations with the same test, so it is the comparison that counts)."""
    from scipy import stats

    x, y = np.asarray(x, float).reshape(len(x), -1)[:, 0], np.asarray(y, float).reshape(len(y), -1)[:, 0]
    design = np.ones((len(x), 1))
    if z is not None:
        design = np.column_stack([design, np.asarray(z, float).reshape(len(x), -1)])
    rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    r = float(rx @ ry / denom) if denom > 0 else 0.0
    df = len(x) - design.shape[1] - 1
    z_stat = np.arctanh(np.clip(r, -0.999999, 0.999999)) * np.sqrt(max(df - 1, 1))
    return float(2 * stats.norm.sf(abs(z_stat)))


def falsify(g: nx.DiGraph, series: pd.DataFrame, permutations: int, seed: int,
            alpha: float = 0.05) -> Falsification:
    """DoWhy's `falsify_graph` with a partial-correlation test and a bounded number of permutations.
    Its tests are iid: on weekly series they reject more true statements than the calibrated tests
    (so the absolute violation count is not the check; the permutation comparison is)."""
    from dowhy.gcm.falsify import FalsifyConst, falsify_graph
    from dowhy.gcm.util.general import set_random_seed

    nodes = [n for n in g.nodes if n in series.columns]
    graph = nx.DiGraph(g.subgraph(nodes))
    set_random_seed(seed)
    result = falsify_graph(graph, series[nodes], independence_test=_partial_correlation_p,
                           conditional_independence_test=_partial_correlation_p, significance_level=alpha,
                           significance_ci=alpha, n_permutations=permutations, show_progress_bar=False,
                           n_jobs=1)
    lmc = result.summary[FalsifyConst.VALIDATE_LMC]
    return Falsification(int(lmc[FalsifyConst.GIVEN_VIOLATIONS]), int(lmc[FalsifyConst.N_TESTS]),
                         float(lmc[FalsifyConst.P_VALUE]), len(lmc[FalsifyConst.PERM_VIOLATIONS]),
                         result.falsified, result.falsifiable)


def pc_search(g: nx.DiGraph, series: pd.DataFrame, roles: Mapping[str, str], generated: Collection[str],
              alpha: float = 0.01) -> StructureSearch:
    """causal-learn's PC (Fisher z) with every edge `forbidden` rules out declared as forbidden. Its
    tests are iid: on autocorrelated weekly series they find edges that are not there more often
    than the calibrated tests, so it is shown for comparison, never used to rank edits."""
    from causallearn.graph.Endpoint import Endpoint
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    names = [n for n in series.columns if n in g.nodes and roles.get(n) != "latent"]
    knowledge = BackgroundKnowledge()
    for a in names:
        for b in names:
            if a != b and forbidden(a, b, roles, generated):
                knowledge.add_forbidden_by_node(GraphNode(a), GraphNode(b))
    found = pc(series[names].to_numpy(dtype=float), alpha, "fisherz", node_names=names,
               background_knowledge=knowledge, show_progress=False)
    found_edges: list[tuple[str, str, str]] = []
    for e in found.G.get_graph_edges():
        a, b = e.get_node1().get_name(), e.get_node2().get_name()
        if e.get_endpoint1() == Endpoint.ARROW and e.get_endpoint2() == Endpoint.TAIL:
            a, b = b, a
        directed = Endpoint.ARROW in (e.get_endpoint1(), e.get_endpoint2())
        found_edges.append((f"{a} -> {b}" if directed else f"{a} --- {b}", a, b))
    pairs = {frozenset((a, b)) for _, a, b in found_edges}
    edges = tuple(text for text, _, _ in found_edges)
    missing = tuple(text for text, a, b in found_edges if not (g.has_edge(a, b) or g.has_edge(b, a)))
    not_found = tuple(f"{a} -> {b}" for a, b in g.edges if a in names and b in names
                      and frozenset((a, b)) not in pairs)
    return StructureSearch(edges, missing, not_found, alpha)


def suggest(g: nx.DiGraph, report: IndependenceReport, data: pd.DataFrame, columns: Mapping[str, Sequence[str]],
            roles: Mapping[str, str], deterministic: Collection[str], settings: IndependenceSettings,
            outcome: str, checked: int = 3, permutations: int = 0,
            trend_node: str | None = "trend", propose_below: float = PROPOSE_BELOW,
            structure_search: bool = False, spend: Mapping[str, np.ndarray] | None = None,
            spend_limit: int | None = None) -> Suggestions:
    """The ranked edits for the implications of `report` rejected at adjusted p < `propose_below`
    (the best `checked` edits tested for new rejections) and, with `permutations` > 0, DoWhy's
    falsification of the DAG. Every rejected implication is listed, with or without an edit. With
    `spend` (channel → weekly spend), the implications naming a channel are also tested on its log
    spend over its active weeks (`spend_results`)."""
    on_spend = (spend_results(report, data, columns, spend, deterministic, settings, trend_node, spend_limit)
                if spend else [])
    factor = float(FAMILIES) if on_spend else 1.0
    from_media = _rejections(report.results, 1.0, factor)
    from_spend = _rejections(on_spend, 1.0, factor)
    rejected = {imp: min(from_media.get(imp, 1.0), from_spend.get(imp, 1.0)) for imp in {**from_media, **from_spend}}
    strong = {imp: p for imp, p in rejected.items() if p < propose_below}
    edits = candidate_edits(g, strong, roles, deterministic)
    cache: dict[Implication, list[IndependenceTestResult] | Untestable] = {}
    for r in report.results:
        cache.setdefault(r.implication, [])
        cache[r.implication].append(r)  # type: ignore[union-attr]
    for u in report.untestable:
        cache[u.implication] = u
    top = [check_edit(e, g, data, columns, deterministic, settings, cache, trend_node) for e in edits[:checked]]
    ranked = rank(top) + edits[checked:]
    series = node_series(data, columns, outcome)
    falsification = falsify(g, series, permutations, settings.seed, settings.alpha) if permutations > 0 else None
    search = pc_search(g, series, roles, deterministic) if structure_search else None
    tested = len({r.implication for r in report.results})
    return Suggestions(tuple((imp.text(), p) for imp, p in sorted(rejected.items(), key=lambda kv: kv[1])),
                       tuple(ranked), falsification, tested, propose_below, search,
                       tuple(imp.text() for imp in from_spend if imp not in from_media))


SUGGESTION_COLUMNS = ["rank", "edit", "resolves", "evidence", "new_rejections", "checked", "found_on_spend"]


def suggestions_table(s: Suggestions) -> pd.DataFrame:
    """The `dag_suggestions` table: one row per proposed edit, best first (none: no rows)."""
    rows = [{"rank": i, "edit": e.text(), "resolves": "; ".join(e.resolves), "evidence": e.evidence,
             "new_rejections": "; ".join(e.new_rejections), "checked": e.checked,
             "found_on_spend": any(text in s.on_spend for text in e.resolves)} for i, e in enumerate(s.edits, 1)]
    return pd.DataFrame(rows, columns=SUGGESTION_COLUMNS)


def suggestions_text(s: Suggestions, max_edits: int = 5) -> str:
    """What `cmmm suggest` prints."""
    lines = [f"Tested {s.tested} implications of the DAG; the data reject {len(s.rejected)}."]
    for text, p in s.rejected:
        where = " on log spend over active weeks" if text in s.on_spend else ""
        lines.append(f"  rejected: {text} (adjusted p = {p:.2g}{where})")
    if not s.rejected:
        lines.append("No edit proposed: the data are consistent with every tested implication (which cannot show "
                     "an edge between two generated nodes, or a common cause that is not a node).")
    weak = [text for text, p in s.rejected if p >= s.propose_below]
    if weak:
        lines.append(f"No edit is proposed for {', '.join(weak)}: adjusted p >= {s.propose_below:g}, too weak to "
                     "change the DAG on (review it).")
    if len(weak) < len(s.rejected) and not s.edits:
        lines.append("No single allowed edge resolves them (background knowledge: the KPI is a sink, nothing causes "
                     "seasonality or trend, channels cannot cause controls): consider a latent common cause.")
    if s.edits:
        lines.append("Smallest edits (one edge each), best first; your DAG is not changed:")
        for i, e in enumerate(s.edits[:max_edits], 1):
            new = ("; creates no new rejection" if e.checked and not e.new_rejections
                   else f"; the data would reject {', '.join(e.new_rejections)}" if e.new_rejections
                   else "; new implications not tested")
            lines.append(f"  {i}. add {e.text()}: resolves {len(e.resolves)} ({'; '.join(e.resolves)}), "
                         f"strongest adjusted p = {e.evidence:.2g}{new}")
    if s.falsification is not None:
        f = s.falsification
        lines.append(f"DoWhy falsify_graph (partial-correlation tests, {f.permutations} node permutations): the DAG "
                     f"violates {f.violations} of {f.tests} local Markov conditions; {100 * f.permutation_p:.0f}% of "
                     f"permuted DAGs do as well or better"
                     + (" (the DAG is informative)." if f.permutation_p <= 0.05 else
                        " (the data cannot tell the DAG from a random one on these nodes)."))
    if s.search is not None:
        r = s.search
        lines.append(f"causal-learn PC (iid Fisher z at {r.alpha:g}, same background knowledge; iid tests on weekly "
                     f"series find spurious edges, compare only): {'; '.join(r.edges) or 'no edge'}.")
        lines.append(f"  found by PC, not in your DAG: {'; '.join(r.missing_from_dag) or 'none'}; "
                     f"in your DAG, not found by PC: {'; '.join(r.not_found) or 'none'}.")
    return "\n".join(lines)
