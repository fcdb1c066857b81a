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

from cmmm_pipeline.core.config import (
    MAX_FOURIER_ORDER,
    MAX_KPI_HISTORY_WEEKS,
    MAX_LAG_WEEKS,
    RESERVED_COLUMN,
    SEASONALITY,
    AdstockConfig,
    AdstockType,
    CampaignConfig,
    ChannelConfig,
    CheckConfig,
    DataConfig,
    EffectModifierConfig,
    EstimationConfig,
    ExperimentConfig,
    FeatureConfig,
    PipelineConfig,
    PlanningConfig,
    SaturationConfig,
    SaturationType,
    is_finite_number,
    is_generated_control,
    lagged_kpi_name,
)
from cmmm_pipeline.core.errors import ConfigError, Problems, brief, clip
from cmmm_pipeline.core.graph import GraphSpec, check_graph
from cmmm_pipeline.core.yaml_reader import MAX_YAML_VALUES, UniqueKeyLoader, read_yaml

__all__ = ["MAX_YAML_VALUES", "TOP_LEVEL_KEYS", "UniqueKeyLoader", "load_config", "parse_config", "read_yaml"]

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
                key: str, problems: Problems) -> None:
    """Unknown keys (usually typos) and missing required keys. A missing key that an unknown key
    resembles is the same typo, so it is not reported a second time."""
    unknown = sorted(str(k) for k in value if k not in allowed)
    meant: set[str] = set()
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        meant = {m for u in unknown for m in difflib.get_close_matches(u, sorted(allowed), n=1)}
        problems.add(_fail(source, f"{key}.{unknown[0]}" if key else unknown[0],
                           f"is not a known key (unknown: {clip(', '.join(unknown), 200)}).",
                           f"{hint}use only: {', '.join(sorted(allowed))}.", "config-unknown-key"))
    missing = sorted(required - set(value) - meant)
    if missing:
        problems.add(_fail(source, f"{key}.{missing[0]}" if key else missing[0],
                           "is required but missing.", f"add {', '.join(missing)} under '{key or 'top level'}'.",
                           "config-missing-key"))


def _number(value: Any, source: Path, key: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if not is_finite_number(value):
        raise _fail(source, key, f"must be a finite number, got {brief(value)}.", "write a number.", "config-type")
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
        raise _fail(source, key, f"must be a non-empty string, got {brief(value)}.", "write a name.", "config-type")
    return value.strip()


def _integer(value: Any, source: Path, key: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, f"must be an integer, got {brief(value)}.", f"write an integer >= {low}.",
                    "config-type")
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _fail(source, key, f"is {brief(value)}, outside the allowed range.", f"write an integer {allowed}.",
                    "config-range")
    return value


def _boolean(value: Any, source: Path, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, f"must be true or false, got {brief(value)}.", "write true or false.", "config-type")
    return value


def _enum(enum: type[Enum], value: Any, source: Path, key: str) -> Any:
    try:
        return enum(value)
    except (ValueError, TypeError):
        options = ", ".join(m.value for m in enum)
        raise _fail(source, key, f"is {brief(value)}, not a known type.", f"use one of: {options}.",
                    "config-unknown-value") from None


def _adstock(raw: Any, source: Path, key: str) -> AdstockConfig:
    if raw is None:
        return AdstockConfig()
    m = _mapping(raw, source, key)
    p = Problems()
    _check_keys(m, {"type", "decay", "shape", "scale", "max_lag"}, set(), source, key, p)
    kind = p.check(_enum, AdstockType, m["type"], source, f"{key}.type") if "type" in m else _DEFAULT_ADSTOCK
    decay = p.check(_optional_number, m.get("decay"), source, f"{key}.decay", low=0.0, high=1.0, high_open=True)
    shape = p.check(_optional_number, m.get("shape"), source, f"{key}.shape", low=0.0, low_open=True)
    scale = p.check(_optional_number, m.get("scale"), source, f"{key}.scale", low=0.0, low_open=True)
    max_lag = p.check(_integer, m.get("max_lag", 12), source, f"{key}.max_lag", 1, MAX_LAG_WEEKS)
    p.raise_if_any()
    return AdstockConfig(type=kind, decay=decay, shape=shape, scale=scale, max_lag=max_lag)


_DEFAULT_ADSTOCK = AdstockConfig.__dataclass_fields__["type"].default
"""The adstock type when the config names none: whatever `AdstockConfig` defaults to."""


def _saturation(raw: Any, source: Path, key: str) -> SaturationConfig:
    if raw is None:
        return SaturationConfig()
    m = _mapping(raw, source, key)
    p = Problems()
    _check_keys(m, {"type", "half_saturation", "slope"}, set(), source, key, p)
    kind = p.check(_enum, SaturationType, m.get("type", "hill"), source, f"{key}.type")
    half = p.check(_optional_number, m.get("half_saturation"), source, f"{key}.half_saturation",
                   low=0.0, low_open=True)
    slope = p.check(_optional_number, m.get("slope"), source, f"{key}.slope", low=0.0, low_open=True)
    p.raise_if_any()
    return SaturationConfig(type=kind, half_saturation=half, slope=slope)


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
        raise _fail(source, key, f"is {brief(value)}, not a date.", "write it as YYYY-MM-DD.",
                    "config-type") from None


_EXPERIMENT_FIELDS = {"channel", "start", "end", "incremental_kpi", "ci_low", "ci_high"}


def _experiment(raw: Any, source: Path, key: str) -> ExperimentConfig:
    m = _mapping(raw, source, key)
    p = Problems()
    _check_keys(m, _EXPERIMENT_FIELDS, _EXPERIMENT_FIELDS, source, key, p)
    checks = {"channel": _string, "start": _date, "end": _date, "incremental_kpi": _number, "ci_low": _number,
              "ci_high": _number}
    values = {name: p.check(fn, m[name], source, f"{key}.{name}") for name, fn in checks.items() if name in m}
    p.raise_if_any()
    exp = ExperimentConfig(**values)
    if exp.end < exp.start:
        p.add(_fail(source, f"{key}.end", f"({exp.end}) is before start ({exp.start}).",
                    "swap or correct the dates.", "experiment-dates"))
    if not exp.ci_low <= exp.incremental_kpi <= exp.ci_high:
        p.add(_fail(source, key, f"has incremental_kpi {exp.incremental_kpi} outside [ci_low, ci_high] = "
                    f"[{exp.ci_low}, {exp.ci_high}].", "check the experiment's reported interval.",
                    "experiment-interval"))
    p.raise_if_any()
    return exp


def _edges(raw: Any, source: Path) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise _fail(source, "graph.edges", "must be a list of [cause, effect] pairs.",
                    "write e.g. edges: [[tv, sales], [seasonality, tv]].", "config-type")
    p = Problems()
    edges: list[tuple[str, str]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            p.add(_fail(source, f"graph.edges[{i}]", f"is {brief(pair)}, not a [cause, effect] pair.",
                        "write each edge as [cause, effect].", "config-type"))
            continue
        cause = p.check(_string, pair[0], source, f"graph.edges[{i}][0]")
        effect = p.check(_string, pair[1], source, f"graph.edges[{i}][1]")
        edges.append((cause, effect))
    p.raise_if_any()
    return tuple(edges)


def _latent(raw: Any, source: Path, nodes: set[str]) -> tuple[str, ...]:
    """`graph.latent`: names of unobserved causes, distinct from every channel, control and the KPI."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(source, "graph.latent", "must be a list of node names.",
                    "write e.g. latent: [brand_awareness].", "config-type")
    p = Problems()
    latent = tuple(p.check(_string, name, source, f"graph.latent[{i}]") for i, name in enumerate(raw))
    p.raise_if_any()
    _no_duplicates(source, "graph.latent", latent, p)
    for i, name in enumerate(latent):
        if name == RESERVED_COLUMN or _FOURIER_COLUMN.match(name):
            p.add(_fail(source, f"graph.latent[{i}]", f"'{name}' is a name the pipeline gives to a data column.",
                        "choose another name for the unobserved cause.", "reserved-column"))
        elif name in nodes:
            p.add(_fail(source, f"graph.latent[{i}]", f"'{name}' is a channel, a control or the KPI, which have "
                        "data.", "list only causes without a data column as latent.", "duplicate-node"))
    p.raise_if_any()
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


TOP_LEVEL_KEYS = {"data", "channels", "controls", "graph", "features", "experiments", "checks", "estimation",
                  "campaigns", "effect_modifiers", "planning"}


def parse_config(raw: Any, source: Path) -> PipelineConfig:
    """Validate an already-parsed YAML document; `source` anchors relative paths and messages.
    Every problem is collected and raised at once (`ConfigErrors` when there are several), the
    graph's included, so a user fixes a config in one pass and a bad DAG is refused before any run."""
    if raw is None:
        raise ConfigError("config-empty", str(source), "is empty.", "start from the bundled sample config.")
    top = _mapping(raw, source, "(top level)")
    p = Problems()
    _check_keys(top, TOP_LEVEL_KEYS, {"data", "channels", "graph"}, source, "", p)

    data = p.check(_data, top["data"], source) if "data" in top else None
    channels = p.check(_channels, top["channels"], source) if "channels" in top else None
    controls = p.check(_controls, top.get("controls"), source)
    roles = (data or _data_stand_in(top.get("data")), channels or _channel_stand_ins(top.get("channels")), controls)
    if all(r is not None for r in roles):
        _check_roles(*roles, source, p)
    nodes = _node_names(top)

    graph = p.check(_graph, top["graph"], source, nodes) if "graph" in top else None
    features = p.check(_features, top.get("features"), source)
    experiments = p.check(_experiments, top.get("experiments"), source, nodes)
    checks = p.check(_section, top.get("checks"), source, "checks", CheckConfig)
    estimation = p.check(_section, top.get("estimation"), source, "estimation", EstimationConfig)
    if checks is not None and checks.outlier_columns and data is not None and channels is not None:
        _check_outlier_columns(checks, data, channels, source, p)
    campaigns = p.check(_campaigns, top.get("campaigns"), source, nodes)
    modifiers = p.check(_effect_modifiers, top.get("effect_modifiers"), source, nodes)
    interactions = (p.check(_interactions, top["graph"].get("interactions"), source, nodes)
                    if isinstance(top.get("graph"), Mapping) else ())
    declared = None
    if graph is not None and nodes is not None:
        edges, graph_file, latent = graph
        channel_names, control_names, kpi = nodes
        declared = p.check(check_graph, GraphSpec(source, channel_names, control_names, kpi, latent, edges, graph_file))
    if declared is not None and modifiers:
        for problem in descendant_modifiers(declared, modifiers, str(source)):
            p.add(problem)
    planning = p.check(_planning, top.get("planning"), source, channels, controls)
    p.raise_if_any()
    edges, graph_file, latent = graph
    return PipelineConfig(source=source, data=data, channels=channels, controls=controls, edges=edges,
                          features=features, experiments=experiments, checks=checks, estimation=estimation,
                          graph_file=graph_file, latent=latent, campaigns=campaigns, effect_modifiers=modifiers,
                          interactions=interactions, planning=planning)


def _planning(raw: Any, source: Path, channels: tuple[ChannelConfig, ...] | None,
              controls: tuple[str, ...] | None) -> PlanningConfig | None:
    """`planning: {plan: plan.yaml}` (path relative to the config). The plan file is parsed by the
    plan parser against the config's channels and controls, so its problems come with the config's,
    each under its `plan-*` rule; with channels or controls broken it is checked once they are fixed."""
    if raw is None:
        return None
    m = _mapping(raw, source, "planning")
    p = Problems()
    _check_keys(m, {"plan"}, {"plan"}, source, "planning", p)
    name = p.check(_string, m["plan"], source, "planning.plan") if "plan" in m else None
    p.raise_if_any()
    path = (source.parent / name).resolve()
    if not path.is_file():
        raise _fail(source, "planning.plan", f"names {clip(str(path), 200)}, no such file.",
                    "point planning.plan at an existing plan file (relative to the config), or remove planning.",
                    "plan-missing")
    if channels is None or controls is None:
        return PlanningConfig(path)
    from cmmm_pipeline.plan.spec import load_plan  # the plan package imports this module

    stand_in = PipelineConfig(source=source, data=DataConfig(Path(), "", ""), channels=channels, controls=controls,
                              edges=())
    return PlanningConfig(path, load_plan(path, stand_in))


def _node_names(top: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], str] | None:
    """The graph's observed nodes (channels, controls, KPI) when the config names them clearly enough
    to check the graph against them, even if other keys of those sections are wrong; else None."""
    data, channels, controls = top.get("data"), top.get("channels"), top.get("controls") or []
    if not isinstance(data, Mapping) or not isinstance(data.get("kpi"), str) or not data["kpi"].strip():
        return None
    if not isinstance(channels, Mapping) or not channels or not isinstance(controls, list):
        return None
    names = [n.strip() if isinstance(n, str) else None for n in (*channels, *controls)]
    if any(n is None or not _CHANNEL_NAME.match(n) for n in names[:len(channels)]) or None in names or "" in names:
        return None
    return tuple(names[:len(channels)]), tuple(names[len(channels):]), data["kpi"].strip()


def _data_stand_in(raw: Any) -> DataConfig | None:
    """The date and KPI columns of a `data` section with other problems, so column roles are still
    checked (and reported with them)."""
    if isinstance(raw, Mapping) and all(isinstance(raw.get(k), str) for k in ("date_column", "kpi")):
        return DataConfig(Path(), raw["date_column"].strip(), raw["kpi"].strip())
    return None


def _channel_stand_ins(raw: Any) -> tuple[ChannelConfig, ...] | None:
    """Name and spend column of every channel that gives them, for the role checks of a config whose
    channels have other problems."""
    if not isinstance(raw, Mapping):
        return None
    return tuple(ChannelConfig(name.strip(), spec["spend_column"].strip()) for name, spec in raw.items()
                 if isinstance(name, str) and isinstance(spec, Mapping) and isinstance(spec.get("spend_column"), str))


def _graph(raw: Any, source: Path, nodes: tuple[tuple[str, ...], tuple[str, ...], str] | None
           ) -> tuple[tuple[tuple[str, str], ...], Path | None, tuple[str, ...]]:
    """`graph`: edges or a file (exactly one), and the latent nodes."""
    g = _mapping(raw, source, "graph")
    p = Problems()
    _check_keys(g, {"edges", "file", "latent", "interactions"}, set(), source, "graph", p)
    if ("edges" in g) == ("file" in g):
        p.add(_fail(source, "graph", "must give exactly one of 'edges' or 'file'.",
                    "list the edges, or point 'file' at a DOT or GML drawing.", "config-missing-key"))
    name = p.check(_string, g["file"], source, "graph.file") if "file" in g else None
    edges = p.check(_edges, g["edges"], source) if "edges" in g else ()
    known = set() if nodes is None else {*nodes[0], *nodes[1], nodes[2]}
    latent = p.check(_latent, g.get("latent"), source, known)
    p.raise_if_any()
    return edges, None if name is None else (source.parent / name).resolve(), latent


def _features(raw: Any, source: Path) -> FeatureConfig:
    f = _mapping(_or_empty(raw), source, "features")
    p = Problems()
    _check_keys(f, {"fourier_order"}, set(), source, "features", p)
    order = p.check(_integer, f.get("fourier_order", 2), source, "features.fourier_order", 1, MAX_FOURIER_ORDER)
    p.raise_if_any()
    return FeatureConfig(fourier_order=order)


def _experiments(raw: Any, source: Path, nodes: tuple[tuple[str, ...], tuple[str, ...], str] | None
                 ) -> tuple[ExperimentConfig, ...]:
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        raise _fail(source, "experiments", "must be a list.", "write one mapping per lift test.", "config-type")
    p = Problems()
    experiments = [p.check(_experiment, e, source, f"experiments[{i}]") for i, e in enumerate(raw)]
    names = () if nodes is None else nodes[0]
    for i, e in enumerate(experiments):
        if e is not None and nodes is not None and e.channel not in names:
            p.add(_fail(source, f"experiments[{i}].channel", f"'{e.channel}' is not a configured channel.",
                        f"use one of: {', '.join(names)}.", "experiment-channel"))
    p.raise_if_any()
    return tuple(experiments)


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _data(raw: Any, source: Path) -> DataConfig:
    d = _mapping(raw, source, "data")
    p = Problems()
    _check_keys(d, {"path", "table", "date_column", "kpi", "kpi_must_be_positive", "market_column", "markets"},
                {"path", "date_column", "kpi"}, source, "data", p)
    values = {key: p.check(_string, d[key], source, f"data.{key}") for key in ("path", "date_column", "kpi")
              if key in d}
    table = None if d.get("table") is None else p.check(_string, d["table"], source, "data.table")
    positive = p.check(_boolean, d.get("kpi_must_be_positive", False), source, "data.kpi_must_be_positive")
    market_column = None if d.get("market_column") is None else p.check(_string, d["market_column"], source,
                                                                          "data.market_column")
    markets = p.check(_markets, d.get("markets"), source, "data.markets")
    if markets and market_column is None:
        p.add(_fail(source, "data.markets", "lists markets but data.market_column is not set.",
                    "name the column that holds the market in data.market_column.", "config-missing-key"))
    p.raise_if_any()
    return DataConfig(path=(source.parent / values["path"]).resolve(), date_column=values["date_column"],
                      kpi=values["kpi"], table=table, kpi_must_be_positive=positive, market_column=market_column,
                      markets=markets or ())


def _markets(value: Any, source: Path, key: str) -> tuple[str, ...]:
    """Static market partitions: distinct names that can be folder names and partition keys."""
    from cmmm_pipeline.data.markets import is_market_name

    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise _fail(source, key, f"must be a non-empty list of market names, got {brief(value)}.",
                    "write e.g. markets: [de, fr, uk], or leave it out to add markets as they arrive.", "config-type")
    names = [_string(v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    bad = [n for n in names if not is_market_name(n)]
    if bad:
        raise _fail(source, key, f"holds names that cannot be folder names or partition keys: {clip(', '.join(bad), 200)}.",
                    "use letters, digits, '_', '.' or '-' (at most 64, starting with a letter or digit).",
                    "market-name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _fail(source, key, f"lists {', '.join(repeated)} more than once.", "list each market once.",
                    "config-duplicate")
    return tuple(names)


def _channels(raw: Any, source: Path) -> tuple[ChannelConfig, ...]:
    ch_raw = _mapping(raw, source, "channels")
    if not ch_raw:
        raise _fail(source, "channels", "is empty.", "name at least one media channel.", "config-missing-key")
    p = Problems()
    channels: list[ChannelConfig] = []
    spend_columns: dict[str, str] = {}
    for name, spec in ch_raw.items():
        channel = p.check(_channel, name, spec, source)
        if channel is None:
            continue
        if channel.spend_column in spend_columns:
            p.add(_fail(source, f"channels.{channel.name}.spend_column", f"'{channel.spend_column}' is already the "
                        f"spend of channel '{spend_columns[channel.spend_column]}'.",
                        "give each channel its own spend column.", "duplicate-spend-column"))
        spend_columns.setdefault(channel.spend_column, channel.name)
        channels.append(channel)
    p.raise_if_any()
    return tuple(channels)


def _channel(name: Any, spec: Any, source: Path) -> ChannelConfig:
    key = f"channels.{brief(name) if not isinstance(name, str) else name}"
    name = _string(name, source, key)
    p = Problems()
    if not _CHANNEL_NAME.match(name) or name == RESERVED_COLUMN or _FOURIER_COLUMN.match(name):
        p.add(_fail(source, key, f"{brief(name)} is not a usable channel name.",
                    "use letters, digits and '_' (starting with a letter), other than 'week' and the "
                    "generated 'seasonality_sin1'-style names.", "channel-name"))
    spec = _mapping(spec, source, key)
    _check_keys(spec, {"spend_column", "adstock", "saturation"}, {"spend_column"}, source, key, p)
    column = p.check(_string, spec["spend_column"], source, f"{key}.spend_column") if "spend_column" in spec else None
    adstock = p.check(_adstock, spec.get("adstock"), source, f"{key}.adstock")
    saturation = p.check(_saturation, spec.get("saturation"), source, f"{key}.saturation")
    p.raise_if_any()
    return ChannelConfig(name, column, adstock, saturation)


def _controls(raw: Any, source: Path) -> tuple[str, ...]:
    controls_raw = [] if raw is None else raw
    if not isinstance(controls_raw, list):
        raise _fail(source, "controls", "must be a list of column names.", "write e.g. [seasonality, price].",
                    "config-type")
    p = Problems()
    controls = tuple(p.check(_string, c, source, f"controls[{i}]") for i, c in enumerate(controls_raw))
    p.raise_if_any()
    _no_duplicates(source, "controls", controls, p)
    p.raise_if_any()
    return controls


def _check_roles(data: DataConfig, channels: tuple[ChannelConfig, ...], controls: tuple[str, ...],
                 source: Path, p: Problems) -> None:
    """Each graph node has one role, and each data column one use: a column read as both a
    control and a spend (or the date and the KPI) would silently model a variable against itself."""
    nodes = [*((c.name, f"channels.{c.name}", "a channel") for c in channels),
             *((c, f"controls[{i}]", "a control") for i, c in enumerate(controls)),
             (data.kpi, "data.kpi", "the KPI")]
    seen: dict[str, str] = {}
    for name, key, role in nodes:
        if name in seen:
            p.add(_fail(source, key, f"'{name}' is already {seen[name]}.", "give each graph node one role: rename "
                        "one of them.", "duplicate-node"))
        seen.setdefault(name, role)
    for i, control in enumerate(controls):
        history = lagged_kpi_name(control, data.kpi)
        if history is not None and history[1] > MAX_KPI_HISTORY_WEEKS:
            p.add(_fail(source, f"controls[{i}]", f"'{control}' reads the KPI {history[1]} weeks back; at most "
                        f"{MAX_KPI_HISTORY_WEEKS} weeks are generated.", f"name a lag of at most "
                        f"{MAX_KPI_HISTORY_WEEKS} weeks, or provide the column in the data.", "kpi-history-too-long"))
    observed = [c for c in controls if not is_generated_control(c, data.kpi)]
    columns = [(data.date_column, "data.date_column", "the date column"),
               *((c.spend_column, f"channels.{c.name}.spend_column", f"the spend of channel '{c.name}'")
                 for c in channels),
               *((c, f"controls[{controls.index(c)}]", "a control column") for c in observed),
               (data.kpi, "data.kpi", "the KPI column")]
    used: dict[str, str] = {}
    for column, key, role in columns:
        if column in used:
            p.add(_fail(source, key, f"reads the data column '{column}', which is already {used[column]}.",
                        "point each role at its own column.", "duplicate-column"))
        elif column == RESERVED_COLUMN and key != "data.date_column":
            p.add(_fail(source, key, f"names the column '{RESERVED_COLUMN}', which the pipeline reserves for the "
                        "normalised date.", "rename the data column, or make it data.date_column.",
                        "reserved-column"))
        used.setdefault(column, role)


def _check_outlier_columns(checks: CheckConfig, data: DataConfig, channels: tuple[ChannelConfig, ...],
                           source: Path, p: Problems) -> None:
    """`checks.outlier_columns` may name only the KPI and spend columns, the columns the rule judges:
    a misspelt column would silently leave the default threshold in force."""
    allowed = [data.kpi, *(c.spend_column for c in channels)]
    for column, _ in checks.outlier_columns or ():
        if column not in allowed:
            close = difflib.get_close_matches(column, allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            p.add(_fail(source, f"checks.outlier_columns.{clip(column)}", f"'{clip(column)}' is not the KPI or a "
                        "spend column.", f"{hint}use one of: {', '.join(allowed)}.", "config-unknown-key"))


def _no_duplicates(source: Path, key: str, names: tuple[str, ...], p: Problems) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            p.add(_fail(source, key, f"names '{n}' twice.", "list each name once.", "duplicate-node"))
        seen.add(n)


def _section(raw: Any, source: Path, key: str, cls: type) -> Any:
    """Build a flat threshold dataclass from a mapping: unknown keys and wrong types refused, and
    range errors from the dataclass's own validation re-anchored on the config file."""
    m = _mapping(_or_empty(raw), source, key)
    p = Problems()
    _check_keys(m, set(cls.__dataclass_fields__), set(), source, key, p)
    try:
        section = cls(**{k: v for k, v in m.items() if k in cls.__dataclass_fields__})
    except ConfigError as exc:
        for problem in exc.problems:
            p.add(ConfigError(problem.rule, f"{source} key '{problem.place}'", problem.detail, problem.fix))
    p.raise_if_any()
    return section


# --- periods, campaigns, conditions and synergies (effects/periods.py, effects/synergies.py) ---------

_CAMPAIGN_FIELDS = {"name", "channel", "start", "end"}


def _campaigns(raw: Any, source: Path, nodes: tuple[tuple[str, ...], tuple[str, ...], str] | None
               ) -> tuple[CampaignConfig, ...]:
    """`campaigns`: named windows of one channel (dates inclusive; checked against the data's weeks at
    ingestion, see `data.validation.campaign_problems`)."""
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        raise _fail(source, "campaigns", "must be a list.",
                    "write one mapping per campaign: {name, channel, start, end}.", "config-type")
    p = Problems()
    out: list[CampaignConfig] = []
    names = () if nodes is None else nodes[0]
    seen: set[str] = set()
    for i, item in enumerate(raw):
        key = f"campaigns[{i}]"
        m = p.check(_mapping, item, source, key)
        if m is None:
            continue
        q = Problems()
        _check_keys(m, _CAMPAIGN_FIELDS, _CAMPAIGN_FIELDS, source, key, q)
        checks = {"name": _string, "channel": _string, "start": _date, "end": _date}
        values = {f: q.check(fn, m[f], source, f"{key}.{f}") for f, fn in checks.items() if f in m}
        if q.items:
            for problem in q.items:
                p.add(problem)
            continue
        campaign = CampaignConfig(**values)
        if nodes is not None and campaign.channel not in names:
            p.add(_fail(source, f"{key}.channel", f"'{campaign.channel}' is not a configured channel.",
                        f"use one of: {', '.join(names)}.", "campaign-channel"))
        if campaign.end < campaign.start:
            p.add(_fail(source, f"{key}.end", f"({campaign.end}) is before start ({campaign.start}).",
                        "swap or correct the dates (both inclusive).", "campaign-dates"))
        if campaign.name in seen:
            p.add(_fail(source, f"{key}.name", f"'{clip(campaign.name)}' names an earlier campaign too.",
                        "give each campaign its own name: it labels the campaign's row.", "duplicate-campaign"))
        seen.add(campaign.name)
        out.append(campaign)
    p.raise_if_any()
    return tuple(out)


def _cut_points(raw: Any, source: Path, key: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(source, key, "must be a non-empty list of numbers.", "write e.g. cut_points: [9.8, 10.2].",
                    "config-type")
    values = tuple(_number(v, source, f"{key}[{i}]") for i, v in enumerate(raw))
    if any(b <= a for a, b in zip(values, values[1:])):
        raise _fail(source, key, f"is {brief(list(values))}, not strictly increasing.",
                    "list the cut points in increasing order, each once.", "config-range")
    return values


def _effect_modifiers(raw: Any, source: Path, nodes: tuple[tuple[str, ...], tuple[str, ...], str] | None
                      ) -> tuple[EffectModifierConfig, ...]:
    """`effect_modifiers: {channel: [column, {column: c, cut_points: [...]}, ...]}`: each column an
    observed control (pre-treatment; a descendant of the channel is refused once the graph is known)."""
    if raw is None:
        return ()
    m = _mapping(raw, source, "effect_modifiers")
    p = Problems()
    out: list[EffectModifierConfig] = []
    channels, controls = ((), ()) if nodes is None else (nodes[0], nodes[1])
    for channel, items in m.items():
        key = f"effect_modifiers.{brief(channel) if not isinstance(channel, str) else channel}"
        if nodes is not None and channel not in channels:
            p.add(_fail(source, key, f"'{brief(channel)}' is not a configured channel.",
                        f"use one of: {', '.join(channels)}.", "effect-modifier-channel"))
            continue
        if not isinstance(items, list) or not items:
            p.add(_fail(source, key, "must be a non-empty list of columns.", "write e.g. tv: [price].", "config-type"))
            continue
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            cuts: tuple[float, ...] = ()
            if isinstance(item, Mapping):
                q = Problems()
                _check_keys(item, {"column", "cut_points"}, {"column"}, source, where, q)
                column = q.check(_string, item["column"], source, f"{where}.column") if "column" in item else None
                if "cut_points" in item:
                    cuts = q.check(_cut_points, item["cut_points"], source, f"{where}.cut_points") or ()
                if q.items:
                    for problem in q.items:
                        p.add(problem)
                    continue
            else:
                column = p.check(_string, item, source, where)
            if column is None:
                continue
            if nodes is not None and (column not in controls or column == SEASONALITY):
                p.add(_fail(source, where, f"'{clip(column)}' is not an observed control column.",
                            "use a column listed under controls (not the generated seasonality): an effect "
                            "modifier must be measured and must not be caused by the channel.",
                            "effect-modifier-column"))
                continue
            out.append(EffectModifierConfig(str(channel), column, cuts))
    p.raise_if_any()
    return tuple(out)


def descendant_modifiers(graph: Any, modifiers: tuple[EffectModifierConfig, ...], where: str) -> list[ConfigError]:
    """A modifier the channel causes (a descendant in the DAG) is not pre-treatment: its levels are
    partly the channel's own effect, so the effect within a level is not the channel's effect there."""
    import networkx as nx

    problems = []
    for m in modifiers:
        if m.channel in graph and m.modifier in nx.descendants(graph, m.channel):
            problems.append(ConfigError(
                "effect-modifier-descendant", f"{where} key 'effect_modifiers.{m.channel}'",
                f"'{m.modifier}' is a descendant of '{m.channel}' in the DAG (the channel moves it), so its levels "
                f"would split the channel's effect by part of that effect.",
                "use a pre-treatment column (one the channel does not cause), or revise the DAG."))
    return problems


def _interactions(raw: Any, source: Path, nodes: tuple[tuple[str, ...], tuple[str, ...], str] | None
                  ) -> tuple[tuple[str, str], ...]:
    """`graph.interactions`: declared channel pairs whose synergy is estimated (no other pair is)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(source, "graph.interactions", "must be a list of [channel, channel] pairs.",
                    "write e.g. interactions: [[tv, digital]].", "config-type")
    p = Problems()
    out: list[tuple[str, str]] = []
    channels = () if nodes is None else nodes[0]
    for i, pair in enumerate(raw):
        key = f"graph.interactions[{i}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            p.add(_fail(source, key, f"is {brief(pair)}, not a [channel, channel] pair.",
                        "write each pair as [channel_a, channel_b].", "config-type"))
            continue
        a, b = (p.check(_string, v, source, f"{key}[{j}]") for j, v in enumerate(pair))
        if a is None or b is None:
            continue
        unknown = [n for n in (a, b) if nodes is not None and n not in channels]
        if unknown:
            p.add(_fail(source, key, f"names '{clip(unknown[0])}', which is not a configured channel.",
                        f"pair two of: {', '.join(channels)}.", "interaction-channel"))
        elif a == b:
            p.add(_fail(source, key, f"pairs '{a}' with itself.", "pair two different channels.",
                        "interaction-channel"))
        elif {a, b} in [set(q) for q in out]:
            p.add(_fail(source, key, f"declares [{a}, {b}] a second time.", "list each pair once.",
                        "duplicate-interaction"))
        else:
            out.append((a, b))
    p.raise_if_any()
    return tuple(out)
