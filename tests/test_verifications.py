"""Verifying every trail as a background job (engine.verifications): its row shows progress, then the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import CarePath, ManualClock, verifications
from engine.errors import NotFoundError
from engine.verifications import get_verification, request_verification, run_verification


def _started(carepath: CarePath, count: int) -> None:
    for number in range(count):
        carepath.instances.start("test_assessment", f"MRN-V-{number}", "system:ehr")


def test_a_job_reports_its_progress_and_its_result(carepath: CarePath, clock: ManualClock) -> None:
    _started(carepath, 3)
    job = request_verification(carepath.sessions, "auditor:a", clock.now())
    assert (job.status, job.instances_checked, job.as_dict()["verified"]) == ("queued", 0, None)
    done = run_verification(carepath.sessions, job.id, clock.now, batch=1)
    assert done.status == "verified" and done.as_dict()["verified"] is True
    assert (done.instances_total, done.instances_checked, done.problem_count) == (3, 3, 0)
    assert done.started_at is not None and done.finished_at is not None and done.progress_at is not None
    assert get_verification(carepath.sessions, job.id) == done


def test_an_unreadable_checkpoint_is_a_problem_and_a_crash_is_recorded_by_its_type(
    carepath: CarePath, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _started(carepath, 1)
    (tmp_path / "checkpoint-20260101T000000000000Z-abc.json").write_text("not a checkpoint")
    job = request_verification(carepath.sessions, "auditor:a", clock.now())
    done = run_verification(carepath.sessions, job.id, clock.now, checkpoint_dir=tmp_path)
    assert done.status == "problems" and done.problem_count == 1
    assert "cannot be read as one" in done.problems[0]["message"]

    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise RuntimeError("MRN-V-0 appears in this text and must not be stored")

    monkeypatch.setattr(verifications, "verify_trail", broken)
    job = request_verification(carepath.sessions, "auditor:a", clock.now())
    failed = run_verification(carepath.sessions, job.id, clock.now)
    assert (failed.status, failed.failure, failed.as_dict()["verified"]) == ("failed", "RuntimeError", None)
    with pytest.raises(NotFoundError):
        get_verification(carepath.sessions, "00000000-0000-4000-8000-000000000000")


def test_a_job_of_one_organisation_counts_checks_and_shows_only_its_trails(
    carepath: CarePath, clock: ManualClock
) -> None:
    """Two organisations, one trail tampered with in each: a job of rx1 counts rx1's instances and finds rx1's
    problem only; only a caller of rx1 or of every organisation reads it; a job of every trail finds both."""
    from sqlalchemy import update

    from engine.db.models import InstanceEvent
    from engine.db.session import unit_of_work

    ours = [
        carepath.instances.start(
            "test_assessment", f"MRN-R1-{n}", "system:ehr", organisation="rx1", care_team="breast"
        ).id
        for n in range(2)
    ]
    theirs = [
        carepath.instances.start(
            "test_assessment", f"MRN-R2-{n}", "system:ehr", organisation="rx2", care_team="breast"
        ).id
        for n in range(3)
    ]
    with unit_of_work(carepath.sessions) as session:
        session.execute(
            update(InstanceEvent)
            .where(InstanceEvent.instance_id.in_([ours[0], theirs[0]]))
            .values(actor="someone:else")
        )
    job = request_verification(carepath.sessions, "auditor:tok_1", clock.now(), organisation="rx1")
    done = run_verification(carepath.sessions, job.id, clock.now, batch=1)
    assert (done.organisation, done.status, done.instances_total, done.instances_checked) == ("rx1", "problems", 2, 2)
    assert {p["instance_id"] for p in done.problems} == {ours[0]} and done.problem_count == 1
    assert get_verification(carepath.sessions, job.id, organisation="rx1") == done
    assert get_verification(carepath.sessions, job.id) == done  # a caller of every organisation
    with pytest.raises(NotFoundError, match="no verification"):
        get_verification(carepath.sessions, job.id, organisation="rx2")
    every = run_verification(
        carepath.sessions, request_verification(carepath.sessions, "auditor:tok_2", clock.now()).id, clock.now
    )
    assert (every.organisation, every.instances_total) == (None, 5)
    assert {p["instance_id"] for p in every.problems} == {ours[0], theirs[0]}
    with pytest.raises(NotFoundError, match="no verification"):  # every trail: not an organisation's job
        get_verification(carepath.sessions, every.id, organisation="rx1")


def test_a_job_in_several_processes_reports_their_progress_together(carepath: CarePath, clock: ManualClock) -> None:
    _started(carepath, 5)
    job = request_verification(carepath.sessions, "auditor:a", clock.now())
    done = run_verification(carepath.sessions, job.id, clock.now, batch=1, jobs=3)
    assert (done.status, done.instances_total, done.instances_checked, done.problem_count) == ("verified", 5, 5, 0)
    with carepath.db.begin() as connection:
        connection.exec_driver_sql("UPDATE pathway_instances SET state = state || ' '")
    job = request_verification(carepath.sessions, "auditor:a", clock.now())
    found = run_verification(carepath.sessions, job.id, clock.now, jobs=2)
    assert (found.status, found.problem_count) == ("problems", 5)
    assert all("the stored workflow state is corrupt" in p["message"] for p in found.problems)  # bytes appended
