"""An instance's progress on its diagrams, for front ends that draw it (the web app's patient page).

What the restored workflow says (:func:`engine.spiff.progress.element_progress`: done, ready,
active, waiting with each timer's due time, error), completed by the event trail for elements whose
finished history compaction removed from the state, and the messages the instance waits for now (what
a clinician may record on the patient page: a recurrence, a death). Read in one read-only unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine.db.models import InstanceEvent
from engine.db.session import read_only
from engine.instances.service import PathwayService
from engine.instances.store import load_instance
from engine.instances.view import Status
from engine.spiff.progress import ElementProgress, element_progress
from engine.spiff.workflows import waiting_messages

__all__ = ["InstanceProgress", "instance_progress"]

# Events that name an element the instance has passed.
_PASSED = (
    "task_completed",
    "timer_fired",
    "message_received",
    "rules_evaluated",
    "care_plan_updated",
    "decision_evaluated",
    "reassessment_started",
)


@dataclass(frozen=True)
class InstanceProgress:
    instance_id: str
    pathway_id: str
    pathway_version: str
    status: str
    elements: list[ElementProgress]
    # The messages a running instance waits for now, by name, sorted; none once it has ended or stopped.
    messages: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "elements": [e.as_dict() for e in self.elements], "messages": list(self.messages)}


def instance_progress(service: PathwayService, instance_id: str) -> InstanceProgress:
    """Every element the instance has reached, with its state.

    Elements known only from the event trail are ``done`` and carry no process name (an event
    names its element, not the diagram it is on); their names are the diagrams' where every diagram
    of the version that has the element names it alike.

    Raises: NotFoundError.
    """
    with read_only(service.sessions) as session:
        instance = load_instance(session, instance_id)
        workflow = service.steps.restore(session, instance)
        elements = element_progress(workflow)
        messages = tuple(sorted(waiting_messages(workflow))) if instance.status == Status.RUNNING else ()
        names = _element_names(workflow)
        passed: set[str] = {
            name
            for name in session.scalars(
                select(InstanceEvent.element)
                .where(
                    InstanceEvent.instance_id == instance_id,
                    InstanceEvent.type.in_(_PASSED),
                    InstanceEvent.element.is_not(None),
                )
                .distinct()
            )
            if name
        }
    service.steps.remember(instance, workflow)
    known = {e.element for e in elements}
    elements += [
        ElementProgress(
            element=element,
            process="",
            name=names.get(element) or element,
            kind="",
            state="done",
            named=element in names,
        )
        for element in sorted(passed - known)
    ]
    return InstanceProgress(
        instance.id, instance.pathway_id, instance.pathway_version, instance.status, elements, messages
    )


def _element_names(workflow: Any) -> dict[str, str]:
    """Each element's name in the version's diagrams (the pathway's and its sub-pathways'), by its id; an
    id that two diagrams name differently, or that none names, is left out."""
    found: dict[str, set[str]] = {}
    for spec in (workflow.spec, *workflow.subprocess_specs.values()):
        for task_spec in spec.task_specs.values():
            element = getattr(task_spec, "bpmn_id", None)
            if element:
                found.setdefault(element, set()).add(getattr(task_spec, "bpmn_name", None) or "")
    return {element: next(iter(named)) for element, named in found.items() if len(named) == 1 and "" not in named}
