"""The DAG from a DOT or GML file, and latent nodes in the config."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
import yaml

from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.graph import build_graph, read_dot, read_graph_file
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.dag.graph import edges_table, node_roles

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SAMPLE_EDGES = {("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
                ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
                ("trend", "sales")}

DRAWN_DOT = """/* exported from a drawing tool */
strict digraph "media DAG" {
  graph [rankdir=LR, label="a -> b is not an edge"]; node [shape=box]
  edge [color="#333333"]
# a preprocessor line
  rankdir = LR
  "tv" [label=<<b>TV</b> spend>];
  seasonality -> tv -> search -> sales [color=red, style="dashed"]  // a chain
  seasonality -> {digital; sales}
  {digital email} -> sales;
  subgraph cluster_controls { label = "controls"; price; trend } -> sales
  tv:e -> sales:w
}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _config(tmp_path: Path, graph: dict) -> Path:
    raw = yaml.safe_load((SAMPLE / "config.yaml").read_text(encoding="utf-8"))
    raw["data"]["path"] = str(SAMPLE / "weekly.csv")
    raw["graph"] = graph
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_dot_with_attributes_comments_chains_subgraphs_and_ports(tmp_path: Path) -> None:
    edges = read_graph_file(_write(tmp_path, "dag.dot", DRAWN_DOT))
    assert set(edges) == SAMPLE_EDGES
    assert len(edges) == len(SAMPLE_EDGES)


def test_dot_quoted_names_escapes_and_concatenation() -> None:
    g = read_dot('digraph { "brand awareness" -> "tv \\"spend\\""; "a" + "b" -> c; d; 1.5 -> x }')
    assert set(g.edges) == {("brand awareness", 'tv "spend"'), ("ab", "c"), ("1.5", "x")}
    assert "d" in g.nodes


def test_dot_attribute_values_are_not_nodes() -> None:
    g = read_dot('digraph { node [label="sales"]; a -> b [label="tv"]; subgraph s { color=blue; c } }')
    assert set(g.nodes) == {"a", "b", "c"}


def test_edge_operators_inside_names_labels_and_comments_do_not_count() -> None:
    g = read_dot('digraph { a [label=<x -- y>]; "q--r" -> a // c -- d\n /* e -- f */ }')
    assert set(g.edges) == {("q--r", "a")}
    assert read_dot('graph { "a->b" -- c }').edges == nx.Graph([("a->b", "c")]).edges


@pytest.mark.parametrize("text, detail", [
    ("graph { tv -- sales }", "undirected"),
    ("digraph { tv -- sales }", "'--'"),
    ("digraph { tv -> sales ", "Expected '}', found end of text on line 1, column 23"),
    ("digraph { tv -> ; }", "on line 1, column 14"),
    ("digraph {\n tv-spend -> sales }", "found '-' on line 2, column 4"),
    ("digraph { tv -> sales } extra", "Expected end of text, found 'extra'"),
    ("dag { tv -> sales }", "found 'dag' on line 1, column 1"),
    ('digraph { a -> b }\ndigraph { c -> d }', "holds 2 graphs"),
])
def test_malformed_or_undirected_dot_is_refused_with_the_reason(tmp_path: Path, text: str, detail: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_graph_file(_write(tmp_path, "dag.gv", text))
    assert err.value.rule == "graph-file"
    assert detail in str(err.value)


def test_gml_directed_with_labels(tmp_path: Path) -> None:
    g = nx.DiGraph(sorted(SAMPLE_EDGES))
    path = tmp_path / "dag.gml"
    nx.write_gml(g, path)
    assert set(read_graph_file(path)) == SAMPLE_EDGES


def test_gml_with_ids_only_names_nodes_by_id(tmp_path: Path) -> None:
    text = "graph [\n directed 1\n node [ id 0 ]\n node [ id 1 ]\n edge [ source 0 target 1 ]\n]\n"
    assert read_graph_file(_write(tmp_path, "dag.gml", text)) == [("0", "1")]


def test_undirected_gml_is_refused(tmp_path: Path) -> None:
    text = 'graph [\n node [ id 0 label "tv" ]\n node [ id 1 label "sales" ]\n edge [ source 0 target 1 ]\n]\n'
    with pytest.raises(ConfigError, match="undirected"):
        read_graph_file(_write(tmp_path, "dag.gml", text))


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown extension '.txt'"):
        read_graph_file(_write(tmp_path, "dag.txt", "digraph { a -> b }"))
    with pytest.raises(ConfigError, match="no such file"):
        read_graph_file(tmp_path / "absent.dot")


def test_config_graph_file_gives_the_same_dag_as_the_edge_list(tmp_path: Path) -> None:
    _write(tmp_path, "dag.dot", DRAWN_DOT)
    from_file = build_graph(load_config(_config(tmp_path, {"file": "dag.dot"})))
    from_edges = build_graph(load_config(SAMPLE / "config.yaml"))
    assert set(from_file.edges) == set(from_edges.edges) == SAMPLE_EDGES


def test_dot_file_naming_an_unknown_node_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "dag.dot", "digraph { televison -> sales; tv -> sales; search -> sales; digital -> sales;"
                                " email -> sales }")
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, {"file": "dag.dot"}))
    assert err.value.rule == "graph-unknown-node"
    assert "televison" in str(err.value)


def test_latent_nodes_are_graph_nodes_with_their_own_role(tmp_path: Path) -> None:
    edges = [[a, b] for a, b in sorted(SAMPLE_EDGES)] + [["brand", "tv"], ["brand", "sales"]]
    config = load_config(_config(tmp_path, {"edges": edges, "latent": ["brand"]}))
    assert config.latent == ("brand",)
    g = build_graph(config)
    assert set(g.successors("brand")) == {"tv", "sales"}
    roles = node_roles(config)
    assert roles["brand"] == "latent" and roles["tv"] == "channel" and roles["sales"] == "kpi"
    table = edges_table(g, roles)
    assert set(table.loc[table["source"] == "brand", "source_role"]) == {"latent"}


def test_an_edge_to_an_undeclared_latent_node_is_refused(tmp_path: Path) -> None:
    edges = [[a, b] for a, b in sorted(SAMPLE_EDGES)] + [["brand", "tv"]]
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, {"edges": edges}))
    assert err.value.rule == "graph-unknown-node" and "brand" in str(err.value)


@pytest.mark.parametrize("latent, rule", [(["tv"], "duplicate-node"), (["brand", "brand"], "duplicate-node"),
                                          (["week"], "reserved-column"), (["seasonality_sin1"], "reserved-column"),
                                          ("brand", "config-type")])
def test_bad_latent_lists_are_refused(tmp_path: Path, latent: object, rule: str) -> None:
    edges = [[a, b] for a, b in sorted(SAMPLE_EDGES)]
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, {"edges": edges, "latent": latent}))
    assert err.value.rule == rule
    assert "graph.latent" in str(err.value)
