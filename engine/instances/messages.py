"""Delivering messages (a warning sign reported, a recurrence confirmed) to waiting instances.

Correlation is by the patient reference or the instance id held by CarePath, never by message
content: a message for one patient can never reach another patient's instance (LIBRARY_NOTES:
without correlation SpiffWorkflow accepted a message for the wrong patient).
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.util.event import BpmnEvent
from sqlalchemy import select

from engine.calendar import latest_today
from engine.care_teams import EVERYWHERE, CareScope
from engine.db.models import PathwayInstance
from engine.db.session import read_only
from engine.errors import InvalidInputError, MessageNotDeliverableError, NotFoundError, Problem
from engine.instances.deaths import DEATH_MESSAGE, check_death_payload, record_death
from engine.instances.step import Step, StepRunner
from engine.instances.view import InstanceView, Status, validate_patient_ref
from engine.spiff import workflows

__all__ = ["send_message"]


def send_message(
    runner: StepRunner,
    name: str,
    actor: str,
    *,
    patient_ref: str | None = None,
    instance_id: str | None = None,
    payload: dict[str, Any] | None = None,
    scope: CareScope = EVERYWHERE,
) -> list[InstanceView]:
    """Deliver a message to the instances of one patient (or one instance) waiting for it, among those the
    sender's ``scope`` reaches (an instance of another team is as if it were not there).

    Correlation is on the patient reference or the instance id, never on content: a message
    for one patient can never reach another patient's instance. Each delivery is its own step.

    ``patient_died`` (:data:`DEATH_MESSAGE`) also records the death and ends every other instance of
    the patient, whichever team or organisation holds it: a death is a fact about the patient, not an
    organisation's record, and no one may go on inviting them (engine.instances.deaths). A sender with an
    organisation must be related to the patient: have an instance of theirs (any status, any team) in its
    organisation. Otherwise nothing is recorded or ended and the answer is the one for a patient unknown
    to the sender (no instances), so a sender can neither end nor probe another organisation's patients.
    It is never "not deliverable"; the instances it reached or ended are returned, those in the sender's
    ``scope`` only.

    Raises:
        InvalidInputError: neither (or both) of patient_ref and instance_id given; a bad
            ``patient_died`` payload (nothing is recorded).
        NotFoundError: ``patient_died`` for an instance id that does not exist (or is out of scope).
        MessageNotDeliverableError: no running instance of that patient is waiting for it.
    """
    if (patient_ref is None) == (instance_id is None):
        raise InvalidInputError(
            "give exactly one of patient_ref and instance_id",
            [Problem("exactly one is required", field="/patient_ref")],
        )
    if patient_ref is not None:
        validate_patient_ref(patient_ref)
    if name == DEATH_MESSAGE:
        check_death_payload(payload, latest_today(runner.clock.now()))
        if patient_ref is None:
            with read_only(runner.sessions) as session:
                patient_ref = session.scalar(
                    select(PathwayInstance.patient_ref).where(PathwayInstance.id == instance_id, scope.condition())
                )
            if patient_ref is None:
                raise NotFoundError("no such instance")
        elif not scope.everywhere and not _related(runner, patient_ref, scope.organisation_wide()):
            return []  # as for a patient with no instance: nothing recorded, nothing ended
        ref = patient_ref
        reached = record_death(runner, actor, ref, lambda: _deliver(runner, name, actor, ref, None, payload))
        return [view for view in reached if scope.covers(view.organisation, view.care_team)]
    delivered = _deliver(runner, name, actor, patient_ref, instance_id, payload, scope)
    if not delivered:
        raise MessageNotDeliverableError(
            f"no running instance is waiting for message {name!r}",
            [Problem("no instance waiting for this message", field="/name")],
        )
    return delivered


def _related(runner: StepRunner, patient_ref: str, scope: CareScope) -> bool:
    """Whether the patient has an instance (any status) in ``scope``."""
    with read_only(runner.sessions) as session:
        found = session.scalar(
            select(PathwayInstance.id).where(PathwayInstance.patient_ref == patient_ref, scope.condition()).limit(1)
        )
    return found is not None


def _deliver(
    runner: StepRunner,
    name: str,
    actor: str,
    patient_ref: str | None,
    instance_id: str | None,
    payload: dict[str, Any] | None,
    scope: CareScope = EVERYWHERE,
) -> list[InstanceView]:
    with read_only(runner.sessions) as session:
        query = select(PathwayInstance.id).where(PathwayInstance.status == Status.RUNNING)
        query = (
            query.where(PathwayInstance.patient_ref == patient_ref)
            if patient_ref is not None
            else query.where(PathwayInstance.id == instance_id)
        )
        if not scope.everywhere:
            query = query.where(scope.condition())
        candidates = list(session.scalars(query.order_by(PathwayInstance.created_at)))
    body = payload or {}

    def deliver(step: Step) -> bool:
        definition = workflows.waiting_messages(step.workflow).get(name)
        if definition is None:
            return False  # not waiting for this message: nothing to save
        step.record("message_received", payload={"message": name, "data_digest": step.digest(body)})

        def run() -> None:
            step.workflow.catch(BpmnEvent(definition, body))
            step.workflow.do_engine_steps()

        step.advance(run)
        return True

    return [
        view
        for candidate in candidates
        if (view := runner.run(candidate, actor, deliver, allowed=(Status.RUNNING,))) is not None
    ]
