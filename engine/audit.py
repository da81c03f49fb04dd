"""The event trail: append-only, hash-chained per instance, verifiable.

Each event's hash covers its own fields and the previous event's hash; the instance row keeps the
sequence number and hash of its newest event. Editing, reordering or deleting any row (the newest
included) therefore breaks verification. Payloads never carry patient data: task data is recorded
as a SHA-256 digest of its canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Protocol, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from engine.db.models import InstanceEvent, PathwayInstance

__all__ = ["EVENT_TYPES", "ChainHead", "TrailProblem", "append_event", "data_digest", "take_pending_events",
           "verify_trail"]

GENESIS = "0" * 64
_PENDING = "carepath.pending_events"
_EVENTS = cast(Table, InstanceEvent.__table__)
EVENT_TYPES = frozenset(
    {
        "started", "task_completed", "timer_fired", "message_received", "suspended", "resumed",
        "cancelled", "migrated", "error", "retried", "completed", "rules_evaluated", "care_plan_updated",
    }
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def data_digest(data: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _event_hash(event: Any) -> str:
    body = canonical_json(
        [event.instance_id, event.seq, event.type, event.at.isoformat(), event.actor, event.pathway_version,
         event.element, event.task_id, event.payload, event.prev_hash]
    )
    return hashlib.sha256(body.encode()).hexdigest()


class ChainHead(Protocol):
    """What an instance must offer to have events appended: an ORM row or an instance record."""

    id: str
    event_seq: int
    event_head: str


def append_event(
    session: Session,
    instance: ChainHead,
    event_type: str,
    *,
    at: datetime,
    actor: str,
    pathway_version: str,
    element: str | None = None,
    task_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event to an instance's trail; ``engine.instances.store`` writes it with the instance.

    Raises:
        ValueError: for an unknown event type.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = SimpleNamespace(
        instance_id=instance.id,
        seq=instance.event_seq + 1,
        type=event_type,
        at=at,
        actor=actor,
        pathway_version=pathway_version,
        element=element,
        task_id=task_id,
        payload=canonical_json(payload or {}),
        prev_hash=instance.event_head,
    )
    event.hash = _event_hash(event)
    # Written by the instance's one writer (engine.instances.store) in one multi-row INSERT with the
    # instance's guarded update: events are never changed, so they need none of the ORM's bookkeeping.
    session.info.setdefault(_PENDING, []).append(vars(event))
    instance.event_seq = event.seq
    instance.event_head = event.hash
    return vars(event)


def take_pending_events(session: Session) -> list[dict[str, Any]]:
    """The events appended in this session and not written yet, for a writer that writes them itself
    (:mod:`engine.instances.store`); they are no longer pending afterwards."""
    return cast(list[dict[str, Any]], session.info.pop(_PENDING, None) or [])


@dataclass(frozen=True)
class TrailProblem:
    instance_id: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"instance {self.instance_id}" + (f" event {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.message}"


def verify_trail(session: Session, instance_ids: Iterable[str] | None = None) -> list[TrailProblem]:
    """Check every instance's chain; return what is wrong (empty when the trail is intact)."""
    query = select(PathwayInstance.id, PathwayInstance.event_seq, PathwayInstance.event_head)
    if instance_ids is not None:
        query = query.where(PathwayInstance.id.in_(list(instance_ids)))
    problems: list[TrailProblem] = []
    for instance_id, head_seq, head_hash in session.execute(query.order_by(PathwayInstance.id)):
        events = session.scalars(
            select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.id)
        ).all()
        problems.extend(_verify_chain(instance_id, list(events), head_seq, head_hash))
    return problems


def _verify_chain(instance_id: str, events: list[InstanceEvent], head_seq: int, head_hash: str) -> list[TrailProblem]:
    problems = []
    prev_hash, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(TrailProblem(instance_id, event.seq,
                                         f"out of order or missing events: expected event {expected_seq}"))
        if event.prev_hash != prev_hash:
            problems.append(TrailProblem(instance_id, event.seq, "does not follow the previous event (chain broken)"))
        if _event_hash(event) != event.hash:
            problems.append(TrailProblem(instance_id, event.seq, "content was changed after it was written"))
        prev_hash, expected_seq = event.hash, event.seq + 1
    if events and (events[-1].seq != head_seq or events[-1].hash != head_hash) or (not events and head_seq):
        problems.append(TrailProblem(instance_id, None,
                                     f"trail ends before the instance's newest event {head_seq} (events deleted)"))
    return problems
