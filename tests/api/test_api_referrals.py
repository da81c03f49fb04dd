"""Referrals over HTTP (issue 14, point 2): moves and refused moves as problems, reconsidering with a
reason code, and a referral not accepted in time in the work list, completed there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from helpers import assert_problem, assessed

from engine import ManualClock

MISSING = "00000000-0000-4000-8000-000000000000"


def _referral(client: Any, auth: Any, patient_ref: str = "MRN-4004") -> tuple[str, str]:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, patient_ref)
    plan = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician")).json
    return instance["id"], next(i["id"] for i in plan["awaiting_decision"] if i["kind"] == "referral")


def _move(client: Any, auth: Any, instance_id: str, item_id: str, status: str, **extra: str) -> Any:
    return client.patch(
        f"/v1/instances/{instance_id}/care-plan/items/{item_id}",
        json={"status": status, **extra},
        headers=auth("clinician"),
    )


def test_moves_refused_by_the_referral_machine_are_problems(client: Any, auth: Any) -> None:
    instance_id, item_id = _referral(client, auth)
    body = assert_problem(_move(client, auth, instance_id, item_id, "accepted"), 409, "instance-state-conflict")
    assert body["detail"] == "a proposed item cannot become accepted"
    assert_problem(_move(client, auth, instance_id, item_id, "lost"), 400, "request-invalid")
    assert_problem(
        _move(client, auth, instance_id, item_id, "declined", reason="She said no, too tired"), 400, "request-invalid"
    )  # a reason is a code: free text would reach the event trail
    assert _move(client, auth, instance_id, item_id, "declined").json["status"] == "declined"
    assert_problem(_move(client, auth, instance_id, item_id, "agreed"), 409, "instance-state-conflict")
    again = _move(client, auth, instance_id, item_id, "agreed", reason="patient_changed_mind")
    assert again.status_code == 200 and again.json["history"][-1]["reason"] == "patient_changed_mind"
    for status in ("referred", "accepted", "first_contact", "completed"):
        moved = _move(client, auth, instance_id, item_id, status)
        assert moved.status_code == 200 and moved.json["status"] == status, moved.json
    assert moved.json["next_statuses"] == []


def test_an_overdue_referral_is_in_the_work_list_and_completed_there(
    app: Any, client: Any, auth: Any, clock: ManualClock
) -> None:
    instance_id, item_id = _referral(client, auth)
    _move(client, auth, instance_id, item_id, "agreed")
    assert _move(client, auth, instance_id, item_id, "referred").json["accept_by"] is not None
    assert client.get("/v1/tasks", headers=auth("clinician")).json["escalations"] == []
    clock.advance(timedelta(days=7))
    assert app.extensions["carepath"].referral_escalations.open_due() == 1  # the worker's scan
    listed = client.get("/v1/tasks?patient_ref=MRN-4004", headers=auth("clinician")).json["escalations"]
    assert [(e["care_plan_item_id"], e["status"], e["urgency"]) for e in listed] == [(item_id, "open", "urgent")]
    assert client.get("/v1/tasks?patient_ref=MRN-9999", headers=auth("clinician")).json["escalations"] == []
    url = f"/v1/referral-escalations/{listed[0]['id']}/complete"
    assert_problem(
        client.post(url, json={"outcome": "Left a voicemail"}, headers=auth("clinician")), 400, "request-invalid"
    )
    assert_problem(client.post(url, json={"outcome": "chased_service"}, headers=auth("auditor")), 403, "forbidden")
    done = client.post(url, json={"outcome": "chased_service"}, headers=auth("clinician"))
    assert done.status_code == 200 and (done.json["status"], done.json["outcome"]) == ("completed", "chased_service")
    assert_problem(
        client.post(url, json={"outcome": "chased_service"}, headers=auth("clinician")), 409, "instance-state-conflict"
    )
    assert_problem(
        client.post(
            f"/v1/referral-escalations/{MISSING}/complete",
            json={"outcome": "chased_service"},
            headers=auth("clinician"),
        ),
        404,
        "not-found",
    )
    assert client.get("/v1/tasks", headers=auth("clinician")).json["escalations"] == []
