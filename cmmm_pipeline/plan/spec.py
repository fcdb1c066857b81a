"""The plan file (PLAN.yaml): evaluate a weekly plan, or optimise a budget, with every problem
named by its rule at once, read with the config's YAML loader (duplicate keys and alias bombs
refused before any value is built).

    weeks: 13                                   # the plan's horizon, after the last observed week
    spend: {tv: 900, search: 400, ...}          # evaluate: weekly spend (a number or one per week)
    total_budget: 20000                         # or optimise: spend over the whole horizon
    bounds: {tv: [0, 1200]}                     # weekly spend bounds (optimise)
    objective: incremental_kpi                  # the one objective
    risk: none                                  # or p10: the second, the gain's 10th percentile
    allow_extrapolation: false                  # true: compute outside support, marked as such
    allocate_weeks: false                       # true: optimise the spend of every week (flighting)
    controls: {price: 9.8}                      # optional: controls over the plan's weeks
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from cmmm_pipeline.core.config import PipelineConfig, is_finite_number
from cmmm_pipeline.core.errors import CmmmError, ConfigError, ConfigErrors, Problems, brief, clip
from cmmm_pipeline.core.yaml_reader import read_yaml

MAX_WEEKS = 104
"""The longest horizon a plan may have: two years past the data, already far for any curve."""


class PlanError(CmmmError):
    """A plan file, or a plan the model cannot read within the data's support, breaks a rule."""


class PlanErrors(ConfigErrors, PlanError):
    """Several plan problems at once, one paragraph each (the config's machinery)."""


def raise_all(problems: Problems) -> None:
    """Raise what `problems` collected: the one PlanError, or PlanErrors for several."""
    if len(problems.items) == 1:
        raise problems.items[0]
    if problems.items:
        raise PlanErrors(problems.items)


class Objective(Enum):
    """What an optimised plan maximises: one objective."""

    INCREMENTAL_KPI = "incremental_kpi"


class Risk(Enum):
    """The optional second objective, and the last one there can be."""

    NONE = "none"
    P10 = "p10"
    """The 10th percentile over the bootstrap draws of the gain over the current allocation."""


class PlanMode(Enum):
    EVALUATE = "evaluate"
    OPTIMISE = "optimise"


@dataclass(frozen=True)
class PlanSpec:
    """A validated plan file. Spend is weekly, per channel: (weeks,) arrays."""

    source: Path
    weeks: int
    spend: dict[str, np.ndarray] = field(default_factory=dict)
    total_budget: float | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    objective: Objective = Objective.INCREMENTAL_KPI
    risk: Risk = Risk.NONE
    allow_extrapolation: bool = False
    controls: dict[str, np.ndarray] = field(default_factory=dict)
    allocate_weeks: bool = False
    """Optimise a weeks × channels spend matrix instead of one weekly spend per channel."""

    @property
    def mode(self) -> PlanMode:
        return PlanMode.EVALUATE if self.spend else PlanMode.OPTIMISE

    @property
    def weekly_budget(self) -> float:
        """The spend per week across channels: the budget over the weeks, or the evaluated plan's mean."""
        if self.total_budget is not None:
            return self.total_budget / self.weeks
        return float(sum(float(np.mean(s)) for s in self.spend.values()))


KEYS = {"weeks", "spend", "total_budget", "bounds", "objective", "risk", "allow_extrapolation", "controls",
        "allocate_weeks"}


def _fail(source: Path, key: str, rule: str, detail: str, fix: str) -> PlanError:
    return PlanError(rule, f"{source} key '{key}'", detail, fix)


def _number(value: Any, source: Path, key: str) -> float:
    if not is_finite_number(value):
        raise _fail(source, key, "plan-type", f"must be a finite number, got {brief(value)}.", "write a number.")
    return float(value)


def _series(value: Any, source: Path, key: str, weeks: int) -> np.ndarray:
    """A number for every week, or a list of one number per week."""
    if isinstance(value, list):
        if len(value) != weeks:
            raise _fail(source, key, "plan-length", f"lists {len(value)} values for a plan of {weeks} weeks.",
                        f"give one number (every week) or exactly {weeks}.")
        p = Problems()
        values = [p.check(_number, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        raise_all(p)
        return np.array(values, dtype=float)
    return np.full(weeks, _number(value, source, key))


def _mapping(value: Any, source: Path, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, key, "plan-type", f"must be a mapping, got {type(value).__name__}.",
                    f"write it as 'name: value' pairs, e.g. {key}: {{tv: 900}}.")
    return value


def _channel_name(name: Any, source: Path, key: str, channels: Sequence[str]) -> str:
    if not isinstance(name, str) or name not in channels:
        close = difflib.get_close_matches(str(name), list(channels), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise _fail(source, f"{key}.{clip(str(name), 40)}", "plan-unknown-channel",
                    f"{brief(name)} is not a channel of the config.", f"{hint}use: {', '.join(channels)}.")
    return name


def _enum(enum: type[Enum], value: Any, source: Path, key: str) -> Any:
    try:
        return enum(value)
    except (ValueError, TypeError):
        raise _fail(source, key, "plan-unknown-value", f"is {brief(value)}.",
                    f"use one of: {', '.join(m.value for m in enum)}.") from None


def _weeks(value: Any, source: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WEEKS:
        raise _fail(source, "weeks", "plan-type", f"must be a whole number of weeks from 1 to {MAX_WEEKS}, got "
                    f"{brief(value)}.", "write e.g. weeks: 13 (a quarter).")
    return value


def _spend(raw: Any, source: Path, weeks: int, channels: Sequence[str], p: Problems) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in _mapping(raw, source, "spend").items():
        channel = p.check(_channel_name, name, source, "spend", channels)
        series = p.check(_series, value, source, f"spend.{clip(str(name), 40)}", weeks)
        if channel is None or series is None:
            continue
        if (series < 0).any():
            p.add(_fail(source, f"spend.{channel}", "plan-negative-spend",
                        f"plans negative spend ({series.min():,.2f}).", "spend is zero or more in every week."))
            continue
        out[channel] = series
    missing = [c for c in channels if c not in out and c not in raw]
    if missing:
        p.add(_fail(source, "spend", "plan-missing-channel", f"gives no spend for {', '.join(missing)}.",
                    "give every channel's weekly spend (0 for a channel that pauses)."))
    return out


def _bounds(raw: Any, source: Path, channels: Sequence[str], p: Problems) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for name, value in _mapping(raw, source, "bounds").items():
        channel = p.check(_channel_name, name, source, "bounds", channels)
        key = f"bounds.{clip(str(name), 40)}"
        if not (isinstance(value, list) and len(value) == 2):
            p.add(_fail(source, key, "plan-type", f"must be [low, high], got {brief(value)}.",
                        "write the weekly spend bounds, e.g. tv: [0, 1200]."))
            continue
        low, high = p.check(_number, value[0], source, f"{key}[0]"), p.check(_number, value[1], source, f"{key}[1]")
        if channel is None or low is None or high is None:
            continue
        if low < 0:
            p.add(_fail(source, key, "plan-negative-spend", f"has a lower bound of {low:,.2f}.",
                        "bounds are weekly spend, zero or more."))
        elif low > high:
            p.add(_fail(source, key, "plan-bounds-order", f"has its low {low:,.2f} above its high {high:,.2f}.",
                        "write [low, high]."))
        else:
            out[channel] = (low, high)
    return out


def _controls(raw: Any, source: Path, weeks: int, config: PipelineConfig, p: Problems) -> dict[str, np.ndarray]:
    observed = list(config.controls)
    out: dict[str, np.ndarray] = {}
    for name, value in _mapping(raw, source, "controls").items():
        if name not in observed:
            p.add(_fail(source, f"controls.{clip(str(name), 40)}", "plan-unknown-control",
                        f"{brief(name)} is not a control of the config.",
                        f"give only controls the config lists: {', '.join(observed) or 'none'}."))
            continue
        series = p.check(_series, value, source, f"controls.{name}", weeks)
        if series is not None:
            out[name] = series
    return out


def parse_plan(raw: Any, source: Path, config: PipelineConfig) -> PlanSpec:
    """Validate a parsed plan document against the config's channels and controls; every problem
    is raised at once."""
    if raw is None:
        raise PlanError("plan-empty", str(source), "is empty.", "write e.g. {weeks: 13, total_budget: 20000}.")
    if not isinstance(raw, Mapping):
        raise PlanError("plan-type", str(source), f"must be a mapping, got {type(raw).__name__}.",
                        "write e.g. {weeks: 13, total_budget: 20000}.")
    p = Problems()
    unknown = sorted(str(k) for k in raw if k not in KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(KEYS), n=1)
        p.add(_fail(source, clip(unknown[0], 40), "plan-unknown-key", f"is not a plan key (unknown: "
                    f"{clip(', '.join(unknown), 200)}).",
                    f"{f'did you mean {close[0]!r}? ' if close else ''}use only: {', '.join(sorted(KEYS))}."))
    if "weeks" not in raw:
        p.add(_fail(source, "weeks", "plan-missing-key", "is required but missing.", "add e.g. weeks: 13."))
        raise_all(p)
    weeks = _weeks(raw["weeks"], source)
    channels = config.channel_names
    has_spend, has_budget = "spend" in raw, "total_budget" in raw
    if has_spend == has_budget:
        p.add(_fail(source, "spend / total_budget", "plan-mode",
                    "names both a spend and a budget." if has_spend else "names neither a spend nor a budget.",
                    "give spend: {channel: weekly spend} to evaluate a plan, or total_budget: N to optimise one."))
    spend = p.check(_spend, raw["spend"], source, weeks, channels, p) if has_spend else {}
    budget = p.check(_number, raw["total_budget"], source, "total_budget") if has_budget else None
    if budget is not None and budget <= 0:
        p.add(_fail(source, "total_budget", "plan-negative-spend", f"is {budget:,.2f}.",
                    "give the spend over the whole plan, above zero."))
    bounds = p.check(_bounds, raw.get("bounds") or {}, source, channels, p)
    if has_spend and raw.get("bounds"):
        p.add(_fail(source, "bounds", "plan-mode", "bounds only apply to an optimised plan.",
                    "remove bounds, or replace spend by total_budget."))
    objective = p.check(_enum, Objective, raw.get("objective", Objective.INCREMENTAL_KPI.value), source, "objective")
    risk_value = raw.get("risk", Risk.NONE.value)
    risk = p.check(_enum, Risk, "none" if risk_value is None or risk_value is False else risk_value, source, "risk")
    extrapolate = raw.get("allow_extrapolation", False)
    if not isinstance(extrapolate, bool):
        p.add(_fail(source, "allow_extrapolation", "plan-type", f"must be true or false, got {brief(extrapolate)}.",
                    "write true or false."))
    controls = p.check(_controls, raw.get("controls") or {}, source, weeks, config, p)
    across_weeks = raw.get("allocate_weeks", False)
    if not isinstance(across_weeks, bool):
        p.add(_fail(source, "allocate_weeks", "plan-type", f"must be true or false, got {brief(across_weeks)}.",
                    "write true to optimise each week's spend, or false for the same spend every week."))
    elif across_weeks and has_spend:
        p.add(_fail(source, "allocate_weeks", "plan-mode", "only applies to an optimised plan; an evaluated plan "
                    "gives its weeks' spend itself.",
                    "remove allocate_weeks, or replace spend by total_budget."))
    if budget is not None and bounds:
        floor = sum(low for low, _ in bounds.values()) * weeks
        if floor > budget + 1e-9:
            p.add(_fail(source, "total_budget", "plan-budget-below-bounds",
                        f"is {budget:,.2f}, below the {floor:,.2f} the bounds' lows need over {weeks} weeks.",
                        "raise the budget or lower the bounds' lows."))
    raise_all(p)
    return PlanSpec(source, weeks, spend or {}, budget, bounds or {}, objective, risk, bool(extrapolate),
                    controls or {}, across_weeks is True)


def load_plan(path: str | Path, config: PipelineConfig) -> PlanSpec:
    """Read and validate a plan file (YAML, the config's loader)."""
    source = Path(path).resolve()
    if not source.is_file():
        raise PlanError("plan-missing", str(source), "no such file.", "pass an existing YAML file with --plan.")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError("plan-unreadable", str(source), f"could not be read ({type(exc).__name__}).",
                        "save the plan as a UTF-8 text file.") from None
    try:
        raw = read_yaml(text, source)
    except ConfigError as exc:  # the config's YAML rules (config-yaml, config-aliases, config-duplicate-key)
        raise PlanError(exc.rule, exc.place, exc.detail, exc.fix) from None
    return parse_plan(raw, source, config)
