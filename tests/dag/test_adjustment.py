"""Adjustment sets by d-separation: the expected backdoor sets on hand-made graphs, DoWhy's own
default set on small graphs, wide DAGs identified in bounded time, and the budget's refusal."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import EstimationError
from cmmm_pipeline.dag.adjustment import (
    BUDGET_RULE,
    IdentificationMeter,
    criterion_graph,
    instruments,
    is_valid_adjustment,
    minimum_adjustment,
    open_path,
)

TOTAL, DIRECT = EffectType.TOTAL, EffectType.DIRECT
ROOT = Path(__file__).resolve().parents[2]

# name: (edges, latent, treatment, outcome, expected total set, expected direct set or None if no mediator)
GRAPHS = {
    "confounder": ([("c", "t"), ("c", "y"), ("t", "y")], set(), ("c",), None),
    "mediator": ([("t", "m"), ("m", "y"), ("t", "y")], set(), (), ("m",)),
    "mediator and confounder": ([("c", "t"), ("c", "y"), ("t", "m"), ("m", "y"), ("t", "y")], set(), ("c",),
                                ("c", "m")),
    "collider": ([("t", "k"), ("y", "k"), ("t", "y")], set(), (), None),
    "latent confounder": ([("u", "t"), ("u", "y"), ("t", "y")], {"u"}, None, None),
    "latent confounder with a proxy": ([("u", "w"), ("w", "t"), ("u", "y"), ("t", "y")], {"u"}, ("w",), None),
    "m-bias": ([("u1", "t"), ("u1", "m"), ("u2", "m"), ("u2", "y"), ("t", "y")], {"u1", "u2"}, (), None),
    "m-bias, m also a confounder": ([("u1", "t"), ("u1", "m"), ("u2", "m"), ("u2", "y"), ("m", "t"),
                                     ("t", "y")], {"u2"}, ("m", "u1"), None),
    # {a} and {b} are both smallest: the cut nearest the outcome is taken (DoWhy takes either)
    "chain of confounders": ([("a", "b"), ("b", "t"), ("a", "y"), ("t", "y")], set(), ("a",), None),
    "mediator confounded with the outcome": ([("t", "m"), ("m", "y"), ("t", "y"), ("v", "m"), ("v", "y")],
                                             set(), (), ("m", "v")),
}


def _graph(edges: list[tuple[str, str]]) -> nx.DiGraph:
    return nx.DiGraph(edges)


def _dowhy_default(g: nx.DiGraph, treatment: str, outcome: str, observed: set[str],
                   effect: EffectType) -> tuple[str, ...] | None:
    """DoWhy's own default backdoor set (the subset search the pipeline no longer runs)."""
    from dowhy import CausalModel

    data = pd.DataFrame(np.zeros((5, len(observed))), columns=sorted(observed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CausalModel(data=data, treatment=treatment, outcome=outcome, graph=g, effect_modifiers=[])
        estimand = model.identify_effect(estimand_type="nonparametric-ate" if effect is TOTAL else "nonparametric-cde")
    if estimand.estimands.get("backdoor") is None:
        return None
    return tuple(sorted(estimand.get_backdoor_variables()))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_the_expected_backdoor_set_on_hand_made_graphs(name: str) -> None:
    edges, latent, total, direct = GRAPHS[name]
    g = _graph(edges)
    observed = set(g.nodes) - latent
    assert minimum_adjustment(g, "t", "y", observed, TOTAL) == total
    if direct is not None:
        assert minimum_adjustment(g, "t", "y", observed, DIRECT) == direct


@pytest.mark.parametrize("name", [n for n in GRAPHS if n != "chain of confounders"])
def test_the_set_is_dowhys_default_on_the_hand_made_graphs(name: str) -> None:
    edges, latent, _, direct = GRAPHS[name]
    g = _graph(edges)
    observed = set(g.nodes) - latent
    for effect in (TOTAL, DIRECT) if direct is not None else (TOTAL,):
        assert minimum_adjustment(g, "t", "y", observed, effect) == _dowhy_default(g, "t", "y", observed, effect)


def test_dowhys_default_on_random_small_dags() -> None:
    """60 random DAGs of 5-7 nodes with latent nodes. Where DoWhy's smallest set is unique, ours is
    the same; where several smallest sets tie (DoWhy then takes whichever its set iteration meets
    first), ours is one of them: valid, as small, with as few instruments."""
    rng = random.Random(3)
    unique = 0
    for _ in range(60):
        n = rng.randint(5, 7)
        nodes = [f"v{i}" for i in range(n)]
        g = nx.DiGraph()
        g.add_nodes_from(nodes)
        g.add_edges_from((nodes[i], nodes[j]) for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.4)
        t, y = nodes[rng.randint(0, n - 3)], nodes[-1]
        g.add_edge(t, y)
        latent = {v for v in nodes if v not in (t, y) and rng.random() < 0.25}
        observed = set(nodes) - latent
        ours = minimum_adjustment(g, t, y, observed, TOTAL)
        theirs = _dowhy_default(g, t, y, observed, TOTAL)
        assert (ours is None) == (theirs is None), (sorted(g.edges), latent)
        if ours is None:
            continue
        h = criterion_graph(g, t, y, TOTAL)
        assert is_valid_adjustment(h, t, y, ours) and nx.is_d_separator(h, {t}, {y}, set(ours))
        ivs = instruments(g, t, y)
        assert (len(ours), len(set(ours) & ivs)) == (len(theirs), len(set(theirs) & ivs))
        smallest = [set(s) for k in range(len(ours) + 1) for s in itertools.combinations(sorted(observed - {t, y}
                    - nx.descendants(g, t)), k) if len(s) == len(ours) and nx.is_d_separator(h, {t}, {y}, set(s))]
        if len(smallest) == 1:
            unique += 1
            assert ours == theirs
    assert unique >= 30  # most graphs have one smallest set: the comparison is not vacuous


def test_open_path_agrees_with_networkx_d_separation() -> None:
    rng = random.Random(5)
    for _ in range(200):
        nodes = [f"v{i}" for i in range(7)]
        g = nx.DiGraph()
        g.add_nodes_from(nodes)
        g.add_edges_from((a, b) for a, b in itertools.combinations(nodes, 2) if rng.random() < 0.35)
        x, y = rng.sample(nodes, 2)
        given = {v for v in nodes if v not in (x, y) and rng.random() < 0.3}
        path = open_path(g, x, y, given)
        assert (path is None) == nx.is_d_separator(g, {x}, {y}, given)
        if path is not None:  # a simple path of the skeleton from x to y
            assert path[0] == x and path[-1] == y and len(set(path)) == len(path)
            assert all(g.has_edge(a, b) or g.has_edge(b, a) for a, b in zip(path, path[1:]))


_WIDE = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.identification_growth import run_case
print(json.dumps(run_case("after", {controls}, {channels})))
"""


@pytest.mark.parametrize("controls", [60, 100])
def test_a_wide_dag_is_identified_in_bounded_time(controls: int) -> None:
    """60 and 100 controls, each with an edge to the KPI (every third also drives a channel), and 30
    channels: DoWhy's subset search ran past ten minutes on 60 controls and 4 channels. Run in a
    child process with a generous bound, so a regression fails here instead of hanging the suite."""
    from benchmarks.identification_growth import KPI, SEASONALITY, wide_dag

    code = _WIDE.format(root=str(ROOT), controls=controls, channels=30)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    sets = json.loads(done.stdout.strip().splitlines()[-1])["sets"]
    g, columns, names = wide_dag(controls, 30)
    for channel in names:
        # The backdoor set (seasonality, the controls that drive the channel) plus every other cause
        # of the KPI that is not caused by the channel: all the KPI's parents but the channel's descendants.
        excluded = {channel} | nx.descendants(g, channel)
        expected = sorted(c for p in g.predecessors(KPI) if p not in excluded for c in columns[p])
        assert sets[f"{channel}/total"] == expected, channel
        assert set(SEASONALITY) <= set(expected)
    assert "ch01" not in sets["ch00/total"] and "ch01" in sets["ch00/direct"]
    assert sets["ch00/direct"] == sorted([*sets["ch00/total"], "ch01"])
    assert len(sets) == 31  # every channel's total effect and ch00's direct effect


def test_the_budget_refuses_with_the_rule_naming_the_channel_and_the_size() -> None:
    from benchmarks.identification_growth import wide_dag, wide_features

    from cmmm_pipeline.dag.graph import expand_graph
    from cmmm_pipeline.dag.identification import identify_channels

    g, columns, names = wide_dag(60, 4)
    expanded = expand_graph(g, columns)
    with pytest.raises(EstimationError) as caught:
        identify_channels(wide_features(g, columns), g, expanded, names, "sales", (),
                          IdentificationMeter(budget=5_000))
    error = caught.value
    assert error.rule == BUDGET_RULE
    assert error.place.startswith("channel 'ch0") and "effect" in error.place
    assert "past its budget of 5,000" in error.detail and "nodes and" in error.detail and "edges" in error.detail
    assert "merge controls" in error.fix
    # The same DAG within the default budget: identified, nothing refused.
    meter = IdentificationMeter()
    rows = identify_channels(wide_features(g, columns), g, expanded, names, "sales", (), meter)
    assert all(r.identifiable for r in rows) and 0 < meter.spent < meter.budget


def test_the_budget_is_not_mistaken_for_a_channel_that_is_not_identifiable() -> None:
    """A refused budget stops identification as a whole; it is never one channel's 'not identifiable'."""
    from cmmm_pipeline.effects.estimation import identify_channels

    g = _graph([("c", "t"), ("c", "y"), ("t", "y")])
    data = pd.DataFrame(np.zeros((5, 3)), columns=["c", "t", "y"])
    specs, failures = identify_channels(data, g, g, ["t"], "y")
    assert [s.adjustment for s in specs] == [("c",)] and failures == []
    with pytest.raises(EstimationError, match=r"^\[identification-budget\] channel 't' \(total effect\)"):
        identify_channels(data, g, g, ["t"], "y", IdentificationMeter(budget=3))
