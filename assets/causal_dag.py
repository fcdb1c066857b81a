"""Step 3: the user's causal DAG, validated, checked against the data and stored."""


import pandas as pd
from dagster import MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from assets.common import OWNERS, markdown_image, markdown_table
from assets.resources import CmmmSettings
from cmmm_pipeline.dag.audit import audit_dag
from cmmm_pipeline.data import warehouse


def _mermaid(edges: pd.DataFrame) -> str:
    lines = ["graph LR", *(f"    {a} --> {b}" for a, b in zip(edges["source"], edges["target"]))]
    return "```mermaid\n" + "\n".join(lines) + "\n```"


@asset(group_name="cmmm", kinds={"duckdb", "networkx", "dowhy"}, owners=OWNERS, deps=["transformed_media"])
def causal_dag(settings: CmmmSettings, duckdb: DuckDBResource) -> MaterializeResult:
    """The causal assumptions written down and audited: a DAG over channels, controls, latent causes
    and the KPI (acyclic, known nodes, the KPI a sink, every channel with a path to it); each
    conditional independence it implies tested on the transformed media (`dag_tests`); DoWhy
    identification per channel (`identification`); and overlap of spend within strata of each
    channel's adjustment set (`overlap`). The checks `dag_overlap`, `dag_independence` and
    `dag_identification` judge these tables."""
    config = settings.load()
    with duckdb.get_connection() as con:
        raw = warehouse.read_table(con, "raw_spend")
        features = warehouse.read_table(con, "transformed_media")
        audit = audit_dag(config, raw, features)
        tables = audit.tables()
        warehouse.write_tables(con, tables)
    tests, identification, overlap = tables["dag_tests"], tables["identification"], tables["overlap"]
    rejected = tests[tests["rejected"].astype(bool)]
    return MaterializeResult(metadata={
        "nodes": audit.graph.number_of_nodes(),
        "edges": audit.graph.number_of_edges(),
        "latent_nodes": ", ".join(sorted(config.latent)) or "none",
        "implications_tested": int(tests["implication"].nunique()) if len(tests) else 0,
        "implications_rejected": int(rejected["implication"].nunique()) if len(rejected) else 0,
        "independence": MetadataValue.text(audit.independence.message()),
        "untestable": MetadataValue.text("; ".join(f"{u.implication.text()}: {u.reason}"
                                                   for u in audit.independence.untestable) or "none"),
        "dag": markdown_image(audit.png(), "causal DAG with rejected implications dashed in red"),
        "dag_mermaid": MetadataValue.md(_mermaid(tables["dag_edges"])),
        "dag_tests": markdown_table(tests[["implication", "test", "statistic", "p_value", "p_adjusted", "rejected"]]),
        "identification": markdown_table(identification),
        "overlap": markdown_table(overlap[["channel", "stratum", "weeks", "spend_min", "spend_max", "spread", "ok"]]),
    })
