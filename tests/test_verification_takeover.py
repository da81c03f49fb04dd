"""A trail verification left unfinished by a process that died is taken over by a worker
(engine.verifications.claim_abandoned), by one worker only, and runs to its end."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from engine import CarePath, ManualClock, Settings
from engine.db.models import AuditVerification
from engine.db.session import unit_of_work
from engine.verifications import (
    ABANDONED_AFTER,
    claim_abandoned,
    get_verification,
    request_verification,
    run_verification,
)


def _left_running(carepath: CarePath, progress_at: datetime) -> str:
    job = request_verification(carepath.sessions, "auditor:tok_1", progress_at)
    with unit_of_work(carepath.sessions) as session:
        session.execute(
            update(AuditVerification)
            .where(AuditVerification.id == job.id)
            .values(status="running", started_at=progress_at, progress_at=progress_at, instances_checked=40)
        )
    return job.id


def test_a_job_whose_progress_stopped_is_taken_over_once_and_finishes(carepath: CarePath, clock: ManualClock) -> None:
    carepath.instances.start("test_careplan", "MRN-V-1", "system:ehr", {"age": 54})
    job_id = _left_running(carepath, clock.now())
    clock.advance(ABANDONED_AFTER - timedelta(seconds=1))
    assert claim_abandoned(carepath.sessions, clock.now()) is None  # still moving, as far as anyone knows
    clock.advance(timedelta(seconds=2))
    assert claim_abandoned(carepath.sessions, clock.now()) == job_id
    taken = get_verification(carepath.sessions, job_id)
    assert (taken.status, taken.instances_checked, taken.progress_at) == ("running", 0, clock.now())
    assert claim_abandoned(carepath.sessions, clock.now()) is None  # a second worker finds nothing to take
    done = run_verification(carepath.sessions, job_id, clock.now)
    assert (done.status, done.instances_checked, done.instances_total) == ("verified", 1, 1)
    clock.advance(ABANDONED_AFTER * 3)
    assert claim_abandoned(carepath.sessions, clock.now()) is None  # a finished job is never run again


def test_a_job_queued_by_a_process_that_died_before_starting_it_is_taken_over(
    carepath: CarePath, clock: ManualClock
) -> None:
    job = request_verification(carepath.sessions, "auditor:tok_1", clock.now())
    clock.advance(ABANDONED_AFTER + timedelta(minutes=1))
    assert claim_abandoned(carepath.sessions, clock.now()) == job.id


def test_the_worker_command_runs_an_abandoned_verification(carepath: CarePath, test_settings: Settings) -> None:
    carepath.instances.start("test_careplan", "MRN-V-2", "system:ehr", {"age": 54})
    job_id = _left_running(carepath, datetime.now(UTC) - ABANDONED_AFTER * 2)  # the command runs on the real clock
    env = {
        "CAREPATH_DATABASE_URL": test_settings.database_url,
        "CAREPATH_PATHWAYS_DIR": str(test_settings.pathways_dir),
        "PATH": "/usr/bin:/bin",
    }
    ran = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert f"taking over trail verification {job_id}" in ran.stderr
    done = get_verification(carepath.sessions, job_id)
    assert (done.status, done.instances_checked) == ("verified", 1)
