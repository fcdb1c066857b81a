"""The block bootstrap with re-selection: resampling, block length, agreement with DoWhy's point
estimate, intervals that cover the sample's truth, and p-values under a true null."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks.bootstrap_kinds import SCHEMES, CircularBlocks, MovingBlocks, StationaryBlocks
from cmmm_pipeline.core.config import (
    AdstockConfig,
    ChannelConfig,
    DataConfig,
    EffectType,
    PipelineConfig,
    SaturationConfig,
)
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.data.ingest import load_raw, spend_totals
from cmmm_pipeline.effects.bootstrap import (
    NON_OVERLAPPING,
    BootstrapDraws,
    BootstrapSettings,
    IntervalKind,
    Resampling,
    bootstrap,
    effect_problem,
    estimate_all,
    interval,
    intervals,
    politis_white_block_length,
    summarise_draws,
)
from cmmm_pipeline.effects.estimation import (
    Estimator,
    channel_series,
    channel_specs,
    estimate_channels,
    gcomputation_point,
    gcomputation_specs,
    identify_channels,
)
from cmmm_pipeline.effects.robustness import published_gcomputation, window_draws
from cmmm_pipeline.media.features import build_features, node_columns
from cmmm_pipeline.media.selection import SelectionSettings, channel_candidates, select_transforms
from cmmm_pipeline.simulation.simulate import Scenario, simulate
from tests.conftest import sample_config_selecting

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample" / "config.yaml"
SELECTION = SelectionSettings()


@pytest.fixture(scope="module")
def sample() -> dict:
    """The bundled sample as the pipeline sees it: digital and email transforms selected."""
    config = sample_config_selecting("digital", "email")
    raw = load_raw(config)
    chosen = select_transforms(raw, config, SELECTION)
    features = build_features(raw, config, chosen.transforms)
    estimated = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    table, specs, expanded = estimated.table, list(estimated.specs), estimated.expanded
    candidates = {c.name: channel_candidates(c, SELECTION.grid) for c in config.channels}
    problem = effect_problem(raw, config, candidates, chosen.selected_index, specs, spend_totals(raw, config),
                             published_gcomputation(table, features, expanded, specs, config))
    est = config.estimation  # the pipeline's own settings and seed: these are the published intervals
    settings = BootstrapSettings(samples=est.bootstrap_samples, level=est.ci_level)
    draws = bootstrap(problem, settings, SELECTION, np.random.default_rng(est.seed))
    points = {(r.channel, EffectType(r.effect)): r.incremental_kpi for r in table.itertuples(index=False)}
    found = {(i.channel, i.effect): i for i in intervals(problem, draws, points, settings)}
    return {"config": config, "raw": raw, "table": table, "problem": problem, "draws": draws, "intervals": found,
            "settings": settings}


def test_politis_white_block_grows_with_autocorrelation() -> None:
    rng = np.random.default_rng(0)
    white = rng.normal(size=400)
    ar = np.empty(400)
    ar[0] = 0.0
    for t in range(1, 400):
        ar[t] = 0.8 * ar[t - 1] + rng.normal()
    b_white = politis_white_block_length(white, CircularBlocks())
    b_ar = politis_white_block_length(ar, CircularBlocks())
    assert b_white < 2.0
    assert 8.0 < b_ar < 40.0
    # The stationary bootstrap's mean block is shorter by (4/3 ÷ 2)^(1/3) for the same series.
    ratio = politis_white_block_length(ar, StationaryBlocks()) / b_ar
    assert ratio == pytest.approx((2.0 / 3.0) ** (1.0 / 3.0), rel=1e-9)
    assert politis_white_block_length(ar) == politis_white_block_length(ar, StationaryBlocks())  # same constant


@pytest.mark.parametrize("resampling", list(SCHEMES.values()), ids=list(SCHEMES))
def test_resamples_are_runs_of_consecutive_weeks(resampling: Resampling) -> None:
    rows = resampling(156, 6, 400, np.random.default_rng(1)).rows
    assert rows.shape == (400, 156) and rows.min() >= 0 and rows.max() <= 155
    steps = np.diff(rows, axis=1)
    consecutive = np.mean((steps == 1) | (steps == -155))
    assert consecutive == pytest.approx(5 / 6, abs=0.03)  # a new block every 6 weeks on average
    counts = np.bincount(rows.ravel(), minlength=156) / rows.size * 156
    if not isinstance(resampling, MovingBlocks):  # wrapped schemes weight every week equally
        assert counts.min() > 0.85 and counts.max() < 1.15


def test_bootstrap_point_estimate_is_the_published_one(sample: dict) -> None:
    """DoWhy's ATE for every spec, and the published incremental KPI, g-computed TV total included
    (the same computation on the identity resample: equal up to floating-point rounding)."""
    problem = sample["problem"]
    assert [g.channel for g in problem.mediation] == ["tv"]
    on_data = estimate_all(problem, np.arange(problem.n)[None, :], problem.selected[None, :])
    ate, incremental = on_data.ate, on_data.incremental
    table = sample["table"].set_index(["channel", "effect"])
    assert table.loc[("tv", "total"), "estimator"] == Estimator.G_COMPUTATION.value
    for j, spec in enumerate(problem.specs):
        row = table.loc[(spec.channel, spec.effect.value)]
        assert ate[0, j] == pytest.approx(row["ate"], rel=1e-9)
        assert incremental[0, j] == pytest.approx(row["incremental_kpi"], rel=1e-12)


def test_g_computed_window_draws_sum_the_weekly_effects(sample: dict) -> None:
    problem, draws = sample["problem"], sample["draws"]
    everything = np.ones(problem.n, dtype=bool)
    point, window = window_draws(problem, draws, "tv", float("nan"), everything)
    assert point == pytest.approx(sample["table"].set_index(["channel", "effect"]).loc[("tv", "total"),
                                                                                      "incremental_kpi"], rel=1e-12)
    np.testing.assert_allclose(window, draws.incremental_of("tv", EffectType.TOTAL), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_bootstrap_repeats_the_g_computation_on_simulated_data(seed: int) -> None:
    """On simulated datasets (search's transform selected, as in the accuracy study's `--select`),
    the identity resample reproduces the published g-computed TV total, and the draws centre on it."""
    config = sample_config_selecting("search")
    raw = simulate(Scenario(), seed).data
    chosen = select_transforms(raw, config, SELECTION)
    features = build_features(raw, config, chosen.transforms)
    columns = node_columns(raw, config)
    g = build_graph(config)
    expanded = expand_graph(g, columns)
    specs, _ = identify_channels(features, expanded, g, list(config.channel_names), config.kpi)
    gspecs = gcomputation_specs(features, expanded, specs, list(config.channel_names))
    point = float(gcomputation_point(features, gspecs["tv"], channel_series(raw, config, chosen.transforms),
                                     config.kpi).sum())
    problem = effect_problem(raw, config, {c.name: channel_candidates(c, SELECTION.grid) for c in config.channels},
                             chosen.selected_index, specs, spend_totals(raw, config), tuple(gspecs.values()))
    incremental = estimate_all(problem, np.arange(problem.n)[None, :], problem.selected[None, :]).incremental
    j = [(s.channel, s.effect) for s in specs].index(("tv", EffectType.TOTAL))
    assert incremental[0, j] == pytest.approx(point, rel=1e-12)
    draws = bootstrap(problem, BootstrapSettings(samples=30, level=0.95), SELECTION, np.random.default_rng(seed))
    total = draws.incremental_of("tv", EffectType.TOTAL)
    search = problem.inputs.channels.index("search")
    assert np.all(np.isfinite(total)) and len(np.unique(draws.selected[:, search])) > 1  # re-selected
    assert abs(np.median(total) / point - 1.0) < 0.1
    # Vectorised over resamples with different search transforms = one resample at a time.
    rows = np.sort(np.random.default_rng(seed).integers(0, problem.n, size=(4, problem.n)), axis=1)
    selected = np.tile(problem.selected, (4, 1))
    selected[:, search] = draws.selected[:4, search]
    batch = estimate_all(problem, rows, selected).incremental
    for b in range(4):
        one = estimate_all(problem, rows[b:b + 1], selected[b:b + 1]).incremental
        np.testing.assert_allclose(batch[b], one[0], rtol=1e-10)


def test_sample_intervals_cover_the_truth(sample: dict, sample_truth: pd.DataFrame) -> None:
    """Six 95% intervals (all six cover with probability ~0.74), every one covering on the sample:
    the selected channels' smoothed ones and the configured channels' percentile ones."""
    truth = sample_truth.set_index(["channel", "effect"])
    for (channel, effect), i in sample["intervals"].items():
        roi = truth.loc[(channel, effect.value), "roi"]
        assert i.roi_ci_low <= roi <= i.roi_ci_high, (channel, effect)
    assert len(sample["intervals"]) == 6


def test_selected_channels_publish_the_estimate_smoothed_over_the_selection(sample: dict) -> None:
    """Digital and email rest on selected transforms: their published estimate is the mean of the
    re-selected draws, its interval symmetric about it with Efron's error on k − 1 degrees of
    freedom; the configured channels keep DoWhy's estimate and percentile intervals."""
    draws, found, problem = sample["draws"], sample["intervals"], sample["problem"]
    table = sample["table"].set_index(["channel", "effect"])
    units = draws.unit_counts.shape[1]
    for channel in ("digital", "email"):
        i = found[(channel, EffectType.TOTAL)]
        sample_draws = draws.incremental_of(channel, EffectType.TOTAL)
        assert i.method is IntervalKind.SMOOTHED
        assert i.incremental_kpi == pytest.approx(sample_draws.mean(), rel=1e-12)
        assert i.incremental_kpi != pytest.approx(table.loc[(channel, "total"), "incremental_kpi"], rel=1e-3)
        assert i.bootstrap_std_error < 0.9 * np.std(sample_draws)  # smoothing removes the selection's jumps
        assert i.std_error == max(i.bootstrap_std_error, i.hac_std_error)
        df = units - 1 if i.std_error == i.bootstrap_std_error else problem.n - 1 - 10  # HAC floor: regression df
        half = stats.t.ppf(0.975, df) * i.std_error
        assert (i.incremental_ci_low, i.incremental_ci_high) == pytest.approx((i.incremental_kpi - half,
                                                                                i.incremental_kpi + half))
        assert i.roi_ci_low == pytest.approx(i.incremental_ci_low / problem.spends[channel])
    for key in (("tv", EffectType.TOTAL), ("tv", EffectType.DIRECT), ("tv", EffectType.INDIRECT),
                ("search", EffectType.TOTAL)):
        assert found[key].method is IntervalKind.PERCENTILE
    assert found[("tv", EffectType.TOTAL)].incremental_kpi == table.loc[("tv", "total"), "incremental_kpi"]


def test_smoothed_error_of_a_linear_statistic_is_its_block_bootstrap_error() -> None:
    """For a statistic linear in the block counts (the mean of an autocorrelated series), Efron's
    error equals the bootstrap's own, which for non-overlapping blocks is the spread of the block
    means: sqrt(Σ_j (m_j − m̄)²) / k for k blocks of equal length."""
    rng = np.random.default_rng(5)
    series = np.empty(240)
    series[0] = 0.0
    for t in range(1, 240):
        series[t] = 0.6 * series[t - 1] + rng.normal()
    resamples = NON_OVERLAPPING(240, 8, 4000, rng)
    means = series[resamples.rows].mean(axis=1)
    blocks = series.reshape(30, 8).mean(axis=1)
    exact = np.sqrt(np.sum((blocks - blocks.mean()) ** 2)) / 30
    draws = replace(_draws_stub(), unit_counts=resamples.unit_counts, unit_stratum_sizes=resamples.unit_stratum_sizes)
    summary = summarise_draws(series.mean(), means, draws, True, 0.95, IntervalKind.PERCENTILE)
    assert summary.bootstrap_std_error == pytest.approx(exact, rel=0.05)
    assert np.std(means) == pytest.approx(exact, rel=0.05)
    assert summary.estimate == pytest.approx(series.mean(), abs=0.1 * exact)
    assert summary.df == 29 and summary.method is IntervalKind.SMOOTHED


def test_non_overlapping_resamples_draw_whole_blocks_of_equal_length() -> None:
    """156 weeks in blocks of ~5: 31 blocks (one of 6 weeks), each resample n weeks long and made
    of whole blocks whose draws it counts, the 6-week block drawn only in its own slot."""
    resamples = NON_OVERLAPPING(156, 5, 50, np.random.default_rng(2))
    counts, sizes = resamples.unit_counts, resamples.unit_stratum_sizes
    assert resamples.rows.shape == (50, 156) and counts.shape == (50, 31)
    assert sorted(set(sizes)) == [1, 30] and np.all(counts[:, sizes == 1] == 1)
    assert np.all(counts.sum(axis=1) == 31)
    lengths = np.array([6] + [5] * 30)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for b in range(3):
        expected = np.sort(np.concatenate([np.arange(starts[j], starts[j] + lengths[j])
                                           for j in range(31) for _ in range(counts[b, j])]))
        np.testing.assert_array_equal(np.sort(resamples.rows[b]), expected)


def _draws_stub() -> BootstrapDraws:
    empty = np.empty((0, 0))
    return BootstrapDraws((), empty, empty, empty, 8, True)


def test_selected_channels_are_honestly_wider_than_a_fixed_transform_bootstrap(sample: dict) -> None:
    """The same resamples (same seed), with and without re-selection."""
    fixed = bootstrap(sample["problem"], replace(sample["settings"], reselect=False), SELECTION,
                      np.random.default_rng(sample["config"].estimation.seed))
    draws = sample["draws"]
    np.testing.assert_array_equal(fixed.unit_counts, draws.unit_counts)
    ratios = {(c, e): np.std(draws.incremental_of(c, e)) / np.std(fixed.incremental_of(c, e))
              for c, e in (("digital", EffectType.TOTAL), ("email", EffectType.TOTAL), ("tv", EffectType.DIRECT))}
    assert ratios[("digital", EffectType.TOTAL)] > 2.0 and ratios[("email", EffectType.TOTAL)] > 2.0
    # A configured channel widens too, far less: digital and email sit in its adjustment set
    # (1.76x on the sample's nine 17-week blocks).
    assert 1.0 < ratios[("tv", EffectType.DIRECT)] < 2.0


def test_indirect_draws_are_total_minus_direct_on_the_same_resamples(sample: dict) -> None:
    draws = sample["draws"]
    np.testing.assert_allclose(draws.incremental_of("tv", EffectType.INDIRECT),
                               draws.incremental_of("tv", EffectType.TOTAL)
                               - draws.incremental_of("tv", EffectType.DIRECT))
    assert sample["intervals"][("tv", EffectType.INDIRECT)].p_value < 0.01


def test_interval_kinds() -> None:
    draws = np.array([1.0, 2.0, 3.0, 4.0, 10.0] * 200)
    low_p, high_p = interval(3.0, draws, 0.9, IntervalKind.PERCENTILE)
    low_b, high_b = interval(3.0, draws, 0.9, IntervalKind.BASIC)
    assert (low_p, high_p) == (1.0, 10.0)
    assert (low_b, high_b) == (6.0 - 10.0, 6.0 - 1.0)


def _null_config(selected: bool) -> PipelineConfig:
    """The sample's DAG over a world where email does nothing; its transform configured or selected."""
    scenario = Scenario().with_beta("email", 0.0)
    channels = tuple(ChannelConfig(name, ch.spend_column) if selected and name == "email" else
                     ChannelConfig(name, ch.spend_column, AdstockConfig(decay=ch.decay),
                                   SaturationConfig(half_saturation=ch.half_saturation, slope=ch.slope))
                     for name, ch in scenario.channels.items())
    sample_config = load_config(SAMPLE)
    return PipelineConfig(source=Path("null.yaml"), data=DataConfig(Path("simulated"), "week", "sales"),
                          channels=channels, controls=sample_config.controls, edges=sample_config.edges)


@pytest.fixture(scope="module")
def email_spec() -> list:
    """DoWhy's identification of email's total effect (the same for every seed)."""
    config = _null_config(selected=False)
    raw = simulate(Scenario(), 0).data
    features = build_features(raw, config, select_transforms(raw, config, SELECTION).transforms)
    columns = node_columns(raw, config)
    g = build_graph(config)
    return channel_specs(features, expand_graph(g, columns), g, ["email"], config.kpi)


def _email_null_pvalue(seed: int, selected: bool, samples: int, specs: list,
                       dark_weeks: float = 0.0) -> tuple[float, tuple[float, float]]:
    config = _null_config(selected)
    raw = simulate(Scenario(dark_weeks=dark_weeks).with_beta("email", 0.0), seed).data
    chosen = select_transforms(raw, config, SELECTION)
    problem = effect_problem(raw, config, {c.name: channel_candidates(c, SELECTION.grid) for c in config.channels},
                             chosen.selected_index, specs, spend_totals(raw, config))
    point = estimate_all(problem, np.arange(problem.n)[None, :], problem.selected[None, :]).incremental
    settings = BootstrapSettings(samples=samples, level=0.95)
    draws = bootstrap(problem, settings, SELECTION, np.random.default_rng(seed))
    (result,) = intervals(problem, draws, {("email", EffectType.TOTAL): float(point[0, 0])}, settings)
    return result.p_value, (result.roi_ci_low, result.roi_ci_high)


def test_a_zero_effect_channel_with_selected_transforms_is_rarely_significant(email_spec: list) -> None:
    """Email always on and without effect, its transform (carryover family included) selected from
    the data: over 20 worlds it is significant at 5% in at most 3 (the binomial 95% range of a 5%
    test) and its interval covers zero in at least 17."""
    results = [_email_null_pvalue(seed=seed, selected=True, samples=200, specs=email_spec) for seed in range(20)]
    significant = sum(p < 0.05 for p, _ in results)
    covers = sum(low <= 0.0 <= high for _, (low, high) in results)
    assert significant <= 3
    assert covers >= 17


def test_pvalues_are_roughly_uniform_under_a_true_null(email_spec: list) -> None:
    """Email configured with its true transform: over 40 seeds the p-value should look uniform."""
    pvalues = np.array([_email_null_pvalue(seed, False, 100, email_spec)[0] for seed in range(40)])
    assert stats.kstest(pvalues, "uniform").pvalue > 0.05
    assert np.mean(pvalues < 0.05) <= 0.15
    assert 0.3 <= np.mean(pvalues < 0.5) <= 0.7


def test_pvalues_are_roughly_uniform_under_a_true_null_with_selected_transforms(email_spec: list) -> None:
    """Email's transform selected from data where it does nothing (pulsed, as in the accuracy
    study): the smoothed estimate's p-value is uniform too (the estimate at the selected transform,
    tested by HAC, rejects in about a quarter of seeds)."""
    pvalues = np.array([_email_null_pvalue(seed, True, 200, email_spec, dark_weeks=0.25)[0] for seed in range(40)])
    assert stats.kstest(pvalues, "uniform").pvalue > 0.05
    assert np.mean(pvalues < 0.05) <= 0.15
    assert 0.35 <= np.mean(pvalues < 0.5) <= 0.65


def test_smoothing_over_the_selection_beats_the_selected_point_on_simulated_data() -> None:
    """The accuracy study at a small size (benchmarks/accuracy.py, scenario 1, 12 seeds): digital
    and email selected from pulsed data. The smoothed ROI errs less than the ROI at the selected
    transform, and its intervals cover the truth."""
    scenario = Scenario(dark_weeks=0.25)
    config = sample_config_selecting("digital", "email")
    errors = {"smoothed": [], "applied": []}
    covered = []
    for seed in range(12):
        sim = simulate(scenario, seed)
        raw = sim.data
        chosen = select_transforms(raw, config, SELECTION)
        features = build_features(raw, config, chosen.transforms)
        estimated = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
        specs = [s for s in estimated.specs if s.channel in ("digital", "email")]
        spends = spend_totals(raw, config)
        problem = effect_problem(raw, config, {c.name: channel_candidates(c, SELECTION.grid) for c in config.channels},
                                 chosen.selected_index, specs, spends)
        settings = BootstrapSettings(samples=200, level=0.95)
        draws = bootstrap(problem, settings, SELECTION, np.random.default_rng(seed))
        table = estimated.table.set_index(["channel", "effect"])
        points = {(s.channel, s.effect): float(table.loc[(s.channel, "total"), "incremental_kpi"]) for s in specs}
        truth = sim.truth.set_index(["channel", "effect"])
        for i in intervals(problem, draws, points, settings):
            true_roi = truth.loc[(i.channel, "total"), "incremental_kpi"] / spends[i.channel]
            errors["smoothed"].append(abs(i.incremental_kpi / spends[i.channel] / true_roi - 1.0))
            errors["applied"].append(abs(points[(i.channel, i.effect)] / spends[i.channel] / true_roi - 1.0))
            covered.append(i.roi_ci_low <= true_roi <= i.roi_ci_high)
    assert np.median(errors["smoothed"]) < 0.8 * np.median(errors["applied"])
    assert np.median(errors["smoothed"]) < 0.12
    assert np.mean(covered) >= 21 / 24


def test_published_estimates_carry_the_smoothed_roi_and_the_applied_one(sample: dict) -> None:
    """estimates.csv: for smoothed rows roi and incremental_kpi are the smoothed values and
    applied_transform_roi keeps DoWhy's; percentile rows are unchanged."""
    from cmmm_pipeline.effects.bootstrap import intervals_table
    from cmmm_pipeline.publish.outputs import ESTIMATE_COLUMNS, final_estimates

    table = sample["table"]
    published = final_estimates(table, intervals_table(list(sample["intervals"].values())), {"tv": "PASS"})
    assert list(published.columns[:len(ESTIMATE_COLUMNS)]) == ESTIMATE_COLUMNS
    assert "smoothed_incremental_kpi" not in published.columns
    rows = published.set_index(["channel", "effect"])
    before = table.set_index(["channel", "effect"])
    for channel in ("digital", "email"):
        row, interval_estimate = rows.loc[(channel, "total")], sample["intervals"][(channel, EffectType.TOTAL)]
        assert row["interval_method"] == "smoothed"
        assert row["incremental_kpi"] == interval_estimate.incremental_kpi
        assert row["roi"] == pytest.approx(interval_estimate.incremental_kpi / row["spend"], rel=1e-12)
        assert row["applied_transform_roi"] == before.loc[(channel, "total"), "roi"] != row["roi"]
        assert row["roi_ci_low"] < row["roi"] < row["roi_ci_high"]
    tv = rows.loc[("tv", "total")]
    assert tv["interval_method"] == "percentile" and tv["roi"] == tv["applied_transform_roi"]
    assert tv["robustness"] == "PASS"
