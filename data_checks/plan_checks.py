"""The budget plan's check (WARN, never blocking): a plan outside the data's support is the plan's
problem, not the run's, so the estimates still publish and the refusal is said where it is seen."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from resources.check_results import BEFORE_PUBLICATION
from resources.values import BudgetPlan


@asset_check(asset="budget_plan", op_tags=BEFORE_PUBLICATION)
def plan_within_support(budget_plan: BudgetPlan) -> AssetCheckResult:
    """Passes when no plan is configured or every channel of the plan lies within the spend its
    comparable weeks show. WARN when the plan was refused (the rules and supported ranges in the
    description) or computed outside support because it allows extrapolation."""
    from cmmm_pipeline.plan.planner import TOTAL

    table = budget_plan.budget_plan
    channels = table[table["channel"] != TOTAL]
    outside = channels[~channels["within_support"].astype(bool)]
    if not budget_plan.configured:
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                description="no plan configured (config key planning).")
    if budget_plan.refusals:
        description = "the plan was refused; the estimates publish without it.\n" + "\n".join(budget_plan.refusals)
    elif len(outside):
        description = "computed outside support (the plan allows extrapolation): " + "; ".join(
            f"{r.channel} {r.weekly_spend:,.0f} per week, supported {r.supported_low:,.0f}–{r.supported_high:,.0f}"
            for r in outside.itertuples())
    else:
        description = "every channel of the plan lies within its support."
    return AssetCheckResult(
        passed=not budget_plan.refusals and outside.empty, severity=AssetCheckSeverity.WARN, description=description,
        metadata={"status": MetadataValue.text(budget_plan.status),
                  "outside_support": MetadataValue.text(", ".join(outside["channel"]) or "none"),
                  **({"failed_rules": MetadataValue.text(", ".join(dict.fromkeys(
                      r for rules in table["rule"] for r in str(rules).split(", ") if r)))}
                     if budget_plan.refusals else {})})


PLAN_CHECKS = [plan_within_support]
