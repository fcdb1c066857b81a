"""Step 5a: the budget plan named in the config, read from this run's model inside the data's support."""

import math

from dagster import MetadataValue, Output, asset

from resources.metadata import OWNERS, markdown_table, rule_failures
from resources.settings import CmmmSettings
from resources.values import AteEstimates, BudgetPlan, DataFrame, TransformedMedia


def _plan_markdown(table: DataFrame, kpi: str, weeks: int, ci_level: float) -> MetadataValue:
    """The plan with headers that say which estimand each number is."""
    import pandas as pd

    level = f"{ci_level * 100:g}%"
    def interval(low: float, high: float) -> str:
        return f"[{low:,.0f}, {high:,.0f}]" if math.isfinite(low) and math.isfinite(high) else "—"

    shown = pd.DataFrame({
        "channel": table["channel"], "effect moved": table["effect"],
        "weekly spend (plan)": table["weekly_spend"],
        f"incremental {kpi} over {weeks} weeks": table["incremental_kpi"],
        f"{level} interval": [interval(a, b)
                              for a, b in zip(table["incremental_ci_low"], table["incremental_ci_high"])],
        "within support": table["within_support"].astype(bool),
        "supported weekly spend": [interval(a, b) for a, b in zip(table["supported_low"], table["supported_high"])],
        "weekly spend (current mix)": table["current_weekly_spend"],
        f"gain in {kpi} vs current": table["gain"],
        f"gain {level} interval": [interval(a, b) for a, b in zip(table["gain_ci_low"], table["gain_ci_high"])],
        "status": table["status"], "rule": table["rule"]})
    return markdown_table(shown, digits=0)


@asset(group_name="cmmm", kinds={"duckdb", "scipy"}, owners=OWNERS)
def budget_plan(settings: CmmmSettings, raw_spend: DataFrame, transformed_media: TransformedMedia,
                ate_estimates: AteEstimates) -> Output[BudgetPlan]:
    """The plan file the config names (`planning: {plan: plan.yaml}`), evaluated or optimised on this
    run's response curves and bootstrap draws, each channel bounded by the spend its comparable weeks
    show: per channel the plan's weekly spend and incremental KPI with its interval beside the current
    allocation at the same budget, and the gain. Published with the run as `plan.csv`, and week by week
    (the flighting `allocate_weeks: true` optimises) as `plan_weeks.csv`. A plan outside support is
    refused with its rule and the supported ranges (the `plan_within_support` check warns); the
    estimates publish all the same. Without a plan in the config the tables are empty."""
    from cmmm_pipeline.plan.model import model_from_estimates
    from cmmm_pipeline.plan.planner import TOTAL
    from cmmm_pipeline.plan.weekly import PlanStatus, empty_plan_table, weekly_plan

    config = settings.config
    planning = config.planning
    if planning is None:
        value = BudgetPlan(empty_plan_table(), False, "", 0, "", (), ())
        return Output(value, metadata={"plan": MetadataValue.text("no plan configured (config key planning)")})
    spec = planning.spec
    with rule_failures():
        model = model_from_estimates(raw_spend, transformed_media.transformed_media, config,
                                     ate_estimates.ate_estimates, ate_estimates.specs, ate_estimates.failures,
                                     ate_estimates.expanded, transformed_media.candidates,
                                     transformed_media.selected_index)
        plan = weekly_plan(model, spec)
    table = plan.table
    value = BudgetPlan(table, True, plan.status.value, spec.weeks, str(planning.plan), plan.notes,
                       tuple(str(e) for e in plan.refusals), plan.weeks)
    total = table[table["channel"] == TOTAL].iloc[0]
    metadata: dict[str, object] = {
        "plan_file": MetadataValue.path(str(planning.plan)),
        "mode": spec.mode.value, "weeks": spec.weeks, "status": plan.status.value,
        "plan": _plan_markdown(table, config.kpi, spec.weeks, config.estimation.ci_level),
        **{f"within_support/{c}": MetadataValue.bool(bool(s))
           for c, s in zip(table["channel"], table["within_support"].astype(bool))},
        "weekly_budget": MetadataValue.float(float(total["weekly_spend"])),
    }
    if plan.status is PlanStatus.PLANNED:
        for key in ("gain", "gain_ci_low", "gain_ci_high", "incremental_kpi", "kpi_forecast"):
            metadata[f"total_{key}"] = MetadataValue.float(float(total[key]))
    else:
        metadata["refused"] = MetadataValue.text("\n".join(value.refusals))
    if plan.notes:
        metadata["notes"] = MetadataValue.text("\n".join(plan.notes))
    return Output(value, metadata=metadata)
