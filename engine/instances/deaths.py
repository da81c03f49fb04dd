"""A patient's death: every pathway of theirs ends, and none starts again.

The ``patient_died`` message (from the GP practice, the hospital, or the national register of deaths)
is delivered like any message to the instances listening for it: each bundled diagnosis pathway ends
there, cancelling its timers and called sub-pathways. That alone left two ways for an invitation to
reach a bereaved family (issue 14, point 3):

* an instance not listening at that moment -- suspended by a nurse, stopped by an incident, or a
  pathway that has no such listener -- kept its timers, and woke up when resumed or retried;
* nothing stopped a new pathway being started for the patient afterwards.

So the message also records the death (:class:`PatientDeath`, one row per patient, no clinical
values: the date of death stays in the instances' own data), ends every other instance of the
patient that has not ended (event ``cancelled`` with reason ``patient_died``), and from then on a
start for the patient is refused (:class:`PatientDeceasedError`, 409 ``patient-deceased``). A death
recorded in error (the wrong patient named) is withdrawn with a reason (``carepath death-record
withdraw``): the row keeps who recorded and who withdrew it, and starts are allowed again. Instances
ended by the mistake stay ended (their trails say why); the care team starts what the patient needs.

The message's payload is checked before anything is recorded: only ``date_of_death``, a date not
after today.

A death is a fact about the patient, not an organisation's record: it ends the patient's instances in
every care team and organisation. So a sender with an organisation must have an instance of the patient
in it (checked by engine.instances.messages before anything here runs); one that does not is answered as
for a patient with no instance, and nothing is recorded.

A start that read "no death recorded" just before the record was committed can still commit just
after the sweep: the window is one transaction wide. Sending the message again closes it (it is
idempotent: the record is kept, already-ended instances are left alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import ACTIVE_STATUSES, PathwayInstance, PatientDeath
from engine.db.session import read_only, unit_of_work
from engine.errors import InvalidInputError, NotFoundError, PatientDeceasedError, Problem, TaskDataError
from engine.instances.step import Step, StepRunner
from engine.instances.view import InstanceView, Status, validate_patient_ref
from engine.rules.assessment import is_iso_date

__all__ = [
    "DEATH_MESSAGE",
    "PatientDeathInfo",
    "PatientDeceasedError",
    "check_death_payload",
    "death_of",
    "refuse_deceased",
    "record_death",
    "withdraw_death",
]

DEATH_MESSAGE = "patient_died"
_MAX_REASON = 500


class PatientDeathInfo(dict[str, Any]):
    """A death record as the API and the command line show it (no clinical values)."""


def check_death_payload(payload: Any, today: date) -> None:
    """Check the message before anything is recorded, as the pathways' ``carepath.patient_status``
    operator checks it when it arrives (the same fields and messages).

    Raises:
        TaskDataError: a payload that is not an object, a field other than ``date_of_death``, or a
            date that is not ``YYYY-MM-DD`` or is after today (values never quoted).
    """
    if payload is None:
        return
    if not isinstance(payload, dict):
        raise TaskDataError("the patient status update must be an object", [Problem("expected an object", field="/")])
    problems = [
        Problem("not a field this can set; expected date_of_death", field=f"/{key}")
        for key in sorted(payload)
        if key != "date_of_death"
    ]
    value = payload.get("date_of_death")
    if value is not None:
        if not (isinstance(value, str) and is_iso_date(value)):
            problems.append(Problem("expected a date YYYY-MM-DD", field="/date_of_death"))
        elif value > today.isoformat():
            problems.append(Problem("a date of death cannot be in the future", field="/date_of_death"))
    if problems:
        raise TaskDataError("the patient status update is not valid", problems)


def refuse_deceased(session: Session, patient_refs: Iterable[str]) -> None:
    """Raises: PatientDeceasedError when any of ``patient_refs`` has a death recorded (and not withdrawn)."""
    refs = list(patient_refs)
    found = session.scalar(
        select(PatientDeath.patient_ref)
        .where(PatientDeath.patient_ref.in_(refs), PatientDeath.withdrawn_at.is_(None))
        .limit(1)
    )
    if found is not None:
        raise PatientDeceasedError()


def _info(row: PatientDeath) -> PatientDeathInfo:
    return PatientDeathInfo(
        patient_ref=row.patient_ref,
        recorded_at=row.recorded_at.isoformat(),
        recorded_by=row.recorded_by,
        withdrawn_at=row.withdrawn_at.isoformat() if row.withdrawn_at else None,
        withdrawn_by=row.withdrawn_by,
    )


def death_of(runner: StepRunner, patient_ref: str) -> PatientDeathInfo | None:
    """The patient's death record (withdrawn or not), or None."""
    validate_patient_ref(patient_ref)
    with read_only(runner.sessions) as session:
        row = session.get(PatientDeath, patient_ref)
        return _info(row) if row is not None else None


def record_death(
    runner: StepRunner, actor: str, patient_ref: str, deliver: Callable[[], list[InstanceView]]
) -> list[InstanceView]:
    """Record the patient's death, deliver the message (``deliver``: to the instances listening for
    it), then end every other instance of the patient that has not ended. Returns the instances the
    message reached and those it ended. Sending it again changes nothing already done.

    The caller checks the payload first (:func:`check_death_payload`).
    """
    with unit_of_work(runner.sessions) as session:
        row = session.get(PatientDeath, patient_ref)
        if row is None:
            session.add(PatientDeath(patient_ref=patient_ref, recorded_at=runner.clock.now(), recorded_by=actor))
        elif row.withdrawn_at is not None:  # told again after a withdrawal: the death stands
            row.recorded_at, row.recorded_by = runner.clock.now(), actor
            row.withdrawn_at = row.withdrawn_by = row.withdrawn_reason = None
    reached = deliver()
    with read_only(runner.sessions) as session:
        remaining = list(
            session.scalars(
                select(PathwayInstance.id)
                .where(PathwayInstance.patient_ref == patient_ref, PathwayInstance.status.in_(ACTIVE_STATUSES))
                .order_by(PathwayInstance.created_at)
            )
        )

    def end(step: Step) -> bool:
        if step.instance.status not in ACTIVE_STATUSES:
            return False  # ended meanwhile (the listener ran after all)
        step.workflow.cancel()
        step.workflow_changed = True
        step.instance.status = Status.CANCELLED
        step.record("cancelled", payload={"reason": DEATH_MESSAGE})
        return True

    allowed = (Status.RUNNING, Status.SUSPENDED, Status.ERROR)
    ended = [
        view for instance_id in remaining if (view := runner.run(instance_id, actor, end, allowed=allowed)) is not None
    ]
    return reached + ended


def withdraw_death(runner: StepRunner, patient_ref: str, actor: str, reason: str) -> PatientDeathInfo:
    """Withdraw a death recorded in error, with a reason (kept on the record, never logged).

    Raises:
        InvalidInputError: no reason, or one over 500 characters.
        NotFoundError: no death recorded for the patient (or it is already withdrawn).
    """
    validate_patient_ref(patient_ref)
    if not isinstance(reason, str) or not reason.strip() or len(reason) > _MAX_REASON:
        raise InvalidInputError("a reason is required", [Problem(f"1 to {_MAX_REASON} characters", field="/reason")])
    with unit_of_work(runner.sessions) as session:
        row = session.get(PatientDeath, patient_ref)
        if row is None or row.withdrawn_at is not None:
            raise NotFoundError("no death is recorded for this patient")
        row.withdrawn_at, row.withdrawn_by, row.withdrawn_reason = runner.clock.now(), actor, reason.strip()
        session.flush()
        return _info(row)
