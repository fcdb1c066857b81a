"""One verdict scale for every check that judges an estimate, and the per-check cases behind it.

A check reports one of its cases (an enum member of a `CheckCase` subclass); the case carries the
status, a message template and the recommendation, so a check's wording lives in one table and the
code that decides only picks the case and supplies the numbers for the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any


class Status(Enum):
    """How far a check lets the user trust an estimate, from best to worst."""

    PASS = "PASS"
    REVIEW = "REVIEW"
    FAIL = "FAIL"

    @staticmethod
    def worst(statuses: Iterable[Status]) -> Status:
        """The worst of `statuses` (PASS when there are none)."""
        order = list(Status)
        return max(statuses, key=order.index, default=Status.PASS)

    @staticmethod
    def worst_of_values(values: Iterable[object]) -> Status | None:
        """The worst status among stored values ("PASS", "review", ...); None when none is a status.
        For tables read back from the warehouse, where cells may be empty or hold other text."""
        found = [Status(str(v).strip().upper()) for v in values
                 if str(v).strip().upper() in Status._value2member_map_]
        return Status.worst(found) if found else None


class CheckCase(Enum):
    """Base of the per-check case enums: each member is (status, message template, recommendation).

    Subclass it with members only; `render(**details)` fills the template. Members of one check
    must have distinct templates (an Enum folds equal values into one member)."""

    def __init__(self, status: Status, template: str, recommendation: str) -> None:
        self.status = status
        self.template = template
        self.recommendation = recommendation

    def render(self, **details: Any) -> str:
        """The message with the check's numbers filled in."""
        return self.template.format(**details)


class CaseResult:
    """Mixin for frozen result dataclasses that carry a `case: CheckCase`: their status and
    recommendation are the case's, so no result restates them."""

    case: CheckCase

    @property
    def status(self) -> Status:
        return self.case.status

    @property
    def recommendation(self) -> str:
        return self.case.recommendation
