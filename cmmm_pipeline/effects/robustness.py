"""The robustness step: for the point estimates of `ate_estimates`, bootstrap intervals that repeat
the transform selection in every resample (`bootstrap`), widened to the transforms the data cannot
tell apart (`selection_band`) and tested for no effect with the selection repeated (`null_test`),
DoWhy refuters with a status per channel (`refutation`), and the lift tests reconciled with the
model over their weeks (`experiments`).

It takes what the earlier steps computed as typed values (the specs behind the estimates, the
candidate grids and the applied choice), never rebuilt from tables, and repeats exactly the
estimator that was published (the same specs, in the table's order, and the same g-computations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig, SelectionBand
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.effects.bootstrap import (
    BootstrapDraws,
    BootstrapSettings,
    EffectProblem,
    IntervalKind,
    bootstrap,
    effect_problem,
    estimate_all,
    intervals,
    intervals_table,
    summarise_draws,
)
from cmmm_pipeline.effects.estimation import MARGINAL_STEP, EffectSpec, Estimator, GComputationSpec, gcomputation_specs
from cmmm_pipeline.effects.feedback import FEEDBACK_COLUMNS, feedback_table
from cmmm_pipeline.effects.experiments import experiments_table, reconcile, window_mask
from cmmm_pipeline.effects.null_test import null_tests, with_null_tests
from cmmm_pipeline.effects.periods import PERIOD_COLUMNS, effects_by_period
from cmmm_pipeline.effects.selection_band import band_range, with_average, with_band
from cmmm_pipeline.effects.synergies import SYNERGY_COLUMNS, synergies_table
from cmmm_pipeline.effects.refutation import RefutationThresholds, channel_robustness, refutations_table, refute_all
from cmmm_pipeline.media.features import ChannelTransform
from cmmm_pipeline.media.selection import SelectionSettings

NULL_TEST_STREAM = 1
"""The null test's random stream, apart from the bootstrap's (seeded by `seed` alone), so adding
or removing the test leaves the bootstrap's draws as they were."""
FEEDBACK_STREAM = 2
"""G-estimation's resamples (channels whose budget follows sales), apart from the others."""


def window_draws(problem: EffectProblem, draws: BootstrapDraws, channel: str, ate: float,
                 mask: np.ndarray) -> tuple[float, np.ndarray]:
    """The total effect's incremental KPI over the weeks in `mask`: the point value (DoWhy's ATE
    times the applied transform's window sum) and its bootstrap draws (each draw's coefficient
    times its own transform's window sum). A g-computed channel sums its weekly effects instead."""
    if channel in draws.weekly:
        identity = np.arange(problem.n)[None, :]
        weekly = estimate_all(problem, identity, problem.selected[None, :]).weekly
        return float(weekly[channel][0, mask].sum()), draws.weekly[channel][:, mask].sum(axis=1)
    k = problem.inputs.channels.index(channel)
    sums = problem.inputs.series[k][mask].sum(axis=0)
    j = draws.column(channel, EffectType.TOTAL)
    return float(ate * sums[problem.selected[k]]), draws.ate[:, j] * sums[draws.selected[:, k]]


def published_gcomputation(point: pd.DataFrame, features: pd.DataFrame, g_expanded: nx.DiGraph,
                           specs: Sequence[EffectSpec], config: PipelineConfig) -> tuple[GComputationSpec, ...]:
    """The g-computations behind the point estimates: the channels whose total row says so, so the
    bootstrap repeats exactly the estimator that was published."""
    if "estimator" not in point.columns:
        return ()
    total = point[(point["effect"] == EffectType.TOTAL.value)
                  & (point["estimator"] == Estimator.G_COMPUTATION.value)]
    gspecs = gcomputation_specs(features, g_expanded, specs, list(config.channel_names))
    return tuple(gspecs[c] for c in total["channel"] if c in gspecs)


@dataclass(frozen=True)
class Assessment:
    intervals: pd.DataFrame
    """Per estimated (channel, effect): intervals, p-value, standard errors, block length."""
    refutations: pd.DataFrame
    experiments: pd.DataFrame
    robustness: dict[str, str]
    """Per channel, the worst refuter status."""
    block_length: int
    periods: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PERIOD_COLUMNS))
    """Effects by year, quarter, campaign and condition (`effects.periods`), from the same draws."""
    synergies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SYNERGY_COLUMNS))
    """The declared pairs' synergies (`effects.synergies`), from the same resamples."""
    feedback: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FEEDBACK_COLUMNS))
    """Channels whose budget follows sales, g-estimated (`effects.feedback`); withheld from `intervals`."""


def in_table_order(point: pd.DataFrame, specs: Sequence[EffectSpec]) -> tuple[EffectSpec, ...]:
    """The specs of the estimated rows of `point` (finite ATE), in its row order: the draws' columns
    and the refuters' seeds (by position) follow it, so the published numbers do not depend on the
    order the estimation step identified the effects in."""
    by_key = {(s.channel, s.effect): s for s in specs}
    keys = [(r.channel, EffectType(r.effect)) for r in point.itertuples(index=False) if np.isfinite(r.ate)]
    return tuple(by_key[k] for k in keys if k in by_key)


@numeric_step()
def assess(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig, point: pd.DataFrame,
           specs: Sequence[EffectSpec], g_expanded: nx.DiGraph,
           candidates: Mapping[str, tuple[ChannelTransform, ...]], selected: Mapping[str, int]) -> Assessment:
    """Bootstrap intervals (with re-selection), refuters and lift-test reconciliation for the point
    estimates of `ate_estimates`; rows that were not estimated get no interval and no refuter.

    Parameters
    ----------
    raw
        The weekly table as ingested (spend, KPI, controls, week).
    features
        The model table the estimates were fitted on (`transformed_media`).
    config
        The pipeline config: estimation settings (resamples, level, block length, seed) and the
        lift tests.
    point
        The published point estimates (`ate_estimates`), one row per (channel, effect).
    specs
        The specs behind the estimated rows, as the estimation step identified them.
    g_expanded
        The DAG expanded to model columns, as the estimates used it.
    candidates
        Channel → the candidate transforms the selection searched (one for a configured channel).
    selected
        Channel → the index of the applied transform among its candidates.
    """
    est = config.estimation
    selection = SelectionSettings.from_config(est)
    settings = BootstrapSettings(samples=est.bootstrap_samples, level=est.ci_level, block_length=est.block_length)
    specs = in_table_order(point, specs)
    estimated = point[np.isfinite(point["ate"].to_numpy(dtype=float))]
    ates = {(r.channel, EffectType(r.effect)): float(r.ate) for r in estimated.itertuples(index=False)}
    reconciled = []
    applied = {c: candidates[c][selected[c]] for c in config.channel_names}
    feedback = feedback_table(raw, features, config, g_expanded, applied,
                              np.random.default_rng([est.seed, FEEDBACK_STREAM]))
    if not specs:
        empty = intervals_table([])
        for e in config.experiments:
            reconciled.append(reconcile(e, int(window_mask(raw["week"], e.start, e.end).sum()), float("nan"),
                                        None, est.ci_level))
        return Assessment(empty, refutations_table([]), experiments_table(reconciled), {}, 0, feedback=feedback)
    spends = spend_totals(raw, config)
    problem = effect_problem(raw, config, dict(candidates), dict(selected), specs, spends,
                             published_gcomputation(point, features, g_expanded, specs, config))
    draws = bootstrap(problem, settings, selection, np.random.default_rng(est.seed))
    points = {(r.channel, EffectType(r.effect)): float(r.incremental_kpi) for r in estimated.itertuples(index=False)}
    marginal_points = ({(r.channel, EffectType(r.effect)): float(r.mroi) * MARGINAL_STEP * float(r.spend)
                        for r in estimated.itertuples(index=False)} if "mroi" in estimated.columns else None)
    estimates = intervals(problem, draws, points, settings, marginal_points)
    if est.selection_band is not SelectionBand.OFF or est.selection_average:
        band = band_range(problem, selection, list(points))
        if est.selection_band is not SelectionBand.OFF:
            estimates = with_band(estimates, problem, band, widen_roi=est.selection_band is SelectionBand.ALL)
        if est.selection_average:
            estimates = with_average(estimates, problem, band)
    tests = null_tests(problem, selection, draws.block_length, est.null_test_samples,
                       np.random.default_rng([est.seed, NULL_TEST_STREAM]))
    estimates = with_null_tests(estimates, tests, est.ci_level)
    table = intervals_table(estimates)
    smoothed = {i.channel for i in estimates if i.method is IntervalKind.SMOOTHED}  # lift tests read alike
    # The bootstrap's standard error of the incremental KPI, on the ATE's scale (÷ Σ_t x_t).
    ate_se = {(i.channel, i.effect): i.std_error * abs(ates[(i.channel, i.effect)] / points[(i.channel, i.effect)])
              for i in estimates if (i.channel, i.effect) in ates and points[(i.channel, i.effect)] != 0}
    roi_factors = {(r.channel, EffectType(r.effect)): float(r.roi) / float(r.ate)
                   for r in estimated.itertuples(index=False) if float(r.ate) != 0 and np.isfinite(float(r.roi))}
    refutations = refute_all(features, g_expanded, list(specs), config.kpi, est.refuter_simulations, est.seed,
                             RefutationThresholds(benchmark_multiple=est.confounder_multiple), ate_se,
                             nodes=[*config.channel_names, *config.controls], roi_factors=roi_factors,
                             controls=config.controls, estimates=ates)
    for e in config.experiments:
        mask = window_mask(raw["week"], e.start, e.end)
        ate = ates.get((e.channel, EffectType.TOTAL))
        if ate is None or not mask.any():
            reconciled.append(reconcile(e, int(mask.sum()), float("nan"), None, est.ci_level))
            continue
        point_in_window, window = window_draws(problem, draws, e.channel, ate, mask)
        model = summarise_draws(point_in_window, window, draws, e.channel in smoothed, est.ci_level,
                                IntervalKind.PERCENTILE)
        reconciled.append(reconcile(e, int(mask.sum()), model.estimate if model else point_in_window,
                                    (model.low, model.high) if model else None, est.ci_level))
    robustness = {c: s.value for c, s in channel_robustness(refutations).items()}
    periods = effects_by_period(problem, draws, point, features, raw, settings, config.campaigns,
                                config.effect_modifiers)
    totals = {r.channel: float(r.incremental_kpi) for r in estimated.itertuples(index=False)
              if r.effect == EffectType.TOTAL.value}
    synergies = synergies_table(problem, draws, g_expanded, specs, config.interactions, config.kpi, settings,
                                config.checks.overlap_min_residual_share, totals)
    return Assessment(table, refutations_table(refutations), experiments_table(reconciled), robustness,
                      draws.block_length, periods, synergies, feedback)
