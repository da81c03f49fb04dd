"""The database lifecycle: engines, sessions, one unit of work per use case, schema upgrades."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from engine.db.replica import REPLICA, replica_session, written_at

log = logging.getLogger(__name__)

__all__ = [
    "TRAIL_KEY",
    "bounded_statements",
    "committing_outcome",
    "database_unavailable",
    "make_engine",
    "make_session_factory",
    "note_outcome",
    "read_only",
    "unit_of_work",
    "upgrade_schema",
]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_DRIVERS = ("psycopg", "psycopg2", "sqlite3")
TRAIL_KEY = "carepath.trail_key"  # session.info: the event trail's key (bytes), when configured
_DRIVER_OUTAGES = ("OperationalError", "InterfaceError")
IDLE_PING_SECONDS = 10.0
_LAST_USED = "carepath.last_used"
# True inside read_only(): SQLite then begins a deferred transaction (no write lock).
_reading: contextvars.ContextVar[bool] = contextvars.ContextVar("carepath_reading", default=False)

# session.info: what a use case's unit of work produced (note_outcome), for the hook of committing_outcome.
_OUTCOME = "carepath.outcome"
_before_commit: contextvars.ContextVar[Callable[[Session, list[str]], None] | None] = contextvars.ContextVar(
    "carepath_before_commit", default=None
)


def note_outcome(session: Session, resource_id: str) -> None:
    """Say that this unit of work is a use case's and what it produced or changed (an instance's id):
    inside :func:`committing_outcome`, its hook then writes in this same transaction."""
    session.info.setdefault(_OUTCOME, []).append(resource_id)


@contextlib.contextmanager
def committing_outcome(hook: Callable[[Session, list[str]], None]) -> Iterator[None]:
    """In this context, every unit of work that noted an outcome (:func:`note_outcome`) calls
    ``hook(session, resources)`` just before it commits, inside its transaction: what the hook writes
    commits with the use case or not at all, and an exception from it rolls the use case back. The
    API's ``Idempotency-Key`` records the use case's outcome so (:mod:`engine.idempotency`)."""
    token = _before_commit.set(hook)
    try:
        yield
    finally:
        _before_commit.reset(token)


# PostgreSQL: how long to wait for a new connection, and the TCP settings that notice a peer gone
# silent (a partition, a host that froze, a failover that moved the address): probes after 10 s idle,
# every 5 s, 3 unanswered close the connection; data unacknowledged for 30 s closes it too. They cut
# nothing that is merely slow: a server busy with a long statement still answers TCP.
CONNECT_TIMEOUT_SECONDS = 10.0
_TCP: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}
# How much longer than the statement timeout a round trip may take before the client gives up on the
# server (it cancels a statement itself at the timeout; this is for a server, or a proxy, gone silent).
ROUND_TRIP_GRACE_SECONDS = 5.0
_STATEMENT_TIMEOUT = "carepath.statement_timeout_ms"
# Inside bounded_statements(): the statement timeout (seconds) of this context's transactions.
_statement_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar("carepath_statements", default=None)
# The longest one round trip to PostgreSQL may wait, in this context (None: no limit).
_round_trip_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar("carepath_round_trip", default=None)


@contextlib.contextmanager
def bounded_statements(seconds: float | None) -> Iterator[None]:
    """Bound the PostgreSQL work done in this context (the API wraps every request in it): each
    statement is cancelled by the server after ``seconds`` (``statement_timeout``), and a round trip
    that gets no answer at all for ``seconds`` + :data:`ROUND_TRIP_GRACE_SECONDS` (a server, or a proxy,
    that stopped answering) closes its connection. Either fails with an ``OperationalError``, which
    :func:`database_unavailable` recognises. ``None`` or ``0``: no bound (the command line's long
    commands, the worker, a request's background jobs). SQLite: nothing to do (its busy timeout holds).
    """
    limit = seconds if seconds else None
    statements = _statement_limit.set(limit)
    round_trips = _round_trip_limit.set(limit + ROUND_TRIP_GRACE_SECONDS if limit else None)
    try:
        yield
    finally:
        _round_trip_limit.reset(round_trips)
        _statement_limit.reset(statements)


def _ensure_sqlite_folder(url: str) -> None:
    db_path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    if db_path and db_path != ":memory:":
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str, idle_seconds: float = IDLE_PING_SECONDS, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
) -> Engine:
    """Create a SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout; server databases
    get a pool whose connections are checked after ``idle_seconds`` unused (:func:`_ping_when_idle`),
    a ``connect_timeout``, TCP keepalives and ``tcp_user_timeout`` (:data:`_TCP`), and the statement
    bounds of :func:`bounded_statements`.

    Either way its errors and log lines never show the values bound to a statement
    (``hide_parameters``): they are patient references and form values, and such errors are printed
    by the command line and logged by the server."""
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "first_connect")
        def _sqlite_wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # WAL is a property of the database file: setting it once per engine is enough.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

        @event.listens_for(engine, "begin")
        def _begin(connection):  # type: ignore[no-untyped-def]
            # A deferred transaction that reads and then writes fails at once with "database is
            # locked" when another writer got there first; taking the write lock up front makes
            # concurrent requests wait their turn (busy timeout) instead. A read-only unit takes no
            # lock: WAL gives it a snapshot, so reads never queue behind writes. Sent on the
            # driver's own connection: through exec_driver_sql it cost a sixth of an empty transaction.
            connection.connection.driver_connection.execute("BEGIN" if _reading.get() else "BEGIN IMMEDIATE")

        return engine
    connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout)), **_TCP}
    engine = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True, connect_args=connect_args)
    if engine.dialect.driver == "psycopg":

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
            return _BoundedConnection.connect(*cargs, **cparams)

    _ping_when_idle(engine, idle_seconds, connect_timeout)
    _statement_timeout_on_checkout(engine)
    return engine


def _bounded_connection_class() -> type:
    import psycopg

    wait_timeout: type[BaseException] | None = getattr(psycopg.errors, "_WaitTimeout", None)
    if wait_timeout is None:  # a psycopg older than pyproject.toml allows: no client-side bound
        log.warning(
            "psycopg %s cannot bound a round trip; install the version pyproject.toml names", psycopg.__version__
        )
        return psycopg.Connection
    timed_out: type[BaseException] = wait_timeout

    class BoundedConnection(psycopg.Connection):
        """psycopg's connection, whose every wait for the server ends after the context's round-trip
        limit (:func:`bounded_statements`): the connection is then closed (SQLAlchemy sees it gone
        and replaces the pool's connections) and ``OperationalError`` is raised."""

        def wait(self, gen, interval=0.1, timeout=None):  # type: ignore[no-untyped-def]
            limit = _round_trip_limit.get() if timeout is None else timeout
            try:
                return super().wait(gen, interval, limit)
            except timed_out:
                self.close()
                raise psycopg.OperationalError(f"no answer from the database within {limit:g} s") from None

    return BoundedConnection


class _LazyBoundedConnection:
    """:func:`_bounded_connection_class`, built on first use (psycopg is imported only for PostgreSQL)."""

    _cls: Any = None

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self._cls is None:
            type(self)._cls = _bounded_connection_class()
        return self._cls.connect(*args, **kwargs)


_BoundedConnection = _LazyBoundedConnection()


def _statement_timeout_on_checkout(engine: Engine) -> None:
    """Give each checked-out connection the context's statement timeout (:func:`bounded_statements`).

    A session setting, changed only when the context wants another value than the connection has: in a
    server nearly every checkout is a request's, so it costs no round trip once each connection has it.
    """

    @event.listens_for(engine, "checkout")
    def _set_timeout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        wanted = int((_statement_limit.get() or 0) * 1000)
        if record.info.get(_STATEMENT_TIMEOUT, 0) == wanted:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET statement_timeout = {wanted}")
        finally:
            cursor.close()
        dbapi_connection.commit()
        record.info[_STATEMENT_TIMEOUT] = wanted


def _ping_when_idle(engine: Engine, idle_seconds: float, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Check a pooled connection before use when it has been idle for ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a network round trip on every request,
    a fifth of a step's time on PostgreSQL. A connection used moments ago is almost surely alive;
    one idle for a while may have been dropped (a database restart, a failover, a firewall's idle
    timeout), and is checked, and replaced if dead, before a request gets it; the ping waits at most
    ``timeout`` for its answer, like a new connection. A connection that dies while busy fails that
    request, as it would with any ping; SQLAlchemy then discards the pool, so the next requests get
    fresh connections.
    """

    @event.listens_for(engine, "connect")
    def _born(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) < idle_seconds:
            return
        bound = _round_trip_limit.set(timeout)
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise DisconnectionError("pooled connection is gone; replacing it") from exc
        finally:
            _round_trip_limit.reset(bound)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used right now -- down, restarting, the connection
    lost, every pooled connection busy, SQLite's file locked -- rather than that a statement is wrong.

    Such a failure is worth trying again a little later: the timer worker waits and retries, the
    API answers 503 with Retry-After. SQLAlchemy discards a pool whose connection was lost, so the
    next attempt connects afresh and nothing needs restarting once the database is back.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError):
        return True
    # The step's own statements run on the driver's cursor (engine.instances.store): its errors
    # arrive unwrapped, as the driver's DB-API classes.
    return any(
        cls.__name__ in _DRIVER_OUTAGES and cls.__module__.split(".")[0] in _DRIVERS for cls in type(exc).__mro__
    )


def make_session_factory(
    engine: Engine, trail_key: bytes | None = None, replica: Engine | None = None
) -> sessionmaker[Session]:
    """Sessions on ``engine``. ``trail_key``: the secret that authenticates the event trail
    (``engine.audit``), handed to every session in ``session.info[TRAIL_KEY]``; it is kept out of
    the database by design. ``replica``: a streaming replica of ``engine``'s PostgreSQL database, which
    read-only units may read inside :func:`engine.db.replica.replica_reads`."""
    info: dict[str, object] = {TRAIL_KEY: trail_key} if trail_key else {}
    if replica is not None:
        info[REPLICA] = sessionmaker(replica, expire_on_commit=False, info=dict(info))
    return sessionmaker(engine, expire_on_commit=False, info=info)


def unit_of_work(factory: sessionmaker[Session]) -> contextlib.AbstractContextManager[Session]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    return _transaction(factory, reading=False)


def read_only(factory: sessionmaker[Session]) -> contextlib.AbstractContextManager[Session]:
    """One transaction that only reads, from one consistent snapshot (SQLite: a deferred transaction
    in WAL mode; PostgreSQL: REPEATABLE READ, which never fails a transaction that only reads).

    On SQLite it takes no write lock, so API reads do not wait for steps in other requests. Rows
    added, changed or deleted through the session are a programming error: RuntimeError, and
    nothing is written.
    """
    return _transaction(factory, reading=True)


@contextlib.contextmanager
def _transaction(factory: sessionmaker[Session], *, reading: bool) -> Iterator[Session]:
    token = _reading.set(reading)
    # Reading: no autoflush, so a change stays pending, where the check below sees it. A read may be
    # served by a replica that has caught up (engine.db.replica); it then already is in REPEATABLE READ.
    on_replica = replica_session(factory) if reading else None
    session = on_replica or (factory(autoflush=False) if reading else factory())
    try:
        if reading and on_replica is None and session.get_bind().dialect.name == "postgresql":
            # READ COMMITTED (the default) lets each statement see what committed meanwhile.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield session
        if reading and (session.new or session.dirty or session.deleted):
            raise RuntimeError("a read-only unit of work changed rows; use unit_of_work")
        hook = None if reading else _before_commit.get()
        if hook is not None and session.info.get(_OUTCOME):
            hook(session, session.info[_OUTCOME])
        session.commit()  # for a read, nothing to write; unlike a rollback, it keeps what was read loaded
        if not reading and REPLICA in session.info:
            written_at(session)  # where a replica must have replayed to show this caller what they wrote
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        _reading.reset(token)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (an SQLite file's folder is created first)."""
    from alembic import command

    _ensure_sqlite_folder(url)

    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
