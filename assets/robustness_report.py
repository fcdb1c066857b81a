"""Step 5: uncertainty and trust, then publication of the whole run."""


import datetime as dt

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from resources.check_results import run_check_results
from resources.metadata import (
    ATTENTION_KEY,
    OWNERS,
    changes_table,
    estimates_table,
    file_link,
    forest_plot,
    marginal_table,
    markdown_table,
    period_metadata,
    roi_metadata,
    rule_failures,
)
from resources.settings import CmmmSettings, WarehouseResource
from resources.values import AteEstimates, DataFrame, TransformedMedia


@asset(group_name="cmmm", kinds={"duckdb", "html"}, owners=OWNERS, deps=["budget_plan"])
def robustness_report(context: AssetExecutionContext, settings: CmmmSettings, duckdb: WarehouseResource,
                      raw_spend: DataFrame, transformed_media: TransformedMedia,
                      ate_estimates: AteEstimates) -> MaterializeResult:
    """Trust in every estimate: intervals from a block bootstrap that re-selects the transforms in
    every resample, p-values, DoWhy refuters with a PASS / REVIEW / FAIL status per channel, and
    the lift tests reconciled with the model. Then the run is published, the one step that does:
    the run's staging tables copied to `published`, estimates appended to the history, and the
    output files (estimates.csv, refutations.csv, experiments.csv, report.html) replaced, all only
    after every gate passed. The `budget_plan` step runs first, so its staged table (plan.csv)
    publishes with the run."""
    from cmmm_pipeline.data import warehouse
    from cmmm_pipeline.data.markets import with_market
    from cmmm_pipeline.effects.robustness import assess
    from cmmm_pipeline.publish import outputs
    from cmmm_pipeline.publish.report import CHECK_RESULTS, attention_lines

    config = settings.config
    run_id = context.run.run_id
    staging = warehouse.staging_schema(run_id)
    point = ate_estimates.ate_estimates
    with rule_failures():
        assessment = assess(raw_spend, transformed_media.transformed_media, config, point, ate_estimates.specs,
                            ate_estimates.expanded, transformed_media.candidates, transformed_media.selected_index)
        market = settings.market
        estimates = with_market(outputs.final_estimates(point, assessment.intervals, assessment.robustness), market)
        checks = run_check_results(context.instance, run_id)  # every check of the run has run by now
        with duckdb.get_connection() as con:
            warehouse.write_tables(con, {"estimates": estimates,
                                         "refutations": with_market(assessment.refutations, market),
                                         "experiments": with_market(assessment.experiments, market),
                                         "effects_by_period": with_market(assessment.periods, market),
                                         "synergies": with_market(assessment.synergies, market),
                                         "feedback": with_market(assessment.feedback, market),
                                         CHECK_RESULTS: checks}, staging)
            run_time = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            written = outputs.publish_run(con, settings.output_folder(), config, run_id, run_time, staging=staging)
    level = f"{config.estimation.ci_level * 100:g}%"
    changes = written.changes
    refutations = assessment.refutations
    hidden = refutations[refutations["refuter"] == "benchmark_confounder"][["channel", "effect", "status", "message"]]
    return MaterializeResult(metadata={
        "market": market or "(one market)",
        **roi_metadata(estimates),
        "estimates": estimates_table(estimates, level),
        "marginal_roi": marginal_table(estimates, level),
        "forest_plot": forest_plot(estimates, written.forest_png),
        "previous_run": changes.previous.run_id if changes.previous else "none (first run)",
        "outside_previous_interval": len(changes.flagged),
        "change_since_previous_run": changes_table(changes.table, estimates, level),
        "attention": MetadataValue.md("\n".join(f"- {line}" for line in attention_lines(written.attention))
                                      or "Nothing failed and nothing needs review."),
        ATTENTION_KEY: MetadataValue.json([{"level": i.level.name, "text": i.text} for i in written.attention]),
        "hidden_confounders": markdown_table(hidden),
        **({"budgets_follow_sales": markdown_table(assessment.feedback[["channel", "status", "roi", "roi_ci_low",
                                                                        "roi_ci_high", "p_value", "first_stage_f",
                                                                        "planned_from"]])}
           if len(assessment.feedback) else {}),
        "report": file_link(written.report),
        "report_path": MetadataValue.path(str(written.report.resolve())),
        "estimates_csv": MetadataValue.path(str(written.estimates.resolve())),
        **period_metadata(assessment.periods, assessment.synergies),
    })
