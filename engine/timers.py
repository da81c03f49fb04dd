"""Timers: calendar arithmetic that clamps to the month's end, and firing due timers from a worker.

Month arithmetic
    SpiffWorkflow turns ``P18M`` into a number of days by adding up the lengths of the months
    after the start, so a month added to 31 January overflows into March and ``P18M`` from
    2024-08-31 lands on 2026-03-03 (LIBRARY_NOTES). Clinical intervals mean "the same day N months
    later, or the month's last day when that month is shorter" (ISO 8601 / ``dateutil`` /
    Java ``plusMonths`` semantics): ``P18M`` from 31 August lands on the last day of February.
    SpiffWorkflow has no hook for this, so the two static methods that turn a parsed duration
    into a ``timedelta`` are replaced on ``TimerEventDefinition`` — one place, installed when this
    module is imported (``engine.runtime`` imports it, so it is in effect wherever workflows run:
    server, worker, command line, tests). Every timer kind goes through them: durations, cycles
    (``R3/P1M``) and intervals anchored at a start or an end date. The arithmetic is done in UTC on
    aware datetimes only, so the host's time zone never changes a due date. A cycle's occurrences
    are counted from its first one (``_cycle_complete``): SpiffWorkflow turned the period into fixed
    seconds once, so a monthly cycle drifted (31 January, 28 February, 28 March, 25 April).

Firing due timers
    Each instance carries ``next_due_at`` (indexed with its status). :func:`fire_due_timers` picks
    due running instances one at a time, each in its own unit of work, and commits per instance, so
    a worker killed at any moment loses nothing: an uncommitted instance is still due and the next
    run picks it up. On PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP LOCKED``: several
    workers share the due instances and never take the same one. SQLite has no row locks; there the
    database's single writer serialises workers, and the instance's revision check (the same
    optimistic lock every change uses) makes a second worker that read the same instance lose
    cleanly (nothing of its work is written) instead of firing a timer twice.
"""

from __future__ import annotations

import logging
import time
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.util.task import TaskState

if TYPE_CHECKING:
    from .service import PathwayService

__all__ = ["add_months", "fire_due_timers", "install_month_clamping", "run_worker"]

logger = logging.getLogger(__name__)


# --- calendar arithmetic ---------------------------------------------------------------------------


def add_months(when: datetime, months: int) -> datetime:
    """``when`` moved by whole months (may be negative), clamped to the last day of the target month."""
    index = when.year * 12 + (when.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return when.replace(year=year, month=month, day=min(when.day, monthrange(year, month)[1]))


def _split_months(parsed: dict[str, Any]) -> tuple[int, float]:
    months = parsed.pop("years", 0) * 12 + parsed.pop("months", 0)
    whole = int(months)
    return whole, months - whole


def _timedelta_from_start(parsed_duration: dict[str, Any], start: datetime | None = None) -> timedelta:
    """Replacement for ``TimerEventDefinition.get_timedelta_from_start`` (same contract: it
    consumes ``years``/``months``/``days`` from the parsed duration and returns a timedelta)."""
    # Read "now" through the timer module's ``datetime`` so the engine's clock hook applies.
    start = start or _timer_module.datetime.now(UTC)
    whole, fraction = _split_months(parsed_duration)
    target = add_months(start, whole)
    if fraction:
        # Fractional months (P1.5M) as SpiffWorkflow does it: a share of the landing month's length.
        target += timedelta(days=fraction * monthrange(target.year, target.month)[1])
    parsed_duration["days"] = parsed_duration.pop("days", 0)
    return (target - start) + timedelta(**parsed_duration)


def _timedelta_from_end(parsed_duration: dict[str, Any], end: datetime) -> timedelta:
    """Replacement for ``TimerEventDefinition.get_timedelta_from_end``: the same interval counted
    back from ``end`` (``R/P1M/2026-03-31``), clamped the same way."""
    whole, fraction = _split_months(parsed_duration)
    target = add_months(end, -whole)
    if fraction:
        target -= timedelta(days=fraction * monthrange(target.year, target.month)[1])
    parsed_duration["days"] = parsed_duration.pop("days", 0)
    return (end - target) + timedelta(**parsed_duration)


def _cycle_complete(self: CycleTimerEventDefinition, my_task: Any) -> bool:
    """Replacement for ``CycleTimerEventDefinition.cycle_complete``: occurrences on the calendar.

    SpiffWorkflow turns a cycle's period into a fixed number of seconds once, at the first
    occurrence, and adds it again and again: ``R3/2026-01-31T09:00Z/P1M`` fell due on 31 January,
    28 February, then 28 March, 25 April... Each occurrence is now counted from the first one
    (the n-th is the first plus n periods, months clamped to the month's end: 31 January, 28
    February, 31 March). States saved before this keep SpiffWorkflow's arithmetic. Otherwise the
    same contract: returns whether an occurrence is due now, and marks the event fired once the
    cycles are used up.
    """
    event_value = my_task._get_internal_data("event_value")
    if event_value is None:
        expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(expression)
        event_value = {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds(),
                       **_calendar_anchor(expression, start)}
    ready = False
    if event_value["cycles"] != 0:
        next_event = datetime.fromisoformat(event_value["next"])
        if next_event < _timer_module.datetime.now(UTC):
            event_value["next"] = _following(event_value, next_event).isoformat()
            event_value["cycles"] -= 1
            ready = True
    else:
        my_task.internal_data.pop("event_value", None)
        my_task.internal_data["event_fired"] = True
    my_task._set_internal_data(event_value=event_value)
    return ready


def _calendar_anchor(expression: str, first: datetime) -> dict[str, Any]:
    """The first occurrence and the period in whole months and the rest, when the period has no
    fractional months (those keep SpiffWorkflow's arithmetic)."""
    period = next((part for part in expression.upper().replace("--", "/").split("/") if part.startswith("P")), None)
    if period is None:
        return {}
    parsed = TimerEventDefinition.parse_iso_duration(period)
    months = parsed.pop("years", 0) * 12 + parsed.pop("months", 0)
    if months != int(months):
        return {}
    rest = timedelta(**parsed).total_seconds()
    return {"first": first.isoformat(), "period_months": int(months), "period_seconds": rest, "occurrence": 0}


def _following(event_value: dict[str, Any], current: datetime) -> datetime:
    if "first" not in event_value:
        return current + timedelta(seconds=event_value["duration"])
    event_value["occurrence"] += 1
    return _occurrence(event_value, event_value["occurrence"])


def _occurrence(event_value: dict[str, Any], number: int) -> datetime:
    """When occurrence ``number`` (0: the first) of a calendar cycle falls due."""
    first = datetime.fromisoformat(event_value["first"])
    return add_months(first, event_value["period_months"] * number) + number * timedelta(
        seconds=event_value["period_seconds"])


def install_month_clamping() -> None:
    """Make every SpiffWorkflow timer use clamped month arithmetic (idempotent)."""
    TimerEventDefinition.get_timedelta_from_start = staticmethod(_timedelta_from_start)
    TimerEventDefinition.get_timedelta_from_end = staticmethod(_timedelta_from_end)
    CycleTimerEventDefinition.cycle_complete = _cycle_complete


install_month_clamping()


# --- firing due timers -----------------------------------------------------------------------------


_COMPLETED = TaskState.COMPLETED


@dataclass(frozen=True)
class FiredTimer:
    element: str
    due_at: str | None


def fire_due_timers(service: PathwayService, now: datetime | None = None, limit: int = 100,
                    worker_id: str = "worker") -> int:
    """Fire the due timers of up to ``limit`` running instances whose ``next_due_at <= now``.

    ``now`` (default: the service's clock) chooses which instances are due; the timers themselves
    fire by the service's clock, as every step does. Each instance is one unit of work, committed
    on its own: a ``timer_fired`` event per timer element that fired, the new state and the new
    ``next_due_at``. An instance another worker or a user changed meanwhile is skipped (it stays due
    if it still is). A step that fails inside the diagram becomes an incident, as for any step.

    Returns the number of instances advanced (committed).
    """
    from .errors import StaleVersionError

    now = now or service.clock.now()
    # Instances not to pick again in this call: lost to a concurrent change, or still due after
    # their step (a timer that cannot fire yet). Advanced instances are no longer due by themselves.
    passed: set[str] = set()
    advanced = 0
    while advanced + len(passed) < limit:
        picked: list[str] = []
        try:
            still_due = _fire_next(service, now, worker_id, passed, picked)
        except StaleVersionError:
            passed.update(picked)  # someone else changed it first; our work was rolled back
            continue
        if not picked:
            break
        advanced += 1
        if still_due:
            passed.update(picked)
    return advanced


def _fire_next(service: PathwayService, now: datetime, worker_id: str, passed: set[str], picked: list[str]) -> bool:
    """Advance the most overdue instance not in ``passed``; returns whether it is still due."""
    from sqlalchemy import select

    from .db.models import PathwayInstance
    from .db.session import unit_of_work
    from .instance_store import load_instance, save_instance

    with service._conflicts_mapped(), unit_of_work(service.sessions) as session:
        # Only the id, in (status, next_due_at) index order, so the database stops at the first row
        # it can lock. PostgreSQL: lock it and let other workers skip it. SQLite ignores the lock.
        query = (select(PathwayInstance.id).where(PathwayInstance.status == "running",
                                                  PathwayInstance.next_due_at <= now)
                 .order_by(PathwayInstance.next_due_at).limit(1).with_for_update(skip_locked=True))
        if passed:
            query = query.where(PathwayInstance.id.not_in(passed))
        instance_id = session.scalars(query).first()
        if instance_id is None:
            return False
        instance = load_instance(session, instance_id)
        picked.append(instance.id)
        context = service._context(session, instance, f"timer-worker:{worker_id}")
        workflow = service._restore(session, instance, context)

        def record(timer: FiredTimer) -> None:
            # _advance appends the step's events after it runs, before a "completed" event.
            context.events.append(("timer_fired", timer.element, {"due_at": timer.due_at, "worker": worker_id}))

        service._advance(context, workflow, lambda: _run_due_timers(workflow, record), watch_timers=False)
        save_instance(session, instance)
        return instance.status == "running" and instance.next_due_at is not None and instance.next_due_at <= now


def _run_due_timers(workflow: Any, record: Callable[[FiredTimer], None], max_rounds: int = 50) -> None:
    """Fire what is due and run the automatic work that follows, noting each timer that fired.

    ``do_engine_steps`` ends with a timer refresh that may make further timers READY without
    running them, so the steps are repeated until nothing automatic is left.
    """
    cycles = _cycle_snapshot(workflow)

    def note(task: Any) -> None:
        timer = _fired_timer(task)
        if timer is not None:
            record(timer)

    workflow.refresh_timers()
    for _ in range(max_rounds):
        workflow.do_engine_steps(did_complete_task=note)
        if not any(not t.task_spec.manual for t in _ready_tasks(workflow)):
            break
    for timer in _cycles_fired(cycles):
        record(timer)


class TimerWatch:
    """The timers that fire during a step that is not the worker's.

    SpiffWorkflow fires a due timer whenever it refreshes waiting tasks, so a clinician completing
    a task on one branch (or a message arriving) also fires a timer that came due on another
    branch before the worker got to it. That firing needs its ``timer_fired`` event as much as the
    worker's. Made before the step runs; :meth:`fired` afterwards names the timer tasks completed
    in between and the cycle timers that moved on.
    """

    def __init__(self, workflow: Any) -> None:
        self.workflow = workflow
        self.done_before = {id(task) for task in _all_tasks(workflow) if task.state == _COMPLETED}
        self.cycles = _cycle_snapshot(workflow)

    def fired(self) -> list[FiredTimer]:
        found = []
        for task in _all_tasks(self.workflow):
            if task.state == _COMPLETED and id(task) not in self.done_before:
                timer = _fired_timer(task)
                if timer is not None:
                    found.append(timer)
        return found + _cycles_fired(self.cycles)


def _all_tasks(workflow: Any) -> list[Any]:
    return [task for part in (workflow, *workflow.subprocesses.values()) for task in part.tasks.values()]


def _ready_tasks(workflow: Any) -> list[Any]:
    from SpiffWorkflow.util.task import TaskState

    tasks = [t for t in workflow.tasks.values() if t.state == TaskState.READY]
    for subprocess in workflow.subprocesses.values():
        tasks.extend(t for t in subprocess.tasks.values() if t.state == TaskState.READY)
    return tasks


def _fired_timer(task: Any) -> FiredTimer | None:
    """The timer a just-completed task fired, if it is a timer event or an event-based gateway
    whose timer branch was taken (the gateway keeps its branches' timers, LIBRARY_NOTES)."""
    from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition

    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, TimerEventDefinition) and not isinstance(definition, CycleTimerEventDefinition):
        return FiredTimer(task.task_spec.bpmn_id or task.task_spec.name, _due(task.internal_data.get("event_value")))
    if isinstance(definition, MultipleEventDefinition):
        for event in task.internal_data.get("seen_events", []):
            if isinstance(event.event_definition, TimerEventDefinition):
                index = definition.event_definitions.index(event.event_definition)
                branch = task.task_spec.outputs[index]
                return FiredTimer(branch.bpmn_id or branch.name, _due(task.internal_data.get("event_value")))
    return None


def _due(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("next")
    return value if isinstance(value, str) else None


def _cycle_snapshot(workflow: Any) -> dict[Any, tuple[Any, str, int]]:
    snapshot = {}
    for task in workflow.event_manager.tasks.values():
        value = task.internal_data.get("event_value")
        if isinstance(task.task_spec.event_definition, CycleTimerEventDefinition) and isinstance(value, dict):
            snapshot[task.id] = (task, value["next"], int(value["cycles"]))
    return snapshot


def _cycles_fired(snapshot: dict[Any, tuple[Any, str, int]]) -> list[FiredTimer]:
    """Cycle timers stay WAITING and spawn a branch per occurrence; each occurrence takes one off
    the cycle's count (an unbounded ``R/`` cycle counts down from -1), so the difference counts them.
    Calendar cycles know each occurrence's due time; older states only the first one's."""
    fired: list[FiredTimer] = []
    for task, before, cycles_before in snapshot.values():
        value = task.internal_data.get("event_value")
        if not isinstance(value, dict) or value.get("next") == before:
            continue
        element = task.task_spec.bpmn_id or task.task_spec.name
        steps = max(cycles_before - int(value["cycles"]), 1)
        if "first" in value:
            last = value["occurrence"]
            fired.extend(FiredTimer(element, _occurrence(value, n).isoformat()) for n in range(last - steps, last))
        else:
            fired.extend(FiredTimer(element, before if i == 0 else None) for i in range(steps))
    return fired


# --- the worker loop -------------------------------------------------------------------------------


def run_worker(service: PathwayService, *, worker_id: str, batch: int = 100, interval: float = 5.0,
               once: bool = False, should_stop: Callable[[], bool] = lambda: False,
               report: Callable[[int], None] | None = None,
               housekeeping: Callable[[], object] | None = None, housekeeping_seconds: float = 600.0) -> int:
    """Fire due timers until stopped; with ``once``, until nothing is due. Returns instances advanced.

    ``housekeeping`` (e.g. purging expired idempotency records) runs when the worker starts and
    then at most every ``housekeeping_seconds``, between batches.
    """
    total = 0
    next_housekeeping = time.monotonic()
    while not should_stop():
        if housekeeping is not None and time.monotonic() >= next_housekeeping:
            housekeeping()
            next_housekeeping = time.monotonic() + housekeeping_seconds
        advanced = fire_due_timers(service, limit=batch, worker_id=worker_id)
        total += advanced
        if advanced and report is not None:
            report(advanced)
        if advanced == batch:
            continue  # more may be due right now
        if once:
            break
        time.sleep(interval)
    return total
