"""The DAG as a picture: causes on the left, the KPI on the right, and each implied independence the
data reject drawn as a red dashed line between the pair it keeps apart (named in the legend). The
implications the data agree with are not drawn: they are listed in the independence tests table,
and as lines they only cluttered the graph.

Graphviz `dot` lays the graph out when its binary is installed (Debian package `graphviz`): its
spline router keeps every line off the nodes it does not join. Without it, a pure-Python layered
layout does the same job: edges and rejected implications that skip layers are routed through
slots of their own in each layer they cross (Sugiyama's dummy nodes), a rejected implication
between two nodes of one layer runs in the gap beside the layer, and every line ends on the
outline of the nodes it joins (`fallback_drawing` is exactly what is drawn).
"""

from __future__ import annotations

import io
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from html import escape
from itertools import pairwise
from typing import Any

import networkx as nx
import pandas as pd

ROLE_COLOURS = {"channel": "#4c78a8", "control": "#d9d9d9", "kpi": "#f58518", "latent": "#ffffff"}
REJECTED_COLOUR = "#d62728"
EDGE_COLOUR = "#333333"
DPI = 110
X_STEP = 2.8
"""Fallback layout: distance between layers, in units of the distance between slots of a layer."""
STUB = 0.3
"""Fallback layout: a line runs level this far beyond a node's ellipse before it turns (room for an
arrow head on the last leg)."""
PORT_ANGLE_STEP = math.radians(16)
PORT_ANGLE_MAX = math.radians(55)
"""Fallback layout: the lines on one side of a node fan out this far apart on its outline, at most
this far from level."""
BRACKET_PORT = 0.8
"""Fallback layout: a same-layer link leaves its nodes at this share of their half-height, towards
each other, clear of the edges' ports."""
NODE_RX = 0.62
NODE_RY = 0.30
"""Fallback layout: node ellipse half-width and half-height, in layout units."""
SWEEPS = 8
"""Barycentre sweeps that order each layer to limit crossings."""
BRACKET_STEP = 0.2
BRACKETS_PER_GAP = 3
"""Fallback layout: same-layer links run in the gap beside the layer, this far apart, at most this
many side by side (they stay clear of the next layer's nodes)."""


EDGE, LINK = "edge", "link"
"""Kinds of the lines the fallback layout routes: causal edges and undirected links."""


class DrawingEngine(Enum):
    """Which layout engine drew the DAG."""

    GRAPHVIZ = "graphviz"
    MATPLOTLIB = "matplotlib"


@dataclass(frozen=True)
class Implication:
    """A tested independence the DAG implies between x and y, and whether the data reject it."""

    x: str
    y: str
    rejected: bool


@dataclass(frozen=True)
class DagDrawing:
    png: bytes
    engine: DrawingEngine


@dataclass(frozen=True)
class LayeredLayout:
    """Fallback layout: node centres, and each edge's route (a polyline from the source's outline to
    the target's, through its own slot in every layer it crosses)."""

    positions: dict[str, tuple[float, float]]
    routes: dict[tuple[str, str], tuple[tuple[float, float], ...]]
    link_routes: dict[tuple[str, str], tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Routes of the extra undirected links (rejected implications), left end first."""


def dot_executable() -> str | None:
    """The Graphviz `dot` binary, or None when Graphviz is not installed."""
    return shutil.which("dot")


def implications(dag_tests: pd.DataFrame | None) -> list[Implication]:
    """Each tested (x, y) pair once, in table order; rejected when any of its tests rejects it."""
    if dag_tests is None or dag_tests.empty:
        return []
    verdicts: dict[tuple[str, str], bool] = {}
    for x, y, rejected in zip(dag_tests["x"].astype(str), dag_tests["y"].astype(str), dag_tests["rejected"]):
        verdicts[(x, y)] = verdicts.get((x, y), False) or bool(rejected)
    return [Implication(x, y, r) for (x, y), r in verdicts.items()]


def rejected_pairs(dag_tests: pd.DataFrame | None) -> list[tuple[str, str]]:
    """Each (x, y) pair with at least one rejected test, once, in table order."""
    return [(i.x, i.y) for i in implications(dag_tests) if i.rejected]


# --- Graphviz ---------------------------------------------------------------------------------------

def _legend(roles: Mapping[str, str], tested: Sequence[Implication]) -> str:
    """An HTML-like Graphviz label: the arrow, and the pairs whose independence the data reject, by
    name."""
    parts = ["→ can cause"]
    if "latent" in set(roles.values()):
        parts.append("dashed node: unobserved")
    rejected = [f"{escape(i.x)} ⟂ {escape(i.y)}" for i in tested if i.rejected]
    if rejected:
        parts.append(f'<font color="{REJECTED_COLOUR}">╌ red dashed: implied independence rejected by the data: '
                     f'{"; ".join(rejected)}</font>')
    return "<" + "<br/>".join(parts) + ">"


def _causal_dot(g: nx.DiGraph, roles: Mapping[str, str], legend: str) -> str:
    """DOT source of the causal graph alone: its edges set the left-to-right ranks."""
    import graphviz

    dot = graphviz.Digraph("dag", graph_attr={
        "rankdir": "LR", "splines": "spline", "nodesep": "0.4", "ranksep": "0.9", "bgcolor": "white",
        "pad": "0.15", "dpi": str(DPI), "fontname": "DejaVu Sans", "fontsize": "10", "labelloc": "b"},
        node_attr={"shape": "ellipse", "style": "filled", "fontname": "DejaVu Sans", "fontsize": "11",
                   "color": EDGE_COLOUR, "penwidth": "1.2", "margin": "0.08,0.04"},
        edge_attr={"color": EDGE_COLOUR, "arrowsize": "0.8", "penwidth": "1.3", "fontname": "DejaVu Sans"})
    for node in nx.lexicographical_topological_sort(g):
        role = roles.get(node, "control")
        dot.node(node, node, fillcolor=ROLE_COLOURS.get(role, ROLE_COLOURS["control"]),
                 fontcolor="white" if role == "channel" else "#111111",
                 style="dashed,filled" if role == "latent" else "filled")
    sinks = [n for n in g.nodes if roles.get(n) == "kpi" or g.out_degree(n) == 0]
    with dot.subgraph() as sink:
        sink.attr(rank="sink")
        for node in sinks:
            sink.node(node)
    for a, b in g.edges:
        latent = roles.get(a) == "latent" or roles.get(b) == "latent"
        dot.edge(a, b, style="dashed" if latent else "solid")
    dot.attr(label=legend)
    return dot.source


def _implication_lines(tested: Sequence[Implication]) -> list[str]:
    """DOT lines of the rejected implications: an undirected red dashed line between the pair."""
    import graphviz

    extra = graphviz.Digraph()
    for i in tested:
        if i.rejected:
            extra.edge(i.x, i.y, dir="none", color=REJECTED_COLOUR, style="dashed", penwidth="2.2")
    return list(extra.body)


def dag_dot(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None) -> str:
    """The laid-out DOT of the drawing, in two passes: `dot` places the nodes and routes the causal
    edges from the causal graph alone; the rejected implications are then added and routed around
    the fixed nodes (`neato -n2`), so they neither move a node nor cross one."""
    roles = dict(roles or {})
    tested = [i for i in implications(dag_tests) if i.x in g and i.y in g]
    laid = _graphviz_pipe(_causal_dot(g, roles, _legend(roles, tested)), "dot", "dot").decode()
    body = laid.rstrip()
    if not body.endswith("}"):
        raise ValueError("unexpected output from Graphviz dot: no closing brace")
    return body[:-1] + "".join(_implication_lines(tested)) + "}\n"


def _graphviz_render(g: nx.DiGraph, dag_tests: pd.DataFrame | None, roles: Mapping[str, str], fmt: str) -> bytes:
    return _graphviz_pipe(dag_dot(g, dag_tests, roles), fmt, "neato", neato_no_op=2)


@lru_cache(maxsize=8)
def _graphviz_pipe(source: str, fmt: str, engine: str, neato_no_op: int | None = None) -> bytes:
    """Graphviz's output for a DOT source, computed once per process: a run draws its DAG for the UI
    and again for the report, from the same source, and each drawing costs two Graphviz processes
    forked from this (large) one. Graphviz is deterministic, so a repeat is the same bytes."""
    import graphviz

    return graphviz.Source(source).pipe(format=fmt, engine=engine, neato_no_op=neato_no_op)


# --- pure-Python fallback ---------------------------------------------------------------------------

def _layers(g: nx.DiGraph) -> dict[str, int]:
    """Layer of each node: as far right as its children allow, so a cause sits next to what it
    causes and the KPI is in the last layer."""
    to_sink: dict[str, int] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(g))):
        to_sink[node] = 1 + max((to_sink[c] for c in g.successors(node)), default=-1)
    depth = max(to_sink.values(), default=0)
    return {node: depth - to_sink[node] for node in g.nodes}


def _ordered(pair: tuple[str, str], layer: Mapping[str, int]) -> tuple[str, str]:
    """A link's ends left to right (an implication has no direction)."""
    a, b = pair
    return (b, a) if layer[b] < layer[a] else (a, b)


def layered_layout(g: nx.DiGraph, links: Sequence[tuple[str, str]] = ()) -> LayeredLayout:
    """Left-to-right layers; an edge, and each extra undirected link (a rejected implication), that
    skips layers gets a slot of its own in each layer it crosses; layers are ordered by barycentre
    sweeps to limit crossings. Then every line is routed (see `_route`)."""
    layer = _layers(g)
    depth = max(layer.values(), default=0)
    members: list[list[object]] = [[] for _ in range(depth + 1)]
    for node in sorted(g.nodes):
        members[layer[node]].append(node)
    chains: dict[tuple[str, str, str], list[object]] = {}
    pairs: list[tuple[object, object]] = []
    wanted = [(a, b) for a, b in links if a in g and b in g and a != b]
    for kind, (a, b) in [(EDGE, e) for e in sorted(g.edges)] + [(LINK, _ordered(e, layer)) for e in wanted]:
        chain: list[object] = [a] + [(a, b, kind, k) for k in range(layer[a] + 1, layer[b])] + [b]
        for k, dummy in enumerate(chain[1:-1], start=layer[a] + 1):
            members[k].append(dummy)
        chains[(a, b, kind)] = chain
        if layer[a] != layer[b]:  # a same-layer link does not pull its ends
            pairs.extend(pairwise(chain))
    up: dict[object, list[object]] = {}
    down: dict[object, list[object]] = {}
    for u, v in pairs:
        down.setdefault(u, []).append(v)
        up.setdefault(v, []).append(u)
    index = {item: i for row in members for i, item in enumerate(row)}
    for sweep in range(SWEEPS):
        rows = range(1, depth + 1) if sweep % 2 == 0 else range(depth - 1, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for k in rows:
            def barycentre(item: object, near_of: dict[object, list[object]] = neighbours) -> tuple[float, float]:
                near = [index[n] for n in near_of.get(item, [])]
                return (sum(near) / len(near) if near else float(index[item]), float(index[item]))

            members[k].sort(key=barycentre)
            index.update({item: i for i, item in enumerate(members[k])})
    place = {item: (X_STEP * k, (len(row) - 1) / 2.0 - i)
             for k, row in enumerate(members) for i, item in enumerate(row)}
    routed = _route(chains, place, layer, members, depth)
    return LayeredLayout({node: place[node] for node in g.nodes},
                         {(a, b): r for (a, b, kind), r in routed.items() if kind == EDGE},
                         {(a, b): r for (a, b, kind), r in routed.items() if kind == LINK})


def _ports(chains: Mapping[tuple[str, str, str], list[object]], place: Mapping[object, tuple[float, float]],
           ) -> dict[tuple[tuple[str, str, str], str], float]:
    """Where each line leaves ("out", right half) and enters ("in", left half) a node, as an angle on
    the ellipse (0 = level with the centre): the lines of a side fan out over the outline, ordered
    by the height of their far end, so arrow heads do not pile up and legs neither overlap nor cross
    there."""
    sides: dict[tuple[object, str], list[tuple[float, tuple[str, str, str]]]] = {}
    for key, chain in chains.items():
        if len(chain) < 2 or place[chain[0]][0] == place[chain[-1]][0]:
            continue  # same-layer links leave from the top or bottom
        sides.setdefault((chain[0], "out"), []).append((place[chain[1]][1], key))
        sides.setdefault((chain[-1], "in"), []).append((place[chain[-2]][1], key))
    out = {}
    for (_, side), ends in sides.items():
        ends.sort(key=lambda e: (-e[0], e[1]))
        n = len(ends)
        widest = min(PORT_ANGLE_MAX, PORT_ANGLE_STEP * (n - 1) / 2)
        for j, (_, key) in enumerate(ends):
            out[(key, side)] = widest * (1 - 2 * j / (n - 1)) if n > 1 else 0.0
    return out


def _port(centre: tuple[float, float], angle: float, side: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """A port on a node's right (side 1) or left (−1) half at `angle` (radians, up positive): the
    point on the outline and the point STUB further out along the ray from the centre."""
    dx, dy = side * NODE_RX * math.cos(angle), NODE_RY * math.sin(angle)
    length = math.hypot(dx, dy)
    on = (centre[0] + dx, centre[1] + dy)
    return on, (on[0] + STUB * dx / length, on[1] + STUB * dy / length)


def _side_point(centre: tuple[float, float], dy: float, side: float) -> tuple[float, float]:
    """The point of a node's outline at height centre + dy, on its right (side 1) or left (−1)."""
    return centre[0] + side * NODE_RX * max(1.0 - (dy / NODE_RY) ** 2, 0.0) ** 0.5, centre[1] + dy


def _route(chains: Mapping[tuple[str, str, str], list[object]], place: Mapping[object, tuple[float, float]],
           layer: Mapping[str, int], members: Sequence[Sequence[object]], depth: int,
           ) -> dict[tuple[str, str, str], tuple[tuple[float, float], ...]]:
    """Each line as a polyline from outline to outline. Between layers a line leaves its node level
    (a short leg out to STUB beyond the ellipses of the layer), crosses the gap, and enters the next
    node level: so it only runs diagonally in the gaps, which hold no node, and meets every node
    head on instead of grazing a neighbour. Through a slot it runs level across the layer. A link
    between two nodes of one layer runs straight between them when no node lies between, else out
    of their facing halves into the gap beside the layer, along it and back (a bracket)."""
    ports = _ports(chains, place)
    reach = NODE_RX + STUB
    routes: dict[tuple[str, str, str], tuple[tuple[float, float], ...]] = {}
    brackets: dict[float, int] = {}
    for key, chain in chains.items():
        a, b = chain[0], chain[-1]
        (xa, ya), (xb, yb) = place[a], place[b]
        if layer[a] != layer[b]:
            start, leave = _port((xa, ya), ports[(key, "out")], 1.0)
            end, arrive = _port((xb, yb), ports[(key, "in")], -1.0)
            points = [start, leave]
            for dummy in chain[1:-1]:
                x, y = place[dummy]
                points += [(x - reach, y), (x + reach, y)]
            points += [arrive, end]
            routes[key] = tuple(points)
            continue
        top, bottom = (a, b) if ya > yb else (b, a)
        (xt, yt), (_, yd) = place[top], place[bottom]
        row = members[layer[a]]
        between = [m for m in row if isinstance(m, str) and yd < place[m][1] < yt]
        if not between:
            route: tuple[tuple[float, float], ...] = ((xt, yt - NODE_RY), (xt, yd + NODE_RY))
        else:
            side = 1.0 if layer[a] < depth or depth == 0 else -1.0
            gap = xt + side * X_STEP / 2
            offset = brackets.get(gap, 0)
            brackets[gap] = offset + 1
            gx = gap + side * BRACKET_STEP * (offset % BRACKETS_PER_GAP)
            low, high = -NODE_RY * BRACKET_PORT, NODE_RY * BRACKET_PORT
            route = (_side_point((xt, yt), low, side), (gx, yt + low), (gx, yd + high),
                     _side_point((xt, yd), high, side))
        routes[key] = route if top == a else route[::-1]
    return routes


def layered_positions(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node centres of the fallback layout (x grows towards the KPI)."""
    return layered_layout(g).positions


class LineKind(Enum):
    """What a line of the fallback drawing shows."""

    CAUSAL = "causal"
    LATENT = "latent"
    """A causal edge from or to an unobserved node (dashed)."""
    REJECTED = "rejected"
    """An implied independence the data reject (red dashed, no arrow)."""


@dataclass(frozen=True)
class DrawnLine:
    """One line as drawn: a polyline in layout units from the source's outline to the target's."""

    source: str
    target: str
    kind: LineKind
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FallbackDrawing:
    """What the pure-Python drawing puts on the figure: node centres (ellipses of NODE_RX × NODE_RY)
    and every line, clipped to end on the outlines of the nodes it joins."""

    positions: dict[str, tuple[float, float]]
    lines: tuple[DrawnLine, ...]
    rejected: tuple[Implication, ...]


def fallback_drawing(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None,
                     roles: Mapping[str, str] | None = None) -> FallbackDrawing:
    """The causal edges and the rejected implications, laid out together so that no line passes
    through a node it does not join; consistent implications are not drawn (the tests table lists
    them)."""
    roles = dict(roles or {})
    rejected = tuple(i for i in implications(dag_tests) if i.rejected and i.x in g and i.y in g)
    layout = layered_layout(g, [(i.x, i.y) for i in rejected])
    lines = []
    for (a, b), route in layout.routes.items():
        latent = roles.get(a) == "latent" or roles.get(b) == "latent"
        lines.append(DrawnLine(a, b, LineKind.LATENT if latent else LineKind.CAUSAL, route))
    for (a, b), route in layout.link_routes.items():
        lines.append(DrawnLine(a, b, LineKind.REJECTED, route))
    return FallbackDrawing(layout.positions, tuple(lines), rejected)


def _matplotlib_png(g: nx.DiGraph, dag_tests: pd.DataFrame | None, roles: Mapping[str, str], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(dpi=DPI)
    FigureCanvasAgg(fig)
    draw_fallback(fig, fallback_drawing(g, dag_tests, roles), roles, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def draw_fallback(fig: Any, drawing: FallbackDrawing, roles: Mapping[str, str], title: str) -> Any:
    """Draw a `FallbackDrawing` on a matplotlib figure (sized to it); returns the axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse, FancyArrowPatch

    pos = drawing.positions
    points = [p for line in drawing.lines for p in line.points] + list(pos.values())
    xs, ys = [p[0] for p in points] or [0.0], [p[1] for p in points] or [0.0]
    width, height = max(xs) - min(xs) + 2 * NODE_RX + 0.6, max(ys) - min(ys) + 2 * NODE_RY + 0.9
    fig.set_size_inches(max(5.0, 1.05 * width), max(3.0, 0.85 * height + 0.8))
    ax = fig.add_subplot()
    for line in drawing.lines:
        px, py = [p[0] for p in line.points], [p[1] for p in line.points]
        if line.kind is LineKind.REJECTED:
            ax.plot(px, py, color=REJECTED_COLOUR, lw=2.0, ls=(0, (4, 2.5)), zorder=2, solid_capstyle="butt",
                    gid=f"rejected:{line.source}:{line.target}")
            continue
        style = "--" if line.kind is LineKind.LATENT else "-"
        # the shaft from the source's outline to the last bend, then the arrow on the last leg
        ax.plot(px[:-1], py[:-1], color=EDGE_COLOUR, lw=1.3, ls=style, zorder=1, solid_capstyle="round",
                gid=f"edge:{line.source}:{line.target}")
        ax.add_patch(FancyArrowPatch(line.points[-2], line.points[-1], arrowstyle="-|>", mutation_scale=14,
                                     color=EDGE_COLOUR, lw=1.3, linestyle=style, zorder=1, shrinkA=0, shrinkB=0,
                                     gid=f"arrow:{line.source}:{line.target}"))
    for node, (x, y) in pos.items():
        role = roles.get(node, "control")
        ax.add_patch(Ellipse((x, y), 2 * NODE_RX, 2 * NODE_RY, facecolor=ROLE_COLOURS.get(role, "#d9d9d9"),
                             edgecolor=EDGE_COLOUR, lw=1.2, linestyle="--" if role == "latent" else "-", zorder=3))
        ax.annotate(node, (x, y), ha="center", va="center", fontsize=8 if len(node) <= 10 else 6.5, zorder=4,
                    color="white" if role == "channel" else "#111111")
    handles = [Line2D([], [], marker="o", linestyle="", markersize=9, markerfacecolor=c, markeredgecolor=EDGE_COLOUR,
                      label=r) for r, c in ROLE_COLOURS.items() if r in set(roles.values())]
    if drawing.rejected:
        named = "; ".join(f"{i.x} ⊥ {i.y}" for i in drawing.rejected)
        handles.append(Line2D([], [], color=REJECTED_COLOUR, linestyle="--", lw=2,
                              label=f"implied independence rejected by the data: {named}"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=min(len(handles), 2),
                  fontsize=7.5, frameon=False)
    ax.set_xlim(min(xs) - NODE_RX - 0.3, max(xs) + NODE_RX + 0.3)
    ax.set_ylim(min(ys) - NODE_RY - 0.45, max(ys) + NODE_RY + 0.45)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return ax


# --- entry points -----------------------------------------------------------------------------------

def draw_dag(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None,
             title: str = "Causal DAG") -> DagDrawing:
    """The DAG drawn by Graphviz `dot` when installed, else by the pure-Python layered layout."""
    roles = dict(roles or {})
    if dot_executable() is not None:
        import graphviz

        try:
            return DagDrawing(_graphviz_render(g, dag_tests, roles, "png"), DrawingEngine.GRAPHVIZ)
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, ValueError):
            pass  # a Graphviz that cannot lay this graph out: the fallback still draws it
    return DagDrawing(_matplotlib_png(g, dag_tests, roles, title), DrawingEngine.MATPLOTLIB)


def draw_dag_png(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None,
                 title: str = "Causal DAG") -> bytes:
    """PNG bytes of the DAG (see `draw_dag`)."""
    return draw_dag(g, dag_tests, roles, title).png
