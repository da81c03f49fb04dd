"""Who looked: every read of a patient's records, for auditors (issue 18, point 3).

A front end wraps each read request in :func:`watching`; while it runs, every pathway instance, rule
evaluation and care plan item the request loads from the database names its instance here (SQLAlchemy's
``load`` event: a route cannot forget to say what it read). Afterwards the front end calls
:func:`record_reads` with who asked, through which route, on whose behalf and with what outcome: one row
per instance read, in a unit of work of its own on the primary, never in the read's own (read-only)
transaction. A read that found nothing (404) or was refused (403) is recorded too, as an attempt.

A row holds identifiers only -- the instance, its patient reference, the actor, the route's template
and the status -- never what was shown. The access log is not the hash-chained event trail: it is kept
for a retention period (``purge_reads``) and may be erased after it, as records law requires.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, bindparam, delete, event, func, insert, literal, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from engine.db.models import (
    AccessRecord,
    CarePlanItem,
    DecisionEvaluationRecord,
    PathwayInstance,
    RuleEvaluationRecord,
)
from engine.db.session import unit_of_work
from engine.errors import InvalidInputError, Problem

__all__ = [
    "PATIENT_DATA_READS",
    "Access",
    "ReadFilter",
    "list_reads",
    "noting",
    "not_shown",
    "purge_reads",
    "record_reads",
    "saw",
    "watching",
]

log = logging.getLogger(__name__)

# The permissions whose routes show a patient's records (engine.access.PERMISSIONS).
PATIENT_DATA_READS = frozenset(
    {
        "instances.read",
        "tasks.read",
        "events.read",
        "documents.read",
        "evaluations.read",
        "patient.read",
        "reports.export",
    }
)
MAX_LIMIT = 200
_seen: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("carepath_seen_instances", default=None)


def _saw_instance(target: PathwayInstance, _context: Any) -> None:
    seen = _seen.get()
    if seen is not None:
        seen.add(target.id)


def _saw_owner(target: RuleEvaluationRecord | CarePlanItem | DecisionEvaluationRecord, _context: Any) -> None:
    seen = _seen.get()
    if seen is not None and target.instance_id is not None:
        seen.add(target.instance_id)


event.listen(PathwayInstance, "load", _saw_instance)
event.listen(RuleEvaluationRecord, "load", _saw_owner)
event.listen(CarePlanItem, "load", _saw_owner)
event.listen(DecisionEvaluationRecord, "load", _saw_owner)


@contextlib.contextmanager
def watching() -> Iterator[set[str]]:
    """Collect the ids of the instances whose records are loaded inside the block (the set grows as
    they are loaded; read it when the block's work is done)."""
    seen: set[str] = set()
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)


def noting() -> bool:
    """Whether the reads of this context are being noted (an access-logged request): a caller that must
    work to name what it read (the COSD export reads its instances out of its own rows) can skip it when
    not."""
    return _seen.get() is not None


def saw(instance_ids: Collection[str]) -> None:
    """Name instances whose records were read from plain columns, where no ORM load event sees them
    (the COSD export reads a patient's rows in one statement: engine.reports.cosd)."""
    seen = _seen.get()
    if seen is not None:
        seen.update(instance_ids)


def not_shown(instance_ids: Collection[str]) -> None:
    """Take back instances that were loaded but not shown (a list reads one row past its page to know
    whether there is another): they were not looked at."""
    seen = _seen.get()
    if seen is not None:
        seen.difference_update(instance_ids)


@dataclass(frozen=True)
class Access:
    """One read request, as the access log names it: identifiers only."""

    at: datetime
    actor: str
    action: str
    route: str
    status: int
    request_id: str
    on_behalf_of: str | None = None
    # A clinician's declared read outside their care teams (engine.care_teams.BreakGlass): its reason code
    # and their note, kept only in the access log (never logged, never in the event trail).
    break_glass_reason: str | None = None
    break_glass_note: str | None = None


def record_reads(sessions: sessionmaker[Session], access: Access, instance_ids: Collection[str]) -> int:
    """Write one row per instance read (one row without an instance when none was: an attempt), each with
    its patient reference and organisation. Returns the number of rows. Raises what the database raises.

    On PostgreSQL the rows are one ``INSERT ... SELECT`` that joins the ids (one array parameter, however
    many: an export names tens of thousands) to their instances: one statement, whatever the size. A list
    page's 50 rows went through a lookup and a 50-row ``executemany``, half of the page's time; an
    export's 10,000 rows took 1 s through the ORM's bulk insert."""
    ids = sorted(set(instance_ids))
    common = {
        "at": access.at,
        "actor": access.actor[:200],
        "on_behalf_of": access.on_behalf_of,
        "action": access.action[:64],
        "route": access.route[:200],
        "status": access.status,
        "request_id": access.request_id[:128],
        "break_glass": access.break_glass_reason is not None,
        "break_glass_reason": access.break_glass_reason,
        "break_glass_note": access.break_glass_note[:500] if access.break_glass_note else None,
    }
    table = AccessRecord.metadata.tables[AccessRecord.__tablename__]
    with unit_of_work(sessions) as session:
        if not ids:
            session.execute(insert(table), [{**common, "instance_id": None, "patient_ref": None, "organisation": None}])
            return 1
        if session.get_bind().dialect.name == "postgresql":
            read = (
                func.unnest(bindparam("ids", ids, type_=ARRAY(String)))
                .table_valued("instance_id", with_ordinality="number")
                .render_derived(name="read")
            )
            rows = (
                select(
                    *(literal(value, table.c[name].type).label(name) for name, value in common.items()),
                    read.c.instance_id,
                    PathwayInstance.patient_ref,
                    PathwayInstance.organisation,
                )
                .select_from(read.outerjoin(PathwayInstance, PathwayInstance.id == read.c.instance_id))
                .order_by(read.c.number)
            )
            session.execute(insert(table).from_select([*common, "instance_id", "patient_ref", "organisation"], rows))
            return len(ids)
        refs: dict[str, tuple[str, str]] = {}
        for first in range(0, len(ids), 500):
            refs.update(
                (row.id, (row.patient_ref, row.organisation))
                for row in session.execute(
                    select(PathwayInstance.id, PathwayInstance.patient_ref, PathwayInstance.organisation).where(
                        PathwayInstance.id.in_(ids[first : first + 500])
                    )
                )
            )
        session.execute(
            insert(table),
            [
                {
                    **common,
                    "instance_id": i,
                    "patient_ref": refs.get(i, (None, None))[0],
                    "organisation": refs.get(i, (None, None))[1],
                }
                for i in ids
            ],
        )
    return len(ids)


@dataclass(frozen=True)
class ReadFilter:
    patient_ref: str | None = None
    instance_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    organisation: str | None = None  # an auditor's own organisation (engine.care_teams); None: every one
    break_glass: bool | None = None  # True: break-glass reads only; False: none of them


def list_reads(
    session: Session, where: ReadFilter, cursor: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """Access records matching ``where``, newest first, and the cursor of the next page (None: no more).

    Raises:
        InvalidInputError: a bad cursor or limit, or a naive time.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("limit out of range", [Problem(f"must be between 1 and {MAX_LIMIT}", field="limit")])
    query = select(AccessRecord)
    for column, value in (
        (AccessRecord.patient_ref, where.patient_ref),
        (AccessRecord.instance_id, where.instance_id),
        (AccessRecord.actor, where.actor),
        (AccessRecord.organisation, where.organisation),
        (AccessRecord.break_glass, where.break_glass),
    ):
        if value is not None:
            query = query.where(column == value)
    for name, when in (("since", where.since), ("until", where.until)):
        if when is not None and when.tzinfo is None:
            raise InvalidInputError(f"{name} needs a time zone", [Problem("must have a zone offset", field=name)])
    if where.since is not None:
        query = query.where(AccessRecord.at >= where.since)
    if where.until is not None:
        query = query.where(AccessRecord.at < where.until)
    if cursor:
        at, row_id = _decode(cursor)
        query = query.where(tuple_(AccessRecord.at, AccessRecord.id) < tuple_(at, row_id))
    rows = list(session.scalars(query.order_by(AccessRecord.at.desc(), AccessRecord.id.desc()).limit(limit + 1)))
    items = [
        {
            "at": r.at.isoformat(),
            "actor": r.actor,
            "on_behalf_of": r.on_behalf_of,
            "action": r.action,
            "route": r.route,
            "status": r.status,
            "instance_id": r.instance_id,
            "patient_ref": r.patient_ref,
            "request_id": r.request_id,
            "organisation": r.organisation,
            "break_glass": bool(r.break_glass),
            "break_glass_reason": r.break_glass_reason,
            "break_glass_note": r.break_glass_note,
        }
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return items, (_encode(last.at, last.id) if last is not None else None)


def purge_reads(sessions: sessionmaker[Session], before: datetime) -> int:
    """Erase the access records older than ``before`` (the end of their retention); returns how many."""
    if before.tzinfo is None:
        raise ValueError("a naive datetime")
    with unit_of_work(sessions) as session:
        result = session.execute(delete(AccessRecord).where(AccessRecord.at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _encode(at: datetime, row_id: int) -> str:
    raw = json.dumps([at.astimezone(UTC).isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(row_id, int):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "the cursor is not one this API returned", [Problem("is not a valid cursor", field="cursor")]
        ) from exc
    return when.astimezone(UTC), row_id
