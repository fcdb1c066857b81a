"""The self-contained HTML report of a published run: one file, plots inline as PNG, no scripts and
no network, readable on a laptop and a phone.

This module is the report's view-model: it decides what the page says (sections of typed blocks:
paragraphs, tables of formatted cells, images, cards) from the published tables. The page itself is
laid out by the jinja2 template `templates/report.html.j2` and styled by `templates/report.css`.

Order: what needs attention, a plain-language summary per channel, then the evidence (DAG and its
tested implications, ROI intervals beside the naive regression with the reason they differ,
contributions over time, response curves), the check tables (refuters, independence tests, overlap,
identification, lift experiments), the change since the previous run, and the run's inputs. A
section whose table this run did not produce says so instead of disappearing.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import SelectionBand
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.dag.drawing import draw_dag_png, implications
from cmmm_pipeline.dag.graph import graph_from_table
from cmmm_pipeline.dag.overlap import published_support
from cmmm_pipeline.data.history import UNCHANGED, EstimateChanges
from cmmm_pipeline.media.features import WEEK
from cmmm_pipeline.publish.plots import (
    DIRECT,
    TOTAL,
    ResponseCurve,
    contribution_parts,
    contributions_svg,
    forest_plot_png,
    quarterly_effects_svg,
    response_curve,
    response_curves_svg,
    smoothing_scale,
)

__all__ = [
    "NOT_AVAILABLE",
    "ReportInputs",
    "ResponseCurve",
    "RunInfo",
    "Status",
    "attention_items",
    "attention_lines",
    "channel_summaries",
    "dag_graph",
    "forest_plot_png",
    "html_table",
    "naive_comparisons",
    "render_report",
    "response_curve",
    "smoothing_scale",
]

NOT_AVAILABLE = "Not available in this run."
INDIRECT = "indirect"
NEGLIGIBLE_ROI = 0.005
"""A part of a difference between two ROIs smaller than this prints as 0.00 and is not a reason."""
EXTRAPOLATED = "extrapolated"
CHECK_RESULTS = "check_results"
"""The published table of the run's asset-check results."""
CHECK_RESULT_COLUMNS = ("asset", "check", "severity", "passed", "failed_rules", "description")


class Level(Enum):
    """How loudly an attention item is shown."""

    FAIL = "fail"
    WARN = "warn"
    """An asset check of WARN severity that did not pass (it blocks nothing)."""
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
    selection_band: SelectionBand = SelectionBand.MROI
    """Which intervals reach the near-equivalent transforms' estimates (`estimation.selection_band`)."""


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
    dag_suggestions: pd.DataFrame | None = None
    """The edits `cmmm suggest` would propose; None when the run did not record them."""
    overlap: pd.DataFrame | None = None
    identification: pd.DataFrame | None = None
    refutations: pd.DataFrame | None = None
    experiments: pd.DataFrame | None = None
    transform_selection: pd.DataFrame | None = None
    missing_drivers: pd.DataFrame | None = None
    changes: EstimateChanges | None = None
    roi_history: pd.DataFrame | None = None
    effects_by_period: pd.DataFrame | None = None
    synergies: pd.DataFrame | None = None
    feedback: pd.DataFrame | None = None
    """Channels whose budget follows sales, g-estimated; None when the run did not record them."""
    checks: pd.DataFrame | None = None
    """The run's asset-check results (`check_results`: asset, check, severity, passed, failed_rules,
    description), recorded by the publishing step; None when the run did not record them."""
    budget_plan: pd.DataFrame | None = None

    @staticmethod
    def from_tables(run: RunInfo, tables: Mapping[str, pd.DataFrame], changes: EstimateChanges | None = None,
                    roi_history: pd.DataFrame | None = None) -> ReportInputs:
        """Build from published table name → frame; `estimates`, `raw_spend` and
        `transform_parameters` are required, every other table is optional."""
        return ReportInputs(
            run=run, estimates=tables["estimates"], raw=tables["raw_spend"], transforms=tables["transform_parameters"],
            transformed=tables.get("transformed_media"), dag_edges=tables.get("dag_edges"),
            dag_tests=tables.get("dag_tests"), dag_suggestions=tables.get("dag_suggestions"),
            overlap=tables.get("overlap"),
            identification=tables.get("identification"), refutations=tables.get("refutations"),
            experiments=tables.get("experiments"), transform_selection=tables.get("transform_selection"),
            missing_drivers=tables.get("missing_drivers"), changes=changes, roi_history=roi_history,
            effects_by_period=tables.get("effects_by_period"), synergies=tables.get("synergies"),
            feedback=tables.get("feedback"), budget_plan=tables.get("budget_plan"), checks=tables.get(CHECK_RESULTS))

    @property
    def alpha(self) -> float:
        return 1.0 - self.run.ci_level

    @cached_property
    def forest_png(self) -> bytes:
        """The ROI forest plot, drawn once for the report and for the run's metadata in the UI."""
        return forest_plot_png(self.estimates, self.run.ci_level)

    @property
    def level_label(self) -> str:
        return f"{self.run.ci_level * 100:g}%"

    def data_range(self) -> tuple[str, str]:
        weeks = pd.to_datetime(self.raw[WEEK])
        return str(weeks.min().date()), str(weeks.max().date())

    def total_rows(self) -> pd.DataFrame:
        return self.estimates[self.estimates["effect"] == TOTAL].reset_index(drop=True)

    def roles(self) -> dict[str, str]:
        """Node → role from the DAG table (empty when the run has none)."""
        return dag_graph(self.dag_edges)[1] if _available(self.dag_edges) else {}

    def controls(self) -> list[str]:
        """This config's control nodes, as the DAG names them."""
        return [n for n, r in self.roles().items() if r == "control"]


# --- blocks: what a section shows, for the template to lay out ------------------------------------

@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str
    css: str = ""
    link_text: str = ""
    link_anchor: str = ""


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    kind: ClassVar[str] = "image"
    src: str
    alt: str


@dataclass(frozen=True)
class Heading:
    kind: ClassVar[str] = "heading"
    text: str


@dataclass(frozen=True)
class Preformatted:
    kind: ClassVar[str] = "pre"
    text: str


@dataclass(frozen=True)
class Card:
    css: str
    title: str
    text: str


@dataclass(frozen=True)
class Cards:
    kind: ClassVar[str] = "cards"
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class AttentionItem:
    level: Level
    text: str
    anchor: str


@dataclass(frozen=True)
class AttentionList:
    kind: ClassVar[str] = "attention"
    items: tuple[AttentionItem, ...]


@dataclass(frozen=True)
class Reasons:
    kind: ClassVar[str] = "reasons"
    items: tuple[tuple[str, str], ...]
    """(lead, text) pairs shown as a list."""


@dataclass(frozen=True)
class Fact:
    term: str
    text: str
    code: bool = False


@dataclass(frozen=True)
class Facts:
    kind: ClassVar[str] = "facts"
    items: tuple[Fact, ...]


Block = Paragraph | Table | Image | Heading | Preformatted | Cards | AttentionList | Reasons | Facts


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: tuple[Block, ...] = ()
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


def dag_graph(edges: pd.DataFrame) -> tuple[nx.DiGraph, dict[str, str]]:
    """The DAG and each node's role from the published edge table."""
    roles: dict[str, str] = {}
    for r in edges.itertuples(index=False):
        roles[str(r.source)] = str(r.source_role)
        roles[str(r.target)] = str(r.target_role)
    table = pd.DataFrame({"source": edges["source"].astype(str), "target": edges["target"].astype(str)})
    return graph_from_table(table, roles), roles


def _pair_verdicts(dag_tests: pd.DataFrame | None) -> dict[frozenset[str], bool]:
    """Tested node pair → rejected by any of its tests."""
    out: dict[frozenset[str], bool] = {}
    for i in implications(dag_tests):
        key = frozenset((i.x, i.y))
        out[key] = out.get(key, False) or i.rejected
    return out


# --- formatting ------------------------------------------------------------------------------------

P_COLUMNS = {"p_value", "p_adjusted"}
LONG_TEXT = 40
"""Text cells longer than this wrap (messages, recommendations) instead of widening the table."""
STATUS_CLASS = {Status.PASS.value: "pass", Status.REVIEW.value: "review", Status.FAIL.value: "fail"}
FLAG_COLUMNS: dict[str, tuple[bool, str]] = {
    "rejected": (True, "fail"), "ok": (False, "fail"), "agrees": (False, "fail"), "identifiable": (False, "fail"),
    "outside_previous_interval": (True, "review"), "significant": (False, "review"), "selected": (True, "pass")}
"""Boolean column → (the value that signals something, the class it is shown with)."""
SIGNED_COLUMNS = {"change"}


def format_p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


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


def table_block(df: pd.DataFrame, caption: str = "") -> Table:
    """A frame as a table of formatted cells; PASS/REVIEW/FAIL and warning flags get their class."""
    decimals = {c: _decimals(df[c]) if pd.api.types.is_float_dtype(df[c]) else 3 for c in df.columns}
    rows = tuple(tuple(Cell(*_cell(str(column), value, decimals[column])) for column, value in zip(df.columns, row))
                 for row in df.itertuples(index=False))
    return Table(tuple(str(c).replace("_", " ") for c in df.columns), rows, caption)


def html_table(df: pd.DataFrame, caption: str = "") -> str:
    """One table as HTML, exactly as the report lays it out."""
    return str(_environment().get_template("blocks.html.j2").module.table(table_block(df, caption)))


def _image(data: bytes, alt: str, media_type: str = "image/png") -> Image:
    return Image(f"data:{media_type};base64,{base64.b64encode(data).decode()}", alt)


def _vector_image(svg: bytes, alt: str) -> Image:
    """An SVG figure, inline as an image: the page stays self-contained and the figure's markup
    stays out of the page's own (no ids or styles to collide, nothing it holds runs)."""
    return _image(svg, alt, "image/svg+xml")


def _na(what: str = "") -> Paragraph:
    text = f"{what}: {NOT_AVAILABLE[0].lower()}{NOT_AVAILABLE[1:]}" if what else NOT_AVAILABLE
    return Paragraph(text, "na")


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


def _listing(items: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _split(value: object) -> list[str]:
    """A `|`-joined cell as a list (empty cells and NaN as none)."""
    return [] if value is None or (isinstance(value, float) and np.isnan(value)) else \
        [v for v in str(value).split("|") if v]


def _float(row: Mapping[str, Any], key: str) -> float:
    try:
        return float(row.get(key, np.nan))
    except (TypeError, ValueError):
        return float("nan")


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key, "")
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


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
        status = Status.worst_of_values(est[(est["channel"] == channel) & (est["effect"] == effect)]["robustness"]
                                        .dropna())
    ref = inputs.refutations
    if not _available(ref) or not {"channel", "status"} <= set(ref.columns):
        return Robustness(status)
    mine = ref[ref["channel"] == channel]
    if "effect" in mine.columns:
        mine = mine[mine["effect"] == effect]
    statuses = [str(v).upper() for v in mine["status"]]
    worst = Status.worst_of_values(statuses)
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


def withheld_reason(row: Mapping[str, Any]) -> str:
    """Why a channel's estimate was withheld or could not be made ('' when it was made)."""
    return _text(row, "withheld_reason") or _text(row, "reason")


def _headline(inputs: ReportInputs, r: Mapping[str, Any], parts: str) -> str:
    """The estimate the sentence leads with: ROI where zero spend is within the data's support,
    marginal ROI (the next unit) where ROI against zero spend is extrapolated."""
    kpi, level = inputs.run.kpi, inputs.level_label
    roi = (f"{_fmt_roi(r['roi'])} {kpi} per unit spent ({level} interval "
           f"{_interval(_float(r, 'roi_ci_low'), _float(r, 'roi_ci_high'))}){parts}")
    mroi = _float(r, "mroi")
    if _text(r, "roi_support").lower() != EXTRAPOLATED or not np.isfinite(mroi):
        return f"{r['channel']} returned {roi}"
    share = _float(r, "extrapolated_share")
    how = (f" ({share:.0%} of its incremental {kpi} comes from spend levels below any that comparable weeks show)"
           if np.isfinite(share) else "")
    return (f"{r['channel']}'s next unit of spend returns {_fmt_roi(mroi)} {kpi} (marginal ROI, {level} interval "
            f"{_interval(_float(r, 'mroi_ci_low'), _float(r, 'mroi_ci_high'))}); its ROI against zero spend, "
            f"{roi}, is extrapolated by the response curve{how}")


def channel_summaries(inputs: ReportInputs) -> list[ChannelSummary]:
    """One headline per channel (total effect), e.g. "tv returned 1.82 sales per unit spent (95%
    interval 1.64–1.91); significant (p < 0.001); robust to all refuters; up 0.03 since ..."."""
    out = []
    est = inputs.estimates
    for r in inputs.total_rows().to_dict("records"):
        channel = str(r["channel"])
        if not np.isfinite(_float(r, "roi")):
            reason = withheld_reason(r)
            verb = "was withheld" if _text(r, "withheld_reason") else "could not be estimated"
            out.append(ChannelSummary(channel, float("nan"), float("nan"), float("nan"), None, Status.FAIL,
                                      None, False, f"{channel} {verb} in this run{': ' + reason if reason else ''}.",
                                      ("not estimated",)))
            continue
        p = _float(r, "p_value")
        significant = None if not np.isfinite(p) else p < inputs.alpha
        sig = ("significance not computed" if significant is None else
               f"{'significant' if significant else 'not significant'} (p {format_p(p) if p < 0.001 else '= ' + format_p(p)})")
        robustness = channel_status(inputs, channel)
        change_text, change, outside = _change_phrase(inputs.changes, channel, TOTAL, inputs.level_label)
        split = est[(est["channel"] == channel) & est["effect"].isin([DIRECT, INDIRECT])].set_index("effect")
        parts = ""
        if {DIRECT, INDIRECT} <= set(split.index):
            through = ", ".join(_split(split.loc[DIRECT, "mediators"])) if "mediators" in split.columns else ""
            parts = (f" — {_fmt_roi(split.loc[DIRECT, 'roi'])} directly and {_fmt_roi(split.loc[INDIRECT, 'roi'])}"
                     f" through {through or 'its mediators'}")
        sentence = (f"{_headline(inputs, r, parts)}; {sig}; "
                    f"{_robustness_phrase(robustness.status, robustness.concerns)}; {change_text}.")
        out.append(ChannelSummary(channel, float(r["roi"]), _float(r, "roi_ci_low"), _float(r, "roi_ci_high"),
                                  significant, robustness.status, change, outside, sentence, robustness.concerns,
                                  robustness.recommendation))
    return out


# --- why causal and naive differ -------------------------------------------------------------------

@dataclass(frozen=True)
class NaiveComparison:
    """A channel's causal ROI against the naive one (one OLS of the KPI on every channel and
    control), the difference split into its sources, and the sentence that names them."""

    channel: str
    roi: float
    naive_roi: float
    smoothing: float
    """Published ROI − ROI at the applied transform: the selection's smoothing, not the DAG."""
    dag: float
    """ROI at the applied transform − naive ROI: what the DAG's adjustment changed."""
    mediated: float
    """Of `dag`, the ROI that flows through mediators the naive regression holds fixed (0 if none)."""
    mediators: tuple[str, ...]
    extra_adjustment: tuple[str, ...]
    """Nodes the naive regression holds fixed that the DAG leaves out, mediators aside."""
    sentence: str


def _node_of(column: str, nodes: Iterable[str]) -> str:
    """The DAG node a model column belongs to (`seasonality_sin1` → `seasonality`)."""
    matches = [n for n in nodes if column == n or column.startswith(f"{n}_")]
    return max(matches, key=len) if matches else column


def _naive_set(inputs: ReportInputs, channel: str, nodes: Sequence[str]) -> set[str]:
    """What the naive regression holds fixed for `channel`: every other channel and every control."""
    columns = {c for value in inputs.estimates.get("adjustment", pd.Series(dtype=object)) for c in _split(value)}
    columns |= set(inputs.estimates["channel"].astype(str))
    return {_node_of(c, nodes) for c in columns} - {channel}


def naive_comparisons(inputs: ReportInputs) -> list[NaiveComparison]:
    """Per channel, why the causal ROI differs from the naive one: a mediator the naive regression
    holds fixed (the halo it misses), another adjustment set, or the smoothing of a selected
    transform — each with its share of the difference, so a difference that is all smoothing is
    never credited to the DAG."""
    est = inputs.estimates
    roles = inputs.roles()
    nodes = sorted(set(roles) | set(est["channel"].astype(str)), key=len, reverse=True)
    out = []
    for r in inputs.total_rows().to_dict("records"):
        channel, roi, naive = str(r["channel"]), _float(r, "roi"), _float(r, "naive_roi")
        if not (np.isfinite(roi) and np.isfinite(naive)):
            continue
        applied = _float(r, "applied_transform_roi")
        applied = applied if np.isfinite(applied) else roi
        smoothing, dag = roi - applied, applied - naive
        mine = est[est["channel"] == channel].set_index("effect")
        mediators: tuple[str, ...] = ()
        mediated = 0.0
        if DIRECT in mine.index:
            mediators = tuple(_split(mine.loc[DIRECT].get("mediators", "")))
            direct = mine.loc[DIRECT]
            direct_applied = _float(direct, "applied_transform_roi")
            direct_applied = direct_applied if np.isfinite(direct_applied) else _float(direct, "roi")
            if np.isfinite(direct_applied):
                mediated = applied - direct_applied
        causal = {_node_of(c, nodes) for c in _split(r.get("adjustment", ""))}
        extra = tuple(sorted(_naive_set(inputs, channel, nodes) - causal - set(mediators)))
        rest = dag - mediated
        out.append(NaiveComparison(channel, roi, naive, smoothing, dag, mediated, mediators, extra,
                                   _comparison_sentence(channel, roi, naive, applied, smoothing, rest, mediated,
                                                        mediators, extra, _text(r, "estimator"))))
    return out


def _comparison_sentence(channel: str, roi: float, naive: float, applied: float, smoothing: float, rest: float,
                         mediated: float, mediators: Sequence[str], extra: Sequence[str], estimator: str) -> str:
    gap = roi - naive
    head = f"causal ROI {_fmt_roi(roi)} against naive {_fmt_roi(naive)}" + (
        f" ({gap:+.2f})" if abs(gap) >= NEGLIGIBLE_ROI else ", the same to two decimals")
    reasons = []
    if mediators:
        through = _listing(mediators)
        reasons.append(f"the naive regression holds {through} fixed, a mediator of {channel}, so it misses the "
                       f"{_fmt_roi(mediated)} per unit that flows through {through} (the halo)")
    if extra and abs(rest) >= NEGLIGIBLE_ROI:
        reasons.append(f"a different adjustment set: the naive regression also holds {_listing(extra)} fixed, "
                       f"which the DAG leaves out ({rest:+.2f})")
    elif abs(rest) >= NEGLIGIBLE_ROI:
        how = f" ({estimator.replace('_', '-')} against one OLS)" if estimator else ""
        reasons.append(f"the same adjustment, a different estimator{how} ({rest:+.2f})")
    if abs(smoothing) >= NEGLIGIBLE_ROI:
        reasons.append(f"{smoothing:+.2f} comes from the selected transform's smoothing: the published ROI averages "
                       f"over resamples that repeat the selection, the naive one uses the selected transform "
                       f"(ROI there {_fmt_roi(applied)})")
    dag_matters = bool(mediators) or abs(rest) >= NEGLIGIBLE_ROI
    if not dag_matters:
        same = ("adjusts for the same nodes as the naive regression (every other channel and control)" if not extra
                else f"leaves {_listing(extra)} out of the adjustment set, which moves the ROI by less than 0.01")
        if abs(smoothing) >= NEGLIGIBLE_ROI:
            return (f"{head}: the whole difference comes from the selected transform's smoothing "
                    f"(ROI at the selected transform {_fmt_roi(applied)}); the DAG {same}, so it does not "
                    "change this answer.")
        return f"{head}: the DAG {same}, so it does not change this answer."
    return f"{head}: " + "; ".join(reasons) + "."


# --- attention -------------------------------------------------------------------------------------

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


# A failed check's item stands for the table item that says the same thing (its description is the
# rule paragraph): check name → the anchor of the report section that shows its table.
_CHECK_SECTIONS = {"dag_independence": "independence", "missing_drivers": "dag", "dag_overlap": "overlap",
                   "dag_identification": "identification"}


def _one_line(text: object) -> str:
    return " ".join(str(text or "").split())


def check_items(checks: pd.DataFrame | None) -> list[AttentionItem]:
    """One item per asset check that did not pass: `asset.check (failed rules): description`. A
    blocking (ERROR) failure stops the run before publication, so a published run shows WARNs."""
    if not _available(checks) or not set(CHECK_RESULT_COLUMNS) <= set(checks.columns):
        return []
    items = []
    for r in checks.to_dict("records"):
        if bool(r["passed"]):
            continue
        rules, description = _one_line(r["failed_rules"]), _one_line(r["description"])
        named = f" ({rules})" if rules and rules.lower() != "none" and rules not in description else ""
        level = Level.FAIL if str(r["severity"]).upper() == "ERROR" else Level.WARN
        items.append(AttentionItem(level, f"{r['asset']}.{r['check']}{named}: {description or 'failed'}",
                                   _CHECK_SECTIONS.get(str(r["check"]), "inputs")))
    return items


def _judged(inputs: ReportInputs) -> set[str]:
    """The checks whose results this run recorded: their items replace the table items they restate."""
    if not _available(inputs.checks) or "check" not in inputs.checks.columns:
        return set()
    return {str(c) for c in inputs.checks["check"]}


def attention_lines(items: Iterable[AttentionItem]) -> list[str]:
    """The attention list as the console prints it, one line per item: `LEVEL  text`."""
    return [f"{item.level.name:<7}{item.text}" for item in items]


def attention_items(inputs: ReportInputs) -> list[AttentionItem]:
    """Everything a reader should look at before trusting the numbers, worst first: the one list the
    report's "What needs attention" shows and `cmmm run` prints after its table (every asset check
    that did not pass, refuters and lift tests that ask for review, withheld or unestimated
    effects, thin overlap, rejected DAG implications, missing drivers, estimates that moved)."""
    judged = _judged(inputs)
    items: list[AttentionItem] = check_items(inputs.checks)
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
    est = inputs.estimates
    if {"channel", "effect", "roi"} <= set(est.columns):
        for r in est[est["effect"] != TOTAL].to_dict("records"):
            if not np.isfinite(_float(r, "roi")):
                reason = withheld_reason(r)
                items.append(AttentionItem(Level.REVIEW, f"{r['channel']} ({r['effect']}): not estimated"
                                           f"{': ' + reason if reason else '.'}", "summary"))
    verdicts = _pair_verdicts(inputs.dag_tests)
    rejected = [" ⟂ ".join(sorted(p)) for p, r in verdicts.items() if r]
    if rejected and "dag_independence" not in judged:
        items.append(AttentionItem(Level.FAIL, f"{len(rejected)} of {len(verdicts)} independences implied by the DAG "
                                   f"are rejected by the data ({'; '.join(rejected)}): the DAG may miss an edge.",
                                   "independence"))
    if inputs.missing_drivers is not None and "status" in inputs.missing_drivers.columns \
            and "missing_drivers" not in judged:
        for row in inputs.missing_drivers[inputs.missing_drivers["status"] != Status.PASS.value].itertuples():
            items.append(AttentionItem(Level.REVIEW, f"Missing driver ({row.driver}): {row.message}: "
                                       f"{row.recommendation}", "dag"))
    thin: dict[tuple[Level, str], int] = {}
    for level, row in ([] if "dag_overlap" in judged else flagged_rows(inputs.overlap, "ok", bad=False)):
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
    cards = Cards(tuple(Card(STATUS_CLASS.get(s.status.value, "") if s.status else "", s.channel,
                             s.sentence.removeprefix(s.channel)) for s in summaries))
    est = inputs.estimates
    table = pd.DataFrame({
        "channel": est["channel"], "effect": est["effect"], "ROI": est["roi"].astype(float),
        f"{inputs.level_label} interval": [_interval(lo, hi) for lo, hi in
                                           zip(est["roi_ci_low"], est["roi_ci_high"])],
    })
    if "mroi" in est.columns:
        table["mROI"] = pd.to_numeric(est["mroi"], errors="coerce")
        if {"mroi_ci_low", "mroi_ci_high"} <= set(est.columns):
            table[f"mROI {inputs.level_label} interval"] = [
                _interval(float(lo), float(hi)) for lo, hi in zip(pd.to_numeric(est["mroi_ci_low"], errors="coerce"),
                                                                  pd.to_numeric(est["mroi_ci_high"], errors="coerce"))]
    if "roi_support" in est.columns:
        table["ROI support"] = est["roi_support"].fillna("").astype(str)
    table["p_value"] = est["p_value"].astype(float)
    table["significant"] = [bool(p < inputs.alpha) if pd.notna(p) else None for p in est["p_value"]]
    if "naive_roi" in est.columns:
        table["naive ROI"] = est["naive_roi"].astype(float)
    table["incremental KPI"] = est["incremental_kpi"].astype(float)
    table["robustness"] = [_status_text(channel_status(inputs, c, e).status) for c, e in zip(est["channel"], est["effect"])]
    if inputs.changes is not None and inputs.changes.previous is not None:
        changes = inputs.changes.table.set_index(["channel", "effect"])
        keys = list(zip(est["channel"], est["effect"]))
        table["change"] = [changes["change"].get(k, np.nan) for k in keys]
        table["outside_previous_interval"] = [bool(changes["outside_previous_interval"].get(k, False)) for k in keys]
    intro = (f"ROI is the incremental {inputs.run.kpi} per unit of spend over the modelled weeks; the total effect "
             "flows through every path of the DAG. Significant: the test of “no effect” rejects at "
             f"{inputs.alpha * 100:g}%.")
    if "mroi" in est.columns:
        intro += (" mROI (marginal ROI) is the return on the next unit of spend at the spend levels the data show; "
                  "where ROI against zero spend is extrapolated, the sentence leads with it.")
    if "null_p_value" in est.columns and pd.to_numeric(est["null_p_value"], errors="coerce").notna().any():
        intro += (" Transforms were selected from the data, so the test also repeats that selection on data "
                  "where the channel has no effect; an interval that test cannot separate from zero reaches zero.")
    band = inputs.run.selection_band
    if _available(inputs.transform_selection) and band is not SelectionBand.OFF:
        which = "Intervals (and p-values)" if band is SelectionBand.ALL else "mROI intervals"
        intro += (f" {which} also reach the estimates at every transform whose cross-validation error is within "
                  "one standard error of the best (transform_selection.csv): the data cannot choose among them.")
    return Section("summary", "Summary", (cards, table_block(table)), intro)


def _attention_section(inputs: ReportInputs) -> Section:
    items = attention_items(inputs)
    blocks: list[Block] = []
    if not [i for i in items if i.level is not Level.INFO]:
        blocks.append(Paragraph("Nothing failed and nothing needs review in what this run assessed.", "pass banner"))
    if items:
        blocks.append(AttentionList(tuple(items)))
    return Section("attention", "What needs attention", tuple(blocks))


def _dag_section(inputs: ReportInputs) -> Section:
    if not _available(inputs.dag_edges):
        return Section("dag", "Causal DAG", (_na("The DAG table"),))
    g, roles = dag_graph(inputs.dag_edges)
    png = draw_dag_png(g, inputs.dag_tests, roles)
    verdicts = _pair_verdicts(inputs.dag_tests)
    if inputs.dag_tests is None:
        caption = Paragraph("The independences this DAG implies were not tested in this run.")
    else:
        rejected = sum(verdicts.values())
        verdict = (f"{rejected} rejected (red dashed lines, the pairs named under the drawing; the edge to add is "
                   "in the tests table)" if rejected else "none rejected")
        caption = Paragraph(f"{len(verdicts)} independences implied by the DAG were tested: "
                            f"{len(verdicts) - rejected} consistent with the data (not drawn), {verdict}. All are "
                            "listed in", link_text="the tests", link_anchor="independence")
    intro = ("The causal assumptions: an arrow means “can cause”. Effects are identified from this graph; "
             "a rejected implied independence is evidence of a missing arrow.")
    return Section("dag", "Causal DAG and its tested implications", (_image(png, "causal DAG"), caption), intro)


def _forest_section(inputs: ReportInputs) -> Section:
    intro = ("Each channel's causal ROI with its interval (block bootstrap), beside the naive ROI of one regression of "
             "the KPI on every channel and control without the DAG. Below, per channel, what makes them differ: a "
             "mediator the naive regression holds fixed, a different adjustment set, or a selected transform's "
             "smoothing (its ROI is averaged over bootstrap resamples that each repeat the selection).")
    blocks: list[Block] = [_image(inputs.forest_png, "forest plot of ROI intervals")]
    comparisons = naive_comparisons(inputs)
    if comparisons:
        blocks += [Heading("Why causal and naive differ"), Reasons(tuple((c.channel, c.sentence) for c in comparisons))]
    return Section("forest", "ROI by channel: causal vs naive", tuple(blocks), intro)


def _contributions_section(inputs: ReportInputs) -> Section:
    title = "Contributions over time"
    if not _available(inputs.transformed) or "ate" not in inputs.estimates.columns:
        return Section("contributions", title, (_na("The transformed media table"),))
    parts = contribution_parts(inputs.estimates, [c for c in inputs.transformed.columns if c != WEEK])
    if not parts:
        return Section("contributions", title, (Paragraph("No channel has an estimated effect to attribute.", "na"),))
    kpi = inputs.run.kpi
    rest = _listing(["baseline", *inputs.controls(), "noise"])
    intro = (f"Weekly {kpi} attributed to each channel (its effect × the channel's transformed media that week), "
             f"stacked under the observed {kpi}; the rest is {rest}.")
    figure = contributions_svg(inputs.transformed, parts, kpi)
    blocks: list[Block] = [_vector_image(figure, "stacked weekly contributions")]
    direct = [p.channel for p in parts if p.label != p.channel]
    if direct:
        est = inputs.estimates
        notes = []
        for channel in direct:
            row = est[(est["channel"] == channel) & (est["effect"] == DIRECT)].iloc[0]
            through = _listing(_split(row.get("mediators", "")))
            indirect = est[(est["channel"] == channel) & (est["effect"] == INDIRECT)]["roi"]
            share = f" (ROI {_fmt_roi(float(indirect.iloc[0]))})" if len(indirect) else ""
            notes.append(f"{channel} is stacked with its direct effect only: what it adds through {through}{share} is "
                         f"inside {through}'s area, which counts every unit of {through}, the ones {channel} drives "
                         f"included. Stacking {channel}'s total on top would count that part twice; its total is in "
                         "the summary.")
        blocks.append(Paragraph(" ".join(notes)))
    return Section("contributions", title, tuple(blocks), intro)


def _response_section(inputs: ReportInputs) -> Section:
    curves = []
    for r in inputs.total_rows().to_dict("records"):
        column = inputs.run.spend_columns.get(r["channel"])
        if (not np.isfinite(_float(r, "ate")) or not np.isfinite(_float(r, "roi")) or column is None
                or column not in inputs.raw.columns or r["channel"] not in set(inputs.transforms["channel"])):
            continue
        spend = inputs.raw[column].to_numpy(dtype=float)
        support = published_support(inputs.overlap, r["channel"], spend, _float(r, "extrapolated_share"))
        curves.append(response_curve(r["channel"], spend, inputs.transforms, pd.Series(r), support))
    if not curves:
        return Section("response", "Response curves", (_na("Spend and transform parameters"),))
    ranges = table_block(pd.DataFrame([{"channel": c.channel, "lowest week": c.observed_min,
                                        "supported from": c.support_low, "average week": c.observed_mean,
                                        "highest week": c.observed_max} for c in curves]), "Observed weekly spend")
    intro = (f"Weekly incremental {inputs.run.kpi} if a channel ran at the same weekly spend every week (adstock at its "
             "steady state, then saturation), with its interval. The solid part lies inside the weekly spend that "
             "comparable weeks show (shaded): trust it there; the dashed part extrapolates. The shading starts where "
             "the overlap analysis puts the channel's support (the lowest spend weeks alike in the adjustment set "
             "show, averaged over the weeks), the number that also sets ROI support: a channel whose ROI against "
             "zero is extrapolated has its curve dashed near zero.")
    figure = _vector_image(response_curves_svg(curves, inputs.run.kpi), "response curves per channel")
    return Section("response", "Response curves", (figure, ranges), intro)


def _table_section(section_id: str, title: str, frame: pd.DataFrame | None, intro: str,
                   first: Sequence[str] = (), shown: Sequence[str] = (), csv: str = "") -> Section:
    """A check table; with `shown`, only those of its columns (the rest are in the `csv` file)."""
    if frame is None:
        return Section(section_id, title, (_na(),), intro)
    if frame.empty:
        return Section(section_id, title, (Paragraph("The run produced this table, with no rows.", "na"),), intro)
    order = [c for c in first if c in frame.columns] + [c for c in frame.columns if c not in first]
    if shown and set(shown) & set(frame.columns):
        hidden = [c for c in order if c not in shown]
        order = [c for c in order if c in shown]
        if hidden and csv:
            intro += f" Every column is in {csv}."
    return Section(section_id, title, (table_block(frame[order]),), intro)


def _overlap_section(inputs: ReportInputs) -> Section:
    frame = inputs.overlap
    if _available(frame) and {"stratum", "strata"} <= set(frame.columns):
        frame = frame.assign(stratum=[f"{a} of {b}" for a, b in zip(frame["stratum"], frame["strata"])])
    return _table_section("overlap", "Overlap (positivity)", frame,
                          "For each channel and stratum of its adjustment set: enough weeks, with both low and high "
                          "spend. Where overlap is thin the estimate extrapolates.", ["channel", "stratum", "ok"],
                          ["channel", "stratum", "ok", "weeks", "spend_min", "spend_max", "low_spend_weeks",
                           "high_spend_weeks", "spread", "extrapolated_share", "reason"], "overlap.csv")


def _experiments_section(inputs: ReportInputs) -> Section:
    frame = inputs.experiments
    if _available(frame):
        for name in ("measured", "model"):
            point, low, high = f"{name}_incremental_kpi", f"{name}_ci_low", f"{name}_ci_high"
            if {point, low, high} <= set(frame.columns):
                frame = frame.assign(**{point: [
                    f"{_number(float(p), 0)} ({_number(float(lo), 0)}–{_number(float(hi), 0)})"
                    for p, lo, hi in zip(frame[point], frame[low], frame[high])]}).drop(columns=[low, high])
        frame = frame.rename(columns={"measured_incremental_kpi": "measured lift (interval)",
                                      "model_incremental_kpi": "model (interval)"})
    return _table_section("experiments", "Lift experiments vs the model", frame,
                          "Each configured lift test beside the model's incremental KPI over the same weeks; a test "
                          "whose measured lift the model's interval does not support is flagged.",
                          ["channel", "start", "end", "status", "agrees"],
                          ["channel", "start", "end", "status", "agrees", "weeks", "measured lift (interval)",
                           "model (interval)", "measured_lift", "measured_low", "measured_high", "model_incremental",
                           "model_low", "model_high", "message", "recommendation"], "experiments.csv")


def refutations_in_roi(refutations: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """The refuters' estimates (ATE per unit of transformed media) in ROI units: × the estimate's
    ROI per unit of ATE at the applied transform, so they read beside the summary."""
    if not {"estimate", "new_effect", "channel"} <= set(refutations.columns):
        return refutations
    est = estimates.set_index(["channel", "effect"]) if "effect" in estimates.columns else None
    factors = []
    for r in refutations.to_dict("records"):
        row = est.loc[(r["channel"], r.get("effect", TOTAL))] if est is not None and \
            (r["channel"], r.get("effect", TOTAL)) in est.index else None
        ate = np.nan if row is None else float(row["ate"])
        roi = np.nan if row is None else float(row.get("applied_transform_roi", row["roi"]))
        roi = roi if np.isfinite(roi) else (np.nan if row is None else float(row["roi"]))
        factors.append(roi / ate if np.isfinite(ate) and ate != 0 else np.nan)
    factor = np.asarray(factors, dtype=float)
    out = refutations.copy()
    out["estimate"] = refutations["estimate"].astype(float) * factor
    out["new_effect"] = refutations["new_effect"].astype(float) * factor
    bounds = [c for c in ("new_effect_low", "new_effect_high") if c in refutations.columns]
    for c in bounds:  # the benchmark confounder's interval; a negative factor swaps the ends
        out[c] = refutations[c].astype(float) * factor
    if len(bounds) == 2:
        low, high = np.fmin(out[bounds[0]], out[bounds[1]]), np.fmax(out[bounds[0]], out[bounds[1]])
        out[bounds[0]], out[bounds[1]] = low, high
    return out.rename(columns={"estimate": "ROI", "new_effect": "ROI after refutation",
                               "new_effect_low": "low", "new_effect_high": "high"})


def _refuters_section(inputs: ReportInputs) -> Section:
    frame = inputs.refutations
    if _available(frame):
        frame = refutations_in_roi(frame, inputs.estimates)
        if "refuter" in frame.columns:  # "unobserved common cause" wraps where "unobserved_common_cause" cannot
            frame = frame.assign(refuter=frame["refuter"].astype(str).str.replace("_", " "))
    return _table_section("refuters", "Refutation tests", frame,
                          "Each estimate re-run under a perturbation that should (placebo treatment, random common "
                          "cause, data subset) or may (unobserved common cause) leave it unchanged, in ROI units "
                          "(the refuted ROI beside the estimate's). FAIL: the estimate moved when it should not have. "
                          "Benchmark confounder: the ROI bias-adjusted for a hidden confounder as strong as the "
                          "strongest observed one (named in its message), with its interval (low, high).",
                          ["channel", "effect", "refuter", "status", "ROI", "ROI after refutation", "low", "high"])


def _constant(frame: pd.DataFrame, column: str) -> object | None:
    values = frame[column].dropna().unique() if column in frame.columns else []
    return values[0] if len(values) == 1 else None


def _independence_section(inputs: ReportInputs) -> Section:
    frame = inputs.dag_tests
    intro = ("Each row tests “x is independent of y given the listed nodes”, which the DAG implies. "
             "Rejected (after multiple-testing adjustment) means the data contradict the DAG there.")
    if _available(frame):
        alpha, correction = _constant(frame, "alpha"), _constant(frame, "correction")
        if alpha is not None and correction is not None:
            intro += f" Adjustment: {correction}, at α = {float(alpha):g}."
            frame = frame.drop(columns=["alpha", "correction"])
        if "implication" in frame.columns:
            frame = frame.drop(columns=[c for c in ("x", "y", "given") if c in frame.columns])
    return _table_section("independence", "Independence tests implied by the DAG", frame, intro,
                          ["implication", "x", "y", "given", "test", "rejected"])


def _suggestions_section(inputs: ReportInputs) -> Section:
    frame = inputs.dag_suggestions
    title = "Questioning the DAG: proposed edits"
    intro = ("The single added edges that would make the DAG consistent with the implications the data reject "
             "at adjusted p < 0.01, best first, within background knowledge (the KPI is a sink, nothing causes "
             "seasonality or trend, channels cannot cause controls). The implications naming a channel are also "
             "tested on its log spend over its active weeks (found_on_spend). The DAG is never changed: edit the "
             "config if the evidence convinces you. `cmmm suggest --config FILE` prints the same with DoWhy's "
             "graph falsification and causal-learn's PC algorithm beside it; see docs/dag.md.")
    if frame is None:
        return Section("suggestions", title, (_na("The dag_suggestions table"),), intro)
    if not len(frame):
        return Section("suggestions", title, (Paragraph(
            "No edit proposed: no implication of the DAG is rejected at adjusted p < 0.01.", "pass banner"),), intro)
    return Section("suggestions", title, (table_block(frame.reset_index(drop=True)),), intro)


def _adjustment_text(value: object, nodes: Sequence[str]) -> str:
    """An adjustment set by node (`seasonality_sin1|seasonality_cos1` → `seasonality (2 terms)`)."""
    counts: dict[str, int] = {}
    for column in _split(value):
        node = _node_of(column, nodes)
        counts[node] = counts.get(node, 0) + 1
    return ", ".join(n if k == 1 else f"{n} ({k} terms)" for n, k in counts.items()) or "none"


def _identification_section(inputs: ReportInputs) -> Section:
    frame = inputs.identification
    if _available(frame) and "adjustment" in frame.columns:
        nodes = sorted(set(inputs.roles()) | set(inputs.estimates["channel"].astype(str)), key=len, reverse=True)
        frame = frame.assign(adjustment=[_adjustment_text(v, nodes) for v in frame["adjustment"]])
        if "reason" in frame.columns:  # "identified by adjustment for <the set> (criterion)": the set is shown
            frame = frame.assign(reason=[str(r).split(" (", 1)[1].rstrip(")") if str(r).startswith(
                "identified by adjustment for") and " (" in str(r) else r for r in frame["reason"]])
    return _table_section("identification", "Identification", frame,
                          "How each effect is identified from the DAG: the estimand and the adjustment set.",
                          ["channel"])


def _history_section(inputs: ReportInputs) -> Section:
    title = "Change since the previous run"
    changes = inputs.changes
    if changes is None:
        return Section("history", title, (_na("The estimates history"),))
    blocks: list[Block] = []
    if changes.previous is None:
        blocks.append(Paragraph("This is the first run published to this warehouse: there is nothing to compare "
                                "with yet."))
    else:
        prev = changes.previous
        flagged = len(changes.flagged)
        blocks.append(Paragraph(f"Compared with run {prev.run_id} published {_when(prev.run_time)}."))
        blocks.append(Paragraph(f"{flagged} estimate(s) moved outside the previous run’s interval.", "review banner")
                      if flagged else Paragraph("Every estimate is inside the previous run’s interval.", "pass banner"))
        blocks.append(table_block(changes.table))
    history = inputs.roi_history
    if _available(history) and history["run_id"].nunique() > 1:
        labels = {rid: f"{pd.Timestamp(t):%Y-%m-%d %H:%M} ({str(rid)[:8]})"
                  for rid, t in zip(history["run_id"], history["run_time"])}
        pivot = (history.assign(run=history["run_id"].map(labels))
                 .pivot_table(index="channel", columns="run", values="roi", sort=False).reset_index())
        pivot.columns = [str(c) for c in pivot.columns]
        blocks.append(table_block(pivot, f"Total-effect ROI over the last {history['run_id'].nunique()} runs"))
    return Section("history", title, tuple(blocks))


def _adstock_text(row: Mapping[str, Any]) -> str:
    """A channel's own adstock parameters: decay for geometric, shape/scale/max lag for Weibull."""
    kind = _text(row, "adstock")
    if kind == "geometric":
        return f"geometric, decay {_float(row, 'decay'):.2f}"
    if kind.startswith("weibull"):
        label = "Weibull PDF" if kind == "weibull_pdf" else "Weibull CDF"
        return (f"{label}, shape {_float(row, 'weibull_shape'):.2f}, scale {_float(row, 'weibull_scale'):.2f}, "
                f"max lag {int(_float(row, 'max_lag'))} weeks")
    return kind or "—"


SOURCE_TEXT = {"config": "config", "default": "default", "selected": "selected from the data"}


def transform_parameters_table(transforms: pd.DataFrame) -> pd.DataFrame:
    """One row per channel with only the parameters its own transforms use."""
    rows = []
    for r in transforms.to_dict("records"):
        row = {"channel": r["channel"], "adstock": _adstock_text(r),
               "saturation": f"Hill, half-saturation {_float(r, 'half_saturation'):.2f}, slope {_float(r, 'slope'):.2f}",
               "source": SOURCE_TEXT.get(_text(r, "source"), _text(r, "source"))}
        rows.append(row)
    out = pd.DataFrame(rows)
    if "cv_error" in transforms.columns and transforms["cv_error"].notna().any():
        out["cv_error"] = transforms["cv_error"].astype(float).to_numpy()
    if "grid_edge" in transforms.columns and transforms["grid_edge"].fillna("").astype(str).str.len().gt(0).any():
        out["on a grid edge"] = transforms["grid_edge"].fillna("").astype(str).replace("", "—").to_numpy()
    return out


def grid_edge_note(transforms: pd.DataFrame) -> list[Block]:
    """A selected parameter on the edge of its grid: the truth may lie beyond it, or the data cannot
    tell the values apart, so the ROI against zero spend rests on the curve's assumed shape."""
    if "grid_edge" not in transforms.columns:
        return []
    edges = transforms[transforms["grid_edge"].fillna("").astype(str).str.len() > 0]
    if edges.empty:
        return []
    named = "; ".join(f"{r.channel}: {r.grid_edge}" for r in edges.itertuples())
    return [Paragraph(f"Selected on the edge of the search grid ({named}). The data may not tell these values "
                      "apart; lean on the marginal ROI, which stays within the spend the data show, or configure "
                      "the parameter from a lift test.")]


def _selection(frame: pd.DataFrame | None) -> list[Block]:
    """The candidate chosen per channel (lowest out-of-sample error) and how many were compared;
    the full grid is in transform_selection.csv."""
    if frame is None:
        return [_na("Transform selection")]
    if frame.empty:
        return [Paragraph("No transform was selected from the data: every channel's adstock and saturation come "
                          "from the config.")]
    if not {"channel", "selected"} <= set(frame.columns):
        return [table_block(frame)]
    chosen = frame[frame["selected"].astype(bool)].drop(columns=["selected"])
    chosen = chosen.dropna(axis=1, how="all")  # parameters no chosen candidate uses
    counts = frame.groupby("channel").size().rename("candidates")
    table = chosen.merge(counts, left_on="channel", right_index=True, how="left")
    return [Paragraph("Chosen by time-series cross-validation (one objective: out-of-sample error); every candidate "
                      "is in transform_selection.csv."), table_block(table)]


def _inputs_section(inputs: ReportInputs) -> Section:
    first, last = inputs.data_range()
    run = inputs.run
    facts = Facts((Fact("Run", run.run_id, code=True), Fact("Published", _when(run.run_time) or "—"),
                   Fact("Data", f"{len(inputs.raw)} weeks, {first} to {last}"), Fact("KPI", run.kpi, code=True),
                   Fact("Config", run.config_path, code=True), Fact("Interval level", inputs.level_label)))
    spend = pd.DataFrame([{"channel": channel, "spend column": column,
                           "total spend": float(inputs.raw[column].sum()), "mean weekly spend": float(inputs.raw[column].mean()),
                           "weeks with spend": int((inputs.raw[column] > 0).sum())}
                          for channel, column in run.spend_columns.items() if column in inputs.raw.columns])
    blocks: list[Block] = [facts, Heading("Spend"), table_block(spend) if not spend.empty else _na(),
                           Heading("Transform parameters used"),
                           table_block(transform_parameters_table(inputs.transforms)) if not inputs.transforms.empty
                           else _na(), *grid_edge_note(inputs.transforms), Heading("Transform selection"), *_selection(inputs.transform_selection),
                           Heading("Config"), Preformatted(run.config_text)]
    return Section("inputs", "Run inputs", tuple(blocks))


def sections(inputs: ReportInputs) -> list[Section]:
    return [
        _attention_section(inputs),
        _summary_section(inputs),
        _dag_section(inputs),
        _forest_section(inputs),
        _contributions_section(inputs),
        _response_section(inputs),
        *period_sections(inputs),
        *feedback_sections(inputs),
        plan_section(inputs),
        _refuters_section(inputs),
        _independence_section(inputs),
        _suggestions_section(inputs),
        _overlap_section(inputs),
        _identification_section(inputs),
        _experiments_section(inputs),
        _history_section(inputs),
        _inputs_section(inputs),
    ]


# --- effects by period, campaign and condition; synergies ------------------------------------------

def _with_interval(frame: pd.DataFrame, value: str, low: str, high: str, decimals: int) -> list[str]:
    return [f"{_number(float(v), decimals)} ({_number(float(lo), decimals)}–{_number(float(hi), decimals)})"
            if np.isfinite(float(v)) and np.isfinite(float(lo)) else _number(float(v), decimals)
            for v, lo, hi in zip(frame[value], frame[low], frame[high])]


def _period_table(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    return pd.DataFrame({
        "channel": frame["channel"], "effect": frame["effect"], label: frame["period"],
        "weeks": frame["weeks"], "incremental (interval)": _with_interval(frame, "incremental_kpi",
                                                                           "incremental_ci_low",
                                                                           "incremental_ci_high", 0),
        "spend": frame["spend"], "ROI (interval)": _with_interval(frame, "roi", "roi_ci_low", "roi_ci_high", 2),
        "p_value": frame["p_value"]}).reset_index(drop=True)


def period_sections(inputs: ReportInputs) -> list[Section]:
    """The effects by quarter (chart) and year, the campaigns, the conditions and the synergies."""
    periods = inputs.effects_by_period
    out: list[Section] = []
    kpi = inputs.run.kpi
    if periods is None:
        out.append(Section("periods", "Effects by period", (_na("The effects_by_period table"),)))
    else:
        quarters = periods[periods["period_type"] == "quarter"]
        years = periods[periods["period_type"] == "year"]
        blocks: list[Block] = []
        if len(quarters):
            blocks.append(_vector_image(quarterly_effects_svg(periods, kpi, inputs.run.ci_level),
                                 "incremental KPI by quarter per channel with intervals"))
        if len(years):
            blocks.append(table_block(_period_table(years, "year"), "By calendar year"))
        intro = (f"Incremental {kpi} of each channel within each period: the weeks of the period of {kpi} as run minus "
                 f"{kpi} with the channel off every week, so the periods add up to the whole history and carryover "
                 "counts in the week it lands. Intervals and p-values come from the same bootstrap draws as the "
                 "whole-history estimate. Every quarter is in effects_by_period.csv.")
        out.append(Section("periods", "Effects by period", tuple(blocks) or (_na(),), intro))
        campaigns = periods[periods["period_type"] == "campaign"]
        if len(campaigns):
            table = _period_table(campaigns, "campaign").assign(
                **{"window": [f"{a} to {b}" for a, b in zip(campaigns["start"], campaigns["end"])],
                   "roi_support": campaigns["roi_support"].fillna("").to_list()})
            out.append(Section("campaigns", "Campaigns", (table_block(table),),
                               f"Each configured campaign: {kpi} as run minus {kpi} with the channel's spend removed in "
                               "the window only, summed over every week (the carryover after the window belongs to "
                               "the campaign); ROI over the campaign's spend. roi_support says whether comparable "
                               "weeks show spend near zero (observed) or the response curve extrapolates."))
        conditions = periods[periods["period_type"] == "condition"]
        if len(conditions):
            table = _period_table(conditions, "level").assign(
                equal_effect_p_value=conditions["equal_effect_p_value"].to_list())
            out.append(Section("conditions", "Effects by condition", (table_block(table),),
                               "A channel's total effect within levels of a pre-treatment column (terciles or the "
                               "configured cut points), from its regression with the media split by level under the "
                               "same adjustment set. equal_effect_p_value tests that the effect per unit of media "
                               "is the same at every level."))
    synergies = inputs.synergies
    if synergies is not None and len(synergies):
        shown = synergies.assign(**{"synergy (interval)": _with_interval(synergies, "incremental_kpi",
                                                                          "incremental_ci_low", "incremental_ci_high",
                                                                          0)})
        shown = shown[["channel_a", "channel_b", "synergy (interval)", "p_value", "share_of_smaller_effect",
                       "withheld_reason"]]
        out.append(Section("synergies", "Synergies", (table_block(shown),),
                           f"Declared pairs only: {kpi} as run − {kpi}(a off) − {kpi}(b off) + {kpi}(both off), summed "
                           "over the weeks, from the product of the two channels' transformed media under an "
                           "adjustment set valid for both. Each channel's own ROI (that channel off, everything else "
                           "as run) already holds the whole synergy; see docs/estimation.md."))
    return out


def feedback_sections(inputs: ReportInputs) -> list[Section]:
    """Channels whose budget follows sales: withheld from the estimates, g-estimated here (none: no section)."""
    frame = inputs.feedback
    if frame is None or not len(frame):
        return []
    kpi = inputs.run.kpi
    shown = pd.DataFrame({
        "channel": frame["channel"], "effect": frame["effect"], "status": frame["status"],
        "ROI (interval)": _with_interval(frame, "roi", "roi_ci_low", "roi_ci_high", 2),
        "mROI (interval)": _with_interval(frame, "mroi", "mroi_ci_low", "mroi_ci_high", 2),
        "roi_support": frame["roi_support"].fillna(""), "p_value": frame["p_value"],
        "weeks": frame["weeks"], "first_stage_f": frame["first_stage_f"], "planning_r2": frame["planning_r2"],
        "planned_from": frame["planned_from"],
        "reason": frame["reason"].fillna("") if "reason" in frame.columns else ""}).reset_index(drop=True)
    intro = (f"The DAG says these channels' spend is planned from {kpi}'s past (a lagged-{kpi} node drives them), so "
             f"no adjustment of the weekly columns is valid and the estimates table withholds them. Read in time: past "
             f"spend → past {kpi} → planned spend → {kpi}. G-estimation is valid under that feedback: the planning rule "
             f"is fitted, and the part of spend it did not set (its residual, adstocked) identifies the channel; the "
             f"lagged {kpi} is never adjusted for. It assumes " + str(frame["assumptions"].iloc[0]) + ". A first-stage "
             "F below 10 means spend barely varies around the plan; the channel then has no estimate, nor has any "
             "planned channel whose adstock and saturation were left to the data (the selection's regression is "
             "confounded by the feedback: configure them). Intervals are "
             "block-bootstrap with the planning rules refitted; they are wider than a regression's, because only the "
             "spend the plan did not set informs them. See docs/estimation.md.")
    return [Section("feedback", "Budgets that follow sales", (table_block(shown),), intro)]


# --- the budget plan (cmmm_pipeline/plan, the budget_plan asset) --------------------------------------

NO_PLAN = ("No plan was configured: add planning: {plan: plan.yaml} to the config and every run evaluates or "
           "optimises that plan on its own estimates (docs/planning.md).")


def _plan_curves(inputs: ReportInputs, plan: pd.DataFrame) -> list[ResponseCurve]:
    """Each planned channel's curve for the effect the plan moves, its supported range shaded (the
    planner's, margin included) and the current and proposed weekly spend marked."""
    import dataclasses

    est = inputs.estimates
    curves = []
    for r in plan[plan["channel"] != TOTAL].to_dict("records"):
        rows = est[(est["channel"] == r["channel"]) & (est["effect"] == (r["effect"] or TOTAL))]
        column = inputs.run.spend_columns.get(r["channel"])
        if (rows.empty or column is None or column not in inputs.raw.columns
                or r["channel"] not in set(inputs.transforms["channel"])
                or not np.isfinite(_float(rows.iloc[0], "ate")) or not np.isfinite(_float(rows.iloc[0], "roi"))):
            continue
        curve = response_curve(r["channel"], inputs.raw[column].to_numpy(dtype=float), inputs.transforms, rows.iloc[0])
        marks = tuple((label, _float(r, key)) for label, key in (("current mix", "current_weekly_spend"),
                                                                 ("plan", "weekly_spend")))
        low, high = _float(r, "supported_low"), _float(r, "supported_high")
        curves.append(dataclasses.replace(curve, support_low=low if np.isfinite(low) else curve.support_low,
                                          support_high=high if np.isfinite(high) else None, marks=marks,
                                          roi_support="", channel=f"{r['channel']} ({r['effect'] or TOTAL})"))
    return curves


def plan_section(inputs: ReportInputs) -> Section:
    """The configured plan: current against proposed weekly spend per channel, each with its
    incremental KPI and interval, the total gain with its interval, and the response curves with the
    supported range shaded; or the refusal with its rules and ranges; or that no plan was configured."""
    plan = inputs.budget_plan
    if plan is None or plan.empty:
        return Section("plan", "Budget plan", (Paragraph(NO_PLAN),))
    kpi, level = inputs.run.kpi, inputs.level_label
    weeks = int(_float(plan.iloc[0], "weeks")) if np.isfinite(_float(plan.iloc[0], "weeks")) else 0
    horizon = f"the plan's {weeks} weeks" if weeks else "the plan's weeks"
    total = plan[plan["channel"] == TOTAL].iloc[0].to_dict()
    channels = plan[plan["channel"] != TOTAL]
    ranges = [f"{_number(lo, 0)}–{_number(hi, 0)}" if np.isfinite(lo) and np.isfinite(hi) else "—"
              for lo, hi in zip(plan["supported_low"].astype(float), plan["supported_high"].astype(float))]
    blocks: list[Block] = []
    if str(total.get("status", "")) == "refused":
        shown = pd.DataFrame({"channel": plan["channel"], "plan weekly spend": plan["weekly_spend"],
                              "supported weekly spend": ranges, "within support": plan["within_support"].astype(bool),
                              "rule": plan["rule"].fillna(""), "reason": plan["message"].fillna("")})
        blocks.append(Paragraph(f"The plan was refused ({total.get('rule', '')}): it asks the response curves for "
                                "spend that no comparable week shows, and does not allow extrapolation. The estimates "
                                "above are unaffected; plan.csv records the refusal.", "review"))
        blocks.append(table_block(shown.reset_index(drop=True),
                                  "What was refused, with each channel's supported range"))
        intro = ("The plan named in the config, read from this run's response curves inside the data's support. "
                 "Set allow_extrapolation: true in the plan file to compute it marked outside support.")
    else:
        current = _with_interval(plan, "current_incremental_kpi", "current_ci_low", "current_ci_high", 0)
        proposed = _with_interval(plan, "incremental_kpi", "incremental_ci_low", "incremental_ci_high", 0)
        shown = pd.DataFrame({
            "channel": plan["channel"], "effect moved": plan["effect"].fillna(""),
            "current weekly spend": plan["current_weekly_spend"],
            f"current: incremental {kpi} ({level} interval)": current,
            "proposed weekly spend": plan["weekly_spend"],
            f"proposed: incremental {kpi} ({level} interval)": proposed,
            f"gain ({level} interval)": _with_interval(plan, "gain", "gain_ci_low", "gain_ci_high", 0),
            "within support": plan["within_support"].astype(bool), "supported weekly spend": ranges})
        blocks.append(table_block(shown.reset_index(drop=True),
                                  f"Current allocation against the plan at the same weekly budget, over {horizon}"))
        gain, low, high = (_float(total, k) for k in ("gain", "gain_ci_low", "gain_ci_high"))
        verdict = ("the interval includes zero: the data do not show that the plan beats the current mix"
                   if low <= 0 <= high else "the interval excludes zero")
        text = (f"Total gain over the current allocation: {_number(gain, 0)} {kpi} over {horizon} "
                f"({level} interval {_number(low, 0)} to {_number(high, 0)}); {verdict}.")
        shape_low, shape_high = _float(total, "gain_shape_low"), _float(total, "gain_shape_high")
        if np.isfinite(shape_low) and np.isfinite(shape_high) and shape_low < shape_high:
            text += (f" Response curves the data fit as well put the gain between {_number(shape_low, 0)} and "
                     f"{_number(shape_high, 0)}; the intervals include them.")
        forecast = _float(total, "kpi_forecast")
        if np.isfinite(forecast):
            text += (f" {kpi} forecast over {horizon}: {_number(forecast, 0)} ({level} prediction interval "
                     f"{_number(_float(total, 'kpi_ci_low'), 0)} to {_number(_float(total, 'kpi_ci_high'), 0)}).")
        blocks.append(Paragraph(text))
        outside = channels[~channels["within_support"].astype(bool)]
        if len(outside):
            blocks.append(Paragraph(f"Outside support, computed because the plan allows extrapolation: "
                                    f"{_listing(list(outside['channel']))}. Its numbers there are the curve's "
                                    "guess, not the data's.", "review"))
        intro = (f"The plan named in the config, read from this run's response curves and bootstrap draws: each "
                 f"channel's incremental {kpi} over {horizon} (the plan's spend against the channel off in those "
                 "weeks, the history's carryover in both), beside the current allocation (the recent spend mix "
                 "scaled to the same budget). A channel whose effect flows through another planned channel moves "
                 "by its direct effect. Every row is in plan.csv (docs/planning.md).")
    curves = _plan_curves(inputs, plan)
    if curves:
        blocks.append(_vector_image(response_curves_svg(curves, kpi),
                                    "response curves with the plan's supported range"))
        blocks.append(Paragraph("Each curve is the weekly incremental KPI at a constant weekly spend (adstock at its "
                                "steady state), for the effect the plan moves. Shaded: the weekly spend the plan may "
                                "use, the range comparable weeks show plus the planner's margin; the hollow square "
                                "marks the current mix's weekly spend, the diamond the plan's."))
    return Section("plan", "Budget plan", tuple(blocks), intro)


# --- rendering -------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("cmmm_pipeline.publish", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _template() -> Any:
    return _environment().get_template("report.html.j2")


@lru_cache(maxsize=1)
def _css() -> str:
    return resources.files("cmmm_pipeline.publish").joinpath("templates", "report.css").read_text(encoding="utf-8")


def render_report(inputs: ReportInputs) -> str:
    """The whole report as one HTML string."""
    import markupsafe

    from cmmm_pipeline.data.markets import market_of

    first, last = inputs.data_range()
    return _template().render(
        kpi=inputs.run.kpi, first=first, last=last, weeks=len(inputs.raw), run_id=inputs.run.run_id,
        market=market_of(inputs.estimates) or "",
        published=_when(inputs.run.run_time), sections=sections(inputs), css=markupsafe.Markup(_css()))
