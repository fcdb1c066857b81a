"""Metadata an engineer reads in the Dagster UI: owners, markdown tables, inline PNG plots, and
numbers as top-level floats so Dagster plots them across runs. pandas and numpy are imported where
they are used: the code location loads this module without them."""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import Failure, MetadataValue

from cmmm_pipeline.core.errors import CmmmError

if TYPE_CHECKING:
    import pandas as pd

OWNERS = ["team:marketing-science"]
ATTENTION_KEY = "attention_items"
"""`robustness_report` metadata: the published attention list (level, text), which `cmmm run` prints."""
P_VALUE_COLUMNS = frozenset({"p_value", "p_adjusted"})


def _markdown_cell(value: object, digits: int, p_value: bool = False) -> str:
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        stamp = pd.Timestamp(value)
        return str(stamp.date()) if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.2g}" if p_value else f"{value:,.{digits}f}"
    # A pipe would end the cell; a newline would end the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, digits: int = 3, max_rows: int = 40) -> MetadataValue:
    """The frame as a markdown table (first `max_rows` rows, with a note when cut)."""
    shown = df.head(max_rows)
    header = "| " + " | ".join(_markdown_cell(c, digits) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    p_values = [c in P_VALUE_COLUMNS for c in shown.columns]
    rows = ["| " + " | ".join(_markdown_cell(v, digits, p) for v, p in zip(r, p_values)) + " |"
            for r in shown.itertuples(index=False)]
    note = [f"\n_{len(df) - max_rows} more rows not shown._"] if len(df) > max_rows else []
    return MetadataValue.md("\n".join([header, rule, *rows, *note]))


INTERVAL_DIGITS = 2
"""Significant digits of an interval's width that an estimate shown in the UI keeps: the estimate
and its bounds are rounded to the same decimal place (width 0.26 → 1.89 [1.72, 1.98])."""
POINT_DIGITS = 3
"""Significant digits of a point estimate shown before any interval exists (the `ate_estimates` step)."""
MARKDOWN_INLINE_CHARS = 1000
"""Dagster's UI renders markdown metadata shorter than this in place; longer is a "[Show Markdown]" link."""


def interval_decimals(low: float, high: float, digits: int = INTERVAL_DIGITS) -> int | None:
    """The decimal place that keeps `digits` significant digits of the interval's width (negative:
    tens, hundreds, ...); None when the interval is missing or empty."""
    try:
        width = float(high) - float(low)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(width) or width <= 0:
        return None
    return digits - 1 - math.floor(math.log10(width))


def _fixed(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if decimals > 0 else f"{round(value, decimals):,.0f}"


def significant(value: float, digits: int = POINT_DIGITS) -> str:
    """`value` to `digits` significant digits, without exponent notation (1,234,567 → 1,230,000)."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    if value == 0:
        return "0"
    return _fixed(float(value), digits - 1 - math.floor(math.log10(abs(float(value)))))


def with_interval(value: float, low: float, high: float) -> str:
    """An estimate and its interval as the UI shows them, `1.89 [1.72, 1.98]`: all three rounded to
    what the interval's width supports (`interval_decimals`); without a usable interval, the estimate
    alone to POINT_DIGITS significant digits."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    decimals = interval_decimals(low, high)
    if decimals is None:
        return significant(value)
    return f"{_fixed(float(value), decimals)} [{_fixed(float(low), decimals)}, {_fixed(float(high), decimals)}]"


def rounded_to_interval(value: float, low: float, high: float) -> float:
    """The float metadata value of an estimate, rounded as `with_interval` shows it."""
    decimals = interval_decimals(low, high)
    if decimals is None:
        return float(f"{float(value):.{POINT_DIGITS}g}")
    return round(float(value), decimals)


def _float(row: dict, key: str) -> float:
    value = row.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _estimate_name(row: dict) -> str:
    """`tv` for a total effect, `tv direct` / `tv indirect` otherwise: one short column, not two."""
    effect = str(row.get("effect") or "")
    return str(row["channel"]) if effect in ("", "total") else f"{row['channel']} {effect}"


def _roi_heading(estimates: pd.DataFrame) -> str:
    import pandas as pd

    smoothed = bool((estimates.get("interval_method", pd.Series(dtype=str)) == "smoothed").any())
    return "ROI, published (smoothed over selection)" if smoothed else "ROI, published"


def estimates_table(estimates: pd.DataFrame, level: str = "95%") -> MetadataValue:
    """The published ROI as the UI shows it: three narrow columns (the metadata panel is about 400 px
    wide at 1440 px and clips what is wider), headers that name the estimand, each number rounded to
    what its interval supports, and the robustness status in view. Where a channel's transforms were
    selected from the data, the published ROI is smoothed over the near-equivalent transforms (the
    heading says so); `ate_estimates` shows the ROI at the applied transforms."""
    import pandas as pd

    rows = [{"estimate": _estimate_name(r),
             f"{_roi_heading(estimates)} [{level}]": with_interval(_float(r, "roi"), _float(r, "roi_ci_low"),
                                                                  _float(r, "roi_ci_high")),
             "robustness": str(r.get("robustness") or "—")} for r in estimates.to_dict("records")]
    note = "\n\n_ROI: incremental KPI per unit of spend against none. Rounded to 2 significant digits of the interval._"
    table = _plain_markdown(pd.DataFrame(rows))
    return MetadataValue.md(table + note if len(table + note) < MARKDOWN_INLINE_CHARS else table)


def marginal_table(estimates: pd.DataFrame, level: str = "95%") -> MetadataValue:
    """The published marginal ROI (the next unit of spend, within the data) beside whether the ROI
    against zero spend rests on comparable weeks (`observed`) or the response curve (`extrapolated`)."""
    import pandas as pd

    rows = [{"estimate": _estimate_name(r),
             f"mROI, next unit [{level}]": with_interval(_float(r, "mroi"), _float(r, "mroi_ci_low"),
                                                        _float(r, "mroi_ci_high")),
             "ROI support": str(r.get("roi_support") or "") or "—"} for r in estimates.to_dict("records")]
    return MetadataValue.md(_plain_markdown(pd.DataFrame(rows)))


def point_estimates_table(table: pd.DataFrame) -> MetadataValue:
    """The `ate_estimates` step's estimates, before any interval: headers name them as what they are
    (at the applied transforms; the naive all-channel regression beside), POINT_DIGITS significant
    digits. The published, possibly selection-smoothed ROI with its interval is on `robustness_report`."""
    import pandas as pd

    rows = [{"estimate": _estimate_name(r), "ROI at applied transforms": significant(_float(r, "roi")),
             "naive ROI (one OLS, no DAG)": significant(_float(r, "naive_roi")),
             "incremental KPI at applied transforms": significant(_float(r, "incremental_kpi"))}
            for r in table.to_dict("records")]
    note = (f"\n\n_Point estimates to {POINT_DIGITS} significant digits, before the bootstrap: the published ROI "
            "and its interval are on robustness_report._")
    return MetadataValue.md(_plain_markdown(pd.DataFrame(rows)) + note)


def changes_table(changes: pd.DataFrame, estimates: pd.DataFrame, level: str = "95%") -> MetadataValue:
    """This run's published ROI beside the previous run's (with its interval) and the change, rounded
    to what this run's interval supports; `outside` marks a ROI outside the previous interval."""
    import pandas as pd

    bounds = estimates.set_index(["channel", "effect"])[["roi_ci_low", "roi_ci_high"]]
    rows = []
    for r in changes.to_dict("records"):
        key = (r["channel"], r["effect"])
        low, high = (bounds.loc[key, "roi_ci_low"], bounds.loc[key, "roi_ci_high"]) if key in bounds.index else (
            float("nan"), float("nan"))
        decimals = interval_decimals(low, high)

        def shown(value: float, decimals: int | None = decimals) -> str:
            if not math.isfinite(value):
                return "—"
            return significant(value) if decimals is None else _fixed(value, decimals)

        previous = shown(_float(r, "previous_roi"))
        if previous != "—" and math.isfinite(_float(r, "previous_roi_ci_low")):
            previous += f" [{shown(_float(r, 'previous_roi_ci_low'))}, {shown(_float(r, 'previous_roi_ci_high'))}]"
        change = shown(_float(r, "change")) + (" outside" if bool(r.get("outside_previous_interval")) else "")
        rows.append({"estimate": _estimate_name(r), "ROI, published: this run": shown(_float(r, "roi")),
                     f"previous run [{level}]": previous, "change": change})
    return MetadataValue.md(_plain_markdown(pd.DataFrame(rows)))


def _plain_markdown(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(_markdown_cell(v, 3) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


FOREST_WIDTH = 360
FOREST_LABEL = 96
FOREST_ROW = 15


def forest_svg(estimates: pd.DataFrame) -> str:
    """The published ROI of every estimate as a small SVG forest plot: the interval as a line, the
    estimate as a dot, the naive ROI (one OLS, no DAG) as an orange tick, a dashed line at ROI 1
    (break-even). Bare SVG, a few hundred bytes: Dagster's UI shows an image inline only if its
    markdown is short (MARKDOWN_INLINE_CHARS)."""
    rows = [r for r in estimates.to_dict("records") if math.isfinite(_float(r, "roi"))]
    values = [v for r in rows for v in (_float(r, "roi_ci_low"), _float(r, "roi_ci_high"), _float(r, "roi"),
                                         _float(r, "naive_roi")) if math.isfinite(v)]
    low, high = min([0.0, *values]), max([1.0, *values])
    span = FOREST_WIDTH - FOREST_LABEL - 24

    def x(value: float) -> int:
        return round(FOREST_LABEL + 4 + (value - low) / (high - low) * span)

    height = FOREST_ROW * (len(rows) + 1)
    lines, dots, naive, labels = [], [], [], []
    for i, r in enumerate(rows):
        y = FOREST_ROW * i + 8
        roi, lo, hi = _float(r, "roi"), _float(r, "roi_ci_low"), _float(r, "roi_ci_high")
        if math.isfinite(lo) and math.isfinite(hi):
            lines.append(f"M{x(lo)} {y}H{x(hi)}")
        dots.append(f"<circle cx='{x(roi)}' cy='{y}' r='3'/>")
        if math.isfinite(_float(r, "naive_roi")):
            naive.append(f"M{x(_float(r, 'naive_roi'))} {y - 4}v8")
        labels.append(f"<text y='{y + 4}'>{r['channel']} {r['effect']}</text>")
    axis = FOREST_ROW * len(rows) + 11
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{FOREST_WIDTH}' height='{height}' font-size='11'>"
            f"<path d='M{x(1.0)} 0V{axis - 10}' stroke='#999' stroke-dasharray='3'/>"
            f"<path d='{''.join(lines)}' stroke='#258' stroke-width='2'/><path d='{''.join(naive)}' "
            f"stroke='#e70' stroke-width='2'/>{''.join(dots)}{''.join(labels)}"
            f"<text x='{x(low)}' y='{axis}'>{low:g}</text><text x='{x(1.0) - 3}' y='{axis}'>1</text>"
            f"<text x='{x(high) - 14}' y='{axis}'>{high:.1f}</text></svg>")


def markdown_svg(svg: str, alt: str) -> MetadataValue:
    """An SVG shown in place in the UI's metadata panel: a markdown image with a data URI in which
    only what markdown or a data URI would misread is escaped (spaces, '#', '%', parentheses)."""
    escaped = svg.replace("%", "%25").replace(" ", "%20").replace("#", "%23").replace("(", "%28").replace(")", "%29")
    return MetadataValue.md(f"![{alt}](data:image/svg+xml,{escaped})")


FOREST_ALT = "ROI by channel, naive ROI in orange"


def forest_plot(estimates: pd.DataFrame, png: bytes) -> MetadataValue:
    """The forest plot for the UI: every estimate as an inline SVG; the total effects alone when every
    effect would make the markdown too long to show in place; the report's PNG (behind a link) when
    even that is."""
    for rows in (estimates, estimates[estimates["effect"] == "total"]):
        shown = markdown_svg(forest_svg(rows), FOREST_ALT)
        if len(shown.value) < MARKDOWN_INLINE_CHARS:
            return shown
    return markdown_image(png, FOREST_ALT)


def markdown_image(png: bytes, alt: str) -> MetadataValue:
    """A PNG shown inline in the UI's metadata panel (markdown image with a data URI)."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def roi_metadata(estimates: pd.DataFrame) -> dict[str, MetadataValue]:
    """`roi/<channel>/<effect>` (and `mroi/...` where present) as top-level floats: Dagster plots
    float metadata of an asset across its materialisations, so a drifting ROI shows as a line. The
    published estimates, each rounded to what its interval supports.
    Rows without an estimate are left out (a NaN point would break the plot)."""
    out: dict[str, MetadataValue] = {}
    for prefix in ("roi", "mroi"):
        if prefix not in estimates.columns:
            continue
        for r in estimates.to_dict("records"):
            value = _float(r, prefix)
            if math.isfinite(value):
                out[f"{prefix}/{r['channel']}/{r['effect']}"] = MetadataValue.float(
                    rounded_to_interval(value, _float(r, f"{prefix}_ci_low"), _float(r, f"{prefix}_ci_high")))
    return out


def file_link(path: Path) -> MetadataValue:
    """A file as a clickable link in the UI (a `file://` URL; the path itself is metadata beside it)."""
    return MetadataValue.url(path.resolve().as_uri())


@contextmanager
def rule_failures() -> Iterator[None]:
    """Our refusals as Dagster `Failure`s: the run's page is headed by the rule paragraph
    ("[rule] place: detail Fix: fix") rather than a stack trace. The original error stays the cause."""
    try:
        yield
    except CmmmError as error:
        raise Failure(description=str(error), metadata={"rule": error.rule, "place": error.place,
                                                        "fix": error.fix}) from error


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def period_metadata(periods: pd.DataFrame, synergies: pd.DataFrame) -> dict[str, MetadataValue]:
    """Floats Dagster plots across runs: each channel's total incremental KPI in the latest quarter
    (`quarter_incremental/<channel>`), each campaign's incremental KPI and ROI
    (`campaign/<name>/incremental_kpi|roi`), each synergy (`synergy/<a>_<b>`); and the campaign,
    condition and synergy tables."""
    out: dict[str, MetadataValue] = {}
    total = periods[periods["effect"] == "total"] if "effect" in periods.columns else periods
    quarters = total[total["period_type"] == "quarter"]
    if len(quarters):
        latest = quarters[quarters["period"] == max(quarters["period"])]
        out["latest_quarter"] = MetadataValue.text(str(latest["period"].iloc[0]))
        for channel, value in zip(latest["channel"], latest["incremental_kpi"]):
            if _finite(value):
                out[f"quarter_incremental/{channel}"] = MetadataValue.float(float(value))
    campaigns = total[total["period_type"] == "campaign"]
    for name, kpi, roi in zip(campaigns["period"], campaigns["incremental_kpi"], campaigns["roi"]):
        for key, value in (("incremental_kpi", kpi), ("roi", roi)):
            if _finite(value):
                out[f"campaign/{name}/{key}"] = MetadataValue.float(float(value))
    for a, b, value in zip(synergies["channel_a"], synergies["channel_b"], synergies["incremental_kpi"]):
        if _finite(value):
            out[f"synergy/{a}_{b}"] = MetadataValue.float(float(value))
    shown = ["channel", "effect", "period", "incremental_kpi", "incremental_ci_low", "incremental_ci_high", "p_value",
             "roi"]
    if len(campaigns):
        out["campaigns"] = markdown_table(periods[periods["period_type"] == "campaign"][shown])
    conditions = periods[periods["period_type"] == "condition"]
    if len(conditions):
        out["conditions"] = markdown_table(conditions[[*shown, "equal_effect_p_value"]])
    if len(synergies):
        out["synergies"] = markdown_table(synergies[["channel_a", "channel_b", "incremental_kpi", "incremental_ci_low",
                                                     "incremental_ci_high", "p_value", "withheld_reason"]])
    return out
