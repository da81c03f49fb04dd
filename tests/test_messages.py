"""Messages reach only the instance they are correlated to (patient reference or instance id)."""

from __future__ import annotations

import pytest

from engine import CarePath, InvalidInputError, MessageNotDeliverableError

NURSE = "clinician:cns-2"


def _waiting_instance(carepath: CarePath, patient: str) -> str:
    view = carepath.instances.start("test_assessment", patient, "system:ehr")
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 1, "fatigue": 1}, NURSE)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"support_accepted": True}, NURSE)
    assert view.ready_tasks == []
    return view.id


def test_message_reaches_only_the_right_patient(carepath: CarePath) -> None:
    alice = _waiting_instance(carepath, "MRN-A")
    bob = _waiting_instance(carepath, "MRN-B")
    [delivered] = carepath.instances.send_message(
        "warning_sign_reported", "system:app", patient_ref="MRN-A", payload={"sign": "fever"}
    )
    assert delivered.id == alice
    assert delivered.version == carepath.instances.get(alice).version  # usable as If-Match at once
    assert [t["element"] for t in delivered.ready_tasks] == ["triage"]
    assert carepath.instances.get(bob).ready_tasks == []
    # Delivered by instance id too.
    [by_id] = carepath.instances.send_message("warning_sign_reported", "system:app", instance_id=bob)
    assert [t["element"] for t in by_id.ready_tasks] == ["triage"]


def test_message_nobody_waits_for_is_refused(carepath: CarePath) -> None:
    alice = _waiting_instance(carepath, "MRN-A")
    with pytest.raises(MessageNotDeliverableError):
        carepath.instances.send_message("warning_sign_reported", "system:app", patient_ref="MRN-UNKNOWN")
    with pytest.raises(MessageNotDeliverableError):
        carepath.instances.send_message("no_such_message", "system:app", patient_ref="MRN-A")
    carepath.instances.send_message("warning_sign_reported", "system:app", patient_ref="MRN-A")
    # The instance no longer waits: a second report is refused, not queued.
    with pytest.raises(MessageNotDeliverableError):
        carepath.instances.send_message("warning_sign_reported", "system:app", instance_id=alice)


def test_message_before_the_instance_waits_is_refused(carepath: CarePath) -> None:
    carepath.instances.start("test_assessment", "MRN-C", "system:ehr")
    with pytest.raises(MessageNotDeliverableError):
        carepath.instances.send_message("warning_sign_reported", "system:app", patient_ref="MRN-C")


def test_message_needs_exactly_one_correlation_key(carepath: CarePath) -> None:
    with pytest.raises(InvalidInputError):
        carepath.instances.send_message("warning_sign_reported", "system:app")
    with pytest.raises(InvalidInputError):
        carepath.instances.send_message("warning_sign_reported", "system:app", patient_ref="MRN-A", instance_id="x")
