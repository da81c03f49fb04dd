"""The timer worker: several worker processes share due timers, each fires exactly once, none is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from engine import CarePath, ManualClock, Settings
from engine.access import end_web_session, purge_ended_web_sessions, web_session_ended
from engine.db.models import EndedWebSession, InstanceEvent, PathwayInstance, ReportInstance
from engine.db.session import unit_of_work
from engine.idempotency import IdempotencyRecord, IdempotencyStore, StoredResponse
from engine.instances.timers import fire_due_timers

TESTS = Path(__file__).resolve().parent
PATHWAY = "test_timer_p1d"  # start -> timer P1D -> end


def _worker_process(database_url: str, now_iso: str, worker_id: str, batch: int) -> None:
    """One worker process with its own engine (spawned: nothing is shared with the test)."""
    from engine.instances.worker import run_worker

    app = CarePath(
        Settings(database_url=database_url, pathways_dir=TESTS / "pathways"),
        ManualClock(datetime.fromisoformat(now_iso)),
    )
    try:
        run_worker(app.instances, worker_id=worker_id, batch=batch, once=True)
    finally:
        app.close()


def _start_instances(carepath: CarePath, count: int, chunk: int = 250) -> None:
    """Start through the engine (each instance is a real start), many per unit of work."""
    patients = [f"MRN-{number:05d}" for number in range(count)]
    for first in range(0, count, chunk):
        carepath.instances.start_many(PATHWAY, patients[first : first + chunk], "system:ehr")


def _fired_per_instance(carepath: CarePath) -> Counter[str]:
    with carepath.sessions() as session:
        rows = session.execute(
            select(InstanceEvent.instance_id, InstanceEvent.element).where(InstanceEvent.type == "timer_fired")
        )
        counts: Counter[str] = Counter()
        for instance_id, element in rows:
            assert element == "one_day"
            counts[instance_id] += 1
        return counts


def _statuses(carepath: CarePath) -> Counter[str]:
    with carepath.sessions() as session:
        rows = session.execute(select(PathwayInstance.status, func.count()).group_by(PathwayInstance.status))
        return Counter({status: count for status, count in rows})


def _spawn(database_url: str, now: datetime, worker_id: str, batch: int = 25) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(
        target=_worker_process, args=(database_url, now.isoformat(), worker_id, batch)
    )
    process.start()
    return process


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_three_worker_processes_fire_2000_timers_exactly_once(
    carepath: CarePath, clock: ManualClock, test_settings: Settings
) -> None:
    _start_instances(carepath, 2000)
    with carepath.sessions() as session:
        due = session.scalars(select(PathwayInstance.next_due_at).distinct()).all()
    assert due == [clock.now() + timedelta(days=1)]

    workers = [_spawn(test_settings.database_url, clock.now() + timedelta(days=2), f"w{n}") for n in range(3)]
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    fired = _fired_per_instance(carepath)
    assert len(fired) == 2000  # none missed
    assert set(fired.values()) == {1}  # none fired twice
    assert _statuses(carepath) == Counter({"completed": 2000})
    with carepath.sessions() as session:
        workers_used = {
            payload
            for payload in session.scalars(select(InstanceEvent.payload).where(InstanceEvent.type == "timer_fired"))
        }
    assert {f'"worker":"w{n}"' in " ".join(workers_used) for n in range(3)} == {True}  # the work was shared


def test_a_worker_killed_mid_batch_loses_nothing(
    carepath: CarePath, clock: ManualClock, test_settings: Settings
) -> None:
    _start_instances(carepath, 300)
    worker = _spawn(test_settings.database_url, clock.now() + timedelta(days=2), "doomed", batch=1000)
    # Watched through a plain engine: the engine's own SQLite transactions take the write lock up
    # front (BEGIN IMMEDIATE), and the busy worker would keep the watcher waiting until it is done.
    watcher = create_engine(test_settings.database_url)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with watcher.connect() as connection:
                fired = connection.scalar(select(func.count()).where(InstanceEvent.type == "timer_fired"))
            if (fired or 0) >= 20:
                break
            time.sleep(0.005)
    finally:
        watcher.dispose()
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    before = _fired_per_instance(carepath)
    assert 20 <= len(before) < 300, "the worker was killed before it finished"
    assert set(before.values()) == {1}

    clock.advance(timedelta(days=2))
    assert fire_due_timers(carepath.instances, limit=1000, worker_id="second") == 300 - len(before)
    fired = _fired_per_instance(carepath)
    assert len(fired) == 300 and set(fired.values()) == {1}
    assert _statuses(carepath) == Counter({"completed": 300})


def test_two_workers_on_the_same_database_never_fire_a_timer_twice(
    carepath: CarePath, clock: ManualClock, test_settings: Settings
) -> None:
    _start_instances(carepath, 150)
    workers = [_spawn(test_settings.database_url, clock.now() + timedelta(days=2), f"w{n}", batch=10) for n in range(2)]
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    fired = _fired_per_instance(carepath)
    assert len(fired) == 150 and set(fired.values()) == {1}


def test_nothing_due_is_fired_early(carepath: CarePath, clock: ManualClock) -> None:
    _start_instances(carepath, 3)
    clock.advance(timedelta(hours=23))
    assert fire_due_timers(carepath.instances) == 0
    clock.advance(timedelta(hours=2))
    assert fire_due_timers(carepath.instances, limit=2) == 2
    assert fire_due_timers(carepath.instances, limit=2) == 1
    assert fire_due_timers(carepath.instances) == 0


def test_worker_command_runs_once(
    carepath: CarePath, clock: ManualClock, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    _start_instances(carepath, 5)
    # A first response stored in 2026-01 (the test clock): long expired for the command's real clock.
    store = IdempotencyStore(carepath.sessions, clock)
    assert store.begin("tok_ehr", "key-1", "f" * 64) is None
    store.finish("tok_ehr", "key-1", StoredResponse(201, {}, "{}"))
    with unit_of_work(carepath.sessions) as session:  # a web session's cookie expired in 2026-01, one far ahead
        end_web_session(session, "expired", clock.now(), clock.now() + timedelta(hours=8))
        end_web_session(session, "live", clock.now(), datetime(2999, 1, 1, tzinfo=UTC))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", test_settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(test_settings.pathways_dir))
    # The command uses the real clock; these timers were set by the test clock in 2026-01.
    result = CliRunner().invoke(main, ["worker", "--once", "--batch", "2", "--worker-id", "cli"])
    assert result.exit_code == 0, result.output
    assert "5 instance(s) advanced" in result.output
    assert _statuses(carepath) == Counter({"completed": 5})
    assert datetime.now(UTC) > clock.now()  # the premise of the test
    with carepath.sessions() as session:  # the worker's housekeeping purged the expired record
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
        assert session.scalars(select(EndedWebSession.id)).all() == ["live"]  # ... and the expired sign-out
        # ... and summarised the instances for the reports (engine.reports.summary)
        assert session.scalar(select(func.count()).select_from(ReportInstance)) == 5


def test_expired_idempotency_records_are_purged_and_recent_ones_kept(carepath: CarePath, clock: ManualClock) -> None:
    store = IdempotencyStore(carepath.sessions, clock)
    assert store.begin("tok_ehr", "old", "a" * 64) is None
    store.finish("tok_ehr", "old", StoredResponse(201, {"ETag": '"1"'}, '{"id": "x"}'))
    assert store.begin("tok_ehr", "stuck", "b" * 64) is None  # its process died: never finished
    clock.advance(timedelta(hours=23))
    assert store.begin("tok_ehr", "recent", "c" * 64) is None
    store.finish("tok_ehr", "recent", StoredResponse(200, {}, "{}"))
    clock.advance(timedelta(hours=2))

    assert store.purge_expired() == 2
    assert store.purge_expired() == 0
    assert store.begin("tok_ehr", "recent", "c" * 64) == StoredResponse(200, {}, "{}")  # still replayed
    assert store.begin("tok_ehr", "old", "d" * 64) is None  # the key is free again: a new request


def test_ended_web_sessions_are_purged_once_their_cookies_have_expired(carepath: CarePath, clock: ManualClock) -> None:
    with unit_of_work(carepath.sessions) as session:
        end_web_session(session, "early", clock.now(), clock.now() + timedelta(hours=8))
        end_web_session(session, "early", clock.now(), clock.now() + timedelta(hours=99))  # ended already: kept
    clock.advance(timedelta(hours=2))
    with unit_of_work(carepath.sessions) as session:
        end_web_session(session, "later", clock.now(), clock.now() + timedelta(hours=8))
    clock.advance(timedelta(hours=6) - timedelta(seconds=1))
    with unit_of_work(carepath.sessions) as session:
        assert purge_ended_web_sessions(session, clock.now()) == 0  # a copy of "early" still works a second
    clock.advance(timedelta(seconds=1))
    with unit_of_work(carepath.sessions) as session:
        assert purge_ended_web_sessions(session, clock.now()) == 1
        assert purge_ended_web_sessions(session, clock.now()) == 0
    with unit_of_work(carepath.sessions) as session:
        assert not web_session_ended(session, "early") and web_session_ended(session, "later")


def test_the_worker_command_bounds_its_database_waits(test_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database gone silent would hold the worker's turn for as long as TCP waits (hours): the command
    runs its loop with a statement and round-trip bound (engine.db.session.bounded_statements), far above
    what its turns take."""
    import engine.instances.worker
    from api.cli import WORKER_STATEMENT_SECONDS, main
    from engine.db import session as db_session

    seen: list[tuple[float | None, float | None]] = []

    def loop(*args: object, **kwargs: object) -> int:
        seen.append((db_session._statement_limit.get(), db_session._round_trip_limit.get()))
        return 0

    monkeypatch.setattr(engine.instances.worker, "run_worker", loop)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", test_settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(test_settings.pathways_dir))
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert seen == [(WORKER_STATEMENT_SECONDS, WORKER_STATEMENT_SECONDS + db_session.ROUND_TRIP_GRACE_SECONDS)]
    assert db_session._round_trip_limit.get() is None  # only inside the loop
