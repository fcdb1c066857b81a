"""Identification per channel with DoWhy, latent nodes included: a channel that cannot be
identified fails alone, with the confounding path that makes it so; the DAG drawing."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pandas as pd
import pytest
from benchmarks.independence_study import TRUE_EDGES, study_config

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.dag.drawing import draw_dag_png, layered_positions, rejected_pairs
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.dag.identification import confounding_path, describe_path, identify_channels, total_adjustments
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.simulation.simulate import Scenario, simulate
from tests.dag.test_overlap import checks, materialized, run_dag_step, staging

CHANNELS = ["tv", "search", "digital", "email"]


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, dict[str, list[str]]]:
    config = study_config(Scenario())
    data = simulate(Scenario(), 7).data
    features = build_features(data, config, {c.name: configured_transform(c) for c in config.channels})
    return features, node_columns(data, config)


def _identify(sample: tuple[pd.DataFrame, dict[str, list[str]]], edges, latent=()):  # noqa: ANN001, ANN202
    features, columns = sample
    g = nx.DiGraph(edges)
    g.add_nodes_from(columns)
    return {(r.channel, r.effect): r for r in identify_channels(features, g, expand_graph(g, columns), CHANNELS,
                                                                "sales", latent)}


def test_every_channel_of_the_sample_dag_is_identified(sample) -> None:  # noqa: ANN001
    rows = _identify(sample, TRUE_EDGES)
    assert set(rows) == {(c, EffectType.TOTAL) for c in CHANNELS} | {("tv", EffectType.DIRECT)}
    assert all(r.identifiable for r in rows.values())
    seasonality = {"seasonality_sin1", "seasonality_cos1", "seasonality_sin2", "seasonality_cos2"}
    assert seasonality <= set(rows[("tv", EffectType.TOTAL)].adjustment)
    assert "search" not in rows[("tv", EffectType.TOTAL)].adjustment  # a mediator, never adjusted for the total
    assert "search" in rows[("tv", EffectType.DIRECT)].adjustment
    assert "tv" in rows[("search", EffectType.TOTAL)].adjustment  # tv confounds search → sales


def test_a_latent_confounder_fails_its_channel_alone_with_the_path(sample) -> None:  # noqa: ANN001
    rows = _identify(sample, [*TRUE_EDGES, ("brand", "tv"), ("brand", "sales")], latent=["brand"])
    tv = rows[("tv", EffectType.TOTAL)]
    assert not tv.identifiable and tv.adjustment == ()
    assert "tv ← brand → sales" in tv.reason and "unobserved 'brand'" in tv.reason
    assert not rows[("tv", EffectType.DIRECT)].identifiable
    for channel in ("search", "digital", "email"):
        assert rows[(channel, EffectType.TOTAL)].identifiable, channel
        assert "brand" not in rows[(channel, EffectType.TOTAL)].adjustment
    assert set(total_adjustments(list(rows.values()))) == {"search", "digital", "email"}


def test_a_latent_cause_of_the_kpi_alone_confounds_nothing(sample) -> None:  # noqa: ANN001
    rows = _identify(sample, [*TRUE_EDGES, ("brand", "sales")], latent=["brand"])
    assert all(r.identifiable for r in rows.values())
    assert all("brand" not in r.adjustment for r in rows.values())


def test_confounding_path_is_the_open_backdoor_path() -> None:
    g = nx.DiGraph([("u", "t"), ("u", "y"), ("t", "y"), ("w", "t"), ("w", "y")])
    path = confounding_path(g, "t", "y", observed={"t", "y", "w"})
    assert path == ["t", "u", "y"] and describe_path(g, path) == "t ← u → y"
    assert confounding_path(g, "t", "y", observed={"t", "y", "w", "u"}) is None


def test_a_not_identifiable_channel_warns_and_the_others_go_on(tmp_path: Path) -> None:
    import duckdb

    def add_latent_confounder(config: dict) -> None:
        config["graph"]["edges"] += [["brand", "tv"], ["brand", "sales"]]
        config["graph"]["latent"] = ["brand"]

    result = run_dag_step(tmp_path, edit_config=add_latent_confounder)
    evaluation = checks(result)["dag_identification"]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.description.startswith("tv (total): not identifiable") and "brand" in evaluation.description
    assert checks(result)["dag_overlap"].passed
    assert "downstream" in materialized(result)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        schema = staging(result)
        identification = con.execute(f"SELECT channel, effect, identifiable FROM {schema}.identification").fetchall()
        overlap_channels = {r[0] for r in con.execute(f"SELECT DISTINCT channel FROM {schema}.overlap").fetchall()}
        roles = dict(con.execute(f"SELECT source, source_role FROM {schema}.dag_edges").fetchall())
    assert ("tv", "total", False) in identification and ("digital", "total", True) in identification
    assert overlap_channels == {"search", "digital", "email"}
    assert roles["brand"] == "latent"


def test_the_drawing_marks_rejected_implications() -> None:
    g = nx.DiGraph(TRUE_EDGES)
    tests = pd.DataFrame({"x": ["digital", "digital", "price"], "y": ["seasonality", "seasonality", "tv"],
                          "rejected": [True, True, False]})
    assert rejected_pairs(tests) == [("digital", "seasonality")]
    plain, marked = draw_dag_png(g), draw_dag_png(g, tests, {"tv": "channel", "sales": "kpi"})
    assert plain.startswith(b"\x89PNG\r\n\x1a\n") and marked.startswith(b"\x89PNG\r\n\x1a\n")
    assert plain != marked
    pos = layered_positions(g)
    assert pos["sales"][0] == max(x for x, _ in pos.values())
    assert pos["seasonality"][0] < pos["tv"][0] < pos["search"][0]


def test_a_latent_confounder_in_a_wide_dag_is_named_and_the_others_identified() -> None:
    """100 controls and 30 channels: the open path is found by a linear search, not by listing paths."""
    from benchmarks.identification_growth import KPI, wide_dag, wide_features

    g, columns, names = wide_dag(100, 30)
    features = wide_features(g, columns)  # the latent brand has no column
    g.add_edges_from([("brand", "ch05"), ("brand", KPI)])
    expanded = expand_graph(g, columns)
    rows = {(r.channel, r.effect): r for r in identify_channels(features, g, expanded, names, KPI, ["brand"])}
    ch05 = rows[("ch05", EffectType.TOTAL)]
    assert not ch05.identifiable and "ch05 ← brand → sales" in ch05.reason and "unobserved 'brand'" in ch05.reason
    assert all(r.identifiable for key, r in rows.items() if key[0] != "ch05")
    assert all("brand" not in r.adjustment for r in rows.values())


def test_the_confounding_path_is_the_shortest_open_one() -> None:
    # Two open paths through latent nodes; the one through the observed w is blocked by it.
    g = nx.DiGraph([("u", "a"), ("a", "t"), ("u", "y"), ("v", "t"), ("v", "y"), ("w", "t"), ("w", "y"), ("t", "y")])
    assert confounding_path(g, "t", "y", observed={"t", "y", "w", "a"}) == ["t", "v", "y"]
    # A collider opened by conditioning on its descendant: t ← p → k ← q → y with k's child observed.
    g = nx.DiGraph([("p", "t"), ("p", "k"), ("q", "k"), ("q", "y"), ("k", "d"), ("t", "y")])
    assert confounding_path(g, "t", "y", observed={"t", "y", "d"}) == ["t", "p", "k", "q", "y"]
    assert confounding_path(g, "t", "y", observed={"t", "y"}) is None
