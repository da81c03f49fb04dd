"""The sandbox clock (issue 17, point 5): the deployment's own clock, kept in the database and
moved forward by an author; timers fall due and fire by it; refused on a database of real patients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from engine import CarePath, InvalidInputError, ManualClock, Settings
from engine.db.models import InstanceEvent
from engine.instances.timers import fire_due_timers
from engine.sandbox import MAX_OFFSET_DAYS, SandboxRefusedError, parse_advance

TESTS = Path(__file__).parent
REAL = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def _sandbox(url: str, clock: ManualClock | None = None) -> CarePath:
    settings = Settings(database_url=url, pathways_dir=TESTS / "pathways", sandbox=True)
    return CarePath(settings, clock or ManualClock(REAL), upgrade=True)


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("P3M", datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),  # the calendar's months
        ("P1Y", datetime(2028, 2, 29, tzinfo=UTC), datetime(2029, 2, 28, tzinfo=UTC)),
        ("P2W", REAL, REAL + timedelta(days=14)),
        ("P1DT12H", REAL, REAL + timedelta(days=1, hours=12)),
        ("PT90M", REAL, REAL + timedelta(minutes=90)),
    ],
)
def test_an_advance_is_an_iso_8601_duration(text: str, now: datetime, expected: datetime) -> None:
    assert now + parse_advance(text, now) == expected


@pytest.mark.parametrize(
    "text",
    [
        "-P1D",
        "P-1D",
        "P0D",
        "PT0S",
        "P",
        "PT",
        "3 months",
        "P1.5D",
        "P6Y",
        "P2000D",
        "P99999W",
        "PT9999999H",
        "P1M" * 20,
        90,
        None,
    ],
)
def test_negative_empty_and_absurd_advances_are_refused(text: object) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_advance(text, REAL)
    assert refused.value.problems[0].field == "/advance"


def test_the_clock_starts_at_real_time_and_every_process_reads_the_same(database_url: str) -> None:
    real = ManualClock(REAL)
    server = _sandbox(database_url, real)
    try:
        assert server.clock.now() == REAL
        moved = server.sandbox.advance("P3M") if server.sandbox else None
        assert moved == datetime(2026, 4, 15, 9, 0, tzinfo=UTC) == server.clock.now()
        real.advance(timedelta(minutes=5))  # real time goes on, the offset with it
        assert server.clock.now() == datetime(2026, 4, 15, 9, 5, tzinfo=UTC)
        worker = _sandbox(database_url, real)  # another process on the same database
        try:
            assert worker.clock.now() == server.clock.now()
        finally:
            worker.close()
    finally:
        server.close()


def test_timers_fall_due_and_fire_by_the_sandbox_clock(database_url: str) -> None:
    app = _sandbox(database_url)
    try:
        app.catalog.sync_library()
        view = app.instances.start("test_timer_p1d", "SYN-0001", "system:t")
        assert view.next_due_at == "2026-01-16T09:00:00+00:00"
        assert fire_due_timers(app.instances, worker_id="w1") == 0  # by the real time: not due
        assert app.sandbox is not None
        app.sandbox.advance("P2D")
        assert fire_due_timers(app.instances, worker_id="w1") == 1
        assert app.instances.get(view.id).status == "completed"
        with app.sessions() as session:
            fired = session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == view.id, InstanceEvent.type == "timer_fired")
            ).one()
        assert fired.at == datetime(2026, 1, 17, 9, 0, tzinfo=UTC)  # recorded at the sandbox's time
    finally:
        app.close()


def test_the_clock_is_bounded_in_total(database_url: str) -> None:
    app = _sandbox(database_url)
    try:
        assert app.sandbox is not None
        with pytest.raises(InvalidInputError):
            for _ in range(MAX_OFFSET_DAYS // 1826 + 1):
                app.sandbox.advance("P5Y")
        assert app.sandbox.offset <= timedelta(days=MAX_OFFSET_DAYS)
    finally:
        app.close()


def test_refused_on_a_database_of_real_patients(database_url: str) -> None:
    real_app = CarePath(
        Settings(database_url=database_url, pathways_dir=TESTS / "pathways"), ManualClock(REAL), upgrade=True
    )
    try:
        real_app.catalog.sync_library()
        real_app.instances.start("test_timer_p1d", "SYN-0002", "system:t")
        _sandbox(database_url).close()  # synthetic patients only: allowed
        real_app.instances.start("test_timer_p1d", "MRN-0001", "system:t")
    finally:
        real_app.close()
    with pytest.raises(SandboxRefusedError, match="1 instance"):
        _sandbox(database_url)


def test_a_sandbox_starts_synthetic_patients_only(database_url: str) -> None:
    app = _sandbox(database_url)
    try:
        app.catalog.sync_library()
        with pytest.raises(InvalidInputError) as refused:
            app.instances.start("test_timer_p1d", "MRN-0001", "system:t")
        assert refused.value.problems[0].field == "/patient_ref"
    finally:
        app.close()


def test_serve_refuses_sandbox_mode_on_real_patients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr("flask.Flask.run", never)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    real_app = CarePath(Settings(database_url=url, pathways_dir=TESTS / "pathways"), ManualClock(REAL), upgrade=True)
    try:
        real_app.catalog.sync_library()
        real_app.instances.start("test_timer_p1d", "MRN-0001", "system:t")
    finally:
        real_app.close()
    env = {
        "CAREPATH_DATABASE_URL": url,
        "CAREPATH_PATHWAYS_DIR": str(TESTS / "pathways"),
        "CAREPATH_RULES_DIR": str(TESTS.parent / "rules"),
        "CAREPATH_SANDBOX": "1",
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 1, result.output
    assert "CAREPATH_SANDBOX is set but the database holds 1 instance(s)" in result.output
