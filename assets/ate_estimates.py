"""Step 4: per-channel causal effects with DoWhy."""


from dagster import MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.dag.graph import graph_from_table
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.effects.estimation import estimate_channels
from cmmm_pipeline.media.features import node_columns, transforms_from_table


@asset(group_name="cmmm", kinds={"duckdb", "dowhy"}, owners=OWNERS, deps=["causal_dag"])
def ate_estimates(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """Per channel: DoWhy identifies the adjustment set under the DAG and estimates the effect by
    backdoor linear regression; total, and direct/indirect where the DAG has mediators (a total that
    flows through a mediating channel is g-computed through that channel's own transform). Reported as
    incremental KPI and ROI, with a naive all-channels OLS ROI beside it. A channel whose effect the
    DAG does not identify from the observed columns is kept as a row with its reason and no
    numbers, while the other channels go on."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        features = warehouse.read_table(con, "transformed_media")
        g = graph_from_table(warehouse.read_table(con, "dag_edges"), node_columns(raw, config))
        transforms = transforms_from_table(warehouse.read_table(con, "transform_parameters"))
        result = estimate_channels(raw, features, config, g, transforms)
        table = result.table
        warehouse.write_tables(con, {"ate_estimates": table})
    shown = table[["channel", "effect", "ate", "incremental_kpi", "roi", "naive_roi"]]
    return MaterializeResult(metadata={
        "rows": len(table), "estimates": markdown_table(shown),
        "not_estimated": ", ".join(sorted({f"{f.channel} ({f.effect.value})" for f in result.failures})) or "none",
    })
