"""Overlap (positivity) for continuous spend: does the data hold the contrasts each estimand needs,
within weeks that are alike in every adjuster?

A backdoor estimate compares weeks within levels of the adjustment set. For each channel we
summarise the adjusters that cause its spend (its confounders in the DAG) by a generalized
propensity score (the least-squares prediction of the channel's transformed media from them), cut
it into quantile strata, and measure:

- `residual_share`: the SD of the media left after regressing it on the adjustment set, over its
  total SD (sqrt(1 − R²)). It is the variation the backdoor regression learns the effect from;
  near zero, the adjusters fix the channel and the effect is not estimable.
- per stratum `spread`: the SD of the media within the stratum over its SD across all weeks. A
  stratum where the channel never moves (TV only on air in the high season: the low-season
  stratum is all zeros) shows no contrast at all there, not even the ×1.01 one of the marginal ROI.
- per stratum `floor`: the lowest spend comparable weeks show (the 5% quantile of the stratum's
  spend). ROI against zero spend needs the spend levels between zero and that floor; the share of
  the incremental KPI that comes from below it, Σ_t min(s_t, floor_k(t)) / Σ_t s_t, is
  `extrapolated_share` (exact for an effect linear in spend). Spend, not transformed media: a pulsed
  channel's dark weeks still carry last weeks' adstock, yet they show the contrast the estimand
  needs, weeks without spend. Above a tolerance, ROI is
  `extrapolated`: an always-on channel's ROI against zero is a reading of the response curve, not
  of the data, and its marginal ROI is the number to lead with.
- `support_low`: the same sum per week, Σ_t min(s_t, floor_k(t)) / weeks: the lowest weekly spend
  comparable weeks show, averaged over the weeks. It is the lower end of the supported spend range
  the report's response curve is drawn solid in, and `extrapolated_share` = `support_low` / mean
  weekly spend: `spend_support` computes both, so the flag and the picture cannot disagree.

A channel fails the gate when its residual share or any stratum's spread is *significantly* below
its threshold, or a stratum holds too few weeks; it is WITHHELD (no estimate, the reason published)
and the other channels go on. Both shares are SD ratios estimated from a few dozen weeks, so a hard
cut at the threshold decides on the last digit of a noisy number (a spread of 0.0951, printed
"0.10 < 0.1", withheld a channel the data identify). The gate instead compares each share's upper
one-sided confidence bound (`confidence`, 95%) with the threshold: the sampling error of a log SD is
√((κ − (n−3)/(n−1)) / n) / 2 for n weeks of kurtosis κ, inflated by (1+ρ²)/(1−ρ²) for the lag-1
autocorrelation ρ of the weeks in time order (the autocorrelation of their squared deviations is ρ²
for Gaussian AR(1) series). The thresholds are calibrated by simulation in
`benchmarks/overlap_calibration.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import CheckConfig

ALL_WEEKS = "all weeks (no adjusters)"
FLOOR_QUANTILE = 0.05
"""The stratum's support floor: the spend its lowest 5% of weeks reach (robust to one stray week)."""
MAX_AUTOCORRELATION = 0.9
"""The lag-1 autocorrelation the sampling error is inflated for at most (a near-unit root would make
every bound infinite)."""


class RoiSupport(Enum):
    """Whether ROI against zero spend rests on weeks that show (near-)zero media."""

    OBSERVED = "observed"
    EXTRAPOLATED = "extrapolated"


@dataclass(frozen=True)
class OverlapThresholds:
    """The configured gate (`checks.overlap_bins`, `overlap_min_weeks`, `overlap_min_spread`,
    `overlap_min_residual_share`) and the support tolerance of ROI against zero."""

    bins: int = 3
    min_weeks: int = 8
    min_spread: float = 0.1
    min_residual_share: float = 0.1
    max_extrapolated_share: float = 0.2
    """ROI against zero is `observed` when at most this share of the incremental KPI comes from
    spend levels below the comparable weeks' floor."""
    confidence: float = 0.95
    """One-sided level of the upper bound each share is compared with: a channel is withheld only
    where the data show its share below the threshold, not where the estimate merely dips under it."""

    @classmethod
    def from_checks(cls, checks: CheckConfig) -> OverlapThresholds:
        return cls(bins=checks.overlap_bins, min_weeks=checks.overlap_min_weeks, min_spread=checks.overlap_min_spread,
                   min_residual_share=checks.overlap_min_residual_share)

    def __post_init__(self) -> None:
        if self.bins < 1 or self.min_weeks < 1 or self.min_spread < 0 or self.min_residual_share < 0:
            raise ValueError("overlap thresholds need bins >= 1, min_weeks >= 1, min_spread >= 0 and "
                             "min_residual_share >= 0")
        if not 0.0 <= self.max_extrapolated_share <= 1.0:
            raise ValueError("max_extrapolated_share is a share in [0, 1]")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError("confidence is a one-sided level in [0.5, 1); 0.5 is the hard cut at the threshold")

    @property
    def z(self) -> float:
        """The normal quantile of `confidence` (0 at 0.5: the bound is the estimate)."""
        return NormalDist().inv_cdf(self.confidence)


@dataclass(frozen=True)
class OverlapStratum:
    """One stratum of one channel's propensity score and whether it supports a comparison."""

    channel: str
    stratum: int
    strata: int
    weeks: int
    score_min: float
    score_max: float
    spend_min: float
    spend_max: float
    spend_mean: float
    cv: float
    """Coefficient of variation of spend in the stratum (informative)."""
    spread: float
    """SD of the transformed media in the stratum / its SD over all weeks."""
    spread_upper: float
    """Upper confidence bound of `spread` (`OverlapThresholds.confidence`): what the gate compares."""
    floor: float
    """Lowest media level the stratum's weeks show (its 5% quantile)."""
    low_spend_weeks: int
    """Weeks at or below the channel's median spend (informative)."""
    high_spend_weeks: int
    """Weeks above the channel's median spend (informative)."""
    residual_share: float
    """Channel level: sqrt(1 − R²) of the media on the adjustment set."""
    residual_share_upper: float
    """Channel level: upper confidence bound of `residual_share`: what the gate compares."""
    extrapolated_share: float
    """Channel level: share of the incremental KPI from spend below the strata's floors."""
    support_low: float
    """Channel level: lower end of the supported weekly spend (see `SpendSupport`)."""
    ok: bool
    reason: str
    adjustment: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.channel} stratum {self.stratum}/{self.strata}"


@dataclass(frozen=True)
class ChannelSupport:
    """One channel's overlap verdict: withheld or not (and why), and where its ROI stands."""

    channel: str
    withheld: bool
    reason: str
    residual_share: float
    extrapolated_share: float
    roi_support: RoiSupport
    support_low: float = 0.0
    """Lower end of the supported weekly spend, from the same `SpendSupport` as the share."""


@dataclass(frozen=True)
class SpendSupport:
    """The weekly spend range the data support for a channel's response curve, and the share of its
    incremental KPI that lies below it: one computation behind both `roi_support` and the curve.

    `low` = Σ_t min(s_t, floor_t) / weeks: each week's spend up to the floor of its stratum (the
    lowest spend comparable weeks show), averaged; with one stratum it is that floor. `high` is the
    highest weekly spend observed. `extrapolated_share` = `low` / `mean`: for an effect linear in
    spend, the part of the incremental KPI that needs spend levels below what comparable weeks
    show; on the curve at the average week, the part of the spend drawn dashed."""

    low: float
    high: float
    mean: float

    @property
    def extrapolated_share(self) -> float:
        return self.low / self.mean if self.mean > 0 else 0.0

    def roi_support(self, max_extrapolated_share: float) -> RoiSupport:
        return roi_support(self.extrapolated_share, max_extrapolated_share)


def roi_support(extrapolated_share: float, max_extrapolated_share: float) -> RoiSupport:
    """`observed` when at most `max_extrapolated_share` of the incremental KPI lies below the
    supported range."""
    return RoiSupport.OBSERVED if extrapolated_share <= max_extrapolated_share else RoiSupport.EXTRAPOLATED


def spend_support(spend: np.ndarray, floors: np.ndarray) -> SpendSupport:
    """The supported spend range of a channel from its weekly spend and each week's stratum floor."""
    spend = np.asarray(spend, dtype=float)
    if not len(spend):
        return SpendSupport(0.0, 0.0, 0.0)
    return SpendSupport(float(np.mean(np.minimum(spend, floors))), float(np.max(spend)), float(np.mean(spend)))


def published_support(overlap: pd.DataFrame | None, channel: str, spend: np.ndarray,
                      extrapolated: float = float("nan")) -> SpendSupport | None:
    """A channel's `SpendSupport` as its run published it: the `support_low` of the `overlap` table
    (or, from a table without it, its `extrapolated_share` × the mean weekly spend, the same number),
    else the estimate's `extrapolated` share; None when the run published neither."""
    observed = np.asarray(spend, dtype=float)
    if not len(observed):
        return None
    high, mean = float(observed.max()), float(observed.mean())
    rows = overlap[overlap["channel"] == channel] if overlap is not None and "channel" in overlap else None
    if rows is not None and len(rows):
        if "support_low" in rows and np.isfinite(float(rows["support_low"].iloc[0])):
            return SpendSupport(float(rows["support_low"].iloc[0]), high, mean)
        if "extrapolated_share" in rows:
            extrapolated = float(rows["extrapolated_share"].iloc[0])
    if not np.isfinite(extrapolated):
        return None
    return SpendSupport(extrapolated * mean, high, mean)


def _cv(values: np.ndarray) -> float:
    mean = float(values.mean()) if len(values) else 0.0
    return float(values.std() / mean) if mean > 0 else 0.0


def propensity_score(treatment: np.ndarray, adjusters: np.ndarray) -> np.ndarray:
    """Least-squares prediction of the transformed media from the adjusters (with an intercept)."""
    design = np.column_stack([np.ones(len(treatment)), adjusters])
    beta, *_ = np.linalg.lstsq(design, treatment, rcond=None)
    return design @ beta


def residual_share(treatment: np.ndarray, score: np.ndarray) -> float:
    """SD of the media's residual on its adjusters over its SD: sqrt(1 − R²); 0 for a constant."""
    total = float(np.std(treatment))
    return float(np.std(treatment - score) / total) if total > 0 else 0.0


def log_sd_error(values: np.ndarray) -> float:
    """Standard error of log SD(values), weeks in time order: from the sample variance's exact
    variance σ⁴(κ/n − (n−3)/(n(n−1))) by the delta method, inflated by (1+ρ²)/(1−ρ²) for the
    lag-1 autocorrelation ρ ∈ [0, 0.9] of the values. Infinite for fewer than 4 weeks."""
    n = len(values)
    if n < 4:
        return float("inf")
    c = values - values.mean()
    m2 = float(np.mean(c**2))
    if m2 <= 0:
        return 0.0
    kurtosis = float(np.mean(c**4)) / m2**2
    rho = float(np.clip((c[1:] @ c[:-1]) / (c @ c), 0.0, MAX_AUTOCORRELATION))
    var_log_variance = max(kurtosis / n - (n - 3) / (n * (n - 1)), 0.0) * (1 + rho**2) / (1 - rho**2)
    return 0.5 * float(np.sqrt(var_log_variance))


def upper_bound(share: float, values: np.ndarray, z: float) -> float:
    """The upper one-sided bound of an SD ratio whose numerator is the SD of `values`: share ×
    exp(z · SE(log SD)). A zero share stays zero (no week moves: nothing to be unsure about)."""
    if share <= 0:
        return 0.0
    return float(share * np.exp(z * log_sd_error(values)))


def strata(score: np.ndarray, bins: int) -> np.ndarray:
    """Quantile stratum (0..bins−1) of each week; ranks break ties so the strata have equal size."""
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    return (ranks * bins) // len(score)


def support_floors(spend: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(weeks,) the support floor of each week's stratum: its 5% quantile of spend."""
    floors = np.zeros(len(spend))
    for k in np.unique(labels):
        mask = labels == k
        floors[mask] = float(np.quantile(spend[mask], FLOOR_QUANTILE, method="lower"))
    return floors


def extrapolated_share(spend: np.ndarray, floors: np.ndarray) -> float:
    """Σ_t min(s_t, floor_t) / Σ_t s_t: the part of β·Σ_t s_t that needs spend levels below what
    comparable weeks show (0 for a channel with dark weeks in every stratum; 1 for a constant)."""
    return spend_support(spend, floors).extrapolated_share


def channel_overlap(channel: str, treatment: np.ndarray, spend: np.ndarray, adjusters: np.ndarray,
                    adjustment: Sequence[str], thresholds: OverlapThresholds,
                    confounders: np.ndarray | None = None) -> list[OverlapStratum]:
    """The strata of one channel; `adjusters` is (weeks, columns), possibly with no columns. The
    residual share is taken on every adjuster (the regression's precision); the strata on
    `confounders` (default: every adjuster), the adjusters that drive the channel's spend: a
    precision control (a trend the KPI follows) that also marks the weeks before a channel's
    launch is no positivity problem, the launch weeks simply contribute nothing."""
    has_adjusters = adjusters.shape[1] > 0
    full = propensity_score(treatment, adjusters) if has_adjusters else np.full(len(treatment), treatment.mean())
    confounders = adjusters if confounders is None else confounders
    stratified = confounders.shape[1] > 0
    score = propensity_score(treatment, confounders) if stratified else np.full(len(treatment), treatment.mean())
    bins = thresholds.bins if stratified else 1
    labels = strata(score, bins)
    floors = support_floors(spend, labels)
    share = residual_share(treatment, full)
    share_upper = upper_bound(share, treatment - full, thresholds.z)
    support = spend_support(spend, floors)
    median = float(np.median(spend))
    overall_sd = float(np.std(treatment))
    level = f"{thresholds.confidence:.0%} upper bound"
    channel_problem = (f"residual share {share:.3g} ({level} {share_upper:.3g}) < {thresholds.min_residual_share}"
                       if share_upper < thresholds.min_residual_share else "")
    out: list[OverlapStratum] = []
    for k in range(bins):
        mask = labels == k
        s, x = spend[mask], treatment[mask]
        spread = float(np.std(x) / overall_sd) if overall_sd > 0 and len(x) else 0.0
        spread_upper = upper_bound(spread, x, thresholds.z)
        problems = [channel_problem] if channel_problem else []
        if mask.sum() < thresholds.min_weeks:
            problems.append(f"{int(mask.sum())} weeks < {thresholds.min_weeks}")
        if spread_upper < thresholds.min_spread:
            problems.append(f"spread {spread:.3g} ({level} {spread_upper:.3g}) < {thresholds.min_spread}")
        out.append(OverlapStratum(
            channel=channel, stratum=k + 1, strata=bins, weeks=int(mask.sum()),
            score_min=float(score[mask].min()) if mask.any() else float("nan"),
            score_max=float(score[mask].max()) if mask.any() else float("nan"),
            spend_min=float(s.min()) if len(s) else float("nan"), spend_max=float(s.max()) if len(s) else float("nan"),
            spend_mean=float(s.mean()) if len(s) else float("nan"), cv=_cv(s), spread=spread,
            spread_upper=spread_upper, floor=float(floors[mask][0]) if mask.any() else float("nan"),
            low_spend_weeks=int((s <= median).sum()), high_spend_weeks=int((s > median).sum()),
            residual_share=share, residual_share_upper=share_upper, extrapolated_share=support.extrapolated_share,
            support_low=support.low,
            ok=not problems, reason="; ".join(problems),
            adjustment=tuple(adjustment)))
    return out


def confounding_columns(g_expanded: nx.DiGraph | None, channel: str, adjustment: Sequence[str]) -> list[str]:
    """The adjusters with a directed path into the channel (its spend's causes): what positivity is
    about. Without a graph, every adjuster."""
    if g_expanded is None or channel not in g_expanded:
        return list(adjustment)
    ancestors = nx.ancestors(g_expanded, channel)
    return [a for a in adjustment if a in ancestors]


def overlap_strata(features: pd.DataFrame, spend: Mapping[str, np.ndarray], adjustments: Mapping[str, Sequence[str]],
                   thresholds: OverlapThresholds, g_expanded: nx.DiGraph | None = None) -> list[OverlapStratum]:
    """Every channel in `adjustments` (channel → adjustment columns), with its weekly `spend`;
    strata on the adjusters that cause the channel in `g_expanded` (every adjuster without it)."""
    out: list[OverlapStratum] = []
    n = len(features)
    for channel, adjustment in adjustments.items():
        adjusters = features[list(adjustment)].to_numpy(dtype=float) if adjustment else np.zeros((n, 0))
        causes = confounding_columns(g_expanded, channel, adjustment)
        confounders = features[causes].to_numpy(dtype=float) if causes else np.zeros((n, 0))
        out.extend(channel_overlap(channel, features[channel].to_numpy(dtype=float),
                                   np.asarray(spend[channel], dtype=float), adjusters, adjustment, thresholds,
                                   confounders))
    return out


def channel_supports(rows: Sequence[OverlapStratum], thresholds: OverlapThresholds) -> dict[str, ChannelSupport]:
    """Per channel: withheld when any of its strata fails, with the reasons; ROI support from the
    extrapolated share."""
    by_channel: dict[str, list[OverlapStratum]] = {}
    for r in rows:
        by_channel.setdefault(r.channel, []).append(r)
    out = {}
    for channel, strata_rows in by_channel.items():
        failed = [r for r in strata_rows if not r.ok]
        reasons: list[str] = []
        for r in failed:
            parts = r.reason.split("; ")
            reasons += [p for p in parts if p.startswith("residual share") and p not in reasons]
            local = [p for p in parts if not p.startswith("residual share")]
            if local:
                reasons.append(f"stratum {r.stratum}/{r.strata}: {', '.join(local)}")
        first = strata_rows[0]
        support = roi_support(first.extrapolated_share, thresholds.max_extrapolated_share)
        reason = ("overlap: " + "; ".join(reasons) + " (the adjustment set leaves too little variation in this "
                  "channel to estimate its effect)") if failed else ""
        out[channel] = ChannelSupport(channel, bool(failed), reason, first.residual_share, first.extrapolated_share,
                                      support, first.support_low)
    return out


def media_support(features: pd.DataFrame, spend: Mapping[str, np.ndarray], adjustments: Mapping[str, Sequence[str]],
                  thresholds: OverlapThresholds, g_expanded: nx.DiGraph | None = None) -> dict[str, ChannelSupport]:
    """`channel_supports` of `overlap_strata`: the one call the estimation step makes."""
    return channel_supports(overlap_strata(features, spend, adjustments, thresholds, g_expanded), thresholds)


TABLE_COLUMNS = ["channel", "stratum", "strata", "weeks", "spend_min", "spend_max", "spend_mean", "cv", "spread",
                 "floor", "low_spend_weeks", "high_spend_weeks", "residual_share", "extrapolated_share", "support_low",
                 "score_min", "score_max", "ok", "reason", "label", "adjustment", "spread_upper", "residual_share_upper"]


def overlap_table(rows: Sequence[OverlapStratum]) -> pd.DataFrame:
    """The `overlap` table: one row per channel and stratum (channel-level measures repeated)."""
    return pd.DataFrame([{
        "channel": r.channel, "stratum": r.stratum, "strata": r.strata, "weeks": r.weeks, "spend_min": r.spend_min,
        "spend_max": r.spend_max, "spend_mean": r.spend_mean, "cv": r.cv, "spread": r.spread, "floor": r.floor,
        "low_spend_weeks": r.low_spend_weeks, "high_spend_weeks": r.high_spend_weeks,
        "residual_share": r.residual_share, "extrapolated_share": r.extrapolated_share,
        "support_low": r.support_low, "score_min": r.score_min, "score_max": r.score_max, "ok": r.ok,
        "reason": r.reason, "label": r.label, "adjustment": "|".join(r.adjustment), "spread_upper": r.spread_upper,
        "residual_share_upper": r.residual_share_upper} for r in rows], columns=TABLE_COLUMNS)


def withheld_channels(table: pd.DataFrame) -> list[str]:
    """Channels with a failed stratum, in table order."""
    return list(dict.fromkeys(table.loc[~table["ok"].astype(bool), "channel"]))


def overlap_message(table: pd.DataFrame) -> str:
    """One paragraph: which channels are withheld and why, which go on, and where ROI extrapolates."""
    channels = list(dict.fromkeys(table["channel"]))
    withheld = withheld_channels(table)
    kept = [c for c in channels if c not in withheld]
    extrapolated = [c for c in kept if float(table.loc[table["channel"] == c, "extrapolated_share"].iloc[0])
                    > OverlapThresholds.max_extrapolated_share]
    note = (f" ROI against zero spend is extrapolated for {', '.join(extrapolated)} (comparable weeks never show "
            "that channel near zero); read their marginal ROI first." if extrapolated else "")
    if not withheld:
        return (f"Overlap holds for {', '.join(channels) or 'no channel'}: each keeps enough variation given its "
                "adjustment set, in every stratum." + note)
    parts = []
    for channel in withheld:
        rows = table[(table["channel"] == channel) & ~table["ok"].astype(bool)]
        strata_text = "; ".join(f"stratum {r.stratum}/{r.strata} ({r.reason}; spend {r.spend_min:,.0f}–"
                                f"{r.spend_max:,.0f} over {r.weeks} weeks)" for r in rows.itertuples())
        parts.append(f"channel '{channel}': {strata_text}")
    outcome = (f"The other channels ({', '.join(kept)}) are estimated." if kept else
               "No channel is left to estimate: the run stops.")
    return ("Withheld for thin overlap: " + " | ".join(parts) + ". Given its adjustment set the channel's media "
            "barely varies, so its effect would be extrapolated, not estimated. Vary the channel's spend across "
            "comparable weeks, or run a lift test. " + outcome + note)
