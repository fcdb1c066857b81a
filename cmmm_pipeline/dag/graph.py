"""The DAG as the analyses use it: a node carried by several columns (Fourier seasonality) expanded
into one DoWhy node per column, the warehouse's edge table, node roles and mediators."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig


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
    """Node → channel, control, kpi or latent (an unobserved cause without a data column)."""
    roles = {c: "channel" for c in config.channel_names}
    roles.update({c: "control" for c in config.controls})
    roles[config.kpi] = "kpi"
    roles.update({c: "latent" for c in config.latent})
    return roles


def mediators(g: nx.DiGraph, treatment: str, outcome: str) -> list[str]:
    """Nodes on a directed path from the treatment to the outcome (descendants that reach the outcome)."""
    return sorted(n for n in nx.descendants(g, treatment) if n != outcome and nx.has_path(g, n, outcome))
