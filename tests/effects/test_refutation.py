"""Refuters and sensitivity: values, statuses, seeds and thresholds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import EffectType
from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.effects import refutation as ref
from cmmm_pipeline.effects.estimation import EffectSpec, channel_specs, fit_dowhy
from cmmm_pipeline.effects.refutation import (
    RefutationThresholds,
    RefuterKind,
    channel_robustness,
    refutations_table,
    refute_effect,
    regression_summary,
    robustness_value,
    sensitivity,
)
from cmmm_pipeline.simulation.simulate import Scenario, simulate
from tests.conftest import sample_world

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"
THRESHOLDS = RefutationThresholds()


def _world(data_override: pd.DataFrame | None = None) -> dict:
    """The sample's graph and features with the simulator's true transforms; optionally other data."""
    world = sample_world(data_override)
    features, expanded = world["features"], world["expanded"]
    specs = channel_specs(features, expanded, world["g"], list(world["config"].channel_names), "sales")
    return {"features": features, "g": expanded, "specs": {(s.channel, s.effect): s for s in specs}}


@pytest.fixture(scope="module")
def sample() -> dict:
    return _world()


@pytest.fixture(scope="module")
def tv_results(sample: dict) -> dict:
    spec = sample["specs"][("tv", EffectType.TOTAL)]
    results = refute_effect(sample["features"], sample["g"], spec, "sales", 20, 7, THRESHOLDS)
    return {r.refuter: r for r in results}


def test_placebo_effect_is_near_zero_and_passes(tv_results: dict) -> None:
    placebo = tv_results[RefuterKind.PLACEBO_TREATMENT]
    assert placebo.status is Status.PASS
    assert abs(placebo.new_effect) < 0.05 * placebo.estimate
    assert placebo.p_value > 0.05  # 0 is a plausible centre of the placebo effects


def test_irrelevant_changes_do_not_move_a_sound_estimate(tv_results: dict) -> None:
    for kind in (RefuterKind.RANDOM_COMMON_CAUSE, RefuterKind.DATA_SUBSET):
        r = tv_results[kind]
        assert r.status is Status.PASS, kind
        assert r.statistic < THRESHOLDS.shift_review
        assert r.new_effect == pytest.approx(r.estimate, rel=0.02)
        assert r.new_effect != r.estimate  # the refuter really re-estimated on changed data


def test_a_simulated_hidden_confounder_pushes_the_estimate_toward_zero(sample: dict, tv_results: dict) -> None:
    r = tv_results[RefuterKind.UNOBSERVED_COMMON_CAUSE]
    spec = sample["specs"][("tv", EffectType.TOTAL)]
    summary = regression_summary(sample["features"], spec, "sales")
    # Strength r² with both: the confounding bias r²·sd(KPI residual)/sd(spend residual), plus the
    # attenuation β·r² from adding the confounder's noise to the observed spend.
    r2 = THRESHOLDS.confounder_partial_r2
    expected = r2 * summary.outcome_residual_sd / summary.treatment_residual_sd + r2 * r.estimate
    assert r.estimate - r.new_effect == pytest.approx(expected, rel=0.3)
    assert r.status is Status.PASS and r.new_effect > 0


def test_robustness_value_formula_matches_cinelli_hazlett() -> None:
    # Darfur example of Cinelli & Hazlett (2020): t = 4.18 with 783 degrees of freedom → RV = 13.9%.
    assert robustness_value(4.18, 783) == pytest.approx(0.139, abs=0.001)
    assert robustness_value(0.0, 100) == 0.0
    # RV solves: a confounder with partial R² = RV with both treatment and outcome removes the effect,
    # i.e. RV² / (1 − RV) = f² with f = t / √df.
    rv = robustness_value(3.0, 150)
    assert rv**2 / (1 - rv) == pytest.approx(3.0**2 / 150, rel=1e-9)


def test_robustness_value_at_a_level_is_zero_without_significance() -> None:
    assert robustness_value(1.5, 150, alpha=0.05) == 0.0
    high = robustness_value(6.0, 150, alpha=0.05)
    assert 0.0 < high < robustness_value(6.0, 150)
    # Cinelli & Hazlett's Darfur example: RV_{q=1, α=0.05} = 7.6%.
    assert robustness_value(4.18, 783, alpha=0.05) == pytest.approx(0.076, abs=0.001)


def test_sensitivity_status_reads_the_robustness_value_against_the_benchmark(sample: dict) -> None:
    spec = sample["specs"][("tv", EffectType.TOTAL)]
    summary = regression_summary(sample["features"], spec, "sales")
    benchmarks = ref.confounder_benchmarks(sample["features"], spec, "sales", summary, 1.0, ["seasonality"],
                                           ["seasonality_sin1", "seasonality_cos1", "seasonality_sin2",
                                            "seasonality_cos2"])
    robust = sensitivity(spec, summary, THRESHOLDS, benchmarks)
    assert robust.case is ref.RobustnessValueCase.ROBUST and "(seasonality)" in robust.message
    # Ten times as strong as seasonality: TV's estimate would not survive, and the row says so.
    strong = replace(THRESHOLDS, benchmark_multiple=1.2)
    heavy = ref.confounder_benchmarks(sample["features"], spec, "sales", summary, 1.2, ["seasonality"],
                                      [c for c in spec.adjustment if c.startswith("seasonality")])
    bench = ref.benchmark_confounder(spec, summary, strong, heavy)
    fragile = sensitivity(spec, summary, strong, heavy)
    assert (fragile.status is Status.REVIEW) == (bench.status is Status.REVIEW)
    unproven = replace(summary, inference_se=abs(summary.estimate))  # t = 1: not significant
    result = sensitivity(spec, unproven, THRESHOLDS, benchmarks)
    assert result.statistic == 0.0 and result.status is Status.REVIEW and "not significant" in result.message


def test_a_zero_effect_channel_does_not_pass() -> None:
    scenario = Scenario().with_beta("email", 0.0)
    world = _world(simulate(scenario, 5).data)
    spec = world["specs"][("email", EffectType.TOTAL)]
    results = {r.refuter: r for r in refute_effect(world["features"], world["g"], spec, "sales", 20, 3, THRESHOLDS)}
    assert results[RefuterKind.PLACEBO_TREATMENT].status is Status.REVIEW
    assert results[RefuterKind.UNOBSERVED_COMMON_CAUSE].status is not Status.PASS
    assert results[RefuterKind.ROBUSTNESS_VALUE].status is not Status.PASS
    assert channel_robustness(list(results.values()))["email"] is not Status.PASS


def test_the_pipeline_standard_error_decides_significance(sample: dict) -> None:
    spec = sample["specs"][("email", EffectType.TOTAL)]
    summary = regression_summary(sample["features"], spec, "sales")
    wide = refute_effect(sample["features"], sample["g"], spec, "sales", 5, 1, THRESHOLDS,
                         pipeline_se=abs(summary.estimate))  # as if selection made it uncertain
    placebo = next(r for r in wide if r.refuter is RefuterKind.PLACEBO_TREATMENT)
    assert placebo.status is Status.REVIEW


def test_refuters_are_reproducible_from_their_seed(sample: dict) -> None:
    spec: EffectSpec = sample["specs"][("search", EffectType.TOTAL)]
    first = refute_effect(sample["features"], sample["g"], spec, "sales", 5, 42, THRESHOLDS)
    again = refute_effect(sample["features"], sample["g"], spec, "sales", 5, 42, THRESHOLDS)
    other = refute_effect(sample["features"], sample["g"], spec, "sales", 5, 43, THRESHOLDS)
    assert [r.new_effect for r in first] == [r.new_effect for r in again]
    assert [r.new_effect for r in first][:4] != [r.new_effect for r in other][:4]
    state = np.random.get_state()[1].copy()
    refute_effect(sample["features"], sample["g"], spec, "sales", 2, 1, THRESHOLDS)
    assert np.array_equal(np.random.get_state()[1], state)  # the global generator is left as found


def test_the_published_estimate_is_refuted_without_fitting_dowhy_again(sample: dict,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline hands the refuters DoWhy's published estimate: the same rows as fitting it here, and
    no second DoWhy fit."""
    spec = sample["specs"][("tv", EffectType.DIRECT)]
    fitted = refutations_table(refute_effect(sample["features"], sample["g"], spec, "sales", 5, 42, THRESHOLDS))
    published = fit_dowhy(sample["features"], sample["g"], spec, "sales").value

    def no_second_fit(*_: object) -> None:
        raise AssertionError("DoWhy was fitted again")

    monkeypatch.setattr(ref, "fit_dowhy", no_second_fit)
    given = refutations_table(refute_effect(sample["features"], sample["g"], spec, "sales", 5, 42, THRESHOLDS,
                                            estimate=published))
    pd.testing.assert_frame_equal(given, fitted, check_exact=True)
    simulated = given["refuter"].isin([k.value for k in (RefuterKind.PLACEBO_TREATMENT, RefuterKind.RANDOM_COMMON_CAUSE,
                                                         RefuterKind.DATA_SUBSET, RefuterKind.UNOBSERVED_COMMON_CAUSE)])
    assert simulated.sum() == 4 and (given.loc[simulated, "estimate"] == published).all()


def test_table_and_worst_status(tv_results: dict) -> None:
    table = refutations_table(list(tv_results.values()))
    assert list(table.columns[:8]) == ["channel", "effect", "refuter", "status", "estimate", "new_effect", "p_value",
                                       "statistic"]
    assert set(table["refuter"]) == {k.value for k in RefuterKind}
    assert table["message"].str.len().min() > 20
    assert Status.worst([Status.PASS, Status.REVIEW]) is Status.REVIEW
    assert Status.worst([Status.REVIEW, Status.FAIL, Status.PASS]) is Status.FAIL


def test_thresholds_are_validated_at_construction() -> None:
    with pytest.raises(ConfigError):
        RefutationThresholds(shift_review=2.0, shift_fail=1.0)
    with pytest.raises(ConfigError):
        RefutationThresholds(confounder_partial_r2=1.5)
    with pytest.raises(ConfigError):
        RefutationThresholds(benchmark_multiple=0.0)


def test_dowhy_fit_carries_our_adjustment_set(sample: dict) -> None:
    spec = sample["specs"][("tv", EffectType.TOTAL)]
    fit = fit_dowhy(sample["features"], sample["g"], spec, "sales")
    assert sorted(fit.estimand.get_adjustment_set()) == sorted(spec.adjustment)


def test_every_case_carries_its_status_and_recommendation(tv_results: dict) -> None:
    cases = [ref.PlaceboCase, ref.RandomCommonCauseCase, ref.DataSubsetCase, ref.HiddenConfounderCase,
             ref.RobustnessValueCase, ref.BenchmarkConfounderCase]
    for enum in cases:
        assert {c.status for c in enum} >= {Status.PASS, Status.REVIEW}, enum
        for case in enum:
            assert case.template and case.recommendation.endswith("."), case
            assert (case.recommendation == ref.NO_ACTION) == (case.status is Status.PASS), case
    for kind, result in tv_results.items():
        assert result.status is result.case.status and result.recommendation == result.case.recommendation
        assert isinstance(result.case, tuple(cases)) and result.message == result.message.strip(), kind
    placebo = tv_results[RefuterKind.PLACEBO_TREATMENT]
    assert placebo.case is ref.PlaceboCase.CLEAR
    assert placebo.message == ref.PlaceboCase.CLEAR.render(in_se=placebo.statistic, t=0.0)


def test_a_negative_effect_is_described_as_negative_by_the_hidden_confounder() -> None:
    """An estimate of the wrong sign was described as 'positive' by the hidden-confounder sentence."""
    world = _world()
    features = sample_world()["features"].copy()
    spec = world["specs"][("email", EffectType.TOTAL)]
    # Flip email's effect to -0.3 of its size (about -1.2 SE): negative, and a 5% confounder erases it.
    summary = regression_summary(features, spec, "sales")
    features["sales"] = features["sales"] - 1.3 * summary.estimate * features["email"]
    results = {r.refuter: r for r in refute_effect(features, world["g"], spec, "sales", 5, 3, THRESHOLDS)}
    hidden = results[RefuterKind.UNOBSERVED_COMMON_CAUSE]
    assert hidden.estimate == pytest.approx(-0.3 * summary.estimate, rel=1e-6)
    assert hidden.status is Status.REVIEW
    assert "leaves the effect negative but no longer distinguishable from zero" in hidden.message


@pytest.mark.parametrize("effect", [EffectType.TOTAL, EffectType.DIRECT])
def test_vectorised_refuters_match_dowhys_side_by_side(sample: dict, effect: EffectType) -> None:
    """The three resampling refuters are DoWhy's, refitted in one solve: with the same seed they give
    DoWhy's own new effect and p-value (the same draws from the same RandomState), for a total and
    a direct (mediator-adjusted) effect."""
    from dowhy.causal_refuters.data_subset_refuter import refute_data_subset
    from dowhy.causal_refuters.placebo_treatment_refuter import PlaceboType, refute_placebo_treatment
    from dowhy.causal_refuters.random_common_cause import refute_random_common_cause

    spec = sample["specs"][("tv", effect)]
    data = sample["features"][ref.observed_nodes(sample["features"], sample["g"])]
    fit = fit_dowhy(data, sample["g"], spec, "sales")
    target = ref.RefutationTarget(data, "sales", fit.value, spec, regression_summary(data, spec, "sales"))
    sims, seed = 8, 3
    ours = {RefuterKind.PLACEBO_TREATMENT: ref.placebo(target, sims, seed, THRESHOLDS),
            RefuterKind.RANDOM_COMMON_CAUSE: ref.random_common_cause(target, sims, seed, THRESHOLDS),
            RefuterKind.DATA_SUBSET: ref.data_subset(target, sims, seed, THRESHOLDS)}
    theirs = {
        RefuterKind.PLACEBO_TREATMENT: refute_placebo_treatment(
            data, fit.estimand, fit.estimate, ["tv"], num_simulations=sims, placebo_type=PlaceboType.PERMUTE,
            random_state=np.random.RandomState(seed)),
        RefuterKind.RANDOM_COMMON_CAUSE: refute_random_common_cause(
            data, fit.estimand, fit.estimate, num_simulations=sims, random_state=np.random.RandomState(seed)),
        RefuterKind.DATA_SUBSET: refute_data_subset(
            data, fit.estimand, fit.estimate, subset_fraction=THRESHOLDS.subset_fraction, num_simulations=sims,
            random_state=np.random.RandomState(seed)),
    }
    for kind, r in ours.items():
        print(f"{effect.value:6s} {kind.value:20s} ours {r.new_effect:.10g} p {r.p_value:.6f}  "
              f"dowhy {theirs[kind].new_effect:.10g} p {theirs[kind].refutation_result['p_value']:.6f}")
        assert r.new_effect == pytest.approx(float(theirs[kind].new_effect), rel=1e-8, abs=1e-9 * abs(r.estimate))
        assert r.p_value == pytest.approx(float(theirs[kind].refutation_result["p_value"]), rel=1e-6, abs=1e-9)
    assert ours[RefuterKind.RANDOM_COMMON_CAUSE].new_effect != fit.value  # the draws really changed the fit


@pytest.mark.parametrize("effect", [EffectType.TOTAL, EffectType.DIRECT])
def test_the_hidden_confounder_matches_dowhys_sensitivity_simulation(sample: dict, effect: EffectType) -> None:
    """The simulated hidden confounder is DoWhy's `sensitivity_simulation` (linear effects on both),
    refitted in numpy: with numpy's global generator seeded as DoWhy draws from it, the same new effect."""
    from benchmarks.refresh_speed import dowhy_hidden_confounder

    spec = sample["specs"][("tv", effect)]
    data = sample["features"][ref.observed_nodes(sample["features"], sample["g"])]
    fit = fit_dowhy(data, sample["g"], spec, "sales")
    target = ref.RefutationTarget(data, "sales", fit.value, spec, regression_summary(data, spec, "sales"))
    seed = 11
    theirs = float(dowhy_hidden_confounder(fit, target, THRESHOLDS.confounder_partial_r2, seed).new_effect)
    ours = ref.unobserved_common_cause(target, seed, THRESHOLDS)
    print(f"{effect.value:6s} hidden confounder ours {ours.new_effect:.10g} dowhy {theirs:.10g} "
          f"(estimate {fit.value:.6g})")
    assert ours.new_effect == pytest.approx(theirs, rel=1e-8)
    assert abs(ours.new_effect) < abs(fit.value)  # it pushed the estimate toward zero
    other = ref.unobserved_common_cause(target, seed + 1, THRESHOLDS)
    assert other.new_effect != ours.new_effect  # the seed draws the confounder


def test_refuter_p_value_is_dowhys_percentile_test_from_100_draws() -> None:
    from dowhy.causal_refuter import test_significance

    class Estimate:
        value = 0.3

    draws = np.random.default_rng(2).normal(0.2, 0.1, size=150)
    ours = ref.refuter_p_value(0.3, draws)
    assert ours == pytest.approx(test_significance(Estimate(), draws)["p_value"], abs=1e-12)
    assert 0.2 < ours < 0.5  # 0.3 is one SD above the draws' centre: about a third of them lie beyond
