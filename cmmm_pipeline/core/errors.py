"""The project's one error type: every refusal names the rule, the place and the fix."""

from __future__ import annotations

from collections.abc import Sequence


def format_rows(rows: Sequence[object], limit: int = 8) -> str:
    """Render example rows (week dates or indices) compactly for a message."""
    shown = ", ".join(str(r) for r in list(rows)[:limit])
    extra = len(rows) - limit
    return shown + (f" and {extra} more" if extra > 0 else "")


class CmmmError(Exception):
    """A refusal the user can act on without reading code.

    The message is one paragraph: which rule was broken, where (file, key, column, rows), and what to
    do about it. The CLI prints it as-is and exits non-zero; nothing downstream is written.
    """

    def __init__(self, rule: str, place: str, detail: str, fix: str) -> None:
        self.rule = rule
        self.place = place
        self.detail = detail
        self.fix = fix
        super().__init__(f"[{rule}] {place}: {detail} Fix: {fix}")

    def __reduce__(self) -> tuple[type[CmmmError], tuple[str, str, str, str]]:
        # The default reduction passes the formatted message as the only argument, which the
        # four-argument constructor cannot take: errors crossing a process boundary must survive.
        return (type(self), (self.rule, self.place, self.detail, self.fix))


class ConfigError(CmmmError):
    """The YAML config or the graph it names breaks a rule."""


class DataError(CmmmError):
    """The input table breaks a data-quality rule."""


class EstimationError(CmmmError):
    """A causal estimate cannot be made as asked (e.g. not identifiable under the DAG)."""
