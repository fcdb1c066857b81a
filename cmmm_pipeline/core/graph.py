"""The declared causal DAG: read from the config (edge list, DOT or GML file) and validated as part
of the config (acyclic, known nodes, the KPI a sink, every channel reaching it)."""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import ConfigError, combined


def read_graph_file(path: Path) -> list[tuple[str, str]]:
    """Edges from a DOT (`digraph { a -> b -> c; }`, read by pydot) or GML (`directed 1`, read by
    networkx) file, parsed into plain pairs without pygraphviz. Node names are the DOT IDs (quotes
    removed) or the GML labels."""
    if not path.is_file():
        raise ConfigError("graph-file", str(path), "no such file.", "point graph.file at a .dot, .gv or .gml file.")
    suffix = path.suffix.lower()
    if suffix not in {".gml", ".dot", ".gv"}:
        raise ConfigError("graph-file", str(path), f"has the unknown extension '{suffix}'.",
                          "use a .dot, .gv or .gml file.")
    try:
        text = path.read_text(encoding="utf-8")
        g = _read_gml(text) if suffix == ".gml" else read_dot(text)
    except (nx.NetworkXError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("graph-file", str(path), f"could not be parsed ({exc}).".replace("\n", " "),
                          "check the file's syntax (a DOT 'digraph { a -> b; }' or a GML graph with "
                          "'directed 1').") from None
    if not g.is_directed():
        raise ConfigError("graph-file", str(path), "holds an undirected graph, so edges have no cause and effect.",
                          "declare it as 'digraph { ... }' with '->' edges (DOT) or with 'directed 1' (GML).")
    return [(str(a), str(b)) for a, b in g.edges()]


def _read_gml(text: str) -> nx.Graph:
    """GML with node labels as names; files whose nodes carry only ids are named by their ids."""
    try:
        return nx.parse_gml(text, label="label")
    except nx.NetworkXError as exc:
        if "label" not in str(exc):
            raise
        return nx.relabel_nodes(nx.parse_gml(text, label="id"), str)


_DOT_DEFAULTS = {"graph", "node", "edge"}
"""Names pydot gives the default-attribute statements (`node [shape=box]`); a node so named is quoted."""
_DOT_LEXEMES = re.compile(r"""(?P<skip>"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/|^[ \t]*\#[^\n]*)|(?P<op>->|--)""",
                          re.DOTALL | re.MULTILINE)
_HTML_INNERMOST = re.compile(r"<[^<>]*>")


def _edge_operators(text: str) -> set[str]:
    """The edge operators a DOT text uses, outside quoted and HTML strings and comments (pydot's
    parser accepts either operator in either kind of graph and keeps no record of which)."""
    bare = _DOT_LEXEMES.sub(lambda m: m.group("op") or " ", text).replace("->", "\0")  # no '>' left to pair
    while (stripped := _HTML_INNERMOST.sub(" ", bare)) != bare:
        bare = stripped
    return {"->" if op == "\0" else "--" for op in re.findall("\0|--", bare)}


def _dot_name(raw: str) -> str:
    """A DOT ID as the user meant it: quotes and escapes removed, a port (`tv:e`) dropped, an HTML
    string kept whole."""
    if raw.startswith("<"):
        return raw
    quoted = re.match(r'"((?:[^"\\]|\\.)*)"', raw)
    if quoted:
        return re.sub(r"\\\r?\n", "", quoted.group(1)).replace('\\"', '"')
    return raw.split(":", 1)[0]


def _collect(obj: Mapping[str, Any], g: nx.Graph) -> list[str]:
    """Add the nodes and edges of a pydot (sub)graph's `obj_dict` to `g`; return the nodes it names.
    An edge to or from a subgraph stands for an edge to or from each of its nodes."""
    named: list[str] = []

    def endpoint(point: object) -> list[str]:
        if isinstance(point, Mapping):
            return _collect(point, g)
        name = _dot_name(str(point))
        g.add_node(name)
        return [name]

    for raw, entries in obj.get("nodes", {}).items():
        if raw in _DOT_DEFAULTS:
            continue
        for entry in entries:
            name = _dot_name(str(entry.get("name", raw)))
            g.add_node(name)
            named.append(name)
    for entries in obj.get("edges", {}).values():
        for entry in entries:
            source, target = (endpoint(p) for p in entry["points"])
            g.add_edges_from((a, b) for a in source for b in target)
            named.extend([*source, *target])
    for entries in obj.get("subgraphs", {}).values():
        for entry in entries:
            named.extend(_collect(entry, g))
    return list(dict.fromkeys(named))


def read_dot(text: str) -> nx.Graph:
    """Nodes and edges of a DOT graph, parsed by pydot: attributes, comments, subgraphs, ports,
    chains `a -> b -> c`, quoted and HTML names. A DiGraph for `digraph`, an (undirected) Graph for
    `graph`. Raises ValueError with the place of a syntax error."""
    with warnings.catch_warnings():  # pydot's grammar uses pyparsing names deprecated since pyparsing 3.3
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydot.dot_parser import GraphParser
    from pyparsing import ParseException

    try:
        graphs = list(GraphParser.parser.parse_string(text, parse_all=True))
    except ParseException as exc:
        what = str(exc).split("  (at char")[0].replace("rbrace", "'}'").replace("lbrace", "'{'")
        raise ValueError(f"{what} on line {exc.lineno}, column {exc.col}") from None
    if len(graphs) != 1:
        raise ValueError(f"holds {len(graphs)} graphs; put the DAG in one 'digraph {{ ... }}'")
    directed = graphs[0].get_type() == "digraph"
    operators = _edge_operators(text)
    if directed and "--" in operators:
        raise ValueError("undirected edge '--' in a digraph; write cause -> effect")
    if not directed and "->" in operators:
        raise ValueError("directed edge '->' in an undirected 'graph'; declare it as 'digraph'")
    g: nx.Graph = nx.DiGraph() if directed else nx.Graph()
    _collect(graphs[0].obj_dict, g)
    return g


@dataclass(frozen=True)
class GraphSpec:
    """What the graph rules need from a config: the nodes by role and the declared edges. Built from
    a `PipelineConfig`, or while a config is still being validated (so graph problems are reported
    together with the other config problems)."""

    source: Path
    channels: tuple[str, ...]
    controls: tuple[str, ...]
    kpi: str
    latent: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    graph_file: Path | None

    @classmethod
    def of(cls, config: PipelineConfig) -> GraphSpec:
        return cls(config.source, config.channel_names, config.controls, config.kpi, config.latent, config.edges,
                   config.graph_file)


def build_graph(config: PipelineConfig) -> nx.DiGraph:
    """The DAG over graph nodes (channels, controls, KPI and latent nodes from `graph.latent`),
    validated against the config; every broken rule is raised at once."""
    return check_graph(GraphSpec.of(config))


def check_graph(spec: GraphSpec) -> nx.DiGraph:
    """The declared DAG, or every problem with it raised at once (`ConfigErrors` for several)."""
    g, problems = declared_graph(spec)
    error = combined(problems)
    if error is not None:
        raise error
    return g


def declared_graph(spec: GraphSpec) -> tuple[nx.DiGraph, list[ConfigError]]:
    """The graph with its usable edges, and every problem: unknown nodes and self-loops (their edges
    left out), then the graph-wide rules."""
    edges = read_graph_file(spec.graph_file) if spec.graph_file else list(spec.edges)
    where = str(spec.graph_file) if spec.graph_file else f"{spec.source} key 'graph.edges'"
    g = nx.DiGraph()
    g.add_nodes_from(spec.channels)
    g.add_nodes_from(spec.controls)
    g.add_node(spec.kpi)
    g.add_nodes_from(spec.latent)
    known = set(g.nodes)
    problems: list[ConfigError] = []
    for i, (a, b) in enumerate(edges):
        edge_place = f"{spec.graph_file} edge '{a} -> {b}'" if spec.graph_file else \
            f"{spec.source} key 'graph.edges[{i}]'"
        unknown = [node for node in dict.fromkeys((a, b)) if node not in known]
        for node in unknown:
            close = difflib.get_close_matches(node, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(ConfigError(
                "graph-unknown-node", edge_place,
                f"edge [{a}, {b}] names '{node}', which is neither a channel ({', '.join(spec.channels)}), a control "
                f"({', '.join(spec.controls) or 'none'}) nor the KPI ({spec.kpi}).",
                f"{hint}Rename it to a known node, or declare it under channels, controls or graph.latent."))
        if a == b:
            problems.append(ConfigError("graph-self-loop", edge_place, f"edge [{a}, {b}] points '{a}' at itself; a "
                                        "variable cannot cause itself in a DAG.", "remove the edge."))
        if not unknown and a != b:
            g.add_edge(a, b)
    problems.extend(graph_rule_problems(g, spec.channels, spec.kpi, where))
    return g, problems


def graph_rule_problems(g: nx.DiGraph, channels: tuple[str, ...], kpi: str, where: str) -> list[ConfigError]:
    """The KPI a sink, acyclic, and every channel with a directed path to the KPI. An edge out of the
    KPI usually also closes a cycle: the sink rule names that cause better, so cycles are looked for
    with the KPI's outgoing edges left out."""
    problems: list[ConfigError] = []
    children = sorted(g.successors(kpi))
    if children:
        problems.append(ConfigError(
            "graph-kpi-has-children", where, f"the KPI '{kpi}' has outgoing edges to {', '.join(children)}.",
            f"the KPI is the outcome and must be a sink: remove the edges "
            f"{', '.join(f'[{kpi}, {c}]' for c in children)}."))
    acyclic = g.copy()
    acyclic.remove_edges_from([(kpi, c) for c in children])
    if not nx.is_directed_acyclic_graph(acyclic):
        cycle = nx.find_cycle(acyclic)
        loop = " -> ".join([*(str(a) for a, _ in cycle), str(cycle[0][0])])
        problems.append(ConfigError(
            "graph-cycle", where, f"has a cycle: {loop}.",
            "a causal DAG cannot loop back on itself: remove the edge of the cycle that is not "
            "causal (often the one pointing back in time)."))
    for channel in channels:
        if not nx.has_path(acyclic, channel, kpi):
            problems.append(ConfigError(
                "graph-channel-unreachable", where,
                f"channel '{channel}' has no directed path to the KPI '{kpi}', so its effect would be zero by "
                "assumption.",
                f"add the edge [{channel}, {kpi}] (or a path through a mediator), or drop the channel."))
    return problems
