"""The DAG audit in one call: the graph from the config, its implications tested on the data,
identification per channel, and overlap per identifiable channel. The `causal_dag` asset stores
what this returns; the asset checks judge it."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import pandas as pd

from cmmm_pipeline.core.config import SEASONALITY, TREND, PipelineConfig
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.dag.drawing import draw_dag_png
from cmmm_pipeline.dag.graph import edges_table, expand_graph, node_roles
from cmmm_pipeline.dag.identification import Identification, identification_table, identify_channels, total_adjustments
from cmmm_pipeline.dag.independence import (
    IndependenceReport,
    IndependenceSettings,
    implied_independences,
    run_independence_tests,
    with_edges_to_add,
)
from cmmm_pipeline.dag.overlap import OverlapStratum, OverlapThresholds, overlap_strata, overlap_table
from cmmm_pipeline.dag.suggest import RUN_SPEND_TESTS, SUGGESTION_COLUMNS, Suggestions, suggest, suggestions_table
from cmmm_pipeline.media.features import node_columns


@dataclass(frozen=True)
class DagAudit:
    graph: nx.DiGraph
    expanded: nx.DiGraph
    roles: dict[str, str]
    independence: IndependenceReport
    identification: tuple[Identification, ...]
    overlap: tuple[OverlapStratum, ...]
    generated: frozenset[str] = frozenset()
    """Nodes the pipeline generates (seasonality, trend): no edge can point into them."""
    suggestions: Suggestions | None = None
    """The edits `cmmm suggest` would propose (without DoWhy's falsification and PC)."""

    def dag_tests(self) -> pd.DataFrame:
        """The `dag_tests` table, each rejected implication with the edge that would account for it."""
        return with_edges_to_add(self.independence.table(), self.graph, self.roles, self.generated)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The warehouse tables: dag_edges, dag_tests, identification, overlap, dag_suggestions."""
        return {"dag_edges": edges_table(self.graph, self.roles), "dag_tests": self.dag_tests(),
                "identification": identification_table(self.identification),
                "overlap": overlap_table(self.overlap),
                "dag_suggestions": suggestions_table(self.suggestions) if self.suggestions else
                pd.DataFrame(columns=SUGGESTION_COLUMNS)}

    def png(self) -> bytes:
        return draw_dag_png(self.graph, self.dag_tests(), self.roles)


def generated_nodes(raw: pd.DataFrame, config: PipelineConfig) -> set[str]:
    """Controls the pipeline generates (Fourier seasonality, linear trend): deterministic, no noise."""
    return {c for c in (SEASONALITY, TREND) if c in config.controls and c not in raw.columns}


def independence_settings(config: PipelineConfig) -> IndependenceSettings:
    return IndependenceSettings(alpha=config.checks.independence_alpha, seed=config.estimation.seed,
                                max_implications=config.checks.max_implications)


def overlap_thresholds(config: PipelineConfig) -> OverlapThresholds:
    return OverlapThresholds.from_checks(config.checks)


@numeric_step()
def audit_dag(config: PipelineConfig, raw: pd.DataFrame, features: pd.DataFrame) -> DagAudit:
    """Everything the DAG step checks, from the raw weekly table and the transformed media."""
    g = build_graph(config)
    columns = node_columns(raw, config)
    expanded = expand_graph(g, columns)
    deterministic = generated_nodes(raw, config)
    widths = {node: len(cols) for node, cols in columns.items()}
    implications = implied_independences(g, columns, widths, deterministic)
    settings = independence_settings(config)
    trend = TREND if TREND in config.controls else None
    report = run_independence_tests(features, implications, columns, deterministic, settings, trend,
                                    first=config.channel_names)
    identification = identify_channels(features, g, expanded, list(config.channel_names), config.kpi, config.latent)
    adjustments = total_adjustments(identification)
    spend = {c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    strata = overlap_strata(features, spend, adjustments, overlap_thresholds(config), expanded)
    roles = node_roles(config)
    suggestions = suggest(g, report, features, columns, roles, deterministic, settings, config.kpi, trend_node=trend,
                          spend=spend, spend_limit=RUN_SPEND_TESTS)
    return DagAudit(g, expanded, roles, report, tuple(identification), tuple(strata), frozenset(deterministic),
                    suggestions)
