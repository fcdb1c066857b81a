"""The fitted model a plan is read from: every channel's response curve (its selected transforms and
the outcome regression's coefficient) with the bootstrap draws the published intervals come from,
and the spend range each channel's comparable weeks show (its support).

`fit_model` repeats exactly the estimator `cmmm run` publishes, from the same data and config:
the transform selection, DoWhy's identification and estimates, and the bootstrap with the config's
seed, so the draws are the run's draws. The draws are not stored in the warehouse (400 resamples
of every transform of every channel), and recomputing them costs a few seconds, less than reading
and trusting a warehouse that may belong to another config.

Which coefficient plans a channel: a plan sets every channel's spend, so a channel whose total
effect flows through a mediating channel (tv → search) acts in a plan through its direct effect
only: the plan, not TV, decides search's spend. Every other channel acts through its total effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.dag.overlap import OverlapStratum, OverlapThresholds, overlap_strata
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.effects.bootstrap import (
    NON_OVERLAPPING,
    BootstrapDraws,
    BootstrapSettings,
    EffectProblem,
    bootstrap,
    effect_problem,
    estimate_all,
    rests_on_selection,
)
from cmmm_pipeline.effects.estimation import EffectSpec, NotEstimated, estimate_channels
from cmmm_pipeline.effects.robustness import in_table_order, published_gcomputation
from cmmm_pipeline.media.features import ChannelTransform, build_features, control_features
from cmmm_pipeline.media.selection import SelectionSettings, select_transforms
from cmmm_pipeline.media.transforms import hill_saturation

SUPPORT_MARGIN = 0.1
"""How far beyond the spend range comparable weeks show a plan may go, as a share of that range:
a response curve read 10% past its last observation moves little; read at twice the highest week
it is a guess."""


@dataclass(frozen=True)
class SupportRange:
    """The weekly spend a channel's comparable weeks show: from the lowest floor of its overlap
    strata (each stratum's 5% quantile of spend) to the highest week, widened by `margin` × that
    range on both sides (never below zero)."""

    channel: str
    observed_low: float
    observed_high: float
    margin: float = SUPPORT_MARGIN

    @property
    def low(self) -> float:
        return max(0.0, self.observed_low - self.margin * (self.observed_high - self.observed_low))

    @property
    def high(self) -> float:
        return self.observed_high + self.margin * (self.observed_high - self.observed_low)

    def contains(self, spend: float) -> bool:
        return self.low - 1e-9 <= spend <= self.high + 1e-9

    def text(self) -> str:
        return f"{self.low:,.0f}–{self.high:,.0f} per week"


def support_ranges(strata: list[OverlapStratum], margin: float = SUPPORT_MARGIN) -> dict[str, SupportRange]:
    """Per channel, the support range from its overlap strata (`dag.overlap`)."""
    by_channel: dict[str, list[OverlapStratum]] = {}
    for s in strata:
        by_channel.setdefault(s.channel, []).append(s)
    return {c: SupportRange(c, min(s.floor for s in rows), max(s.spend_max for s in rows), margin)
            for c, rows in by_channel.items()}


@dataclass(frozen=True)
class FittedModel:
    """The published estimator with its draws, ready to read plans from."""

    config: PipelineConfig
    raw: pd.DataFrame
    problem: EffectProblem
    draws: BootstrapDraws
    rows: np.ndarray
    """(B, weeks) the rows of each resample (sorted), as the bootstrap drew them."""
    point_ate: np.ndarray
    """(specs,) every spec's ATE on the data at the applied transforms (the identity resample)."""
    supports: dict[str, SupportRange]
    withheld: dict[str, str]
    """Channel → why it has no estimate (overlap or identification): a plan cannot move it."""
    level: float

    @cached_property
    def channels(self) -> tuple[str, ...]:
        """The channels a plan can move: those with an estimated planning effect, in config order."""
        planned = {s.channel for s in self.draws.specs}
        return tuple(c for c in self.config.channel_names if c in planned and c not in self.withheld)

    def effect(self, channel: str) -> EffectType:
        """The effect a plan moves (see the module docstring)."""
        g = self.problem.gcomputation(channel)
        return EffectType.DIRECT if g is not None else EffectType.TOTAL

    def smooth(self, channel: str) -> bool:
        """Whether the channel's estimates are published smoothed over the transform selection."""
        return rests_on_selection(self.problem, channel)

    @property
    def n(self) -> int:
        return self.problem.n

    def spend(self, channel: str) -> np.ndarray:
        return self.problem.spend_series[channel]

    def curve(self, channel: str, weeks: int) -> ChannelCurve:
        return channel_curve(self, channel, weeks)


def resample_rows(problem: EffectProblem, draws: BootstrapDraws, samples: int, seed: int) -> np.ndarray:
    """The bootstrap's resampled rows, redrawn from its seed (the resampling is the first use of the
    generator): the baseline of a forecast is refitted on the same resamples as the coefficients."""
    resamples = NON_OVERLAPPING(problem.n, draws.block_length, samples, np.random.default_rng(seed))
    if draws.unit_counts is not None and not np.array_equal(resamples.unit_counts, draws.unit_counts):
        raise RuntimeError("the resamples could not be redrawn from the bootstrap's seed")
    return np.sort(resamples.rows, axis=1)


def fit_model(raw: pd.DataFrame, config: PipelineConfig) -> FittedModel:
    """Select the transforms, estimate every channel under the DAG and bootstrap, as `cmmm run` does.

    Raises EstimationError (the estimation step's rules) when no channel can be estimated."""
    selection = select_transforms(raw, config, SelectionSettings.from_config(config.estimation))
    features = build_features(raw, config, selection.transforms)
    result = estimate_channels(raw, features, config, build_graph(config), selection.transforms)
    return model_from_estimates(raw, features, config, result.table, result.specs, result.failures, result.expanded,
                                selection.candidates, selection.selected_index)


@numeric_step()
def model_from_estimates(raw: pd.DataFrame, features: pd.DataFrame, config: PipelineConfig, point: pd.DataFrame,
                         specs: Sequence[EffectSpec], failures: Sequence[NotEstimated], g_expanded: nx.DiGraph,
                         candidates: Mapping[str, tuple[ChannelTransform, ...]],
                         selected: Mapping[str, int]) -> FittedModel:
    """The model from what the transform and estimation steps computed (the typed values the
    `transformed_media` and `ate_estimates` assets hold): the robustness step's bootstrap, repeated
    with the config's seed, and each channel's support from its overlap strata."""
    est = config.estimation
    specs = in_table_order(point, specs)
    problem = effect_problem(raw, config, dict(candidates), dict(selected), specs, spend_totals(raw, config),
                             published_gcomputation(point, features, g_expanded, specs, config))
    settings = BootstrapSettings(samples=est.bootstrap_samples, level=est.ci_level, block_length=est.block_length)
    draws = bootstrap(problem, settings, SelectionSettings.from_config(est), np.random.default_rng(est.seed))
    rows = resample_rows(problem, draws, settings.samples, est.seed)
    ate = estimate_all(problem, np.arange(problem.n)[None, :], problem.selected[None, :]).ate[0]
    adjustments = {s.channel: s.adjustment for s in specs if s.effect is EffectType.TOTAL}
    spend = {c.name: raw[c.spend_column].to_numpy(dtype=float) for c in config.channels}
    strata = overlap_strata(features, spend, adjustments, OverlapThresholds.from_checks(config.checks), g_expanded)
    withheld = {f.channel: f.reason for f in failures if f.effect is EffectType.TOTAL}
    return FittedModel(config, raw, problem, draws, rows, ate, support_ranges(strata), withheld, est.ci_level)


# ---------------------------------------------------------------------------------------------
# Response curves over the plan's weeks


@dataclass(frozen=True)
class ChannelCurve:
    """One channel's response over the N weeks after the data, per bootstrap draw.

    Adstock is linear in spend, so the carried-over spend in a plan week is the history's carryover
    (the observed weeks' spend fading into the plan) plus the plan's own; the transform's reference
    (its mean adstocked spend over the data) is held, as for every counterfactual of the pipeline.
    Only the transforms some draw (or the point) selected are kept."""

    channel: str
    transforms: tuple[ChannelTransform, ...]
    references: np.ndarray
    """(U,)"""
    carry: np.ndarray
    """(U, N) the history's carried-over spend in each plan week."""
    draw_index: np.ndarray
    """(B,) each draw's transform among `transforms`."""
    point_index: int
    ate: np.ndarray
    """(B,) the draws' coefficients per unit of transformed media."""
    point_ate: float
    smooth: bool

    @property
    def weeks(self) -> int:
        return self.carry.shape[1]

    def subset(self, draws: np.ndarray) -> ChannelCurve:
        """The curve read from the bootstrap draws `draws` (indices) alone; the point is kept."""
        return ChannelCurve(self.channel, self.transforms, self.references, self.carry, self.draw_index[draws],
                            self.point_index, self.ate[draws], self.point_ate, self.smooth)

    def single(self, draw: int) -> ChannelCurve:
        """The curve of one bootstrap draw alone (its transform and coefficient) as the point."""
        u = int(self.draw_index[draw])
        return ChannelCurve(self.channel, (self.transforms[u],), self.references[u:u + 1], self.carry[u:u + 1],
                            np.zeros(1, dtype=int), 0, self.ate[draw:draw + 1], float(self.ate[draw]), self.smooth)

    def adstocked(self, spend: np.ndarray) -> np.ndarray:
        """(U, N, m) carried-over spend of plans `spend` (N, m), history included."""
        own = np.stack([t.adstocked(spend) for t in self.transforms])
        return self.carry[:, :, None] + own

    def media(self, spend: np.ndarray) -> np.ndarray:
        """(U, N, m) transformed media of the plans (N, m), on the data's scale."""
        z = self.adstocked(spend) / self.references[:, None, None]
        return np.stack([hill_saturation(z[u], t.half_saturation, t.slope) for u, t in enumerate(self.transforms)])

    @cached_property
    def baseline_media(self) -> np.ndarray:
        """(U, N) transformed media with the channel off in the plan's weeks (the history's carryover only)."""
        return self.media(np.zeros((self.weeks, 1)))[:, :, 0]

    def weekly_effect(self, spend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per week, the KPI the plans (N, m) add over the channel off in those weeks: (B, N, m) draws
        and (N, m) at the point."""
        delta = self.media(spend) - self.baseline_media[:, :, None]
        return self.ate[:, None, None] * delta[self.draw_index], self.point_ate * delta[self.point_index]

    @cached_property
    def _unit(self) -> np.ndarray:
        return np.stack([t.adstocked(np.ones(self.weeks)) for t in self.transforms])

    def constant_effect(self, spend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The plan's incremental KPI when `spend` (m,) is spent every week: (B, m) draws and (m,) at
        the point. The fast path of the optimiser; equal to `weekly_effect` summed over the weeks."""
        s = np.asarray(spend, dtype=float)
        z = (self.carry[:, :, None] + self._unit[:, :, None] * s[None, None, :]) / self.references[:, None, None]
        media = np.stack([hill_saturation(z[u], t.half_saturation, t.slope) for u, t in enumerate(self.transforms)])
        delta = (media - self.baseline_media[:, :, None]).sum(axis=1)
        return self.ate[:, None] * delta[self.draw_index], self.point_ate * delta[self.point_index]


def _history(model: FittedModel, channel: str, weeks: int,
             used: np.ndarray) -> tuple[tuple[ChannelTransform, ...], np.ndarray, np.ndarray]:
    """The grid points `used` of the channel: their transforms, references and the history's carryover."""
    k = model.problem.inputs.channels.index(channel)
    transforms = tuple(model.problem.inputs.candidates[k][g] for g in used)
    history = model.spend(channel)
    padded = np.concatenate([history, np.zeros(weeks)])
    carry = np.stack([t.adstocked(padded)[len(history):] for t in transforms])
    references = np.array([t.reference(history) for t in transforms])
    return transforms, references, carry


def selection_curve(model: FittedModel, channel: str, weeks: int, grid: int, ate: float) -> ChannelCurve:
    """The channel's curve at one grid point with one coefficient (a near-equivalent selection's
    estimate on the data), as a one-draw curve."""
    transforms, references, carry = _history(model, channel, weeks, np.array([grid]))
    return ChannelCurve(channel, transforms, references, carry, np.zeros(1, dtype=int), 0, np.array([ate]), float(ate),
                        False)


def channel_curve(model: FittedModel, channel: str, weeks: int) -> ChannelCurve:
    problem, draws = model.problem, model.draws
    k = problem.inputs.channels.index(channel)
    used = np.unique(np.concatenate([draws.selected[:, k], problem.selected[k:k + 1]]))
    transforms, references, carry = _history(model, channel, weeks, used)
    position = {int(g): u for u, g in enumerate(used)}
    column = draws.column(channel, model.effect(channel))
    return ChannelCurve(channel, transforms, references, carry,
                        np.array([position[int(g)] for g in draws.selected[:, k]]), position[int(problem.selected[k])],
                        draws.ate[:, column], float(model.point_ate[column]), model.smooth(channel))


# ---------------------------------------------------------------------------------------------
# The baseline: what the KPI does without the planned channels


def in_sample_media(model: FittedModel, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """(B, weeks) the channel's transformed media at each draw's transform, and (weeks,) at the point."""
    problem = model.problem
    return problem.media(channel, model.draws.selected), problem.media(channel, problem.selected[None, :])[0]


def control_matrix(model: FittedModel) -> np.ndarray:
    """(weeks, 1 + controls) the intercept and the control columns the model was fitted with."""
    controls = control_features(model.raw, model.config).to_numpy(dtype=float)
    return np.column_stack([np.ones(model.n), controls])


def kpi_series(model: FittedModel) -> np.ndarray:
    """(weeks,) the observed KPI (the selection's copy is centred)."""
    return model.raw[model.config.kpi].to_numpy(dtype=float)
