"""Failures inside a step become incidents naming the element; the instance can be retried."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine import CarePath, ConflictError
from engine.db.models import InstanceEvent

NURSE = "clinician:cns-3"


class FlakyNotifier:
    """A key-worker notification service that is down until it is brought back."""

    def __init__(self) -> None:
        self.up = False
        self.calls: list[int] = []

    def __call__(self, context: Any, task: Any, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params["level"])
        if not self.up:
            raise ConnectionError("notification service unreachable")
        return {"sent": True, "level": params["level"]}


def _event_types(carepath: CarePath, instance_id: str) -> list[str]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent.type).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def test_failing_service_task_is_an_incident_and_retry_resumes(carepath: CarePath) -> None:
    notifier = FlakyNotifier()
    carepath.instances.operators["test.notify"] = notifier
    view = carepath.instances.start("test_service_step", "MRN-5", "system:ehr")
    failed = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"distress": 8}, NURSE)
    assert failed.status == "error"
    assert failed.incident is not None
    assert failed.incident["element"] == "notify"
    # The service and the error's type; never the error's text, which may quote values.
    assert failed.incident["message"] == "service 'test.notify' failed: ConnectionError"
    assert failed.ready_tasks == []
    # The clinician's completed work is kept; nothing after the failure ran.
    assert _event_types(carepath, view.id) == ["started", "task_completed", "error"]
    with pytest.raises(ConflictError, match="incident at notify"):
        carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"distress": 8}, NURSE)

    notifier.up = True
    retried = carepath.instances.retry(view.id, "clinician:duty-manager")
    assert retried.status == "running" and retried.incident is None
    assert [t["element"] for t in retried.ready_tasks] == ["followup"]
    assert notifier.calls == [8, 8]
    assert _event_types(carepath, view.id)[-1] == "retried"


def test_retry_without_an_incident_is_a_conflict(carepath: CarePath) -> None:
    view = carepath.instances.start("test_service_step", "MRN-6", "system:ehr")
    with pytest.raises(ConflictError):
        carepath.instances.retry(view.id, NURSE)


def test_unknown_operator_is_an_incident(carepath: CarePath) -> None:
    view = carepath.instances.start("test_service_step", "MRN-8", "system:ehr")
    failed = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"distress": 2}, NURSE)
    assert failed.status == "error"
    assert failed.incident is not None and "unknown service operator 'test.notify'" in failed.incident["message"]


def test_failing_condition_names_the_gateway_and_the_missing_variable(carepath: CarePath) -> None:
    view = carepath.instances.start("test_bad_condition", "MRN-9", "system:ehr")
    failed = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"pain": 7}, NURSE)
    assert failed.status == "error"
    assert failed.incident is not None
    assert failed.incident["element"] == "gw"
    assert "pain_threshold" in failed.incident["message"]
    # Suspending and resuming keeps the incident until the instance is retried.
    carepath.instances.suspend(failed.id, NURSE)
    assert carepath.instances.resume(failed.id, NURSE).status == "error"
    # Retrying without fixing the cause fails the same way, and is recorded.
    again = carepath.instances.retry(failed.id, NURSE)
    assert again.status == "error" and again.incident is not None and again.incident["element"] == "gw"
    assert _event_types(carepath, view.id)[-2:] == ["retried", "error"]
