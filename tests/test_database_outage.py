"""A database outage is waited out: the API answers 503 with Retry-After meanwhile, and neither the API
nor a timer worker needs restarting when PostgreSQL comes back. Nothing is lost, nothing fired twice."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from private_postgres import PrivateServer, private_server, why_no_private_server
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

import api.errors
from api import create_app
from engine import CarePath, ManualClock, Settings
from engine.access import create_token
from engine.audit import verify_trail
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.session import database_unavailable, make_session_factory, unit_of_work
from engine.errors import RuleEvaluationError

TESTS = Path(__file__).resolve().parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
PATHWAY = "test_timer_p1d"  # start -> timer P1D -> end


# --- the API's answer during an outage (no server needed) -------------------------------------------


def _raising_app(error: Exception) -> Flask:
    app = Flask(__name__)
    api.errors.init_app(app)

    @app.get("/raise")
    def raise_it() -> str:
        raise error

    return app


def _caused_by_outage() -> RuleEvaluationError:
    try:
        try:
            raise psycopg.OperationalError("connection to server at 127.0.0.1 failed: MRN-123")
        except psycopg.OperationalError as exc:
            raise RuleEvaluationError("could not store the evaluation") from exc
    except RuleEvaluationError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "error",
    [
        OperationalError(
            "SELECT * FROM pathway_instances WHERE patient_ref = %(p)s",
            {"p": "MRN-123"},
            Exception("server closed the connection unexpectedly"),
        ),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        sqlite3.OperationalError("database is locked"),
        _caused_by_outage(),
    ],
    ids=["sqlalchemy", "psycopg", "sqlite-locked", "wrapped"],
)
def test_an_outage_is_503_with_retry_after_and_no_detail(error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    response = _raising_app(error).test_client().get("/raise")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(api.errors.RETRY_AFTER_SECONDS)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["type"].endswith("/database-unavailable")
    assert body["detail"] == "the database cannot be reached; try again shortly"
    text_out = response.get_data(as_text=True) + caplog.text
    assert "MRN-123" not in text_out and "Traceback" not in text_out and "SELECT" not in text_out


def test_a_wrong_statement_is_still_a_500() -> None:
    error = ProgrammingError("SELECT nope", {}, Exception("no such column"))
    assert not database_unavailable(error)
    response = _raising_app(error).test_client().get("/raise")
    assert response.status_code == 500 and "Retry-After" not in response.headers


# --- a PostgreSQL of the test's own, restarted under load ------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    reason = why_no_private_server()
    if reason:
        pytest.skip(f"cannot start a PostgreSQL of the test's own to restart: {reason}")
    with private_server() as server:
        yield server


def _looping_worker(database_url: str, now_iso: str, stop_file: str) -> None:
    """A worker process that runs until told to stop (spawned: nothing is shared with the test)."""
    from engine.instances.worker import run_worker

    app = CarePath(
        Settings(database_url=database_url, pathways_dir=TESTS / "pathways"),
        ManualClock(datetime.fromisoformat(now_iso)),
    )
    try:
        run_worker(
            app.instances,
            worker_id="survivor",
            batch=10,
            interval=0.1,
            first_wait=0.1,
            max_wait=0.5,
            should_stop=lambda: os.path.exists(stop_file),
        )
    finally:
        app.close()


def _count(url: str, query: Any) -> int | None:
    """A count through a connection of its own, or None while the server is away."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(query) or 0)
    except OperationalError:
        return None
    finally:
        engine.dispose()


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class ApiLoad:
    """Clients starting instances through the API until stopped, noting every answer."""

    def __init__(self, app: Flask, token: str, clients: int = 2) -> None:
        self.app, self.token = app, token
        self.answers: list[tuple[int, str | None, dict[str, Any]]] = []
        self.started: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> ApiLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, number: int) -> None:
        client = self.app.test_client()
        sent = 0
        while not self._stop.is_set() and sent < 2000:  # bounded, whatever happens
            sent += 1
            response = client.post(
                "/v1/instances",
                json={"pathway_id": PATHWAY, "patient_ref": f"API-{number}-{sent}"},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            body = response.get_json(silent=True) or {}
            self.answers.append((response.status_code, response.headers.get("Retry-After"), body))
            if response.status_code == 201:
                self.started.append(body["id"])
            time.sleep(0.01)

    def statuses(self) -> Counter[int]:
        return Counter(status for status, _, _ in self.answers)


@pytest.mark.slow
def test_postgresql_restarted_under_load_loses_nothing_and_fires_nothing_twice(
    private_postgres: PrivateServer, tmp_path: Path
) -> None:
    url = private_postgres.url
    setup = CarePath(Settings(database_url=url, pathways_dir=TESTS / "pathways"), ManualClock(START), upgrade=True)
    try:
        setup.catalog.sync_library()
        patients = [f"MRN-{n:04d}" for n in range(400)]
        for first in range(0, len(patients), 200):
            setup.instances.start_many(PATHWAY, patients[first : first + 200], "system:ehr")
        with setup.sessions() as session:
            due = set(session.scalars(select(PathwayInstance.id)))
    finally:
        setup.close()

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": ManualClock(START + timedelta(days=2)),
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, token = create_token(session, "system", "outage test", engine.clock)
    stop_file = tmp_path / "stop-worker"
    worker = multiprocessing.get_context("spawn").Process(
        target=_looping_worker, args=(url, (START + timedelta(days=2)).isoformat(), str(stop_file))
    )
    fired_query = select(func.count()).where(InstanceEvent.type == "timer_fired")
    try:
        with ApiLoad(app, token) as load:
            worker.start()
            _wait_for(lambda: (_count(url, fired_query) or 0) >= 30, 60, "the worker to fire its first timers")
            _wait_for(lambda: load.statuses()[201] >= 5, 60, "the API to start instances")

            private_postgres.pg_ctl("-m", "fast", "stop")  # every connection is cut, mid-batch
            _wait_for(lambda: load.statuses()[503] >= 3, 30, "the API to answer 503 during the outage")
            time.sleep(0.5)
            assert worker.is_alive(), "the worker exited when the database went away"
            private_postgres.pg_ctl("start")
            answered = len(load.answers)
            _wait_for(
                lambda: Counter(s for s, _, _ in load.answers[answered:])[201] >= 5,
                60,
                "the API to start instances again after the restart",
            )
            _wait_for(lambda: _count(url, fired_query) == len(due), 120, "the worker to fire every due timer")
        assert worker.is_alive(), "the worker exited after the restart"
    finally:
        stop_file.touch()
        worker.join(timeout=60)
        if worker.is_alive():
            worker.kill()
        engine.close()
    assert worker.exitcode == 0

    statuses = load.statuses()
    assert set(statuses) <= {201, 503}, statuses  # never a 500
    for status, retry_after, body in load.answers:
        if status == 503:
            assert retry_after == str(api.errors.RETRY_AFTER_SECONDS)
            assert body["type"].endswith("/database-unavailable") and "Traceback" not in str(body)

    check = create_engine(url, poolclass=NullPool)
    try:
        with check.connect() as connection:
            fired = Counter(
                connection.scalars(select(InstanceEvent.instance_id).where(InstanceEvent.type == "timer_fired"))
            )
            statuses_by_id = dict(connection.execute(select(PathwayInstance.id, PathwayInstance.status)).all())
        with unit_of_work(make_session_factory(check)) as session:
            problems = verify_trail(session)
    finally:
        check.dispose()
    assert set(fired) == due and set(fired.values()) == {1}  # every due timer fired, none twice
    assert all(statuses_by_id[i] == "completed" for i in due)
    assert set(load.started) <= set(statuses_by_id)  # every start the API confirmed is there
    assert all(statuses_by_id[i] == "running" for i in load.started)
    assert problems == []
