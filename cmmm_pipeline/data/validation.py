"""Checks of the config against the data it describes: rules that neither the config alone nor the
data alone can decide, run at ingestion so that they stop a run before anything is estimated."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import ConfigError, combined

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


def campaign_problems(raw: pd.DataFrame, week_column: str, config: PipelineConfig) -> list[ConfigError]:
    """Every campaign must be weeks of the data with spend in them: its start and end are dates of
    weeks in the data (inclusive), and the channel spent something in the window. A window the data
    does not cover, or one without spend, has no counterfactual to compare with."""
    if not config.campaigns:
        return []
    weeks = pd.to_datetime(raw[week_column], errors="coerce")
    span = data_span(raw[week_column])
    if span is None:
        return []
    first, last = span
    known = set(weeks.dropna().dt.date)
    problems = []
    for i, c in enumerate(config.campaigns):
        place = f"{config.source} key 'campaigns[{i}]'"
        if c.start < first or c.end > last:
            side = "starts before" if c.start < first else "ends after"
            problems.append(ConfigError(
                "campaign-outside-data", place,
                f"campaign '{c.name}' ({c.channel}) runs {c.start} to {c.end} and {side} the data in "
                f"{config.data.path.name}, which covers {first} to {last}.",
                "correct the campaign's dates, extend the data to cover them, or remove the campaign."))
            continue
        off_grid = [d for d in (c.start, c.end) if d not in known]
        if off_grid:
            nearest = min(known, key=lambda w: abs((w - off_grid[0]).days))
            problems.append(ConfigError(
                "campaign-not-a-week", place,
                f"campaign '{c.name}' gives {off_grid[0]}, which is not the date of a week in the data.",
                f"use the data's week dates (inclusive), e.g. {nearest} for the week nearest {off_grid[0]}."))
            continue
        column = config.channel(c.channel).spend_column
        window = ((weeks.dt.date >= c.start) & (weeks.dt.date <= c.end)).to_numpy()
        spend = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float)[window] \
            if column in raw.columns else None
        if spend is not None and not (spend > 0).any():
            problems.append(ConfigError(
                "campaign-no-spend", place,
                f"campaign '{c.name}': {c.channel} spent nothing in the {int(window.sum())} week(s) from {c.start} "
                f"to {c.end}, so there is no spend to remove.",
                "check the dates (inclusive week dates) and the channel, or remove the campaign."))
    return problems


def check_campaigns(raw: pd.DataFrame, week_column: str, config: PipelineConfig) -> None:
    """Raise every campaign problem at once (see `campaign_problems`)."""
    error = combined(campaign_problems(raw, week_column, config))
    if error is not None:
        raise error
