"""Step 1: ingest the weekly spend and KPI table into the warehouse."""


import pandas as pd
from dagster import MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.data.ingest import load_raw


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS)
def raw_spend(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """Weekly media spend and KPI, read from the configured file or DuckDB table, names and types
    normalised (date → `week`, numbers as floats). Gated by the blocking data-quality check."""
    config = settings.load()
    raw = load_raw(config)
    with duckdb.get_connection() as con:
        warehouse.write_tables(con, {"raw_spend": raw})
    weeks = raw["week"]
    # Metadata only: the data-quality check judges the values; coercion keeps this summary from failing first.
    columns = {c.name: pd.to_numeric(raw[c.spend_column], errors="coerce") for c in config.channels
               if c.spend_column in raw.columns}
    spend = pd.DataFrame([{"channel": name, "total": float(v.sum()), "mean_week": float(v.mean()),
                           "zero_weeks": int((v == 0).sum())} for name, v in columns.items()])
    return MaterializeResult(metadata={
        "dagster/row_count": len(raw),
        "rows": len(raw),
        "first_week": str(weeks.min().date()), "last_week": str(weeks.max().date()),
        "source": MetadataValue.path(str(config.data.path)),
        "channels": ", ".join(config.channel_names),
        "spend": markdown_table(spend, digits=1),
        "latest_weeks": markdown_table(raw.tail(4), digits=2),
    })
