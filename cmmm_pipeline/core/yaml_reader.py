"""Reading YAML safely for the config and the plan file: a key repeated within one mapping and an
alias expansion past a bound are refused before any value is built; every failure is a ConfigError
naming its rule. (Its own module so that the plan parser, which the config loader calls, can use it
without an import cycle.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cmmm_pipeline.core.errors import ConfigError, clip


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
        _refuse_alias_expansion(node)
        _refuse_duplicate_keys(node)
        return super().construct_document(node)


MAX_YAML_VALUES = 20_000
"""The most values a config may hold once its aliases are expanded (the sample holds about 200).
Anchors and merge keys stay usable; an alias bomb (`&a [*b, *b, ...]` nested ten deep) is refused
before any value is built or rendered."""


class _AliasExpansion(yaml.YAMLError):
    def __init__(self, values: int | None) -> None:
        super().__init__("alias expansion")
        self.values = values
        """The expanded count that passed the bound, or None for an alias inside its own anchor."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _refuse_alias_expansion(root: yaml.Node) -> None:
    """Count the values the document expands to, each composed node once (memoised, so the walk is
    linear in the text even when the expansion is exponential); refuse a recursive alias."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            if size[key] > MAX_YAML_VALUES:
                raise _AliasExpansion(size[key])
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _AliasExpansion(None)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


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
    except _AliasExpansion as exc:
        detail = ("has an alias inside its own anchor, which expands without end" if exc.values is None else
                  f"expands to more than {MAX_YAML_VALUES:,} values through its anchors and aliases (&name / *name)")
        raise ConfigError("config-aliases", str(source), f"{detail}; no config needs that many.",
                          "write the values out, or use anchors only for small repeated mappings.") from None
    except yaml.YAMLError as exc:
        where = clip(" ".join(str(exc).replace('"<unicode string>"', source.name).split()), 400)
        raise ConfigError("config-yaml", str(source), f"is not valid YAML ({where}).",
                          "fix the YAML syntax at the position shown.") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML builds dates and tagged scalars with Python constructors, which raise their own errors.
        raise ConfigError("config-yaml", str(source), f"holds a value YAML cannot build ({clip(str(exc))}), such as an "
                          "impossible date or a mistagged number.", "correct the value (dates as YYYY-MM-DD).") from None
    except RecursionError:
        raise ConfigError("config-yaml", str(source), "nests too deeply to be a config.",
                          "write the config as in the sample: a few levels of mappings and lists.") from None
