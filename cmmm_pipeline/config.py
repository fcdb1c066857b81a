"""The YAML config, loaded into frozen, validated dataclasses.

Validation is strict on purpose: an unknown key is usually a typo that would otherwise silently
fall back to a default, so every mapping is checked against the keys it may hold.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from cmmm_pipeline.errors import ConfigError

SEASONALITY = "seasonality"
TREND = "trend"
GENERATED_CONTROLS = (SEASONALITY, TREND)


class AdstockType(Enum):
    GEOMETRIC = "geometric"
    WEIBULL = "weibull"


class SaturationType(Enum):
    HILL = "hill"


class EffectType(Enum):
    """Which paths a channel's effect flows through."""

    TOTAL = "total"
    DIRECT = "direct"
    INDIRECT = "indirect"


@dataclass(frozen=True)
class AdstockConfig:
    """Carryover. Geometric uses `decay`; Weibull uses `shape`, `scale`, `max_lag`.
    A None parameter means: select it from the data."""

    type: AdstockType = AdstockType.GEOMETRIC
    decay: float | None = None
    shape: float | None = None
    scale: float | None = None
    max_lag: int = 12


@dataclass(frozen=True)
class SaturationConfig:
    """Hill saturation on adstocked spend divided by its mean (so K = 1 is the average week).
    A None parameter means: select it from the data."""

    type: SaturationType = SaturationType.HILL
    half_saturation: float | None = None
    slope: float | None = None


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    spend_column: str
    adstock: AdstockConfig = field(default_factory=AdstockConfig)
    saturation: SaturationConfig = field(default_factory=SaturationConfig)


@dataclass(frozen=True)
class DataConfig:
    """Where the weekly table comes from: a CSV/Parquet file, or a table in a DuckDB file."""

    path: Path
    date_column: str
    kpi: str
    table: str | None = None
    kpi_must_be_positive: bool = False


@dataclass(frozen=True)
class FeatureConfig:
    """Generated controls: Fourier seasonality (unless the data has a `seasonality` column) and trend."""

    fourier_order: int = 2


@dataclass(frozen=True)
class ExperimentConfig:
    """A lift test: the measured incremental KPI of `channel` over [start, end] with its interval."""

    channel: str
    start: dt.date
    end: dt.date
    incremental_kpi: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the data-quality, independence and overlap gates."""

    min_weeks: int = 52
    independence_alpha: float = 0.05
    independence_blocking: bool = False
    overlap_bins: int = 3
    overlap_min_weeks: int = 8
    overlap_min_spread: float = 0.5

    def __post_init__(self) -> None:
        if self.min_weeks < 8:
            raise ConfigError("threshold-range", "checks.min_weeks", f"is {self.min_weeks}.",
                              "set at least 8 weeks; fewer cannot support any estimate.")
        if not 0.0 < self.independence_alpha < 1.0:
            raise ConfigError("threshold-range", "checks.independence_alpha",
                              f"is {self.independence_alpha}.", "use a level in (0, 1), e.g. 0.05.")
        if self.overlap_bins < 1 or self.overlap_min_weeks < 2:
            raise ConfigError("threshold-range", "checks.overlap_bins / overlap_min_weeks",
                              "must be >= 1 and >= 2.", "raise them.")
        if self.overlap_min_spread < 0:
            raise ConfigError("threshold-range", "checks.overlap_min_spread",
                              "must be >= 0.", "use a coefficient of variation such as 0.5.")


@dataclass(frozen=True)
class EstimationConfig:
    """Uncertainty settings. `seed` makes every random step (bootstrap, refuters) reproducible."""

    ci_level: float = 0.95
    bootstrap_samples: int = 300
    block_length: int | None = None
    refuter_simulations: int = 20
    seed: int = 20240101

    def __post_init__(self) -> None:
        if not 0.5 < self.ci_level < 1.0:
            raise ConfigError("threshold-range", "estimation.ci_level", f"is {self.ci_level}.",
                              "use a level in (0.5, 1), e.g. 0.95.")
        if self.bootstrap_samples < 50:
            raise ConfigError("threshold-range", "estimation.bootstrap_samples",
                              f"is {self.bootstrap_samples}.", "use at least 50 resamples.")
        if self.block_length is not None and self.block_length < 1:
            raise ConfigError("threshold-range", "estimation.block_length",
                              f"is {self.block_length}.", "use a positive number of weeks or omit it.")
        if self.refuter_simulations < 1:
            raise ConfigError("threshold-range", "estimation.refuter_simulations",
                              f"is {self.refuter_simulations}.", "use at least 1.")


@dataclass(frozen=True)
class PipelineConfig:
    source: Path
    data: DataConfig
    channels: tuple[ChannelConfig, ...]
    controls: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    features: FeatureConfig = field(default_factory=FeatureConfig)
    experiments: tuple[ExperimentConfig, ...] = ()
    checks: CheckConfig = field(default_factory=CheckConfig)
    estimation: EstimationConfig = field(default_factory=EstimationConfig)
    graph_file: Path | None = None

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def kpi(self) -> str:
        return self.data.kpi

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Loading


def _fail(source: Path, key: str, detail: str, fix: str, rule: str = "config-invalid") -> ConfigError:
    return ConfigError(rule, f"{source} key '{key}'", detail, fix)


def _mapping(value: Any, source: Path, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, key, f"must be a mapping, got {type(value).__name__}.",
                    "write it as 'name: value' pairs (see the sample config).", "config-type")
    return value


def _check_keys(value: Mapping[str, Any], allowed: set[str], required: set[str], source: Path,
                key: str) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _fail(source, f"{key}.{unknown[0]}" if key else unknown[0],
                    f"is not a known key (unknown: {', '.join(unknown)}).",
                    f"use only: {', '.join(sorted(allowed))}.", "config-unknown-key")
    missing = sorted(required - set(value))
    if missing:
        raise _fail(source, f"{key}.{missing[0]}" if key else missing[0],
                    "is required but missing.", f"add {', '.join(missing)} under '{key or 'top level'}'.",
                    "config-missing-key")


def _number(value: Any, source: Path, key: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, key, f"must be a finite number, got {value!r}.", "write a number.", "config-type")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise _fail(source, key, f"is {v}, below the allowed range.",
                    f"use a value {'>' if low_open else '>='} {low}.", "config-range")
    if high is not None and (v > high or (high_open and v == high)):
        raise _fail(source, key, f"is {v}, above the allowed range.",
                    f"use a value {'<' if high_open else '<='} {high}.", "config-range")
    return v


def _optional_number(value: Any, source: Path, key: str, **bounds: Any) -> float | None:
    return None if value is None else _number(value, source, key, **bounds)


def _string(value: Any, source: Path, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, key, f"must be a non-empty string, got {value!r}.", "write a name.", "config-type")
    return value.strip()


def _integer(value: Any, source: Path, key: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(source, key, f"must be an integer >= {low}, got {value!r}.", f"write an integer >= {low}.",
                    "config-type")
    return value


def _enum(enum: type[Enum], value: Any, source: Path, key: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        options = ", ".join(m.value for m in enum)
        raise _fail(source, key, f"is {value!r}, not a known type.", f"use one of: {options}.",
                    "config-unknown-value") from None


def _adstock(raw: Any, source: Path, key: str) -> AdstockConfig:
    if raw is None:
        return AdstockConfig()
    m = _mapping(raw, source, key)
    _check_keys(m, {"type", "decay", "shape", "scale", "max_lag"}, set(), source, key)
    kind = _enum(AdstockType, m.get("type", "geometric"), source, f"{key}.type")
    return AdstockConfig(
        type=kind,
        decay=_optional_number(m.get("decay"), source, f"{key}.decay", low=0.0, high=1.0, high_open=True),
        shape=_optional_number(m.get("shape"), source, f"{key}.shape", low=0.0, low_open=True),
        scale=_optional_number(m.get("scale"), source, f"{key}.scale", low=0.0, low_open=True),
        max_lag=_integer(m.get("max_lag", 12), source, f"{key}.max_lag", 1),
    )


def _saturation(raw: Any, source: Path, key: str) -> SaturationConfig:
    if raw is None:
        return SaturationConfig()
    m = _mapping(raw, source, key)
    _check_keys(m, {"type", "half_saturation", "slope"}, set(), source, key)
    return SaturationConfig(
        type=_enum(SaturationType, m.get("type", "hill"), source, f"{key}.type"),
        half_saturation=_optional_number(m.get("half_saturation"), source, f"{key}.half_saturation",
                                         low=0.0, low_open=True),
        slope=_optional_number(m.get("slope"), source, f"{key}.slope", low=0.0, low_open=True),
    )


def _date(value: Any, source: Path, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _fail(source, key, f"is {value!r}, not a date.", "write it as YYYY-MM-DD.", "config-type") from None


def _experiment(raw: Any, source: Path, key: str) -> ExperimentConfig:
    m = _mapping(raw, source, key)
    fields = {"channel", "start", "end", "incremental_kpi", "ci_low", "ci_high"}
    _check_keys(m, fields, fields, source, key)
    exp = ExperimentConfig(
        channel=_string(m["channel"], source, f"{key}.channel"),
        start=_date(m["start"], source, f"{key}.start"),
        end=_date(m["end"], source, f"{key}.end"),
        incremental_kpi=_number(m["incremental_kpi"], source, f"{key}.incremental_kpi"),
        ci_low=_number(m["ci_low"], source, f"{key}.ci_low"),
        ci_high=_number(m["ci_high"], source, f"{key}.ci_high"),
    )
    if exp.end < exp.start:
        raise _fail(source, f"{key}.end", f"({exp.end}) is before start ({exp.start}).",
                    "swap or correct the dates.", "experiment-dates")
    if not exp.ci_low <= exp.incremental_kpi <= exp.ci_high:
        raise _fail(source, key, f"has incremental_kpi {exp.incremental_kpi} outside [ci_low, ci_high] = "
                    f"[{exp.ci_low}, {exp.ci_high}].", "check the experiment's reported interval.",
                    "experiment-interval")
    return exp


def _edges(raw: Any, source: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise _fail(source, "graph.edges", "must be a list of [cause, effect] pairs.",
                    "write e.g. edges: [[tv, sales], [seasonality, tv]].", "config-type")
    edges: list[tuple[str, str]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _fail(source, f"graph.edges[{i}]", f"is {pair!r}, not a [cause, effect] pair.",
                        "write each edge as [cause, effect].", "config-type")
        edges.append((_string(pair[0], source, f"graph.edges[{i}][0]"),
                      _string(pair[1], source, f"graph.edges[{i}][1]")))
    return tuple(edges)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config. Paths inside it are relative to the file."""
    source = Path(path).resolve()
    if not source.is_file():
        raise ConfigError("config-missing", str(source), "no such file.",
                          "pass an existing YAML file with --config (or CMMM_CONFIG).")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError("config-yaml", str(source), f"is not valid YAML ({exc}).".replace("\n", " "),
                          "fix the YAML syntax at the position shown.") from None
    return parse_config(raw, source)


def parse_config(raw: Any, source: Path) -> PipelineConfig:
    """Validate an already-parsed YAML document; `source` anchors relative paths and messages."""
    top = _mapping(raw, source, "(top level)")
    allowed = {"data", "channels", "controls", "graph", "features", "experiments", "checks", "estimation"}
    _check_keys(top, allowed, {"data", "channels", "graph"}, source, "")

    d = _mapping(top["data"], source, "data")
    _check_keys(d, {"path", "table", "date_column", "kpi", "kpi_must_be_positive"},
                {"path", "date_column", "kpi"}, source, "data")
    data = DataConfig(
        path=(source.parent / _string(d["path"], source, "data.path")).resolve(),
        date_column=_string(d["date_column"], source, "data.date_column"),
        kpi=_string(d["kpi"], source, "data.kpi"),
        table=None if d.get("table") is None else _string(d["table"], source, "data.table"),
        kpi_must_be_positive=bool(d.get("kpi_must_be_positive", False)),
    )

    ch_raw = _mapping(top["channels"], source, "channels")
    if not ch_raw:
        raise _fail(source, "channels", "is empty.", "name at least one media channel.", "config-missing-key")
    channels: list[ChannelConfig] = []
    spend_columns: dict[str, str] = {}
    for name, spec in ch_raw.items():
        key = f"channels.{name}"
        name = _string(name, source, key)
        spec = _mapping(spec, source, key)
        _check_keys(spec, {"spend_column", "adstock", "saturation"}, {"spend_column"}, source, key)
        column = _string(spec["spend_column"], source, f"{key}.spend_column")
        if column in spend_columns:
            raise _fail(source, f"{key}.spend_column", f"'{column}' is already the spend of channel "
                        f"'{spend_columns[column]}'.", "give each channel its own spend column.",
                        "duplicate-spend-column")
        spend_columns[column] = name
        channels.append(ChannelConfig(name, column, _adstock(spec.get("adstock"), source, f"{key}.adstock"),
                                      _saturation(spec.get("saturation"), source, f"{key}.saturation")))

    controls_raw = top.get("controls", []) or []
    if not isinstance(controls_raw, list):
        raise _fail(source, "controls", "must be a list of column names.", "write e.g. [seasonality, price].",
                    "config-type")
    controls = tuple(_string(c, source, f"controls[{i}]") for i, c in enumerate(controls_raw))
    _no_duplicates(source, "controls", controls)
    clash = sorted(set(controls) & set(spend_columns.values()) | ({data.kpi} & set(controls)))
    if clash:
        raise _fail(source, "controls", f"'{clash[0]}' is also a channel or the KPI.",
                    "give each graph node one role.", "duplicate-node")
    if data.kpi in spend_columns.values():
        raise _fail(source, "data.kpi", f"'{data.kpi}' is also a channel name.", "rename one of them.",
                    "duplicate-node")

    g = _mapping(top["graph"], source, "graph")
    _check_keys(g, {"edges", "file"}, set(), source, "graph")
    if ("edges" in g) == ("file" in g):
        raise _fail(source, "graph", "must give exactly one of 'edges' or 'file'.",
                    "list the edges, or point 'file' at a DOT or GML drawing.", "config-missing-key")
    graph_file = None if "file" not in g else (source.parent / _string(g["file"], source, "graph.file")).resolve()
    edges = _edges(g["edges"], source) if "edges" in g else ()

    f = _mapping(top.get("features") or {}, source, "features")
    _check_keys(f, {"fourier_order"}, set(), source, "features")
    features = FeatureConfig(fourier_order=_integer(f.get("fourier_order", 2), source, "features.fourier_order", 1))

    exp_raw = top.get("experiments") or []
    if not isinstance(exp_raw, list):
        raise _fail(source, "experiments", "must be a list.", "write one mapping per lift test.", "config-type")
    experiments = tuple(_experiment(e, source, f"experiments[{i}]") for i, e in enumerate(exp_raw))
    for i, e in enumerate(experiments):
        if e.channel not in {c.name for c in channels}:
            raise _fail(source, f"experiments[{i}].channel", f"'{e.channel}' is not a configured channel.",
                        f"use one of: {', '.join(c.name for c in channels)}.", "experiment-channel")

    checks = _section(top.get("checks"), source, "checks", CheckConfig)
    estimation = _section(top.get("estimation"), source, "estimation", EstimationConfig)
    return PipelineConfig(source=source, data=data, channels=tuple(channels), controls=controls, edges=edges,
                          features=features, experiments=experiments, checks=checks, estimation=estimation,
                          graph_file=graph_file)


def _no_duplicates(source: Path, key: str, names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise _fail(source, key, f"names '{n}' twice.", "list each name once.", "duplicate-node")
        seen.add(n)


def _section(raw: Any, source: Path, key: str, cls: type) -> Any:
    """Build a flat threshold dataclass from a mapping, type-checking each value against its default."""
    m = _mapping(raw or {}, source, key)
    defaults = cls()
    allowed = set(defaults.__dataclass_fields__)
    _check_keys(m, allowed, set(), source, key)
    values: dict[str, Any] = {}
    for name, value in m.items():
        default = getattr(defaults, name)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise _fail(source, f"{key}.{name}", f"must be true or false, got {value!r}.",
                            "write true or false.", "config-type")
        elif isinstance(default, int) or (default is None and name == "block_length"):
            if value is not None:
                value = _integer(value, source, f"{key}.{name}", 0)
        else:
            value = _number(value, source, f"{key}.{name}")
        values[name] = value
    return cls(**values)
