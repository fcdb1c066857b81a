"""Lift tests reconciled with the model: validation, never an extra fitting objective.

For a test of channel c over weeks [start, end], the model's incremental KPI over the same weeks
is β_c · Σ_{t in window} x_{c,t} (total effect, transformed media as applied), and its interval
comes from the same bootstrap draws as the channel's other intervals (each draw with its own
coefficient and its own re-selected transform), read the same way: smoothed over the selection
where the channel's estimates are. The two agree when their intervals overlap.
PASS when either point lies inside the other's interval (each is consistent with the other);
REVIEW when the intervals overlap but neither point lies inside the other's interval; FAIL when
the intervals do not overlap.

The model's interval reflects the uncertainty of its coefficient and transform, not the
week-to-week luck of a short window (e.g. how search happened to respond to TV in those weeks),
which the test's own interval carries; this is why overlap, not containment, is the agreement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import ExperimentConfig
from cmmm_pipeline.core.status import CaseResult, CheckCase, Status

EXPERIMENT_COLUMNS = ["channel", "start", "end", "weeks", "measured_incremental_kpi", "measured_ci_low",
                      "measured_ci_high", "model_incremental_kpi", "model_ci_low", "model_ci_high",
                      "intervals_overlap", "measured_inside_model", "model_inside_measured", "status", "message",
                      "recommendation"]


_BOTH = ("model {model:,.0f} [{low:,.0f}, {high:,.0f}] and test {measured:,.0f} [{measured_low:,.0f}, "
         "{measured_high:,.0f}]")


class ExperimentCase(CheckCase):
    """A lift test against the model. Details: `model`, `low`, `high` (the model's estimate and
    interval), `measured`, `measured_low`, `measured_high` (the test's), `weeks`, `pct` (the level in
    percent), `why` (NOT_COMPARABLE) and `which` (AGREE: whose point lies in whose interval)."""

    NOT_COMPARABLE = (Status.REVIEW, "cannot compare: {why}.",
                      "check the test dates against the data, or the channel's identification.")
    AGREE = (Status.PASS, _BOTH + " over the same {weeks} weeks agree: {which}", "no action.")
    OVERLAP = (Status.REVIEW, _BOTH + ": the intervals overlap, but neither estimate lies inside the other's "
               "interval.", "watch the next test; if the gap persists, revisit the channel's transform or DAG.")
    DISJOINT = (Status.FAIL, ("the measured lift [{measured_low:,.0f}, {measured_high:,.0f}] and the model's {pct}% "
                              "interval [{low:,.0f}, {high:,.0f}] do not overlap."),
                ("the model and the experiment disagree: check the test's design and the channel's confounders "
                 "before using either number."))


@dataclass(frozen=True)
class ExperimentReconciliation(CaseResult):
    channel: str
    start: dt.date
    end: dt.date
    weeks: int
    """Modelled weeks inside the test window."""
    measured: float
    measured_low: float
    measured_high: float
    model: float
    model_low: float
    model_high: float
    overlap: bool
    inside: bool
    """The measured lift lies inside the model's interval."""
    model_inside: bool
    """The model's estimate lies inside the test's interval."""
    case: ExperimentCase
    message: str


def window_mask(weeks: pd.Series, start: dt.date, end: dt.date) -> np.ndarray:
    """Modelled weeks whose week-start date lies in [start, end]."""
    days = pd.to_datetime(weeks).dt.normalize()
    return ((days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))).to_numpy()


def reconcile(experiment: ExperimentConfig, weeks: int, model: float, model_interval: tuple[float, float] | None,
              level: float) -> ExperimentReconciliation:
    """Compare one lift test with the model's estimate over its weeks.

    Parameters
    ----------
    experiment
        The lift test: channel, window, measured incremental KPI and its interval.
    weeks
        Modelled weeks inside the test's window.
    model
        The model's incremental KPI over those weeks.
    model_interval
        Its `level` interval (None when the channel has no estimate).
    level
        The interval's coverage, e.g. 0.95.
    """
    e = experiment
    nan = float("nan")
    if weeks == 0 or model_interval is None or not np.isfinite(model):
        why = ("none of the test's weeks are in the modelled data" if weeks == 0
               else "the model has no estimate for this channel")
        case = ExperimentCase.NOT_COMPARABLE
        return ExperimentReconciliation(e.channel, e.start, e.end, weeks, e.incremental_kpi, e.ci_low, e.ci_high,
                                        model if weeks else nan, nan, nan, False, False, False, case,
                                        case.render(why=why))
    low, high = model_interval
    overlap = e.ci_low <= high and low <= e.ci_high
    inside = low <= e.incremental_kpi <= high
    model_inside = e.ci_low <= model <= e.ci_high
    if inside or model_inside:
        case = ExperimentCase.AGREE
    else:
        case = ExperimentCase.OVERLAP if overlap else ExperimentCase.DISJOINT
    which = ("the measured lift lies inside the model's interval." if inside
             else "the model's estimate lies inside the test's interval.")
    message = case.render(model=model, low=low, high=high, measured=e.incremental_kpi, measured_low=e.ci_low,
                          measured_high=e.ci_high, weeks=weeks, pct=round(100 * level), which=which)
    return ExperimentReconciliation(e.channel, e.start, e.end, weeks, e.incremental_kpi, e.ci_low, e.ci_high,
                                    model, low, high, overlap, inside, model_inside, case, message)


def experiments_table(results: list[ExperimentReconciliation]) -> pd.DataFrame:
    return pd.DataFrame([{
        "channel": r.channel, "start": pd.Timestamp(r.start), "end": pd.Timestamp(r.end), "weeks": r.weeks,
        "measured_incremental_kpi": r.measured, "measured_ci_low": r.measured_low, "measured_ci_high": r.measured_high,
        "model_incremental_kpi": r.model, "model_ci_low": r.model_low, "model_ci_high": r.model_high,
        "intervals_overlap": r.overlap, "measured_inside_model": r.inside, "model_inside_measured": r.model_inside,
        "status": r.status.value,
        "message": r.message, "recommendation": r.recommendation} for r in results], columns=EXPERIMENT_COLUMNS)
