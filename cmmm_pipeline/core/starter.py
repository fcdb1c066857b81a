"""`cmmm init`: a starter config written from a data file's header and values.

Every column gets a role from its name and its values, and every role the data cannot settle is
marked `DECIDE` in the written YAML with its reason. Names are read in the conventions of common
exports: `tv_spend` / `facebook_impressions`; Robyn's `_S` (spend), `_I` / `_P` (impressions,
clicks) and `_B` (baseline) suffixes; `x1..xn` media and `c1..cn` controls (PyMC-Marketing);
`*_control`, `event_*`, price and promotion columns. Values settle what names leave open: spend is
never negative and comes in bursts (zero weeks, a large coefficient of variation), a KPI is positive
every week and moves with the media, a 0/1 column is an event dummy, and a column that is a straight
line in time or the date's day of the year repeats the generated trend or seasonality.

One channel per medium: its spend column is the treatment and its impressions or clicks are named
beside it, never a channel of their own (they measure the same spend). The starter DAG is the
simplest defensible one: seasonality drives the channels and the KPI, every channel and control
drives the KPI; mediators and confounders specific to the business are for the user to add.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import textwrap
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import GENERATED_CONTROLS, RESERVED_COLUMN, SEASONALITY, TREND
from cmmm_pipeline.core.errors import ConfigError, DataError, clip

SPEND_WORDS = frozenset({"spend", "spends", "spent", "cost", "costs", "budget", "investment", "invest",
                         "expenditure", "expense", "expenses"})
ACTIVITY_WORDS = frozenset({"impressions", "impression", "impr", "imps", "clicks", "click", "grp", "grps", "trp",
                            "trps", "views", "reach", "frequency", "insertions", "spots"})
KPI_WORDS = frozenset({"kpi", "target", "sales", "revenue", "revenues", "conversions", "conversion", "orders",
                       "units", "signups", "leads", "bookings", "gmv", "turnover", "transactions", "purchases"})
CONTROL_WORDS = frozenset({"control", "controls", "ctrl", "event", "events", "holiday", "holidays", "promo", "promos",
                           "promotion", "promotions", "discount", "discounts", "price", "prices", "pricing",
                           "competitor", "competitors", "competition", "temperature", "weather", "rain", "gdp",
                           "cpi", "inflation", "unemployment", "covid", "lockdown", "sentiment", "macro",
                           "distribution", "stockout", "baseline", "context", "dummy"})
MEDIA_WORDS = frozenset({"tv", "ctv", "radio", "ooh", "print", "press", "search", "sem", "seo", "social", "facebook",
                         "fb", "meta", "instagram", "tiktok", "snapchat", "pinterest", "linkedin", "twitter",
                         "youtube", "google", "bing", "display", "video", "olv", "online", "digital", "email",
                         "newsletter", "crm", "affiliate", "affiliates", "amazon", "podcast", "influencer",
                         "influencers", "programmatic", "cinema", "billboard", "mail", "sms", "native", "banner",
                         "media", "organic"})
RATIO_WORDS = frozenset({"per", "rate", "ratio", "share", "pct", "percent", "percentage", "cpa", "cpc", "cpm", "ctr",
                         "cvr", "roas", "roi", "aov"})
MEDIA_OUTCOME_WORDS = frozenset({"visits", "sessions", "traffic", "pageviews", "visitors"})
KPI_QUALIFIERS = frozenset({"total", "net", "gross", "weekly", "sum", "all"})
CURRENCY_WORDS = frozenset({"eur", "usd", "gbp", "chf", "jpy", "cad", "aud", "dollars", "euros", "euro"})
MEDIUM_ALIASES = {"fb": "facebook", "ig": "instagram", "yt": "youtube", "television": "tv", "adwords": "google"}
"""Short names of one medium, so that `fb_spend` and `facebook_impressions` are one channel."""
DATE_WORDS = ("week", "date", "ds", "period", "week_start", "time")
ROBYN_SUFFIXES = {"S": "spend", "I": "activity", "P": "activity", "B": "baseline"}

ZERO_SHARE = 0.05
"""Spend is off in some weeks: a never-negative column that is zero in at least this share of rows
looks like spend (prices, temperatures and competitors' sales are never exactly zero)."""
BURSTY_CV = 0.5
"""Spend comes in bursts: a never-negative column whose standard deviation is at least half its mean
looks like spend (prices and sales vary far less from week to week)."""

_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\- ]*$")
_FOURIER = re.compile(rf"^{SEASONALITY}_(sin|cos)[0-9]+$")
_NUMBERED_MEDIA = re.compile(r"^(x|channel|media|m)[0-9]+$")
_NUMBERED_CONTROL = re.compile(r"^(c|z|control)[0-9]+$")


class Kind(Enum):
    """Where a column that is not the KPI goes."""

    CHANNEL = "channel"
    CONTROL = "control"
    LEFT_OUT = "left out"


class Metric(Enum):
    """What a column of a medium measures."""

    SPEND = "spend"
    ACTIVITY = "activity"
    """Impressions, clicks, GRPs: the exposure the spend bought, not a treatment of its own."""
    NONE = "none"


@dataclass(frozen=True)
class Values:
    """What a column's values say about its role."""

    zero_share: float
    cv: float
    """Coefficient of variation: standard deviation over mean (inf when the mean is not positive)."""
    minimum: float
    binary: bool
    unclean: int
    """Cells that are empty or hold text: the run refuses them (no-missing-values, numeric-type)."""

    @property
    def spend_like(self) -> bool:
        return self.minimum >= 0 and not self.binary and (self.zero_share >= ZERO_SHARE or self.cv >= BURSTY_CV)

    def describe(self) -> str:
        sign = "never negative" if self.minimum >= 0 else f"minimum {self.minimum:.3g}"
        return f"zero in {self.zero_share:.0%} of rows, CV {self.cv:.2f}, {sign}"


@dataclass(frozen=True)
class Name:
    """What a column's name says: the metric words it holds and the medium they leave."""

    words: frozenset[str]
    metric: Metric
    medium: str
    baseline: bool
    """Robyn's `_B` suffix: a baseline (context) variable."""


@dataclass(frozen=True)
class Role:
    """A column's guessed role, the reason, and whether a human must decide it."""

    column: str
    reason: str
    decide: bool = False


@dataclass(frozen=True)
class Channel:
    name: str
    spend_column: str
    beside: tuple[str, ...]
    """The medium's other columns (impressions, clicks), named in a comment, not modelled."""
    reason: str
    decide: bool = False


@dataclass(frozen=True)
class Starter:
    """The columns' roles as guessed from the data."""

    date_column: str
    kpi: Role
    channels: tuple[Channel, ...]
    controls: tuple[Role, ...]
    left_out: tuple[Role, ...]
    notes: tuple[str, ...]
    """Decisions about the table as a whole (several rows per week)."""

    @property
    def decisions(self) -> int:
        """How many items the written config marks DECIDE."""
        items = [self.kpi, *self.channels, *self.controls, *self.left_out]
        return len(self.notes) + sum(item.decide for item in items)

    def summary(self) -> str:
        channels = ", ".join(f"{c.name} ({c.spend_column})" for c in self.channels)
        return (f"KPI '{self.kpi.column}'; {len(self.channels)} channel(s): {channels}; controls: "
                f"{', '.join(r.column for r in self.controls) or 'seasonality and trend only'}; "
                f"left out: {', '.join(r.column for r in self.left_out) or 'none'}")


@dataclass(frozen=True)
class _Column:
    column: str
    name: Name
    values: Values


def _tokens(column: str) -> list[str]:
    """The words of a column name in their original case, split at non-alphanumerics and camelCase."""
    return [t for t in re.split(r"[^A-Za-z0-9]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", column)) if t]


def read_name(column: str) -> Name:
    """Metric, medium and baseline flag of a column name (`search_clicks_P` -> activity of `search`)."""
    tokens = _tokens(column)
    suffix = ROBYN_SUFFIXES.get(tokens[-1].upper()) if len(tokens) > 1 and len(tokens[-1]) == 1 else None
    if suffix:
        tokens = tokens[:-1]
    words = [t.lower() for t in tokens]
    if RATIO_WORDS & set(words):  # cost per click, spend share: a rate, not a quantity of media
        return Name(frozenset(words), Metric.NONE, "_".join(words), False)
    spend = suffix == "spend" or bool(SPEND_WORDS & set(words))
    activity = suffix == "activity" or bool(ACTIVITY_WORDS & set(words))
    metric = Metric.SPEND if spend else Metric.ACTIVITY if activity else Metric.NONE
    medium = [MEDIUM_ALIASES.get(w, w) for w in words if w not in SPEND_WORDS | ACTIVITY_WORDS | CURRENCY_WORDS]
    return Name(frozenset(words), metric, "_".join(medium), suffix == "baseline")


def read_values(values: pd.Series) -> Values:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    present = numbers.dropna().to_numpy()
    mean = float(present.mean()) if len(present) else 0.0
    cv = float(present.std()) / mean if mean > 0 else float("inf")
    return Values(zero_share=float((present == 0).mean()) if len(present) else 0.0, cv=cv,
                  minimum=float(present.min()) if len(present) else 0.0,
                  binary=bool(len(present)) and set(np.unique(present)) <= {0.0, 1.0},
                  unclean=int(numbers.isna().sum()))


def _is_date_column(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values.astype(str), errors="coerce", format="mixed")
    return bool(len(values)) and bool(parsed.notna().all())


def _parse_dates(values: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values.astype(str), errors="coerce", format="mixed")


def time_feature(values: pd.Series, dates: pd.Series) -> str | None:
    """Why a column repeats what the generated controls already give (None when it does not): a
    straight line in time (a time index) or a calendar field of the date (day of the year, ...)."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if np.isnan(v).any() or len(v) < 3:
        return None
    days = ((dates - dates.min()).dt.days).to_numpy(dtype=float)
    if np.ptp(days) > 0:
        slope, intercept = np.polyfit(days, v, 1)
        if abs(slope) > 0 and np.allclose(v, intercept + slope * days, rtol=1e-6, atol=1e-6 * max(np.ptp(v), 1.0)):
            return f"a straight line in time (a time index): the generated '{TREND}' control stands for it"
    fields = {"day of the year": dates.dt.dayofyear, "week of the year": dates.dt.isocalendar().week.astype(float),
              "month": dates.dt.month, "quarter": dates.dt.quarter, "year": dates.dt.year}
    for label, field in fields.items():
        offset = v - field.to_numpy(dtype=float)
        if np.allclose(offset, offset[0]):
            kind = TREND if label == "year" else SEASONALITY
            return f"the {label} of the date: the generated '{kind}' control stands for it"
    return None


def _kpi_rank(c: _Column) -> int | None:
    """0 for a name that is a KPI (y, sales, total_revenue), 1 for one that mentions it, None otherwise."""
    words = c.name.words
    if c.name.metric is not Metric.NONE or c.name.baseline or words & (RATIO_WORDS | CONTROL_WORDS):
        return None
    core = [w for w in _tokens(c.column.lower()) if w not in KPI_QUALIFIERS]
    if core == ["y"] or (len(core) == 1 and core[0] in KPI_WORDS):
        return 0
    return 1 if words & KPI_WORDS and not words & MEDIA_WORDS else None


def _media_named(c: _Column) -> bool:
    return bool(_NUMBERED_MEDIA.match(c.column.lower()) or c.name.words & MEDIA_WORDS)


def _control_named(c: _Column) -> str | None:
    """Why the name says control (None when it does not)."""
    if c.name.baseline:
        return "named with Robyn's _B suffix (a baseline variable)"
    if _NUMBERED_CONTROL.match(c.column.lower()):
        return "named c<n>, a control in PyMC-Marketing's convention"
    words = sorted(c.name.words & CONTROL_WORDS)
    return f"its name says control ('{words[0]}')" if words else None


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _choose_kpi(usable: list[_Column], table: pd.DataFrame) -> tuple[Role, list[Role]]:
    """The KPI and the other KPI-like columns (left out: outcomes are not causes of the KPI)."""
    ranked = sorted((r, i, c) for i, c in enumerate(usable) if (r := _kpi_rank(c)) is not None)
    if ranked:
        rank, _, best = ranked[0]
        others = [c for _, _, c in ranked[1:]]
        reason = ("its name is a KPI's (y, kpi, target, sales, revenue, conversions, ...)" if rank == 0
                  else f"its name mentions a KPI ({', '.join(sorted(best.name.words & KPI_WORDS))})")
        if others:
            reason += f"; also KPI-like and left out: {', '.join(c.column for c in others)}"
        left = [Role(c.column, f"named like a KPI too: another outcome, not a cause of '{best.column}'; make it "
                     "data.kpi instead if it is the outcome to explain", True) for c in others]
        return Role(best.column, reason, rank != 0 or bool(others)), left
    open_role = [c for c in usable if c.name.metric is Metric.NONE and not _media_named(c)
                 and not _control_named(c) and not c.values.binary]
    positive = [c for c in open_role if c.values.minimum > 0 and not c.values.spend_like]
    pool = positive or open_role or [c for c in usable if c.name.metric is Metric.NONE]
    if not pool:
        raise LookupError("no KPI")
    spendy = [c for c in usable if c.name.metric is Metric.SPEND or (c not in pool and c.values.spend_like)]
    media = sum(pd.to_numeric(table[c.column], errors="coerce").fillna(0).rank().to_numpy() for c in spendy)
    scores = {c.column: _rank_correlation(pd.to_numeric(table[c.column], errors="coerce").fillna(0).to_numpy(), media)
              if spendy else 0.0 for c in pool}
    best = max(pool, key=lambda c: scores[c.column])  # the first of equals: max keeps the header order
    reason = ("no column is named like a KPI (y, kpi, sales, revenue, conversions, target, ...); "
              f"'{best.column}' is {'positive in every row' if best in positive else 'the likeliest by its values'}")
    if spendy and len(pool) > 1:
        reason += f" and moves most with the spend-like columns (rank correlation {scores[best.column]:.2f})"
    return Role(best.column, reason + f" ({best.values.describe()})", True), []


def _channel_name(medium: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", medium).strip("_").lower() or "media"
    name = name if _NODE_NAME.match(name) else f"c_{name}"
    if name in taken or name in GENERATED_CONTROLS or name == RESERVED_COLUMN or _FOURIER.match(name):
        name = f"{name}_media"
    while name in taken:
        name += "_"
    return name


def _channel(medium: str, members: list[_Column], taken: set[str]) -> Channel:
    """One medium's channel: its (first non-negative) spend column as the treatment, the rest beside it."""
    spends = [c for c in members if c.name.metric is Metric.SPEND]
    plain = [c for c in members if c.name.metric is Metric.NONE]
    activity = [c for c in members if c.name.metric is Metric.ACTIVITY]
    name = _channel_name(medium, taken)
    if spends:
        treatment = next((c for c in spends if c.values.minimum >= 0), spends[0])
        decide, reason = len(spends) > 1, f"the spend of medium '{name}'"
        if decide:
            reason = f"{len(spends)} spend columns for medium '{name}'; '{treatment.column}' is the treatment"
        if treatment.values.minimum < 0:
            decide, reason = True, f"{reason}; it has negative values, which the run refuses (spend-non-negative)"
    elif plain:
        treatment, decide = plain[0], True
        words = sorted(treatment.name.words & MEDIA_WORDS)
        named = ("named x<n>, a medium in PyMC-Marketing's convention" if re.match(r"^x[0-9]+$", treatment.column, re.I)
                 else f"named like a medium ('{words[0]}')" if words else "")
        looks = "look" if treatment.values.spend_like else "do not look"
        reason = (f"{named + ', with no spend word' if named else 'nothing in its name says its role'}; its values "
                  f"{looks} like spend ({treatment.values.describe()}): check it is spend, not impressions")
    else:
        treatment = activity[0]
        decide = True
        organic = "organic activity: " if "organic" in treatment.name.words else ""
        reason = (f"{organic}no spend column for medium '{name}', so the treatment is '{treatment.column}' and its "
                  "ROI is KPI per unit of it (per impression, per click); add the spend column, or move it to controls")
    beside = tuple(c.column for c in members if c is not treatment)
    return Channel(name, treatment.column, beside, reason, decide)


def _other_role(c: _Column) -> tuple[Kind, Role]:
    """Where a column goes that is neither the KPI nor named as a medium's spend or activity, and why."""
    v, words = c.values, c.name.words
    if words & RATIO_WORDS and words & KPI_WORDS:
        return Kind.LEFT_OUT, Role(c.column, "a rate of the outcome, not a cause of it; use it to turn the KPI into "
                                   "money, not as a control", True)
    if words & RATIO_WORDS:
        return Kind.CONTROL, Role(c.column, "a rate, not a quantity: keep it only if it causes the KPI or spend (a "
                                  f"price does; a click-through rate is an outcome of media) ({v.describe()})", True)
    if words & KPI_WORDS and not _control_named(c):
        whose = "attributed to a medium" if words & MEDIA_WORDS else "named like a KPI"
        return Kind.LEFT_OUT, Role(c.column, f"an outcome ({whose}), not a cause of the KPI", True)
    if words & MEDIA_OUTCOME_WORDS:
        return Kind.LEFT_OUT, Role(c.column, "site traffic is usually an outcome of media: as a control it would "
                                   "hide part of their effect; add it as a mediator in graph.edges if you model it",
                                   True)
    if "population" in words:
        return Kind.LEFT_OUT, Role(c.column, "the size of the market, not a weekly cause; divide spend and KPI by it "
                                   "if the markets differ in size", True)
    if named := _control_named(c):
        if v.spend_like:
            return Kind.CONTROL, Role(c.column, f"{named}, but its values also look like spend ({v.describe()}): "
                                      "make it a channel if it is one", True)
        return Kind.CONTROL, Role(c.column, named + ("; 0/1 values (an event dummy)" if v.binary else ""))
    if v.binary:
        return Kind.CONTROL, Role(c.column, "0/1 values: an event, holiday or promotion dummy")
    if _media_named(c) and v.minimum < 0:
        return Kind.CONTROL, Role(c.column, "named like a medium, but it has negative values, which spend never "
                                  f"has ({v.describe()})", True)
    if _media_named(c) or v.spend_like:
        return Kind.CHANNEL, Role(c.column, "")
    return Kind.CONTROL, Role(c.column, "nothing in its name says its role; its values look like a control, not "
                              f"spend ({v.describe()})", True)


def _panel_note(table: pd.DataFrame, date: str, dates: pd.Series, text: list[str]) -> tuple[str, str | None]:
    """The note for a table with several rows per date, and the column that names its markets."""
    per_date = int(dates.value_counts().median())
    keys = [c for c in text if not table[[date, c]].astype(str).duplicated().any()]
    key = keys[0] if keys else None
    which = f" (one per value of '{key}')" if key else ""
    return (f"'{date}' repeats: {per_date} rows per date{which}. The pipeline models one weekly series: sum "
            "spend, activity and KPI over the rows of each week (or keep one market) before `cmmm run`, which "
            "refuses repeated weeks (one-row-per-week)."), key


def _too_few(path: Path, date: str, numeric: list[str], left: list[Role], why: str = "") -> DataError:
    seen = ", ".join(clip(c, 40) for c in numeric[:12]) or "none"
    out = ", ".join(f"{clip(r.column, 40)} ({r.reason.split(':')[0].split(';')[0]})" for r in left[:6])
    return DataError("init-too-few-numeric-columns", f"{path} columns",
                     f"have no KPI and spend to model besides the date '{date}' (usable numeric columns: {seen}"
                     + (f"; {why}" if why else "") + (f"; left out: {out}" if out else "") + ").",
                     "export the KPI and at least one channel's spend as numeric columns, one row per week "
                     "(numbers only: no currency signs or thousands separators).")


def _date_column(table: pd.DataFrame, path: Path) -> tuple[str, list[str]]:
    """The column read as the week (a date-like name first) and every column of dates."""
    dates = [c for c in table.columns if _is_date_column(table[c])]
    dates.sort(key=lambda c: not any(w in c.lower() for w in DATE_WORDS))
    if not dates:
        raise DataError("init-no-date-column", f"{path} columns",
                        f"hold no column whose every value is a date, so the weeks are unknown (columns: "
                        f"{clip(', '.join(table.columns), 200)}).",
                        "add the week as a column of dates (YYYY-MM-DD, one row per week); an export whose dates "
                        "are the pandas index needs `to_csv(index=True)` or `reset_index()` first.")
    return dates[0], dates


def _screen(column: str, values: pd.Series, dates: list[str], parsed: pd.Series) -> Role | _Column | None:
    """A column's first sorting: a Role when its values settle it (left out, or a data column
    standing for a generated control), None for text, else the column to read by name and values."""
    numbers = pd.to_numeric(values, errors="coerce")
    if column in dates:
        return Role(column, f"dates: '{dates[0]}' is read as the week")
    if column.startswith("Unnamed:") or not column.strip():
        return Role(column, "a row number written by the export (the pandas index)")
    if numbers.isna().mean() > 0.5:
        if numbers.notna().sum() < values.notna().sum():
            return None
        return Role(column, f"empty in {int(numbers.isna().sum())} of {len(values)} rows", True)
    if numbers.nunique(dropna=True) <= 1:
        return Role(column, "the same value in every row: nothing to learn from")
    if column == RESERVED_COLUMN or _FOURIER.match(column):
        return Role(column, f"'{column}' is a name the pipeline gives to a generated column; rename it to use it",
                    True)
    if column in GENERATED_CONTROLS:
        return Role(column, f"stands for the generated '{column}' control (a data column of that name replaces it)")
    why = time_feature(values, parsed)
    return Role(column, why) if why else _Column(column, read_name(column), read_values(values))


def _text_role(values: pd.Series, panel_key: str | None) -> Role:
    column, distinct = str(values.name), values.dropna().astype(str).unique()
    if column == panel_key:
        return Role(column, f"text naming the {len(distinct)} markets of the panel (see the note above)", True)
    if len(distinct) <= 1:
        return Role(column, "the same text in every row: nothing to learn from")
    if len(distinct) <= 12:
        shown = ", ".join(f"'{clip(v, 20)}'" for v in distinct[:3]) + (", ..." if len(distinct) > 3 else "")
        return Role(column, f"text with {len(distinct)} values ({shown}): add one 0/1 column per value to use it "
                    "as a control", True)
    return Role(column, "text, not numbers")


def _sort_rest(rest: list[_Column]) -> tuple[dict[str, list[_Column]], list[Role], list[Role]]:
    """The columns other than the KPI: media (by medium, in header order), controls, left out."""
    media: dict[str, list[_Column]] = {}
    controls: list[Role] = []
    left: list[Role] = []
    for c in rest:
        kind, item = (Kind.CHANNEL, Role(c.column, "")) if c.name.metric is not Metric.NONE else _other_role(c)
        if kind is Kind.CHANNEL:
            media.setdefault(c.name.medium or c.column, []).append(c)
        elif not _NODE_NAME.match(c.column):
            use = "the KPI" if _kpi_rank(c) is not None else "a control"
            left.append(Role(c.column, f"its name is not a usable node name: rename it with letters, digits and '_' "
                             f"to use it as {use}", True))
        else:
            (left if kind is Kind.LEFT_OUT else controls).append(item)
    return media, controls, left


def _promote(controls: list[Role], candidates: list[_Column]) -> _Column | None:
    """With no channel named or shaped like spend: the most spend-like control (never negative, not 0/1)."""
    by_name = {c.column: c for c in candidates}
    shaped = [by_name[r.column] for r in controls if r.column in by_name
              and by_name[r.column].values.minimum >= 0 and not by_name[r.column].values.binary]
    return max(shaped, key=lambda c: (c.values.zero_share, c.values.cv)) if shaped else None


def _unclean(item: Role | Channel, columns: dict[str, _Column]) -> Role | Channel:
    """The item marked DECIDE when its column has empty or text cells, which the run would refuse."""
    c = columns.get(item.spend_column if isinstance(item, Channel) else item.column)
    if c is None or not c.values.unclean:
        return item
    issue = (f"{c.values.unclean} cell(s) of '{c.column}' are empty or text, which the run refuses "
             "(no-missing-values, numeric-type): fill or clean them")
    return dataclasses.replace(item, decide=True, reason=f"{item.reason}; {issue}" if item.reason else issue)


def guess_roles(table: pd.DataFrame, path: Path) -> Starter:
    """Assign each column a role from its name and values, with the reason and whether a human must
    decide it; refuse a table without dates, or without a KPI and a column that could be spend."""
    if len(table) == 0:
        raise DataError("data-empty", str(path), "has no data rows.",
                        "export the weekly table with its rows, not only the header.")
    table = table.rename(columns=str)
    date, dates = _date_column(table, path)
    parsed = _parse_dates(table[date])
    screened = {c: _screen(c, table[c], dates, parsed) for c in table.columns if c != date}
    candidates = [s for s in screened.values() if isinstance(s, _Column)]
    roles = [s for s in screened.values() if isinstance(s, Role)]
    controls = [r for r in roles if r.column in GENERATED_CONTROLS]
    left = [r for r in roles if r.column not in GENERATED_CONTROLS]
    text = [c for c, s in screened.items() if s is None]
    notes, panel_key = [], None
    if parsed.duplicated().any():
        note, panel_key = _panel_note(table, date, parsed, text)
        notes.append(note)
    left += [_text_role(table[c], panel_key) for c in text]
    try:
        kpi, outcomes = _choose_kpi([c for c in candidates if _NODE_NAME.match(c.column)], table)
    except LookupError:
        raise _too_few(path, date, [c.column for c in candidates], left) from None
    taken = {kpi.column, *(r.column for r in outcomes)}
    media, more_controls, more_left = _sort_rest([c for c in candidates if c.column not in taken])
    controls, left = controls + more_controls, left + outcomes + more_left
    if not media:
        best = _promote(controls, candidates)
        if best is None:
            raise _too_few(path, date, [c.column for c in candidates], left,
                           f"no column besides the KPI '{kpi.column}' could be spend (never negative, not 0/1)")
        controls = [r for r in controls if r.column != best.column]
        media[best.name.medium or best.column] = [best]
    taken = {kpi.column, *(r.column for r in controls)}
    channels: list[Channel] = []
    for medium, members in media.items():
        channels.append(_channel(medium, members, taken | {c.name for c in channels}))
    by_name = {c.column: c for c in candidates}
    return Starter(date, _unclean(kpi, by_name), tuple(_unclean(c, by_name) for c in channels),
                   tuple(_unclean(r, by_name) for r in controls), tuple(left), tuple(notes))


def _q(name: str) -> str:
    """A YAML scalar for a name: plain when safe, else JSON-quoted (valid YAML)."""
    plain = _PLAIN.match(name) and name.lower() not in {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
    return name if plain else json.dumps(name)


COMMENT_WIDTH = 110


def _mark(item: Role | Channel) -> str:
    return "DECIDE " if item.decide else ""


def _comment(lead: str, text: str, indent: str = "") -> list[str]:
    """A YAML comment wrapped to COMMENT_WIDTH, continuation lines indented under the text."""
    return textwrap.wrap(text, COMMENT_WIDTH, initial_indent=f"{indent}# {lead}",
                         subsequent_indent=f"{indent}#   {' ' * bool(lead) * 2}", break_on_hyphens=False,
                         break_long_words=False)


def starter_yaml(starter: Starter, data_path: str) -> str:
    """The config text, with the reason for every guess and DECIDE wherever a human must choose."""
    s = starter
    names = [c.name for c in s.channels]
    generated = [c for c in GENERATED_CONTROLS if c not in {r.column for r in s.controls}]
    controls = [*generated, *(r.column for r in s.controls)]
    lines = [
        "# Starter config written by `cmmm init`: every role below is a guess from the columns' names and",
        "# values. Lines marked DECIDE need your decision (the reason is given); read the others too. Then",
        "# run `cmmm validate --config` on this file before `cmmm run`. Reference of every key: docs/config.md.",
        *(line for note in s.notes for line in _comment("DECIDE: ", note)),
        *_comment(f"{_mark(s.kpi) or 'CHECK '}KPI '{s.kpi.column}': ", s.kpi.reason),
        f"data: {{path: {_q(data_path)}, date_column: {_q(s.date_column)}, kpi: {_q(s.kpi.column)}}}",
        "# Channels: one per medium, its spend column the treatment; impressions and clicks of the medium are",
        "# named beside it (they measure the same spend). Adstock and saturation are left out, so they are",
        "# selected from the data (transform_selection.csv); give them when you know them, e.g.",
        "#   adstock: {type: geometric, decay: 0.5}, saturation: {type: hill, half_saturation: 1.0, slope: 1.0}",
        "channels:",
    ]
    for c in s.channels:
        beside = f"  # beside it, not a channel: {', '.join(c.beside)}" if c.beside else ""
        if c.decide:
            lines += _comment(f"DECIDE {c.name}: ", c.reason, "  ")
        lines.append(f"  {c.name}: {{spend_column: {_q(c.spend_column)}}}{beside}")
    lines += [
        "# Controls: causes of the KPI (and of spend), never outcomes of media (e.g. site visits), which would",
        f"# hide part of their effect. {' and '.join(generated) or 'None'} {'is' if len(generated) == 1 else 'are'} "
        "generated from the dates.",
        *(line for r in s.controls for line in _comment(f"  {_mark(r)}{r.column}: ", r.reason)),
        f"controls: [{', '.join(_q(c) for c in controls)}]",
    ]
    if s.left_out:
        lines.append("# Left out (add a column back by hand if it belongs):")
        lines += [line for r in s.left_out for line in _comment(f"  {_mark(r)}{r.column}: ", r.reason)]
    lines += [
        "# The causal DAG: [cause, effect] pairs. This starter says seasonality drives spend and the KPI,",
        "# and every channel and control drives the KPI. DECIDE: add what you know, e.g. [tv, search] when",
        "# TV drives searches (search then mediates part of TV's effect), or [price, <channel>] when pricing",
        "# drives the media plan. Every channel needs a path to the KPI; the KPI causes nothing.",
        "graph:",
        "  edges:",
        *(f"    - [{SEASONALITY}, {n}]" for n in names),
        *(f"    - [{n}, {_q(s.kpi.column)}]" for n in names),
        *(f"    - [{_q(c)}, {_q(s.kpi.column)}]" for c in controls),
        "# Lift tests to reconcile with, if you have any:",
        "# experiments:",
        f"#   - {{channel: {names[0]}, start: YYYY-MM-DD, end: YYYY-MM-DD, incremental_kpi: 0, ci_low: 0, ci_high: 0}}",
        "",
    ]
    return "\n".join(lines)


def refuse_existing(output: Path) -> None:
    """`cmmm init` never overwrites a config."""
    if output.exists():
        raise ConfigError("config-exists", str(output.resolve()), "already exists; `cmmm init` never overwrites a "
                          "config.", "pass another --output file, or move the existing one away first.")


def write_starter(table: pd.DataFrame, data_file: Path, output: Path) -> Starter:
    """Write the starter config for `table` (read from `data_file`) to `output`, with the data path
    relative to the config; never overwrite an existing file."""
    output = output.resolve()
    refuse_existing(output)
    data_file = data_file.resolve()
    starter = guess_roles(table, data_file)
    relative = os.path.relpath(data_file, output.parent)
    text = starter_yaml(starter, Path(relative).as_posix())
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("x", encoding="utf-8") as handle:  # "x": refuse a file that appeared meanwhile
        handle.write(text)
    return starter
