"""Step 1: ingest the weekly spend and KPI table into the warehouse."""


from dagster import MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS
from assets.resources import CmmmSettings
from cmmm_pipeline import warehouse
from cmmm_pipeline.ingest import load_raw


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS)
def raw_spend(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """Weekly media spend and KPI, read from the configured file or DuckDB table, names and types
    normalised (date → `week`, numbers as floats). Gated by the blocking data-quality check."""
    config = settings.load()
    raw = load_raw(config)
    with duckdb.get_connection() as con:
        warehouse.write_tables(con, {"raw_spend": raw})
    weeks = raw["week"]
    return MaterializeResult(metadata={
        "rows": len(raw),
        "first_week": str(weeks.min().date()), "last_week": str(weeks.max().date()),
        "source": MetadataValue.path(str(config.data.path)),
        "channels": ", ".join(config.channel_names),
    })
