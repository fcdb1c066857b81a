"""Metadata an engineer reads in the Dagster UI: owners, markdown tables, inline PNG plots, and
numbers as top-level floats so Dagster plots them across runs."""


import base64
import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import Failure, MetadataValue

from cmmm_pipeline.core.errors import CmmmError

OWNERS = ["team:marketing-science"]
P_VALUE_COLUMNS = frozenset({"p_value", "p_adjusted"})


def _markdown_cell(value: object, digits: int, p_value: bool = False) -> str:
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


def markdown_image(png: bytes, alt: str) -> MetadataValue:
    """A PNG shown inline in the UI's metadata panel (markdown image with a data URI)."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def roi_metadata(estimates: pd.DataFrame) -> dict[str, MetadataValue]:
    """`roi/<channel>/<effect>` (and `mroi/...` where present) as top-level floats: Dagster plots
    float metadata of an asset across its materialisations, so a drifting ROI shows as a line.
    Rows without an estimate are left out (a NaN point would break the plot)."""
    out: dict[str, MetadataValue] = {}
    for prefix in ("roi", "mroi"):
        if prefix not in estimates.columns:
            continue
        for channel, effect, value in zip(estimates["channel"], estimates["effect"], estimates[prefix]):
            if value is not None and math.isfinite(float(value)):
                out[f"{prefix}/{channel}/{effect}"] = MetadataValue.float(float(value))
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
