"""Step 4: per-channel causal effects with DoWhy."""

from dagster import Output, asset

from resources.metadata import OWNERS, point_estimates_table, rule_failures
from resources.settings import CmmmSettings
from resources.values import AteEstimates, CausalDag, DataFrame, TransformedMedia


@asset(group_name="cmmm", kinds={"duckdb", "dowhy"}, owners=OWNERS)
def ate_estimates(settings: CmmmSettings, raw_spend: DataFrame, transformed_media: TransformedMedia,
                  causal_dag: CausalDag) -> Output[AteEstimates]:
    """Per channel: the adjustment set under the DAG (DoWhy's default set, computed by d-separation)
    and DoWhy's estimate of the effect by backdoor linear regression; total, and direct/indirect where the DAG has mediators (a total that
    flows through a mediating channel is g-computed through that channel's own transform). Reported as
    incremental KPI and ROI, with a naive all-channels OLS ROI beside it. A channel whose effect the
    DAG does not identify from the observed columns is kept as a row with its reason and no
    numbers, while the other channels go on."""
    from cmmm_pipeline.effects.estimation import estimate_channels

    config = settings.config
    with rule_failures():
        result = estimate_channels(raw_spend, transformed_media.transformed_media, config, causal_dag.graph,
                                   transformed_media.transforms)
    table = result.table
    value = AteEstimates(ate_estimates=table, specs=tuple(result.specs), failures=tuple(result.failures),
                         expanded=result.expanded)
    return Output(value, metadata={
        "rows": len(table), "estimates": point_estimates_table(table),
        "not_estimated": ", ".join(sorted({f"{f.channel} ({f.effect.value})" for f in result.failures})) or "none",
    })
