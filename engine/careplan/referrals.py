"""Referrals over time: by when a service must accept one, one open referral per service, escalations.

**Timeframes.** When a referral becomes ``referred`` (or an open one's urgency is raised) it gets an
``accept_by``: the end of the day, in the deployment's time zone, that its urgency's timeframe
(:meth:`engine.settings.ReferralTimeframes.due`) counts to from the day it was referred -- the same day
for an emergency, 2 working days for urgent, 2 weeks soon, 6 weeks routine by default.

**One open referral per service.** A later assessment proposing a service that already holds an open
referral of the instance (:data:`engine.careplan.moves.OPEN_REFERRAL`) adds no item: the open one
takes the higher urgency (its ``accept_by`` is then the earlier of the two), and its history records
the evaluation and the rules that proposed it again.

**Escalations.** A referral still ``referred`` after its ``accept_by`` gets one escalation: a task for
the patient's named contact (their staff identifier when one is recorded), kept in
``referral_escalations`` and listed in the work list, opened by the worker's scan
(:meth:`ReferralEscalations.open_due`, a scan of the ``(status, accept_by)`` index, not a timer in
the diagram: a boundary timer per referral would need the diagram to model every referral). A referral of a patient
who has died (``patient_died``) is withdrawn instead (reason ``patient_died``), never escalated. Opening
one appends a ``referral_overdue`` event (``referral.overdue`` to webhook subscribers); completing it
appends ``referral_escalation_completed`` with the outcome code. Both are written through the store,
with the instance's new revision, as every change to an instance is.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event, check_reason
from engine.careplan.moves import OPEN_REFERRAL, move_item, record_history
from engine.clock import Clock
from engine.db.models import CarePlanItem, InstanceEvent, PathwayInstance, ReferralEscalation
from engine.db.session import note_outcome, read_only, unit_of_work
from engine.errors import ConflictError, InvalidInputError, NotFoundError, Problem, StaleVersionError
from engine.instances.service import PathwayService
from engine.instances.store import ConflictMapper, load_instance, save_instance
from engine.instances.view import ENGINE_ACTOR
from engine.rules.model import URGENCIES
from engine.settings import ReferralTimeframes

__all__ = ["ESCALATION_LIMIT", "ReferralEscalations", "find_open_referral", "is_higher", "raise_urgency"]

ESCALATION_LIMIT = 200  # open escalations listed at most, oldest first


def is_higher(urgency: str | None, than: str | None) -> bool:
    """Whether ``urgency`` is more urgent than ``than`` (an unknown or missing one counts as routine)."""

    def rank(value: str | None) -> int:
        return URGENCIES.index(value) if value in URGENCIES else 0

    return rank(urgency) > rank(than)


def find_open_referral(session: Session, instance_id: str, service: str | None) -> CarePlanItem | None:
    """The instance's open referral to ``service`` (the oldest, should there ever be two), or None."""
    if service is None:
        return None
    return session.scalars(
        select(CarePlanItem)
        .where(
            CarePlanItem.instance_id == instance_id,
            CarePlanItem.kind == "referral",
            CarePlanItem.service == service,
            CarePlanItem.status.in_(OPEN_REFERRAL),
        )
        .order_by(CarePlanItem.created_at, CarePlanItem.id)
    ).first()


def raise_urgency(
    session: Session,
    item: CarePlanItem,
    urgency: str | None,
    evaluation_id: str,
    rules: list[str],
    at: datetime,
    timeframes: ReferralTimeframes,
) -> str | None:
    """A later evaluation proposed the open referral ``item`` again: take ``urgency`` if it is higher,
    record why in the item's history. Returns the urgency it had when raised, else None."""
    previous = item.urgency
    raised = is_higher(urgency, previous)
    if raised:
        item.urgency, item.updated_at, item.updated_by = urgency, at, ENGINE_ACTOR
        if item.status == "referred":  # the service is told now: the earlier of the two deadlines
            sooner = timeframes.due(at, urgency)
            item.accept_by = min(item.accept_by, sooner) if item.accept_by else sooner
    record_history(
        session,
        item,
        "proposed_again",
        at,
        ENGINE_ACTOR,
        from_status=item.status,
        from_urgency=previous,
        evaluation_id=evaluation_id,
        rules=rules,
    )
    return previous if raised else None


def _patient_died(session: Session, instance_id: str) -> bool:
    """Whether the instance received ``patient_died`` (the message's name is in its trail event)."""
    payloads = session.scalars(
        select(InstanceEvent.payload).where(
            InstanceEvent.instance_id == instance_id, InstanceEvent.type == "message_received"
        )
    )
    return any(json.loads(payload).get("message") == "patient_died" for payload in payloads)


@dataclass(frozen=True)
class Escalation:
    """An open escalation as the work list shows it (ids and codes only)."""

    record: dict[str, Any]
    code: str
    service: str | None
    urgency: str | None
    pathway_id: str
    patient_ref: str

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.record,
            "kind": "referral_escalation",
            "code": self.code,
            "service": self.service,
            "urgency": self.urgency,
            "pathway_id": self.pathway_id,
            "patient_ref": self.patient_ref,
        }


class ReferralEscalations:
    """Opening escalations for referrals not accepted in time (the worker), listing and completing them."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock, instances: PathwayService) -> None:
        self.sessions = session_factory
        self.clock = clock
        self.instances = instances

    def open_due(self, limit: int = 100) -> int:
        """Open an escalation for each referral still ``referred`` after its ``accept_by`` (up to
        ``limit``, most overdue first), each in its own unit of work. A referral another worker is
        escalating (locked, or its instance changed meanwhile) is left to it. Returns how many opened.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
        """
        now = self.clock.now()
        with read_only(self.sessions) as session:
            due = list(
                session.scalars(
                    select(CarePlanItem.id)
                    .where(
                        CarePlanItem.status == "referred",
                        CarePlanItem.accept_by <= now,
                        CarePlanItem.escalated_at.is_(None),
                    )
                    .order_by(CarePlanItem.accept_by)
                    .limit(limit)
                )
            )
        opened = 0
        for item_id in due:
            try:
                opened += self._open(item_id, now)
            except StaleVersionError:
                continue  # the instance moved on meanwhile; the next scan sees it as it is
        return opened

    def _open(self, item_id: str, now: datetime) -> int:
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            item = session.scalars(
                select(CarePlanItem)
                .where(
                    CarePlanItem.id == item_id,
                    CarePlanItem.status == "referred",
                    CarePlanItem.accept_by <= now,
                    CarePlanItem.escalated_at.is_(None),
                )
                .with_for_update(skip_locked=True)
            ).first()
            if item is None:
                return 0  # accepted, escalated or held by another worker meanwhile
            instance = load_instance(session, item.instance_id)
            if _patient_died(session, item.instance_id):
                # Nobody is chased about a patient who has died: the referral is withdrawn, by the engine.
                def record(payload: dict[str, Any]) -> None:
                    append_event(
                        session,
                        instance,
                        "care_plan_updated",
                        at=now,
                        actor=ENGINE_ACTOR,
                        pathway_version=instance.pathway_version,
                        payload=payload,
                    )

                move_item(session, item, "withdrawn", ENGINE_ACTOR, now, record, "patient_died")
                instance.updated_at = now
                save_instance(session, instance)
                return 0
            escalation = ReferralEscalation(
                id=str(uuid.uuid4()),
                instance_id=item.instance_id,
                item_id=item.id,
                status="open",
                assignee=self._named_contact(session, item.instance_id),
                accept_by=item.accept_by,
                opened_at=now,
            )
            session.add(escalation)
            item.escalated_at = now
            append_event(
                session,
                instance,
                "referral_overdue",
                at=now,
                actor=ENGINE_ACTOR,
                pathway_version=instance.pathway_version,
                payload={
                    "item": item.id,
                    "code": item.code,
                    "service": item.service,
                    "urgency": item.urgency,
                    "status": item.status,
                    "escalation": escalation.id,
                    "accept_by": item.accept_by.isoformat() if item.accept_by else None,
                },
            )
            instance.updated_at = now
            save_instance(session, instance)
            return 1

    def _named_contact(self, session: Session, instance_id: str) -> str | None:
        """The named contact's staff identifier, when the pathway recorded one."""
        _, data = self.instances.read(session, instance_id)
        record = data.get("patient_status_record")
        contact = (record.get("named_contact") if isinstance(record, dict) else None) or data.get("named_contact")
        staff = contact.get("staff_ref") if isinstance(contact, dict) else None
        return staff if isinstance(staff, str) and 0 < len(staff) <= 64 else None

    def list_open(
        self, patient_ref: str | None = None, pathway_id: str | None = None, reach: ColumnElement[bool] | None = None
    ) -> list[dict[str, Any]]:
        """Open escalations (oldest first, at most :data:`ESCALATION_LIMIT`), optionally of one patient
        or one pathway, of the instances ``reach`` selects (the caller's care teams: a condition on
        ``pathway_instances``, engine.care_teams.CareScope.condition)."""
        with read_only(self.sessions) as session:
            query = (
                select(ReferralEscalation, CarePlanItem, PathwayInstance)
                .join(CarePlanItem, CarePlanItem.id == ReferralEscalation.item_id)
                .join(PathwayInstance, PathwayInstance.id == ReferralEscalation.instance_id)
                .where(ReferralEscalation.status == "open")
                .order_by(ReferralEscalation.opened_at, ReferralEscalation.id)
                .limit(ESCALATION_LIMIT)
            )
            if patient_ref is not None:
                query = query.where(PathwayInstance.patient_ref == patient_ref)
            if pathway_id is not None:
                query = query.where(PathwayInstance.pathway_id == pathway_id)
            if reach is not None:
                query = query.where(reach)
            return [
                Escalation(e.as_dict(), i.code, i.service, i.urgency, p.pathway_id, p.patient_ref).as_dict()
                for e, i, p in session.execute(query)
            ]

    def get(self, escalation_id: str) -> dict[str, Any]:
        """One escalation, as :meth:`complete` returns it.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            escalation = session.get(ReferralEscalation, escalation_id)
            if escalation is None:
                raise NotFoundError(f"no referral escalation {escalation_id!r}")
            return escalation.as_dict()

    def complete(self, escalation_id: str, outcome: Any, actor: str) -> dict[str, Any]:
        """Complete an open escalation with an outcome code (e.g. ``chased_service``, ``re_referred``).

        Raises:
            NotFoundError: no such escalation.
            InvalidInputError: the outcome is missing or not a code.
            ConflictError: already completed.
        """
        code = check_reason(outcome)
        if code is None:
            raise InvalidInputError(
                "completing an escalation needs an outcome code",
                [Problem("expected a code, e.g. chased_service", field="/outcome")],
            )
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            escalation = session.get(ReferralEscalation, escalation_id)
            if escalation is None:
                raise NotFoundError(f"no referral escalation {escalation_id!r}")
            if escalation.status != "open":
                raise ConflictError("this escalation is already completed")
            now = self.clock.now()
            instance = load_instance(session, escalation.instance_id)
            item = session.get(CarePlanItem, escalation.item_id)
            escalation.status, escalation.completed_at = "completed", now
            escalation.completed_by, escalation.outcome = actor, code
            append_event(
                session,
                instance,
                "referral_escalation_completed",
                at=now,
                actor=actor,
                pathway_version=instance.pathway_version,
                payload={
                    "item": escalation.item_id,
                    "code": item.code if item else None,
                    "escalation": escalation.id,
                    "outcome": code,
                },
            )
            instance.updated_at = now
            save_instance(session, instance)
            note_outcome(session, escalation.id)
            return escalation.as_dict()
