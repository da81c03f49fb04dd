"""Migrating a pathway's instances to its newest version, and retrying an instance in error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from helpers import PATHWAY, assert_problem, complete, deploy, start

MISSING = "00000000-0000-4000-8000-000000000000"
ASSESSMENT = (Path(__file__).resolve().parent.parent / "pathways" / "assessment.bpmn").read_bytes()
# The new version asks one more question in the needs assessment: work already done there must not change.
EXTRA_FIELD = b'<camunda:formField id="assessed_on" label="Date of assessment" type="date" />'
V2 = ASSESSMENT.replace(EXTRA_FIELD, EXTRA_FIELD + b'\n<camunda:formField id="sleep" label="Sleep" type="long" />')


def _deploy(client: Any, auth: Any, diagram: bytes) -> str:
    version: str = deploy(client, auth("author"), {"assessment.bpmn": diagram})["items"][0]["version"]
    return version


def _migrate(client: Any, auth: Any, body: Any, pathway_id: str = PATHWAY, role: str = "author") -> Any:
    return client.post(f"/v1/pathways/{pathway_id}/migrate", json=body, headers=auth(role))


def test_dry_run_then_migrate(client: Any, auth: Any) -> None:
    waiting = start(client, auth, "MRN-1").json  # still at the assessment
    assessed = start(client, auth, "MRN-2").json
    assessed_version = complete(client, auth, assessed, {"anxiety": 2, "fatigue": 3}).json["version"]
    old = waiting["pathway_version"]
    new = _deploy(client, auth, V2)

    dry = _migrate(client, auth, {"dry_run": True})
    assert dry.status_code == 200
    report = dry.json
    assert (report["pathway_id"], report["to_version"], report["dry_run"]) == (PATHWAY, new, True)
    outcomes = {i["instance_id"]: i for i in report["instances"]}
    assert set(outcomes) == {waiting["id"], assessed["id"]}
    moved, refused = outcomes[waiting["id"]], outcomes[assessed["id"]]
    assert (moved["from_version"], moved["to_version"], moved["migrated"], moved["refused"]) == (old, new, False, None)
    assert refused["refused"] == "completed task 'hna' would change (extensions)" and not refused["migrated"]
    assert all("patient_ref" not in i for i in report["instances"])  # authors do not read patients
    assert "MRN-" not in dry.get_data(as_text=True)
    for instance in (waiting, assessed):  # a dry run writes nothing
        now = client.get(f"/v1/instances/{instance['id']}", headers=auth("auditor")).json
        assert now["pathway_version"] == old

    done = _migrate(client, auth, {"dry_run": False}).json
    outcomes = {i["instance_id"]: i for i in done["instances"]}
    assert done["dry_run"] is False and outcomes[waiting["id"]]["migrated"] is True
    assert outcomes[assessed["id"]]["migrated"] is False and outcomes[assessed["id"]]["refused"]
    after = client.get(f"/v1/instances/{waiting['id']}", headers=auth("clinician")).json
    assert after["pathway_version"] == new and "sleep" in after["ready_tasks"][0]["form"]["properties"]
    events = client.get(f"/v1/instances/{waiting['id']}/events", headers=auth("auditor")).json["items"]
    assert events[-1]["type"] == "migrated" and events[-1]["actor"].startswith("author:tok_")
    assert events[-1]["payload"]["from_version"] == old and events[-1]["payload"]["to_version"] == new
    refused_now = client.get(f"/v1/instances/{assessed['id']}", headers=auth("clinician")).json
    assert refused_now["pathway_version"] == old and refused_now["version"] == assessed_version  # unchanged
    # Nothing left to move.
    assert [i["instance_id"] for i in _migrate(client, auth, {"dry_run": False}).json["instances"]] == [assessed["id"]]


def test_migrate_refuses_bad_requests(client: Any, auth: Any) -> None:
    assert_problem(_migrate(client, auth, {"dry_run": True}, "no_such_pathway"), 404, "not-found")
    assert_problem(_migrate(client, auth, {"dry_run": True}, "bad%20id"), 404, "not-found")
    for body in ({}, {"dry_run": "yes"}, {"dry_run": True, "force": True}):
        assert_problem(_migrate(client, auth, body), 400, "request-invalid")
    for role in ("system", "clinician", "auditor"):
        assert_problem(_migrate(client, auth, {"dry_run": True}, role=role), 403, "forbidden")


class _Notifier:
    """A key-worker notification service that is down until it is brought back."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, context: Any, task: Any, params: dict[str, Any]) -> dict[str, Any]:
        if not self.up:
            raise ConnectionError("notification service unreachable")
        return {"sent": True}


def test_retry_an_instance_in_error(app: Flask, client: Any, auth: Any) -> None:
    notifier = _Notifier()
    app.extensions["carepath"].instances.operators["test.notify"] = notifier
    started = client.post(
        "/v1/instances", json={"pathway_id": "test_service_step", "patient_ref": "MRN-5"}, headers=auth("system")
    ).json
    failed = complete(client, auth, started, {"distress": 8}).json
    assert failed["status"] == "error" and failed["incident"]["element"] == "notify"
    url = f"/v1/instances/{started['id']}/retry"

    still = client.post(url, headers=auth("system"))  # the service is still down: a new incident
    assert still.status_code == 200 and still.json["status"] == "error"
    assert still.headers["ETag"] == f'"{still.json["version"]}"'
    assert_problem(
        client.post(url, headers=auth("clinician", **{"If-Match": f'"{failed["version"]}"'})), 412, "stale-version"
    )
    notifier.up = True
    retried = client.post(url, headers=auth("clinician", **{"If-Match": still.headers["ETag"]}))
    assert retried.status_code == 200, retried.json
    assert retried.json["status"] == "running" and retried.json["incident"] is None
    assert [t["element"] for t in retried.json["ready_tasks"]] == ["followup"]
    events = client.get(f"/v1/instances/{started['id']}/events", headers=auth("auditor")).json["items"]
    assert [e["type"] for e in events].count("retried") == 2 and events[-1]["actor"].startswith("clinician:tok_")

    body = assert_problem(client.post(url, headers=auth("system")), 409, "instance-state-conflict")
    assert "MRN-5" not in str(body)
    assert_problem(client.post(f"/v1/instances/{MISSING}/retry", headers=auth("system")), 404, "not-found")
    for role in ("auditor", "author"):
        assert_problem(client.post(url, headers=auth(role)), 403, "forbidden")
