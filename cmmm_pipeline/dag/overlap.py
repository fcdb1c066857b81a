"""Overlap (positivity) for continuous spend: can the data compare low- and high-spend weeks that
are alike in every adjuster?

A backdoor estimate compares weeks within levels of the adjustment set. Where the adjusters
almost fix a channel's spend (TV only on air in peak season), the regression has no comparable
weeks and extrapolates its answer. For each channel we summarise the adjustment set by a
generalized propensity score, the least-squares prediction of the channel's transformed media
from its adjusters, cut it into quantile strata, and require in every stratum

- enough weeks (`min_weeks`);
- spread: the stratum's coefficient of variation of spend is at least `min_spread` times the
  channel's overall one (1 = the stratum varies as much as all weeks, 0 = spend is fixed in it).
  A ratio rather than a raw CV, so a steadily bought channel is not mistaken for a confounded one;
- low- and high-spend weeks both present: at or below, and above, the channel's median spend
  (at or below, so that a channel off air in most weeks, median 0, still has low weeks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ALL_WEEKS = "all weeks (no adjusters)"


@dataclass(frozen=True)
class OverlapThresholds:
    """The configured gate (`checks.overlap_bins`, `overlap_min_weeks`, `overlap_min_spread`)."""

    bins: int = 3
    min_weeks: int = 8
    min_spread: float = 0.5

    def __post_init__(self) -> None:
        if self.bins < 1 or self.min_weeks < 1 or self.min_spread < 0:
            raise ValueError("overlap thresholds need bins >= 1, min_weeks >= 1 and min_spread >= 0")


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
    spread: float
    low_spend_weeks: int
    """Weeks at or below the channel's median spend."""
    high_spend_weeks: int
    """Weeks above the channel's median spend."""
    ok: bool
    reason: str
    adjustment: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.channel} stratum {self.stratum}/{self.strata}"


def _cv(values: np.ndarray) -> float:
    mean = float(values.mean()) if len(values) else 0.0
    return float(values.std() / mean) if mean > 0 else 0.0


def propensity_score(treatment: np.ndarray, adjusters: np.ndarray) -> np.ndarray:
    """Least-squares prediction of the transformed media from the adjusters (with an intercept)."""
    design = np.column_stack([np.ones(len(treatment)), adjusters])
    beta, *_ = np.linalg.lstsq(design, treatment, rcond=None)
    return design @ beta


def strata(score: np.ndarray, bins: int) -> np.ndarray:
    """Quantile stratum (0..bins−1) of each week; ranks break ties so the strata have equal size."""
    ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    return (ranks * bins) // len(score)


def channel_overlap(channel: str, treatment: np.ndarray, spend: np.ndarray, adjusters: np.ndarray,
                    adjustment: Sequence[str], thresholds: OverlapThresholds) -> list[OverlapStratum]:
    """The strata of one channel; `adjusters` is (weeks, columns), possibly with no columns."""
    has_adjusters = adjusters.shape[1] > 0
    score = propensity_score(treatment, adjusters) if has_adjusters else np.zeros(len(treatment))
    bins = thresholds.bins if has_adjusters else 1
    labels = strata(score, bins)
    median = float(np.median(spend))
    overall_cv = _cv(spend)
    out: list[OverlapStratum] = []
    for k in range(bins):
        mask = labels == k
        s = spend[mask]
        cv = _cv(s)
        spread = cv / overall_cv if overall_cv > 0 else 0.0
        below, above = int((s <= median).sum()), int((s > median).sum())
        problems = []
        if mask.sum() < thresholds.min_weeks:
            problems.append(f"{int(mask.sum())} weeks < {thresholds.min_weeks}")
        if spread < thresholds.min_spread:
            problems.append(f"spread {spread:.2f} < {thresholds.min_spread}")
        if below == 0:
            problems.append("no week at or below the median spend")
        if above == 0:
            problems.append("no week above the median spend")
        out.append(OverlapStratum(
            channel=channel, stratum=k + 1, strata=bins, weeks=int(mask.sum()),
            score_min=float(score[mask].min()) if mask.any() else float("nan"),
            score_max=float(score[mask].max()) if mask.any() else float("nan"),
            spend_min=float(s.min()) if len(s) else float("nan"), spend_max=float(s.max()) if len(s) else float("nan"),
            spend_mean=float(s.mean()) if len(s) else float("nan"), cv=cv, spread=spread,
            low_spend_weeks=below, high_spend_weeks=above, ok=not problems, reason="; ".join(problems),
            adjustment=tuple(adjustment)))
    return out


def overlap_strata(features: pd.DataFrame, spend: Mapping[str, np.ndarray], adjustments: Mapping[str, Sequence[str]],
                   thresholds: OverlapThresholds) -> list[OverlapStratum]:
    """Every channel in `adjustments` (channel → adjustment columns), with its weekly `spend`."""
    out: list[OverlapStratum] = []
    for channel, adjustment in adjustments.items():
        adjusters = features[list(adjustment)].to_numpy(dtype=float) if adjustment else np.zeros((len(features), 0))
        out.extend(channel_overlap(channel, features[channel].to_numpy(dtype=float),
                                   np.asarray(spend[channel], dtype=float), adjusters, adjustment, thresholds))
    return out


TABLE_COLUMNS = ["channel", "stratum", "strata", "weeks", "spend_min", "spend_max", "spend_mean", "cv", "spread",
                 "low_spend_weeks", "high_spend_weeks", "score_min", "score_max", "ok", "reason", "label",
                 "adjustment"]


def overlap_table(rows: Sequence[OverlapStratum]) -> pd.DataFrame:
    """The `overlap` table: one row per channel and stratum."""
    return pd.DataFrame([{
        "channel": r.channel, "stratum": r.stratum, "strata": r.strata, "weeks": r.weeks, "spend_min": r.spend_min,
        "spend_max": r.spend_max, "spend_mean": r.spend_mean, "cv": r.cv, "spread": r.spread,
        "low_spend_weeks": r.low_spend_weeks, "high_spend_weeks": r.high_spend_weeks,
        "score_min": r.score_min, "score_max": r.score_max, "ok": r.ok, "reason": r.reason, "label": r.label,
        "adjustment": "|".join(r.adjustment)} for r in rows], columns=TABLE_COLUMNS)


def overlap_message(table: pd.DataFrame) -> str:
    """One paragraph naming each channel with thin strata and why they are thin."""
    thin = table[~table["ok"].astype(bool)]
    if thin.empty:
        channels = ", ".join(dict.fromkeys(table["channel"])) or "no channel"
        return f"Overlap holds for {channels}: every stratum has enough weeks and spread in spend."
    parts = []
    for channel, rows in thin.groupby("channel", sort=False):
        strata_text = "; ".join(f"stratum {r.stratum}/{r.strata} ({r.reason}; spend {r.spend_min:,.0f}–"
                                f"{r.spend_max:,.0f} over {r.weeks} weeks)" for r in rows.itertuples())
        parts.append(f"channel '{channel}': {strata_text}")
    return ("Thin overlap: " + " | ".join(parts) + ". Within these strata of the adjustment set the channel's spend "
            "barely varies, so its effect would be extrapolated, not estimated. Vary the channel's spend across "
            "comparable weeks, run a lift test, or lower checks.overlap_min_spread / overlap_bins knowingly.")
