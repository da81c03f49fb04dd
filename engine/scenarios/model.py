"""What a scenario file says, once read: a synthetic patient's start data, steps and expectations.

Every step keeps where it was written (:class:`~engine.rules.model.Loc`), so a failure names the
file and line of the step that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.rules.model import Loc

__all__ = ["CarePlanExpectation", "Complete", "Expect", "ReadyExpectation", "Scenario", "ScenarioStep", "Send", "Wait"]


@dataclass(frozen=True)
class Complete:
    """Complete the ready task ``task`` (an element id) with ``data``, as ``actor``.

    ``decisions``: care plan decisions by item code, by kind (``referral``, ``intervention``,
    ``information``) or ``all``, turned into the form's ``decisions`` (item id -> decision) for the
    items proposed when the step runs, and the items named by code whatever their status.
    """

    loc: Loc
    task: str
    data: dict[str, Any]
    actor: str
    process: str | None = None
    decisions: dict[str, str] | None = None


@dataclass(frozen=True)
class Send:
    """Deliver the message ``message`` to the scenario's patient."""

    loc: Loc
    message: str
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class Wait:
    """Move the clock by ``delta`` or to ``until``; timers fire on the way, as the worker fires them."""

    loc: Loc
    text: str
    delta: relativedelta | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ReadyExpectation:
    task: str
    process: str | None = None
    lane: str | None = None

    def text(self) -> str:
        where = f" in {self.process}" if self.process else ""
        lane = f" (lane {self.lane!r})" if self.lane else ""
        return f"{self.task}{where}{lane}"


@dataclass(frozen=True)
class CarePlanExpectation:
    code: str
    kind: str | None = None
    urgency: str | None = None
    status: str | None = None

    def matches(self, item: dict[str, Any]) -> bool:
        return item["code"] == self.code and all(
            expected is None or item[key] == expected
            for key, expected in (("kind", self.kind), ("urgency", self.urgency), ("status", self.status))
        )

    def text(self) -> str:
        details = [
            f"{key} {value}"
            for key, value in (("kind", self.kind), ("urgency", self.urgency), ("status", self.status))
            if value is not None
        ]
        return self.code + (f" ({', '.join(details)})" if details else "")


@dataclass(frozen=True)
class Expect:
    """What must hold at this point; only what is given is checked."""

    loc: Loc
    ready: tuple[ReadyExpectation, ...] = ()  # at least these tasks are ready
    ready_only: tuple[str, ...] | None = None  # exactly these tasks (element ids) are ready
    not_ready: tuple[str, ...] = ()
    timers: dict[str, tuple[str, Loc]] = field(default_factory=dict)  # element -> due date or date-time
    care_plan: tuple[CarePlanExpectation, ...] = ()
    not_in_care_plan: tuple[str, ...] = ()
    status: str | None = None


ScenarioStep = Complete | Send | Wait | Expect


@dataclass(frozen=True)
class Scenario:
    name: str
    loc: Loc
    pathway: str
    patient: str
    start: datetime
    data: dict[str, Any]
    steps: tuple[ScenarioStep, ...]
