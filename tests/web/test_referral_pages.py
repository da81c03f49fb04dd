"""Referrals on the web pages (issue 14, point 2): the service's moves with their history on the patient
page, reconsidering with a reason, and a referral not accepted in time on the work list, completed there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import csrf_of

from engine import ManualClock

Client = Callable[[str], FlaskClient]


def _agreed_referral(app: Flask) -> tuple[str, str]:
    carepath = app.extensions["carepath"]
    view = carepath.instances.start("test_careplan", "MRN-5005", "system:test", {"age": 54})
    view = carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:test"
    )
    referral = next(i for i in carepath.care_plans.get(view.id).items if i["kind"] == "referral")
    carepath.care_plans.set_status(view.id, referral["id"], "agreed", "clinician:test")
    return view.id, referral["id"]


def _text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


def test_the_service_moves_a_referral_on_and_each_move_is_listed(app: Flask, signed_in: Client) -> None:
    instance_id, item_id = _agreed_referral(app)
    client = signed_in("clinician")
    html = _text(client.get(f"/patients/{instance_id}"))
    url = f"/patients/{instance_id}/care-plan/{item_id}"
    for status in ("referred", "accepted"):
        response = client.post(
            url, data={"csrf_token": csrf_of(html), "status": status}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
    section = _text(response)
    assert 'value="first_contact"' in section and 'value="did_not_attend"' in section
    assert 'value="completed"' not in section  # seen first
    assert 'data-test="item-history"' in section and "Accepted by the service" in section
    assert section.count("clinician:") >= 3  # who moved it, each time


def test_agreeing_again_to_a_declined_item_needs_a_reason(app: Flask, signed_in: Client) -> None:
    instance_id, item_id = _agreed_referral(app)
    client = signed_in("clinician")
    html = _text(client.get(f"/patients/{instance_id}"))
    url = f"/patients/{instance_id}/care-plan/{item_id}"
    client.post(url, data={"csrf_token": csrf_of(html), "status": "declined"})
    refused = client.post(url, data={"csrf_token": csrf_of(html), "status": "agreed"})
    assert refused.status_code == 409 and "needs a reason" in _text(refused)
    bad = client.post(url, data={"csrf_token": csrf_of(html), "status": "agreed", "reason": "<b>she asked</b>"})
    assert bad.status_code == 422 and "<b>she asked</b>" not in _text(bad)
    again = client.post(url, data={"csrf_token": csrf_of(html), "status": "agreed", "reason": "needs_changed"})
    assert again.status_code == 200 and "needs changed" in _text(again)
    plan = {i["id"]: i for i in app.extensions["carepath"].care_plans.get(instance_id).items}
    assert (plan[item_id]["status"], plan[item_id]["history"][-1]["reason"]) == ("agreed", "needs_changed")


def test_a_referral_not_accepted_in_time_is_on_the_work_list_until_completed(
    app: Flask, signed_in: Client, clock_of: Callable[[Flask], ManualClock]
) -> None:
    instance_id, item_id = _agreed_referral(app)
    carepath = app.extensions["carepath"]
    carepath.care_plans.set_status(instance_id, item_id, "referred", "clinician:test")
    client = signed_in("clinician")
    assert 'data-test="escalations"' not in _text(client.get("/work-list"))
    clock_of(app).advance(timedelta(days=7))
    assert carepath.referral_escalations.open_due() == 1
    client = signed_in("clinician")  # another shift: signed in again
    html = _text(client.get("/work-list"))
    assert 'data-test="escalations"' in html and "MRN-5005" in html
    escalation = carepath.referral_escalations.list_open()[0]["id"]
    url = f"/work-list/escalations/{escalation}"
    assert client.post(url, data={"csrf_token": csrf_of(html), "outcome": "Phoned"}).status_code == 422
    done = client.post(url, data={"csrf_token": csrf_of(html), "outcome": "chased_service"})
    assert done.status_code == 303
    assert "Escalation completed for MRN-5005" in _text(client.get(done.location))
    assert client.post(url, data={"csrf_token": csrf_of(html), "outcome": "chased_service"}).status_code == 409
    assert 'data-test="escalations"' not in _text(client.get("/work-list"))
