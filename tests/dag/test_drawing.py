"""The pure-Python DAG drawing (no Graphviz): only the rejected implications are drawn, no line
passes through or grazes a node it does not join, every line ends on the outline of its nodes, and
the figure draws exactly that specification."""

from __future__ import annotations

from itertools import combinations, pairwise

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.dag import drawing
from cmmm_pipeline.dag.drawing import NODE_RX, NODE_RY, REJECTED_COLOUR, FallbackDrawing, LineKind

SAMPLE_EDGES = [("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
                ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
                ("trend", "sales")]
SAMPLE_ROLES = {"seasonality": "control", "price": "control", "trend": "control", "sales": "kpi",
                **{c: "channel" for c in ("tv", "search", "digital", "email")}}
# 17 implications like the sample's, two rejected: one across layers, one inside a layer with
# nodes between the pair (drawn as a bracket beside the layer).
PAIRS = [("price", "tv"), ("trend", "search"), ("email", "trend"), ("search", "seasonality"), ("digital", "search"),
         ("email", "seasonality"), ("digital", "tv"), ("email", "tv"), ("price", "seasonality"), ("trend", "tv"),
         ("digital", "email"), ("digital", "price"), ("email", "price"), ("price", "search"), ("digital", "trend"),
         ("email", "search"), ("price", "trend")]
REJECTED = {("price", "tv"), ("trend", "search")}
SAMPLE_TESTS = pd.DataFrame({"x": [x for x, _ in PAIRS], "y": [y for _, y in PAIRS],
                             "rejected": [p in REJECTED for p in PAIRS]})
CLEARANCE = 0.15
"""Layout units a line keeps from the outline of a node it does not join (a node is 0.6 high):
closer, it grazes the node."""


def _dense(points: tuple[tuple[float, float], ...], steps: int = 120) -> np.ndarray:
    pts = np.array(points)
    return np.vstack([p + np.linspace(0, 1, steps)[:, None] * (q - p) for p, q in pairwise(pts)])


def _radius(points: np.ndarray, centre: tuple[float, float], margin: float = 0.0) -> np.ndarray:
    """Normalised ellipse radius of each point (1 on the outline, grown by `margin` on both axes)."""
    return np.sqrt(((points[:, 0] - centre[0]) / (NODE_RX + margin)) ** 2
                   + ((points[:, 1] - centre[1]) / (NODE_RY + margin)) ** 2)


def problems(drawn: FallbackDrawing) -> list[str]:
    """Every way the drawing breaks the rules, in words (empty when it keeps them all)."""
    out = []
    for line in drawn.lines:
        dense = _dense(line.points)
        for node, centre in drawn.positions.items():
            if node not in (line.source, line.target) and (_radius(dense, centre, CLEARANCE) < 1).any():
                out.append(f"{line.source}–{line.target} passes within {CLEARANCE} of {node}")
        for node, end in ((line.source, line.points[0]), (line.target, line.points[-1])):
            ring = float(_radius(np.array([end]), drawn.positions[node])[0])
            if abs(ring - 1) > 1e-9:
                out.append(f"{line.source}–{line.target} ends at radius {ring:.3f} of {node}, not on its outline")
            if (_radius(dense, drawn.positions[node]) < 1 - 1e-9).any():
                out.append(f"{line.source}–{line.target} runs inside {node}")
    return out


def test_only_the_rejected_implications_are_drawn_and_every_line_keeps_the_rules() -> None:
    g = nx.DiGraph(SAMPLE_EDGES)
    drawn = drawing.fallback_drawing(g, SAMPLE_TESTS, SAMPLE_ROLES)
    rejected = {(line.source, line.target) for line in drawn.lines if line.kind is LineKind.REJECTED}
    assert {frozenset(p) for p in rejected} == {frozenset(p) for p in REJECTED}
    assert {(line.source, line.target) for line in drawn.lines if line.kind is LineKind.CAUSAL} == set(SAMPLE_EDGES)
    assert len(drawn.lines) == len(SAMPLE_EDGES) + len(REJECTED)  # the 15 consistent ones are not drawn
    assert problems(drawn) == []
    # trend and search share a layer with other nodes between them: the line goes round, beside the layer
    bracket = next(line for line in drawn.lines if {line.source, line.target} == {"trend", "search"})
    assert len(bracket.points) == 4 and bracket.points[1][0] != drawn.positions["search"][0]


def test_without_rejections_only_the_causal_edges_are_drawn() -> None:
    consistent = SAMPLE_TESTS.assign(rejected=False)
    drawn = drawing.fallback_drawing(nx.DiGraph(SAMPLE_EDGES), consistent, SAMPLE_ROLES)
    assert [line.kind for line in drawn.lines] == [LineKind.CAUSAL] * len(SAMPLE_EDGES)
    assert drawn.rejected == () and problems(drawn) == []


def test_the_rules_catch_a_line_that_grazes_a_node() -> None:
    """The check above can fail: a line shifted onto a neighbour's outline is caught."""
    drawn = drawing.fallback_drawing(nx.DiGraph(SAMPLE_EDGES), SAMPLE_TESTS, SAMPLE_ROLES)
    x, y = drawn.positions["digital"]
    line = drawn.lines[0]
    grazing = drawing.DrawnLine(line.source, line.target, line.kind,
                                (line.points[0], (x, y + NODE_RY + 0.05), line.points[-1]))
    stopped_short = drawing.DrawnLine(line.source, line.target, line.kind,
                                      (*line.points[:-1], tuple(np.array(line.points[-1]) - [0.1, 0.0])))
    for bad in (grazing, stopped_short):
        assert problems(FallbackDrawing(drawn.positions, (bad,), ())) != []


@pytest.mark.parametrize("seed", range(40))
def test_random_dags_with_rejections_keep_the_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nodes = [f"n{i}" for i in range(int(rng.integers(4, 14)))]
    g = nx.DiGraph()
    g.add_nodes_from([*nodes, "y"])
    for i, a in enumerate(nodes):
        g.add_edges_from((a, b) for b in nodes[i + 1:] if rng.random() < 0.25)
        if rng.random() < 0.7 or g.out_degree(a) == 0:
            g.add_edge(a, "y")
    free = [p for p in combinations(g.nodes, 2) if not g.to_undirected().has_edge(*p)]
    picked = [free[i] for i in rng.choice(len(free), size=min(len(free), 5), replace=False)]
    tests = pd.DataFrame({"x": [a for a, _ in picked], "y": [b for _, b in picked],
                          "rejected": [bool(rng.random() < 0.6) for _ in picked]})
    drawn = drawing.fallback_drawing(g, tests, {"y": "kpi"})
    assert len(drawn.lines) == g.number_of_edges() + int(tests["rejected"].sum())
    assert problems(drawn) == []


def test_the_figure_draws_exactly_the_specification() -> None:
    """Arrow heads end on the target's outline (no shrink), shafts start on the source's outline,
    and the rejected lines are red polylines without arrows."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    g = nx.DiGraph(SAMPLE_EDGES)
    drawn = drawing.fallback_drawing(g, SAMPLE_TESTS, SAMPLE_ROLES)
    ax = drawing.draw_fallback(Figure(), drawn, SAMPLE_ROLES, "Causal DAG")
    by_gid = {artist.get_gid(): artist for artist in [*ax.lines, *ax.patches] if artist.get_gid()}
    for line in drawn.lines:
        if line.kind is LineKind.REJECTED:
            red = by_gid[f"rejected:{line.source}:{line.target}"]
            np.testing.assert_allclose(red.get_xydata(), np.array(line.points))
            assert red.get_color() == REJECTED_COLOUR
            continue
        arrow = by_gid[f"arrow:{line.source}:{line.target}"]
        assert isinstance(arrow, FancyArrowPatch) and (arrow.shrinkA, arrow.shrinkB) == (0, 0)
        np.testing.assert_allclose(np.array(arrow._posA_posB), np.array(line.points[-2:]))
        shaft = by_gid[f"edge:{line.source}:{line.target}"]
        np.testing.assert_allclose(shaft.get_xydata(), np.array(line.points[:-1]))
    arrows = {gid for gid in by_gid if gid.startswith("arrow:")}
    assert arrows == {f"arrow:{a}:{b}" for a, b in SAMPLE_EDGES}  # implications carry no arrow
