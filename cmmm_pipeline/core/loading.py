"""Loading the YAML config into the frozen dataclasses of `core.config`, the declared graph included.

Validation is strict on purpose: an unknown key is usually a typo that would otherwise silently
fall back to a default, so every mapping is checked against the keys it may hold.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from cmmm_pipeline.core.config import (
    GENERATED_CONTROLS,
    MAX_FOURIER_ORDER,
    MAX_LAG_WEEKS,
    RESERVED_COLUMN,
    SEASONALITY,
    AdstockConfig,
    AdstockType,
    ChannelConfig,
    CheckConfig,
    DataConfig,
    EstimationConfig,
    ExperimentConfig,
    FeatureConfig,
    PipelineConfig,
    SaturationConfig,
    SaturationType,
    is_finite_number,
)
from cmmm_pipeline.core.errors import ConfigError
from cmmm_pipeline.core.graph import build_graph

_CHANNEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FOURIER_COLUMN = re.compile(rf"^{SEASONALITY}_(sin|cos)[0-9]+$")


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
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise _fail(source, f"{key}.{unknown[0]}" if key else unknown[0],
                    f"is not a known key (unknown: {', '.join(unknown)}).",
                    f"{hint}use only: {', '.join(sorted(allowed))}.", "config-unknown-key")
    missing = sorted(required - set(value))
    if missing:
        raise _fail(source, f"{key}.{missing[0]}" if key else missing[0],
                    "is required but missing.", f"add {', '.join(missing)} under '{key or 'top level'}'.",
                    "config-missing-key")


def _number(value: Any, source: Path, key: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if not is_finite_number(value):
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


def _integer(value: Any, source: Path, key: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, f"must be an integer, got {value!r}.", f"write an integer >= {low}.", "config-type")
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _fail(source, key, f"is {value}, outside the allowed range.", f"write an integer {allowed}.",
                    "config-range")
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
        max_lag=_integer(m.get("max_lag", 12), source, f"{key}.max_lag", 1, MAX_LAG_WEEKS),
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
        if not isinstance(value, str):
            raise ValueError(value)
        return dt.date.fromisoformat(value.strip())
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


class _DuplicateKey(yaml.YAMLError):
    """A key repeated within one YAML mapping (raised while loading, turned into a ConfigError)."""

    def __init__(self, path: str, first_line: int, line: int) -> None:
        super().__init__(f"duplicate key {path}")
        self.path = path
        self.first_line = first_line
        self.line = line


_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key repeated within one mapping. Plain YAML keeps the last value
    silently, so two channels both named `tv` would become one and the first would vanish."""

    def construct_document(self, node: yaml.Node) -> Any:
        _refuse_duplicate_keys(node)
        return super().construct_document(node)


def _refuse_duplicate_keys(root: yaml.Node) -> None:
    """Walk the composed document (aliases visited once) and raise on the first repeated key."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                key = (key_node.tag, key_node.value)
                child = f"{path}.{key_node.value}" if path else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise _DuplicateKey(child, first[key], line)
                first[key] = line
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))


def read_yaml(text: str, source: Path) -> Any:
    """Parse YAML text with duplicate keys refused; every failure becomes a ConfigError."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError("config-duplicate-key", f"{source} key '{exc.path}'",
                          f"appears twice in the same mapping (lines {exc.first_line} and {exc.line}); YAML "
                          "would silently keep only the last one.",
                          "remove or rename one of the two (channel names must be unique).") from None
    except yaml.YAMLError as exc:
        where = " ".join(str(exc).replace('"<unicode string>"', source.name).split())
        raise ConfigError("config-yaml", str(source), f"is not valid YAML ({where}).",
                          "fix the YAML syntax at the position shown.") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML builds dates and tagged scalars with Python constructors, which raise their own errors.
        raise ConfigError("config-yaml", str(source), f"holds a value YAML cannot build ({exc}), such as an "
                          "impossible date or a mistagged number.", "correct the value (dates as YYYY-MM-DD).") from None
    except RecursionError:
        raise ConfigError("config-yaml", str(source), "nests too deeply to be a config.",
                          "write the config as in the sample: a few levels of mappings and lists.") from None


def _latent(raw: Any, source: Path, nodes: set[str]) -> tuple[str, ...]:
    """`graph.latent`: names of unobserved causes, distinct from every channel, control and the KPI."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(source, "graph.latent", "must be a list of node names.",
                    "write e.g. latent: [brand_awareness].", "config-type")
    latent = tuple(_string(name, source, f"graph.latent[{i}]") for i, name in enumerate(raw))
    _no_duplicates(source, "graph.latent", latent)
    for i, name in enumerate(latent):
        if name == RESERVED_COLUMN or _FOURIER_COLUMN.match(name):
            raise _fail(source, f"graph.latent[{i}]", f"'{name}' is a name the pipeline gives to a data column.",
                        "choose another name for the unobserved cause.", "reserved-column")
        if name in nodes:
            raise _fail(source, f"graph.latent[{i}]", f"'{name}' is a channel, a control or the KPI, which have data.",
                        "list only causes without a data column as latent.", "duplicate-node")
    return latent


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML config, including its causal graph. Paths inside it are relative
    to the file."""
    source = Path(path).resolve()
    if not source.is_file():
        raise ConfigError("config-missing", str(source), "no such file.",
                          "pass an existing YAML file with --config (or CMMM_CONFIG).")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config-unreadable", str(source), f"could not be read ({type(exc).__name__}).",
                          "save the config as a UTF-8 text file.") from None
    return parse_config(read_yaml(text, source), source)


TOP_LEVEL_KEYS = {"data", "channels", "controls", "graph", "features", "experiments", "checks", "estimation"}


def parse_config(raw: Any, source: Path) -> PipelineConfig:
    """Validate an already-parsed YAML document; `source` anchors relative paths and messages.
    The graph is built and validated too, so a bad DAG is refused before any run starts."""
    if raw is None:
        raise ConfigError("config-empty", str(source), "is empty.", "start from the bundled sample config.")
    top = _mapping(raw, source, "(top level)")
    _check_keys(top, TOP_LEVEL_KEYS, {"data", "channels", "graph"}, source, "")

    data = _data(top["data"], source)
    channels = _channels(top["channels"], source)
    controls = _controls(top.get("controls"), source)
    _check_roles(data, channels, controls, source)

    g = _mapping(top["graph"], source, "graph")
    _check_keys(g, {"edges", "file", "latent"}, set(), source, "graph")
    if ("edges" in g) == ("file" in g):
        raise _fail(source, "graph", "must give exactly one of 'edges' or 'file'.",
                    "list the edges, or point 'file' at a DOT or GML drawing.", "config-missing-key")
    graph_file = None if "file" not in g else (source.parent / _string(g["file"], source, "graph.file")).resolve()
    edges = _edges(g["edges"], source) if "edges" in g else ()
    latent = _latent(g.get("latent"), source, {c.name for c in channels} | set(controls) | {data.kpi})

    f = _mapping(_or_empty(top.get("features")), source, "features")
    _check_keys(f, {"fourier_order"}, set(), source, "features")
    features = FeatureConfig(fourier_order=_integer(f.get("fourier_order", 2), source, "features.fourier_order", 1,
                                                    MAX_FOURIER_ORDER))

    exp_raw = top.get("experiments")
    exp_raw = [] if exp_raw is None else exp_raw
    if not isinstance(exp_raw, list):
        raise _fail(source, "experiments", "must be a list.", "write one mapping per lift test.", "config-type")
    experiments = tuple(_experiment(e, source, f"experiments[{i}]") for i, e in enumerate(exp_raw))
    names = [c.name for c in channels]
    for i, e in enumerate(experiments):
        if e.channel not in names:
            raise _fail(source, f"experiments[{i}].channel", f"'{e.channel}' is not a configured channel.",
                        f"use one of: {', '.join(names)}.", "experiment-channel")

    checks = _section(top.get("checks"), source, "checks", CheckConfig)
    estimation = _section(top.get("estimation"), source, "estimation", EstimationConfig)
    config = PipelineConfig(source=source, data=data, channels=channels, controls=controls, edges=edges,
                            features=features, experiments=experiments, checks=checks, estimation=estimation,
                            graph_file=graph_file, latent=latent)
    build_graph(config)
    return config


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _data(raw: Any, source: Path) -> DataConfig:
    d = _mapping(raw, source, "data")
    _check_keys(d, {"path", "table", "date_column", "kpi", "kpi_must_be_positive"},
                {"path", "date_column", "kpi"}, source, "data")
    positive = d.get("kpi_must_be_positive", False)
    if not isinstance(positive, bool):
        raise _fail(source, "data.kpi_must_be_positive", f"must be true or false, got {positive!r}.",
                    "write true or false.", "config-type")
    return DataConfig(
        path=(source.parent / _string(d["path"], source, "data.path")).resolve(),
        date_column=_string(d["date_column"], source, "data.date_column"),
        kpi=_string(d["kpi"], source, "data.kpi"),
        table=None if d.get("table") is None else _string(d["table"], source, "data.table"),
        kpi_must_be_positive=positive,
    )


def _channels(raw: Any, source: Path) -> tuple[ChannelConfig, ...]:
    ch_raw = _mapping(raw, source, "channels")
    if not ch_raw:
        raise _fail(source, "channels", "is empty.", "name at least one media channel.", "config-missing-key")
    channels: list[ChannelConfig] = []
    spend_columns: dict[str, str] = {}
    for name, spec in ch_raw.items():
        key = f"channels.{name}"
        name = _string(name, source, key)
        if not _CHANNEL_NAME.match(name) or name == RESERVED_COLUMN or _FOURIER_COLUMN.match(name):
            raise _fail(source, key, f"'{name}' is not a usable channel name.",
                        "use letters, digits and '_' (starting with a letter), other than 'week' and the "
                        "generated 'seasonality_sin1'-style names.", "channel-name")
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
    return tuple(channels)


def _controls(raw: Any, source: Path) -> tuple[str, ...]:
    controls_raw = [] if raw is None else raw
    if not isinstance(controls_raw, list):
        raise _fail(source, "controls", "must be a list of column names.", "write e.g. [seasonality, price].",
                    "config-type")
    controls = tuple(_string(c, source, f"controls[{i}]") for i, c in enumerate(controls_raw))
    _no_duplicates(source, "controls", controls)
    return controls


def _check_roles(data: DataConfig, channels: tuple[ChannelConfig, ...], controls: tuple[str, ...],
                 source: Path) -> None:
    """Each graph node has one role, and each data column one use: a column read as both a
    control and a spend (or the date and the KPI) would silently model a variable against itself."""
    nodes = [*((c.name, f"channels.{c.name}", "a channel") for c in channels),
             *((c, f"controls[{i}]", "a control") for i, c in enumerate(controls)),
             (data.kpi, "data.kpi", "the KPI")]
    seen: dict[str, str] = {}
    for name, key, role in nodes:
        if name in seen:
            raise _fail(source, key, f"'{name}' is already {seen[name]}.", "give each graph node one role: rename "
                        "one of them.", "duplicate-node")
        seen[name] = role
    observed = [c for c in controls if c not in GENERATED_CONTROLS]
    columns = [(data.date_column, "data.date_column", "the date column"),
               *((c.spend_column, f"channels.{c.name}.spend_column", f"the spend of channel '{c.name}'")
                 for c in channels),
               *((c, f"controls[{controls.index(c)}]", "a control column") for c in observed),
               (data.kpi, "data.kpi", "the KPI column")]
    used: dict[str, str] = {}
    for column, key, role in columns:
        if column in used:
            raise _fail(source, key, f"reads the data column '{column}', which is already {used[column]}.",
                        "point each role at its own column.", "duplicate-column")
        if column == RESERVED_COLUMN and key != "data.date_column":
            raise _fail(source, key, f"names the column '{RESERVED_COLUMN}', which the pipeline reserves for the "
                        "normalised date.", "rename the data column, or make it data.date_column.",
                        "reserved-column")
        used[column] = role


def _no_duplicates(source: Path, key: str, names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise _fail(source, key, f"names '{n}' twice.", "list each name once.", "duplicate-node")
        seen.add(n)


def _section(raw: Any, source: Path, key: str, cls: type) -> Any:
    """Build a flat threshold dataclass from a mapping: unknown keys and wrong types refused, and
    range errors from the dataclass's own validation re-anchored on the config file."""
    m = _mapping(_or_empty(raw), source, key)
    _check_keys(m, set(cls.__dataclass_fields__), set(), source, key)
    try:
        return cls(**dict(m))
    except ConfigError as exc:
        raise ConfigError(exc.rule, f"{source} key '{exc.place}'", exc.detail, exc.fix) from None
