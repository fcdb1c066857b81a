"""The DAG as a picture: causes on the left, the KPI on the right, and the independences the DAG
implies drawn between the pair they keep apart (green dotted where the data agree, red dashed and
labelled where a test rejects it).

Graphviz `dot` lays the graph out when its binary is installed (Debian package `graphviz`): its
spline router keeps every edge off the nodes it does not join. Without it, a pure-Python layered
layout does the same job: edges that skip layers are routed through slots of their own in each
layer they cross (Sugiyama's dummy nodes), so no edge passes behind a node either.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from html import escape
from itertools import pairwise

import networkx as nx
import pandas as pd

ROLE_COLOURS = {"channel": "#4c78a8", "control": "#d9d9d9", "kpi": "#f58518", "latent": "#ffffff"}
REJECTED_COLOUR = "#d62728"
HELD_COLOUR = "#2e8b57"
EDGE_COLOUR = "#333333"
DPI = 110
X_STEP = 2.4
"""Fallback layout: distance between layers, in units of the distance between slots of a layer."""
NODE_RX = 0.62
NODE_RY = 0.30
"""Fallback layout: node ellipse half-width and half-height, in layout units."""
SWEEPS = 8
"""Barycentre sweeps that order each layer to limit crossings."""


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
    """Fallback layout: node centres, and each edge's route (a polyline from source to target
    through its own slot in every layer it crosses)."""

    positions: dict[str, tuple[float, float]]
    routes: dict[tuple[str, str], tuple[tuple[float, float], ...]]


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
    """An HTML-like Graphviz label: the arrow, the colours of the implications present, and the
    pairs whose independence the data reject, by name."""
    parts = ["→ can cause"]
    if "latent" in set(roles.values()):
        parts.append("dashed node: unobserved")
    if any(not i.rejected for i in tested):
        parts.append(f'<font color="{HELD_COLOUR}">┈ green dotted: implied independence, consistent with the data</font>')
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
    """DOT lines of the tested implications: an undirected line between the pair (the rejected ones
    drawn last, on top)."""
    import graphviz

    extra = graphviz.Digraph()
    for i in sorted(tested, key=lambda t: t.rejected):
        if i.rejected:
            extra.edge(i.x, i.y, dir="none", color=REJECTED_COLOUR, style="dashed", penwidth="2.2")
        else:
            extra.edge(i.x, i.y, dir="none", color=HELD_COLOUR + "b0", style="dotted", penwidth="1.0")
    return list(extra.body)


def dag_dot(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None) -> str:
    """The laid-out DOT of the drawing, in two passes: `dot` places the nodes and routes the causal
    edges from the causal graph alone; the tested implications are then added and routed around
    the fixed nodes (`neato -n2`), so they neither move a node nor cross one."""
    import graphviz

    roles = dict(roles or {})
    tested = [i for i in implications(dag_tests) if i.x in g and i.y in g]
    laid = graphviz.Source(_causal_dot(g, roles, _legend(roles, tested))).pipe(format="dot", engine="dot").decode()
    body = laid.rstrip()
    if not body.endswith("}"):
        raise ValueError("unexpected output from Graphviz dot: no closing brace")
    return body[:-1] + "".join(_implication_lines(tested)) + "}\n"


def _graphviz_render(g: nx.DiGraph, dag_tests: pd.DataFrame | None, roles: Mapping[str, str], fmt: str) -> bytes:
    import graphviz

    return graphviz.Source(dag_dot(g, dag_tests, roles)).pipe(format=fmt, engine="neato", neato_no_op=2)


# --- pure-Python fallback ---------------------------------------------------------------------------

def _layers(g: nx.DiGraph) -> dict[str, int]:
    """Layer of each node: as far right as its children allow, so a cause sits next to what it
    causes and the KPI is in the last layer."""
    to_sink: dict[str, int] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(g))):
        to_sink[node] = 1 + max((to_sink[c] for c in g.successors(node)), default=-1)
    depth = max(to_sink.values(), default=0)
    return {node: depth - to_sink[node] for node in g.nodes}


def layered_layout(g: nx.DiGraph) -> LayeredLayout:
    """Left-to-right layers; an edge that skips layers gets a slot of its own in each layer it
    crosses; layers are ordered by barycentre sweeps to limit crossings."""
    layer = _layers(g)
    depth = max(layer.values(), default=0)
    members: list[list[object]] = [[] for _ in range(depth + 1)]
    for node in sorted(g.nodes):
        members[layer[node]].append(node)
    chains: dict[tuple[str, str], list[object]] = {}
    links: list[tuple[object, object]] = []
    for a, b in sorted(g.edges):
        chain: list[object] = [a] + [(a, b, k) for k in range(layer[a] + 1, layer[b])] + [b]
        for k, dummy in enumerate(chain[1:-1], start=layer[a] + 1):
            members[k].append(dummy)
        chains[(a, b)] = chain
        links.extend(pairwise(chain))
    up: dict[object, list[object]] = {}
    down: dict[object, list[object]] = {}
    for u, v in links:
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
    place = {item: (X_STEP * k, (len(row) - 1) / 2.0 - i) for k, row in enumerate(members) for i, item in enumerate(row)}
    positions = {node: place[node] for node in g.nodes}
    routes = {edge: tuple(place[item] for item in chain) for edge, chain in chains.items()}
    return LayeredLayout(positions, routes)


def layered_positions(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Node centres of the fallback layout (x grows towards the KPI)."""
    return layered_layout(g).positions


def _on_border(centre: tuple[float, float], towards: tuple[float, float], gap: float = 0.03) -> tuple[float, float]:
    """Where the segment from a node's centre towards a point leaves the node's ellipse."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    scale = ((dx / NODE_RX) ** 2 + (dy / NODE_RY) ** 2) ** 0.5
    if scale == 0:
        return centre
    t = 1.0 / scale + gap / max((dx * dx + dy * dy) ** 0.5, 1e-9)
    return centre[0] + t * dx, centre[1] + t * dy


def _matplotlib_png(g: nx.DiGraph, dag_tests: pd.DataFrame | None, roles: Mapping[str, str], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse, FancyArrowPatch
    
    layout = layered_layout(g)
    pos = layout.positions
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [y for route in layout.routes.values() for _, y in route] + [p[1] for p in pos.values()] or [0.0]
    width, height = max(xs) - min(xs) + 2 * NODE_RX + 0.6, max(ys) - min(ys) + 2 * NODE_RY + 0.9
    fig = Figure(figsize=(max(5.0, 1.05 * width), max(3.0, 0.85 * height + 0.8)), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (a, b), route in layout.routes.items():
        latent = roles.get(a) == "latent" or roles.get(b) == "latent"
        style = "--" if latent else "-"
        points = [_on_border(route[0], route[1]), *route[1:-1], _on_border(route[-1], route[-2])]
        if len(points) > 2:  # the part through the crossed layers, then the arrow on the last leg
            ax.plot([p[0] for p in points[:-1]], [p[1] for p in points[:-1]], color=EDGE_COLOUR, lw=1.3, ls=style,
                    zorder=1, solid_capstyle="round")
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", mutation_scale=14, color=EDGE_COLOUR,
                                     lw=1.3, linestyle=style, zorder=1, shrinkA=0, shrinkB=1))
    tested = [i for i in implications(dag_tests) if i.x in pos and i.y in pos]
    for i in sorted(tested, key=lambda t: t.rejected):  # rejected on top
        (x0, y0), (x1, y1) = pos[i.x], pos[i.y]
        colour = REJECTED_COLOUR if i.rejected else HELD_COLOUR
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-", color=colour,
                                     lw=2.0 if i.rejected else 1.0, linestyle=(0, (4, 3)) if i.rejected else ":",
                                     shrinkA=26, shrinkB=26, connectionstyle="arc3,rad=-0.3", zorder=2,
                                     alpha=1.0 if i.rejected else 0.8))
    for node, (x, y) in pos.items():
        role = roles.get(node, "control")
        ax.add_patch(Ellipse((x, y), 2 * NODE_RX, 2 * NODE_RY, facecolor=ROLE_COLOURS.get(role, "#d9d9d9"),
                             edgecolor=EDGE_COLOUR, lw=1.2, linestyle="--" if role == "latent" else "-", zorder=3))
        ax.annotate(node, (x, y), ha="center", va="center", fontsize=8 if len(node) <= 10 else 6.5, zorder=4,
                    color="white" if role == "channel" else "#111111")
    handles = [Line2D([], [], marker="o", linestyle="", markersize=9, markerfacecolor=c, markeredgecolor=EDGE_COLOUR,
                      label=r) for r, c in ROLE_COLOURS.items() if r in set(roles.values())]
    if any(not i.rejected for i in tested):
        handles.append(Line2D([], [], color=HELD_COLOUR, linestyle=":", lw=1.2, label="implied independence, consistent"))
    if any(i.rejected for i in tested):
        named = "; ".join(f"{i.x} ⊥ {i.y}" for i in tested if i.rejected)
        handles.append(Line2D([], [], color=REJECTED_COLOUR, linestyle="--", lw=2,
                              label=f"implied independence rejected: {named}"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=min(len(handles), 2),
                  fontsize=7.5, frameon=False)
    ax.set_xlim(min(xs) - NODE_RX - 0.3, max(xs) + NODE_RX + 0.3)
    ax.set_ylim(min(ys) - NODE_RY - 0.45, max(ys) + NODE_RY + 0.45)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


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
