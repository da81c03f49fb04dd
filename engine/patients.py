"""Patients signed in to their own records (issue 18 point 2; the web app's patient page, issue 16 point 6).

Owns:

* patient identities: an OpenID Connect identity (``issuer``, ``subject``) linked to the patient
  reference whose records the person may read (:func:`link_identity`, :func:`unlink_identity`,
  :func:`list_identities`, :func:`linked_patient`). ``carepath patients link`` and
  ``POST /v1/patient-identities`` call these; :class:`engine.identity.Provider` looks a signed-in
  subject up with :func:`linked_patient`;
* which ready tasks are the patient's own forms (:data:`PATIENT_FORMS`: the needs checklist, feedback,
  the quality of life survey) -- a patient sees and completes those and no other task;
* the one check that scopes a patient to their own records (:func:`require_own`). It is small and
  separate from the care-team scoping of staff on purpose: both read alike and merge apart.

Another patient's instance is *not found* (the same error, with the same words, as an instance that does
not exist), never *forbidden*: a patient learns nothing of whether it exists.

Linking is scoped to the linker's organisation (:class:`engine.care_teams.CareScope`): a token with an
organisation links, lists and unlinks only patients that have an instance (any status, any team) in it --
a link opens the patient's records to the person, so it is a reach into them. Any other patient is *not
found*, the same answer as for a patient unknown to the organisation. A token without an organisation, and
``carepath patients link``, reach every patient.

May import: ``access`` (the principal), ``care_teams``, ``db``, ``instances`` (an instance's view, the step
service), and the shared ``clock``, ``errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.access import PATIENT_ROLE, Principal, person_id
from engine.care_teams import EVERYWHERE, CareScope
from engine.clock import Clock
from engine.db.models import PathwayInstance, PatientIdentity
from engine.db.session import read_only
from engine.errors import ConflictError, InvalidInputError, NotFoundError, Problem
from engine.instances.service import PathwayService
from engine.instances.view import InstanceView, validate_patient_ref

__all__ = [
    "PATIENT_FORMS",
    "WARNING_SIGN_MESSAGE",
    "IdentityLink",
    "complete_own_form",
    "link_identity",
    "linked_patient",
    "still_linked",
    "list_identities",
    "own_forms",
    "report_warning_sign",
    "request_assessment",
    "require_own",
    "unlink_identity",
]

# The ready tasks that are the patient's own forms (element -> kind), in the bundled shared sub-pathways:
# holistic_needs_assessment (the concerns checklist, and the children's), patient_feedback (the patient's, and
# for a child under 16 the family's); and "survey", a pathway's own survey task (the bundled
# quality_of_life_survey records the national survey's invitation, a staff task, since issue 14 point 4).
PATIENT_FORMS = {
    "complete_checklist": "needs_assessment",
    "complete_checklist_cyp": "needs_assessment",
    "give_feedback": "feedback",
    "give_feedback_family": "feedback",
    "survey": "survey",
}
# The message a patient's report of a warning sign is (pathways/shared/warning_sign_triage.bpmn listens).
WARNING_SIGN_MESSAGE = "warning_sign_reported"
MAX_DESCRIPTION = 1000  # the patient's own words about a warning sign
_SIGN_CODE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
# An issuer is an https address (at most 500 characters); a subject is the provider's opaque id (OIDC: <= 255).
_ISSUER = re.compile(r"^https?://[!-~]{1,490}$")
_SUBJECT = re.compile(r"^[!-~]{1,255}$")


@dataclass(frozen=True)
class IdentityLink:
    """One linked identity, as the API and the command line show it."""

    id: int
    issuer: str
    subject: str
    patient_ref: str
    linked_at: datetime
    linked_by: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "linked_at": self.linked_at.isoformat()}


def _link(row: PatientIdentity) -> IdentityLink:
    return IdentityLink(row.id, row.issuer, row.subject, row.patient_ref, row.linked_at, row.linked_by)


def _check_identity(issuer: str, subject: str) -> None:
    problems = []
    if not isinstance(issuer, str) or not _ISSUER.match(issuer):
        problems.append(Problem("the provider's issuer address (https://..., at most 500 characters)", field="/issuer"))
    if not isinstance(subject, str) or not _SUBJECT.match(subject):
        problems.append(Problem("the provider's subject id (1-255 printable characters, no spaces)", field="/subject"))
    if problems:
        raise InvalidInputError("not an OpenID Connect identity", problems)


_NO_PATIENT = "no such patient"


def _patients_of(scope: CareScope) -> Any:
    """The patient references with an instance (any status, any team) in ``scope``'s organisation."""
    return select(PathwayInstance.patient_ref).where(scope.organisation_wide().condition())


def _reaches(session: Session, scope: CareScope, patient_ref: str) -> bool:
    if scope.everywhere:
        return True
    query = _patients_of(scope).where(PathwayInstance.patient_ref == patient_ref).limit(1)
    return session.scalar(query) is not None


def link_identity(
    session: Session,
    issuer: str,
    subject: str,
    patient_ref: str,
    linked_by: str,
    clock: Clock,
    scope: CareScope = EVERYWHERE,
) -> IdentityLink:
    """Link the identity (``issuer``, ``subject``) to ``patient_ref``; linking it again to the same patient
    changes nothing. A linker with an organisation (``scope``) links only a patient with an instance in it.

    Raises:
        InvalidInputError: a malformed issuer, subject or patient reference (each named).
        NotFoundError: the patient has no instance in ``scope``'s organisation (unknown or another's: the same).
        ConflictError: the identity is linked to another patient (unlink it first).
    """
    _check_identity(issuer, subject)
    validate_patient_ref(patient_ref)
    if not _reaches(session, scope, patient_ref):
        raise NotFoundError(_NO_PATIENT)
    found = session.scalars(
        select(PatientIdentity).where(PatientIdentity.issuer == issuer, PatientIdentity.subject == subject)
    ).first()
    if found is not None:
        if found.patient_ref != patient_ref:
            raise ConflictError("this identity is linked to another patient: unlink it first")
        return _link(found)
    row = PatientIdentity(
        issuer=issuer, subject=subject, patient_ref=patient_ref, linked_at=clock.now(), linked_by=linked_by[:200]
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # linked by someone else a moment ago
        raise ConflictError("this identity was linked meanwhile: look again") from None
    return _link(row)


def unlink_identity(session: Session, issuer: str, subject: str, scope: CareScope = EVERYWHERE) -> IdentityLink:
    """Remove the link of (``issuer``, ``subject``); the person can no longer read that patient's records.
    A caller with an organisation (``scope``) unlinks only patients with an instance in it.

    Raises: InvalidInputError (malformed), NotFoundError (not linked, or to a patient outside ``scope``).
    """
    _check_identity(issuer, subject)
    found = session.scalars(
        select(PatientIdentity).where(PatientIdentity.issuer == issuer, PatientIdentity.subject == subject)
    ).first()
    if found is None or not _reaches(session, scope, found.patient_ref):
        raise NotFoundError("this identity is not linked to a patient")
    link = _link(found)
    session.delete(found)
    return link


def list_identities(
    session: Session, patient_ref: str | None = None, limit: int = 200, scope: CareScope = EVERYWHERE
) -> list[IdentityLink]:
    """The linked identities (of one patient, when given), oldest first, at most ``limit``; for a caller
    with an organisation (``scope``), those of patients with an instance in it only."""
    query = select(PatientIdentity).order_by(PatientIdentity.id).limit(limit)
    if patient_ref is not None:
        query = query.where(PatientIdentity.patient_ref == patient_ref)
    if not scope.everywhere:
        query = query.where(PatientIdentity.patient_ref.in_(_patients_of(scope)))
    return [_link(row) for row in session.scalars(query)]


def linked_patient(sessions: sessionmaker[Session], issuer: str, subject: str) -> str | None:
    """The patient reference the identity is linked to, or None."""
    with read_only(sessions) as session:
        return session.scalar(
            select(PatientIdentity.patient_ref).where(
                PatientIdentity.issuer == issuer, PatientIdentity.subject == subject
            )
        )


def still_linked(sessions: sessionmaker[Session], issuer: str, patient_ref: str, principal_id: str) -> bool:
    """Whether the identity a patient signed in with (``principal_id``: :func:`engine.access.person_id` of
    issuer and subject) is still linked to ``patient_ref``: a web session ends once it is unlinked."""
    with read_only(sessions) as session:
        subjects = session.scalars(
            select(PatientIdentity.subject)
            .where(PatientIdentity.issuer == issuer, PatientIdentity.patient_ref == patient_ref)
            .limit(100)
        )
        return any(person_id(issuer, subject) == principal_id for subject in subjects)


# --- a patient's own records -------------------------------------------------------------------------


def require_own(principal: Principal, view: InstanceView) -> InstanceView:
    """``view`` when it is the signed-in patient's own instance.

    Raises:
        NotFoundError: it is another patient's (worded as for an instance that does not exist), or the
            principal is not a patient's.
    """
    if principal.role != PATIENT_ROLE or principal.patient_ref is None or view.patient_ref != principal.patient_ref:
        raise NotFoundError(f"no instance {view.id!r}")
    return view


def own_forms(view: InstanceView) -> list[dict[str, Any]]:
    """The instance's ready tasks that are the patient's own forms, each with its ``kind``."""
    return [
        {**task, "kind": PATIENT_FORMS[task["element"]]}
        for task in view.ready_tasks
        if task["element"] in PATIENT_FORMS
    ]


def complete_own_form(
    service: PathwayService,
    principal: Principal,
    instance_id: str,
    task_id: str,
    data: dict[str, Any],
    expected_version: int | None,
) -> InstanceView:
    """Complete one of the patient's own forms (:data:`PATIENT_FORMS`) on their own instance.

    Raises:
        NotFoundError: not their instance, or no ready form of theirs with that id (a staff task is
            not found either).
        TaskDataError, StaleVersionError, TaskNotReadyError: as completing any task.
    """
    view = require_own(principal, service.get(instance_id))
    if not any(task["id"] == task_id for task in own_forms(view)):
        raise NotFoundError("no ready form of yours with this id")
    return service.complete_task(view.id, task_id, data, principal.actor, expected_version=expected_version)


def report_warning_sign(
    service: PathwayService, principal: Principal, warning_sign: str, description: str | None
) -> list[InstanceView]:
    """Report a warning sign (its catalogue code; ``other`` or an unknown code is triaged as the most
    urgent) with the patient's own words, to the patient's own pathways waiting for reports.

    Raises:
        NotFoundError: the principal is not a patient's.
        InvalidInputError: a malformed code, or a description over 1,000 characters.
        MessageNotDeliverableError: none of the patient's pathways is waiting for reports.
    """
    if principal.role != PATIENT_ROLE or principal.patient_ref is None:
        raise NotFoundError("no patient is signed in")
    problems = []
    if not isinstance(warning_sign, str) or not _SIGN_CODE.match(warning_sign):
        problems.append(Problem("a warning sign's code from the list", field="/warning_sign"))
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        problems.append(Problem(f"at most {MAX_DESCRIPTION} characters", field="/description"))
    if problems:
        raise InvalidInputError("not a warning sign report", problems)
    payload: dict[str, Any] = {"warning_sign": warning_sign}
    if description and description.strip():
        payload["description"] = description.strip()
    return service.send_message(
        WARNING_SIGN_MESSAGE, principal.actor, patient_ref=principal.patient_ref, payload=payload
    )


REASSESSMENT_MESSAGE = "reassessment_requested"


def request_assessment(service: PathwayService, principal: Principal, instance_id: str) -> InstanceView:
    """The patient asks for a holistic needs assessment now, outside the planned ones (``asked_by: patient``):
    a person can ask for one at any time (Macmillan, Holistic Needs Assessment; NHS England, personalised care).
    The pathway's re-assessment listener starts it; the trail records ``reassessment_started`` with
    ``asked_by``, never who the patient is.

    Raises:
        NotFoundError: not the signed-in patient's own instance.
        MessageNotDeliverableError: the pathway is not listening for requests now (an assessment under way,
            the pathway paused or ended).
    """
    view = require_own(principal, service.get(instance_id))
    [delivered] = service.send_message(
        REASSESSMENT_MESSAGE, principal.actor, instance_id=view.id, payload={"asked_by": "patient"}
    )
    return delivered
