"""The report's figures (matplotlib, no pyplot state): the ROI forest plot as PNG bytes (the Dagster UI
shows it too), the weekly contributions, the response curves and the quarterly effects as SVG bytes.
Pure functions of published tables."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cmmm_pipeline.dag.overlap import SpendSupport
from cmmm_pipeline.media.features import WEEK, transforms_from_table
from cmmm_pipeline.media.transforms import hill_saturation

DPI = 110
TOTAL = "total"
DIRECT = "direct"
STEADY_WEEKS = 400
"""Weeks of constant spend after which adstock has reached its steady state (decay < 1)."""
MARKERS = ("s", "D", "^", "v")
"""Markers of a curve's `marks`, in order (the first hollow)."""
COLOURS = ("#1f5fa8", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d")


EDGE = 0.08
"""Inches of white kept at the figure's edges."""
NUMERIC_TICKS = 5
"""At most this many intervals between a numeric axis's ticks: a reader takes a value off a small
panel with five, and every tick is a line, a label and a grid line to draw."""
TICK = 7 / 72
"""Inches a tick and its pad take between an axis and its tick labels (3.5 pt + 3.5 pt)."""
LABEL_PAD = 4 / 72
"""Inches between tick labels and their axis label (matplotlib's 4 pt)."""
TITLE_PAD = 6 / 72
"""Inches between an axes and its title (matplotlib's 6 pt)."""


def _figure(width: float, height: float) -> Any:
    """A figure laid out by `_fit`, not by a layout engine: constrained layout measures every
    artist again before each draw, which was half of the report's figure time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _text_inches(fig: Any, texts: Sequence[str], size: float, rotation: float = 0.0) -> tuple[float, float]:
    """Width and height, in inches, of the largest of `texts` at `size` points (font metrics only)."""
    from matplotlib.font_manager import FontProperties

    renderer, font = fig.canvas.get_renderer(), FontProperties(size=size)
    width = height = 0.0
    angle = np.deg2rad(rotation)
    for text in texts:
        w, h, _ = renderer.get_text_width_height_descent(text, font, ismath=False)
        width = max(width, abs(w * np.cos(angle)) + abs(h * np.sin(angle)))
        height = max(height, abs(w * np.sin(angle)) + abs(h * np.cos(angle)))
    return width / fig.dpi, height / fig.dpi


def _tick_labels(axis: Any) -> list[str]:
    """The labels the axis will draw: its locator's ticks in view, formatted, and the offset text."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * max(abs(high - low), 1e-300)
    ticks = [t for t in axis.get_major_locator()() if low - slack <= t <= high + slack]
    formatter = axis.get_major_formatter()
    labels = [str(label) for label in formatter.format_ticks(ticks)]
    offset = formatter.get_offset()
    return [*labels, offset] if offset else labels or [""]


def _line_inches(size: float) -> float:
    """Height of one line of text at `size` points."""
    return size * 1.25 / 72


def _compact_number(value: float, _position: object = None) -> str:
    """A tick label short at any scale, with no offset text to make room for: 950, 9500, 12.5k, 3M."""
    for threshold, scale, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _fit(fig: Any, axes: Sequence[Any], columns: int = 1, top: float = 0.0, title: float = 0.0,
         ylabel: float = 0.0, xlabel: float = 0.0, x_rotation: float = 0.0, row_gap: float | None = None,
         y_ticks: float = 10.0, x_ticks: float = 10.0, title_lines: int = 1) -> None:
    """Margins and gaps (inches) that hold the tick labels, axis labels, titles, and `top` inches
    above the grid (a legend, a title), measured from the texts themselves; numeric axes get short
    labels (`_compact_number`). `title`, `ylabel`, `xlabel`, `y_ticks` and `x_ticks` are font sizes
    (0: no such text).
    `row_gap` replaces the gap between rows when only the bottom row shows its x axis and only the
    top one a title (a shared x axis)."""
    from matplotlib.ticker import AutoLocator, FuncFormatter, MaxNLocator, ScalarFormatter

    if not axes:
        return
    for axis in (a for ax in axes for a in (ax.xaxis, ax.yaxis)):
        if isinstance(axis.get_major_formatter(), ScalarFormatter):
            axis.set_major_formatter(FuncFormatter(_compact_number))
        if type(axis.get_major_locator()) is AutoLocator:  # the default; fixed and null ones stay
            axis.set_major_locator(MaxNLocator(nbins=NUMERIC_TICKS, steps=[1, 2, 2.5, 5, 10]))
    y_width = max(_text_inches(fig, _tick_labels(ax.yaxis), y_ticks)[0] for ax in axes)
    x_width, x_height = _text_inches(fig, [t for ax in axes for t in _tick_labels(ax.xaxis)], x_ticks, x_rotation)
    left = y_width + TICK + (_line_inches(ylabel) + LABEL_PAD if ylabel else 0.0)
    below = x_height + TICK + (_line_inches(xlabel) + LABEL_PAD if xlabel else 0.0)
    above = title_lines * _line_inches(title) + TITLE_PAD if title else 0.0
    right = EDGE + x_width / 2
    width, height = fig.get_size_inches()
    rows = int(np.ceil(len(axes) / columns))
    cell_w = (width - EDGE - left - right - (columns - 1) * (left + right)) / columns
    gap = above + below if row_gap is None else row_gap
    cell_h = (height - EDGE - top - above - EDGE - below - (rows - 1) * gap) / rows
    fig.subplots_adjust(left=(EDGE + left) / width, right=1 - right / width,
                        bottom=(EDGE + below) / height, top=1 - (EDGE + top + above) / height,
                        wspace=(left + right) / max(cell_w, 0.1), hspace=gap / max(cell_h, 0.1))


def _legend_inches(fig: Any, legend: Any) -> float:
    """The legend's height and a gap below it."""
    return float(legend.get_window_extent(fig.canvas.get_renderer()).height) / fig.dpi + TICK / 2


def _top_legend(fig: Any, ax: Any, columns: int, size: float = 8) -> Any:
    """`ax`'s legend centred at the top of the figure, in as many columns (at most `columns`) as
    fit its width with the longest entry."""
    handles, labels = ax.get_legend_handles_labels()
    entry = _text_inches(fig, labels, size)[0] + 0.6  # the key and the gaps around an entry
    fit = int(max((fig.get_size_inches()[0] - 2 * EDGE) // entry, 1))
    height = fig.get_size_inches()[1]
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - EDGE / height),
                      ncol=max(min(columns, fit, len(labels)), 1), fontsize=size, frameon=False, borderaxespad=0)


def _png(fig: Any) -> bytes:
    """The figure as PNG, compressed fast: zlib's level 1 instead of 6 encodes 20 response curves in
    60% of the time (0.09 s against 0.145 s), for files 2% (curves) to 37% (bars) larger."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


SVG_SALT = "cmmm"
"""Seeds the SVG's clip-path ids, which matplotlib otherwise draws at random: the same figure, the
same bytes."""


def _svg(fig: Any) -> bytes:
    """The figure as SVG with its text as text: the browser draws the glyphs (DejaVu Sans, the font
    `_fit` measured, first in the fallback list), so nothing is rasterised or compressed here: 20
    response curves take 0.77 s to build and write instead of 1.02 s as PNG (benchmarks/figure_cost.py).
    Sized in CSS pixels at `DPI` per inch, as the PNG was, so the page lays out the same; no date in the
    metadata, so a figure's bytes depend on its data only."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": SVG_SALT}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    width, height = fig.get_size_inches() * DPI
    sized = re.sub(r'width="[0-9.]+pt" height="[0-9.]+pt"', f'width="{width:.0f}px" height="{height:.0f}px"',
                   buffer.getvalue(), count=1)
    return sized.encode()


def channel_colours(channels: Sequence[str]) -> dict[str, str]:
    return {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(channels)}


def smoothing_scale(estimate: pd.Series | dict) -> float:
    """Published ROI ÷ ROI at the applied transform: rescales a curve drawn at the applied transform
    to the published (smoothed) estimate; 1 where nothing was smoothed."""
    roi, applied = float(estimate.get("roi", np.nan)), float(estimate.get("applied_transform_roi", np.nan))
    return roi / applied if np.isfinite(roi) and np.isfinite(applied) and applied != 0 else 1.0


def forest_plot_png(estimates: pd.DataFrame, ci_level: float = 0.95) -> bytes:
    """ROI with its interval per channel and effect; the naive all-in-one OLS ROI beside each total."""
    rows = estimates[np.isfinite(estimates["roi"].astype(float))].reset_index(drop=True)
    labels = [c if e == TOTAL else f"{c} ({e})" for c, e in zip(rows["channel"], rows["effect"])]
    fig = _figure(7.2, 0.55 * len(rows) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(rows), dtype=float)
    total = (rows["effect"] == TOTAL).to_numpy()
    roi = rows["roi"].to_numpy(dtype=float)
    err = np.vstack([roi - rows["roi_ci_low"].to_numpy(dtype=float), rows["roi_ci_high"].to_numpy(dtype=float) - roi])
    level = f"{ci_level * 100:g}%"
    ax.errorbar(roi[total], y[total] - 0.1, xerr=err[:, total], fmt="o", color="#1f5fa8", capsize=4,
                label=f"causal ROI (DAG), {level} interval")
    if (~total).any():
        ax.errorbar(roi[~total], y[~total], xerr=err[:, ~total], fmt="o", color="#8fb3dc", capsize=3,
                    label=f"direct / indirect part, {level} interval")
    if "naive_roi" in rows:
        naive = rows["naive_roi"].to_numpy(dtype=float)
        shown = total & np.isfinite(naive)
        ax.scatter(naive[shown], y[shown] + 0.18, marker="x", s=45, color="#c0392b", zorder=3,
                   label="naive ROI (one OLS, no DAG)")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("ROI: incremental KPI per unit of spend")
    ax.grid(axis="x", alpha=0.3)
    legend = _top_legend(fig, ax, columns=2)
    _fit(fig, [ax], top=_legend_inches(fig, legend), xlabel=10)
    return _png(fig)


@dataclass(frozen=True)
class ContributionPart:
    """One stacked area: a channel's weekly contribution = `ate` × its transformed media."""

    channel: str
    label: str
    ate: float


def contribution_parts(estimates: pd.DataFrame, channels: Sequence[str]) -> list[ContributionPart]:
    """One part per channel with a finite total effect, without double counting: a channel whose
    effect flows through another stacked channel (tv → search) is stacked with its direct effect,
    since the mediator's area already holds every unit of the mediator, the ones it drives included."""
    rows = estimates[np.isfinite(estimates["ate"].astype(float))]
    stacked = [c for c in rows.loc[rows["effect"] == TOTAL, "channel"] if c in channels]
    parts = []
    for channel in stacked:
        mine = rows[rows["channel"] == channel].set_index("effect")
        through = ({m for m in str(mine.loc[DIRECT].get("mediators", "") or "").split("|") if m}
                   if DIRECT in mine.index else set())
        effect = DIRECT if through & set(stacked) else TOTAL
        row = mine.loc[effect]
        parts.append(ContributionPart(channel, channel if effect == TOTAL else f"{channel} (direct)",
                                      float(row["ate"]) * smoothing_scale(row)))
    return parts


def contributions_svg(transformed: pd.DataFrame, parts: Sequence[ContributionPart], kpi: str) -> bytes:
    """Weekly contribution of each part stacked under the observed KPI."""
    weeks = pd.to_datetime(transformed[WEEK])
    stacks = np.vstack([p.ate * transformed[p.channel].to_numpy(dtype=float) for p in parts])
    colours = channel_colours([p.channel for p in parts])
    fig = _figure(8.0, 3.8)
    ax = fig.add_subplot()
    ax.stackplot(weeks, np.clip(stacks, 0, None), labels=[p.label for p in parts],
                 colors=[colours[p.channel] for p in parts], alpha=0.85)
    ax.plot(weeks, transformed[kpi].to_numpy(dtype=float), color="#222", lw=1.0, label=f"{kpi} (observed)")
    ax.set_ylabel(kpi)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    legend = _top_legend(fig, ax, columns=5)
    _fit(fig, [ax], top=_legend_inches(fig, legend), ylabel=10)
    return _svg(fig)


@dataclass(frozen=True)
class ResponseCurve:
    """Weekly incremental KPI at a constant weekly spend, with its interval, the observed range and
    the supported range: from `support_low` (the overlap analysis's lower support bound, the same
    number that sets `roi_support`) to the highest week."""

    channel: str
    spend: np.ndarray
    response: np.ndarray
    low: np.ndarray
    high: np.ndarray
    observed_min: float
    observed_max: float
    observed_mean: float
    support_low: float
    roi_support: str = ""
    extrapolated_share: float = float("nan")
    support_high: float | None = None
    """The supported range's top (None: the highest week); a plan's range reaches a margin past it."""
    marks: tuple[tuple[str, float], ...] = ()
    """(label, weekly spend) points marked on the curve, e.g. a plan's current and proposed spend."""

    @property
    def supported_high(self) -> float:
        return self.observed_max if self.support_high is None else float(self.support_high)

    @property
    def supported(self) -> np.ndarray:
        """Grid points inside the supported range, drawn solid (the rest dashed)."""
        return (self.spend >= self.support_low) & (self.spend <= self.supported_high)


def response_curve(channel: str, spend: np.ndarray, transforms: pd.DataFrame, estimate: pd.Series,
                   support: SpendSupport | None = None, points: int = 200) -> ResponseCurve:
    """ATE × Hill(steady-state adstock of a constant weekly spend ÷ the run's reference scale).

    The interval scales the curve by the ROI interval over the ROI (the curve is linear in the ATE).
    `support` is the channel's `SpendSupport` from the overlap analysis; without it the supported
    range starts at the lowest observed week. The grid holds both ends of the range exactly."""
    transform = transforms_from_table(transforms)[channel]
    observed = np.asarray(spend, dtype=float)
    reference = transform.reference(observed)
    carry = float(transform.adstocked(np.ones(STEADY_WEEKS))[-1])
    support_low = float(support.low) if support is not None else float(observed.min())
    top = max(float(observed.max()), 1e-9)
    grid = np.union1d(np.linspace(0.0, top * 1.5, points), [support_low, float(observed.max())])
    response = float(estimate["ate"]) * smoothing_scale(estimate) * hill_saturation(
        grid * carry / reference, transform.half_saturation, transform.slope)
    roi = float(estimate["roi"])
    scale_low = float(estimate["roi_ci_low"]) / roi if roi else np.nan
    scale_high = float(estimate["roi_ci_high"]) / roi if roi else np.nan
    flag = estimate.get("roi_support", "")
    share = estimate.get("extrapolated_share", np.nan)
    return ResponseCurve(channel, grid, response, response * scale_low, response * scale_high,
                         float(observed.min()), float(observed.max()), float(observed.mean()), support_low,
                         flag if isinstance(flag, str) else "",
                         float(share) if share is not None and np.isfinite(float(share)) else float("nan"))


def curve_title(curve: ResponseCurve) -> str:
    """The channel, and where its ROI against zero stands (the flag the summary table shows)."""
    if not curve.roi_support:
        return curve.channel
    share = curve.extrapolated_share
    below = f" ({share:.0%} of it below support)" if np.isfinite(share) and share > 0 else ""
    return f"{curve.channel} · ROI vs zero spend: {curve.roi_support}{below}"


def response_curves_svg(curves: Sequence[ResponseCurve], kpi: str) -> bytes:
    """Small multiples (see `response_curves_figure`)."""
    return _svg(response_curves_figure(curves, kpi))


def response_curves_figure(curves: Sequence[ResponseCurve], kpi: str) -> Any:
    """Small multiples: the supported weekly spend shaded, the curve solid inside it and dashed
    (extrapolated) below its lower bound and above the highest week."""
    columns = 2 if len(curves) > 1 else 1
    rows = int(np.ceil(len(curves) / columns))
    fig = _figure(8.0, 2.9 * rows + 0.3)
    colours = channel_colours([c.channel for c in curves])
    titles = _panel_titles(fig, [curve_title(c) for c in curves], columns)
    for i, curve in enumerate(curves):
        ax = fig.add_subplot(rows, columns, i + 1)
        colour = colours[curve.channel]
        inside = curve.supported
        ax.axvspan(curve.support_low, curve.supported_high, color=colour, alpha=0.10, lw=0,
                   label="spend comparable weeks show", gid="support")
        ax.fill_between(curve.spend, curve.low, curve.high, color=colour, alpha=0.18, lw=0, label="interval")
        ax.plot(curve.spend[inside], curve.response[inside], color=colour, lw=2, label="supported by data",
                gid="supported")
        below, above = curve.spend <= curve.support_low, curve.spend >= curve.supported_high
        for part, label in ((below, "extrapolated"), (above, None)):
            if part.sum() > 1:
                ax.plot(curve.spend[part], curve.response[part], color=colour, lw=1.3, ls="--", label=label,
                        gid="extrapolated")
        mean_response = float(np.interp(curve.observed_mean, curve.spend, curve.response))
        ax.plot([curve.observed_mean], [mean_response], "o", color="#222", ms=4, label="average week")
        for (label, x), marker in zip(curve.marks, MARKERS):
            if not np.isfinite(x):
                continue
            ax.plot([x], [float(np.interp(x, curve.spend, curve.response))], marker, color="#222", ms=6,
                    mfc="none" if marker == MARKERS[0] else "#222", label=label, gid="mark")
        ax.set_title(titles[i], fontsize=9, y=1.0)  # placed, not searched for: `_fit` made room
        ax.set_xlabel("weekly spend (held constant)", fontsize=8)
        ax.set_ylabel(f"weekly incremental {kpi}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, float(curve.spend.max()))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
    _fit(fig, fig.axes, columns, title=9, ylabel=8, xlabel=8, y_ticks=7, x_ticks=7,
         title_lines=max((t.count("\n") + 1 for t in titles), default=1))
    return fig


def _panel_titles(fig: Any, titles: list[str], columns: int, size: float = 9) -> list[str]:
    """Titles that fit their column (its share of the figure, less an axis's labels), wrapped at
    spaces onto as many lines as it takes, so neighbours' titles never run into each other."""
    room = fig.get_size_inches()[0] / columns - 0.9
    wrapped = []
    for title in titles:
        lines = [""]
        for word in title.split(" "):
            joined = f"{lines[-1]} {word}" if lines[-1] else word
            if lines[-1] and _text_inches(fig, [joined], size)[0] > room:
                lines.append(word)
            else:
                lines[-1] = joined
        wrapped.append("\n".join(lines))
    return wrapped


def _bars(ax: Any, positions: np.ndarray, heights: np.ndarray, colour: str, width: float) -> None:
    """Vertical bars from zero, drawn as `ax.bar` draws them (no margin below the zero baseline) but
    as one collection: `ax.bar` adds a patch per bar and updates the limits with each, which was a
    fifth of the quarterly chart's cost on 20 channels (`benchmarks/figure_cost.py`)."""
    from matplotlib.collections import PolyCollection

    left, right = positions - width / 2, positions + width / 2
    zero = np.zeros_like(heights)
    corners = np.stack([np.column_stack(c) for c in ((left, zero), (left, heights), (right, heights),
                                                     (right, zero))], axis=1)
    bars = PolyCollection(corners, facecolors=colour, alpha=0.75, linewidths=0)
    bars.sticky_edges.y.append(0.0)
    ax.add_collection(bars)


def quarterly_effects_svg(periods: pd.DataFrame, kpi: str, ci_level: float = 0.95) -> bytes:
    """Incremental KPI by quarter per channel (total effect) with its interval: one panel per
    channel, quarters on a shared axis."""
    from matplotlib.ticker import NullLocator

    rows = periods[(periods["period_type"] == "quarter") & (periods["effect"] == TOTAL)]
    channels = list(dict.fromkeys(rows["channel"]))
    colours = channel_colours(channels)
    fig = _figure(7.2, 1.6 * max(len(channels), 1) + 0.8)
    # One quarter axis, drawn under the last panel only: the others get no x ticks at all (shared
    # axes would share one locator, and a tick is a line, a label and a grid line to draw each).
    axes = fig.subplots(max(len(channels), 1), 1, squeeze=False)[:, 0]
    quarters = list(dict.fromkeys(rows["period"]))
    x = {q: i for i, q in enumerate(quarters)}
    for ax, channel in zip(axes, channels):
        r = rows[rows["channel"] == channel]
        pos = np.array([x[q] for q in r["period"]], dtype=float)
        value = r["incremental_kpi"].to_numpy(dtype=float)
        low, high = r["incremental_ci_low"].to_numpy(dtype=float), r["incremental_ci_high"].to_numpy(dtype=float)
        _bars(ax, pos, value, colours[channel], width=0.7)
        ax.errorbar(pos, value, yerr=np.vstack([value - low, high - value]), fmt="none", ecolor="#333333",
                    capsize=2, lw=0.8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(channel, loc="left", fontsize=8, y=1.0)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes:
        ax.set_xlim(-0.5, len(quarters) - 0.5)
        ax.xaxis.set_major_locator(NullLocator())
    axes[-1].set_xticks(range(len(quarters)), quarters, rotation=60, fontsize=7)
    height = fig.get_size_inches()[1]
    title = fig.suptitle(f"Incremental {kpi} by quarter (total effect), {ci_level * 100:g}% intervals", fontsize=9,
                         y=1 - EDGE / height, va="top")
    top = _text_inches(fig, [title.get_text()], 9)[1] + TITLE_PAD
    _fit(fig, list(axes), top=top, title=8, x_rotation=60, row_gap=_line_inches(8) + TITLE_PAD + 0.04,
         x_ticks=7)
    return _svg(fig)
