"""Checks of the config against the data it describes: rules that neither the config alone nor the
data alone can decide, run at ingestion so that they stop a run before anything is estimated."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import ConfigError

WEEK_DAYS = 6
"""A week dated by its first day covers that day and the six after it."""


def data_span(weeks: pd.Series) -> tuple[dt.date, dt.date] | None:
    """First day of the first week and last day of the last week (None for no dates)."""
    observed = pd.to_datetime(weeks, errors="coerce").dropna()
    if observed.empty:
        return None
    return observed.min().date(), (observed.max() + pd.Timedelta(days=WEEK_DAYS)).date()


def check_experiment_dates(raw: pd.DataFrame, week_column: str, config: PipelineConfig) -> None:
    """Every lift experiment must lie inside the weeks the data covers: the model can only be
    reconciled with an experiment over weeks it has seen."""
    if not config.experiments:
        return
    span = data_span(raw[week_column])
    if span is None:
        return
    first, last = span
    for i, exp in enumerate(config.experiments):
        if exp.start < first or exp.end > last:
            side = "starts before" if exp.start < first else "ends after"
            raise ConfigError(
                "experiment-outside-data", f"{config.source} key 'experiments[{i}]'",
                f"the {exp.channel} experiment runs {exp.start} to {exp.end} and {side} the data in "
                f"{config.data.path.name}, which covers {first} to {last}.",
                "correct the experiment's dates, extend the data to cover them, or remove the experiment.")
