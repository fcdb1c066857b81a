"""Small helpers the asset modules share: markdown tables for metadata and warehouse access."""


import pandas as pd
from dagster import MetadataValue

OWNERS = ["team:marketing-science"]


def markdown_table(df: pd.DataFrame, digits: int = 3, max_rows: int = 40) -> MetadataValue:
    shown = df.head(max_rows).copy()
    for column in shown.select_dtypes("number").columns:
        shown[column] = shown[column].map(lambda v: f"{v:,.{digits}f}" if pd.notna(v) else "—")
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(v) for v in r) + " |" for r in shown.itertuples(index=False)]
    return MetadataValue.md("\n".join([header, rule, *rows]))
