"""Small helpers the asset modules share: owners, and metadata an engineer reads in the Dagster UI
(markdown tables, inline PNG plots)."""


import base64
import datetime as dt

import numpy as np
import pandas as pd
from dagster import MetadataValue

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
