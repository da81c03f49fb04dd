"""Where a workflow is, element by element: what is done, what is ready, what waits and until when.

For front ends that draw a running instance on its diagram (the web app's patient page). Read from
the restored workflow's task tree only; finished history that compaction removed is not here (the
event trail remembers it, and :mod:`engine.instances.progress` adds it back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

__all__ = ["ElementProgress", "STATES", "element_progress"]

# What a front end shows, strongest first: one element with several tasks (a loop, a multi-instance
# task) shows the strongest.
STATES = ("error", "ready", "active", "waiting", "done")
_RANK = {state: rank for rank, state in enumerate(STATES)}


@dataclass(frozen=True)
class ElementProgress:
    """One diagram element's state in an instance.

    ``state``: ``done`` (completed at least once), ``ready`` (a task people complete now),
    ``active`` (a sub-pathway running), ``waiting`` (a timer or message event, or automatic work
    about to run) or ``error`` (an incident). ``due_at`` is a waiting timer's due time. ``name`` is the
    element's id when the diagram gives it no name (``named`` False: a gateway, a plain join).
    """

    element: str
    process: str
    name: str
    kind: str
    state: str
    due_at: str | None = None
    named: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def element_progress(workflow: BpmnWorkflow) -> list[ElementProgress]:
    """Every diagram element the workflow has reached, with its state, in a stable order."""
    found: dict[tuple[str, str], ElementProgress] = {}
    running = set(workflow.subprocesses)  # every sub-process, nested ones too, by its calling task's id
    for part in (workflow, *workflow.subprocesses.values()):
        for task in part.tasks.values():
            item = _progress(task, running)
            if item is None:
                continue
            key = (item.process, item.element)
            known = found.get(key)
            if (
                known is None
                or _RANK[item.state] < _RANK[known.state]
                or (item.state == known.state and _earlier(item.due_at, known.due_at))
            ):
                found[key] = item
    return sorted(found.values(), key=lambda p: (p.process != workflow.spec.name, p.process, _RANK[p.state], p.element))


def _progress(task: Any, running: set[Any]) -> ElementProgress | None:
    spec = task.task_spec
    if not getattr(spec, "bpmn_id", None):
        return None  # SpiffWorkflow's own start, end and root specs are not on the diagram
    state = _state_of(task, running)
    if state is None:
        return None
    due = _due(task.internal_data.get("event_value")) if state == "waiting" else None
    return ElementProgress(
        element=spec.bpmn_id,
        process=task.workflow.spec.name,
        name=spec.bpmn_name or spec.bpmn_id,
        kind=type(spec).__name__,
        state=state,
        due_at=due,
        named=bool(spec.bpmn_name),
    )


def _state_of(task: Any, running: set[Any]) -> str | None:
    state = task.state
    if state == TaskState.COMPLETED:
        return "done"
    if state == TaskState.ERROR:
        return "error"
    if state == TaskState.READY:
        return "ready" if task.task_spec.manual else "waiting"
    if state & (TaskState.WAITING | TaskState.STARTED):
        # A call activity or embedded sub-process is STARTED while its own tasks run.
        return "active" if task.id in running else "waiting"
    return None  # FUTURE, LIKELY, MAYBE, CANCELLED: not reached


def _due(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("next")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _earlier(a: str | None, b: str | None) -> bool:
    return a is not None and (b is None or a < b)
