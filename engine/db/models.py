"""Every table CarePath owns, in one module: pathway versions, instances and their event trail, care
plan items and notes, rule versions and evaluations, API tokens and idempotency records, webhook
subscriptions and their outbox of deliveries.

The modules that own each aggregate's behaviour (``engine.careplan``, ``engine.rules.store``,
``engine.access``, ``engine.idempotency``) import their tables from here, so ``db`` imports none of them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from engine.db.base import Base
from engine.db.stored_state import StoredState

__all__ = [
    "ACTIVE_STATUSES",
    "AccessRecord",
    "ApiToken",
    "AuditVerification",
    "CarePlanItem",
    "CarePlanNote",
    "DecisionEvaluationRecord",
    "EndedWebSession",
    "IdempotencyRecord",
    "InstanceEvent",
    "PathwayInstance",
    "PathwayVersion",
    "PatientIdentity",
    "ReadyTaskElement",
    "ReportInstance",
    "ReportItem",
    "ReportMeasureRow",
    "ReportWarningSign",
    "RuleEvaluationRecord",
    "RuleVersionRecord",
    "SandboxClockState",
    "TreatmentSummary",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookSubscription",
]

# Statuses of an instance that has not ended (engine.instances.view.Status): one per patient and pathway.
ACTIVE_STATUSES = ("running", "suspended", "error")
_ACTIVE_SQL = "one_per_patient AND (status = 'running' OR status = 'suspended' OR status = 'error')"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:

        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


class PathwayVersion(Base):
    """One version of one pathway: its diagram files and its compiled spec, stored once."""

    __tablename__ = "pathway_versions"
    __table_args__ = (UniqueConstraint("pathway_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pathway_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    main_file: Mapped[str] = mapped_column(String(300))
    # Large and immutable: loaded only when asked for (the spec once per process, then cached).
    files: Mapped[str] = mapped_column(Text, deferred=True)  # JSON {name: text}
    spec: Mapped[str] = mapped_column(Text, deferred=True)  # JSON: {"spec": ..., "subprocess_specs": ...}
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(String(200))
    # The JSON Schema of the start data (engine.pathways.start_schema; also one of ``files``, so part of
    # the version's hash). NULL: the pathway declares none and any start data object is accepted.
    start_schema: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Four eyes (engine.four_eyes): a version is deployed inactive and a second author activates it;
    # new instances start on the most recently activated version. NULL: not activated (pending).
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PathwayInstance(Base):
    """One patient's run of one pathway version.

    ``state`` holds SpiffWorkflow's instance state without the spec. ``revision`` is the
    optimistic lock every change checks; clients see it as the instance version (ETag).
    """

    __tablename__ = "pathway_instances"
    __table_args__ = (
        Index("ix_pathway_instances_status_next_due_at_id", "status", "next_due_at", "id"),
        Index("ix_pathway_instances_next_due_at_id", "next_due_at", "id"),
        Index("ix_pathway_instances_patient_ref_pathway_id", "patient_ref", "pathway_id"),
        # One instance that has not ended per patient and pathway, held by the database so that two
        # concurrent starts cannot both win; an instance started where the deployment allows more
        # (Settings.allow_concurrent_instances) is not ``one_per_patient`` and is not counted.
        Index(
            "uq_pathway_instances_one_active",
            "patient_ref",
            "pathway_id",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        # Lists filter, then page by (created_at, id) (engine.instances.queries): one index per filter
        # combination, ending in the page order.
        Index("ix_pathway_instances_created_at_id", "created_at", "id"),
        Index("ix_pathway_instances_status_created_at_id", "status", "created_at", "id"),
        Index("ix_pathway_instances_pathway_id_status_created_at_id", "pathway_id", "status", "created_at", "id"),
        Index("ix_pathway_instances_patient_ref_created_at_id", "patient_ref", "created_at", "id"),
        # The same lists seen by a care team or an organisation (engine.care_teams.CareScope.condition).
        Index("ix_pathway_instances_organisation_created_at_id", "organisation", "created_at", "id"),
        Index("ix_pathway_instances_org_team_created_at_id", "organisation", "care_team", "created_at", "id"),
        # The instances waiting for a clinician to check their pathway against their diagnosis
        # (engine.pathway_checks): few, so a partial index, in page order.
        Index(
            "ix_pathway_instances_pathway_check_created_at_id",
            "created_at",
            "id",
            sqlite_where=text("pathway_check IS NOT NULL"),
            postgresql_where=text("pathway_check IS NOT NULL"),
        ),
        Index(
            "ix_pathway_instances_org_team_status_created_at_id",
            "organisation",
            "care_team",
            "status",
            "created_at",
            "id",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200), index=True)
    pathway_version_id: Mapped[int] = mapped_column(ForeignKey("pathway_versions.id"), index=True)
    patient_ref: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    # Compressed bytes in the database (engine.db.stored_state), text here; read only when asked for.
    state: Mapped[str] = mapped_column(StoredState, deferred=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    incident: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {element, message, at}
    # JSON list of the ready tasks as of the last save, without their forms (engine.spiff.workflows.ready_task_summary):
    # work lists read it instead of restoring every instance. NULL: saved before it existed.
    ready_tasks: Mapped[str | None] = mapped_column(Text, nullable=True)
    # JSON of the data the ready tasks' safety notices are chosen by (engine.spiff.workflows.notice_contacts),
    # so that a work list fills a checklist's 24-hour line without reading the state. NULL: no ready task's
    # form declares a notice, or saved before it existed (then the list reads the instance).
    notice_contacts: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Head of the hash-chained event trail (see engine.audit): catches deletion of the newest event.
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    event_head: Mapped[str] = mapped_column(String(64), default="0" * 64)
    # The stored state sealed to the digest its newest event records (engine.audit.TrailKey.state_mac), so
    # that verification need not inflate it. NULL: no trail key, or written before seals (then it is inflated).
    state_mac: Mapped[str | None] = mapped_column(String(73), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who looks after the patient (engine.care_teams): identifiers, set at start; the team moves with a reason.
    organisation: Mapped[str] = mapped_column(String(64))
    care_team: Mapped[str] = mapped_column(String(64))
    # The cancer site the diagnosis names when it is not the pathway's own, until a clinician checks the pathway
    # (engine.pathway_checks): set at the start and by a correction of the diagnosis, cleared by the check.
    pathway_check: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Counted by the one-active-instance index (set at start, never changed).
    one_per_patient: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    pathway_version: Mapped[PathwayVersion] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": revision}


class ReadyTaskElement(Base):
    """One element (BPMN id) an instance has a ready task at, as of its last save: the work list's
    ``?element=`` filter reads this table's index in page order, so a page costs the same whether
    the element is common, rare or nowhere. Written with the instance row by engine.instances.store;
    derived from ``PathwayInstance.ready_tasks``."""

    __tablename__ = "ready_task_elements"
    __table_args__ = (
        Index("ix_ready_task_elements_element_created_at_instance_id", "element", "created_at", "instance_id"),
    )

    # Derived from the instance row: it goes with it (an instance is only ever deleted by hand).
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id", ondelete="CASCADE"), primary_key=True)
    element: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the instance's, for the page order


class InstanceEvent(Base):
    """The append-only event trail, hash-chained per instance.

    ``payload`` never holds patient data: task data appears only as a digest.
    """

    __tablename__ = "instance_events"
    # Verification reads every trail in one scan in this order (engine.audit.verify_trail).
    __table_args__ = (
        UniqueConstraint("instance_id", "seq"),
        Index("ix_instance_events_instance_id_id", "instance_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    pathway_version: Mapped[str] = mapped_column(String(64))
    element: Mapped[str | None] = mapped_column(String(200), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # "sha256:<hex>" of the instance's stored state after the step this event ends (NULL: the event
    # changed no state, or was written before states were digested); part of the hash.
    state_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)
    # "<key id>:<HMAC-SHA256 hex>" of the hash, keyed by a secret the database does not hold
    # (engine.audit.TrailKey); NULL when no key was configured.
    mac: Mapped[str | None] = mapped_column(String(73), nullable=True)

    # Declared so the unit of work inserts an instance before its first events.
    instance: Mapped[PathwayInstance] = relationship(lazy="raise")


class AuditVerification(Base):
    """One run of the event trail's verification, started from the API and run in the background
    (engine.verifications). ``problems`` is a JSON list of {instance_id, seq, message}: ids and
    sequence numbers only, never patient data."""

    __tablename__ = "audit_verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # queued | running | verified | problems | failed
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    instances_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instances_checked: Mapped[int] = mapped_column(Integer, default=0)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[str] = mapped_column(Text, default="[]")
    failure: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the error's type, never its text
    # The organisation whose trails the job verifies (an auditor of one organisation starts, and reads, only
    # those); None: every trail of the deployment.
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # The run that owns the job (engine.verifications): set when a run starts, cleared when a worker takes
    # an abandoned job over; a run writes its progress and result only while it is still the owner.
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class ApiToken(Base):
    """An API token: only the SHA-256 of its secret is kept. ``expires_at``: refused from then on (None:
    valid until revoked)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whose patients the token reaches (engine.care_teams): None -- every organisation; teams None -- every
    # team of the organisation. ``teams`` is a JSON list of team identifiers.
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    teams: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Role patient only: the one patient whose own records the token reads (engine.patients).
    patient_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The member of staff who holds the token (a person's own author, clinician or auditor token): four
    # eyes compares people, so a second token of the same holder is the same person (engine.four_eyes).
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EndedWebSession(Base):
    """A web session signed out before its cookie expired (api.web.auth): a copy of the cookie is refused.

    The cookie is a signed value with no server record, so clearing it in one browser does not end a copy
    taken earlier; this row does. ``useless_after``: no copy of the cookie is accepted from then on (the
    session's lifetime has run out), so the row can be deleted (engine.access.purge_ended_web_sessions)."""

    __tablename__ = "ended_web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the session's random id
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    useless_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PatientIdentity(Base):
    """A person's OpenID Connect identity (``issuer``, ``subject``) linked to the patient reference whose
    own records they may read (engine.patients). One link per identity; ``linked_by`` is an actor."""

    __tablename__ = "patient_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    patient_ref: Mapped[str] = mapped_column(String(64), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    linked_by: Mapped[str] = mapped_column(String(200))


class IdempotencyRecord(Base):
    """The first response to a request sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)  # 0 while the first request runs
    headers: Mapped[str] = mapped_column(Text, default="{}")  # JSON, e.g. ETag and Location
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CarePlanItem(Base):
    """One proposed referral, intervention or piece of information in a patient's plan."""

    __tablename__ = "care_plan_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"), index=True)
    evaluation_id: Mapped[str] = mapped_column(String(36), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))  # referral | intervention | information
    code: Mapped[str] = mapped_column(String(100))
    service: Mapped[str | None] = mapped_column(String(100), nullable=True)
    urgency: Mapped[str | None] = mapped_column(String(20), nullable=True)
    rules: Mapped[str] = mapped_column(Text)  # JSON list of rule ids
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))
    # A referral waiting for the service: by when it must be accepted (from its urgency's timeframe),
    # and when the worker opened an escalation because it was not (engine.careplan.referrals).
    accept_by: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_care_plan_items_status_accept_by", "status", "accept_by"),)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "code": self.code,
            "service": self.service,
            "urgency": self.urgency,
            "rules": json.loads(self.rules),
            "status": self.status,
            "evaluation_id": self.evaluation_id,
            "task_id": self.task_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
            "accept_by": self.accept_by.isoformat() if self.accept_by else None,
            "escalated_at": self.escalated_at.isoformat() if self.escalated_at else None,
        }


class CarePlanItemMove(Base):
    """One change to a care plan item, who made it and when: its history (codes and ids only).

    ``change``: ``created``, ``status`` (``from_status`` -> ``to_status``), ``proposed_again`` (a later
    evaluation proposed the same open referral: ``evaluation_id`` and ``rules`` say which, and
    ``from_urgency`` -> ``to_urgency`` when it raised the urgency).
    """

    __tablename__ = "care_plan_item_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("care_plan_items.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    change: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20))
    from_urgency: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_urgency: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a reason code, never free text
    evaluation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    rules: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of rule ids
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))

    def as_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "from_urgency": self.from_urgency,
            "to_urgency": self.to_urgency,
            "reason": self.reason,
            "evaluation_id": self.evaluation_id,
            "rules": json.loads(self.rules) if self.rules else None,
            "at": self.at.isoformat(),
            "actor": self.actor,
        }


class ReferralEscalation(Base):
    """A task for the patient's named contact: a referral was not accepted in its timeframe.

    Opened by the worker's scan (engine.careplan.referrals), listed in the work list, completed by a
    person with an outcome code. ``assignee``: the named contact's staff identifier when one is
    recorded, else None (the team's work list).
    """

    __tablename__ = "referral_escalations"
    __table_args__ = (Index("ix_referral_escalations_status_opened_at", "status", "opened_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("care_plan_items.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # open | completed
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    accept_by: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "care_plan_item_id": self.item_id,
            "status": self.status,
            "assignee": self.assignee,
            "accept_by": self.accept_by.isoformat(),
            "opened_at": self.opened_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "completed_by": self.completed_by,
            "outcome": self.outcome,
        }


class TreatmentSummary(Base):
    """The End of Treatment Summary of one phase of care (a course of treatment that ended: first-line
    treatment, the treatment of a recurrence), and its deadline (engine.careplan.summaries).

    ``due``: the phase ended and its summary is not written yet; ``written``: signed off by its author
    (``content``: the instance's data as the summary was written -- patient data, never logged; NULL
    for a summary written before phases were kept, whose document is built from the current data);
    ``closed``: the instance ended, or moved on, without it. The overdue task is ``overdue_at`` set
    and ``closed_at`` not: opened by the worker's scan 6 weeks after ``ended_on``, for ``assignee``
    (the named contact's staff identifier, else None: the team's work list), closed when the summary
    is written.

    ``task_id``: the SpiffWorkflow task (``write_summary``) that writes this phase's summary -- an
    instance can wait for two at once (the first-line summary unwritten when a recurrence's ends), and
    each has its own row. NULL only on a row noted before revision 0026 whose instance then waited for
    more than one summary: the scan gives it the waiting task of its phase (engine.careplan.summaries).
    """

    __tablename__ = "treatment_summaries"
    __table_args__ = (
        UniqueConstraint("instance_id", "number", name="uq_treatment_summaries_instance_id_number"),
        UniqueConstraint("instance_id", "task_id", name="uq_treatment_summaries_instance_id_task_id"),
        # The worker's scan counts each waiting instance's due rows (engine.careplan.summaries).
        Index("ix_treatment_summaries_instance_id_status", "instance_id", "status"),
        Index("ix_treatment_summaries_status_due_by", "status", "due_by"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"))
    number: Mapped[int] = mapped_column(Integer)  # the phase's number in the instance: 1, 2, ...
    phase: Mapped[str] = mapped_column(String(40))  # first_line | recurrence | end_of_protocol
    ended_on: Mapped[date] = mapped_column(Date)
    due_by: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # due | written | closed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    written_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    def as_dict(self) -> dict[str, Any]:
        """The phase and its deadline, without the content (ids, codes and dates only)."""

        def stamp(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "number": self.number,
            "phase": self.phase,
            "ended_on": self.ended_on.isoformat(),
            "due_by": self.due_by.isoformat(),
            "status": self.status,
            "written_at": stamp(self.written_at),
            "written_by": self.written_by,
            "overdue_at": stamp(self.overdue_at),
            "assignee": self.assignee,
            "closed_at": stamp(self.closed_at),
            "task_id": self.task_id,
        }


class CarePlanNote(Base):
    """What matters to the patient, in their words (patient data: never logged or put in events)."""

    __tablename__ = "care_plan_notes"

    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"), primary_key=True)
    what_matters: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RuleVersionRecord(Base):
    """The exact text of a rule file or of the catalogue, by version hash."""

    __tablename__ = "rule_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "ruleset" | "catalogue"
    name: Mapped[str] = mapped_column(String(200), index=True)
    path: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(Text)  # ruleset: YAML text; catalogue: JSON {file: text}
    first_used_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RuleSetActivation(Base):
    """A rule-set version found in the rules folder (pending) and, once a second author activated
    it, who did and when (engine.rules.activation). Evaluations use the most recently activated one."""

    __tablename__ = "rule_set_activations"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)  # the YAML text, as the folder held it
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The concern and intervention catalogue the version was checked against and is evaluated with: part of
    # ``version`` (a hash of the rule text's and the catalogue's versions), so a changed catalogue is a new,
    # pending version. NULL: recorded before catalogues were (the folder's catalogue is used, as it was).
    catalogue_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    catalogue_source: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {file: text}


class DeploymentEvent(Base):
    """The deployment trail (engine.four_eyes): every deploy, activation, migration request and approval, in
    one hash chain authenticated with the event trail's key (engine.audit), so an activation row edited,
    added or deleted by someone with database access no longer matches the trail. Ids, versions, actors
    and digests only."""

    __tablename__ = "deployment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    type: Mapped[str] = mapped_column(String(40))  # baseline | deployed | activated | migration_requested | ...
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # pathway | rule_set | migration ("" for the baseline)
    subject: Mapped[str] = mapped_column(String(200))  # a pathway id, a rule set's name, a migration request's id
    version: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON: the content's digest; the baseline's rows
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(73), nullable=True)


class DeploymentTrailHead(Base):
    """The deployment trail's newest event (one row): appends lock it, so the chain is written one event at
    a time, and an event deleted from the end no longer matches it."""

    __tablename__ = "deployment_trail_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class MigrationRequest(Base):
    """Moving a pathway's running instances to a version, asked by one author with the dry run's
    report, approved and executed by a second (engine.instances.migration)."""

    __tablename__ = "migration_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200), index=True)
    target_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # requested | executed
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    report: Mapped[str] = mapped_column(Text)  # the dry run's report, JSON (ids and element names only)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # the executed migration's report, JSON


class RuleEvaluationRecord(Base):
    """One evaluation of an assessment against a rule-set version."""

    __tablename__ = "rule_evaluations"
    __table_args__ = (Index("ix_rule_evaluations_instance_id_ordinal", "instance_id", "ordinal"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ruleset_name: Mapped[str] = mapped_column(String(200), index=True)
    ruleset_version: Mapped[str] = mapped_column(ForeignKey("rule_versions.version"), index=True)
    catalogue_version: Mapped[str] = mapped_column(ForeignKey("rule_versions.version"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The evaluation's place among its instance's, from 1, in the order the instance's steps made them
    # (None without an instance): "the previous assessment" is by this, never by a clock (migration 0033).
    ordinal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    facts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    fired: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSON)


class AccessRecord(Base):
    """One look at one patient's records: who read which instance's data, when, through which route, on
    whose behalf, and with what outcome (engine.access_log). Never what was shown: no clinical values."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_patient_ref_at", "patient_ref", "at"),
        Index("ix_access_log_instance_id_at", "instance_id", "at"),
        Index("ix_access_log_actor_at", "actor", "at"),
        Index("ix_access_log_organisation_at", "organisation", "at"),
        Index("ix_access_log_break_glass_at", "break_glass", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64))  # the permission the route needs, e.g. documents.read
    route: Mapped[str] = mapped_column(String(200))  # "GET /v1/instances/<uuid:instance_id>/care-plan"
    status: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    patient_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str] = mapped_column(String(128))
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the instance's, for auditors' scope
    # A clinician's read outside their teams (engine.care_teams.BreakGlass): the reason code, and the note
    # they gave, kept here only (never in a log line or the event trail).
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    break_glass_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    break_glass_note: Mapped[str | None] = mapped_column(String(500), nullable=True)


class WebhookSubscription(Base):
    """A receiver of webhook events (engine.webhooks): where, which event types, and the secret that signs.

    ``secret`` (``whsec_...``, Standard Webhooks) is kept as given: signing needs the key itself, so it
    cannot be hashed like a token's. It is shown once at creation and never returned or logged after.
    A removed subscription keeps its row (its deliveries name it); ``removed_at`` says since when.
    ``organisation``: whose subscription it is -- it receives the events of that organisation's
    instances only, and only that organisation's admins see and manage it; None is the deployment's
    (every organisation's events, managed by an admin of every organisation).
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[str] = mapped_column(Text)  # JSON list of event type names
    secret: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookDelivery(Base):
    """The outbox: one webhook event for one subscription, written in the transaction of the step that
    caused it, then delivered (and retried) by the worker.

    ``message_id`` is the ``webhook-id`` a receiver de-duplicates on: the same on every attempt and
    replay. ``body`` is the JSON sent (ids and types only). ``lease_until``: a worker is delivering it
    until then; a worker that died mid-delivery leaves it to be taken again once that time passes.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription_instance", "subscription_id", "instance_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    instance_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | dead | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the last attempt got: an HTTP status or an error's type, never a response body.
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SandboxClockState(Base):
    """A sandbox deployment's own clock (``CAREPATH_SANDBOX=1``, engine.sandbox): real time plus an
    offset that only grows. One row; absent until the sandbox first starts."""

    __tablename__ = "sandbox_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UpgradeTask(Base):
    """Work an upgrade leaves for the workers to do in the background, one row per task (a migration inserts
    it): how far it has got (``after_id``: the last instance id read, in id order), the lease of the process
    reading now (``lease_id`` until ``lease_until``: one reader at a time, and a reader that died is taken over
    once its lease ends), and when it was done. Counts only, never patient data."""

    __tablename__ = "upgrade_tasks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    after_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    asked_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DecisionEvaluationRecord(Base):
    """One evaluation of a DMN decision table by a business rule task (engine.decisions.store).

    The table itself is the ``.dmn`` file in the pathway version's files (``file``), whose SHA-256
    is ``table_version``.
    """

    __tablename__ = "decision_evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(200), index=True)
    table_version: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(300))
    hit_policy: Mapped[str] = mapped_column(String(20))
    pathway_id: Mapped[str] = mapped_column(String(200))
    pathway_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    element: Mapped[str] = mapped_column(String(200))
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    matched: Mapped[list[str]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    misses: Mapped[dict[str, int]] = mapped_column(JSON)  # rule id -> first input entry that did not hold


class PatientDeath(Base):
    """A patient's death as CarePath was told of it (the ``patient_died`` message): from then on no pathway
    starts for the patient and every instance of theirs has ended (engine.instances.deaths). A death
    recorded in error is withdrawn with a reason, never deleted. No clinical values: not the date of
    death, which stays in the instances' own data."""

    __tablename__ = "patient_deaths"

    patient_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    withdrawn_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


# --- Service insight's summary (engine.reports.summary, docs/measures.md) ---------------------------------
# Derived from the event trail and the care plans by the worker's refresh, never written by a step: each
# can be dropped and refreshed again. Ids, codes and times only, as in the trail.


class ReportInstance(Base):
    """Which trail position of an instance the summary rows below were derived from."""

    __tablename__ = "report_instances"

    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id", ondelete="CASCADE"), primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200))
    event_seq: Mapped[int] = mapped_column(Integer)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # ReferralTimeframes.fingerprint of the settings the rows were derived with (their due_at).
    deadlines: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ReportMeasureRow(Base):
    """One instance counted by one windowed measure: when it entered it, its deadline, when it met it."""

    __tablename__ = "report_measure_rows"
    __table_args__ = (Index("ix_report_measure_rows_measure_start_at", "measure", "start_at"),)

    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id", ondelete="CASCADE"), primary_key=True)
    measure: Mapped[str] = mapped_column(String(40), primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start_month: Mapped[str] = mapped_column(String(7))  # YYYY-MM (UTC)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReportItem(Base):
    """One care plan item's dated status moves, its referral's due time and waits."""

    __tablename__ = "report_items"
    __table_args__ = (
        Index("ix_report_items_referred_at", "referred_at"),
        Index("ix_report_items_closed_at", "closed_at"),
    )

    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id", ondelete="CASCADE"), index=True)
    pathway_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(100))
    service: Mapped[str | None] = mapped_column(String(100), nullable=True)
    urgency: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    referred_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    referred_week: Mapped[str | None] = mapped_column(String(10), nullable=True)  # the week's Monday
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_week: Mapped[str | None] = mapped_column(String(10), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    days_to_acceptance: Mapped[float | None] = mapped_column(Float, nullable=True)
    days_to_first_contact: Mapped[float | None] = mapped_column(Float, nullable=True)


class ReportWarningSign(Base):
    """The n-th warning sign report of an instance, its triage and the colour the triage gave it."""

    __tablename__ = "report_warning_signs"

    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id", ondelete="CASCADE"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    colour: Mapped[str] = mapped_column(String(20))
    hours_to_triage: Mapped[float | None] = mapped_column(Float, nullable=True)
