"""`cmmm init`: a starter config written from a data file's header and values.

The guesses are deliberately plain (names that say spend, cost or impressions are channels; names
that say sales, revenue or conversions are the KPI; other numeric columns are controls) and every
guess a human must confirm is marked with a comment in the written YAML. The starter DAG is the
simplest defensible one: seasonality drives the channels and the KPI, every channel and control
drives the KPI. Mediators (tv -> search) and confounders specific to the business are for the
user to add.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cmmm_pipeline.core.config import GENERATED_CONTROLS, RESERVED_COLUMN, SEASONALITY, TREND
from cmmm_pipeline.core.errors import ConfigError, DataError

SPEND_WORDS = ("spend", "cost", "impressions", "impr", "clicks", "grp", "budget", "investment", "media")
KPI_WORDS = ("sales", "revenue", "conversions", "orders", "kpi", "units", "signups", "leads", "bookings", "gmv")
DATE_WORDS = ("week", "date", "ds", "period", "week_start", "time")
_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\- ]*$")
_SPEND_SUFFIX = re.compile(r"[_\- ]*(" + "|".join(SPEND_WORDS) + r")$", re.IGNORECASE)


@dataclass(frozen=True)
class Starter:
    """The columns' roles as guessed from the data."""

    date_column: str
    kpi: str
    kpi_guessed: bool
    channels: tuple[tuple[str, str], ...]
    """(channel name, spend column)."""
    controls: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    """(column, why it was left out)."""


def _mentions(name: str, words: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(w in re.split(r"[^a-z0-9]+", low) or w in low for w in words)


def _is_date_column(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values):
        return False
    parsed = pd.to_datetime(values.astype(str), errors="coerce", format="mixed")
    return bool(len(values)) and bool(parsed.notna().all())


def _channel_name(column: str, taken: set[str]) -> str:
    base = _SPEND_SUFFIX.sub("", column) or column
    name = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_").lower() or "channel"
    name = name if _NODE_NAME.match(name) else f"c_{name}"
    if name in taken or name in GENERATED_CONTROLS or name == RESERVED_COLUMN or name.startswith(f"{SEASONALITY}_"):
        name = f"{name}_media"
    while name in taken:
        name += "_"
    return name


def guess_roles(table: pd.DataFrame, path: Path) -> Starter:
    """Assign each column a role, or say why it was left out; refuse a table with no usable columns
    with the rule `cmmm run` would name."""
    if len(table) == 0:
        raise DataError("data-empty", str(path), "has no data rows.",
                        "export the weekly table with its rows, not only the header.")
    columns = [str(c) for c in table.columns]
    table = table.rename(columns=str)
    dates = [c for c in columns if _is_date_column(table[c])]
    dates.sort(key=lambda c: not _mentions(c, DATE_WORDS))
    if not dates:
        raise DataError("column-missing", f"{path} column (date)", "has no column of dates, so the weeks are "
                        f"unknown (columns: {', '.join(columns[:20])}).", "add a date column (YYYY-MM-DD, one per week).")
    numeric: list[str] = []
    skipped: list[tuple[str, str]] = []
    for c in columns:
        if c == dates[0]:
            continue
        values = pd.to_numeric(table[c], errors="coerce")
        if values.isna().mean() > 0.5 or pd.api.types.is_bool_dtype(table[c]):
            skipped.append((c, "not numeric"))
        elif values.nunique(dropna=True) <= 1:
            skipped.append((c, "constant"))
        elif not _NODE_NAME.match(c) or c == RESERVED_COLUMN:
            skipped.append((c, "its name is not a usable node name: rename it with letters, digits and '_'"))
        else:
            numeric.append(c)
    spends = [c for c in numeric if _mentions(c, SPEND_WORDS)]
    rest = [c for c in numeric if c not in spends]
    kpis = [c for c in rest if _mentions(c, KPI_WORDS)]
    kpi = kpis[0] if kpis else (rest[-1] if rest else None)
    if not spends or kpi is None:
        missing = "spend-like column (a name with spend, cost or impressions)" if not spends else "KPI column"
        raise DataError("column-missing", f"{path} column ({'spend' if not spends else 'KPI'})",
                        f"has no usable {missing} (numeric columns: {', '.join(numeric) or 'none'}).",
                        "export media spend and the KPI as numeric columns, one row per week.")
    taken: set[str] = set(rest)
    channels = []
    for c in spends:
        name = _channel_name(c, taken)
        taken.add(name)
        channels.append((name, c))
    controls = tuple(c for c in rest if c != kpi)
    return Starter(dates[0], kpi, not kpis, tuple(channels), controls, tuple(skipped))


def _q(name: str) -> str:
    """A YAML scalar for a name: plain when safe, else JSON-quoted (valid YAML)."""
    plain = _PLAIN.match(name) and name.lower() not in {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}
    return name if plain else json.dumps(name)


def starter_yaml(starter: Starter, data_path: str) -> str:
    """The config text, with a comment wherever a human must decide."""
    s = starter
    names = [n for n, _ in s.channels]
    controls = [SEASONALITY, TREND, *s.controls]
    kpi_note = ("  # GUESSED: no column is named like sales/revenue/conversions; check this is your KPI"
                if s.kpi_guessed else "  # CHECK: the outcome each channel is credited with")
    width = max(len(n) for n in names)
    lines = [
        "# Starter config written by `cmmm init`. Read every comment, edit, then run `cmmm validate --config`",
        "# on this file before `cmmm run`. Reference of every key: docs/config.md.",
        f"data: {{path: {_q(data_path)}, date_column: {_q(s.date_column)}, kpi: {_q(s.kpi)}}}{kpi_note}",
        "# Channels from spend-like columns. Adstock and saturation are left out, so they are selected",
        "# from the data (recorded in transform_selection.csv); give them when you know them, e.g.",
        "#   adstock: {type: geometric, decay: 0.5}, saturation: {type: hill, half_saturation: 1.0, slope: 1.0}",
        "channels:",
        *(f"  {n + ':':<{width + 1}} {{spend_column: {_q(c)}}}" for n, c in s.channels),
        "# CHECK: controls are the other numeric columns plus generated seasonality and trend. Keep only",
        "# causes of the KPI (and of spend); drop outcomes of media (e.g. site visits), which would hide effects.",
        f"controls: [{', '.join(_q(c) for c in controls)}]",
    ]
    if s.skipped:
        lines.append("# Left out: " + "; ".join(f"{_q(c)} ({why})" for c, why in s.skipped))
    lines += [
        "# The causal DAG: [cause, effect] pairs. This starter says seasonality drives spend and the KPI,",
        "# and every channel and control drives the KPI. DECIDE: add what you know, e.g. [tv, search] when",
        "# TV drives searches (search then mediates part of TV's effect), or [price, <channel>] when pricing",
        "# drives the media plan. Every channel needs a path to the KPI; the KPI causes nothing.",
        "graph:",
        "  edges:",
        *(f"    - [{SEASONALITY}, {n}]" for n in names),
        *(f"    - [{n}, {_q(s.kpi)}]" for n in names),
        *(f"    - [{_q(c)}, {_q(s.kpi)}]" for c in controls),
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
