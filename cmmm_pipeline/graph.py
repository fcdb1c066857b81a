"""The user's causal DAG: built from the config (edge list, DOT or GML file), validated, and
expanded so that a node carried by several columns (Fourier seasonality) becomes one DoWhy node
per column with the same parents and children."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import networkx as nx
import pandas as pd

from cmmm_pipeline.config import PipelineConfig
from cmmm_pipeline.errors import ConfigError


def read_graph_file(path: Path) -> list[tuple[str, str]]:
    """Edges from a DOT (`a -> b;`) or GML file, parsed into plain pairs (no pygraphviz needed)."""
    if not path.is_file():
        raise ConfigError("graph-file", str(path), "no such file.", "point graph.file at a .dot or .gml file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".gml":
            g = nx.read_gml(path)
        elif suffix in {".dot", ".gv"}:
            g = _read_dot(path.read_text(encoding="utf-8"))
        else:
            raise ConfigError("graph-file", str(path), f"has the unknown extension '{suffix}'.",
                              "use a .dot, .gv or .gml file.")
    except (nx.NetworkXError, ValueError) as exc:
        raise ConfigError("graph-file", str(path), f"could not be parsed ({exc}).",
                          "check the file's syntax.") from None
    if not g.is_directed():
        raise ConfigError("graph-file", str(path), "holds an undirected graph.",
                          "declare it as a digraph / 'directed 1'.")
    return [(str(a), str(b)) for a, b in g.edges()]


def _read_dot(text: str) -> nx.DiGraph:
    """A small parser for the DOT subset people draw DAGs in: `digraph { a -> b -> c; d; }`."""
    import re

    body = re.sub(r"//[^\n]*|#[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    head, _, rest = body.partition("{")
    if "digraph" not in head.lower():
        raise ValueError("expected 'digraph { ... }'")
    rest = rest.rsplit("}", 1)[0]
    rest = re.sub(r"\[[^\]]*\]", "", rest)  # drop attributes
    g = nx.DiGraph()
    for statement in re.split(r"[;\n]", rest):
        statement = statement.strip()
        if not statement or "=" in statement and "->" not in statement:
            continue
        names = [n.strip().strip('"') for n in statement.split("->")]
        if any(not n for n in names):
            raise ValueError(f"malformed statement '{statement}'")
        if len(names) == 1:
            g.add_node(names[0])
        for a, b in zip(names, names[1:]):
            g.add_edge(a, b)
    return g


def build_graph(config: PipelineConfig) -> nx.DiGraph:
    """The DAG over graph nodes (channels, controls, KPI), validated against the config."""
    edges = read_graph_file(config.graph_file) if config.graph_file else list(config.edges)
    where = str(config.graph_file) if config.graph_file else f"{config.source} key 'graph.edges'"
    g = nx.DiGraph()
    g.add_nodes_from(config.channel_names)
    g.add_nodes_from(config.controls)
    g.add_node(config.kpi)
    known = set(g.nodes)
    for a, b in edges:
        for node in (a, b):
            if node not in known:
                raise ConfigError("graph-unknown-node", where, f"edge [{a}, {b}] names '{node}', which is neither "
                                  "a channel, a control nor the KPI.",
                                  f"rename it to one of {sorted(known)} or add it under controls.")
        if a == b:
            raise ConfigError("graph-self-loop", where, f"edge [{a}, {b}] points a node at itself.", "remove it.")
        g.add_edge(a, b)
    validate_graph(g, config, where)
    return g


def validate_graph(g: nx.DiGraph, config: PipelineConfig, where: str) -> None:
    """Acyclic, the KPI a sink, and every channel with a directed path to the KPI."""
    if not nx.is_directed_acyclic_graph(g):
        cycle = " -> ".join(str(a) for a, _ in nx.find_cycle(g))
        raise ConfigError("graph-cycle", where, f"has a cycle: {cycle} -> {nx.find_cycle(g)[0][0]}.",
                          "a causal DAG cannot loop; remove one of the cycle's edges.")
    children = sorted(g.successors(config.kpi))
    if children:
        raise ConfigError("graph-kpi-has-children", where, f"the KPI '{config.kpi}' points at {children}.",
                          "the KPI is the outcome: remove its outgoing edges.")
    for channel in config.channel_names:
        if not nx.has_path(g, channel, config.kpi):
            raise ConfigError("graph-channel-unreachable", where, f"channel '{channel}' has no directed path to "
                              f"'{config.kpi}'.", f"add the edge [{channel}, {config.kpi}] (or through a mediator),"
                              " or drop the channel.")


def expand_graph(g: nx.DiGraph, columns: dict[str, list[str]]) -> nx.DiGraph:
    """Replace each node by its feature columns, copying edges (all columns of a node share its parents)."""
    out = nx.DiGraph()
    for node in g.nodes:
        out.add_nodes_from(columns.get(node, [node]))
    for a, b in g.edges:
        for ca in columns.get(a, [a]):
            for cb in columns.get(b, [b]):
                out.add_edge(ca, cb)
    return out


def edges_table(g: nx.DiGraph, roles: dict[str, str]) -> pd.DataFrame:
    """The DAG as rows (for the warehouse): every edge with the role of its endpoints."""
    rows = [{"source": a, "target": b, "source_role": roles[a], "target_role": roles[b]} for a, b in g.edges]
    return pd.DataFrame(rows, columns=["source", "target", "source_role", "target_role"])


def graph_from_table(table: pd.DataFrame, nodes: Iterable[str]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(zip(table["source"], table["target"]))
    return g


def node_roles(config: PipelineConfig) -> dict[str, str]:
    roles = {c: "channel" for c in config.channel_names}
    roles.update({c: "control" for c in config.controls})
    roles[config.kpi] = "kpi"
    return roles


def mediators(g: nx.DiGraph, treatment: str, outcome: str) -> list[str]:
    """Nodes on a directed path from the treatment to the outcome (descendants that reach the outcome)."""
    return sorted(n for n in nx.descendants(g, treatment) if n != outcome and nx.has_path(g, n, outcome))
