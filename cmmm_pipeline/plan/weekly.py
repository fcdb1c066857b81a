"""The plan the weekly run refreshes (`planning: {plan: plan.yaml}` in the config): the `budget_plan`
table, published with the run as `plan.csv`, and its week-by-week layout (`budget_plan_weeks`,
`plan_weeks.csv`: the optimised flighting with `allocate_weeks: true`, else the same spend every week).

A plan the model cannot read within the data's support is a finding about the plan, not a failure
of the run: it is refused as `cmmm plan` refuses it (same rules, same messages), and the refusal is
recorded in the table (`status` = `refused`, the rule and the message on the rows of the channels
it names, with their supported ranges) while the estimates still publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from cmmm_pipeline.plan.model import FittedModel
from cmmm_pipeline.plan.planner import PLAN_COLUMNS, TOTAL, run_plan
from cmmm_pipeline.plan.spec import PlanError, PlanMode, PlanSpec

BUDGET_PLAN_COLUMNS = [*PLAN_COLUMNS, "weeks", "status", "rule", "message"]
"""plan.csv as the weekly run publishes it: `cmmm plan`'s columns, then the plan's horizon, whether
it was computed or refused, and the refusal's rule and message."""
_TEXT = ("channel", "effect", "status", "rule", "message")
PLAN_WEEKS_COLUMNS = ["week", "channel", "spend", "incremental_kpi"]
"""plan_weeks.csv: per plan week and channel, the spend and the KPI the plan adds in that week."""


def empty_plan_weeks() -> pd.DataFrame:
    """The week-by-week table of a run without a computed plan: no rows, typed columns."""
    return pd.DataFrame({"week": pd.Series(dtype="datetime64[ns]"), "channel": pd.Series(dtype=object),
                         "spend": pd.Series(dtype=float), "incremental_kpi": pd.Series(dtype=float)})


class PlanStatus(Enum):
    PLANNED = "planned"
    """Computed; every channel within its support (or outside it with allow_extrapolation, marked)."""
    REFUSED = "refused"
    """Not computed: a rule refused it (e.g. spend outside the supported range)."""


@dataclass(frozen=True)
class WeeklyPlan:
    status: PlanStatus
    table: pd.DataFrame
    """`BUDGET_PLAN_COLUMNS`: one row per channel and a `total` row."""
    notes: tuple[str, ...]
    refusals: tuple[PlanError, ...] = ()
    weeks: pd.DataFrame = field(default_factory=empty_plan_weeks)
    """`PLAN_WEEKS_COLUMNS`, one row per plan week and channel; no rows when the plan was refused."""


def empty_plan_table() -> pd.DataFrame:
    """The table of a run without a plan: no rows, typed columns (so the warehouse can hold it)."""
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in BUDGET_PLAN_COLUMNS})


def _dtype(column: str) -> object:
    return object if column in _TEXT else bool if column == "within_support" else int if column == "weeks" else float


def weekly_plan(model: FittedModel, spec: PlanSpec) -> WeeklyPlan:
    """Evaluate or optimise the configured plan; a refusal becomes rows, not an exception."""
    try:
        result = run_plan(model, spec)
    except PlanError as error:
        return refused_plan(model, spec, error.problems)
    table = result.table.assign(weeks=spec.weeks, status=PlanStatus.PLANNED.value, rule="", message="")
    outside = table[(table["channel"] != TOTAL) & ~table["within_support"].astype(bool)]
    if len(outside):
        table.loc[outside.index, "message"] = [
            f"outside support ({r.supported_low:,.0f}–{r.supported_high:,.0f} per week): computed because the plan "
            "allows extrapolation" for r in outside.itertuples()]
    weeks = result.weeks if result.weeks is not None else empty_plan_weeks()
    return WeeklyPlan(PlanStatus.PLANNED, table[BUDGET_PLAN_COLUMNS], result.notes, (),
                      weeks.reindex(columns=PLAN_WEEKS_COLUMNS).reset_index(drop=True))


def _channel_of(error: PlanError, channels: tuple[str, ...]) -> str | None:
    """The channel a refusal names in its place (`... key 'spend.tv'`, `'bounds.tv'`), if any."""
    for c in channels:
        if error.place.endswith((f"'spend.{c}'", f"'bounds.{c}'")):
            return c
    return None


def refused_plan(model: FittedModel, spec: PlanSpec, errors: tuple[PlanError, ...]) -> WeeklyPlan:
    """One row per channel with its supported range (and the plan's weekly spend when it names one);
    the rows of the channels a refusal names carry its rule and message, the total row every rule."""
    nan = float("nan")
    by_channel: dict[str, list[PlanError]] = {}
    general: list[PlanError] = []
    for e in errors:
        channel = _channel_of(e, model.channels)
        (by_channel.setdefault(channel, []) if channel else general).append(e)
    rows = []
    for c in model.channels:
        support = model.supports[c]
        spend = spec.spend.get(c) if spec.mode is PlanMode.EVALUATE else None
        mine = by_channel.get(c, [])
        rows.append({"channel": c, "effect": model.effect(c).value,
                     "weekly_spend": float(np.mean(spend)) if spend is not None else nan,
                     "within_support": bool(spend is None or all(support.contains(s) for s in spend)),
                     "supported_low": support.low, "supported_high": support.high, "weeks": spec.weeks,
                     "status": PlanStatus.REFUSED.value, "rule": ", ".join(dict.fromkeys(e.rule for e in mine)),
                     "message": " ".join(f"{e.detail} Fix: {e.fix}" for e in mine)})
    spent = [r["weekly_spend"] for r in rows]
    rows.append({"channel": TOTAL, "effect": "",
                 "weekly_spend": float(np.sum(spent)) if all(np.isfinite(spent)) else spec.weekly_budget,
                 "within_support": all(r["within_support"] for r in rows), "supported_low": nan,
                 "supported_high": nan, "weeks": spec.weeks, "status": PlanStatus.REFUSED.value,
                 "rule": ", ".join(dict.fromkeys(e.rule for e in errors)),
                 "message": " ".join(f"{e.detail} Fix: {e.fix}" for e in general)
                 or f"the plan was refused ({len(errors)} problem{'s' * (len(errors) != 1)}); see the channels' rows."})
    table = pd.DataFrame(rows).reindex(columns=BUDGET_PLAN_COLUMNS)
    for column in BUDGET_PLAN_COLUMNS:
        table[column] = table[column].astype(_dtype(column))
    return WeeklyPlan(PlanStatus.REFUSED, table, (), tuple(errors))


def refusal_text(errors: tuple[PlanError, ...]) -> str:
    """One line per refusal: `[rule] place: detail Fix: fix`."""
    return "\n".join(str(e) for e in errors)
