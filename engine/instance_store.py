"""Instance rows on the step path: one SELECT to load, one guarded UPDATE to save.

Every step (start, complete a task, deliver a message, fire a timer, retry, suspend) reads one
instance and writes it back. Through the ORM that costs an identity-map load, a lazy load of the
version's spec and a flush with its unit-of-work bookkeeping: measured, more than SpiffWorkflow's
own work for a step (``bench/engine.py``). Here an instance is a plain record, read with one
statement (joined with its version's key) and written with one ``UPDATE ... WHERE revision = the
revision read``: the same optimistic lock the ORM's version counter gave, stated in SQL.

Other rows a step adds (care plan items, rule evaluations) still go through the session, in the
same transaction; the instance's events are written by :func:`engine.audit.write_pending_events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from .audit import write_pending_events
from .db.models import PathwayInstance, PathwayVersion
from .errors import NotFoundError, StaleVersionError

__all__ = ["InstanceRecord", "insert_instances", "load_instance", "load_spec", "save_instance"]

_INSTANCES: Table = PathwayInstance.__table__  # type: ignore[assignment]
_VERSIONS: Table = PathwayVersion.__table__  # type: ignore[assignment]
_COLUMNS = ("id", "pathway_id", "pathway_version_id", "patient_ref", "status", "state", "revision", "next_due_at",
            "incident", "event_seq", "event_head", "created_at", "updated_at")
# What a step may change; id, pathway, patient and creation time never change.
_WRITABLE = ("pathway_version_id", "status", "state", "next_due_at", "incident", "event_seq", "event_head",
             "updated_at")

_LOAD = (select(*(_INSTANCES.c[name] for name in _COLUMNS), _VERSIONS.c.version)
         .join_from(_INSTANCES, _VERSIONS, _INSTANCES.c.pathway_version_id == _VERSIONS.c.id)
         .where(_INSTANCES.c.id == bindparam("instance_id")))
_SAVE = (update(_INSTANCES)
         .where(_INSTANCES.c.id == bindparam("b_id"), _INSTANCES.c.revision == bindparam("b_revision"))
         .values({**{name: bindparam(name) for name in _WRITABLE}, "revision": bindparam("new_revision")}))
_SPEC = select(_VERSIONS.c.spec).where(_VERSIONS.c.id == bindparam("version_id"))


@dataclass(eq=False)
class InstanceRecord:
    """One pathway instance row, with its version's key (``pathway_version``) beside it.

    ``revision`` is the revision read (or last written); :func:`save_instance` writes only if the
    row still has it. Patient data: ``state`` and ``patient_ref`` are never logged.
    """

    id: str
    pathway_id: str
    pathway_version_id: int
    pathway_version: str
    patient_ref: str
    status: str
    state: str
    revision: int
    next_due_at: datetime | None
    incident: str | None
    event_seq: int
    event_head: str
    created_at: datetime
    updated_at: datetime


def load_instance(session: Session, instance_id: str, *, for_update: bool = False) -> InstanceRecord:
    """The instance with its version key, in the session's transaction.

    ``for_update`` locks the row on PostgreSQL (SQLite's write transaction already excludes others).

    Raises:
        NotFoundError: no such instance.
    """
    query = _LOAD.with_for_update() if for_update else _LOAD
    row = session.connection().execute(query, {"instance_id": instance_id}).first()
    if row is None:
        raise NotFoundError(f"no instance {instance_id!r}")
    values = dict(zip(_COLUMNS, row[:-1], strict=True))
    return InstanceRecord(**values, pathway_version=row[-1])


def load_spec(session: Session, version_id: int) -> str:
    """The stored spec JSON of a pathway version (read only when the process has not restored it)."""
    spec = session.connection().execute(_SPEC, {"version_id": version_id}).scalar_one()
    return str(spec)


def save_instance(session: Session, record: InstanceRecord) -> None:
    """Write a changed instance, the rows its step added, and its new events.

    Raises:
        StaleVersionError: another transaction changed the instance since it was read; nothing
            of this one is kept once the caller rolls back.
    """
    params = {name: getattr(record, name) for name in _WRITABLE}
    params.update(b_id=record.id, b_revision=record.revision, new_revision=record.revision + 1)
    result = session.connection().execute(_SAVE, params)
    if result.rowcount != 1:
        raise StaleVersionError("the instance was changed by another request: reload it and try again")
    record.revision += 1
    session.flush()  # rows the step's operators added (care plan items, evaluations)
    write_pending_events(session)


def insert_instances(session: Session, records: list[InstanceRecord]) -> None:
    """Insert new instances (one multi-row INSERT), then their first events."""
    rows = [{name: getattr(record, name) for name in _COLUMNS} for record in records]
    session.connection().execute(insert(_INSTANCES), rows)
    session.flush()
    write_pending_events(session)
