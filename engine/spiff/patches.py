"""Every change CarePath makes to SpiffWorkflow's own behaviour, listed in one place.

SpiffWorkflow 3.2 (pinned below 3.3) has no hooks for these, so module attributes are replaced.
Nothing is replaced on import: :func:`install` does it, once per process (it is idempotent), and the
CarePath facade (``engine.app.CarePath``) calls it, so every server, worker, command and test that
runs pathways through the engine has them. Code that drives SpiffWorkflow without the facade
(benchmarks, a few tests) calls :func:`install` itself. :data:`PATCHES` names each one; a test
checks that list against what is installed.

========================  ========================================================================
clock                     the timer module's ``datetime``: ``now()`` asks the clock in effect
                          (:func:`clock_in_effect`), per context, instead of the wall clock
utc-for-naive-dates       the timer module's ``LOCALTZ``: naive ``timeDate`` values are UTC, not the
                          host's zone frozen at import
months-from-start         ``TimerEventDefinition.get_timedelta_from_start``: months clamp to the
                          month's end (``P18M`` from 31 August is the end of February, not 3 March)
months-from-end           ``TimerEventDefinition.get_timedelta_from_end``: the same, counted back
calendar-cycles           ``CycleTimerEventDefinition.cycle_complete``: a cycle's occurrences are
                          counted from its first on the calendar (a monthly cycle no longer drifts)
quiet-loggers             SpiffWorkflow's loggers default to WARNING and drop the task data (patient
                          data) they attach to every record
========================  ========================================================================
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from calendar import monthrange
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition

from engine.calendar import add_months
from engine.clock import Clock

__all__ = ["PATCHES", "clock_in_effect", "cycle_occurrence", "install", "installed", "next_occurrence"]

PATCHES = ("clock", "utc-for-naive-dates", "months-from-start", "months-from-end", "calendar-cycles",
           "quiet-loggers")
SPIFF_LOGGERS = ("spiff.task", "spiff.workflow", "spiff.data")


# --- clock ---------------------------------------------------------------------------------------

_active_clock: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("carepath_clock", default=None)


class ClockedDatetime(datetime):
    """``datetime`` whose ``now()`` asks the clock in effect (timers call ``datetime.now(utc)``)."""

    @classmethod
    def now(cls, tz: Any = None) -> ClockedDatetime:
        clock = _active_clock.get()
        current = clock.now() if clock is not None else datetime.now(UTC)
        current = current.astimezone(tz) if tz is not None else current.astimezone(UTC)
        return cls.fromisoformat(current.isoformat())


@contextlib.contextmanager
def clock_in_effect(clock: Clock) -> Iterator[None]:
    """Make SpiffWorkflow's timers read ``clock`` in this context (thread) while the block runs.

    The module attribute is process-wide, but the clock is per context, so a test's ManualClock never
    leaks into another thread's step.
    """
    token = _active_clock.set(clock)
    try:
        yield
    finally:
        _active_clock.reset(token)


# --- month arithmetic ------------------------------------------------------------------------------


def _split_months(parsed: dict[str, Any]) -> tuple[int, float]:
    months = parsed.pop("years", 0) * 12 + parsed.pop("months", 0)
    whole = int(months)
    return whole, months - whole


def timedelta_from_start(parsed_duration: dict[str, Any], start: datetime | None = None) -> timedelta:
    """Replacement for ``TimerEventDefinition.get_timedelta_from_start`` (same contract: it
    consumes ``years``/``months``/``days`` from the parsed duration and returns a timedelta)."""
    # Read "now" through the timer module's ``datetime`` so the engine's clock applies.
    start = start or timer_module.datetime.now(UTC)
    whole, fraction = _split_months(parsed_duration)
    target = add_months(start, whole)
    if fraction:
        # Fractional months (P1.5M) as SpiffWorkflow does it: a share of the landing month's length.
        target += timedelta(days=fraction * monthrange(target.year, target.month)[1])
    parsed_duration["days"] = parsed_duration.pop("days", 0)
    return (target - start) + timedelta(**parsed_duration)


def timedelta_from_end(parsed_duration: dict[str, Any], end: datetime) -> timedelta:
    """Replacement for ``TimerEventDefinition.get_timedelta_from_end``: the same interval counted
    back from ``end`` (``R/P1M/2026-03-31``), clamped the same way."""
    whole, fraction = _split_months(parsed_duration)
    target = add_months(end, -whole)
    if fraction:
        target -= timedelta(days=fraction * monthrange(target.year, target.month)[1])
    parsed_duration["days"] = parsed_duration.pop("days", 0)
    return (end - target) + timedelta(**parsed_duration)


def cycle_complete(self: CycleTimerEventDefinition, my_task: Any) -> bool:
    """Replacement for ``CycleTimerEventDefinition.cycle_complete``: occurrences on the calendar.

    SpiffWorkflow turns a cycle's period into a fixed number of seconds once, at the first
    occurrence, and adds it again and again: ``R3/2026-01-31T09:00Z/P1M`` fell due on 31 January,
    28 February, then 28 March, 25 April... Each occurrence is now counted from the first one
    (the n-th is the first plus n periods, months clamped to the month's end: 31 January, 28
    February, 31 March). A period in fractional months keeps SpiffWorkflow's fixed period, and so do
    cycles started before calendar cycles (anchored that way when their state is migrated, see
    ``engine.spiff.state_migrations``). Otherwise the same contract: returns whether an occurrence
    is due now, and marks the event fired once the cycles are used up.
    """
    event_value = my_task._get_internal_data("event_value")
    if event_value is None:
        expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(expression)
        event_value = {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds(),
                       **_calendar_anchor(expression, start, duration)}
    ready = False
    if event_value["cycles"] != 0:
        next_event = datetime.fromisoformat(event_value["next"])
        if next_event < timer_module.datetime.now(UTC):
            event_value["next"] = next_occurrence(event_value, next_event).isoformat()
            event_value["cycles"] -= 1
            ready = True
    else:
        my_task.internal_data.pop("event_value", None)
        my_task.internal_data["event_fired"] = True
    my_task._set_internal_data(event_value=event_value)
    return ready


def _calendar_anchor(expression: str, first: datetime, duration: timedelta) -> dict[str, Any]:
    """The anchors of a cycle's occurrences: the first one, and the period in whole months and the rest.

    A period in fractional months (or none: a start and an end) is ``duration``, the fixed number of
    seconds SpiffWorkflow computed at the first occurrence, as it always was for those.
    """
    period = next((part for part in expression.upper().replace("--", "/").split("/") if part.startswith("P")), None)
    if period is not None:
        parsed = TimerEventDefinition.parse_iso_duration(period)
        months = parsed.pop("years", 0) * 12 + parsed.pop("months", 0)
        if months == int(months):
            return _anchor(first.isoformat(), int(months), timedelta(**parsed).total_seconds())
    return _anchor(first.isoformat(), 0, duration.total_seconds())


def _anchor(first: str, period_months: int, period_seconds: float) -> dict[str, Any]:
    return {"first": first, "period_months": period_months, "period_seconds": period_seconds, "occurrence": 0}


def next_occurrence(event_value: dict[str, Any], current: datetime) -> datetime:
    """The occurrence after ``current`` (the one due now), counted on the cycle's anchors.

    Stored states carry the anchors on every started cycle (format 2, ``engine.spiff.state_migrations``).
    A value without them was written by SpiffWorkflow's own ``cycle_complete`` (this patch not
    installed); it is anchored on ``current`` with its fixed period, as the migration anchors one, so
    it continues SpiffWorkflow's arithmetic exactly.
    """
    if "first" not in event_value:
        event_value.update(_anchor(current.isoformat(), 0, event_value["duration"]))
    event_value["occurrence"] += 1
    return cycle_occurrence(event_value, event_value["occurrence"])


def cycle_occurrence(event_value: dict[str, Any], number: int) -> datetime:
    """When occurrence ``number`` (0: the first) of a calendar cycle falls due."""
    first = datetime.fromisoformat(event_value["first"])
    return add_months(first, event_value["period_months"] * number) + number * timedelta(
        seconds=event_value["period_seconds"])


# --- loggers ---------------------------------------------------------------------------------------


class NoPatientData(logging.Filter):
    """Drop the task data SpiffWorkflow attaches to its log records (``extra={'data': ...}``).

    SpiffWorkflow builds each record's extras before the logger checks its level, and while its
    loggers' own level is unset it adds the task's data -- patient data, for any handler that prints
    extras (JSON log formatters do) -- and walks the whole task tree for workflow records.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("data", None)
        record.__dict__.pop("tasks", None)
        return True


def _quiet_loggers() -> None:
    for name in SPIFF_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)  # INFO only marks state changes
        if not any(isinstance(f, NoPatientData) for f in logger.filters):
            logger.addFilter(NoPatientData())


# --- installing ------------------------------------------------------------------------------------

_lock = threading.Lock()


def install() -> None:
    """Install every patch in :data:`PATCHES` (idempotent, thread-safe)."""
    with _lock:
        timer_module.datetime = ClockedDatetime
        timer_module.LOCALTZ = UTC
        TimerEventDefinition.get_timedelta_from_start = staticmethod(timedelta_from_start)
        TimerEventDefinition.get_timedelta_from_end = staticmethod(timedelta_from_end)
        CycleTimerEventDefinition.cycle_complete = cycle_complete
        _quiet_loggers()


def installed() -> dict[str, bool]:
    """Each patch of :data:`PATCHES` -> whether it is in effect now."""
    loggers = [logging.getLogger(name) for name in SPIFF_LOGGERS]
    return {
        "clock": timer_module.datetime is ClockedDatetime,
        "utc-for-naive-dates": timer_module.LOCALTZ is UTC,
        "months-from-start": TimerEventDefinition.__dict__["get_timedelta_from_start"].__func__
        is timedelta_from_start,
        "months-from-end": TimerEventDefinition.__dict__["get_timedelta_from_end"].__func__ is timedelta_from_end,
        "calendar-cycles": CycleTimerEventDefinition.__dict__.get("cycle_complete") is cycle_complete,
        "quiet-loggers": all(any(isinstance(f, NoPatientData) for f in lg.filters) for lg in loggers),
    }
