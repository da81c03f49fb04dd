"""GET requests read a PostgreSQL streaming replica (CAREPATH_READ_DATABASE_URL) once it has caught up
with what their caller wrote; a lagging or stopped replica never shows a caller less than they wrote,
and never fails a read. Tested on a primary and a hot standby the tests start themselves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from private_postgres import PrivateServer, private_server, streaming_replica, why_no_private_server
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from api import create_app
from api.replica import HEADER
from engine import ManualClock, Settings
from engine.access import create_token
from engine.db.replica import LSN_PATTERN
from engine.db.session import unit_of_work

TESTS = Path(__file__).resolve().parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
PATHWAY = "test_timer_p1d"

pytestmark = pytest.mark.slow


def test_a_replica_needs_a_postgresql_primary() -> None:
    with pytest.raises(ValueError, match="SQLite has no replicas"):
        Settings(database_url="sqlite:///x.sqlite3", read_database_url="postgresql+psycopg://h/db")
    env = {"CAREPATH_DATABASE_URL": "postgresql://h/db", "CAREPATH_READ_DATABASE_URL": "postgresql://r/db"}
    assert Settings.from_env(env).read_database_url == "postgresql+psycopg://r/db"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PrivateServer, PrivateServer]]:
    reason = why_no_private_server()
    if reason:
        pytest.skip(f"cannot start a primary and a replica of the test's own: {reason}")
    with private_server() as primary, streaming_replica(primary) as replica:
        yield primary, replica


class World:
    """The API on the primary, reading the replica; counts the statements the replica answered."""

    def __init__(self, primary: PrivateServer, replica: PrivateServer) -> None:
        self.replica = replica
        self.app: Flask = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": primary.url,
                "READ_DATABASE_URL": replica.url,
                "PATHWAYS_DIR": TESTS / "pathways",
                "CLOCK": ManualClock(START),
                "AUTH_CACHE_SECONDS": 0,
            }
        )
        self.engine = self.app.extensions["carepath"]
        self.replica_statements = 0

        def count(*_args: Any) -> None:
            self.replica_statements += 1

        event.listen(self.engine.replica_db, "before_cursor_execute", count)
        self.client = self.app.test_client()

    def token(self, role: str) -> dict[str, str]:
        with unit_of_work(self.engine.sessions) as session:
            _, secret = create_token(session, role, "replica test", self.engine.clock)
        return {"Authorization": f"Bearer {secret}"}

    def start(self, auth: dict[str, str], patient: str) -> Any:
        response = self.client.post("/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": patient}, headers=auth)
        assert response.status_code == 201, response.json
        return response

    def standby(self, sql: str) -> Any:
        engine = create_engine(self.replica.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                return connection.execute(text(sql)).scalar()
        finally:
            engine.dispose()

    def wait_for_replay(self, position: str) -> None:
        deadline = time.monotonic() + 60
        while not self.standby(f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"):
            assert time.monotonic() < deadline, "the replica did not replay the write"
            time.sleep(0.05)


@pytest.fixture
def world(servers: tuple[PrivateServer, PrivateServer]) -> Iterator[World]:
    found = World(*servers)
    yield found
    found.standby("SELECT pg_wal_replay_resume()")
    found.engine.close()


def test_reads_use_the_replica_once_it_has_replayed_the_callers_write(world: World) -> None:
    system = world.token("system")
    started = world.start(system, "MRN-7001")
    position = started.headers[HEADER]
    assert LSN_PATTERN.match(position)
    world.wait_for_replay(position)
    before = world.replica_statements
    read = world.client.get(f"/v1/instances/{started.json['id']}", headers={**system, HEADER: position})
    assert read.status_code == 200 and read.json["patient_ref"] == "MRN-7001"
    assert world.replica_statements > before  # the replica answered
    # Probes ask about this process's primary, never the replica.
    before = world.replica_statements
    assert world.client.get("/v1/ready").status_code == 200
    assert world.replica_statements == before


def test_a_lagging_replica_never_hides_a_callers_own_write(world: World) -> None:
    world.standby("SELECT pg_wal_replay_pause()")
    system = world.token("system")  # created on the primary while the replica is paused: it works at once
    other = world.token("clinician")
    started = world.start(system, "MRN-7002")
    path = f"/v1/instances/{started.json['id']}"
    # Another caller, with nothing to wait for, reads the paused replica: the instance is not there yet.
    assert world.client.get(path, headers=other).status_code == 404
    # The caller who wrote it reads it: this process remembers their write position...
    assert world.client.get(path, headers=system).status_code == 200
    # ... and anyone who sends the position back reads the primary until the replica has replayed it.
    assert world.client.get(path, headers={**other, HEADER: started.headers[HEADER]}).status_code == 200
    world.standby("SELECT pg_wal_replay_resume()")
    world.wait_for_replay(started.headers[HEADER])
    assert world.client.get(path, headers=other).status_code == 200


def test_a_browser_session_gets_the_position_as_a_cookie_and_a_bad_position_is_refused(world: World) -> None:
    system = world.token("system")
    world.client.set_cookie("carepath_session", "signed-session")
    started = world.start(system, "MRN-7003")
    cookie = world.client.get_cookie("carepath_read_after")
    assert cookie is not None and cookie.value == started.headers[HEADER] and cookie.http_only
    world.client.delete_cookie("carepath_session")
    world.client.delete_cookie("carepath_read_after")
    refused = world.client.get("/v1/instances", headers={**system, HEADER: "0/1; DROP TABLE"})
    assert refused.status_code == 400 and refused.json["type"].endswith("/request-invalid")


def test_the_position_cookie_follows_the_deployments_session_cookie_name(world: World) -> None:
    # A deployment that names its session cookie otherwise (SESSION_COOKIE_NAME) still gets the position.
    world.app.config["SESSION_COOKIE_NAME"] = "__Host-carepath"
    system = world.token("system")
    world.client.set_cookie("__Host-carepath", "signed-session")
    started = world.start(system, "MRN-7005")
    cookie = world.client.get_cookie("carepath_read_after")
    assert cookie is not None and cookie.value == started.headers[HEADER]


def test_reads_go_to_the_primary_while_the_replica_is_down(world: World) -> None:
    system = world.token("system")
    started = world.start(system, "MRN-7004")
    world.replica.pg_ctl("-m", "fast", "stop")
    try:
        other = world.token("clinician")
        response = world.client.get(f"/v1/instances/{started.json['id']}", headers=other)
        assert response.status_code == 200  # not a 503: the primary answers
    finally:
        world.replica.pg_ctl("start")
