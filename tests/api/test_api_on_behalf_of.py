"""X-On-Behalf-Of (issue 17, point 2): a system token names the member of staff it acts for; the
event trail records both, under the hash chain; other tokens may not, and a malformed id is refused."""

from __future__ import annotations

from typing import Any

from flask import Flask
from helpers import PATHWAY, assert_problem, complete, start
from sqlalchemy import select, update

from engine.db.models import InstanceEvent
from engine.db.session import unit_of_work


def test_the_trail_records_the_token_and_the_staff_member(client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-1", **{"X-On-Behalf-Of": "N-4711"}).json
    complete(client, auth, instance, {"anxiety": 2, "fatigue": 3}, role="system", **{"X-On-Behalf-Of": "sds:55501"})
    events = client.get(f"/v1/instances/{instance['id']}/events", headers=auth("auditor")).json["items"]
    started, completed = events[0], next(e for e in events if e["type"] == "task_completed")
    assert started["actor"].startswith("system:tok_") and started["on_behalf_of"] == "N-4711"
    assert completed["actor"] == started["actor"] and completed["on_behalf_of"] == "sds:55501"
    # Without the header the token acts for itself.
    plain = start(client, auth, "MRN-2").json
    [first] = client.get(f"/v1/instances/{plain['id']}/events", headers=auth("auditor")).json["items"][:1]
    assert first["on_behalf_of"] is None


def test_the_hash_chain_covers_the_staff_member(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-3", **{"X-On-Behalf-Of": "N-4711"}).json
    verify = f"/v1/audit/verify?instance_id={instance['id']}"
    assert client.get(verify, headers=auth("auditor")).json["verified"] is True
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        actor = session.scalar(
            select(InstanceEvent.actor).where(InstanceEvent.instance_id == instance["id"], InstanceEvent.seq == 1)
        )
        assert actor.endswith(" for staff:N-4711")
        session.execute(
            update(InstanceEvent)
            .where(InstanceEvent.instance_id == instance["id"], InstanceEvent.seq == 1)
            .values(actor=actor.replace("N-4711", "N-0001"))
        )
    report = client.get(verify, headers=auth("auditor")).json
    assert report["verified"] is False and report["problems"][0]["seq"] == 1


def test_only_system_tokens_may_act_for_someone(client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-4").json
    task = instance["ready_tasks"][0]["id"]
    refused = client.post(
        f"/v1/instances/{instance['id']}/tasks/{task}/complete",
        json={"data": {"anxiety": 2, "fatigue": 3}},
        headers=auth("clinician", **{"X-On-Behalf-Of": "N-4711"}),
    )
    body = assert_problem(refused, 403, "forbidden")
    assert "only system tokens" in body["detail"]
    assert_problem(client.get("/v1/pathways", headers=auth("author", **{"X-On-Behalf-Of": "N-4711"})), 403, "forbidden")
    events = client.get(f"/v1/instances/{instance['id']}/events", headers=auth("auditor")).json["items"]
    assert [e["type"] for e in events] == ["started"]  # nothing was done


def test_a_staff_id_must_be_an_identifier(client: Any, auth: Any) -> None:
    for bad in ("John Smith", "", "x" * 65, "-leading", "N-1\u00e9"):
        response = client.post(
            "/v1/instances",
            json={"pathway_id": PATHWAY, "patient_ref": "MRN-5"},
            headers=auth("system", **{"X-On-Behalf-Of": bad}),
        )
        body = assert_problem(response, 400, "input-invalid")
        assert body["errors"][0]["field"] == "X-On-Behalf-Of"
    assert client.get("/v1/instances?patient_ref=MRN-5", headers=auth("auditor")).json["items"] == []
