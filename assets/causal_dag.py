"""Step 3: the user's causal DAG, validated, checked against the data and stored."""

from dagster import MetadataValue, Output, asset

from resources.metadata import OWNERS, markdown_image, markdown_table, rule_failures
from resources.settings import CmmmSettings
from resources.values import CausalDag, DataFrame, TransformedMedia


def _mermaid(edges: DataFrame) -> str:
    lines = ["graph LR", *(f"    {a} --> {b}" for a, b in zip(edges["source"], edges["target"]))]
    return "```mermaid\n" + "\n".join(lines) + "\n```"


@asset(group_name="cmmm", kinds={"duckdb", "networkx", "dowhy"}, owners=OWNERS)
def causal_dag(settings: CmmmSettings, raw_spend: DataFrame,
               transformed_media: TransformedMedia) -> Output[CausalDag]:
    """The causal assumptions written down and audited: a DAG over channels, controls, latent causes
    and the KPI (acyclic, known nodes, the KPI a sink, every channel with a path to it); each
    conditional independence it implies tested on the transformed media (`dag_tests`); DoWhy
    identification per channel (`identification`); and overlap of spend within strata of each
    channel's adjustment set (`overlap`); and drivers the DAG leaves out, as a trend, seasonality or
    autocorrelation in the KPI's residual given its parents (`missing_drivers`). The checks
    `dag_overlap`, `dag_independence`, `dag_identification` and `missing_drivers` judge these tables."""
    from cmmm_pipeline.dag.audit import audit_dag
    from cmmm_pipeline.dag.diagnostics import DiagnosticSettings, diagnose_missing_drivers

    config = settings.config
    with rule_failures():
        audit = audit_dag(config, raw_spend, transformed_media.transformed_media)
        drivers = diagnose_missing_drivers(transformed_media.transformed_media, audit.expanded, config.kpi,
                                           DiagnosticSettings())
    tables = audit.tables()
    value = CausalDag(graph=audit.graph, expanded=audit.expanded, **tables, missing_drivers=drivers.table(),
                      missing_drivers_summary=drivers.description(),
                      implications_not_tested=audit.independence.not_tested)
    tests, identification, overlap = tables["dag_tests"], tables["identification"], tables["overlap"]
    rejected = tests[tests["rejected"].astype(bool)]
    return Output(value, metadata={
        "nodes": audit.graph.number_of_nodes(),
        "edges": audit.graph.number_of_edges(),
        "latent_nodes": ", ".join(sorted(config.latent)) or "none",
        "implications_tested": int(tests["implication"].nunique()) if len(tests) else 0,
        "implications_rejected": int(rejected["implication"].nunique()) if len(rejected) else 0,
        "implications_not_tested": audit.independence.not_tested,
        "independence": MetadataValue.text(audit.independence.message()),
        "untestable": MetadataValue.text("; ".join(f"{u.implication.text()}: {u.reason}"
                                                   for u in audit.independence.untestable) or "none"),
        "dag": markdown_image(audit.png(), "causal DAG with rejected implications dashed in red"),
        "dag_mermaid": MetadataValue.md(_mermaid(tables["dag_edges"])),
        "dag_tests": markdown_table(tests[["implication", "test", "statistic", "p_value", "p_adjusted", "rejected"]]),
        "dag_suggestions": markdown_table(tables["dag_suggestions"][["rank", "edit", "resolves", "evidence"]])
        if len(tables["dag_suggestions"]) else MetadataValue.text("no edit proposed"),
        "identification": markdown_table(identification),
        "overlap": markdown_table(overlap[["channel", "stratum", "weeks", "spend_min", "spend_max", "spread", "ok"]]),
    })
