"""DAG edits proposed for the implications the data reject, and DoWhy's graph falsification."""

from __future__ import annotations

import shutil
from pathlib import Path

import networkx as nx
import pytest

from cmmm_pipeline.dag import suggest as S
from cmmm_pipeline.dag.audit import generated_nodes, independence_settings
from cmmm_pipeline.dag.graph import node_roles
from cmmm_pipeline.dag.independence import Implication, implied_independences, run_independence_tests
from tests.conftest import sample_world

ROLES = {"seasonality": "control", "trend": "control", "price": "control", "tv": "channel", "search": "channel",
         "digital": "channel", "email": "channel", "sales": "kpi"}
GENERATED = {"seasonality", "trend"}


def test_background_knowledge_rules_out_edges() -> None:
    assert S.forbidden("sales", "tv", ROLES, GENERATED) == "the KPI is a sink"
    assert S.forbidden("tv", "seasonality", ROLES, GENERATED) is not None
    assert S.forbidden("price", "trend", ROLES, GENERATED) is not None  # nothing causes time
    assert S.forbidden("tv", "price", ROLES, GENERATED) == "channels cannot cause seasonality, trend or price"
    assert S.forbidden("seasonality", "digital", ROLES, GENERATED) is None
    assert S.forbidden("tv", "digital", ROLES, GENERATED) is None


def test_candidate_edits_resolve_the_rejection_and_rank_upstream_first() -> None:
    g = nx.DiGraph([("seasonality", "tv"), ("seasonality", "sales"), ("tv", "sales"), ("digital", "sales")])
    rejected = {Implication("digital", "seasonality", ()): 1e-6}
    edits = S.candidate_edits(g, rejected, ROLES, GENERATED)
    texts = [e.text() for e in edits]
    assert texts[0] == "seasonality -> digital"
    assert "tv -> digital" in texts  # seasonality -> tv -> digital also connects them
    assert not any(t.startswith("sales") or t.endswith("-> seasonality") for t in texts)
    assert all(e.resolves == ("digital ⟂ seasonality",) and e.evidence == 1e-6 for e in edits)
    assert S.candidate_edits(g, {}, ROLES, GENERATED) == []


def _audit(g: nx.DiGraph, world: dict):
    config, raw, features, columns = world["config"], world["raw"], world["features"], world["columns"]
    deterministic = generated_nodes(raw, config)
    widths = {n: len(c) for n, c in columns.items()}
    settings = independence_settings(config)
    report = run_independence_tests(features, implied_independences(g, columns, widths, deterministic), columns,
                                    deterministic, settings)
    return report, deterministic, settings


def test_a_missing_confounding_edge_is_proposed_first_on_the_sample() -> None:
    world = sample_world()
    g = world["g"].copy()
    g.remove_edge("seasonality", "digital")
    report, deterministic, settings = _audit(g, world)
    result = S.suggest(g, report, world["features"], world["columns"], node_roles(world["config"]), deterministic,
                       settings, "sales")
    assert [text for text, _ in result.rejected] == ["digital ⟂ seasonality"]
    first = result.edits[0]
    assert first.text() == "seasonality -> digital" and first.checked and first.new_rejections == ()
    assert first.evidence < 1e-6
    via_tv = next(e for e in result.edits if e.text() == "tv -> digital")
    assert via_tv.new_rejections == ("digital ⟂ seasonality | tv",)  # the data still reject it given tv
    assert "1. add seasonality -> digital" in S.suggestions_text(result)


def test_the_correct_dag_gets_no_edit_and_beats_its_permutations() -> None:
    world = sample_world()
    report, deterministic, settings = _audit(world["g"], world)
    result = S.suggest(world["g"], report, world["features"], world["columns"], node_roles(world["config"]),
                       deterministic, settings, "sales", permutations=20)
    assert result.rejected == () and result.edits == ()
    f = result.falsification
    assert f is not None and f.permutations == 20 and f.tests > 0
    assert f.permutation_p <= 0.05  # no random permutation of the sample's DAG fits as well
    assert "No edit proposed" in S.suggestions_text(result)


def _spend(world: dict) -> dict:
    return {c.name: world["raw"][c.spend_column].to_numpy(dtype=float) for c in world["config"].channels}


def test_a_missing_edge_into_flighted_tv_is_found_on_its_spend() -> None:
    """TV runs in flights: its transformed media hide what the season moves (how much is spent when on
    air), so the media tests do not reject `tv ⟂ seasonality`; its log spend over active weeks does,
    and the missing edge is proposed first, with its p-value doubled for the two families of tests."""
    world = sample_world()
    g = world["g"].copy()
    g.remove_edge("seasonality", "tv")
    report, deterministic, settings = _audit(g, world)
    roles = node_roles(world["config"])
    media_only = S.suggest(g, report, world["features"], world["columns"], roles, deterministic, settings, "sales")
    assert media_only.edits == () and "tv ⟂ seasonality" not in dict(media_only.rejected)
    result = S.suggest(g, report, world["features"], world["columns"], roles, deterministic, settings, "sales",
                       spend=_spend(world))
    assert result.edits[0].text() == "seasonality -> tv" and result.edits[0].evidence < 1e-6
    assert "tv ⟂ seasonality" in result.on_spend
    tested = S.spend_results(report, world["features"], world["columns"], _spend(world), deterministic, settings)
    raw = min(r.p_adjusted for r in tested if r.implication.text() == "tv ⟂ seasonality")
    assert dict(result.rejected)["tv ⟂ seasonality"] == pytest.approx(2 * raw)
    weeks = {r.weeks + r.ar_order for r in tested if r.implication.text() == "tv ⟂ seasonality"}
    assert weeks == {int((_spend(world)["tv"] > 0).sum())}  # active weeks only (less the AR filter's start)
    assert "on log spend over active weeks" in S.suggestions_text(result)
    one = S.spend_results(report, world["features"], world["columns"], _spend(world), deterministic, settings,
                          limit=1)
    pairs = {(r.implication.x, r.implication.y) for r in one}
    assert len(pairs) == 1 and not all(node in _spend(world) for node in pairs.pop())  # a channel-control pair first


def test_the_correct_dag_gets_no_edit_with_the_spend_tests() -> None:
    world = sample_world()
    report, deterministic, settings = _audit(world["g"], world)
    result = S.suggest(world["g"], report, world["features"], world["columns"], node_roles(world["config"]),
                       deterministic, settings, "sales", spend=_spend(world))
    assert result.edits == ()
    assert all(p >= S.PROPOSE_BELOW for _, p in result.rejected)  # email ⟂ trend at 0.049: listed, not acted on


def test_cmmm_suggest_prints_the_edit_and_leaves_the_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cmmm_pipeline.cli import SAMPLE_CONFIG, main

    shutil.copy(SAMPLE_CONFIG.parent / "weekly.csv", tmp_path / "weekly.csv")
    text = SAMPLE_CONFIG.read_text(encoding="utf-8").replace("    - [seasonality, digital]\n", "")
    config = tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["suggest", "--config", str(config), "--permutations", "0"]) == 0
    out = capsys.readouterr().out
    assert "rejected: digital ⟂ seasonality (adjusted p = " in out and "1. add seasonality -> digital" in out
    assert config.read_text(encoding="utf-8") == text


def test_pc_search_respects_background_knowledge_and_is_compared_with_the_dag() -> None:
    world = sample_world()
    series = S.node_series(world["features"], world["columns"], "sales")
    result = S.pc_search(world["g"], series, node_roles(world["config"]), {"seasonality", "trend"})
    assert "seasonality -> tv" in result.edges and "tv -> sales" in result.edges
    for edge in result.edges:
        source, target = edge.replace(" --- ", " -> ").split(" -> ")
        assert not edge.startswith("sales ->") and not edge.endswith(("-> seasonality", "-> trend")), edge
        assert (source, target) in world["g"].edges or edge in result.missing_from_dag
    assert "tv -> search" in result.not_found  # what it cannot see on iid tests is listed, not hidden
