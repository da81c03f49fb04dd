"""Instance rows on the step path: one SELECT to load, one guarded UPDATE to save.

Every step (start, complete a task, deliver a message, fire a timer, retry, suspend) reads one
instance and writes it back with its new events. Through the ORM that cost an identity-map load,
a lazy load of the version's spec and a flush with its unit-of-work bookkeeping; through Core it
still cost 0.2-0.3 ms of statement handling per statement -- together more than SpiffWorkflow's
own work for a step (``bench/engine.py``), for three statements a driver runs in 0.1 ms.

So these statements are written once per database dialect and run on the driver's cursor
inside the session's transaction (the session still begins, commits and rolls back, and other rows
a step adds -- care plan items, rule evaluations -- still go through it). Values pass through the
columns' own SQLAlchemy type processors, so what is stored is what the ORM would store. The
optimistic lock is stated in SQL: ``UPDATE ... WHERE id = ? AND revision = <the revision read>``.
On PostgreSQL that UPDATE and the INSERT of the step's events are one statement (a data-modifying
``WITH``), so a step's write is one round trip; a step's events are one multi-row INSERT elsewhere.

The workflow state is stored compressed (``engine.db.stored_state``): it is inflated when the row
is loaded and compressed only when a step changed it; a save that keeps the state writes every
other column and leaves the stored bytes as they are. A stored state that cannot be read does not
stop the row from loading: the record says so (``unreadable_state``), so that its incident can be
written; restoring it is refused (``engine.instances.step``).

The ready-task elements an instance is at (``ready_task_elements``, what the work list's element
filter reads) are written here too, whenever a step changes the instance's ready tasks.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Dialect, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.audit import seal_events, take_pending_events
from engine.db.models import ACTIVE_STATUSES, InstanceEvent, PathwayInstance
from engine.db.stored_state import UnreadableStateError, decode_state, encode_state
from engine.errors import ConflictError, NotFoundError, Problem, StaleVersionError
from engine.webhooks import StepFacts, derive_notices, enqueue, take_referrals

__all__ = [
    "MAX_BATCH",
    "STATE_TOO_LARGE",
    "ConflictMapper",
    "InstanceRecord",
    "active_instance_of",
    "insert_instances",
    "is_second_active_instance",
    "load_instance",
    "load_instances",
    "load_latest_version",
    "load_spec",
    "ready_elements",
    "save_instance",
]

_INSTANCES: Table = PathwayInstance.__table__  # type: ignore[assignment]
_EVENTS: Table = InstanceEvent.__table__  # type: ignore[assignment]
# The code of the problem a step raises when its new workflow state is over the size a stored state
# may have (engine.db.stored_state.MAX_STATE_BYTES): 409, and nothing of the step is written.
STATE_TOO_LARGE = "state-too-large"

_COLUMNS = (
    "id",
    "pathway_id",
    "pathway_version_id",
    "patient_ref",
    "status",
    "state",
    "revision",
    "next_due_at",
    "incident",
    "event_seq",
    "event_head",
    "state_mac",
    "created_at",
    "updated_at",
    "ready_tasks",
    "notice_contacts",
    "one_per_patient",
    "organisation",
    "care_team",
    "pathway_check",
)
# What a step may change; id, pathway, patient, organisation and creation time never change. The
# state is written only by a step that changed it (:func:`save_instance`).
_WRITABLE = (
    "pathway_version_id",
    "status",
    "next_due_at",
    "incident",
    "event_seq",
    "event_head",
    "state_mac",
    "updated_at",
    "ready_tasks",
    "notice_contacts",
    "care_team",
    "pathway_check",
)
_MAX_EVENTS_PER_STATEMENT = 16
_EVENT_COLUMNS = (
    "instance_id",
    "seq",
    "type",
    "at",
    "actor",
    "pathway_version",
    "element",
    "task_id",
    "payload",
    "prev_hash",
    "hash",
    "state_digest",
    "mac",
)


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
    ready_tasks: str | None = None  # JSON summary for work lists (engine.spiff.workflows.ready_task_summary)
    # The summary as the database holds it (read, or last written): its elements are rows of
    # ready_task_elements, rewritten when the summary changes, and what a save compares ``ready_tasks``
    # with for ``task.ready`` webhooks.
    stored_ready_tasks: str | None = None
    # What the ready tasks' safety notices are filled from (engine.spiff.workflows.notice_contacts):
    # None when no ready task's form declares one.
    notice_contacts: str | None = None
    one_per_patient: bool = True  # counted by the one-active-instance index (set at start only)
    # Why the stored state could not be read (engine.db.stored_state), if it could not: ``state`` is
    # then empty and the step path refuses to restore it; the stored bytes are kept as they are.
    unreadable_state: str | None = None
    # The state as the database holds it (read, or last written) and its seal (engine.audit.TrailKey.state_mac,
    # None without a trail key): a step that records the state's digest without rewriting it seals these bytes.
    stored_state: bytes | None = None
    state_mac: str | None = None
    # Who looks after the patient (engine.care_teams): the organisation never changes, the team moves with a reason.
    organisation: str = ""
    care_team: str = ""
    # The site a diagnosis names that is not the pathway's, until a clinician checks it (engine.pathway_checks).
    pathway_check: str | None = None


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class _Statements:
    """The step's statements in one dialect's parameter style, with its datetime converters."""

    load: str
    load_spec: str
    latest_version: str
    save: str  # every writable column but the state
    save_state: str  # the same with the state
    delete_elements: str
    insert_element: str
    to_db: Converter  # UTCDateTime's bind processing
    from_db: Converter  # UTCDateTime's result processing
    placeholder: Callable[[str], str]
    # PostgreSQL runs an UPDATE inside a WITH: the instance and its events in one round trip.
    writes_in_one_statement: bool

    def insert_events(self, count: int) -> str:
        """One INSERT of ``count`` events (parameters ``e0_seq``, ``e1_seq``, ...)."""
        return _insert_events_sql(self, count)

    def save_with_events(self, count: int, with_state: bool) -> str:
        """The guarded UPDATE and the INSERT of ``count`` events in one statement: the events are
        inserted once per updated row, so a stale revision inserts none (rowcount 0)."""
        return _save_with_events_sql(self, count, with_state)

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> _Statements:
        def p(name: str) -> str:  # the driver's named placeholder
            return f"%({name})s" if dialect.paramstyle in ("pyformat", "format") else f":{name}"

        def chain(*functions: Converter | None) -> Converter:
            steps = [f for f in functions if f is not None]

            def convert(value: Any) -> Any:
                for step in steps:
                    value = step(value)
                return value

            return convert

        column_type = _INSTANCES.c.next_due_at.type.dialect_impl(dialect)  # with the dialect's own impl
        to_db = chain(column_type.bind_processor(dialect))
        from_db = chain(column_type.result_processor(dialect, None))
        columns = ", ".join(f"i.{name}" for name in _COLUMNS)
        return cls(
            load=(
                f"SELECT {columns}, v.version FROM pathway_instances i "
                f"JOIN pathway_versions v ON v.id = i.pathway_version_id WHERE i.id = {p('instance_id')}"
            ),
            load_spec=f"SELECT spec FROM pathway_versions WHERE id = {p('version_id')}",
            latest_version=(
                "SELECT id, version, start_schema FROM pathway_versions "
                f"WHERE pathway_id = {p('pathway_id')} AND activated_at IS NOT NULL "
                "ORDER BY activated_at DESC, id DESC LIMIT 1"
            ),
            save=_update_sql(_WRITABLE, p),
            save_state=_update_sql((*_WRITABLE, "state"), p),
            delete_elements=f"DELETE FROM ready_task_elements WHERE instance_id = {p('instance_id')}",
            insert_element=(
                f"INSERT INTO ready_task_elements (instance_id, element, created_at) "
                f"VALUES ({p('instance_id')}, {p('element')}, {p('created_at')})"
            ),
            to_db=to_db,
            from_db=from_db,
            placeholder=p,
            writes_in_one_statement=dialect.name == "postgresql",
        )


def _update_sql(columns: tuple[str, ...], p: Callable[[str], str]) -> str:
    return (
        f"UPDATE pathway_instances SET {', '.join(f'{name} = {p(name)}' for name in columns)}, "
        f"revision = {p('new_revision')} WHERE id = {p('id')} AND revision = {p('revision')}"
    )


@functools.lru_cache(maxsize=64)
def _insert_events_sql(sql: _Statements, count: int) -> str:
    p = sql.placeholder
    rows = ", ".join("(" + ", ".join(p(f"e{n}_{name}") for name in _EVENT_COLUMNS) + ")" for n in range(count))
    return f"INSERT INTO instance_events ({', '.join(_EVENT_COLUMNS)}) VALUES {rows}"


@functools.lru_cache(maxsize=128)
def _save_with_events_sql(sql: _Statements, count: int, with_state: bool) -> str:
    p = sql.placeholder
    rows = " UNION ALL ".join(
        "SELECT " + ", ".join(p(f"e{n}_{name}") for name in _EVENT_COLUMNS) + " FROM moved" for n in range(count)
    )
    update = sql.save_state if with_state else sql.save
    return f"WITH moved AS ({update} RETURNING 1) INSERT INTO instance_events ({', '.join(_EVENT_COLUMNS)}) {rows}"


_statements: dict[str, _Statements] = {}
_statements_lock = threading.Lock()


def _for(session: Session) -> tuple[Any, _Statements]:
    """The driver connection of the session's transaction (begun here if need be) and its statements."""
    connection = session.connection()
    dialect = connection.dialect
    statements = _statements.get(dialect.name)
    if statements is None:
        with _statements_lock:
            statements = _statements.setdefault(dialect.name, _Statements.for_dialect(dialect))
    return connection.connection.driver_connection, statements


def load_instance(session: Session, instance_id: str) -> InstanceRecord:
    """The instance with its version key, in the session's transaction.

    Raises:
        NotFoundError: no such instance.
    """
    driver, sql = _for(session)
    cursor = driver.cursor()
    try:
        cursor.execute(sql.load, {"instance_id": instance_id})
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None:
        raise NotFoundError(f"no instance {instance_id!r}")
    return _record(sql, row)


# Ids per batch read: one statement's parameters stay well under SQLite's and PostgreSQL's limits.
MAX_BATCH = 500


def load_instances(session: Session, instance_ids: list[str]) -> dict[str, InstanceRecord]:
    """The instances of ``instance_ids`` that exist, by id, with their version keys: one SELECT for a
    batch (a bulk migration reads its candidates this way and then writes each in its own unit of
    work, guarded by the revision read here, as :func:`save_instance` always is).

    Raises:
        ValueError: more than :data:`MAX_BATCH` ids.
    """
    if len(instance_ids) > MAX_BATCH:
        raise ValueError(f"{len(instance_ids)} ids: at most {MAX_BATCH} are read at once")
    if not instance_ids:
        return {}
    driver, sql = _for(session)
    names = [f"i{n}" for n in range(len(instance_ids))]
    statement = sql.load.replace(
        f"i.id = {sql.placeholder('instance_id')}", f"i.id IN ({', '.join(sql.placeholder(name) for name in names)})"
    )
    cursor = driver.cursor()
    try:
        cursor.execute(statement, dict(zip(names, instance_ids, strict=True)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    records = (_record(sql, row) for row in rows)
    return {record.id: record for record in records}


def _record(sql: _Statements, row: Any) -> InstanceRecord:
    values = dict(zip(_COLUMNS, row[:-1], strict=True))
    values["one_per_patient"] = bool(values["one_per_patient"])  # SQLite keeps 1 / 0
    stored = values["state"]
    values["stored_state"] = stored.encode() if isinstance(stored, str) else bytes(stored)
    try:
        values["state"] = decode_state(stored)
    except UnreadableStateError as exc:
        values["state"], values["unreadable_state"] = "", str(exc)
    for name in ("next_due_at", "created_at", "updated_at"):
        values[name] = sql.from_db(values[name])
    return InstanceRecord(**values, pathway_version=row[-1], stored_ready_tasks=values["ready_tasks"])


def load_spec(session: Session, version_id: int) -> str:
    """The stored spec JSON of a pathway version (read only when the process has not restored it)."""
    driver, sql = _for(session)
    cursor = driver.cursor()
    try:
        cursor.execute(sql.load_spec, {"version_id": version_id})
        (spec,) = cursor.fetchone()
    finally:
        cursor.close()
    return str(spec)


def load_latest_version(session: Session, pathway_id: str) -> tuple[int, str, str | None] | None:
    """The id, version key and start data schema (JSON text, or None) of the pathway's active version,
    the one activated last (None: none is deployed and active); the version's spec and files are not read."""
    driver, sql = _for(session)
    cursor = driver.cursor()
    try:
        cursor.execute(sql.latest_version, {"pathway_id": pathway_id})
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else (int(row[0]), str(row[1]), row[2])


def save_instance(
    session: Session,
    record: InstanceRecord,
    *,
    state_changed: bool = False,
    seal_state: bool = False,
    one_statement: bool = False,
) -> None:
    """Write a changed instance, the rows its step added, and its new events.

    ``state_changed``: the step stored a new workflow state, whose digest its newest event records
    (:func:`engine.audit.seal_events`; a state written without an event of its step is an error of
    the caller's: ``carepath audit verify`` would report it as edited). Only then is the state
    compressed and written; otherwise the stored bytes are left as they are. ``seal_state``: the
    newest event records the digest of the state all the same, which is not rewritten (a migration
    that keeps the state as it is records what a migration that rewrites it would).

    ``one_statement``: this write is the whole unit of work (a migration's fast path), the first use
    of the session's database or after other such writes only. Where the instance and its events
    are one statement (PostgreSQL), that statement runs in autocommit: atomic by itself, so still
    its own unit of work, and one round trip instead of three (``BEGIN``, the statement,
    ``COMMIT``); the revision guard makes a stale one write nothing. Elsewhere (SQLite) it is a
    transaction as usual.

    Raises:
        RuntimeError: ``one_statement`` for a write that would take more than one statement (ready
            tasks changed, webhook notices, too many events): nothing is written.
        ConflictError: the new state is over the size a stored state may have (``state-too-large``).
        StaleVersionError: another transaction changed the instance since it was read; nothing
            of this one is kept once the caller rolls back.
    """
    session.flush()  # rows the step's operators added first (care plan items, evaluations)
    if one_statement:
        _autocommit_if_one_statement(session)
    driver, sql = _for(session)
    if seal_state and not state_changed and record.stored_state is None:
        raise RuntimeError("seal_state for a record without its stored state: nothing was written")
    events = _pending_events(
        session, sql, [record] if state_changed or seal_state else [], encode=[record] if state_changed else []
    )
    checked = None  # the step's facts for the webhooks, when known to add none (so no statement of theirs)
    if one_statement and sql.writes_in_one_statement:
        checked = _step_facts(session, [record], events)
        if (
            not 0 < len(events) <= _MAX_EVENTS_PER_STATEMENT
            or record.ready_tasks != record.stored_ready_tasks
            or any(derive_notices(facts) for facts in checked)
        ):
            raise RuntimeError("a write of one statement would take more than one: nothing was written")
    params = {name: getattr(record, name) for name in _WRITABLE}
    params.update(
        id=record.id,
        revision=record.revision,
        new_revision=record.revision + 1,
        next_due_at=sql.to_db(record.next_due_at),
        updated_at=sql.to_db(record.updated_at),
    )
    if state_changed:
        params["state"] = record.stored_state
        record.unreadable_state = None
    together = sql.writes_in_one_statement and 0 < len(events) <= _MAX_EVENTS_PER_STATEMENT
    if together:
        params.update(_event_params(events))
    statement = (
        sql.save_with_events(len(events), state_changed) if together else sql.save_state if state_changed else sql.save
    )
    cursor = driver.cursor()
    try:
        cursor.execute(statement, params)
        if cursor.rowcount != (len(events) if together else 1):
            raise StaleVersionError("the instance was changed by another request: reload it and try again")
    finally:
        cursor.close()
    record.revision += 1
    if not together:
        _write_events(driver, sql, events)
    if record.ready_tasks != record.stored_ready_tasks:
        _write_elements(driver, sql, [record], replace=True)
    if checked is None:
        _enqueue_webhooks(session, [record], events)


def _step_facts(session: Session, records: list[InstanceRecord], events: list[dict[str, Any]]) -> list[StepFacts]:
    return [
        StepFacts(
            record.id,
            record.pathway_id,
            record.pathway_version,
            record.updated_at,
            [event for event in events if event["instance_id"] == record.id],
            record.stored_ready_tasks,
            record.ready_tasks,
            take_referrals(session, record.id),
            record.event_seq,
            record.organisation,
            record.pathway_check is not None,
        )
        for record in records
    ]


def _autocommit_if_one_statement(session: Session) -> None:
    """Begin the session's connection in autocommit where a save is one statement (PostgreSQL). A
    session that has its connection already keeps it as it is: in autocommit when an earlier
    one-statement write began it (a session that writes many such units, each committed as it
    runs), or in the transaction it began, which the write is then part of."""
    if session.get_bind().dialect.name != "postgresql":
        return
    transaction = session.get_transaction()
    if transaction is None or not transaction.connections:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _encoded(state: str) -> bytes:
    """The state as stored; one over the size a stored state may have refuses the step (rolled back,
    the stored state kept): a 409 to a caller, an incident to the timer worker, never a 500."""
    try:
        return encode_state(state)
    except UnreadableStateError as exc:
        raise ConflictError(
            "the step would make the instance's workflow state larger than a stored state may be; nothing was saved",
            [Problem(str(exc), code=STATE_TOO_LARGE)],
        ) from None


def insert_instances(session: Session, records: list[InstanceRecord]) -> None:
    """Insert new instances (one multi-row INSERT), then their first events (the newest of each
    recording the digest of its first stored state)."""
    driver, sql = _for(session)
    events = _pending_events(session, sql, records, encode=records)
    rows = [{name: getattr(record, name) for name in _COLUMNS} for record in records]
    for row, record in zip(rows, records, strict=True):
        row["state"] = record.stored_state
    session.connection().execute(insert(_INSTANCES), rows)
    session.flush()
    _write_events(driver, sql, events)
    _write_elements(driver, sql, records, replace=False)
    _enqueue_webhooks(session, records, events)


def _enqueue_webhooks(session: Session, records: list[InstanceRecord], events: list[dict[str, Any]]) -> None:
    """The webhook deliveries of the step (engine.webhooks), in its transaction: none if it rolls back."""
    enqueue(session, _step_facts(session, records, events))
    for record in records:  # what the database now holds (after the elements and the webhooks compared)
        record.stored_ready_tasks = record.ready_tasks


def active_instance_of(session: Session, pathway_id: str, patient_ref: str) -> str | None:
    """The id of the patient's instance of the pathway that has not ended and is held to one per
    patient (the one the unique index ``uq_pathway_instances_one_active`` counts), if any."""
    return session.scalar(
        select(PathwayInstance.id)
        .where(
            PathwayInstance.pathway_id == pathway_id,
            PathwayInstance.patient_ref == patient_ref,
            PathwayInstance.status.in_(ACTIVE_STATUSES),
            PathwayInstance.one_per_patient.is_(True),
        )
        .limit(1)
    )


def is_second_active_instance(exc: IntegrityError) -> bool:
    """The insert broke the one-active-instance index: a concurrent start for the same patient won."""
    text = str(exc.orig)
    return "uq_pathway_instances_one_active" in text or (
        "UNIQUE constraint failed: pathway_instances.patient_ref, pathway_instances.pathway_id" in text
    )


def _pending_events(
    session: Session, sql: _Statements, stored: list[InstanceRecord], *, encode: list[InstanceRecord]
) -> list[dict[str, Any]]:
    """The session's pending events, sealed (state digests of ``stored``, MACs) and ready to bind;
    the records of ``stored`` get their new chain heads and state seals. The states of ``encode`` are
    compressed first (their seals are of the bytes written); one too large raises ConflictError, the
    events taken all the same (the step's unit of work is rolled back with them)."""
    events = take_pending_events(session)
    for record in encode:
        record.stored_state = _encoded(record.state)
    sealed = seal_events(
        session, events, {record.id: (record.state, cast(bytes, record.stored_state)) for record in stored}
    )
    for record in stored:
        if record.id in sealed:
            record.event_head, record.state_mac = sealed[record.id]
    for event in events:
        event["at"] = sql.to_db(event["at"])
    return events


def _event_params(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"e{n}_{name}": event[name] for n, event in enumerate(events) for name in _EVENT_COLUMNS}


def _write_events(driver: Any, sql: _Statements, events: list[dict[str, Any]]) -> None:
    """Multi-row INSERTs of at most _MAX_EVENTS_PER_STATEMENT rows (one round trip for a step's events)."""
    cursor = driver.cursor()
    try:
        for first in range(0, len(events), _MAX_EVENTS_PER_STATEMENT):
            chunk = events[first : first + _MAX_EVENTS_PER_STATEMENT]
            cursor.execute(sql.insert_events(len(chunk)), _event_params(chunk))
    finally:
        cursor.close()


def ready_elements(summary: str | None) -> list[str]:
    """The elements of a stored ready-task summary, each once."""
    return sorted({task["element"] for task in json.loads(summary)}) if summary else []


def _write_elements(driver: Any, sql: _Statements, records: list[InstanceRecord], *, replace: bool) -> None:
    """The ready_task_elements rows of each record's summary (replacing its old ones)."""
    cursor = driver.cursor()
    try:
        rows = []
        for record in records:
            if replace:
                cursor.execute(sql.delete_elements, {"instance_id": record.id})
            created = sql.to_db(record.created_at)
            rows += [
                {"instance_id": record.id, "element": element, "created_at": created}
                for element in ready_elements(record.ready_tasks)
            ]
        if rows:
            cursor.executemany(sql.insert_element, rows)
    finally:
        cursor.close()


class ConflictMapper:
    """Concurrent writers: the revision check (StaleVersionError, raised by the save) or the event
    sequence's unique constraint (IntegrityError) tells the loser; both are the same conflict to the caller."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, IntegrityError) and _is_event_race(exc):
            raise StaleVersionError("the instance was changed by another request: reload it and try again") from exc


def _is_event_race(exc: IntegrityError) -> bool:
    """Two writers appended the same event number: the unique (instance, seq) constraint."""
    text = str(exc.orig).lower()
    return "instance_events" in text and "unique" in text or "uq_instance_events_instance_id" in text
