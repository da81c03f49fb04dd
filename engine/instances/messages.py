"""Delivering messages (a warning sign reported, a recurrence confirmed) to waiting instances.

Correlation is by the patient reference or the instance id held by CarePath, never by message
content: a message for one patient can never reach another patient's instance (LIBRARY_NOTES:
without correlation SpiffWorkflow accepted a message for the wrong patient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.audit import append_event, data_digest
from engine.db.models import PathwayInstance
from engine.db.session import unit_of_work
from engine.errors import InvalidInputError, MessageNotDeliverableError, Problem
from engine.instances.store import save_instance
from engine.instances.view import RUNNING, InstanceView, validate_patient_ref
from engine.spiff import workflows

if TYPE_CHECKING:
    from engine.instances.service import PathwayService

__all__ = ["send_message"]



def send_message(service: PathwayService, name: str, actor: str, *, patient_ref: str | None = None,
                 instance_id: str | None = None, payload: dict[str, Any] | None = None) -> list[InstanceView]:
    """Deliver a message to the instances of one patient (or one instance) waiting for it.

    Correlation is on the patient reference or the instance id, never on content: a message
    for one patient can never reach another patient's instance.

    Raises:
        InvalidInputError: neither (or both) of patient_ref and instance_id given.
        MessageNotDeliverableError: no running instance of that patient is waiting for it.
    """
    if (patient_ref is None) == (instance_id is None):
        raise InvalidInputError("give exactly one of patient_ref and instance_id",
                                [Problem("exactly one is required", field="/patient_ref")])
    if patient_ref is not None:
        validate_patient_ref(patient_ref)
    with unit_of_work(service.sessions) as session:
        query = select(PathwayInstance.id).where(PathwayInstance.status == RUNNING)
        query = (query.where(PathwayInstance.patient_ref == patient_ref) if patient_ref is not None
                 else query.where(PathwayInstance.id == instance_id))
        candidates = list(session.scalars(query.order_by(PathwayInstance.created_at)))
    delivered = []
    for candidate in candidates:
        view = _deliver(service, candidate, name, actor, payload or {})
        if view is not None:
            delivered.append(view)
    if not delivered:
        raise MessageNotDeliverableError(f"no running instance is waiting for message {name!r}",
                                         [Problem("no instance waiting for this message", field="/name")])
    return delivered


def _deliver(service: PathwayService, instance_id: str, name: str, actor: str,
             payload: dict[str, Any]) -> InstanceView | None:
    from SpiffWorkflow.bpmn.util.event import BpmnEvent

    with service._conflicts_mapped(), unit_of_work(service.sessions) as session:
        instance = service._instance(session, instance_id)
        workflow = service._restore(session, instance)
        definition = workflows.waiting_messages(workflow).get(name)
        if definition is None:
            return None
        context = service._context(session, instance, actor)
        workflow.script_engine = service._script_engine(context)
        append_event(session, instance, "message_received", at=service.clock.now(), actor=actor,
                     pathway_version=context.pathway_version, payload={"message": name,
                                                                       "data_digest": data_digest(payload)})

        def run() -> None:
            workflow.catch(BpmnEvent(definition, payload))
            workflow.do_engine_steps()

        service._advance(context, workflow, run)
        save_instance(session, instance)  # bumps the revision the view reports
        return service._view(instance, workflow)
