"""The reference pages say what the code does: docs/config.md shows the bundled sample config as it
is and every key with its default; docs/checks.md names every rule the code can raise."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from pathlib import Path

import pytest

from cmmm_pipeline.core.config import (
    AdstockConfig,
    CheckConfig,
    DataConfig,
    EstimationConfig,
    FeatureConfig,
    SaturationConfig,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DOC = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
CHECKS_DOC = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")


def test_the_config_example_is_the_bundled_sample_config() -> None:
    block = CONFIG_DOC.split("## The bundled sample config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "cmmm_pipeline" / "sample" / "config.yaml").read_text(encoding="utf-8")


def _yaml(value: object) -> str:
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return f"[{', '.join(_yaml(v) for v in value)}]"
    return str(value)


SECTIONS = [("data", DataConfig), ("features", FeatureConfig), ("checks", CheckConfig),
            ("estimation", EstimationConfig), ("channels.<name>.adstock", AdstockConfig),
            ("channels.<name>.saturation", SaturationConfig)]


@pytest.mark.parametrize(("section", "cls"), SECTIONS, ids=[s for s, _ in SECTIONS])
def test_every_config_key_is_documented_with_its_default(section: str, cls: type) -> None:
    rows = {line.split("|")[1].strip(): line for line in CONFIG_DOC.splitlines() if line.startswith("| `")}
    for field in dataclasses.fields(cls):
        key = f"`{section}.{field.name}`"
        assert key in rows, f"{key} is missing from docs/config.md"
        cells = [c.strip() for c in rows[key].split("|")]
        if field.default is dataclasses.MISSING:
            assert cells[3] == "*required*", (key, cells[3])
        else:
            assert cells[3].startswith(f"`{_yaml(field.default)}`"), (key, cells[3], field.default)


_RAISED = [
    re.compile(r'[A-Z]\w*Error\(\s*"([a-z][a-z0-9]*(?:-[a-z0-9]+)+)"'),          # ConfigError("rule", ...)
    re.compile(r'^\s+[A-Z_]+\s*=\s*"([a-z][a-z0-9]*(?:-[a-z0-9]+)+)"', re.MULTILINE),      # enum members of rule names
]
_FAIL_RULE = re.compile(r',\s*"([a-z][a-z0-9]*(?:-[a-z0-9]+)+)"\)')
"""The rule as the last argument of a module's `_fail(..., "rule")` helper."""


def raised_rules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in ("cmmm_pipeline", "data_checks", "assets"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for pattern in [*_RAISED, *([_FAIL_RULE] if "def _fail(" in text else [])]:
                for match in pattern.finditer(text):
                    found.setdefault(match.group(1), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_rule_raised_in_the_code_is_in_docs_checks() -> None:
    rules = raised_rules()
    assert {"config-unknown-key", "graph-cycle", "column-duplicated", "spend-non-negative",
            "value-too-large", "config-aliases"} <= set(rules)  # the scan finds every kind of rule
    missing = {rule: sorted(where) for rule, where in rules.items() if f"`{rule}`" not in CHECKS_DOC}
    assert not missing, f"rules raised in the code but absent from docs/checks.md: {missing}"
