"""Starting, reading, listing (filters, cursor pagination) and the instance lifecycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from helpers import PATHWAY, assert_problem, complete, start
from sqlalchemy import func, select

from engine.db.models import IdempotencyRecord, InstanceEvent, PathwayInstance
from engine.db.session import unit_of_work


def _count(app: Flask, model: Any, *where: Any) -> int:
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_start_returns_the_instance_with_etag_and_location(app: Flask, client: Any, auth: Any) -> None:
    response = start(client, auth, "MRN-1001")
    body = response.json
    assert body["pathway_id"] == PATHWAY and body["status"] == "running" and body["version"] == 1
    assert [t["element"] for t in body["ready_tasks"]] == ["hna"]
    assert body["ready_tasks"][0]["form"]["required"] == ["anxiety", "fatigue"]
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/instances/{body['id']}"
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        row = session.get(PathwayInstance, body["id"])
        assert row is not None and row.patient_ref == "MRN-1001"
        event = session.scalars(select(InstanceEvent).where(InstanceEvent.instance_id == body["id"])).one()
        assert event.type == "started" and event.actor.startswith("system:tok_")
    again = client.get(response.headers["Location"], headers=auth("auditor"))
    assert again.status_code == 200 and again.json == body and again.headers["ETag"] == '"1"'


def test_start_refuses_bad_input_naming_the_fields(client: Any, auth: Any) -> None:
    response = client.post("/v1/instances", json={"patient_ref": "John Smith", "data": []}, headers=auth("system"))
    body = assert_problem(response, 400, "request-invalid")
    assert {e["field"] for e in body["errors"]} == {"/pathway_id", "/patient_ref", "/data"}
    assert "John" not in response.get_data(as_text=True)
    assert_problem(
        client.post("/v1/instances", json={"pathway_id": "nope", "patient_ref": "MRN-1"}, headers=auth("system")),
        404,
        "not-found",
    )


def test_start_is_idempotent_per_key(app: Flask, client: Any, auth: Any) -> None:
    first = start(client, auth, "MRN-1", **{"Idempotency-Key": "start-abc-1"})
    again = start(client, auth, "MRN-1", **{"Idempotency-Key": "start-abc-1"})
    assert again.json == first.json and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(app, PathwayInstance) == 1
    other = client.post(
        "/v1/instances",
        json={"pathway_id": PATHWAY, "patient_ref": "MRN-2"},
        headers=auth("system", **{"Idempotency-Key": "start-abc-1"}),
    )
    body = assert_problem(other, 422, "idempotency-key-reused")
    assert body["errors"] == [{"field": "Idempotency-Key", "message": "already used with another method, path or body"}]
    assert _count(app, PathwayInstance) == 1
    assert _count(app, IdempotencyRecord) == 1
    # A failure is not remembered: the same key may be used again once the request is corrected.
    bad = client.post(
        "/v1/instances",
        json={"pathway_id": "nope", "patient_ref": "MRN-3"},
        headers=auth("system", **{"Idempotency-Key": "k2"}),
    )
    assert_problem(bad, 404, "not-found")
    assert _count(app, IdempotencyRecord) == 1
    assert_problem(
        client.post(
            "/v1/instances",
            json={"pathway_id": PATHWAY, "patient_ref": "MRN-3"},
            headers=auth("system", **{"Idempotency-Key": "bad key with spaces"}),
        ),
        400,
        "request-invalid",
    )


def test_list_filters_and_paginates_with_an_opaque_cursor(client: Any, auth: Any, clock: Any) -> None:
    ids = []
    for n in range(5):
        clock.advance(timedelta(minutes=1))
        ids.append(start(client, auth, f"MRN-{n}").json["id"])
    seen, cursor = [], None
    while True:
        query = "/v1/instances?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=auth("clinician")).json
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    mine = client.get("/v1/instances?patient_ref=MRN-1", headers=auth("auditor")).json["items"]
    assert [i["id"] for i in mine] == [ids[1]]
    assert (
        client.get(f"/v1/instances?pathway_id={PATHWAY}&status=running", headers=auth("system")).json["items"][0]["id"]
        == ids[0]
    )
    assert client.get("/v1/instances?status=cancelled", headers=auth("system")).json["items"] == []
    assert client.get("/v1/instances?due_before=2030-01-01T00:00:00Z", headers=auth("system")).json["items"] == []


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=zzz", "cursor"),
        ("status=sleeping", "status"),
        ("due_before=tomorrow", "due_before"),
        ("due_before=2026-01-01T00:00:00", "due_before"),
        ("patient_ref=John%20Smith", "patient_ref"),
    ],
)
def test_list_refuses_bad_parameters(client: Any, auth: Any, query: str, field: str) -> None:
    # The same problem type whichever layer finds the parameter bad (issue 17, point 6).
    body = assert_problem(client.get(f"/v1/instances?{query}", headers=auth("system")), 400, "request-invalid")
    assert [e["field"] for e in body["errors"]] == [field]
    assert "John" not in str(body)


def test_due_before_finds_instances_waiting_on_a_timer(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    instance = complete(client, auth, instance, {"anxiety": 1, "fatigue": 1}).json
    instance = complete(client, auth, instance, {"support_accepted": True}).json
    assert instance["next_due_at"] is not None and instance["ready_tasks"] == []
    due = client.get("/v1/instances?due_before=2030-01-01T00:00:00Z", headers=auth("system")).json["items"]
    assert [i["id"] for i in due] == [instance["id"]]
    assert (
        client.get("/v1/instances?due_before=2026-02-01T00:00:00%2B00:00", headers=auth("system")).json["items"] == []
    )


JANE = "Jane Doe (DOB 1961-04-23) died at home, per her daughter"


@pytest.mark.parametrize("reason", [JANE, "Admitted", "x" * 65, ""])
def test_a_lifecycle_reason_is_a_code_never_free_text(app: Flask, client: Any, auth: Any, reason: str) -> None:
    """A suspend, resume or cancel reason goes into the event trail: free text is refused with the field
    named and the text not echoed back, and nothing is recorded."""
    instance = start(client, auth).json
    url = f"/v1/instances/{instance['id']}"
    for action in ("suspend", "resume", "cancel"):
        response = client.post(f"{url}/{action}", json={"reason": reason}, headers=auth("clinician"))
        body = assert_problem(response, 400, "request-invalid")
        assert [e["field"] for e in body["errors"]] == ["/reason"]
        if reason:
            assert reason not in response.get_data(as_text=True)
    for action in ("suspend", "cancel"):  # the schema's pattern lets a final newline by; the engine does not
        response = client.post(f"{url}/{action}", json={"reason": "admitted\n"}, headers=auth("clinician"))
        assert [e["field"] for e in assert_problem(response, 400, "input-invalid")["errors"]] == ["/reason"]
    assert _count(app, InstanceEvent, InstanceEvent.instance_id == instance["id"]) == 1  # started only
    assert client.get(url, headers=auth("clinician")).json["status"] == "running"


def test_a_lifecycle_reason_code_is_recorded_in_the_trail(client: Any, auth: Any) -> None:
    url = f"/v1/instances/{start(client, auth).json['id']}"
    assert client.post(url + "/suspend", json={"reason": "admitted"}, headers=auth("clinician")).status_code == 200
    assert client.post(url + "/resume", json={}, headers=auth("clinician")).status_code == 200
    assert client.post(url + "/cancel", json={"reason": "transferred"}, headers=auth("clinician")).status_code == 200
    events = client.get(url + "/events", headers=auth("auditor")).json["items"]
    assert [(e["type"], e["payload"]) for e in events[1:]] == [
        ("suspended", {"reason": "admitted"}),
        ("resumed", {}),
        ("cancelled", {"reason": "transferred"}),
    ]


def test_suspend_resume_cancel_with_if_match(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    url = f"/v1/instances/{instance['id']}"
    stale = client.post(url + "/suspend", json={}, headers=auth("clinician", **{"If-Match": '"7"'}))
    assert_problem(stale, 412, "stale-version")
    suspended = client.post(
        url + "/suspend", json={"reason": "admitted"}, headers=auth("clinician", **{"If-Match": '"1"'})
    )
    assert suspended.status_code == 200 and suspended.json["status"] == "suspended"
    assert suspended.headers["ETag"] == f'"{suspended.json["version"]}"' and suspended.json["version"] == 2
    assert_problem(client.post(url + "/suspend", headers=auth("system")), 409, "instance-state-conflict")
    resumed = client.post(url + "/resume", headers=auth("system"))
    assert resumed.status_code == 200 and resumed.json["status"] == "running"
    cancelled = client.post(url + "/cancel", json={"reason": "moved"}, headers=auth("system", **{"If-Match": "*"}))
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert_problem(client.post(url + "/resume", headers=auth("system")), 409, "instance-state-conflict")
    assert_problem(client.post(url + "/cancel", headers=auth("system", **{"If-Match": "3"})), 400, "request-invalid")
    types = [e["type"] for e in client.get(url + "/events", headers=auth("auditor")).json["items"]]
    assert types == ["started", "suspended", "resumed", "cancelled"]


def test_unknown_instances_are_404(client: Any, auth: Any) -> None:
    assert_problem(
        client.get("/v1/instances/00000000-0000-4000-8000-000000000000", headers=auth("system")), 404, "not-found"
    )
    assert_problem(client.get("/v1/instances/not-a-uuid", headers=auth("system")), 404, "not-found")
