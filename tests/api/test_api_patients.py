"""A patient on the API (issue 18 point 2): every endpoint walked with a patient's token, their own
records against another patient's (404, as an id nobody has), their own forms and nothing else, warning
signs to their own pathways, and linking identities (admin and system only)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from api_contract import make_token
from flask import Flask
from helpers import assert_problem, complete, start

from api.openapi import DOCUMENT
from engine import ManualClock
from engine.access import PERMISSIONS
from engine.instances.timers import fire_due_timers

OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item]
PATIENT_ACTIONS = {action for action, roles in PERMISSIONS.items() if "patient" in roles}
NO_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def patient(app: Flask) -> dict[str, str]:
    """The Authorization header of MRN-1001's patient token."""
    return {"Authorization": f"Bearer {make_token(app, 'patient', patient_ref='MRN-1001')}"}


def waiting(client: Any, auth: Any, patient_ref: str, instance: dict[str, Any] | None = None) -> dict[str, Any]:
    """An instance past its needs assessment, waiting for the survey's timer or a warning sign."""
    instance = instance or start(client, auth, patient_ref).json
    instance = complete(client, auth, instance, {"anxiety": 1, "fatigue": 1}).json
    result: dict[str, Any] = complete(client, auth, instance, {"support_accepted": False}).json
    return result


def _call(client: Any, path: str, method: str, headers: dict[str, str], ids: dict[str, str]) -> Any:
    ids = {"number": "1", **ids}  # a phase of care: the first
    url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), NO_ID), path)
    if method == "get":
        return client.get(url, headers=headers)
    body: dict[str, Any] = {"data": {}} if path.endswith("/forms/{task_id}") else {"warning_sign": "fever"}
    return client.open(url, method=method.upper(), json=body, headers=headers)


def test_the_patient_role_has_only_the_patient_actions() -> None:
    assert {"patient.read", "patient.submit", "patient.report", "patient.ask"} == PATIENT_ACTIONS
    assert all(roles == frozenset({"patient"}) for action, roles in PERMISSIONS.items() if action in PATIENT_ACTIONS)


@pytest.mark.parametrize("path,method", OPERATIONS)
def test_a_patient_walks_every_endpoint(
    client: Any, auth: Any, patient: dict[str, str], path: str, method: str
) -> None:
    """Staff endpoints are forbidden whatever the id; the patient's own are not found for another patient's
    instance, exactly as for an instance nobody has."""
    other = start(client, auth, "MRN-2002").json
    permission = DOCUMENT["paths"][path][method].get("x-permission")
    response = _call(
        client, path, method, patient, {"instance_id": other["id"], "task_id": other["ready_tasks"][0]["id"]}
    )
    if permission is None:
        assert response.status_code < 400
    elif permission not in PATIENT_ACTIONS:
        assert_problem(response, 403, "forbidden")
    elif "{instance_id}" in path:
        body = assert_problem(response, 404, "not-found")
        nobody = assert_problem(_call(client, path, method, patient, {}), 404, "not-found")
        assert body["detail"].replace(other["id"], NO_ID) == nobody["detail"]
        assert "MRN-2002" not in response.get_data(as_text=True)
    else:
        assert response.status_code not in (401, 403) and response.status_code < 500


def test_a_patient_reads_their_own_records_and_plan_in_both_languages(
    client: Any, auth: Any, patient: dict[str, str]
) -> None:
    own = start(client, auth, "MRN-1001").json
    start(client, auth, "MRN-2002")
    records = client.get("/v1/me", headers=patient).json
    assert records["patient_ref"] == "MRN-1001" and [i["id"] for i in records["instances"]] == [own["id"]]
    # The needs assessment of the test pathway is the staff's form (hna): not shown, not completed by them.
    assert records["instances"][0]["forms"] == []
    url = f"/v1/me/instances/{own['id']}/care-plan"
    english = client.get(url, headers=patient)
    swedish = client.get(url, headers={**patient, "Accept-Language": "sv-SE"})
    assert (english.headers["Content-Language"], swedish.headers["Content-Language"]) == ("en", "sv")
    assert english.json["patient_ref"] == "MRN-1001"
    staff = client.get(f"/v1/instances/{own['id']}/care-plan", headers=auth("clinician")).json
    assert staff["next_steps"]["ready_tasks"] and english.json["next_steps"]["ready_tasks"] == []
    page = client.get(url, headers={**patient, "Accept": "text/html"})
    assert page.mimetype == "text/html" and "no-store" in page.headers["Cache-Control"]


def test_a_patient_submits_their_own_survey_and_no_staff_task(
    app: Flask, client: Any, auth: Any, patient: dict[str, str], clock: ManualClock
) -> None:
    own = start(client, auth, "MRN-1001").json
    staff_task = own["ready_tasks"][0]["id"]
    refused = client.post(
        f"/v1/me/instances/{own['id']}/forms/{staff_task}", json={"data": {"anxiety": 1, "fatigue": 1}}, headers=patient
    )
    assert_problem(refused, 404, "not-found")
    own = waiting(client, auth, "MRN-1001", own)
    clock.advance(timedelta(days=560))
    fire_due_timers(app.extensions["carepath"].instances, worker_id="test")
    [instance] = client.get("/v1/me", headers=patient).json["instances"]
    [form] = instance["forms"]
    assert (form["element"], form["kind"]) == ("survey", "survey")
    url = f"/v1/me/instances/{own['id']}/forms/{form['id']}"
    invalid = client.post(url, json={"data": {"qol_score": 101}}, headers=patient)
    body = assert_problem(invalid, 422, "task-data-invalid")
    assert "101" not in str({k: v for k, v in body.items() if k != "request_id"})  # a random hex id may hold it
    done = client.post(
        url, json={"data": {"qol_score": 70}}, headers={**patient, "If-Match": f'"{instance["version"]}"'}
    )
    assert done.status_code == 200 and done.json["forms"] == [], done.json
    events = client.get(f"/v1/instances/{own['id']}/events", headers=auth("auditor")).json["items"]
    [completed] = [e for e in events if e["type"] == "task_completed" and e["element"] == "survey"]
    assert completed["actor"].startswith("patient:tok_") and "MRN" not in completed["actor"]


def test_a_warning_sign_goes_to_the_patients_own_pathways_only(client: Any, auth: Any, patient: dict[str, str]) -> None:
    own = waiting(client, auth, "MRN-1001")
    other = waiting(client, auth, "MRN-2002")
    response = client.post(
        "/v1/me/warning-signs", json={"warning_sign": "fever", "description": "38.5 tonight"}, headers=patient
    )
    assert response.status_code == 202 and response.json["instances"] == [own["id"]]
    # "fever" is no code of the catalogue: triaged as the most urgent, and the patient told to call if unwell.
    assert response.json["advice"]["level"] == "unknown" and response.json["advice"]["notice"]["phone"]
    staff = client.get(f"/v1/instances/{own['id']}", headers=auth("clinician")).json
    assert [t["element"] for t in staff["ready_tasks"]] == ["triage"]
    assert client.get(f"/v1/instances/{other['id']}", headers=auth("clinician")).json["ready_tasks"] == []
    # Refused input is named by field; nothing the patient wrote is quoted back.
    bad = client.post(
        "/v1/me/warning-signs", json={"warning_sign": "Fever <b>", "description": "y" * 1001}, headers=patient
    )
    body = assert_problem(bad, 400, "request-invalid")
    assert {e["field"] for e in body["errors"]} == {"/warning_sign", "/description"} and "Fever" not in str(body)


def test_a_warning_sign_sent_again_with_its_key_is_reported_once(
    client: Any, auth: Any, patient: dict[str, str]
) -> None:
    """A patient app retrying after a lost answer: the same key and report start one triage; the key
    reused for another report is refused (a 422 the OpenAPI document declares: the client checks)."""
    own = waiting(client, auth, "MRN-1001")
    keyed = {**patient, "Idempotency-Key": "app-report-1"}
    report = {"warning_sign": "fever", "description": "38.5 tonight"}
    first = client.post("/v1/me/warning-signs", json=report, headers=keyed)
    again = client.post("/v1/me/warning-signs", json=report, headers=keyed)
    assert first.status_code == again.status_code == 202 and again.json == first.json
    assert first.json["instances"] == [own["id"]]
    staff = client.get(f"/v1/instances/{own['id']}", headers=auth("clinician")).json
    assert [t["element"] for t in staff["ready_tasks"]] == ["triage"]
    other = client.post("/v1/me/warning-signs", json={**report, "warning_sign": "bleeding"}, headers=keyed)
    assert_problem(other, 422, "idempotency-key-reused")


@pytest.mark.parametrize(
    ("sign", "language", "level", "action", "told"),
    [
        ("severe_breathlessness_or_chest_pain", "en-GB", "emergency", "Call 999.", "Do not wait for them"),
        # The patient's health system's number (a UK deployment's), not the reader's language's (112).
        ("severe_breathlessness_or_chest_pain", "sv-SE", "emergency", "Ring 999.", "Vänta inte på att de"),
        ("cellulitis", "en-GB", "urgent", "Call the 24-hour acute oncology line the same day", "Do not wait"),
        ("general_bone_pain", "en-GB", "soon", "Contact your key worker within a few days", "contact you"),
    ],
)
def test_a_reported_sign_is_answered_with_what_to_tell_the_patient_now(
    client: Any, auth: Any, patient: dict[str, str], sign: str, language: str, level: str, action: str, told: str
) -> None:
    """A patient app shows the answer's advice: sending a report is not getting help, so an emergency or
    same-day sign is told the catalogue's action and not to wait for the team, in the reader's language."""
    own = waiting(client, auth, "MRN-1001")
    response = client.post(
        "/v1/me/warning-signs", json={"warning_sign": sign}, headers={**patient, "Accept-Language": language}
    )
    assert response.status_code == 202 and response.json["instances"] == [own["id"]]
    advice = response.json["advice"]
    assert (advice["level"], advice["urgency"], advice["notice"]["language"]) == (level, level, language[:2])
    assert advice["action"].startswith(action) and told in advice["told"], advice
    assert response.headers["Vary"] == "Accept-Language"


def test_identities_are_linked_by_admin_and_system_only(client: Any, auth: Any) -> None:
    link = {"issuer": "https://login.example.org", "subject": "p-77", "patient_ref": "MRN-1001"}
    for role in ("clinician", "auditor", "author", "patient"):
        assert client.post("/v1/patient-identities", json=link, headers=auth(role)).status_code == 403
    created = client.post("/v1/patient-identities", json=link, headers=auth("admin"))
    assert created.status_code == 201 and created.json["linked_by"].startswith("admin:tok_")
    conflict = client.post("/v1/patient-identities", json={**link, "patient_ref": "MRN-2002"}, headers=auth("system"))
    assert_problem(conflict, 409, "instance-state-conflict")
    listed = client.get("/v1/patient-identities?patient_ref=MRN-1001", headers=auth("system")).json["items"]
    assert [item["subject"] for item in listed] == ["p-77"]
    ref = {"issuer": link["issuer"], "subject": "p-77"}
    assert client.post("/v1/patient-identities/unlink", json=ref, headers=auth("admin")).status_code == 200
    assert_problem(client.post("/v1/patient-identities/unlink", json=ref, headers=auth("admin")), 404, "not-found")
