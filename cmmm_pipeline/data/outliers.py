"""Robust bounds that single out a wild week (a unit, currency or decimal-mark error, a doubled export)
in the KPI and in each spend column, before any estimate is made.

One week of 9.9e11 in a KPI of about 10,000 passes every other rule and turns every ROI into noise of
±1e8, so the raw_spend suite refuses weeks beyond a robust bound: the median week plus `threshold`
robust scales (1.4826 × the median absolute deviation, the standard deviation of normal data).
Median and MAD ignore the wild week itself (they break down only when half the weeks are wild).

- KPI: on its level, both sides (a KPI may be negative, e.g. a profit). The scale is at least
  `KPI_MIN_RELATIVE_SCALE` × |median|, so a very steady KPI is not refused for an ordinary promotion.
- Spend: media spend is bursty by design (flights with zero weeks, launches, Q4 peaks), so the rule
  looks at the spending weeks only (zeros would make the MAD zero) and on a log scale (a burst is a
  multiple of the usual week, not a sum). Only the upper side is refused: a near-dark week is normal.
  The log scale is kept within [`SPEND_MIN_LOG_SCALE`, `SPEND_MAX_LOG_SCALE`]: a very steady channel
  may still double its spend, and no channel is so erratic that 100 times its median spending week
  passes unnoticed at the default threshold.

Thresholds were chosen with `benchmarks/outlier_calibration.py` (false alarms on clean data from
three simulator families, bursty stress worlds and public data; detection of injected wild weeks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

MAD_TO_SD = 1.4826
"""MAD × this is the standard deviation for normal data: thresholds read as robust z-scores."""

KPI_MIN_RELATIVE_SCALE = 0.05
"""The KPI's robust scale is at least 5% of its median week."""
SPEND_MIN_LOG_SCALE = 0.2
SPEND_MAX_LOG_SCALE = 0.4
"""Bounds of a spend column's robust scale on the log scale (0.2 ≈ a typical week-to-week ratio of 1.2)."""
MIN_WEEKS = 8
"""Fewest (spending) weeks with which a bound is computed; with fewer the rule cannot judge a column."""


class ColumnKind(Enum):
    KPI = "kpi"
    SPEND = "spend"


@dataclass(frozen=True)
class OutlierBound:
    """The weeks a column accepts: [lower, upper] in the column's own units (lower is None for spend,
    whose low weeks are never refused)."""

    column: str
    kind: ColumnKind
    threshold: float
    center: float
    """The median week (KPI) or the median spending week (spend), in the column's units."""
    scale: float
    """The robust scale: in the column's units (KPI), on the natural-log scale (spend)."""
    lower: float | None
    upper: float
    weeks: int
    """Weeks the median and scale were computed from (spending weeks for spend)."""

    def z(self, values: np.ndarray) -> np.ndarray:
        """Each value's robust z-score (KPI: |deviation|; spend: log ratio to the median spending week;
        zero spend scores -inf)."""
        x = np.asarray(values, dtype=float)
        if self.kind is ColumnKind.KPI:
            return np.abs(x - self.center) / self.scale
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.log(np.where(x > 0, x, 1.0) / self.center) / self.scale, -np.inf)

    def flags(self, values: np.ndarray) -> np.ndarray:
        """Which values lie outside the bound (the GX expectation's verdict, computed directly)."""
        x = np.asarray(values, dtype=float)
        outside = x > self.upper
        if self.lower is not None:
            outside |= x < self.lower
        return outside

    def requirement(self) -> str:
        """The rule in words, with the statistics it was computed from."""
        if self.kind is ColumnKind.KPI:
            return (f"a KPI week must lie within {_num(self.threshold)} robust scales of the median week "
                    f"(median {_num(self.center)}, robust scale {_num(self.scale)} = 1.4826 x MAD over "
                    f"{self.weeks} weeks: from {_num(self.lower)} to {_num(self.upper)})")
        return (f"a spending week must lie within {_num(self.threshold)} robust scales of the median spending "
                f"week on a log scale (median {_num(self.center)} over {self.weeks} spending weeks; robust log "
                f"scale {self.scale:.3g} = 1.4826 x MAD of log spend, held within [{SPEND_MIN_LOG_SCALE:g}, "
                f"{SPEND_MAX_LOG_SCALE:g}]: at most {_num(self.upper)}, {self.upper / self.center:.3g}x the median)")


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:,.6g}" if abs(value) < 1e6 else f"{value:.4g}"


def _finite(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _mad_scale(x: np.ndarray, center: float) -> float:
    return MAD_TO_SD * float(np.median(np.abs(x - center)))


def kpi_bound(values: np.ndarray, column: str, threshold: float) -> OutlierBound | None:
    """Median ± threshold × robust scale of the KPI's level (None with fewer than `MIN_WEEKS` weeks)."""
    x = _finite(values)
    if x.size < MIN_WEEKS:
        return None
    center = float(np.median(x))
    scale = max(_mad_scale(x, center), KPI_MIN_RELATIVE_SCALE * abs(center))
    if scale == 0.0:  # a KPI that is zero in most weeks: no relative floor to speak of
        return None
    return OutlierBound(column, ColumnKind.KPI, threshold, center, scale, center - threshold * scale,
                        center + threshold * scale, int(x.size))


def spend_bound(values: np.ndarray, column: str, threshold: float) -> OutlierBound | None:
    """exp(median + threshold × robust scale) of the log spend of the spending weeks (None with fewer
    than `MIN_WEEKS` spending weeks)."""
    x = _finite(values)
    logs = np.log(x[x > 0])
    if logs.size < MIN_WEEKS:
        return None
    center = float(np.median(logs))
    scale = min(max(_mad_scale(logs, center), SPEND_MIN_LOG_SCALE), SPEND_MAX_LOG_SCALE)
    exponent = center + threshold * scale
    upper = math.exp(exponent) if exponent < 709.0 else math.inf
    return OutlierBound(column, ColumnKind.SPEND, threshold, math.exp(center), scale, None, upper, int(logs.size))


def column_bound(kind: ColumnKind, values: np.ndarray, column: str, threshold: float) -> OutlierBound | None:
    return (kpi_bound if kind is ColumnKind.KPI else spend_bound)(values, column, threshold)
