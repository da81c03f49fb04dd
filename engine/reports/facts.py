"""What the measures are computed from: each instance's dated milestones, read from the event trail,
and each referral's dated status moves, read from the care plan and its ``care_plan_updated`` events.

Never free text and never task data: an event's type, element, time and the codes of its payload
(a message's name; a care plan item's id, status, service and urgency) are all that is read.

Milestones are named by the element whose task completed (the bundled pathways' ids, listed in
:data:`MILESTONES`; ``docs/measures.md`` says which measure reads which). Diagnosis is the instance's
``started`` event: the bundled pathways start at "Diagnosis confirmed".
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.db.models import CarePlanItem, InstanceEvent, PathwayInstance

__all__ = [
    "CLOSING_STATUSES",
    "MILESTONES",
    "RATINGS",
    "WARNING_SIGN_MESSAGE",
    "Cohort",
    "InstanceFacts",
    "ItemFacts",
    "load_cohort",
]

# milestone -> the elements (bundled pathways' BPMN ids) whose completed task marks it.
MILESTONES: dict[str, tuple[str, ...]] = {
    "hna_offered": ("offer_hna",),
    "hna_completed": ("complete_checklist", "complete_checklist_cyp"),
    "plan_agreed": ("agree",),
    "treatment_ended": ("treatment",),
    "eot_summary": ("write_summary",),
    "care_review": ("first_review", "second_review"),
    "triaged": ("triage", "escalated_triage"),
}
# The warning sign triage's outcome tasks: the rating the nurse gave decides which one follows.
RATINGS: dict[str, str] = {"urgent_assessment": "red", "call_back": "amber", "self_care": "green"}
WARNING_SIGN_MESSAGE = "warning_sign_reported"
# A referral or intervention that ended without being done, by who ended it (the status is the reason).
CLOSING_STATUSES = ("declined", "service_declined", "did_not_attend", "withdrawn")
_ELEMENT_MILESTONE = {element: name for name, elements in MILESTONES.items() for element in elements}
_ELEMENTS = sorted({*_ELEMENT_MILESTONE, *RATINGS})


@dataclass
class InstanceFacts:
    """One instance's dated milestones (each list in time order)."""

    instance_id: str
    pathway_id: str
    diagnosed_at: datetime | None = None
    milestones: dict[str, list[datetime]] = field(default_factory=dict)
    warning_reports: list[datetime] = field(default_factory=list)
    ratings: list[tuple[datetime, str]] = field(default_factory=list)

    def first(self, milestone: str, after: datetime | None = None) -> datetime | None:
        """The first time ``milestone`` was reached (at or after ``after``), or None."""
        return next((at for at in self.milestones.get(milestone, []) if after is None or at >= after), None)


@dataclass
class ItemFacts:
    """One care plan item and the first time it reached each status (``moved``)."""

    item_id: str
    instance_id: str
    kind: str
    code: str
    service: str | None
    urgency: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    moved: dict[str, datetime] = field(default_factory=dict)

    @property
    def referred_at(self) -> datetime | None:
        return self.moved.get("referred")

    @property
    def closed_at(self) -> datetime | None:
        """When an item that ended without being done ended (None: it did not)."""
        if self.status not in CLOSING_STATUSES:
            return None
        return self.moved.get(self.status, self.updated_at)


@dataclass
class Cohort:
    """Everything the measures read, for the instances of one pathway (or all) started before a time."""

    instances: list[InstanceFacts]
    items: list[ItemFacts]

    @property
    def referrals(self) -> list[ItemFacts]:
        return [item for item in self.items if item.kind == "referral"]


def load_cohort(
    session: Session, pathway_id: str | None, until: datetime | None, instance_ids: Collection[str] | None = None
) -> Cohort:
    """The facts of the instances started before ``until`` (of ``pathway_id``, or every pathway; of
    ``instance_ids`` only, when given).

    Outcomes are read whenever they happened (up to now): a period selects who is counted, not
    when their outcome may fall.
    """
    scope: list[Any] = [] if until is None else [PathwayInstance.created_at < until]
    if instance_ids is not None:
        scope.append(PathwayInstance.id.in_(list(instance_ids)))
    if pathway_id is not None:
        scope.append(PathwayInstance.pathway_id == pathway_id)
    rows = session.execute(
        select(
            InstanceEvent.instance_id,
            InstanceEvent.type,
            InstanceEvent.element,
            InstanceEvent.at,
            InstanceEvent.payload,
            PathwayInstance.pathway_id,
        )
        .join(PathwayInstance, PathwayInstance.id == InstanceEvent.instance_id)
        .where(
            *scope,
            or_(
                InstanceEvent.type.in_(("started", "message_received", "care_plan_updated")),
                and_(InstanceEvent.type == "task_completed", InstanceEvent.element.in_(_ELEMENTS)),
            ),
        )
        .order_by(InstanceEvent.instance_id, InstanceEvent.seq)
    )
    facts: dict[str, InstanceFacts] = {}
    moves: dict[str, dict[str, Any]] = {}  # item id -> the newest codes its events carried
    for instance_id, kind, element, at, payload, pathway in rows:
        one = facts.get(instance_id)
        if one is None:
            one = facts[instance_id] = InstanceFacts(instance_id, pathway)
        if kind == "started":
            one.diagnosed_at = at
        elif kind == "task_completed":
            if element in RATINGS:
                one.ratings.append((at, RATINGS[element]))
            elif element is not None:
                one.milestones.setdefault(_ELEMENT_MILESTONE[element], []).append(at)
        elif kind == "message_received":
            if _codes(payload).get("message") == WARNING_SIGN_MESSAGE:
                one.warning_reports.append(at)
        else:
            _note_move(moves, instance_id, _codes(payload), at)
    return Cohort(list(facts.values()), _care_plan(session, scope, moves))


def _codes(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _note_move(moves: dict[str, dict[str, Any]], instance_id: str, payload: dict[str, Any], at: datetime) -> None:
    """One item's ``care_plan_updated`` event: the first time it reached its status is kept."""
    item, status = payload.get("item"), payload.get("status")
    if not isinstance(item, str) or not isinstance(status, str):
        return  # a round's summary (counts only): no item to time
    entry = moves.setdefault(item, {"instance_id": instance_id, "moved": {}})
    entry["moved"].setdefault(status, at)
    for code in ("service", "urgency"):
        if isinstance(payload.get(code), str):
            entry[code] = payload[code]


def _care_plan(session: Session, scope: Iterable[Any], moves: dict[str, dict[str, Any]]) -> list[ItemFacts]:
    rows = session.execute(
        select(
            CarePlanItem.id,
            CarePlanItem.instance_id,
            CarePlanItem.kind,
            CarePlanItem.code,
            CarePlanItem.service,
            CarePlanItem.urgency,
            CarePlanItem.status,
            CarePlanItem.created_at,
            CarePlanItem.updated_at,
        )
        .join(PathwayInstance, PathwayInstance.id == CarePlanItem.instance_id)
        .where(*scope)
        .order_by(CarePlanItem.created_at, CarePlanItem.id)
    )
    items = []
    for item_id, instance_id, kind, code, service, urgency, status, created_at, updated_at in rows:
        entry = moves.get(item_id, {"moved": {}})
        moved = dict(entry["moved"])
        moved.setdefault("proposed", created_at)
        if kind == "referral" and "referred" not in moved and urgency == "emergency":
            moved["referred"] = created_at  # an emergency is created referred (engine.careplan)
        if kind == "referral":
            service = entry.get("service") or service or "unknown"
            urgency = entry.get("urgency") or urgency or "unknown"
        items.append(
            ItemFacts(item_id, instance_id, kind, code, service, urgency, status, created_at, updated_at, moved)
        )
    return items
