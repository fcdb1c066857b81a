"""The declared causal DAG: read from the config (edge list, DOT or GML file) and validated as part
of the config (acyclic, known nodes, the KPI a sink, every channel reaching it)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import networkx as nx

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import ConfigError


def read_graph_file(path: Path) -> list[tuple[str, str]]:
    """Edges from a DOT (`digraph { a -> b -> c; }`) or GML (`directed 1`) file, parsed into plain
    pairs without pygraphviz. Node names are the DOT IDs (quotes removed) or the GML labels."""
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


_DOT_KEYWORDS = {"strict", "graph", "digraph", "node", "edge", "subgraph"}
_DOT_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<hash>\#[^\n]*)
  | (?P<edge_op>->|--)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<number>-?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?))
  | (?P<name>[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)
  | (?P<html><)
  | (?P<punct>[{}\[\];,=:+])
""", re.VERBOSE | re.DOTALL)


def _dot_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens of a DOT text; quoted strings are unescaped, HTML strings kept whole."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        m = _DOT_TOKEN.match(text, i)
        if m is None:
            line = text.count("\n", 0, i) + 1
            raise ValueError(f"unexpected character {text[i]!r} on line {line}")
        kind = m.lastgroup or ""
        if kind == "html":
            depth, j = 0, i
            while j < len(text):
                depth += {"<": 1, ">": -1}.get(text[j], 0)
                j += 1
                if depth == 0:
                    break
            if depth:
                raise ValueError("unterminated HTML string '<...>'")
            tokens.append(("id", text[i:j]))
            i = j
            continue
        value = m.group()
        i = m.end()
        if kind == "hash" and text[text.rfind("\n", 0, m.start()) + 1:m.start()].strip():
            raise ValueError(f"unexpected '#' on line {text.count(chr(10), 0, m.start()) + 1}")
        if kind in {"space", "comment", "hash"}:
            continue  # a line starting with '#' is preprocessor output, which DOT discards
        if kind == "quoted":
            value = re.sub(r"\\\r?\n", "", value[1:-1]).replace('\\"', '"')
            if tokens and tokens[-1] == ("punct", "+") and len(tokens) > 1 and tokens[-2][0] == "quoted":
                tokens.pop()
                tokens[-1] = ("quoted", tokens[-1][1] + value)
                continue
        elif kind == "name" and value.lower() in _DOT_KEYWORDS:
            kind = "keyword"
            value = value.lower()
        tokens.append(("id" if kind in {"name", "number"} else kind, value))
    return [("id", v) if k == "quoted" else (k, v) for k, v in tokens]


class _DotParser:
    """Recursive descent over the DOT grammar (graphviz.org/doc/info/lang.html); keeps only nodes and
    edges, and expands edges between subgraphs into every pair of their nodes."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0
        self.graph: nx.Graph = nx.DiGraph()

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            expected = value or kind
            raise ValueError(f"expected {expected!r} but found {v or 'the end of the file'!r}")
        self.i += 1
        return v

    def accept(self, kind: str, value: str | None = None) -> bool:
        k, v = self.peek()
        if k == kind and (value is None or v == value):
            self.i += 1
            return True
        return False

    def parse(self) -> nx.Graph:
        self.accept("keyword", "strict")
        kind = self.take("keyword")
        if kind not in {"graph", "digraph"}:
            raise ValueError(f"expected 'digraph' but found {kind!r}")
        self.graph = nx.DiGraph() if kind == "digraph" else nx.Graph()
        self.accept("id")
        self.take("punct", "{")
        self.statements()
        self.take("punct", "}")
        if self.peek()[0] != "end":
            raise ValueError(f"unexpected {self.peek()[1]!r} after the closing '}}'")
        return self.graph

    def statements(self) -> list[str]:
        """Parse statements up to the closing brace; return the nodes they name, in order."""
        named: list[str] = []
        while self.peek() != ("punct", "}") and self.peek()[0] != "end":
            named.extend(self.statement())
            self.accept("punct", ";") or self.accept("punct", ",")
        return list(dict.fromkeys(named))

    def statement(self) -> list[str]:
        kind, value = self.peek()
        if kind == "keyword" and value in {"graph", "node", "edge"}:
            self.i += 1
            self.attributes()
            return []
        if kind == "id" and self.peek(1) == ("punct", "="):
            self.i += 2
            self.take("id")
            return []
        operands = [self.operand()]
        while self.peek()[0] == "edge_op":
            op = self.take("edge_op")
            if op == "--" and self.graph.is_directed():
                raise ValueError("undirected edge '--' in a digraph; write cause -> effect")
            if op == "->" and not self.graph.is_directed():
                raise ValueError("directed edge '->' in an undirected 'graph'; declare it as 'digraph'")
            operands.append(self.operand())
        for left, right in zip(operands, operands[1:]):
            self.graph.add_edges_from((a, b) for a in left for b in right)
        self.attributes()
        return [n for operand in operands for n in operand]

    def operand(self) -> list[str]:
        """A node id (with an optional port) or a subgraph: the nodes it stands for."""
        if self.peek() == ("keyword", "subgraph") or self.peek() == ("punct", "{"):
            if self.accept("keyword", "subgraph") and self.peek()[0] == "id":
                self.i += 1
            self.take("punct", "{")
            named = self.statements()
            self.take("punct", "}")
            return named
        name = self.take("id")
        if self.accept("punct", ":"):
            self.take("id")
            if self.accept("punct", ":"):
                self.take("id")
        self.graph.add_node(name)
        return [name]

    def attributes(self) -> None:
        while self.accept("punct", "["):
            while not self.accept("punct", "]"):
                self.take("id")
                if self.accept("punct", "="):
                    self.take("id")
                self.accept("punct", ",") or self.accept("punct", ";")


def read_dot(text: str) -> nx.Graph:
    """Nodes and edges of a DOT graph: attributes, comments, subgraphs, ports, chains `a -> b -> c`,
    quoted and HTML names. A DiGraph for `digraph`, an (undirected) Graph for `graph`."""
    return _DotParser(_dot_tokens(text)).parse()


def build_graph(config: PipelineConfig) -> nx.DiGraph:
    """The DAG over graph nodes (channels, controls, KPI and latent nodes from `graph.latent`),
    validated against the config."""
    edges = read_graph_file(config.graph_file) if config.graph_file else list(config.edges)
    where = str(config.graph_file) if config.graph_file else f"{config.source} key 'graph.edges'"
    g = nx.DiGraph()
    g.add_nodes_from(config.channel_names)
    g.add_nodes_from(config.controls)
    g.add_node(config.kpi)
    g.add_nodes_from(config.latent)
    known = set(g.nodes)
    for i, (a, b) in enumerate(edges):
        edge_place = f"{config.graph_file} edge '{a} -> {b}'" if config.graph_file else \
            f"{config.source} key 'graph.edges[{i}]'"
        for node in (a, b):
            if node not in known:
                close = difflib.get_close_matches(node, sorted(known), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ConfigError("graph-unknown-node", edge_place,
                                  f"edge [{a}, {b}] names '{node}', which is neither a channel "
                                  f"({', '.join(config.channel_names)}), a control "
                                  f"({', '.join(config.controls) or 'none'}) nor the KPI ({config.kpi}).",
                                  f"{hint}Rename it to a known node, or declare it under channels, controls "
                                  "or graph.latent.")
        if a == b:
            raise ConfigError("graph-self-loop", edge_place, f"edge [{a}, {b}] points '{a}' at itself; a variable "
                              "cannot cause itself in a DAG.", "remove the edge.")
        g.add_edge(a, b)
    validate_graph(g, config, where)
    return g


def validate_graph(g: nx.DiGraph, config: PipelineConfig, where: str) -> None:
    """The KPI a sink, acyclic, and every channel with a directed path to the KPI. The sink rule
    comes first: an edge out of the KPI usually also closes a cycle, and names the cause better."""
    children = sorted(g.successors(config.kpi))
    if children:
        raise ConfigError("graph-kpi-has-children", where,
                          f"the KPI '{config.kpi}' has outgoing edges to {', '.join(children)}.",
                          f"the KPI is the outcome and must be a sink: remove the edges "
                          f"{', '.join(f'[{config.kpi}, {c}]' for c in children)}.")
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        loop = " -> ".join([*(str(a) for a, _ in cycle), str(cycle[0][0])])
        raise ConfigError("graph-cycle", where, f"has a cycle: {loop}.",
                          "a causal DAG cannot loop back on itself: remove the edge of the cycle that is not "
                          "causal (often the one pointing back in time).")
    for channel in config.channel_names:
        if not nx.has_path(g, channel, config.kpi):
            raise ConfigError("graph-channel-unreachable", where,
                              f"channel '{channel}' has no directed path to the KPI '{config.kpi}', so its effect "
                              "would be zero by assumption.",
                              f"add the edge [{channel}, {config.kpi}] (or a path through a mediator), or drop "
                              "the channel.")
