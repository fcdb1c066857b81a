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
ATTENTION_KEY = "attention_items"
"""`robustness_report` metadata: the published attention list (level, text), which `cmmm run` prints."""
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
