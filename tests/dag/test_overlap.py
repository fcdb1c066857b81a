"""Overlap (positivity) of continuous spend within strata of each channel's adjustment set, its
Great Expectations gate, and the blocking Dagster check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cmmm_pipeline.dag import overlap as ov
from cmmm_pipeline.simulation.simulate import Scenario

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
THRESHOLDS = ov.OverlapThresholds(bins=3, min_weeks=8, min_spread=0.5)


def test_strata_are_equal_sized_quantiles_of_the_score() -> None:
    score = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(ov.strata(score, 3), [2, 0, 1, 0, 1, 2])
    assert np.bincount(ov.strata(np.random.default_rng(0).normal(size=156), 3)).tolist() == [52, 52, 52]


def test_propensity_score_is_the_least_squares_prediction() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 2))
    x = 1.0 + 2.0 * z[:, 0] - z[:, 1]
    np.testing.assert_allclose(ov.propensity_score(x, z), x, atol=1e-9)


def test_spend_independent_of_the_adjusters_overlaps_everywhere() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(156, 3))
    spend = 100.0 * np.exp(rng.normal(0.0, 0.5, 156))
    rows = ov.channel_overlap("email", spend / 100.0, spend, z, ["a", "b", "c"], THRESHOLDS)
    assert [r.weeks for r in rows] == [52, 52, 52]
    assert all(r.ok for r in rows), [r.reason for r in rows]
    assert all(0.7 < r.spread < 1.3 for r in rows)


def test_spend_fixed_by_the_season_is_thin_in_the_off_season() -> None:
    """TV on air only in the high season: the low-season stratum has no spend at all."""
    t = np.arange(156)
    season = np.sin(2 * np.pi * t / 52.1775)[:, None]
    rng = np.random.default_rng(3)
    spend = np.where(season[:, 0] > 0.3, 1000.0 * np.exp(rng.normal(0.0, 0.3, 156)), 0.0)
    rows = ov.channel_overlap("tv", spend / 1000.0, spend, season, ["season"], THRESHOLDS)
    low = rows[0]
    assert not low.ok
    assert low.spend_max == 0.0 and low.spread == 0.0 and low.high_spend_weeks == 0
    assert "spread 0.00 < 0.5" in low.reason and "no week above the median spend" in low.reason
    assert rows[-1].low_spend_weeks == 0 and not rows[-1].ok


def test_without_adjusters_there_is_one_stratum_of_all_weeks() -> None:
    spend = np.linspace(1.0, 2.0, 60)
    rows = ov.channel_overlap("email", spend, spend, np.zeros((60, 0)), [], THRESHOLDS)
    assert len(rows) == 1 and rows[0].weeks == 60 and rows[0].spread == pytest.approx(1.0)


def test_too_few_weeks_per_stratum_fails() -> None:
    rng = np.random.default_rng(4)
    spend = 100.0 * np.exp(rng.normal(0.0, 0.5, 20))
    rows = ov.channel_overlap("email", spend, spend, rng.normal(size=(20, 1)), ["a"],
                              ov.OverlapThresholds(bins=4, min_weeks=8, min_spread=0.1))
    assert all(not r.ok and "5 weeks < 8" in r.reason for r in rows)


def test_the_gx_gate_names_the_channel_and_the_thin_strata() -> None:
    from data_checks.dag_checks import validate_overlap

    t = np.arange(156)
    season = np.sin(2 * np.pi * t / 52.1775)
    rng = np.random.default_rng(5)
    tv = np.where(season > 0.3, 1000.0 * np.exp(rng.normal(0.0, 0.3, 156)), 0.0)
    email = 100.0 * np.exp(rng.normal(0.0, 0.5, 156))
    features = pd.DataFrame({"tv": tv / 1000.0, "email": email / 100.0, "season": season})
    rows = ov.overlap_strata(features, {"tv": tv, "email": email}, {"tv": ("season",), "email": ("season",)},
                             THRESHOLDS)
    table = ov.overlap_table(rows)
    result = validate_overlap(table, THRESHOLDS)
    assert not result.success
    assert {f.rule for f in result.failures} >= {"overlap-min-spread", "overlap-high-spend-weeks"}
    assert "tv stratum 1/3" in result.message() and "email" not in result.message()
    message = ov.overlap_message(table)
    assert "channel 'tv'" in message and "stratum 1/3" in message and "email" not in message
    passing = validate_overlap(table[table["channel"] == "email"], THRESHOLDS)
    assert passing.success


# ---------------------------------------------------------------------------------------------
# The Dagster step: causal_dag and its checks on a warehouse prepared from the sample


TRUE_TRANSFORMS = {name: {"spend_column": ch.spend_column, "adstock": {"type": "geometric", "decay": ch.decay},
                          "saturation": {"type": "hill", "half_saturation": ch.half_saturation, "slope": ch.slope}}
                   for name, ch in Scenario().channels.items()}


def run_dag_step(tmp_path: Path, edit_config: Callable[[dict], None] | None = None,
                 edit_data: Callable[[pd.DataFrame], None] | None = None):  # noqa: ANN201 - dagster result
    """Materialise causal_dag (with its checks) and a downstream asset on the sample, after writing
    raw_spend and transformed_media to staging directly."""
    from dagster import asset, materialize
    from dagster_duckdb import DuckDBResource

    from assets.causal_dag import causal_dag
    from assets.resources import CmmmSettings
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.data import warehouse
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.media.features import build_features, configured_transform
    from data_checks.dag_checks import DAG_CHECKS

    tmp_path.mkdir(parents=True, exist_ok=True)
    data = pd.read_csv(SAMPLE / "weekly.csv")
    if edit_data:
        edit_data(data)
    data.to_csv(tmp_path / "weekly.csv", index=False)
    raw_config = yaml.safe_load((SAMPLE / "config.yaml").read_text(encoding="utf-8"))
    raw_config["channels"] = TRUE_TRANSFORMS
    raw_config.pop("experiments", None)
    if edit_config:
        edit_config(raw_config)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw_config), encoding="utf-8")
    config = load_config(config_path)
    raw = load_raw(config)
    features = build_features(raw, config, {c.name: configured_transform(c) for c in config.channels})
    database = str(tmp_path / "warehouse.duckdb")
    import duckdb

    with duckdb.connect(database) as con:
        warehouse.write_tables(con, {"raw_spend": raw, "transformed_media": features})

    @asset(deps=["causal_dag"])
    def downstream() -> None:
        """Stands in for ate_estimates: runs only if no blocking check failed."""

    return materialize([causal_dag, downstream, *DAG_CHECKS], raise_on_error=False, resources={
        "settings": CmmmSettings(config_path=str(config_path), output_dir=str(tmp_path / "out")),
        "duckdb": DuckDBResource(database=database)})


def materialized(result) -> set[str]:  # noqa: ANN001
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def checks(result) -> dict:  # noqa: ANN001
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_thin_overlap_blocks_the_estimates_and_names_the_channel_and_strata(tmp_path: Path) -> None:
    def tv_only_in_high_season(data: pd.DataFrame) -> None:
        t = np.arange(len(data))
        season = np.sin(2 * np.pi * t / 52.1775) + 0.5 * np.cos(2 * np.pi * t / 52.1775)
        data.loc[season < 0.2, "tv_spend"] = 0.0

    result = run_dag_step(tmp_path, edit_data=tv_only_in_high_season)
    evaluation = checks(result)["dag_overlap"]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert "channel 'tv'" in evaluation.description and "stratum 1/3" in evaluation.description
    assert "overlap-min-spread" in evaluation.description
    assert "causal_dag" in materialized(result) and "downstream" not in materialized(result)
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT stratum, ok, spend_max FROM staging.overlap WHERE channel = ? ORDER BY stratum",
                           ["tv"]).fetchall()
    assert rows[0][1] is False and rows[0][2] == 0.0


def test_sample_overlap_passes_and_the_estimates_may_run(tmp_path: Path) -> None:
    result = run_dag_step(tmp_path)
    evaluation = checks(result)["dag_overlap"]
    assert evaluation.passed, evaluation.description
    assert {"causal_dag", "downstream"} <= materialized(result)
    assert checks(result)["dag_independence"].passed
    assert checks(result)["dag_identification"].passed
