"""Messages, the event trail and its verification; health and readiness; the token command."""

from __future__ import annotations

import re
from typing import Any

from click.testing import CliRunner
from flask import Flask
from helpers import assert_problem, complete, start
from sqlalchemy import text

from api import __version__
from api.cli import main
from engine.db.session import unit_of_work


def _to_the_gateway(client: Any, auth: Any, patient_ref: str) -> dict[str, Any]:
    instance = start(client, auth, patient_ref).json
    instance = complete(client, auth, instance, {"anxiety": 1, "fatigue": 1}).json
    result: dict[str, Any] = complete(client, auth, instance, {"support_accepted": False}).json
    return result


_NO_INSTANCE = "00000000-0000-4000-8000-000000000000"


def test_message_reaches_the_patients_waiting_instance(client: Any, auth: Any) -> None:
    waiting = _to_the_gateway(client, auth, "MRN-1")
    _to_the_gateway(client, auth, "MRN-2")
    response = client.post(
        "/v1/messages",
        json={"name": "warning_sign_reported", "patient_ref": "MRN-1", "payload": {"sign": "fever"}},
        headers=auth("system"),
    )
    assert response.status_code == 200
    [delivered] = response.json["delivered"]
    assert delivered["id"] == waiting["id"] and [t["element"] for t in delivered["ready_tasks"]] == ["triage"]
    again = client.post(
        "/v1/messages", json={"name": "warning_sign_reported", "instance_id": waiting["id"]}, headers=auth("system")
    )
    assert_problem(again, 409, "message-not-deliverable")
    both = client.post(
        "/v1/messages",
        json={"name": "warning_sign_reported", "instance_id": waiting["id"], "patient_ref": "MRN-1"},
        headers=auth("system"),
    )
    assert_problem(both, 400, "request-invalid")


def test_event_trail_and_verification(app: Flask, client: Any, auth: Any) -> None:
    instance = _to_the_gateway(client, auth, "MRN-1")
    events = client.get(f"/v1/instances/{instance['id']}/events", headers=auth("clinician")).json["items"]
    assert [e["type"] for e in events] == ["started", "task_completed", "task_completed"]
    assert [e["seq"] for e in events] == [1, 2, 3] and events[1]["prev_hash"] == events[0]["hash"]
    assert client.get(f"/v1/audit/verify?instance_id={instance['id']}", headers=auth("auditor")).json == {
        "verified": True,
        "problems": [],
    }
    assert _verification_job(app, client, auth)["verified"] is True
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        session.execute(text("UPDATE instance_events SET actor = 'someone else' WHERE seq = 2"))
    report = client.get(f"/v1/audit/verify?instance_id={instance['id']}", headers=auth("auditor")).json
    assert report["verified"] is False
    assert report["problems"][0] == {
        "instance_id": instance["id"],
        "seq": 2,
        "message": "content was changed after it was written",
    }
    job = _verification_job(app, client, auth)
    assert job["status"] == "problems" and job["verified"] is False and job["problem_count"] == 1
    assert job["problems"] == [report["problems"][0]]
    assert job["instances_total"] == job["instances_checked"] == 1 and job["finished_at"] is not None
    assert_problem(
        client.get("/v1/instances/00000000-0000-4000-8000-000000000000/events", headers=auth("auditor")),
        404,
        "not-found",
    )


def _verification_job(app: Flask, client: Any, auth: Any) -> dict[str, Any]:
    """Start a verification of every trail; it is accepted at once and its result read where it points."""
    started = client.post("/v1/audit/verifications", headers=auth("auditor"))
    assert started.status_code == 202 and started.json["status"] == "queued"
    app.extensions["carepath.jobs"].wait()
    job: dict[str, Any] = client.get(started.headers["Location"], headers=auth("auditor")).json
    assert job["id"] == started.json["id"]
    return job


def test_verifying_every_trail_is_never_one_request(client: Any, auth: Any) -> None:
    assert_problem(client.get("/v1/audit/verify", headers=auth("auditor")), 400, "request-invalid")
    assert_problem(client.post("/v1/audit/verifications", headers=auth("clinician")), 403, "forbidden")
    assert_problem(
        client.get("/v1/audit/verifications/00000000-0000-4000-8000-000000000000", headers=auth("auditor")),
        404,
        "not-found",
    )


def test_health_and_readiness(app: Flask, client: Any) -> None:
    assert client.get("/v1/health").json == {"status": "ok", "version": __version__}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert_problem(client.get("/v1/ready"), 503, "not-ready")


def test_token_create_prints_the_secret_once_and_it_works(app: Flask, client: Any) -> None:
    runner = CliRunner()
    env = {"CAREPATH_DATABASE_URL": app.config["DATABASE_URL"]}  # the app's own database
    result = runner.invoke(main, ["token", "create", "--role", "auditor", "--label", "audit team"], env=env)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert len(secret) >= 43 and "tok_" in result.stderr
    assert (
        client.get(
            f"/v1/audit/verify?instance_id={_NO_INSTANCE}", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 200
    )
    assert client.post("/v1/messages", json={}, headers={"Authorization": f"Bearer {secret}"}).status_code == 403
    token_id = re.search(r"\btok_[0-9a-f]+", result.stderr).group(0)  # type: ignore[union-attr]
    revoked = runner.invoke(main, ["token", "revoke", token_id], env=env)
    assert revoked.exit_code == 0
    assert (
        client.get(
            f"/v1/audit/verify?instance_id={_NO_INSTANCE}", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 401
    )
    bad = runner.invoke(main, ["token", "create", "--role", "root"], env=env)
    assert bad.exit_code != 0
