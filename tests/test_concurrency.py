"""Concurrent requests on one instance: exactly one wins, the others get a conflict and change nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from engine import CarePath, ConflictError, ManualClock, Settings, StaleVersionError, TaskNotReadyError
from engine.db.models import InstanceEvent


def test_twenty_threads_completing_the_same_task_give_exactly_one_success(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-77", "system:ehr")
    task_id = view.ready_tasks[0]["id"]
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def complete(n: int) -> None:
        barrier.wait()
        try:
            carepath.instances.complete_task(view.id, task_id, {"anxiety": n % 11, "fatigue": 1}, f"clinician:{n}")
            result = "ok"
        except ConflictError as exc:
            result = type(exc).__name__
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=complete, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == 20
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) - {"ok"} <= {"StaleVersionError", "TaskNotReadyError"}
    with carepath.sessions() as session:
        completions = session.scalar(
            select(func.count()).where(InstanceEvent.instance_id == view.id, InstanceEvent.type == "task_completed")
        )
    assert completions == 1
    final = carepath.instances.get(view.id)
    assert final.version == view.version + 1
    assert final.ready_tasks and final.ready_tasks[0]["id"] != task_id


# --- two server processes on one database: each keeps the instances it last saved -----------------

NURSE = "clinician:cns-1"
HNA = {"anxiety": 9, "fatigue": 3}


def _task_completions(carepath: CarePath, instance_id: str) -> int:
    with carepath.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    InstanceEvent.instance_id == instance_id, InstanceEvent.type == "task_completed"
                )
            )
            or 0
        )


@pytest.fixture
def other_process(carepath: CarePath, test_settings: Settings, clock: ManualClock) -> Iterator[CarePath]:
    """A second server process on the same database, with its own cache of instances."""
    app = CarePath(test_settings, clock)
    try:
        yield app
    finally:
        app.close()


def test_a_task_made_ready_by_another_process_can_be_completed(carepath: CarePath, other_process: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-1", "system:ehr")  # this process keeps a copy
    moved = other_process.instances.complete_task(view.id, view.ready_tasks[0]["id"], HNA, NURSE)
    # This process's copy has never seen the review task; the database has.
    after = carepath.instances.complete_task(view.id, moved.ready_tasks[0]["id"], {"review_outcome": "referred"}, NURSE)
    assert [t["element"] for t in after.ready_tasks] == ["offer_support"]
    assert after.version == moved.version + 1 and _task_completions(carepath, view.id) == 2


def test_a_task_completed_by_another_process_is_not_completed_twice(
    carepath: CarePath, other_process: CarePath
) -> None:
    view = carepath.instances.start("test_assessment", "MRN-2", "system:ehr")
    task_id = view.ready_tasks[0]["id"]
    other_process.instances.complete_task(view.id, task_id, HNA, NURSE)
    with pytest.raises(TaskNotReadyError):
        carepath.instances.complete_task(view.id, task_id, HNA, NURSE)
    assert _task_completions(carepath, view.id) == 1


def test_if_match_on_a_copy_that_fell_behind_is_stale(carepath: CarePath, other_process: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-3", "system:ehr")
    moved = other_process.instances.complete_task(view.id, view.ready_tasks[0]["id"], HNA, NURSE)
    with pytest.raises(StaleVersionError):
        carepath.instances.complete_task(
            view.id, moved.ready_tasks[0]["id"], {"review_outcome": "referred"}, NURSE, expected_version=view.version
        )
    assert carepath.instances.get(view.id).version == moved.version and _task_completions(carepath, view.id) == 1
