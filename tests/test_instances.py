"""Starting instances, completing tasks with form data, and the instance lifecycle."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine import (
    CarePath,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StaleVersionError,
    TaskDataError,
    TaskNotReadyError,
)
from engine.db.models import InstanceEvent, PathwayInstance

SYSTEM, NURSE = "system:ehr", "clinician:cns-1"


def _start(carepath: CarePath, patient: str = "MRN-000123"):  # type: ignore[no-untyped-def]
    return carepath.instances.start("test_assessment", patient, SYSTEM)


def _snapshot(carepath: CarePath, instance_id: str) -> tuple[int, str, int]:
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None
        events = session.scalar(select(func.count()).where(InstanceEvent.instance_id == instance_id))
        return row.revision, row.state, int(events or 0)


def test_start_gives_the_first_task_with_its_form_as_json_schema(carepath: CarePath) -> None:
    view = _start(carepath)
    assert view.status == "running"
    assert view.patient_ref == "MRN-000123"
    [task] = view.ready_tasks
    assert task["element"] == "hna"
    assert task["name"] == "Holistic needs assessment"
    assert task["form"]["required"] == ["anxiety", "fatigue"]
    assert task["form"]["properties"]["anxiety"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 10,
        "title": "Worry, fear or anxiety (0-10)",
    }
    assert task["form"]["properties"]["assessed_on"]["format"] == "date"


@pytest.mark.parametrize("patient_ref", ["Jane Smith", "", "x" * 65, "MRN 1"])
def test_a_patient_is_named_by_an_identifier_never_a_name(carepath: CarePath, patient_ref: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        carepath.instances.start("test_assessment", patient_ref, SYSTEM)
    assert raised.value.problems[0].field == "/patient_ref"
    with carepath.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PathwayInstance)) == 0


def test_unknown_pathway_is_not_found(carepath: CarePath) -> None:
    with pytest.raises(NotFoundError):
        carepath.instances.start("no_such_pathway", "MRN-1", SYSTEM)


def test_data_failing_the_form_names_every_field_and_changes_nothing(carepath: CarePath) -> None:
    view = _start(carepath)
    task_id = view.ready_tasks[0]["id"]
    before = _snapshot(carepath, view.id)
    with pytest.raises(TaskDataError) as raised:
        carepath.instances.complete_task(view.id, task_id, {"anxiety": 11, "assessed_on": "15/01/2026"}, NURSE)
    fields = {p.field: p.message for p in raised.value.problems}
    assert set(fields) == {"/anxiety", "/fatigue", "/assessed_on"}
    assert fields["/fatigue"] == "is required"
    # Submitted values are patient data: they are not echoed in the error.
    assert "11" not in str(raised.value) and "15/01/2026" not in str(raised.value)
    assert _snapshot(carepath, view.id) == before
    assert carepath.instances.get(view.id).ready_tasks[0]["id"] == task_id


def test_completing_advances_through_gateway_script_and_call_activity(carepath: CarePath) -> None:
    view = _start(carepath)
    view = carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 3}, NURSE, expected_version=view.version
    )
    assert [t["element"] for t in view.ready_tasks] == ["urgent_review"]
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"review_outcome": "referred"}, NURSE)
    # The shared sub-pathway's task is offered through the call activity.
    assert [(t["element"], t["process"]) for t in view.ready_tasks] == [("offer_support", "test_support_connection")]
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"support_accepted": True}, NURSE)
    assert view.ready_tasks == []
    assert view.status == "running"
    assert view.next_due_at == "2027-07-15T09:00:00+00:00"  # 18 months after the clock's now


def test_low_scores_take_the_default_flow(carepath: CarePath) -> None:
    view = _start(carepath)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 7}, NURSE)
    assert [t["element"] for t in view.ready_tasks] == ["offer_support"]


def test_completing_a_task_twice_is_a_conflict(carepath: CarePath) -> None:
    view = _start(carepath)
    task_id = view.ready_tasks[0]["id"]
    carepath.instances.complete_task(view.id, task_id, {"anxiety": 1, "fatigue": 1}, NURSE)
    before = _snapshot(carepath, view.id)
    with pytest.raises(TaskNotReadyError, match="completed"):
        carepath.instances.complete_task(view.id, task_id, {"anxiety": 1, "fatigue": 1}, NURSE)
    assert _snapshot(carepath, view.id) == before


def test_a_stale_version_is_a_conflict_and_changes_nothing(carepath: CarePath) -> None:
    view = _start(carepath)
    first = view.version
    view = carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 1}, NURSE, expected_version=first
    )
    assert view.version == first + 1
    before = _snapshot(carepath, view.id)
    with pytest.raises(StaleVersionError):
        carepath.instances.complete_task(
            view.id, view.ready_tasks[0]["id"], {"review_outcome": "managed"}, NURSE, expected_version=first
        )
    assert _snapshot(carepath, view.id) == before


def test_unknown_task_and_instance_are_not_found(carepath: CarePath) -> None:
    view = _start(carepath)
    with pytest.raises(NotFoundError):
        carepath.instances.complete_task(view.id, "not-a-task", {}, NURSE)
    with pytest.raises(NotFoundError):
        carepath.instances.complete_task(view.id, "6f0e5a1e-1111-4a4a-8a8a-123456789abc", {}, NURSE)
    with pytest.raises(NotFoundError):
        carepath.instances.get("no-such-instance")


def test_suspend_blocks_work_until_resumed(carepath: CarePath) -> None:
    view = _start(carepath)
    task_id = view.ready_tasks[0]["id"]
    suspended = carepath.instances.suspend(view.id, NURSE, reason="admitted")
    assert suspended.status == "suspended"
    assert suspended.ready_tasks == []
    with pytest.raises(ConflictError, match="suspended"):
        carepath.instances.complete_task(view.id, task_id, {"anxiety": 1, "fatigue": 1}, NURSE)
    with pytest.raises(ConflictError):
        carepath.instances.suspend(view.id, NURSE)
    resumed = carepath.instances.resume(view.id, NURSE)
    assert resumed.status == "running"
    assert [t["id"] for t in resumed.ready_tasks] == [task_id]
    done = carepath.instances.complete_task(view.id, task_id, {"anxiety": 1, "fatigue": 1}, NURSE)
    assert done.ready_tasks[0]["element"] == "offer_support"


def test_cancel_ends_the_instance_for_good(carepath: CarePath) -> None:
    view = _start(carepath)
    cancelled = carepath.instances.cancel(view.id, NURSE, reason="transferred")
    assert cancelled.status == "cancelled"
    with pytest.raises(ConflictError):
        carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 1, "fatigue": 1}, NURSE)
    with pytest.raises(ConflictError):
        carepath.instances.resume(view.id, NURSE)
    with pytest.raises(ConflictError):
        carepath.instances.cancel(view.id, NURSE)


# Free text a person might type as a reason: a name, a date of birth, what happened to the patient.
FREE_TEXT_REASONS = [
    "Jane Doe (DOB 1961-04-23) died at home, per her daughter",
    "admitted ",
    "admitted\n",
    "Admitted",
    "x" * 65,
    " ",
]


@pytest.mark.parametrize("reason", FREE_TEXT_REASONS)
def test_a_lifecycle_reason_is_a_code_never_free_text(carepath: CarePath, reason: str) -> None:
    """The reason is recorded in the event trail, which holds no patient data: free text is refused
    before anything is written, the problem naming the field and not quoting the text."""
    view = _start(carepath)
    before = _snapshot(carepath, view.id)
    for act in (carepath.instances.suspend, carepath.instances.cancel):
        with pytest.raises(InvalidInputError) as refused:
            act(view.id, NURSE, reason)
        assert [p.field for p in refused.value.problems] == ["/reason"]
        if reason.strip():
            assert reason.strip() not in str(refused.value)
    assert _snapshot(carepath, view.id) == before


def test_a_lifecycle_reason_code_is_recorded(carepath: CarePath) -> None:
    view = _start(carepath)
    carepath.instances.suspend(view.id, NURSE, "admitted")
    carepath.instances.resume(view.id, NURSE)
    carepath.instances.cancel(view.id, NURSE, "")  # no reason: none recorded
    with carepath.sessions() as session:
        events = session.scalars(
            select(InstanceEvent).where(InstanceEvent.instance_id == view.id).order_by(InstanceEvent.seq)
        ).all()
    assert [(e.type, json.loads(e.payload)) for e in events[1:]] == [
        ("suspended", {"reason": "admitted"}),
        ("resumed", {}),
        ("cancelled", {}),
    ]


def test_state_is_saved_without_the_spec(carepath: CarePath) -> None:
    view = _start(carepath)
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, view.id)
        assert row is not None
        state = json.loads(row.state)
        spec = json.loads(row.pathway_version.spec)
    assert "spec" not in state and "subprocess_specs" not in state
    assert "test_support_connection" in spec["subprocess_specs"]


def test_restoring_between_steps_changes_nothing(carepath: CarePath) -> None:
    """Every step loads the instance from the database; a save/restore round trip is exact."""
    from engine.spiff import serializer, workflows

    view = _start(carepath)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 3}, NURSE)
    assert carepath.instances.get(view.id) == view
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, view.id)
        assert row is not None
        specs = workflows.specs_for(row.pathway_version.version, row.pathway_version.spec)
        workflow = workflows.restore(specs, row.state, script_engine=None)
        assert serializer.dump_state(workflow) == row.state
        ready = workflows.ready_tasks(workflow)[0]
    # The data collected before the save reaches the task after it.
    assert {"anxiety": 9, "fatigue": 3, "worst": 9}.items() <= ready.data.items()
