"""Which timers fire during a step, read from SpiffWorkflow's task tree.

:func:`run_due_timers` fires what is due (the worker's step); :class:`TimerWatch` notes the timers
that fire inside any other step (SpiffWorkflow fires a due timer whenever it refreshes waiting
tasks). Both name each firing by its element and due time, for the ``timer_fired`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.util.task import TaskState

from engine.spiff.patches import cycle_occurrence

__all__ = ["FiredTimer", "TimerWatch", "run_due_timers"]

_COMPLETED = TaskState.COMPLETED


@dataclass(frozen=True)
class FiredTimer:
    """A timer that fired: its element and due time; for a timer on the boundary of a task a person
    must complete, that task (it is overdue: the ``task.overdue`` webhook, engine.webhooks)."""

    element: str
    due_at: str | None
    overdue_task: str | None = None
    overdue_element: str | None = None

    def details(self) -> dict[str, str | None]:
        """The ``timer_fired`` event's payload (ids and times only)."""
        found: dict[str, str | None] = {"due_at": self.due_at}
        if self.overdue_task is not None:
            found.update(overdue_task=self.overdue_task, overdue_element=self.overdue_element)
        return found


def run_due_timers(workflow: Any, record: Callable[[FiredTimer], None], max_rounds: int = 50) -> None:
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
    tasks = [t for t in workflow.tasks.values() if t.state == TaskState.READY]
    for subprocess in workflow.subprocesses.values():
        tasks.extend(t for t in subprocess.tasks.values() if t.state == TaskState.READY)
    return tasks


def _fired_timer(task: Any) -> FiredTimer | None:
    """The timer a just-completed task fired, if it is a timer event or an event-based gateway
    whose timer branch was taken (the gateway keeps its branches' timers, LIBRARY_NOTES)."""
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, TimerEventDefinition) and not isinstance(definition, CycleTimerEventDefinition):
        attached = _attached_task(task)
        return FiredTimer(
            task.task_spec.bpmn_id or task.task_spec.name,
            _due(task.internal_data.get("event_value")),
            str(attached.id) if attached is not None else None,
            (attached.task_spec.bpmn_id or attached.task_spec.name) if attached is not None else None,
        )
    if isinstance(definition, MultipleEventDefinition):
        for event in task.internal_data.get("seen_events", []):
            if isinstance(event.event_definition, TimerEventDefinition):
                index = definition.event_definitions.index(event.event_definition)
                branch = task.task_spec.outputs[index]
                return FiredTimer(branch.bpmn_id or branch.name, _due(task.internal_data.get("event_value")))
    return None


def _attached_task(task: Any) -> Any | None:
    """The task a person must complete that a boundary timer is attached to, if it is one: the
    boundary event's sibling under SpiffWorkflow's split that is not itself a boundary event."""
    if not isinstance(task.task_spec, BoundaryEvent) or task.parent is None:
        return None
    for sibling in task.parent.children:
        if not isinstance(sibling.task_spec, BoundaryEvent):
            return sibling if sibling.task_spec.manual else None
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
    Every cycle carries its anchors (state format 2, ``engine.spiff.state_migrations``), so each
    occurrence's due time is known."""
    fired: list[FiredTimer] = []
    for task, before, cycles_before in snapshot.values():
        value = task.internal_data.get("event_value")
        if not isinstance(value, dict) or value.get("next") == before:
            continue
        element = task.task_spec.bpmn_id or task.task_spec.name
        steps = max(cycles_before - int(value["cycles"]), 1)
        last = value["occurrence"]
        fired.extend(FiredTimer(element, cycle_occurrence(value, n).isoformat()) for n in range(last - steps, last))
    return fired
