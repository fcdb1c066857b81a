"""Typed values as JSON and back, for the IO manager: frozen dataclasses, enums, tuples, dicts with
any encodable keys, networkx DiGraphs and plain scalars, each tagged with its type so that loading
gives back the same types (a `ChannelTransform` with its `AdstockType`, not a dict of strings).

Floats round-trip exactly (JSON keeps `repr`, NaN and infinities included). Only classes of this
project's own packages are rebuilt from a stored name, so a document cannot name arbitrary code.
Anything else (arrays, DataFrames nested below the top level, arbitrary objects) is refused when
written rather than stored approximately.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from enum import Enum
from typing import Any

import networkx as nx
import numpy as np

TRUSTED_MODULES = ("cmmm_pipeline.", "resources.")
"""Only classes defined under these packages are rebuilt from a document."""

_TAG = "__type__"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not module.startswith(TRUSTED_MODULES):
        raise TypeError(f"refusing to rebuild {name!r}: not a class of this project")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, type):
        raise TypeError(f"{name!r} is not a class")
    return target


def encode(value: Any) -> Any:
    """The value as JSON-ready data with type tags (see `decode`)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return {_TAG: "enum", "class": _qualified(type(value)), "value": encode(value.value)}
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_TAG: "dataclass", "class": _qualified(type(value)),
                "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {_TAG: "frozenset" if isinstance(value, frozenset) else "set",
                "items": sorted((encode(v) for v in value), key=json.dumps)}
    if isinstance(value, dict):
        return {_TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, nx.DiGraph) and not isinstance(value, nx.MultiDiGraph):
        return {_TAG: "digraph", "graph": encode(dict(value.graph)),
                "nodes": [[encode(n), encode(dict(a))] for n, a in value.nodes(data=True)],
                "edges": [[encode(a), encode(b), encode(dict(d))] for a, b, d in value.edges(data=True)]}
    raise TypeError(f"cannot store a {type(value).__name__} faithfully; pass DataFrames as top-level fields "
                    "of a step value, or use a frozen dataclass")


def decode(data: Any) -> Any:
    """Inverse of `encode`: the same types, values and orders (dict items, graph nodes and edges)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data[_TAG]
    if kind == "enum":
        return _resolve(data["class"])(decode(data["value"]))
    if kind == "dataclass":
        cls = _resolve(data["class"])
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{data['class']!r} is not a dataclass")
        return cls(**{k: decode(v) for k, v in data["fields"].items()})
    if kind == "tuple":
        return tuple(decode(v) for v in data["items"])
    if kind in ("set", "frozenset"):
        items = (decode(v) for v in data["items"])
        return frozenset(items) if kind == "frozenset" else set(items)
    if kind == "dict":
        return {_hashable(decode(k)): decode(v) for k, v in data["items"]}
    if kind == "digraph":
        g = nx.DiGraph(**decode(data["graph"]))
        g.add_nodes_from((_hashable(decode(n)), decode(a)) for n, a in data["nodes"])
        g.add_edges_from((_hashable(decode(a)), _hashable(decode(b)), decode(d)) for a, b, d in data["edges"])
        return g
    raise TypeError(f"unknown stored type {kind!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def dumps(value: Any) -> str:
    return json.dumps(encode(value), allow_nan=True)


def loads(text: str) -> Any:
    return decode(json.loads(text))
