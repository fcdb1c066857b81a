"""The project's one error type: every refusal names the rule, the place and the fix."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence


def format_rows(rows: Sequence[object], limit: int = 8) -> str:
    """Render example rows (week dates or indices) compactly for a message."""
    shown = ", ".join(str(r) for r in list(rows)[:limit])
    extra = len(rows) - limit
    return shown + (f" and {extra} more" if extra > 0 else "")


MAX_SHOWN = 80
"""The longest rendering of a user's value in a message."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = MAX_SHOWN, MAX_SHOWN, 40


def brief(value: object, limit: int = MAX_SHOWN) -> str:
    """A bounded repr of a user's value: a message must never render (or expand) an unbounded value,
    such as a YAML structure that repeats an anchor or a megabyte-long string."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value that cannot even be shown is named by its type
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """A user's text (a column name, a library's error text) cut to `limit` characters for a message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


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

    @property
    def problems(self) -> tuple[CmmmError, ...]:
        """Every refusal this error stands for (itself, for a single one)."""
        return (self,)

    def __reduce__(self) -> tuple[type[CmmmError], tuple[str, str, str, str]]:
        # The default reduction passes the formatted message as the only argument, which the
        # four-argument constructor cannot take: errors crossing a process boundary must survive.
        return (type(self), (self.rule, self.place, self.detail, self.fix))


class ConfigError(CmmmError):
    """The YAML config or the graph it names breaks a rule."""


class ConfigErrors(ConfigError):
    """Several config problems reported at once, one paragraph each. `rule`, `place`, `detail` and
    `fix` are the first problem's, so code that reads one refusal still reads a sensible one."""

    def __init__(self, problems: Sequence[CmmmError]) -> None:
        if not problems:
            raise ValueError("ConfigErrors needs at least one problem")
        self._problems = tuple(problems)
        first = self._problems[0]
        super().__init__(first.rule, first.place, first.detail, first.fix)
        self.args = ("\n".join(str(p) for p in self._problems),)

    @property
    def problems(self) -> tuple[CmmmError, ...]:
        return self._problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self._problems)

    def __reduce__(self) -> tuple[type[ConfigErrors], tuple[tuple[CmmmError, ...]]]:  # type: ignore[override]
        return (type(self), (self._problems,))


def combined(problems: Iterable[CmmmError]) -> CmmmError | None:
    """One error for a list of problems: None for none, the problem itself for one, else ConfigErrors."""
    flat = [q for p in problems for q in p.problems]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else ConfigErrors(flat)


class Problems:
    """Collects refusals instead of stopping at the first, so a user fixes a config in one pass."""

    def __init__(self) -> None:
        self.items: list[CmmmError] = []

    def add(self, error: CmmmError) -> None:
        self.items.extend(error.problems)

    def check(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Call a validator; on a refusal record it and return None."""
        try:
            return fn(*args, **kwargs)
        except CmmmError as exc:
            self.add(exc)
            return None

    def raise_if_any(self) -> None:
        error = combined(self.items)
        if error is not None:
            raise error


class DataError(CmmmError):
    """The input table breaks a data-quality rule."""


class EstimationError(CmmmError):
    """A causal estimate cannot be made as asked (e.g. not identifiable under the DAG)."""
