"""Reads from a PostgreSQL streaming replica, with read-your-writes for the caller that just wrote.

A deployment may name a hot standby of its database (``CAREPATH_READ_DATABASE_URL``). Read-only units
of work (:func:`engine.db.session.read_only`) then read from it -- but only inside
:func:`replica_reads`, which the HTTP API enters for ``GET`` requests; the timer worker, the command
line, token lookups and every step read the primary, as before.

Read-your-writes is by position in the write-ahead log (an LSN such as ``0/3000148``): a unit of
work that wrote records the primary's WAL insert position after its commit
(:func:`last_write_position`), the API hands it to its caller (``CarePath-Read-After``), and a later
read that names it uses the replica only once the replica has replayed that far; until then, and
whenever the replica cannot be reached, it reads the primary. A replica that is behind or away
never makes a read fail or show a caller less than they wrote.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "LSN_PATTERN",
    "REPLICA",
    "forget_write_position",
    "last_write_position",
    "primary_reads",
    "replica_reads",
    "replica_session",
    "written_at",
]

log = logging.getLogger(__name__)

REPLICA = "carepath.replica"  # a session factory's info: the replica's sessionmaker
LSN_PATTERN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")  # PostgreSQL's text form of a pg_lsn
_ANY = "0/0"
_NEVER = "FFFFFFFF/FFFFFFFF"  # a position no replica reaches: read the primary
_WARN_EVERY_SECONDS = 30.0

# None: read the primary. Otherwise the WAL position the replica must have replayed ("0/0": any).
_wanted: contextvars.ContextVar[str | None] = contextvars.ContextVar("carepath_replica_wanted", default=None)
# The primary's WAL insert position after the last unit of work that wrote, in this context.
_written: contextvars.ContextVar[str | None] = contextvars.ContextVar("carepath_written_lsn", default=None)
_last_warning = [0.0]


@contextlib.contextmanager
def replica_reads(after: str | None = None) -> Iterator[None]:
    """Read-only units inside the block may read the replica once it has replayed ``after`` (an LSN;
    None: any position). Also forgets the last write position, so the block reports only its own.

    Raises:
        ValueError: ``after`` is not an LSN.
    """
    if after is not None and not LSN_PATTERN.match(after):
        raise ValueError("not a WAL position (expected e.g. 0/3000148)")
    wanted = _wanted.set(after or _ANY)
    written = _written.set(None)
    try:
        yield
    finally:
        _wanted.reset(wanted)
        _written.reset(written)


@contextlib.contextmanager
def primary_reads() -> Iterator[None]:
    """Read-only units inside the block read the primary (e.g. a token created a moment ago)."""
    wanted = _wanted.set(None)
    try:
        yield
    finally:
        _wanted.reset(wanted)


def last_write_position() -> str | None:
    """The primary's WAL position after the last unit of work that wrote in this context (None if none
    did, or no replica is configured)."""
    return _written.get()


def forget_write_position() -> None:
    """Start a new request: :func:`last_write_position` reports only what is written from now on."""
    _written.set(None)


def written_at(session: Session) -> None:
    """Record the WAL position after ``session``'s commit (called by the unit of work, on PostgreSQL with a
    replica configured). The insert position is past the commit record even with asynchronous commit."""
    try:
        position = str(session.connection().exec_driver_sql("SELECT pg_current_wal_insert_lsn()::text").scalar_one())
    except (SQLAlchemyError, OSError):  # committed, but where is unknown: this caller reads the primary
        position = _NEVER
    _written.set(position)


def replica_session(factory: sessionmaker[Session]) -> Session | None:
    """A read-only session on the replica of ``factory``'s database, in REPEATABLE READ, whose snapshot
    includes at least the wanted WAL position; None when reads should go to the primary (outside
    :func:`replica_reads`, no replica configured, the replica behind or unreachable)."""
    wanted = _wanted.get()
    replica: sessionmaker[Session] | None = factory.kw.get("info", {}).get(REPLICA)
    if wanted is None or replica is None:
        return None
    session = replica(autoflush=False)
    try:
        connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        # The snapshot is taken by this first statement, so what it says holds for the whole unit.
        caught_up = connection.execute(
            text("SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= CAST(:wanted AS pg_lsn)"),
            {"wanted": wanted},
        ).scalar_one()
    except (SQLAlchemyError, OSError) as exc:  # unreachable: read the primary (SQLAlchemy replaces the connection)
        session.close()
        now = time.monotonic()
        if now - _last_warning[0] > _WARN_EVERY_SECONDS:
            _last_warning[0] = now
            log.warning("read replica unavailable (%s); reading from the primary", type(exc).__name__)
        return None
    if not caught_up:
        session.close()
        return None
    return session
