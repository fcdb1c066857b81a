"""Budgets that follow sales: lagged-KPI nodes recognised, and the channels they plan withheld."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.dag.feedback import LagKind, feedback_reason, lagged_kpi_nodes
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.dag.identification import identify_channels as dag_identify_channels
from cmmm_pipeline.effects.estimation import identify_channels
from tests.conftest import sample_world


def _with_planning_inputs(features: pd.DataFrame) -> pd.DataFrame:
    out = features.copy()
    sales = out["sales"]
    lag = sales.shift(52)
    lag[:52] = sales[:52].mean()  # the weeks before the data filled as a user would
    out["budget_base"] = lag  # recognised from its values: the KPI 52 weeks before
    out["sales_mean_last4"] = sales.shift(1).rolling(4).mean().fillna(sales.mean())  # by name
    out["noise"] = np.random.default_rng(1).normal(size=len(out))
    return out


def test_lagged_kpi_columns_are_recognised_by_value_and_by_name() -> None:
    features = _with_planning_inputs(sample_world()["features"])
    found = lagged_kpi_nodes(features, "sales", ["budget_base", "sales_mean_last4", "noise", "price", "tv"])
    assert set(found) == {"budget_base", "sales_mean_last4"}
    assert (found["budget_base"].kind, found["budget_base"].weeks) == (LagKind.LAG, 52)
    assert (found["sales_mean_last4"].kind, found["sales_mean_last4"].weeks) == (LagKind.MEAN, 4)
    rolling = features.assign(avg=features["sales"].shift(1).rolling(8).mean())
    assert lagged_kpi_nodes(rolling, "sales", ["avg"])["avg"].weeks == 8


def test_a_channel_planned_from_past_kpi_is_withheld_and_the_others_estimated() -> None:
    world = sample_world()
    features = _with_planning_inputs(world["features"])
    g = world["g"].copy()
    g.add_edge("budget_base", "digital")
    columns = {**world["columns"], "budget_base": ["budget_base"]}
    expanded = expand_graph(g, columns)
    channels = list(world["config"].channel_names)
    specs, failures = identify_channels(features, expanded, g, channels, "sales")
    assert [(f.channel, f.effect) for f in failures] == [("digital", EffectType.TOTAL)]
    assert "planned from the KPI's past ('budget_base', the KPI 52 weeks before)" in failures[0].reason
    assert "g-estimate" in failures[0].reason and "feedback.csv" in failures[0].reason
    assert {s.channel for s in specs} == {"tv", "search", "email"}
    rows = {(r.channel, r.effect): r for r in dag_identify_channels(features, g, expanded, channels, "sales", [])}
    assert not rows[("digital", EffectType.TOTAL)].identifiable
    assert rows[("digital", EffectType.TOTAL)].reason == failures[0].reason
    assert rows[("email", EffectType.TOTAL)].identifiable


def test_no_feedback_without_a_path_from_the_lagged_kpi() -> None:
    g = nx.DiGraph([("seasonality", "tv"), ("tv", "sales"), ("sales_lag52", "sales")])
    lagged = {"sales_lag52": lagged_kpi_nodes(pd.DataFrame({"sales": np.arange(60.0), "sales_lag52": 0.0}),
                                              "sales", ["sales_lag52"])["sales_lag52"]}
    assert feedback_reason(g, "tv", "sales", lagged) is None
    g.add_edge("sales_lag52", "tv")
    assert feedback_reason(g, "tv", "sales", lagged) is not None
