"""Step 5: uncertainty and trust, then publication of the whole run."""


import datetime as dt

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_image, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.dag.graph import expand_graph, graph_from_table
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.effects.robustness import assess
from cmmm_pipeline.media.features import node_columns
from cmmm_pipeline.publish import outputs


@asset(group_name="cmmm", kinds={"duckdb", "html"}, owners=OWNERS, deps=["ate_estimates"])
def robustness_report(context: AssetExecutionContext, settings: CmmmSettings,
                      duckdb: DuckDBResource) -> MaterializeResult:
    """Trust in every estimate: intervals from a block bootstrap that re-selects the transforms in
    every resample, p-values, DoWhy refuters with a PASS / REVIEW / FAIL status per channel, and
    the lift tests reconciled with the model. Then the run is published: staging tables copied to
    `published`, estimates appended to the history, and the output files (estimates.csv,
    refutations.csv, experiments.csv, report.html) replaced, all only after every gate passed."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        features = warehouse.read_table(con, "transformed_media")
        point = warehouse.read_table(con, "ate_estimates")
        columns = node_columns(raw, config)
        expanded = expand_graph(graph_from_table(warehouse.read_table(con, "dag_edges"), columns), columns)
        assessment = assess(raw, features, config, point, warehouse.read_table(con, "transform_parameters"),
                            warehouse.read_table(con, "transform_selection"), expanded)
        estimates = outputs.final_estimates(point, assessment.intervals, assessment.robustness)
        warehouse.write_tables(con, {"estimates": estimates, "refutations": assessment.refutations,
                                     "experiments": assessment.experiments})
        run_time = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        warehouse.publish(con, context.run.run_id, run_time, "estimates")
        written = outputs.write_outputs(con, settings.output_path(), config, context.run.run_id)
    shown = estimates[[c for c in ("channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "p_value", "naive_roi",
                                   "robustness") if c in estimates.columns]]
    changes = written.changes
    return MaterializeResult(metadata={
        "estimates": markdown_table(shown),
        "forest_plot": markdown_image(written.forest_png, "ROI by channel: causal interval beside the naive ROI"),
        "previous_run": changes.previous.run_id if changes.previous else "none (first run)",
        "outside_previous_interval": len(changes.flagged),
        "change_since_previous_run": markdown_table(changes.table),
        "report": MetadataValue.path(str(written.report)),
        "estimates_csv": MetadataValue.path(str(written.estimates)),
    })
