"""Step 2: adstock, saturation, seasonality and trend features per week."""


from dagster import MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline import warehouse
from cmmm_pipeline.features import build_features, configured_transform, transforms_table


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS, deps=["raw_spend"])
def transformed_media(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """Per channel: carryover (adstock) then diminishing returns (Hill) on spend scaled by its
    mean; plus the controls (Fourier seasonality, trend, observed columns) and the KPI."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        transforms = {c.name: configured_transform(c) for c in config.channels}
        features = build_features(raw, config, transforms)
        parameters = transforms_table(transforms)
        warehouse.write_tables(con, {"transformed_media": features, "transform_parameters": parameters})
    return MaterializeResult(metadata={"rows": len(features), "columns": ", ".join(features.columns),
                                       "parameters": markdown_table(parameters)})
