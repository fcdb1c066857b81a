"""Step 2: adstock, saturation, seasonality and trend features per week."""

from dagster import Output, asset

from resources.metadata import OWNERS, markdown_table, rule_failures
from resources.settings import CmmmSettings
from resources.values import DataFrame, TransformedMedia


@asset(group_name="cmmm", kinds={"duckdb", "pandas"}, owners=OWNERS)
def transformed_media(settings: CmmmSettings, raw_spend: DataFrame) -> Output[TransformedMedia]:
    """Per channel: carryover (adstock) then diminishing returns (Hill) on spend scaled by its
    mean; plus the controls (Fourier seasonality, trend, observed columns) and the KPI. Transform
    parameters the config leaves out are selected from the data by one objective, the
    out-of-sample error of the KPI regression under forward-chaining time-series cross validation;
    the grid and its CV errors are stored as `transform_selection`."""
    from cmmm_pipeline.media.features import build_features, transforms_table
    from cmmm_pipeline.media.selection import SelectionSettings, select_transforms

    config = settings.config
    with rule_failures():
        selection = select_transforms(raw_spend, config, SelectionSettings.from_config(config.estimation))
        features = build_features(raw_spend, config, selection.transforms)
    parameters = transforms_table(selection.transforms, selection.cv_error, selection.grid_edges)
    chosen = selection.table[selection.table["selected"]] if len(selection.table) else selection.table
    value = TransformedMedia(transformed_media=features, transform_parameters=parameters,
                             transform_selection=selection.table, transforms=dict(selection.transforms),
                             candidates=dict(selection.candidates), selected_index=dict(selection.selected_index))
    return Output(value, metadata={
        "rows": len(features), "columns": ", ".join(features.columns),
        "parameters": markdown_table(parameters),
        "selected_from_data": ", ".join(selection.cv_error) or "none (all configured)",
        "grid_points_evaluated": len(selection.table),
        "selection": markdown_table(chosen[["channel", "adstock", "decay", "weibull_shape", "weibull_scale",
                                            "half_saturation", "slope", "cv_error", "grid_edge"]]),
        "selected_on_grid_edge": ", ".join(f"{c} ({', '.join(e)})" for c, e in selection.grid_edges.items() if e)
        or "none",
    })
