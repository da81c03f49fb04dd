"""PostgreSQL connection pool: a connection dropped while idle is replaced before a request uses it,
and connections in steady use are not pinged on every checkout (a round trip per request)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from engine.db.session import make_engine
from tests.conftest import POSTGRES_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL not available: set CAREPATH_TEST_POSTGRES_URL"),
]


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _counting_pings(engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:  # type: ignore[no-untyped-def]
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    return pings


def test_a_connection_dropped_while_idle_is_replaced_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(POSTGRES_URL, idle_seconds=0.0)  # every checkout counts as idle
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        dropped = _backend_pid(engine)
        with admin.connect() as connection:  # what a database restart or a firewall does to it
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        pings = _counting_pings(engine, monkeypatch)
        replacement = _backend_pid(engine)  # no error reaches the caller
        assert replacement != dropped
        assert pings  # found dead by the check, not by the caller
    finally:
        engine.dispose()
        admin.dispose()


def test_connections_in_steady_use_are_not_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(POSTGRES_URL, idle_seconds=60.0)
    try:
        pings = _counting_pings(engine, monkeypatch)
        first = _backend_pid(engine)
        assert [_backend_pid(engine) for _ in range(5)] == [first] * 5
        assert pings == []
    finally:
        engine.dispose()
