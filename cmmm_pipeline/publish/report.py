"""The self-contained HTML report of a published run: one file, plots inline as PNG (matplotlib,
Agg), no scripts and no network, readable on a laptop and a phone.

Order: what needs attention, a plain-language summary per channel, then the evidence (DAG and its
tested implications, ROI intervals beside the naive regression, contributions over time, response
curves), the check tables (refuters, independence tests, overlap, identification, lift
experiments), the change since the previous run, and the run's inputs. A section whose table this
run did not produce says so instead of disappearing.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.dag.drawing import draw_dag_png
from cmmm_pipeline.data.history import UNCHANGED, EstimateChanges
from cmmm_pipeline.media.features import WEEK, transforms_from_table
from cmmm_pipeline.media.transforms import hill_saturation

NOT_AVAILABLE = "Not available in this run."
DPI = 110
TOTAL = "total"
STEADY_WEEKS = 400
"""Weeks of constant spend after which adstock has reached its steady state (decay < 1)."""
COLOURS = ("#1f5fa8", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d")
ROLE_COLOURS = {"channel": "#cfe0f5", "control": "#e8e8e8", "kpi": "#d5f0dd"}


class Status(Enum):
    """Robustness status of an estimate, worst last."""

    PASS = "PASS"
    REVIEW = "REVIEW"
    FAIL = "FAIL"

    @staticmethod
    def worst(values: Iterable[str]) -> Status | None:
        found = [Status(v) for v in values if v in Status._value2member_map_]
        order = list(Status)
        return max(found, key=order.index) if found else None


class Level(Enum):
    """How loudly an attention item is shown."""

    FAIL = "fail"
    REVIEW = "review"
    INFO = "info"


@dataclass(frozen=True)
class RunInfo:
    """What identifies the run and how it was configured."""

    run_id: str
    run_time: dt.datetime | None
    kpi: str
    config_path: str
    config_text: str
    ci_level: float
    spend_columns: Mapping[str, str]
    """channel → its spend column in the raw table."""


@dataclass(frozen=True)
class ReportInputs:
    """The published tables of one run. Optional tables are None when the run did not make them."""

    run: RunInfo
    estimates: pd.DataFrame
    raw: pd.DataFrame
    transforms: pd.DataFrame
    transformed: pd.DataFrame | None = None
    dag_edges: pd.DataFrame | None = None
    dag_tests: pd.DataFrame | None = None
    overlap: pd.DataFrame | None = None
    identification: pd.DataFrame | None = None
    refutations: pd.DataFrame | None = None
    experiments: pd.DataFrame | None = None
    transform_selection: pd.DataFrame | None = None
    changes: EstimateChanges | None = None
    roi_history: pd.DataFrame | None = None

    @staticmethod
    def from_tables(run: RunInfo, tables: Mapping[str, pd.DataFrame], changes: EstimateChanges | None = None,
                    roi_history: pd.DataFrame | None = None) -> ReportInputs:
        """Build from published table name → frame; `estimates`, `raw_spend` and
        `transform_parameters` are required, every other table is optional."""
        return ReportInputs(
            run=run, estimates=tables["estimates"], raw=tables["raw_spend"], transforms=tables["transform_parameters"],
            transformed=tables.get("transformed_media"), dag_edges=tables.get("dag_edges"),
            dag_tests=tables.get("dag_tests"), overlap=tables.get("overlap"),
            identification=tables.get("identification"), refutations=tables.get("refutations"),
            experiments=tables.get("experiments"), transform_selection=tables.get("transform_selection"),
            changes=changes, roi_history=roi_history)

    @property
    def alpha(self) -> float:
        return 1.0 - self.run.ci_level

    @property
    def level_label(self) -> str:
        return f"{self.run.ci_level * 100:g}%"

    def data_range(self) -> tuple[str, str]:
        weeks = pd.to_datetime(self.raw[WEEK])
        return str(weeks.min().date()), str(weeks.max().date())

    def total_rows(self) -> pd.DataFrame:
        return self.estimates[self.estimates["effect"] == TOTAL].reset_index(drop=True)


@dataclass(frozen=True)
class AttentionItem:
    level: Level
    text: str
    anchor: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str
    intro: str = ""


@dataclass(frozen=True)
class ChannelSummary:
    """One channel's headline, as numbers and as the sentence the reader sees."""

    channel: str
    roi: float
    roi_ci_low: float
    roi_ci_high: float
    significant: bool | None
    status: Status | None
    change: float | None
    outside_previous_interval: bool
    sentence: str
    notes: tuple[str, ...] = ()
    """Refuters that did not pass."""
    recommendation: str = ""


# --- plots -----------------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _channel_colours(channels: Sequence[str]) -> dict[str, str]:
    return {c: COLOURS[i % len(COLOURS)] for i, c in enumerate(channels)}


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
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    return _png(fig)


def contributions_png(transformed: pd.DataFrame, estimates: pd.DataFrame, kpi: str) -> bytes:
    """Weekly contribution of each channel (total-effect ATE × transformed media) stacked under the KPI."""
    total = estimates[(estimates["effect"] == TOTAL) & np.isfinite(estimates["ate"].astype(float))]
    channels = [c for c in total["channel"] if c in transformed.columns]
    ate = {r["channel"]: float(r["ate"]) * smoothing_scale(r) for r in total.to_dict("records")}
    weeks = pd.to_datetime(transformed[WEEK])
    parts = np.vstack([ate[c] * transformed[c].to_numpy(dtype=float) for c in channels])
    colours = _channel_colours(channels)
    fig = _figure(8.0, 3.8)
    ax = fig.add_subplot()
    ax.stackplot(weeks, np.clip(parts, 0, None), labels=channels, colors=[colours[c] for c in channels], alpha=0.85)
    ax.plot(weeks, transformed[kpi].to_numpy(dtype=float), color="#222", lw=1.0, label=f"{kpi} (observed)")
    ax.set_ylabel(kpi)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(channels) + 1, 5), fontsize=8, frameon=False)
    return _png(fig)


@dataclass(frozen=True)
class ResponseCurve:
    """Weekly incremental KPI at a constant weekly spend, with its interval and the observed range."""

    channel: str
    spend: np.ndarray
    response: np.ndarray
    low: np.ndarray
    high: np.ndarray
    observed_min: float
    observed_max: float
    observed_mean: float


def smoothing_scale(estimate: pd.Series | dict) -> float:
    """Published ROI ÷ ROI at the applied transform: rescales a curve drawn at the applied transform
    to the published (smoothed) estimate; 1 where nothing was smoothed."""
    roi, applied = float(estimate.get("roi", np.nan)), float(estimate.get("applied_transform_roi", np.nan))
    return roi / applied if np.isfinite(roi) and np.isfinite(applied) and applied != 0 else 1.0


def response_curve(channel: str, spend: np.ndarray, transforms: pd.DataFrame, estimate: pd.Series,
                   points: int = 200) -> ResponseCurve:
    """ATE × Hill(steady-state adstock of a constant weekly spend ÷ the run's reference scale).

    The interval scales the curve by the ROI interval over the ROI (the curve is linear in the ATE)."""
    transform = transforms_from_table(transforms)[channel]
    observed = np.asarray(spend, dtype=float)
    reference = transform.reference(observed)
    carry = float(transform.adstocked(np.ones(STEADY_WEEKS))[-1])
    grid = np.linspace(0.0, max(float(observed.max()), 1e-9) * 1.5, points)
    response = float(estimate["ate"]) * smoothing_scale(estimate) * hill_saturation(
        grid * carry / reference, transform.half_saturation, transform.slope)
    roi = float(estimate["roi"])
    scale_low = float(estimate["roi_ci_low"]) / roi if roi else np.nan
    scale_high = float(estimate["roi_ci_high"]) / roi if roi else np.nan
    return ResponseCurve(channel, grid, response, response * scale_low, response * scale_high,
                         float(observed.min()), float(observed.max()), float(observed.mean()))


def response_curves_png(curves: Sequence[ResponseCurve], kpi: str) -> bytes:
    """Small multiples: solid where the weekly spend was observed (shaded), dashed beyond it."""
    columns = 2 if len(curves) > 1 else 1
    rows = int(np.ceil(len(curves) / columns))
    fig = _figure(8.0, 2.9 * rows + 0.3)
    colours = _channel_colours([c.channel for c in curves])
    for i, curve in enumerate(curves):
        ax = fig.add_subplot(rows, columns, i + 1)
        colour = colours[curve.channel]
        inside = (curve.spend >= curve.observed_min) & (curve.spend <= curve.observed_max)
        ax.axvspan(curve.observed_min, curve.observed_max, color=colour, alpha=0.10, lw=0,
                   label="observed weekly spend")
        ax.fill_between(curve.spend, curve.low, curve.high, color=colour, alpha=0.18, lw=0, label="interval")
        ax.plot(curve.spend, np.where(inside, curve.response, np.nan), color=colour, lw=2, label="supported by data")
        ax.plot(curve.spend, np.where(inside, np.nan, curve.response), color=colour, lw=1.3, ls="--",
                label="extrapolated")
        mean_response = float(np.interp(curve.observed_mean, curve.spend, curve.response))
        ax.plot([curve.observed_mean], [mean_response], "o", color="#222", ms=4, label="average week")
        ax.set_title(curve.channel, fontsize=10)
        ax.set_xlabel("weekly spend (held constant)", fontsize=8)
        ax.set_ylabel(f"weekly incremental {kpi}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, float(curve.spend.max()))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
    return _png(fig)


def _pair_verdicts(dag_tests: pd.DataFrame | None) -> dict[frozenset[str], bool]:
    """Tested node pair → rejected by any of its tests."""
    if dag_tests is None or dag_tests.empty:
        return {}
    out: dict[frozenset[str], bool] = {}
    for x, y, rejected in zip(dag_tests["x"], dag_tests["y"], dag_tests["rejected"]):
        key = frozenset((str(x), str(y)))
        out[key] = out.get(key, False) or bool(rejected)
    return out


def dag_graph(edges: pd.DataFrame) -> tuple[nx.DiGraph, dict[str, str]]:
    """The DAG and each node's role from the published edge table."""
    g = nx.DiGraph()
    roles: dict[str, str] = {}
    for r in edges.itertuples(index=False):
        g.add_edge(str(r.source), str(r.target))
        roles[str(r.source)] = str(r.source_role)
        roles[str(r.target)] = str(r.target_role)
    return g, roles


# --- formatting ------------------------------------------------------------------------------------

P_COLUMNS = {"p_value", "p_adjusted"}
LONG_TEXT = 40
"""Text cells longer than this wrap (messages, recommendations) instead of widening the table."""
STATUS_CLASS = {Status.PASS.value: "pass", Status.REVIEW.value: "review", Status.FAIL.value: "fail"}
FLAG_COLUMNS: dict[str, tuple[bool, str]] = {
    "rejected": (True, "fail"), "ok": (False, "fail"), "agrees": (False, "fail"),
    "outside_previous_interval": (True, "review"), "significant": (False, "review"), "selected": (True, "pass")}
"""Boolean column → (the value that signals something, the class it is shown with)."""


def _esc(value: object) -> str:
    return html.escape(str(value))


def format_p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


SIGNED_COLUMNS = {"change"}


def _decimals(values: pd.Series) -> int:
    """One number of decimals per column, from its largest magnitude: aligned and readable."""
    finite = pd.to_numeric(values, errors="coerce").abs()
    largest = float(finite[np.isfinite(finite)].max()) if finite.notna().any() else 0.0
    return 0 if largest >= 1000 else 1 if largest >= 100 else 3


def _number(value: float, decimals: int, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:{'+' if signed else ''},.{decimals}f}"


def _cell(column: str, value: object, decimals: int = 3) -> tuple[str, str]:
    """Display text and CSS class of one table cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "—", ""
    if isinstance(value, (bool, np.bool_)):
        flag = FLAG_COLUMNS.get(column)
        css = flag[1] if flag is not None and bool(value) is flag[0] else ""
        return ("yes" if value else "no"), css
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        stamp = pd.Timestamp(value)
        return (str(stamp.date()) if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")), ""
    if isinstance(value, (int, np.integer)):
        return str(value), "num"
    if isinstance(value, (float, np.floating)):
        return (format_p(float(value)) if column in P_COLUMNS
                else _number(float(value), decimals, column in SIGNED_COLUMNS)), "num"
    text = str(value)
    if column in {"status", "robustness"}:
        return text, STATUS_CLASS.get(text.upper(), "")
    return text, "long" if len(text) > LONG_TEXT else ""


def html_table(df: pd.DataFrame, caption: str = "") -> str:
    """A table in a horizontally scrolling box, with PASS/REVIEW/FAIL and warning flags coloured."""
    head = "".join(f"<th>{_esc(str(c).replace('_', ' '))}</th>" for c in df.columns)
    decimals = {c: _decimals(df[c]) if pd.api.types.is_float_dtype(df[c]) else 3 for c in df.columns}
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, row):
            text, css = _cell(str(column), value, decimals[column])
            cells.append(f'<td class="{css}">{_esc(text)}</td>' if css else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _na(what: str = "") -> str:
    text = f"{what}: {NOT_AVAILABLE[0].lower()}{NOT_AVAILABLE[1:]}" if what else NOT_AVAILABLE
    return f'<p class="na">{_esc(text)}</p>'


def _available(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty


def _fmt_roi(value: float) -> str:
    return f"{value:.2f}"


def _interval(low: float, high: float) -> str:
    """"1.64–1.91"; with a negative bound "-0.20 to 1.00" (a dash after a minus sign misreads)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "—"
    return f"{_fmt_roi(low)} to {_fmt_roi(high)}" if low < 0 else f"{_fmt_roi(low)}–{_fmt_roi(high)}"


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


# --- the summary -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Robustness:
    """An estimate's robustness: its status, the refuters that did not pass, and what to do."""

    status: Status | None
    concerns: tuple[str, ...] = ()
    recommendation: str = ""


NO_ACTION = {"", "no action", "no action.", "nan", "none"}


def channel_status(inputs: ReportInputs, channel: str, effect: str = TOTAL) -> Robustness:
    """The estimate's robustness status (its own column, else the worst of its refuters), the
    refuters that did not pass and the first recommendation they make."""
    status: Status | None = None
    est = inputs.estimates
    if "robustness" in est.columns:
        match = est[(est["channel"] == channel) & (est["effect"] == effect)]["robustness"].dropna()
        status = Status.worst(str(v).upper() for v in match)
    ref = inputs.refutations
    if not _available(ref) or not {"channel", "status"} <= set(ref.columns):
        return Robustness(status)
    mine = ref[ref["channel"] == channel]
    if "effect" in mine.columns:
        mine = mine[mine["effect"] == effect]
    statuses = [str(v).upper() for v in mine["status"]]
    worst = Status.worst(statuses)
    names = mine["refuter"] if "refuter" in mine.columns else mine["status"]
    concerns = tuple(str(r) if worst is not None and v == worst.value else f"{r} ({v.lower()})"
                     for r, v in zip(names, statuses) if v != Status.PASS.value)
    advice = [str(a) for a, v in zip(mine.get("recommendation", pd.Series([""] * len(mine))), statuses)
              if v != Status.PASS.value and str(a).strip().lower() not in NO_ACTION]
    return Robustness(status if status is not None else worst, concerns, advice[0] if advice else "")


def _robustness_phrase(status: Status | None, concerns: Sequence[str]) -> str:
    if status is None:
        return "robustness not assessed in this run"
    if status is Status.PASS:
        return "robust to all refuters"
    listed = f": {', '.join(concerns)}" if concerns else ""
    return f"refuters ask for review{listed}" if status is Status.REVIEW else f"failed refutation{listed}"


def _change_phrase(changes: EstimateChanges | None, channel: str, effect: str, level: str) -> tuple[str, float | None, bool]:
    if changes is None or changes.previous is None:
        return "first run, nothing to compare with", None, False
    row = changes.row(channel, effect)
    if row is None or pd.isna(row["previous_roi"]):
        return "new since the previous run", None, False
    change = float(row["change"])
    when = changes.previous.run_time.strftime("%Y-%m-%d")
    if abs(change) < UNCHANGED:
        text = f"unchanged since the previous run ({when})"
    else:
        text = f"{'up' if change > 0 else 'down'} {abs(change):.2f} since the previous run ({when})"
    outside = bool(row["outside_previous_interval"])
    if outside:
        text += f", outside that run's {level} interval {_interval(row['previous_roi_ci_low'], row['previous_roi_ci_high'])}"
    return text, change, outside


def channel_summaries(inputs: ReportInputs) -> list[ChannelSummary]:
    """One headline per channel (total effect), e.g. "tv returned 1.82 sales per unit spent (95%
    interval 1.64–1.91); significant (p < 0.001); robust to all refuters; up 0.03 since ..."."""
    out = []
    est = inputs.estimates
    for r in inputs.total_rows().itertuples(index=False):
        if not np.isfinite(float(r.roi)):
            reason = str(getattr(r, "reason", "") or "").strip()
            out.append(ChannelSummary(str(r.channel), float("nan"), float("nan"), float("nan"), None, Status.FAIL,
                                      None, False, f"{r.channel} could not be estimated in this run"
                                      f"{': ' + reason if reason else ''}.", ("not estimated",)))
            continue
        p = float(r.p_value) if pd.notna(r.p_value) else float("nan")
        significant = None if not np.isfinite(p) else p < inputs.alpha
        sig = ("significance not computed" if significant is None else
               f"{'significant' if significant else 'not significant'} (p {format_p(p) if p < 0.001 else '= ' + format_p(p)})")
        robustness = channel_status(inputs, r.channel)
        change_text, change, outside = _change_phrase(inputs.changes, r.channel, TOTAL, inputs.level_label)
        split = est[(est["channel"] == r.channel) & est["effect"].isin(["direct", "indirect"])].set_index("effect")
        parts = ""
        if {"direct", "indirect"} <= set(split.index):
            through = str(split.loc["direct", "mediators"]).replace("|", ", ") if "mediators" in split.columns else ""
            parts = (f" — {_fmt_roi(split.loc['direct', 'roi'])} directly and {_fmt_roi(split.loc['indirect', 'roi'])}"
                     f" through {through or 'its mediators'}")
        sentence = (f"{r.channel} returned {_fmt_roi(r.roi)} {inputs.run.kpi} per unit spent ({inputs.level_label} "
                    f"interval {_interval(r.roi_ci_low, r.roi_ci_high)}){parts}; {sig}; "
                    f"{_robustness_phrase(robustness.status, robustness.concerns)}; {change_text}.")
        out.append(ChannelSummary(str(r.channel), float(r.roi), float(r.roi_ci_low), float(r.roi_ci_high),
                                  significant, robustness.status, change, outside, sentence, robustness.concerns,
                                  robustness.recommendation))
    return out


def flagged_rows(frame: pd.DataFrame | None, flag: str, bad: bool) -> list[tuple[Level, dict[str, Any]]]:
    """Rows of a check table that need attention: by their PASS/REVIEW/FAIL `status` when the table
    has one, else those whose boolean `flag` equals `bad` (shown as failures)."""
    if not _available(frame):
        return []
    if "status" in frame.columns:
        levels = {Status.FAIL.value: Level.FAIL, Status.REVIEW.value: Level.REVIEW}
        return [(levels[str(r["status"]).upper()], r) for r in frame.to_dict("records")
                if str(r["status"]).upper() in levels]
    if flag in frame.columns:
        return [(Level.FAIL, r) for r in frame.to_dict("records") if bool(r[flag]) is bad]
    return []


def _said(row: Mapping[str, Any], key: str) -> str:
    value = str(row.get(key, "") or "").strip()
    return "" if value.lower() in NO_ACTION else value


def attention_items(inputs: ReportInputs) -> list[AttentionItem]:
    """Everything a reader should look at before trusting the numbers, worst first."""
    items: list[AttentionItem] = []
    for s in channel_summaries(inputs):
        advice = f" {s.recommendation[0].upper()}{s.recommendation[1:]}" if s.recommendation else ""
        if not np.isfinite(s.roi):
            items.append(AttentionItem(Level.FAIL, s.sentence, "summary"))
            continue
        if s.status is Status.FAIL:
            items.append(AttentionItem(Level.FAIL, f"{s.channel}: failed refutation ({', '.join(s.notes) or 'see table'}); "
                                       f"do not act on its ROI until explained.{advice}", "refuters"))
        elif s.status is Status.REVIEW:
            items.append(AttentionItem(Level.REVIEW, f"{s.channel}: refuters ask for review "
                                       f"({', '.join(s.notes) or 'see table'}).{advice}", "refuters"))
        if s.outside_previous_interval:
            items.append(AttentionItem(Level.REVIEW, f"{s.channel}: ROI {_fmt_roi(s.roi)} moved outside the previous "
                                       "run's interval.", "history"))
        if s.significant is False:
            items.append(AttentionItem(Level.REVIEW, f"{s.channel}: effect not significant at {inputs.level_label}; its "
                                       "ROI may be zero.", "summary"))
    if inputs.changes is not None:
        for r in inputs.changes.flagged.itertuples(index=False):
            if r.effect != TOTAL:
                items.append(AttentionItem(Level.REVIEW, f"{r.channel} ({r.effect}): ROI {_fmt_roi(r.roi)} moved outside "
                                           "the previous run's interval.", "history"))
    verdicts = _pair_verdicts(inputs.dag_tests)
    rejected = [" ⟂ ".join(sorted(p)) for p, r in verdicts.items() if r]
    if rejected:
        items.append(AttentionItem(Level.FAIL, f"{len(rejected)} of {len(verdicts)} independences implied by the DAG "
                                   f"are rejected by the data ({'; '.join(rejected)}): the DAG may miss an edge.",
                                   "independence"))
    thin: dict[tuple[Level, str], int] = {}
    for level, row in flagged_rows(inputs.overlap, "ok", bad=False):
        key = (level, str(row.get("channel", "?")))
        thin[key] = thin.get(key, 0) + 1
    for (level, channel), count in thin.items():
        items.append(AttentionItem(level, f"{channel}: overlap too thin in {count} stratum(s) of its adjustment set; "
                                   "the estimate extrapolates there.", "overlap"))
    for level, row in flagged_rows(inputs.experiments, "agrees", bad=False):
        period = "–".join(_cell("date", row.get(k))[0] for k in ("start", "end"))
        detail = "; ".join(t for t in (_said(row, "message"), _said(row, "recommendation")) if t)
        verdict = "disagrees with the model" if level is Level.FAIL else "needs review"
        items.append(AttentionItem(level, f"{row.get('channel', '?')}: lift experiment {period} {verdict}"
                                   f"{': ' + detail if detail else ''}.", "experiments"))
    missing = [name for name, frame in (("refuters", inputs.refutations), ("independence tests", inputs.dag_tests),
                                        ("overlap", inputs.overlap), ("lift experiments", inputs.experiments))
               if frame is None]
    if missing:
        items.append(AttentionItem(Level.INFO, f"Not assessed in this run: {', '.join(missing)}.", "inputs"))
    order = list(Level)
    return sorted(items, key=lambda item: order.index(item.level))


# --- sections --------------------------------------------------------------------------------------

def _status_text(status: Status | None) -> str:
    return "not assessed" if status is None else status.value


def _summary_section(inputs: ReportInputs) -> Section:
    summaries = channel_summaries(inputs)
    cards = "".join(
        f'<li class="{STATUS_CLASS.get(s.status.value, "") if s.status else ""}">'
        f"<strong>{_esc(s.channel)}</strong> {_esc(s.sentence.removeprefix(s.channel))}</li>" for s in summaries)
    est = inputs.estimates
    table = pd.DataFrame({
        "channel": est["channel"], "effect": est["effect"], "ROI": est["roi"].astype(float),
        f"{inputs.level_label} interval": [_interval(lo, hi) for lo, hi in
                                           zip(est["roi_ci_low"], est["roi_ci_high"])],
        "p_value": est["p_value"].astype(float),
        "significant": [bool(p < inputs.alpha) if pd.notna(p) else None for p in est["p_value"]],
        "naive ROI": est["naive_roi"].astype(float) if "naive_roi" in est.columns else np.nan,
        "incremental KPI": est["incremental_kpi"].astype(float),
        "robustness": [_status_text(channel_status(inputs, c, e).status) for c, e in zip(est["channel"], est["effect"])],
    })
    if inputs.changes is not None and inputs.changes.previous is not None:
        changes = inputs.changes.table.set_index(["channel", "effect"])
        keys = list(zip(est["channel"], est["effect"]))
        table["change"] = [changes["change"].get(k, np.nan) for k in keys]
        table["outside_previous_interval"] = [bool(changes["outside_previous_interval"].get(k, False)) for k in keys]
    intro = (f"ROI is the incremental {inputs.run.kpi} per unit of spend over the modelled weeks; the total effect "
             "flows through every path of the DAG. Significant: the test of “no effect” rejects at "
             f"{inputs.alpha * 100:g}%.")
    return Section("summary", "Summary", f'<ul class="cards">{cards}</ul>' + html_table(table), intro)


def _attention_section(inputs: ReportInputs) -> Section:
    items = attention_items(inputs)
    if not [i for i in items if i.level is not Level.INFO]:
        lead = '<p class="pass banner">Nothing failed and nothing needs review in what this run assessed.</p>'
    else:
        lead = ""
    rows = "".join(f'<li class="{i.level.value}"><a href="#{i.anchor}">{_esc(i.text)}</a></li>' for i in items)
    return Section("attention", "What needs attention", lead + (f'<ul class="attention">{rows}</ul>' if rows else ""))


def _dag_section(inputs: ReportInputs) -> Section:
    if not _available(inputs.dag_edges):
        return Section("dag", "Causal DAG", _na("The DAG table"))
    g, roles = dag_graph(inputs.dag_edges)
    png = draw_dag_png(g, inputs.dag_tests, roles)
    verdicts = _pair_verdicts(inputs.dag_tests)
    if inputs.dag_tests is None:
        caption = "The independences this DAG implies were not tested in this run."
    else:
        rejected = sum(verdicts.values())
        caption = (f"{len(verdicts)} independences implied by the DAG were tested: {len(verdicts) - rejected} consistent "
                   f"with the data, {rejected} rejected (see <a href=\"#independence\">the tests</a>).")
    intro = ("The causal assumptions: an arrow means “can cause”. Effects are identified from this graph; "
             "a rejected implied independence is evidence of a missing arrow.")
    return Section("dag", "Causal DAG and its tested implications", _img(png, "causal DAG") + f"<p>{caption}</p>", intro)


def _forest_section(inputs: ReportInputs) -> Section:
    intro = ("Each channel's causal ROI with its interval (block bootstrap), beside the naive ROI of one regression of "
             "the KPI on every channel without the DAG. Where they differ, the DAG changed the answer (for example by "
             "crediting a channel with the effect it has through a mediator). Where a channel's adstock and saturation "
             "were selected from the data, its ROI is averaged over bootstrap resamples that each repeat the selection "
             "(interval method “smoothed”): an estimate at the one selected setting jumps with that choice.")
    return Section("forest", "ROI by channel: causal vs naive",
                   _img(forest_plot_png(inputs.estimates, inputs.run.ci_level), "forest plot of ROI intervals"), intro)


def _contributions_section(inputs: ReportInputs) -> Section:
    if not _available(inputs.transformed) or "ate" not in inputs.estimates.columns:
        return Section("contributions", "Contributions over time", _na("The transformed media table"))
    intro = (f"Weekly {inputs.run.kpi} attributed to each channel (total effect × the channel's transformed media that "
             f"week), stacked under the observed {inputs.run.kpi}; the rest is baseline, season, trend, price and noise.")
    return Section("contributions", "Contributions over time",
                   _img(contributions_png(inputs.transformed, inputs.estimates, inputs.run.kpi),
                        "stacked weekly contributions"), intro)


def _response_section(inputs: ReportInputs) -> Section:
    curves = []
    for r in inputs.total_rows().to_dict("records"):
        column = inputs.run.spend_columns.get(r["channel"])
        if not np.isfinite(float(r["ate"])) or not np.isfinite(float(r["roi"])) or column is None or column not in inputs.raw.columns or r["channel"] not in set(inputs.transforms["channel"]):
            continue
        curves.append(response_curve(r["channel"], inputs.raw[column].to_numpy(dtype=float), inputs.transforms,
                                     pd.Series(r)))
    if not curves:
        return Section("response", "Response curves", _na("Spend and transform parameters"))
    ranges = html_table(pd.DataFrame([{"channel": c.channel, "lowest week": c.observed_min,
                                       "average week": c.observed_mean, "highest week": c.observed_max}
                                      for c in curves]), "Observed weekly spend")
    intro = (f"Weekly incremental {inputs.run.kpi} if a channel ran at the same weekly spend every week (adstock at its "
             "steady state, then saturation), with its interval. The solid part lies inside the weekly spend the data "
             "cover (shaded): trust it there; the dashed part extrapolates.")
    return Section("response", "Response curves", _img(response_curves_png(curves, inputs.run.kpi),
                                                       "response curves per channel") + ranges, intro)


def _table_section(section_id: str, title: str, frame: pd.DataFrame | None, intro: str,
                   first: Sequence[str] = ()) -> Section:
    if frame is None:
        return Section(section_id, title, _na(), intro)
    if frame.empty:
        return Section(section_id, title, '<p class="na">The run produced this table, with no rows.</p>', intro)
    order = [c for c in first if c in frame.columns] + [c for c in frame.columns if c not in first]
    return Section(section_id, title, html_table(frame[order]), intro)


def _history_section(inputs: ReportInputs) -> Section:
    changes = inputs.changes
    if changes is None:
        return Section("history", "Change since the previous run", _na("The estimates history"))
    if changes.previous is None:
        body = "<p>This is the first run published to this warehouse: there is nothing to compare with yet.</p>"
    else:
        prev = changes.previous
        flagged = len(changes.flagged)
        verdict = (f'<p class="review banner">{flagged} estimate(s) moved outside the previous run’s interval.</p>'
                   if flagged else '<p class="pass banner">Every estimate is inside the previous run’s interval.</p>')
        body = (f"<p>Compared with run <code>{_esc(prev.run_id)}</code> published {_esc(_when(prev.run_time))}.</p>"
                + verdict + html_table(changes.table))
    history = inputs.roi_history
    if _available(history) and history["run_id"].nunique() > 1:
        labels = {rid: f"{pd.Timestamp(t):%Y-%m-%d %H:%M} ({str(rid)[:8]})"
                  for rid, t in zip(history["run_id"], history["run_time"])}
        pivot = (history.assign(run=history["run_id"].map(labels))
                 .pivot_table(index="channel", columns="run", values="roi", sort=False).reset_index())
        pivot.columns = [str(c) for c in pivot.columns]
        body += html_table(pivot, f"Total-effect ROI over the last {history['run_id'].nunique()} runs")
    return Section("history", "Change since the previous run", body)


def _inputs_section(inputs: ReportInputs) -> Section:
    first, last = inputs.data_range()
    run = inputs.run
    facts = [("Run", f"<code>{_esc(run.run_id)}</code>"), ("Published", _esc(_when(run.run_time) or "—")),
             ("Data", f"{len(inputs.raw)} weeks, {first} to {last}"), ("KPI", f"<code>{_esc(run.kpi)}</code>"),
             ("Config", f"<code>{_esc(run.config_path)}</code>"), ("Interval level", inputs.level_label)]
    spend = pd.DataFrame([{"channel": channel, "spend column": column,
                           "total spend": float(inputs.raw[column].sum()), "mean weekly spend": float(inputs.raw[column].mean()),
                           "weeks with spend": int((inputs.raw[column] > 0).sum())}
                          for channel, column in run.spend_columns.items() if column in inputs.raw.columns])
    body = ('<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
            + "<h3>Spend</h3>" + (html_table(spend) if not spend.empty else _na())
            + "<h3>Transform parameters used</h3>" + html_table(inputs.transforms)
            + "<h3>Transform selection</h3>" + _selection(inputs.transform_selection)
            + f"<h3>Config</h3><pre>{_esc(run.config_text)}</pre>")
    return Section("inputs", "Run inputs", body)


def _selection(frame: pd.DataFrame | None) -> str:
    """The candidate chosen per channel (lowest out-of-sample error) and how many were compared;
    the full grid is in transform_selection.csv."""
    if frame is None:
        return _na("Transform selection")
    if frame.empty or not {"channel", "selected"} <= set(frame.columns):
        return html_table(frame)
    chosen = frame[frame["selected"].astype(bool)].drop(columns=["selected"])
    counts = frame.groupby("channel").size().rename("candidates")
    table = chosen.merge(counts, left_on="channel", right_index=True, how="left")
    return ("<p>Chosen by time-series cross-validation (one objective: out-of-sample error); "
            "every candidate is in <code>transform_selection.csv</code>.</p>" + html_table(table))


def sections(inputs: ReportInputs) -> list[Section]:
    return [
        _attention_section(inputs),
        _summary_section(inputs),
        _dag_section(inputs),
        _forest_section(inputs),
        _contributions_section(inputs),
        _response_section(inputs),
        _table_section("refuters", "Refutation tests", inputs.refutations,
                       "Each estimate re-run under a perturbation that should (placebo treatment, random common cause, "
                       "data subset) or may (unobserved common cause) leave it unchanged. FAIL: the estimate moved when "
                       "it should not have.", ["channel", "effect", "refuter", "status"]),
        _table_section("independence", "Independence tests implied by the DAG", inputs.dag_tests,
                       "Each row tests “x is independent of y given the listed nodes”, which the DAG implies. "
                       "Rejected (after multiple-testing adjustment) means the data contradict the DAG there.",
                       ["x", "y", "given", "test", "rejected"]),
        _table_section("overlap", "Overlap (positivity)", inputs.overlap,
                       "For each channel and stratum of its adjustment set: enough weeks, with both low and high spend. "
                       "Where overlap is thin the estimate extrapolates.", ["channel", "stratum", "ok"]),
        _table_section("identification", "Identification", inputs.identification,
                       "How each effect is identified from the DAG: the estimand and the adjustment set.", ["channel"]),
        _table_section("experiments", "Lift experiments vs the model", inputs.experiments,
                       "Each configured lift test beside the model's incremental KPI over the same weeks; a test whose "
                       "measured lift the model's interval does not support is flagged.",
                       ["channel", "start", "end", "status", "agrees"]),
        _history_section(inputs),
        _inputs_section(inputs),
    ]


STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1000px;
padding:1rem;color:#1d232b;line-height:1.45;background:#fff}
header p{margin:.2rem 0;color:#4a5563}
h1{font-size:1.45rem;margin:.2rem 0 .4rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.25rem;border-bottom:2px solid #e3e8ef}
h3{font-size:.95rem;margin:1.2rem 0 .4rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem .8rem;font-size:.85rem;padding:.5rem 0;border-bottom:1px solid #e3e8ef}
a{color:#1f5fa8}
.intro{color:#4a5563;font-size:.9rem;margin:.2rem 0 .6rem}
ul.cards{list-style:none;padding:0;margin:0 0 1rem;display:grid;gap:.5rem}
ul.cards li{border:1px solid #e3e8ef;border-left:5px solid #9aa5b1;border-radius:6px;padding:.55rem .75rem}
ul.cards li.pass{border-left-color:#2e8b57} ul.cards li.review{border-left-color:#d4a017}
ul.cards li.fail{border-left-color:#c0392b}
ul.attention{padding-left:1.1rem} ul.attention li{margin:.25rem 0}
ul.attention li.fail a{color:#a93226;font-weight:600} ul.attention li.review a{color:#8a6d00}
ul.attention li.info a{color:#4a5563}
.banner{padding:.45rem .7rem;border-radius:6px;display:inline-block}
p.pass{background:#e6f4ea;color:#1e6b3a} p.review{background:#fff5d6;color:#6b5300}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4rem 0 1rem;max-width:100%}
table{border-collapse:collapse;font-size:.82rem;min-width:50%}
caption{text-align:left;font-weight:600;padding:.2rem 0;font-size:.85rem}
th,td{padding:.28rem .55rem;border-bottom:1px solid #edf0f4;text-align:left;white-space:nowrap}
th{background:#f5f7fa;font-weight:600;white-space:normal;vertical-align:bottom}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.long{white-space:normal;min-width:16rem;max-width:28rem}
td.pass{color:#1e6b3a;font-weight:600} td.review{background:#fff5d6;color:#6b5300;font-weight:600}
td.fail{background:#fde8e6;color:#a93226;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:.4rem 0}
pre{background:#f5f7fa;padding:.7rem;overflow-x:auto;font-size:.78rem;border-radius:6px}
p.na{color:#6b7480;font-style:italic}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .9rem;font-size:.9rem}
dl.facts dt{font-weight:600} dl.facts dd{margin:0;overflow-wrap:anywhere}
code{font-size:.85em}
@media (max-width:600px){body{padding:.6rem;font-size:.95rem}h1{font-size:1.2rem}nav{font-size:.8rem}}
"""


def render_report(inputs: ReportInputs) -> str:
    """The whole report as one HTML string."""
    first, last = inputs.data_range()
    parts = sections(inputs)
    nav = "".join(f'<a href="#{s.id}">{_esc(s.title)}</a>' for s in parts)
    body = "".join(f'<section id="{s.id}"><h2>{_esc(s.title)}</h2>'
                   + (f'<p class="intro">{_esc(s.intro)}</p>' if s.intro else "") + s.body + "</section>"
                   for s in parts)
    published = f" · published {_esc(_when(inputs.run.run_time))}" if inputs.run.run_time else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Causal MMM report · {_esc(inputs.run.kpi)} · {last}</title>
<style>{STYLE}</style></head><body>
<header><h1>Causal marketing mix report</h1>
<p>KPI <code>{_esc(inputs.run.kpi)}</code> · {len(inputs.raw)} weeks from {first} to {last}{published}</p>
<p>Run <code>{_esc(inputs.run.run_id)}</code></p></header>
<nav>{nav}</nav>
{body}
</body></html>
"""
