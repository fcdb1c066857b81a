"""Step 1: ingest the weekly spend and KPI table."""

from dagster import MetadataValue, Output, asset

from assets.sensors import data_hash
from resources.metadata import OWNERS, markdown_table, rule_failures
from resources.settings import CmmmSettings
from resources.values import DataFrame


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS)
def raw_spend(settings: CmmmSettings) -> Output[DataFrame]:
    """Weekly media spend and KPI, read from the configured file or DuckDB table, names and types
    normalised (date → `week`, numbers as floats). Stored as the run's `raw_spend` table; gated by
    the blocking data-quality check."""
    import pandas as pd

    from cmmm_pipeline.data.ingest import load_raw

    config = settings.config
    with rule_failures():
        raw = load_raw(config, settings.market)
    weeks = raw["week"]
    # Metadata only: the data-quality check judges the values; coercion keeps this summary from failing first.
    columns = {c.name: pd.to_numeric(raw[c.spend_column], errors="coerce") for c in config.channels
               if c.spend_column in raw.columns}
    spend = pd.DataFrame([{"channel": name, "total": float(v.sum()), "mean_week": float(v.mean()),
                           "zero_weeks": int((v == 0).sum())} for name, v in columns.items()])
    return Output(raw, metadata={
        "dagster/row_count": len(raw),
        "rows": len(raw),
        "first_week": str(weeks.min().date()), "last_week": str(weeks.max().date()),
        "source": MetadataValue.path(str(config.data.path)),
        "config_path": MetadataValue.path(str(settings.config_path)),
        "data_sha256": MetadataValue.text(data_hash(config.data.path)),
        "market": settings.market or "(one market)",
        "channels": ", ".join(config.channel_names),
        "spend": markdown_table(spend, digits=1),
        "latest_weeks": markdown_table(raw.tail(4), digits=2),
    })
