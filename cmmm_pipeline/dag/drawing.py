"""The DAG as a picture: causes on the left, the KPI on the right, and the implications the data
reject drawn as dashed red lines between the two nodes the DAG keeps apart."""

from __future__ import annotations

import io
from collections.abc import Mapping

import networkx as nx
import pandas as pd

ROLE_COLOURS = {"channel": "#4c78a8", "control": "#9d9d9d", "kpi": "#f58518", "latent": "#ffffff"}
REJECTED_COLOUR = "#d62728"


def layered_positions(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Left-to-right layers, each node as far right as its children allow (so a cause sits next to
    what it causes), ordered within a layer by the height of its children to limit crossings."""
    to_sink: dict[str, int] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(g))):
        to_sink[node] = 1 + max((to_sink[c] for c in g.successors(node)), default=-1)
    depth = max(to_sink.values(), default=0)
    layers: dict[int, list[str]] = {}
    for node in sorted(g.nodes):
        layers.setdefault(depth - to_sink[node], []).append(node)
    positions: dict[str, tuple[float, float]] = {}
    for x in sorted(layers, reverse=True):
        def height(node: str) -> tuple[float, str]:
            ys = [positions[c][1] for c in g.successors(node) if c in positions]
            return (-sum(ys) / len(ys) if ys else 0.0, node)

        nodes = sorted(layers[x], key=height)
        for i, node in enumerate(nodes):
            positions[node] = (float(x), (len(nodes) - 1) / 2.0 - i)
    return positions


def rejected_pairs(dag_tests: pd.DataFrame | None) -> list[tuple[str, str]]:
    """Each (x, y) pair with at least one rejected test, once, in table order."""
    if dag_tests is None or dag_tests.empty:
        return []
    rows = dag_tests[dag_tests["rejected"].astype(bool)]
    return list(dict.fromkeys(zip(rows["x"].astype(str), rows["y"].astype(str))))


def draw_dag_png(g: nx.DiGraph, dag_tests: pd.DataFrame | None = None, roles: Mapping[str, str] | None = None,
                 title: str = "Causal DAG") -> bytes:
    """PNG bytes of the DAG: edges as arrows (dashed from latent nodes), nodes coloured by role, and a
    dashed red line for every rejected implication."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    roles = dict(roles or {})
    pos = layered_positions(g)
    layers = max((p[0] for p in pos.values()), default=0.0) + 1
    height = max((abs(p[1]) for p in pos.values()), default=0.0) * 2 + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * layers), max(3.5, 1.1 * height + 1.2)), dpi=110)
    node_size = 2600
    for a, b in g.edges:
        latent_edge = roles.get(a) == "latent" or roles.get(b) == "latent"
        skipped = max(0.0, abs(pos[b][0] - pos[a][0]) - 1.0)  # bend edges that jump layers off the nodes between
        ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-|>", mutation_scale=16, color="#333333",
                                     linewidth=1.3, linestyle="--" if latent_edge else "-", shrinkA=24, shrinkB=24,
                                     connectionstyle=f"arc3,rad={0.06 + 0.14 * skipped:.2f}", zorder=1))
    pairs = rejected_pairs(dag_tests)
    for a, b in pairs:
        if a in pos and b in pos:
            ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-", color=REJECTED_COLOUR, linewidth=2.0,
                                         linestyle=(0, (4, 3)), shrinkA=22, shrinkB=22,
                                         connectionstyle="arc3,rad=-0.25", zorder=2))
    for node, (x, y) in pos.items():
        role = roles.get(node, "control")
        ax.scatter([x], [y], s=node_size, c=ROLE_COLOURS.get(role, "#9d9d9d"), edgecolors="#333333",
                   linewidths=1.2, linestyle="--" if role == "latent" else "-", zorder=3)
        ax.annotate(node, (x, y), ha="center", va="center", fontsize=8.5 if len(node) <= 9 else 7, zorder=4,
                    color="#111111" if role in {"latent", "control", "kpi"} else "white")
    handles = [Line2D([], [], marker="o", linestyle="", markersize=10, markerfacecolor=c, markeredgecolor="#333333",
                      label=r) for r, c in ROLE_COLOURS.items() if r in set(roles.values())]
    if pairs:
        handles.append(Line2D([], [], color=REJECTED_COLOUR, linestyle="--", linewidth=2,
                              label="independence rejected by the data"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=len(handles), fontsize=8,
                  frameon=False)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_title(title, fontsize=11)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
