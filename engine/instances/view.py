"""An instance as callers see it, and the rule for naming patients."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.errors import InvalidInputError, Problem
from engine.instances.store import InstanceRecord
from engine.spiff import workflows

__all__ = [
    "CANCEL_REASONS",
    "CORRECTION_REASONS",
    "ENGINE_ACTOR",
    "NOT_ENDED",
    "PATIENT_REF_PATTERN",
    "SUSPEND_REASONS",
    "SYNTHETIC_PREFIX",
    "InstanceView",
    "Status",
    "instance_view",
    "validate_patient_ref",
]


class Status(StrEnum):
    """An instance's status (stored as its value)."""

    RUNNING = "running"
    SUSPENDED = "suspended"  # paused by a person; steps other than resume and cancel are refused
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    ERROR = "error"  # an incident: a step failed inside the diagram's logic; retry once fixed


# The statuses of an instance that has not ended: its data may be corrected, its pathway checked, it may be ended.
NOT_ENDED = frozenset({Status.RUNNING, Status.SUSPENDED, Status.ERROR})

# The actor the trail records for what the engine does on its own (a timer's incident, a check an upgrade asked).
ENGINE_ACTOR = "engine"

# The reason codes the web app offers for pausing and ending an instance (the API takes any code:
# engine.audit.check_reason, lower case letters, digits and _). A death is not among them: it is recorded
# (the message patient_died), which ends every pathway of the patient and stops every invitation, where
# cancelling ends one.
SUSPEND_REASONS = ("patient_request", "treatment_paused", "care_elsewhere_for_now", "clinical_review")
CANCEL_REASONS = ("started_in_error", "wrong_pathway", "duplicate", "patient_declined", "care_transferred")
# ... and for correcting an instance's start data (PATCH /v1/instances/{id}/data).
CORRECTION_REASONS = ("transcription_error", "updated_information", "source_record_corrected")

# The one rule for naming patients: an opaque external identifier (the OpenAPI schemas use it too).
PATIENT_REF_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
# Synthetic patients (demonstrations, training, a sandbox) are named in their own namespace: a
# reference starting with this prefix is taken to be synthetic, any other a real patient's.
SYNTHETIC_PREFIX = "SYN-"


def validate_patient_ref(patient_ref: str) -> None:
    """A patient is named by an opaque external reference (an identifier), never by a name.

    Raises:
        InvalidInputError: if the reference has spaces or other characters names have.
    """
    if not isinstance(patient_ref, str) or not _PATIENT_REF.match(patient_ref):
        raise InvalidInputError(
            "patient_ref must be an external identifier (letters, digits and . _ : / -, at most 64)",
            [
                Problem(
                    "must be an identifier such as an MRN or a system's patient id, not a name", field="/patient_ref"
                )
            ],
        )


@dataclass(frozen=True)
class InstanceView:
    """An instance as callers see it; ``version`` is the revision to send back with changes."""

    id: str
    pathway_id: str
    pathway_version: str
    patient_ref: str
    status: str
    version: int
    next_due_at: str | None
    incident: dict[str, Any] | None
    created_at: str
    updated_at: str
    ready_tasks: list[dict[str, Any]]
    organisation: str = ""
    care_team: str = ""
    # The site the diagnosis names that is not the pathway's, until a clinician checks the pathway: the API
    # shows it as the instance's ``warnings`` (engine.pathway_checks), not as a field of its own.
    pathway_check: str | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = dict(self.__dict__)
        del shown["pathway_check"]
        return shown


def instance_view(instance: InstanceRecord, workflow: Any) -> InstanceView:
    """The view of an instance row and its restored workflow (ready tasks only while running)."""
    tasks = (
        [workflows.task_info(t).as_dict() for t in workflows.ready_tasks(workflow)]
        if instance.status == Status.RUNNING
        else []
    )
    return InstanceView(
        id=instance.id,
        pathway_id=instance.pathway_id,
        pathway_version=instance.pathway_version,
        patient_ref=instance.patient_ref,
        status=instance.status,
        version=instance.revision,
        next_due_at=instance.next_due_at.isoformat() if instance.next_due_at else None,
        incident=json.loads(instance.incident) if instance.incident else None,
        created_at=instance.created_at.isoformat(),
        updated_at=instance.updated_at.isoformat(),
        ready_tasks=tasks,
        organisation=instance.organisation,
        care_team=instance.care_team,
        pathway_check=instance.pathway_check,
    )
