"""Step 2: adstock, saturation, seasonality and trend features per week."""


from dagster import MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.media.features import build_features, transforms_table
from cmmm_pipeline.media.selection import SelectionSettings, select_transforms


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS, deps=["raw_spend"])
def transformed_media(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """Per channel: carryover (adstock) then diminishing returns (Hill) on spend scaled by its
    mean; plus the controls (Fourier seasonality, trend, observed columns) and the KPI. Transform
    parameters the config leaves out are selected from the data by one objective, the
    out-of-sample error of the KPI regression under forward-chaining time-series cross validation;
    the grid and its CV errors are stored as `transform_selection`."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        selection = select_transforms(raw, config, SelectionSettings.from_config(config.estimation))
        features = build_features(raw, config, selection.transforms)
        parameters = transforms_table(selection.transforms, selection.cv_error)
        warehouse.write_tables(con, {"transformed_media": features, "transform_parameters": parameters,
                                     "transform_selection": selection.table})
    chosen = selection.table[selection.table["selected"]] if len(selection.table) else selection.table
    return MaterializeResult(metadata={
        "rows": len(features), "columns": ", ".join(features.columns),
        "parameters": markdown_table(parameters),
        "selected_from_data": ", ".join(selection.cv_error) or "none (all configured)",
        "grid_points_evaluated": len(selection.table),
        "selection": markdown_table(chosen[["channel", "decay", "half_saturation", "slope", "cv_error"]]),
    })
