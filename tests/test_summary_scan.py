"""The worker's scan for end of treatment summaries, on SQLite and PostgreSQL (engine.careplan.summaries).

The scan reads only what every diagram version has: the ready-task elements table (a ``write_summary``
task waiting), the instance's ready-task summary (which tasks) and the course's ``completed_on`` in the
waiting task's data. The test pathways have no summary sub-pathway, so the instance's ready task is
listed here as a ``write_summary`` one, in both places, as the store writes them; the bundled pathways
drive the same scan end to end in tests/pathways_bundled/test_end_of_treatment_phases.py and
tests/test_summaries_two_phases.py (two summaries awaited at once).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, select

from engine import CarePath, ManualClock
from engine.audit import verify_trail
from engine.careplan.summaries import summary_operators
from engine.db.models import InstanceEvent, PathwayInstance, ReadyTaskElement, TreatmentSummary
from engine.db.session import unit_of_work
from engine.errors import WorkflowError

DATA = {"age": 54, "completed_on": "2026-01-10", "named_contact": {"staff_ref": "STAFF-9", "role": "key_worker"}}


def _waiting(carepath: CarePath, patient_ref: str) -> str:
    view = carepath.instances.start("test_careplan", patient_ref, "system:test", DATA)
    with unit_of_work(carepath.sessions) as session:
        instance = session.get(PathwayInstance, view.id)
        assert instance is not None and instance.ready_tasks
        [task, *_] = json.loads(instance.ready_tasks)
        instance.ready_tasks = json.dumps([{**task, "element": "write_summary"}], separators=(",", ":"))
        session.add(ReadyTaskElement(instance_id=view.id, element="write_summary", created_at=carepath.clock.now()))
    return view.id


def _moved_on(carepath: CarePath, instance_id: str) -> None:
    """The write_summary task is gone from the instance (as the store writes it when a step moves on)."""
    with unit_of_work(carepath.sessions) as session:
        instance = session.get(PathwayInstance, instance_id)
        assert instance is not None
        instance.ready_tasks = "[]"
        session.execute(delete(ReadyTaskElement).where(ReadyTaskElement.instance_id == instance_id))


def _row(carepath: CarePath, instance_id: str) -> TreatmentSummary:
    with carepath.sessions() as session:
        return session.scalars(select(TreatmentSummary).where(TreatmentSummary.instance_id == instance_id)).one()


def test_the_scan_opens_the_task_after_the_last_day_and_closes_it(carepath: CarePath, clock: ManualClock) -> None:
    instance_id = _waiting(carepath, "MRN-7001")
    assert carepath.treatment_summaries.open_due() == 0
    row = _row(carepath, instance_id)
    assert (row.status, row.number, row.phase, row.ended_on, row.due_by) == (
        "due",
        1,
        "first_line",
        date(2026, 1, 10),
        date(2026, 2, 21),
    )
    clock.set(datetime(2026, 2, 21, 23, 59, 59, tzinfo=UTC))
    assert carepath.treatment_summaries.open_due() == 0
    clock.set(datetime(2026, 2, 22, 0, 0, tzinfo=UTC))
    assert carepath.treatment_summaries.open_due() == 1
    assert carepath.treatment_summaries.open_due() == 0
    [task] = carepath.treatment_summaries.list_overdue(patient_ref="MRN-7001")
    assert (task["assignee"], task["due_by"], task["overdue_at"]) == (
        "STAFF-9",
        "2026-02-21",
        "2026-02-22T00:00:00+00:00",
    )
    assert carepath.treatment_summaries.list_overdue(pathway_id="breast_cancer") == []

    # The task is gone from the instance (it ended, or moved on, without a summary): closed by the scan.
    _moved_on(carepath, instance_id)
    carepath.treatment_summaries.open_due()
    assert carepath.treatment_summaries.list_overdue() == []
    row = _row(carepath, instance_id)
    assert (row.status, row.closed_at) == ("closed", datetime(2026, 2, 22, 0, 0, tzinfo=UTC))
    with carepath.sessions() as session:
        trail = session.execute(
            select(InstanceEvent.type, InstanceEvent.actor, InstanceEvent.payload)
            .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type.like("summary_%"))
            .order_by(InstanceEvent.seq)
        ).all()
    assert [(t, a) for t, a, _ in trail] == [("summary_overdue", "engine"), ("summary_overdue_closed", "engine")]
    assert all("MRN-7001" not in p and "STAFF-9" not in p for _, _, p in trail)  # ids and dates only
    assert json.loads(trail[1][2])["outcome"] == "closed"
    with carepath.sessions() as session:  # the system's events keep the trail's chain whole
        assert verify_trail(session, [instance_id]) == []


def test_a_diagram_naming_no_phase_of_care_is_an_incident_not_a_refused_form() -> None:
    """``eot_phase`` comes from the calling diagram, never from the clinician's form: a wrong one is the
    author's to fix (an incident on the element), and its value is not quoted."""
    keep = summary_operators()["carepath.end_of_treatment_summary"]
    task = SimpleNamespace(task_spec=SimpleNamespace(bpmn_id="keep_summary"), data={"eot_phase": "second_go"})
    with pytest.raises(WorkflowError) as caught:
        keep(SimpleNamespace(), task, {})
    [problem] = caught.value.problems
    assert problem.element == "keep_summary" and problem.field == "/eot_phase"
    assert "second_go" not in str(caught.value) and "second_go" not in str(problem)
