"""How a care plan item moves: the statuses, which move is allowed from which, and the item's history.

A referral goes through the service's own steps; interventions and information are agreed and done::

    referral     proposed -> agreed -> referred -> accepted -> first_contact -> completed
                 referred -> service_declined              (the service will not take it)
                 accepted -> did_not_attend -> first_contact (a later appointment kept)
                 referred / accepted / first_contact / did_not_attend -> withdrawn
                 proposed / agreed / referred -> declined  (the patient's decision)
    other items  proposed -> agreed -> completed;  proposed / agreed -> declined
    any item     declined -> agreed                (reconsidered: needs a reason code)

Every move is recorded twice, in the same transaction: a row of ``care_plan_item_moves`` (who, when,
from, to, the reason code) and a ``care_plan_updated`` event on the instance's trail whose payload
is ``{item, code, status, service, urgency}`` plus ``reason`` when one was given -- ids and codes only,
never patient data. Service measures are computed from those events' ``status`` and time.

A reason is a code (lower case letters, digits and ``_``, at most 64), never free text: it goes into
the event trail. Suggested codes are listed in docs/api.md ("The care plan item states").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import check_reason
from engine.db.models import CarePlanItem, CarePlanItemMove
from engine.errors import ConflictError, InvalidInputError, Problem
from engine.webhooks import note_referral

__all__ = [
    "OPEN_REFERRAL",
    "STATUSES",
    "SUGGESTED_REASONS",
    "EventRecorder",
    "history",
    "move_item",
    "next_statuses",
    "record_history",
]

STATUSES = (
    "proposed",
    "agreed",
    "declined",
    "referred",
    "accepted",
    "first_contact",
    "completed",
    "service_declined",
    "did_not_attend",
    "withdrawn",
)
# A referral the service holds: a later proposal for its service raises it instead of adding another.
OPEN_REFERRAL = ("referred", "accepted", "first_contact")
_REFERRAL_NEXT = {
    "proposed": ("agreed", "declined"),
    "agreed": ("declined", "referred"),
    "referred": ("declined", "accepted", "service_declined", "withdrawn"),
    "accepted": ("first_contact", "did_not_attend", "withdrawn"),
    "first_contact": ("completed", "withdrawn"),
    "did_not_attend": ("first_contact", "withdrawn"),
    "declined": ("agreed",),
}
_OTHER_NEXT = {
    "proposed": ("agreed", "declined"),
    "agreed": ("declined", "completed"),
    "declined": ("agreed",),
}
# The reason codes the web app offers (any code is accepted; docs/api.md lists them).
SUGGESTED_REASONS = (
    "patient_changed_mind",
    "needs_changed",
    "not_eligible",
    "service_capacity",
    "referred_elsewhere",
    "patient_request",
    "no_longer_needed",
    "could_not_contact",
)
# Moves that must say why: taking back the patient's decline.
_REASON_NEEDED = {("declined", "agreed")}

# Records one trail event of the move: (payload) -> None, in the caller's step or unit of work.
EventRecorder = Callable[[dict[str, Any]], None]


def next_statuses(status: str, kind: str = "referral") -> tuple[str, ...]:
    """The statuses an item of ``kind`` in ``status`` may move to (in :data:`STATUSES` order)."""
    allowed = (_REFERRAL_NEXT if kind == "referral" else _OTHER_NEXT).get(status, ())
    return tuple(s for s in STATUSES if s in allowed)


def move_item(
    session: Session,
    item: CarePlanItem,
    status: str,
    actor: str,
    at: datetime,
    record: EventRecorder,
    reason: str | None = None,
) -> None:
    """Move ``item`` to ``status``: the item, its history row, its event and (for a referral) the
    ``referral.changed`` webhook note. The caller sets ``accept_by`` when a referral becomes referred.

    Raises:
        InvalidInputError: an unknown status or a reason that is not a code.
        ConflictError: the move is not allowed from the item's status, or needs a reason not given.
    """
    if status not in STATUSES:
        raise InvalidInputError(
            "unknown care plan status", [Problem(f"must be one of {', '.join(STATUSES)}", field="/status")]
        )
    reason = check_reason(reason)
    if status not in next_statuses(item.status, item.kind):
        raise ConflictError(f"a {item.status} item cannot become {status}")
    if (item.status, status) in _REASON_NEEDED and reason is None:
        raise ConflictError(f"reconsidering a {item.status} item needs a reason code")
    previous = item.status
    item.status, item.updated_at, item.updated_by = status, at, actor
    record_history(session, item, "status", at, actor, from_status=previous, reason=reason)
    record(
        {
            "item": item.id,
            "code": item.code,
            "status": status,
            "service": item.service,
            "urgency": item.urgency,
            **({"reason": reason} if reason else {}),
        }
    )
    if item.kind == "referral":  # told to webhook subscribers when the step is written (engine.webhooks)
        note_referral(session, item.instance_id, item.id, status, created=False)


def record_history(
    session: Session,
    item: CarePlanItem,
    change: str,
    at: datetime,
    actor: str,
    *,
    from_status: str | None = None,
    from_urgency: str | None = None,
    reason: str | None = None,
    evaluation_id: str | None = None,
    rules: list[str] | None = None,
) -> None:
    """Add one row to the item's history (its status and urgency as they are now)."""
    session.add(
        CarePlanItemMove(
            item_id=item.id,
            instance_id=item.instance_id,
            change=change,
            from_status=from_status,
            to_status=item.status,
            from_urgency=from_urgency,
            to_urgency=item.urgency,
            reason=reason,
            evaluation_id=evaluation_id,
            rules=json.dumps(rules) if rules is not None else None,
            at=at,
            actor=actor,
        )
    )


def history(session: Session, item_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each item's history, oldest first (one query)."""
    found: dict[str, list[dict[str, Any]]] = {item_id: [] for item_id in item_ids}
    if not item_ids:
        return found
    for move in session.scalars(
        select(CarePlanItemMove).where(CarePlanItemMove.item_id.in_(item_ids)).order_by(CarePlanItemMove.id)
    ):
        found[move.item_id].append(move.as_dict())
    return found
