"""Hidden confounders benchmarked against observed ones (Cinelli & Hazlett 2020, section 4.4)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.effects import refutation as ref
from cmmm_pipeline.effects.estimation import EffectSpec, channel_specs
from cmmm_pipeline.effects.refutation import RefutationThresholds, RefuterKind, refutations_table, regression_summary
from tests.conftest import sample_world

# Cinelli & Hazlett's Darfur example, as the sensemakr packages print it: "directlyharmed" on
# "peacefactor" (estimate 0.09731582, se 0.02325654, df 783), benchmarked against "female"
# (t = -2.680 in the treatment regression, -9.789 in the outcome regression).
DARFUR = {"estimate": 0.09731582, "se": 0.02325654, "df": 783, "r2dz": 0.00916428667504862,
          "r2yz": 0.12464092303637, "adjusted": 0.0752202712144491, "adjusted_se": 0.0218733277437572}


def test_bound_matches_the_darfur_benchmark() -> None:
    r2_treatment = DARFUR["r2dz"] / (1 + DARFUR["r2dz"])  # kd = 1: R²_{D~Z|X} = f² of the benchmark
    r2_outcome = 9.789**2 / (9.789**2 + 783)  # t²/(t² + df), t rounded to 3 decimals as published
    r2dz, r2yz = ref.confounder_bound(r2_treatment, r2_outcome)
    assert r2dz == pytest.approx(DARFUR["r2dz"], abs=1e-12)
    assert r2yz == pytest.approx(DARFUR["r2yz"], abs=1e-5)
    bias = ref.omitted_bias(DARFUR["se"], DARFUR["df"], DARFUR["r2dz"], DARFUR["r2yz"])
    assert DARFUR["estimate"] - bias == pytest.approx(DARFUR["adjusted"], abs=1e-7)
    assert ref.adjusted_se(DARFUR["se"], DARFUR["df"], DARFUR["r2dz"], DARFUR["r2yz"]) == pytest.approx(
        DARFUR["adjusted_se"], abs=1e-7)
    # Three times as strong: R²_{D~Z|X} = 3 f², larger outcome strength too.
    r2dz3, r2yz3 = ref.confounder_bound(r2_treatment, r2_outcome, kd=3.0)
    assert r2dz3 == pytest.approx(3 * DARFUR["r2dz"], rel=1e-12) and r2yz3 > 3 * r2yz * 0.99


def test_an_impossible_strength_is_refused_and_the_outcome_side_capped() -> None:
    assert ref.confounder_bound(0.6, 0.1) is None  # 0.6/0.4 > 1: a confounder that strong cannot exist
    assert ref.confounder_bound(0.2, 0.9)[1] == 1.0


def test_partial_r2_of_one_column_is_t_squared_over_t_squared_plus_df() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(200), rng.normal(size=(200, 3))])
    y = x @ np.array([1.0, 0.5, -0.2, 0.1]) + rng.normal(size=200)
    fit = sm.OLS(y, x).fit()
    t = fit.tvalues[2]
    assert ref.partial_r2(y, x, [2]) == pytest.approx(t**2 / (t**2 + fit.df_resid), rel=1e-10)


def _confounded(beta: float, seed: int, n: int = 400) -> pd.DataFrame:
    """d and y confounded by an observed x and a hidden z of exactly the same strength (orthogonal)."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    d = 0.5 * x + 0.5 * z + rng.normal(size=n)
    y = beta * d + x + z + rng.normal(size=n)
    return pd.DataFrame({"d": d, "x": x, "y": y})


SPEC = EffectSpec("d", EffectType.TOTAL, ("x",), ())


def _bench_row(data: pd.DataFrame, multiple: float = 1.0) -> ref.RefutationResult:
    summary = regression_summary(data, SPEC, "y")
    benchmarks = ref.confounder_benchmarks(data, SPEC, "y", summary, multiple, ["x"], ["x"])
    return ref.benchmark_confounder(SPEC, summary, RefutationThresholds(benchmark_multiple=multiple), benchmarks)


def test_a_confounder_as_strong_as_the_observed_one_brackets_the_truth() -> None:
    """Omitting z biases the estimate well outside its interval; bias-adjusted for a confounder as
    strong as x, the estimate moves toward the truth in every draw and its interval covers it in
    most (30 of 40 here: a bound, not an estimator of the confounder)."""
    covered, naive_covered = 0, 0
    for seed in range(40):
        data = _confounded(0.5, seed)
        row = _bench_row(data)
        summary = regression_summary(data, SPEC, "y")
        covered += row.new_effect_low <= 0.5 <= row.new_effect_high
        assert abs(row.new_effect - 0.5) < abs(row.estimate - 0.5)
        naive_covered += abs(summary.estimate - 0.5) < 1.97 * summary.inference_se
        assert row.refuter is RefuterKind.BENCHMARK_CONFOUNDER and "as strong as x" in row.message
    assert naive_covered == 0 and covered >= 26


def test_a_spurious_effect_is_flagged_and_a_real_one_passes() -> None:
    spurious = _bench_row(_confounded(0.0, 1))  # significant only through the hidden z
    assert spurious.status is Status.REVIEW and spurious.case in (ref.BenchmarkConfounderCase.ERASED,
                                                                   ref.BenchmarkConfounderCase.REVERSED)
    real = _bench_row(_confounded(1.0, 1))
    assert real.case is ref.BenchmarkConfounderCase.CLEAR and real.new_effect_low > 0
    # A half-strength benchmark moves the estimate less.
    assert abs(_bench_row(_confounded(1.0, 1), 0.5).new_effect - real.estimate) < abs(real.new_effect - real.estimate)


def test_the_sample_rows_name_the_benchmark_or_say_why_there_is_none() -> None:
    world = sample_world()
    config = world["config"]
    specs = channel_specs(world["features"], world["expanded"], world["g"], list(config.channel_names), "sales")
    nodes = [*config.channel_names, *config.controls]
    rows = {}
    for spec in specs:
        summary = regression_summary(world["features"], spec, "sales")
        controls = {c for c in nx.ancestors(world["expanded"], spec.channel)
                    if any(c == k or c.startswith(f"{k}_") for k in config.controls)}
        benchmarks = ref.confounder_benchmarks(world["features"], spec, "sales", summary, 1.0, nodes, controls)
        rows[(spec.channel, spec.effect)] = ref.benchmark_confounder(spec, summary, RefutationThresholds(),
                                                                     benchmarks, roi_factor=2.0)
    tv = rows[("tv", EffectType.TOTAL)]
    assert tv.case is ref.BenchmarkConfounderCase.CLEAR and "as strong as seasonality" in tv.message
    assert "would move the ROI from" in tv.message
    assert 0 < tv.new_effect_low < tv.new_effect < tv.new_effect_high < tv.estimate
    # Seasonality explains most of digital's spend: a confounder as strong could not exist.
    assert rows[("digital", EffectType.TOTAL)].case is ref.BenchmarkConfounderCase.IMPOSSIBLE
    assert rows[("email", EffectType.TOTAL)].case is ref.BenchmarkConfounderCase.NO_BENCHMARK
    search = rows[("search", EffectType.TOTAL)]
    assert "as strong as seasonality" in search.message and search.status is Status.PASS
    table = refutations_table(list(rows.values()))
    assert list(table.columns[-2:]) == ["new_effect_low", "new_effect_high"]
    assert table.loc[table["channel"] == "tv", "new_effect_low"].notna().all()


def test_the_multiple_is_a_validated_config_key() -> None:
    from cmmm_pipeline.core.config import EstimationConfig
    from cmmm_pipeline.core.errors import ConfigError

    assert EstimationConfig().confounder_multiple == 1.0
    with pytest.raises(ConfigError, match="confounder_multiple"):
        EstimationConfig(confounder_multiple=0.0)


@pytest.mark.slow
def test_the_sample_run_writes_benchmark_rows_in_roi(sample_run) -> None:
    table = pd.read_csv(sample_run / "refutations.csv")
    rows = table[table["refuter"] == "benchmark_confounder"].set_index(["channel", "effect"])
    tv = rows.loc[("tv", "total")]
    assert tv["status"] == "PASS" and "as strong as seasonality" in tv["message"]
    assert "would move the ROI from 1.89" in tv["message"]
    assert tv["new_effect_low"] < tv["new_effect"] < tv["new_effect_high"] < tv["estimate"]
    assert set(rows.index.get_level_values("channel")) == {"tv", "search", "digital", "email"}
