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
bounded-timers            ``TimeDateEventDefinition.has_fired``, ``DurationTimerEventDefinition.has_fired``
                          (and ``cycle_complete`` above): a timer value outside
                          :func:`timer_value_problem`'s bounds (a repeating period under a minute,
                          repetitions without end, a span over a hundred years, a date outside
                          1900-2199) raises :class:`~engine.errors.WorkflowError` naming the element,
                          which becomes an incident, instead of looping inside a request or
                          overflowing
safe-decisions            ``BusinessRuleTaskMixin._run_hook``: a business rule task asks the step's
                          script engine to evaluate its decision table (``run_decision``: the safe
                          language, every hit policy, recorded) and sets the outputs in the task
                          data; SpiffWorkflow's own DMN engine, which ``eval``s every cell and
                          knows two hit policies, never runs. A script engine without
                          ``run_decision`` makes the task fail with a WorkflowError (an incident)
compact-task-ids          the task module's ``uuid4``: a new task's id is a version-4 UUID made of a
                          random 64-bit prefix (drawn again in each process and after a fork) and a
                          counter, instead of 122 random bits. Ids stay unique (a repeat needs two
                          processes to draw the same prefix), and the hundreds of ids a stored state
                          holds compress to a third (issue 19: the breast pathway's largest stored
                          state 13.1 KB -> 9.3 KB). Ids of tasks already stored are kept as they are.
                          A task id names a task within an instance the caller may already reach; it
                          was never a secret (every access is checked against the caller's scope)
no-idle-walks             ``BpmnWorkflow._do_engine_steps``: SpiffWorkflow 3.2's engine-step round as
                          it is, except that before walking a (sub)workflow's task tree for READY
                          tasks it scans the task tables of that workflow and of the subprocesses
                          deeper than it, and skips the walk when no automatic task there is READY.
                          The walk found nothing then, and changed nothing:
                          the same tasks run in the same order. Each round walks every active
                          subprocess at least once more after its work is done, so most walks
                          find nothing; skipping them took 14 % of the timer worker's CPU per
                          breast instance (issue 19). ``STOCK_ENGINE_ROUND`` is SpiffWorkflow's own,
                          for the benchmarks' SpiffWorkflow-alone baseline
========================  ========================================================================

The timer bounds are also what ``carepath validate`` checks timer values against (one definition).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import os
import secrets
import threading
from calendar import monthrange
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow import task as task_module
from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.util.task import TaskState

from engine.calendar import add_months
from engine.clock import Clock
from engine.errors import Problem, WorkflowError

__all__ = [
    "MAX_CYCLES",
    "MAX_TIMER_SPAN",
    "MIN_CYCLE_PERIOD",
    "PATCHES",
    "STOCK_ENGINE_ROUND",
    "clock_in_effect",
    "cycle_occurrence",
    "install",
    "installed",
    "next_occurrence",
    "timer_value_problem",
]

PATCHES = (
    "clock",
    "utc-for-naive-dates",
    "months-from-start",
    "months-from-end",
    "calendar-cycles",
    "quiet-loggers",
    "bounded-timers",
    "safe-decisions",
    "compact-task-ids",
    "no-idle-walks",
)
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
        _refuse_out_of_bounds(my_task, "cycle", expression)
        cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(expression)
        event_value = {
            "cycles": cycles,
            "next": start.isoformat(),
            "duration": duration.total_seconds(),
            **_calendar_anchor(expression, start, duration),
        }
    elif event_value["cycles"] != 0 and _period_too_short(event_value):
        # Stored before the bounds (or edited): it would fire on every refresh, forever.
        _refuse(my_task, "cycle", f"its period is shorter than {_MIN_CYCLE_TEXT}")
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
        seconds=event_value["period_seconds"]
    )


# --- timer bounds ----------------------------------------------------------------------------------

# A repeating period under a minute fires on every refresh (R/PT0S looped inside a request); nothing
# in a care pathway waits more than a hundred years; dates outside 1900-2199 are typing mistakes
# and, near the calendar's ends, overflow when a period is added.
MIN_CYCLE_PERIOD = timedelta(minutes=1)
MAX_TIMER_SPAN = timedelta(days=100 * 366)
MAX_CYCLES = 1000
_YEARS = (1900, 2199)
_MIN_CYCLE_TEXT = "one minute"


def timer_value_problem(kind: str, value: str) -> str | None:
    """Why a timer's value is refused, or None when it is within bounds.

    ``kind`` is ``"date"``, ``"duration"`` or ``"cycle"``; ``value`` is the ISO-8601 text the timer's
    expression gave (``"P18M"``, ``"2026-06-01T09:00:00Z"``, ``"R12/P1M"``). The reason never quotes
    the value (at run time it may have been computed from patient data).
    """
    try:
        if kind == "duration":
            return _span_problem(_duration_span(value))
        if kind == "date":
            moment = TimerEventDefinition.parse_time_or_duration(value)
            return _date_problem(moment) if isinstance(moment, datetime) else "it is a duration, not a date"
        return _cycle_problem(value)
    except OverflowError:
        return "it lies beyond the calendar (a date or span too large)"
    except Exception:  # noqa: BLE001 - SpiffWorkflow's parsers raise bare Exception, ValueError, KeyError...
        wanted = {
            "date": "an ISO-8601 date",
            "duration": "an ISO-8601 duration",
            "cycle": "an ISO-8601 repeating interval",
        }.get(kind, "an ISO-8601 value")
        return f"it is not {wanted}"


def _duration_span(value: str) -> timedelta:
    """How long a duration lasts (a month counted as the average month)."""
    parsed = TimerEventDefinition.parse_iso_duration(value)
    months = parsed.pop("years", 0) * 12 + parsed.pop("months", 0)
    if months > 12 * 1000:  # timedelta itself would overflow
        return MAX_TIMER_SPAN + timedelta(days=1)
    return timedelta(days=months * 365.25 / 12) + timedelta(**parsed)


def _span_problem(span: timedelta) -> str | None:
    return "it lasts more than a hundred years" if span > MAX_TIMER_SPAN else None


def _date_problem(moment: datetime) -> str | None:
    if not _YEARS[0] <= moment.year <= _YEARS[1]:
        return f"its date is outside the years {_YEARS[0]} to {_YEARS[1]}"
    return None


def _cycle_problem(value: str) -> str | None:
    components = value.upper().replace("--", "/").split("/")
    if not components[0].startswith("R") or len(components) not in (2, 3):
        raise ValueError("not a repeating interval")
    count = components[0][1:]
    if not count:
        return f"it repeats without end: give the number of repetitions, such as R12/P1M (at most {MAX_CYCLES})"
    if not count.isdigit() or int(count) > MAX_CYCLES:
        return f"it repeats more than {MAX_CYCLES} times"
    parts = components[1:]
    for part in parts:
        problem = (
            _span_problem(_duration_span(part))
            if part.startswith("P")
            else _date_problem(TimerEventDefinition.get_datetime(part))
        )
        if problem:
            return problem
    _, _, period = TimerEventDefinition.parse_iso_recurring_interval(value)
    if period < MIN_CYCLE_PERIOD:
        return f"its period is shorter than {_MIN_CYCLE_TEXT}"
    if period * int(count) > MAX_TIMER_SPAN:
        return "its repetitions last more than a hundred years"
    return None


def _period_too_short(event_value: dict[str, Any]) -> bool:
    if event_value.get("period_months"):
        return False
    seconds = event_value.get("period_seconds", event_value.get("duration", 0))
    return bool(seconds < MIN_CYCLE_PERIOD.total_seconds())


def _refuse(my_task: Any, kind: str, reason: str) -> None:
    element = my_task.task_spec.bpmn_id or my_task.task_spec.name
    message = f"timer {kind} refused: {reason}"
    raise WorkflowError(message, [Problem(message, element=element, code="timer-bounds")])


def _refuse_out_of_bounds(my_task: Any, kind: str, value: Any) -> None:
    """Raise WorkflowError (naming the element) for a text value out of bounds; other values are
    left to SpiffWorkflow, which fails on them its own way (an incident too)."""
    if isinstance(value, str) and (reason := timer_value_problem(kind, value)) is not None:
        _refuse(my_task, kind, reason)


def date_has_fired(self: TimeDateEventDefinition, my_task: Any) -> bool:
    """Replacement for ``TimeDateEventDefinition.has_fired``: the date is checked against the bounds
    when the timer is reached; otherwise SpiffWorkflow's own logic."""
    event_value = my_task._get_internal_data("event_value")
    if event_value is None:
        event_value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        _refuse_out_of_bounds(my_task, "date", event_value)
        my_task._set_internal_data(event_value=event_value)
    if TimerEventDefinition.parse_time_or_duration(event_value) < timer_module.datetime.now(UTC):
        my_task._set_internal_data(event_fired=True)
    return bool(my_task._get_internal_data("event_fired", False))


def duration_has_fired(self: DurationTimerEventDefinition, my_task: Any) -> bool:
    """Replacement for ``DurationTimerEventDefinition.has_fired``: the duration is checked against
    the bounds when the timer is reached; otherwise SpiffWorkflow's own logic."""
    event_value = my_task._get_internal_data("event_value")
    if event_value is None:
        expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        _refuse_out_of_bounds(my_task, "duration", expression)
        parsed_duration = TimerEventDefinition.parse_iso_duration(expression)
        now = timer_module.datetime.now(UTC)
        event_value = (now + TimerEventDefinition.get_timedelta_from_start(parsed_duration)).isoformat()
        my_task._set_internal_data(event_value=event_value)
    if TimerEventDefinition.get_datetime(event_value) < timer_module.datetime.now(UTC):
        my_task._set_internal_data(event_fired=True)
    return bool(my_task._get_internal_data("event_fired", False))


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


# --- decision tables ---------------------------------------------------------------------------------


def run_decision_safely(self: BusinessRuleTaskMixin, my_task: Any) -> bool:
    """Replacement for ``BusinessRuleTaskMixin._run_hook`` (module docstring, ``safe-decisions``).

    Raises:
        WorkflowError: the workflow's script engine cannot evaluate decision tables safely; and
            whatever the script engine's ``run_decision`` raises.
    """
    run = getattr(my_task.workflow.script_engine, "run_decision", None)
    if run is None:
        message = "decision tables run only in CarePath's steps (no safe decision evaluator)"
        raise WorkflowError(message, [Problem(message, element=my_task.task_spec.bpmn_id)])
    my_task.data.update(run(my_task))
    return bool(super(BusinessRuleTaskMixin, self)._run_hook(my_task))


# --- compact-task-ids ----------------------------------------------------------------------------


class CompactTaskIds:
    """Task ids as a random 64-bit prefix of this process and a counter (see the module's table)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefix = 0
        self._counter = itertools.count()
        self.reseed()

    def reseed(self) -> None:
        """A new prefix and counter: at start and in a forked child (whose parent goes on with its own)."""
        with self._lock:
            self._prefix = secrets.randbits(64)
            self._counter = itertools.count()

    def __call__(self) -> UUID:
        with self._lock:
            number = next(self._counter) & 0xFFFF_FFFF_FFFF_FFFF
            if number == 0xFFFF_FFFF_FFFF_FFFF:
                self._prefix, self._counter = secrets.randbits(64), itertools.count()
            return UUID(int=(self._prefix << 64) | number, version=4)


compact_task_id = CompactTaskIds()
os.register_at_fork(after_in_child=compact_task_id.reseed)


# --- no-idle-walks ----------------------------------------------------------------------------------

STOCK_ENGINE_ROUND = BpmnWorkflow._do_engine_steps
_READY = TaskState.READY


def _automatic_ready(workflow: Any) -> bool:
    """Whether a task the walk of ``workflow`` visits may be READY and not manual.

    The walk (``get_tasks(state=READY)``) visits ``workflow``'s own tree and descends into the trees of
    the subprocesses beneath it. The scan reads the task tables (``Workflow.tasks``) of ``workflow``
    and of every subprocess deeper than it: those beneath it among them. A task table holds every
    task of its tree: SpiffWorkflow adds a task when it is made (``Task.__init__``) and removes it when
    it leaves the tree (``_remove_task``). So when the scan finds none, the walk would find none; when
    it finds one, the walk runs as SpiffWorkflow's does.
    """
    depth = workflow.depth
    parts = [workflow, *(sp for sp in workflow.top_workflow.subprocesses.values() if sp.depth > depth)]
    return any(task.state == _READY and not task.task_spec.manual for part in parts for task in part.tasks.values())


def engine_round(self: BpmnWorkflow, will_complete_task: Any = None, did_complete_task: Any = None) -> bool:
    """SpiffWorkflow 3.2's ``BpmnWorkflow._do_engine_steps``, with :func:`_automatic_ready` before
    each walk (tests/test_patches.py holds the rest to SpiffWorkflow's own text)."""

    def update_workflow(wf: Any) -> int:
        if not _automatic_ready(wf):
            return 0  # the walk below would find nothing to run
        count = 0
        for task in wf.get_tasks(state=TaskState.READY):
            if not task.task_spec.manual:
                if will_complete_task is not None:
                    will_complete_task(task)
                task.run()
                count += 1
                if did_complete_task is not None:
                    did_complete_task(task)
        return count

    active_subprocesses = self.get_active_subprocesses()
    for subprocess in sorted(active_subprocesses, key=lambda v: v.depth, reverse=True):
        count = None
        while count is None or count > 0:
            count = update_workflow(subprocess)
        if subprocess.parent_task_id is not None:
            task = self.get_task_from_id(subprocess.parent_task_id)
            task.task_spec._update(task)

    count = update_workflow(self)
    return count > 0 or len(self.get_active_subprocesses()) > len(active_subprocesses)


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
        TimeDateEventDefinition.has_fired = date_has_fired
        DurationTimerEventDefinition.has_fired = duration_has_fired
        BusinessRuleTaskMixin._run_hook = run_decision_safely
        task_module.uuid4 = compact_task_id
        BpmnWorkflow._do_engine_steps = engine_round
        _quiet_loggers()


def installed() -> dict[str, bool]:
    """Each patch of :data:`PATCHES` -> whether it is in effect now."""
    loggers = [logging.getLogger(name) for name in SPIFF_LOGGERS]
    return {
        "clock": timer_module.datetime is ClockedDatetime,
        "utc-for-naive-dates": timer_module.LOCALTZ is UTC,
        "months-from-start": TimerEventDefinition.__dict__["get_timedelta_from_start"].__func__ is timedelta_from_start,
        "months-from-end": TimerEventDefinition.__dict__["get_timedelta_from_end"].__func__ is timedelta_from_end,
        "calendar-cycles": CycleTimerEventDefinition.__dict__.get("cycle_complete") is cycle_complete,
        "bounded-timers": TimeDateEventDefinition.__dict__.get("has_fired") is date_has_fired
        and DurationTimerEventDefinition.__dict__.get("has_fired") is duration_has_fired,
        "safe-decisions": BusinessRuleTaskMixin.__dict__.get("_run_hook") is run_decision_safely,
        "compact-task-ids": task_module.uuid4 is compact_task_id,
        "no-idle-walks": BpmnWorkflow.__dict__["_do_engine_steps"] is engine_round,
        "quiet-loggers": all(any(isinstance(f, NoPatientData) for f in lg.filters) for lg in loggers),
    }
