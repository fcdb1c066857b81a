"""Step 3: the user's causal DAG, validated against the config and stored as an edge table."""


from dagster import MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS
from assets.resources import CmmmSettings
from cmmm_pipeline import warehouse
from cmmm_pipeline.graph import build_graph, edges_table, node_roles


@asset(group_name="cmmm", kinds={"duckdb", "networkx"}, owners=OWNERS, deps=["transformed_media"])
def causal_dag(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """The causal assumptions written down: a DAG over channels, controls and the KPI. Checked to be
    acyclic, to name only known nodes, to keep the KPI a sink and to give every channel a path to it."""
    config = settings.load()
    g = build_graph(config)
    edges = edges_table(g, node_roles(config))
    with duckdb.get_connection() as con:
        warehouse.write_tables(con, {"dag_edges": edges})
    mermaid = "\n".join(["graph LR", *(f"    {a} --> {b}" for a, b in g.edges)])
    return MaterializeResult(metadata={"nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
                                       "dag": MetadataValue.md(f"```mermaid\n{mermaid}\n```")})
