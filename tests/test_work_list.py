"""The work list (ready tasks across instances) reads each row's stored summary of its ready tasks.

It used to restore every listed instance: ~70 ms for a page of 50 breast-pathway instances, cold.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from engine import CarePath
from engine.db.models import PathwayInstance
from engine.db.session import unit_of_work
from engine.instances.queries import InstanceFilter, InstanceQueries
from engine.spiff import workflows

SYSTEM, NURSE = "system:ehr", "clinician:cns-1"


def _listed(queries: InstanceQueries, **where: Any) -> list[dict[str, Any]]:
    return _ordered(queries.ready_tasks(InstanceFilter(**where), limit=100).items)


def _ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Both instances start at the same instant: the list orders them by id.
    return sorted(tasks, key=lambda task: (task["instance_id"], task["id"]))


def _as_views_show_them(carepath: CarePath, ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for instance_id in ids:
        view = carepath.instances.get(instance_id)
        found.extend(
            {
                **task,
                "instance_id": view.id,
                "instance_version": view.version,
                "pathway_id": view.pathway_id,
                "patient_ref": view.patient_ref,
            }
            for task in view.ready_tasks
        )
    return _ordered(found)


def _started(carepath: CarePath) -> list[str]:
    first = carepath.instances.start("test_assessment", "MRN-WL-1", SYSTEM)
    second = carepath.instances.start("test_assessment", "MRN-WL-2", SYSTEM)
    # Into the called sub-pathway: its task is listed with its own form.
    [hna] = second.ready_tasks
    carepath.instances.complete_task(second.id, hna["id"], {"anxiety": 2, "fatigue": 3}, NURSE)
    return [first.id, second.id]


def test_the_work_list_shows_what_each_instance_shows_without_restoring_any(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _started(carepath)
    expected = _as_views_show_them(carepath, ids)
    assert {task["element"] for task in expected} == {"hna", "offer_support"}
    assert all(task["form"] for task in expected)
    queries = InstanceQueries(carepath.sessions, carepath.instances)
    carepath.instances.steps.cache.clear()
    workflows.clear_spec_cache()

    def no_restore(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the work list restored an instance")

    monkeypatch.setattr(workflows, "restore", no_restore)
    assert _listed(queries, pathway_id="test_assessment") == expected
    assert [t["element"] for t in queries.ready_tasks(InstanceFilter(), element="offer_support").items] == [
        "offer_support"
    ]


def test_instances_saved_before_summaries_existed_are_restored_instead(carepath: CarePath) -> None:
    ids = _started(carepath)
    expected = _as_views_show_them(carepath, ids)
    with unit_of_work(carepath.sessions) as session:  # as migration 0004 leaves existing rows
        session.execute(update(PathwayInstance).values(ready_tasks=None))
    carepath.instances.steps.cache.clear()
    queries = InstanceQueries(carepath.sessions, carepath.instances)
    assert _listed(queries) == expected


def test_a_completed_task_leaves_the_list_and_a_cancelled_instance_has_no_summary(carepath: CarePath) -> None:
    [first, second] = _started(carepath)
    queries = InstanceQueries(carepath.sessions, carepath.instances)
    [hna] = carepath.instances.get(first).ready_tasks
    carepath.instances.complete_task(first, hna["id"], {"anxiety": 1, "fatigue": 1}, NURSE)
    assert [t["element"] for t in _listed(queries, patient_ref="MRN-WL-1")] == ["offer_support"]
    carepath.instances.cancel(second, NURSE, "transferred")
    assert _listed(queries, patient_ref="MRN-WL-2") == []
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, second)
        assert row is not None and row.ready_tasks is None
