"""Ready tasks across instances, one task with its form, completing with If-Match and Idempotency-Key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from helpers import assert_problem, complete, start
from sqlalchemy import func, select
from test_formless_tasks import formless_diagram  # tests/ is on sys.path

from engine.db.models import InstanceEvent
from engine.db.session import unit_of_work


def _completions(app: Flask, instance_id: str) -> int:
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(InstanceEvent)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == "task_completed")
            )
            or 0
        )


def test_list_ready_tasks_with_filters(client: Any, auth: Any, clock: Any) -> None:
    first = start(client, auth, "MRN-1").json
    clock.advance(timedelta(seconds=1))  # lists are ordered by (created_at, id)
    second = start(client, auth, "MRN-2").json
    complete(client, auth, second, {"anxiety": 9, "fatigue": 1})
    items = client.get("/v1/tasks", headers=auth("clinician")).json["items"]
    assert [(t["instance_id"], t["element"]) for t in items] == [(first["id"], "hna"), (second["id"], "urgent_review")]
    assert items[1]["instance_version"] == 2 and items[1]["patient_ref"] == "MRN-2"
    only = client.get("/v1/tasks?element=urgent_review", headers=auth("system")).json["items"]
    assert [t["instance_id"] for t in only] == [second["id"]]
    mine = client.get("/v1/tasks?patient_ref=MRN-1&pathway_id=test_assessment", headers=auth("system")).json
    assert [t["instance_id"] for t in mine["items"]] == [first["id"]] and mine["next_cursor"] is None
    page = client.get("/v1/tasks?limit=1", headers=auth("system")).json
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get(f"/v1/tasks?limit=1&cursor={page['next_cursor']}", headers=auth("system")).json
    assert rest["items"][0]["instance_id"] == second["id"]


def test_get_task_with_its_form(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    task = instance["ready_tasks"][0]
    response = client.get(f"/v1/instances/{instance['id']}/tasks/{task['id']}", headers=auth("clinician"))
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.json["form"]["properties"]["anxiety"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 10,
        "title": "Worry, fear or anxiety (0-10)",
    }
    other = "00000000-0000-4000-8000-000000000000"
    assert_problem(
        client.get(f"/v1/instances/{instance['id']}/tasks/{other}", headers=auth("clinician")), 404, "not-found"
    )


def test_complete_advances_the_instance_and_records_the_actor(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    response = complete(client, auth, instance, {"anxiety": 9, "fatigue": 3})
    assert response.status_code == 200
    assert response.json["version"] == 2 and response.headers["ETag"] == '"2"'
    assert [t["element"] for t in response.json["ready_tasks"]] == ["urgent_review"]
    events = client.get(f"/v1/instances/{instance['id']}/events", headers=auth("auditor")).json["items"]
    assert events[-1]["type"] == "task_completed" and events[-1]["actor"].startswith("clinician:tok_")
    assert events[-1]["payload"]["data_digest"].startswith("sha256:")


def test_invalid_task_data_names_every_field_without_echoing_values(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    response = complete(client, auth, instance, {"anxiety": 11, "assessed_on": "SECRET-VALUE"})
    body = assert_problem(response, 422, "task-data-invalid")
    assert {e["field"] for e in body["errors"]} == {"/anxiety", "/fatigue", "/assessed_on"}
    assert "SECRET-VALUE" not in response.get_data(as_text=True) and "11" not in str(body["errors"])
    assert _completions(app, instance["id"]) == 0
    body = assert_problem(
        client.post(
            f"/v1/instances/{instance['id']}/tasks/{instance['ready_tasks'][0]['id']}/complete",
            json={"data": 5},
            headers=auth("clinician"),
        ),
        400,
        "request-invalid",
    )
    assert body["errors"][0]["field"] == "/data"


def test_stale_if_match_is_412_and_changes_nothing(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    assert complete(client, auth, {**instance, "version": 5}, {"anxiety": 1, "fatigue": 1}).status_code == 412
    assert _completions(app, instance["id"]) == 0
    assert complete(client, auth, instance, {"anxiety": 1, "fatigue": 1}).status_code == 200
    # The same request again: its If-Match is now stale.
    assert_problem(complete(client, auth, instance, {"anxiety": 1, "fatigue": 1}), 412, "stale-version")
    assert _completions(app, instance["id"]) == 1


def test_completing_a_completed_task_without_if_match_is_409(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    task = instance["ready_tasks"][0]
    url = f"/v1/instances/{instance['id']}/tasks/{task['id']}/complete"
    assert client.post(url, json={"data": {"anxiety": 1, "fatigue": 1}}, headers=auth("system")).status_code == 200
    assert_problem(
        client.post(url, json={"data": {"anxiety": 1, "fatigue": 1}}, headers=auth("system")), 409, "task-not-ready"
    )


def test_complete_is_idempotent_per_key(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    first = complete(client, auth, instance, {"anxiety": 2, "fatigue": 2}, **{"Idempotency-Key": "c-1"})
    again = complete(client, auth, instance, {"anxiety": 2, "fatigue": 2}, **{"Idempotency-Key": "c-1"})
    assert first.status_code == again.status_code == 200
    assert again.json == first.json and again.headers["ETag"] == '"2"'
    assert _completions(app, instance["id"]) == 1
    changed = complete(client, auth, instance, {"anxiety": 3, "fatigue": 2}, **{"Idempotency-Key": "c-1"})
    assert_problem(changed, 422, "idempotency-key-reused")
    # Keys are per token: another caller's identical key is a different request.
    other = complete(client, auth, instance, {"anxiety": 2, "fatigue": 2}, role="system", **{"Idempotency-Key": "c-1"})
    assert_problem(other, 412, "stale-version")
    assert _completions(app, instance["id"]) == 1


def test_a_task_without_a_form_refuses_any_field_with_422_undeclared(app: Flask, client: Any, auth: Any) -> None:
    """A manual task has no form: a client cannot set the pathway's routing flags through it."""
    diagram = formless_diagram("formless_api", "manualTask")
    app.extensions["carepath"].catalog.deploy_upload({"formless_api.bpmn": diagram}, "author:test")
    instance = client.post(
        "/v1/instances", json={"pathway_id": "formless_api", "patient_ref": "MRN-FORMLESS"}, headers=auth("system")
    ).json
    assert instance["ready_tasks"][0]["form"] is None
    response = complete(client, auth, instance, {"palliative_route": "SECRET-ROUTE"})
    body = assert_problem(response, 422, "task-data-invalid")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("/palliative_route", "undeclared")]
    assert "SECRET-ROUTE" not in response.get_data(as_text=True) and _completions(app, instance["id"]) == 0
    done = complete(client, auth, instance, {})
    assert done.status_code == 200 and done.json["status"] == "completed"
