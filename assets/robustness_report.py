"""Step 5: uncertainty and trust, then publication of the whole run."""


import datetime as dt

import numpy as np
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline import outputs, warehouse
from cmmm_pipeline.estimation import specs_from_table
from cmmm_pipeline.ingest import spend_totals
from cmmm_pipeline.robustness import bootstrap_intervals, intervals_table


@asset(group_name="cmmm", kinds={"duckdb", "html"}, owners=OWNERS, deps=["ate_estimates"])
def robustness_report(context: AssetExecutionContext, settings: CmmmSettings,
                      duckdb: DuckDBResource) -> MaterializeResult:
    """Block-bootstrap intervals and HAC p-values for every estimate; then the run is published:
    staging tables copied to `published`, estimates appended to the history, and the output files
    (estimates.csv, report.html) replaced, all only after every gate passed."""
    config = settings.load()
    est = config.estimation
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        features = warehouse.read_table(con, "transformed_media")
        point = warehouse.read_table(con, "ate_estimates")
        intervals = bootstrap_intervals(features, specs_from_table(point), spend_totals(raw, config), config.kpi,
                                        est.ci_level, est.bootstrap_samples, est.block_length,
                                        np.random.default_rng(est.seed))
        estimates = outputs.final_estimates(point, intervals_table(intervals))
        warehouse.write_tables(con, {"estimates": estimates})
        run_time = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        warehouse.publish(con, context.run_id, run_time, "estimates")
        written = outputs.write_outputs(con, settings.output_path(), config, context.run_id)
    shown = estimates[["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "p_value", "naive_roi"]]
    return MaterializeResult(metadata={
        "estimates": markdown_table(shown),
        "report": MetadataValue.path(str(written.report)),
        "estimates_csv": MetadataValue.path(str(written.estimates)),
    })
