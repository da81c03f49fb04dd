"""Firing due timers from a worker, and noting the timers that fire inside other steps.

Each instance carries ``next_due_at`` (indexed with its status). :func:`fire_due_timers` picks due
running instances one at a time, each in its own unit of work, and commits per instance, so a worker
killed at any moment loses nothing: an uncommitted instance is still due and the next run picks it
up. On PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP LOCKED``: several workers share the due
instances and never take the same one. SQLite has no row locks; there the database's single writer
serialises workers, and the instance's revision check (the same optimistic lock every change uses)
makes a second worker that read the same instance lose cleanly (nothing of its work is written)
instead of firing a timer twice. The calendar arithmetic timers use is in ``engine.spiff.patches``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.util.task import TaskState

from engine.spiff.patches import cycle_occurrence

if TYPE_CHECKING:
    from engine.instances.service import PathwayService

__all__ = ["FiredTimer", "TimerWatch", "fire_due_timers"]


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
    from engine.errors import StaleVersionError

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

    from engine.db.models import PathwayInstance
    from engine.db.session import unit_of_work
    from engine.instances.store import load_instance, save_instance

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
            fired.extend(FiredTimer(element, cycle_occurrence(value, n).isoformat()) for n in range(last - steps, last))
        else:
            fired.extend(FiredTimer(element, before if i == 0 else None) for i in range(steps))
    return fired


