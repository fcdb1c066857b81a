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
THRESHOLDS = ov.OverlapThresholds(bins=3, min_weeks=8, min_spread=0.1, min_residual_share=0.1)


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
    assert rows[0].residual_share == pytest.approx(1.0, abs=0.03)


def _high_season_tv(seed: int, n: int = 156) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n)
    season = np.sin(2 * np.pi * t / 52.1775)[:, None]
    rng = np.random.default_rng(seed)
    return season, np.where(season[:, 0] > 0.3, 1000.0 * np.exp(rng.normal(0.0, 0.3, n)), 0.0)


def test_spend_fixed_by_the_season_is_withheld_for_its_dead_off_season_stratum() -> None:
    """TV on air only in the high season: the low-season stratum shows no contrast at all."""
    season, spend = _high_season_tv(3)
    rows = ov.channel_overlap("tv", spend / 1000.0, spend, season, ["season"], THRESHOLDS)
    low = rows[0]
    assert not low.ok and low.spend_max == 0.0 and low.spread == 0.0
    assert "spread 0 (95% upper bound 0) < 0.1" in low.reason
    assert rows[-1].ok  # the high season varies: the problem is where TV never moves
    support = ov.channel_supports(rows, THRESHOLDS)["tv"]
    assert support.withheld and "stratum 1/3" in support.reason and support.reason.startswith("overlap: ")


def test_a_channel_its_adjusters_fix_is_withheld_for_its_residual_share() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(156, 2))
    x = 2.0 + z[:, 0] - 0.5 * z[:, 1] + rng.normal(0.0, 0.05, 156)
    rows = ov.channel_overlap("tv", x, 100.0 * x, z, ["a", "b"], THRESHOLDS)
    share = rows[0].residual_share
    assert share == pytest.approx(0.05 / np.std(z[:, 0] - 0.5 * z[:, 1]), rel=0.2) and share < 0.1
    assert all(not r.ok and f"residual share {share:.3g} (95% upper bound " in r.reason for r in rows)
    assert rows[0].residual_share < rows[0].residual_share_upper < 0.1
    support = ov.channel_supports(rows, THRESHOLDS)["tv"]
    assert support.withheld and support.reason.count("residual share") == 1


def _stratum_with_spread(target: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(media, adjuster) of 156 weeks whose first stratum (the low third of the adjuster) has the
    given spread: TV low but moving in the off season, high in season."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0.0, 1.0, 156)
    low = z < z[52]
    noise = rng.normal(0.0, 1.0, 156)
    x = np.where(low, 1.0, 3.0 + 2.0 * z) + noise
    for _ in range(50):  # the overall SD moves with the low stratum's: a fixed point
        x[low] = 1.0 + noise[low] / noise[low].std() * target * x.std()
    return x, z[:, None]


def test_a_spread_at_the_threshold_up_to_its_last_digit_is_not_withheld() -> None:
    """The knife edge: a spread of 0.0951 printed "0.10" is within sampling error of 0.1; it withheld a
    channel the data identify when the gate cut at the estimate."""
    x, z = _stratum_with_spread(0.0951, 8)
    rows = ov.channel_overlap("tv", x, 100.0 * x, z, ["season"], THRESHOLDS)
    low = rows[0]
    assert f"{low.spread:.2f}" == "0.10" and low.spread < 0.1 and low.weeks == 52
    assert low.spread < 0.1 < low.spread_upper < 0.2
    assert low.ok and not ov.channel_supports(rows, THRESHOLDS)["tv"].withheld
    hard_cut = ov.OverlapThresholds(bins=3, min_weeks=8, min_spread=0.1, min_residual_share=0.1, confidence=0.5)
    assert not ov.channel_overlap("tv", x, 100.0 * x, z, ["season"], hard_cut)[0].ok  # what the hard cut did


def test_a_spread_clearly_below_the_threshold_is_still_withheld_with_its_bound() -> None:
    x, z = _stratum_with_spread(0.05, 8)
    low = ov.channel_overlap("tv", x, 100.0 * x, z, ["season"], THRESHOLDS)[0]
    assert low.spread == pytest.approx(0.05, rel=1e-6) and low.spread_upper < 0.1
    assert not low.ok and low.reason == f"spread 0.05 (95% upper bound {low.spread_upper:.3g}) < 0.1"


def test_the_log_sd_error_matches_its_sampling_distribution() -> None:
    """SE(log SD) by the delta method against a simulation, for white noise and for AR(0.6) weeks."""
    rng = np.random.default_rng(9)
    for rho in (0.0, 0.6):
        draws = []
        for _ in range(2000):
            e = rng.normal(size=52 + 50)
            v = np.empty_like(e)
            v[0] = e[0]
            for t in range(1, len(e)):
                v[t] = rho * v[t - 1] + e[t]
            draws.append(v[50:])
        observed = np.std([np.log(d.std()) for d in draws])
        predicted = np.median([ov.log_sd_error(d) for d in draws])
        assert predicted == pytest.approx(observed, rel=0.25), (rho, predicted, observed)


def test_extrapolated_share_is_the_part_below_the_comparable_weeks_floor() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 3.0])
    floors = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    assert ov.extrapolated_share(x, floors) == pytest.approx((0 + 0 + 0 + 0 + 2 + 2 + 2 + 2) / x.sum())
    # the same sum per week is the curve's lower support bound: the flag and the picture share it
    support = ov.spend_support(x, floors)
    assert (support.low, support.high, support.mean) == (1.0, 4.0, x.mean())
    assert support.extrapolated_share == ov.extrapolated_share(x, floors)
    assert support.roi_support(0.2) is ov.RoiSupport.EXTRAPOLATED  # 8 / 17 below the floors
    assert ov.spend_support(np.full(5, 3.0), np.full(5, 3.0)).extrapolated_share == 1.0  # a constant
    rng = np.random.default_rng(7)
    z = rng.normal(size=(156, 1))
    always_on = 100.0 * np.exp(rng.normal(0.0, 0.3, 156))
    pulsed = np.where(rng.random(156) < 0.3, 0.0, always_on)
    on = ov.channel_supports(ov.channel_overlap("a", always_on / 100, always_on, z, ["z"], THRESHOLDS), THRESHOLDS)
    off = ov.channel_supports(ov.channel_overlap("b", pulsed / 100, pulsed, z, ["z"], THRESHOLDS), THRESHOLDS)
    assert on["a"].roi_support is ov.RoiSupport.EXTRAPOLATED and on["a"].extrapolated_share > 0.5
    assert off["b"].roi_support is ov.RoiSupport.OBSERVED and off["b"].extrapolated_share == 0.0
    assert not on["a"].withheld and not off["b"].withheld


def test_without_adjusters_there_is_one_stratum_of_all_weeks() -> None:
    spend = np.linspace(1.0, 2.0, 60)
    rows = ov.channel_overlap("email", spend, spend, np.zeros((60, 0)), [], THRESHOLDS)
    assert len(rows) == 1 and rows[0].weeks == 60 and rows[0].spread == pytest.approx(1.0)
    assert rows[0].residual_share == pytest.approx(1.0) and rows[0].ok


def test_too_few_weeks_per_stratum_fails() -> None:
    rng = np.random.default_rng(4)
    spend = 100.0 * np.exp(rng.normal(0.0, 0.5, 20))
    rows = ov.channel_overlap("email", spend, spend, rng.normal(size=(20, 1)), ["a"],
                              ov.OverlapThresholds(bins=4, min_weeks=8, min_spread=0.1))
    assert all(not r.ok and "5 weeks < 8" in r.reason for r in rows)


def test_the_gx_gate_names_the_channel_and_the_thin_strata() -> None:
    from data_checks.dag_checks import validate_overlap

    season, tv = _high_season_tv(5)
    rng = np.random.default_rng(5)
    email = 100.0 * np.exp(rng.normal(0.0, 0.5, 156))
    features = pd.DataFrame({"tv": tv / 1000.0, "email": email / 100.0, "season": season[:, 0]})
    rows = ov.overlap_strata(features, {"tv": tv, "email": email}, {"tv": ("season",), "email": ("season",)},
                             THRESHOLDS)
    table = ov.overlap_table(rows)
    result = validate_overlap(table, THRESHOLDS)
    assert not result.success
    assert {f.rule for f in result.failures} == {"overlap-min-spread"}
    assert "tv stratum 1/3" in result.message() and "email" not in result.message()
    message = ov.overlap_message(table)
    assert "channel 'tv'" in message and "stratum 1/3" in message and "(email) are estimated" in message
    assert ov.withheld_channels(table) == ["tv"]
    passing = validate_overlap(table[table["channel"] == "email"], THRESHOLDS)
    assert passing.success


# ---------------------------------------------------------------------------------------------
# The Dagster step: causal_dag and its checks on a warehouse prepared from the sample


TRUE_TRANSFORMS = {name: {"spend_column": ch.spend_column, "adstock": {"type": "geometric", "decay": ch.decay},
                          "saturation": {"type": "hill", "half_saturation": ch.half_saturation, "slope": ch.slope}}
                   for name, ch in Scenario().channels.items()}


def run_dag_step(tmp_path: Path, edit_config: Callable[[dict], None] | None = None,
                 edit_data: Callable[[pd.DataFrame], None] | None = None):
    """Materialise causal_dag (with its checks) and a downstream asset on the sample, from stand-in
    raw_spend and transformed_media steps, through the project's IO manager."""
    from dagster import AssetIn, asset, materialize

    from assets.causal_dag import causal_dag
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.media.features import build_features, configured_transform
    from data_checks.dag_checks import DAG_CHECKS
    from resources.io_manager import StagingIOManager
    from resources.settings import CmmmSettings
    from resources.values import TransformedMedia

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
    transforms = {c.name: configured_transform(c) for c in config.channels}
    features = build_features(raw, config, transforms)

    @asset(name="raw_spend")
    def raw_spend_stand_in():
        return raw

    @asset(name="transformed_media")
    def transformed_media_stand_in():
        names = pd.DataFrame({"channel": list(transforms)})
        return TransformedMedia(features, names, names, transforms, {c: (t,) for c, t in transforms.items()},
                                {c: 0 for c in transforms})

    @asset(ins={"causal_dag": AssetIn()})
    def downstream(causal_dag) -> None:
        """Stands in for ate_estimates: runs only if no blocking check failed."""

    database = str(tmp_path / "warehouse.duckdb")
    return materialize([raw_spend_stand_in, transformed_media_stand_in, causal_dag, downstream, *DAG_CHECKS],
                       raise_on_error=False, resources={
                           "settings": CmmmSettings(config_path=str(config_path), output_dir=str(tmp_path / "out")),
                           "io_manager": StagingIOManager(database=database)})


def staging(result) -> str:
    """The schema the run staged its tables in."""
    from cmmm_pipeline.data.warehouse import staging_schema

    return staging_schema(result.run_id)


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _tv_only_in_high_season(data: pd.DataFrame) -> None:
    t = np.arange(len(data))
    season = np.sin(2 * np.pi * t / 52.1775) + 0.5 * np.cos(2 * np.pi * t / 52.1775)
    data.loc[season < 0.2, "tv_spend"] = 0.0


def test_thin_overlap_withholds_the_channel_and_the_others_go_on(tmp_path: Path) -> None:
    result = run_dag_step(tmp_path, edit_data=_tv_only_in_high_season)
    evaluation = checks(result)["dag_overlap"]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert "channel 'tv'" in evaluation.description and "stratum 1/3" in evaluation.description
    assert "overlap-min-spread" in evaluation.description
    assert evaluation.metadata["withheld_channels"].value == "tv"
    assert {"causal_dag", "downstream"} <= materialized(result)  # a WARN does not block
    import duckdb

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT stratum, ok, spend_max FROM {staging(result)}.overlap WHERE channel = ? "
                           "ORDER BY stratum", ["tv"]).fetchall()
    assert rows[0][1] is False and rows[0][2] == 0.0


def test_no_channel_left_to_estimate_blocks_the_run(tmp_path: Path) -> None:
    def demand_everything(config: dict) -> None:
        config.setdefault("checks", {})["overlap_min_residual_share"] = 0.99

    result = run_dag_step(tmp_path, edit_config=demand_everything)
    evaluation = checks(result)["dag_overlap"]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert "overlap-residual-variation" in evaluation.description
    assert "No channel is left to estimate" in evaluation.description
    assert "causal_dag" in materialized(result) and "downstream" not in materialized(result)


def test_sample_overlap_passes_and_the_estimates_may_run(tmp_path: Path) -> None:
    result = run_dag_step(tmp_path)
    evaluation = checks(result)["dag_overlap"]
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["withheld_channels"].value == "none"
    assert {"causal_dag", "downstream"} <= materialized(result)
    assert checks(result)["dag_independence"].passed
    assert checks(result)["dag_identification"].passed
