"""Concurrent requests on one instance: exactly one wins, the others get a conflict and change nothing."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine import CarePath, ConflictError
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
        completions = session.scalar(select(func.count()).where(InstanceEvent.instance_id == view.id,
                                                                InstanceEvent.type == "task_completed"))
    assert completions == 1
    final = carepath.instances.get(view.id)
    assert final.version == view.version + 1
    assert final.ready_tasks and final.ready_tasks[0]["id"] != task_id
