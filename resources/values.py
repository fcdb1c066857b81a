"""The typed values the steps hand each other through the IO manager. A DataFrame field is stored as
the warehouse table of the same name (the names the report, the CSVs and the docs use); every other
field is stored as typed JSON and comes back as the same type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd
    from pandas import DataFrame

    from cmmm_pipeline.effects.estimation import EffectSpec, NotEstimated
    from cmmm_pipeline.media.features import ChannelTransform
else:
    DataFrame = Any
    """A step's DataFrame input or output: `pandas.DataFrame` to a type checker, `Any` to Dagster, which
    resolves the annotations of every asset when the code location loads, before any step needs pandas."""


def _no_plan_weeks() -> pd.DataFrame:
    from cmmm_pipeline.plan.weekly import empty_plan_weeks

    return empty_plan_weeks()


@dataclass(frozen=True)
class TransformedMedia:
    """The model table and the transforms that made it."""

    transformed_media: pd.DataFrame
    transform_parameters: pd.DataFrame
    """The applied transforms as rows (with the selection's CV error), for the report."""
    transform_selection: pd.DataFrame
    """The selection grid and its CV errors (empty when every transform was configured)."""
    transforms: dict[str, ChannelTransform]
    """Channel → the transform applied: what the estimates reuse, exactly."""
    candidates: dict[str, tuple[ChannelTransform, ...]]
    """Channel → every candidate the selection searched (one for a configured channel): what the
    bootstrap re-selects from in every resample."""
    selected_index: dict[str, int]
    """Channel → the index of the applied transform among its candidates."""


@dataclass(frozen=True)
class CausalDag:
    """The audited DAG: the graph itself, its expansion to model columns and the audit's tables."""

    graph: nx.DiGraph
    expanded: nx.DiGraph
    """One node per model column (Fourier seasonality is several)."""
    dag_edges: pd.DataFrame
    dag_tests: pd.DataFrame
    identification: pd.DataFrame
    overlap: pd.DataFrame
    missing_drivers: pd.DataFrame
    """Trend, seasonality and autocorrelation left in the KPI's residual given its DAG parents."""
    missing_drivers_summary: str
    """One readable line: the fixes, or that nothing is missing."""
    implications_not_tested: int = 0
    """Implied independences left untested by `checks.max_implications`."""
    dag_suggestions: pd.DataFrame | None = None
    """The edits `cmmm suggest` would propose for the rejected implications (none: no rows)."""


@dataclass(frozen=True)
class AteEstimates:
    """The point estimates and what the robustness step must repeat: the specs behind them."""

    ate_estimates: pd.DataFrame
    specs: tuple[EffectSpec, ...]
    failures: tuple[NotEstimated, ...]
    expanded: nx.DiGraph


@dataclass(frozen=True)
class BudgetPlan:
    """The configured plan read from this run's model (`cmmm_pipeline.plan.weekly`): the `budget_plan`
    table (plan.csv; no rows when the config names no plan) and what the report and the check say."""

    budget_plan: pd.DataFrame
    configured: bool
    status: str
    """`planned` or `refused` (`PlanStatus`); empty when no plan is configured."""
    weeks: int
    plan_file: str
    notes: tuple[str, ...]
    refusals: tuple[str, ...]
    """Each refusal as `[rule] place: detail Fix: fix`."""
    budget_plan_weeks: pd.DataFrame = field(default_factory=_no_plan_weeks)
    """plan_weeks.csv: per plan week and channel, the spend and the KPI it adds (no rows without a computed plan)."""
