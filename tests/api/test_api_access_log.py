"""Who looked (issue 18, point 3): every read of a patient's records -- through /v1, /fhir/R4 or the web
app -- leaves one access record per instance read, with who, what, when and on whose behalf, and never a
clinical value; auditors, and only they, query it."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from api_contract import make_token
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from helpers import assert_problem, assessed, care_plan_ids, start
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

import api.access_log
from api.cli import main
from engine.access_log import PATIENT_DATA_READS
from engine.care_teams import COMPOSITION_PREFIX
from engine.db.models import AccessRecord
from engine.db.session import unit_of_work
from engine.reports import refresh_summary

NHS_NUMBER = "9434765919"  # synthetic: the kind of NHS number used in test data


def _records(app: Flask) -> list[AccessRecord]:
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        return list(session.scalars(select(AccessRecord).order_by(AccessRecord.id)))


def _forget(app: Flask) -> None:
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        session.execute(delete(AccessRecord))


def _web(app: Flask, token: str) -> FlaskClient:
    client = FlaskClient(app, app.response_class, use_cookies=True)  # web pages are not API operations
    # The sign-in link shows a button (never signs in on a GET); the button POSTs with the CSRF token.
    page = client.get(f"/sign-in?token={token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and client.post("/sign-in", data={"token": token, "csrf_token": csrf.group(1)}).status_code == 303
    return client


@pytest.fixture
def world(client: Any, auth: Any) -> dict[str, str]:
    """A patient (an NHS number, for FHIR searches) with an assessed care plan, a referral and a ready task."""
    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, patient_ref=NHS_NUMBER)
    plan = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician")).json
    item = plan["awaiting_decision"][0]
    referral = next(i for i in plan["awaiting_decision"] if i["kind"] == "referral")
    triaged = client.post(
        "/v1/instances",
        json={
            "pathway_id": "test_triage",
            "patient_ref": NHS_NUMBER,
            "data": {"distress_score": 9, "main_concern": "emotional"},
        },
        headers=auth("system"),
    ).json  # a decision table
    decision = client.get(f"/v1/instances/{triaged['id']}/decision-evaluations", headers=auth("auditor")).json
    return {
        "instance_id": instance["id"],
        "task_id": instance["ready_tasks"][0]["id"],
        "evaluation_id": item["why"]["evaluation_id"],
        "referral_id": referral["id"],
        "why": item["code"],
        "triaged_id": triaged["id"],
        "decision_id": decision["items"][0]["id"],
    }


def _urls(ids: dict[str, str]) -> dict[str, str]:
    """A URL for every route that shows patient data, by endpoint."""
    i, t, e = ids["instance_id"], ids["task_id"], ids["evaluation_id"]
    fhir = "/fhir/R4"
    return {
        "instances.find": f"/v1/instances?patient_ref={NHS_NUMBER}",
        "instances.get": f"/v1/instances/{i}",
        "tasks.list_ready": f"/v1/tasks?patient_ref={NHS_NUMBER}",
        "tasks.get": f"/v1/instances/{i}/tasks/{t}",
        "events.list_events": f"/v1/instances/{i}/events",
        "documents.care_plan": f"/v1/instances/{i}/care-plan",
        "documents.end_of_treatment": f"/v1/instances/{i}/end-of-treatment-summary",
        "documents.end_of_treatment_phases": f"/v1/instances/{i}/end-of-treatment-summaries",
        "documents.end_of_treatment_phase": f"/v1/instances/{i}/end-of-treatment-summaries/1",
        "documents.surveillance_plan": f"/v1/instances/{i}/active-surveillance-plan",
        "evaluations.list_evaluations": f"/v1/instances/{i}/evaluations",
        "evaluations.get_evaluation": f"/v1/evaluations/{e}",
        "evaluations.explain": f"/v1/evaluations/{e}/explanation?why={ids['why']}",
        "evaluations.concern_trends": f"/v1/instances/{i}/concerns",
        "evaluations.list_decision_evaluations": f"/v1/instances/{ids['triaged_id']}/decision-evaluations",
        "evaluations.get_decision_evaluation": f"/v1/decision-evaluations/{ids['decision_id']}",
        "fhir.search_care_plans": f"{fhir}/CarePlan?patient={NHS_NUMBER}",
        "fhir.read_care_plan": f"{fhir}/CarePlan/{i}",
        "fhir.search_service_requests": f"{fhir}/ServiceRequest?patient={NHS_NUMBER}",
        "fhir.read_service_request": f"{fhir}/ServiceRequest/{ids['referral_id']}",
        "fhir.search_tasks": f"{fhir}/Task?patient={NHS_NUMBER}",
        "fhir.search_questionnaire_responses": f"{fhir}/QuestionnaireResponse?patient={NHS_NUMBER}",
        "fhir.read_questionnaire_response": f"{fhir}/QuestionnaireResponse/{e}",
        "fhir.search_compositions": f"{fhir}/Composition?patient={NHS_NUMBER}",
        "fhir.read_composition": f"{fhir}/Composition/{COMPOSITION_PREFIX}{i}",
        "fhir.composition_document": f"{fhir}/Composition/{COMPOSITION_PREFIX}{i}/$document",
        "web.clinicians.work_list": "/work-list",
        "web.clinicians.task": f"/patients/{i}/tasks/{t}",
        "web.patients.find": f"/patients?patient_ref={NHS_NUMBER}",
        "web.patients.patient": f"/patients/{i}",
        "web.patients.document": f"/patients/{i}/documents/care-plan",
        "web.patients.diagram": f"/patients/{i}/diagram.bpmn",
        "web.auditors.evaluations": f"/patients/{i}/evaluations",
        "web.auditors.evaluation": f"/evaluations/{e}",
        "web.auditors.trail": "/audit/trail",  # audit.verify, but it lists patients (api.access_log.shows_patients)
        # messages.send, but the form names the patient and lists their warning signs (shows_patients)
        "web.recording.form": f"/patients/{i}/record/warning_sign_reported",
        "web.lifecycle.confirm": f"/patients/{i}/suspend",  # instances.manage: the page names the patient
        "web.lifecycle.team": f"/patients/{i}/care-team",  # instances.transfer
        "web.corrections.form": f"/patients/{i}/data",  # instances.correct: the patient's start data
        # The patient's own (a patient token for NHS_NUMBER): their reads are looks too.
        "me.records": "/v1/me",
        "me.care_plan": f"/v1/me/instances/{i}/care-plan",
        "me.end_of_treatment": f"/v1/me/instances/{i}/end-of-treatment-summary",
        "me.end_of_treatment_phase": f"/v1/me/instances/{i}/end-of-treatment-summaries/1",
        "me.surveillance_plan": f"/v1/me/instances/{i}/active-surveillance-plan",
        "web.my_plan.plan": "/my",
        "web.my_plan.plan_of": f"/my/plans/{i}",
        "web.my_plan.document": f"/my/plans/{i}/documents/care-plan",
        "reports.cosd": "/v1/reports/cosd?to=2030-01-01T00:00:00Z&from=2025-01-01T00:00:00Z",
    }


def test_every_route_that_shows_patient_data_records_who_looked(
    app: Flask, client: Any, auth: Any, tokens: dict[str, str], world: dict[str, str]
) -> None:
    routes = {
        rule.endpoint: getattr(app.view_functions[rule.endpoint], "permission", None)
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
    }
    patient_routes = {
        endpoint
        for endpoint, permission in routes.items()
        if permission in PATIENT_DATA_READS or getattr(app.view_functions[endpoint], "shows_patients", False)
    }
    assert "web.auditors.trail" in patient_routes  # it lists patients and their trails
    urls = _urls(world)
    assert set(urls) == patient_routes, "a route that shows patient data has no case here"
    web = {role: _web(app, tokens[role]) for role in ("clinician", "auditor")}
    patient_token = make_token(app, "patient", patient_ref=NHS_NUMBER)
    patient = {"Authorization": f"Bearer {patient_token}"}
    web["patient"] = _web(app, patient_token)
    engine = app.extensions["carepath"]
    # what the COSD export reads (the worker's job)
    refresh_summary(engine.sessions, engine.clock.now(), engine.settings.referral_timeframes)
    for endpoint, url in urls.items():
        permission = routes[endpoint]
        role = (
            "auditor"
            if permission in ("events.read", "evaluations.read", "reports.export", "audit.verify")
            else "clinician"
        )
        if endpoint.startswith("fhir.") and permission == "documents.read":
            role = "system"
        if permission == "patient.read":
            role = "patient"
        _forget(app)
        if endpoint.startswith("web."):
            response = web[role].get(url)
        elif role == "patient":
            response = client.get(url, headers={**patient, "Accept": "application/json"})
        else:
            response = client.get(url, headers={**auth(role), "Accept": "application/json"})
        # No end of treatment summary is written yet, and no active surveillance on this pathway: their
        # routes answer 409 (or 404 in FHIR), still a look; so does a form for a message not awaited now.
        refused = ("end_of_treatment", "surveillance_plan", "composition", "recording")
        expected = response.status_code if any(r in endpoint for r in refused) else 200
        assert response.status_code == expected, (endpoint, response.status_code, response.get_data(as_text=True)[:300])
        records = _records(app)
        read = world["triaged_id"] if "decision" in endpoint else world["instance_id"]
        recorded = [r.instance_id for r in records]
        # A list or search shows the patient's instances (the care plan one, and the one with a decision table).
        assert read in recorded and set(recorded) <= {world["instance_id"], world["triaged_id"]}, endpoint
        assert len(recorded) == len(set(recorded)), endpoint  # one row per instance read
        record = next(r for r in records if r.instance_id == read)
        assert record.patient_ref == NHS_NUMBER and record.status == expected and record.action == permission
        assert record.actor.startswith(f"{role}:tok_") and record.route.startswith("GET /")
        assert record.request_id == response.headers["X-Request-ID"]


def test_the_trail_page_is_a_look_and_verifying_through_the_api_is_not(
    app: Flask, client: Any, auth: Any, tokens: dict[str, str]
) -> None:
    """The auditors' trail page lists patients: each one shown is recorded (action audit.verify). The API's
    audit.verify routes -- verifying named trails, the verification job and its progress -- show no patient
    and record nothing."""
    ids = sorted(start(client, auth, f"MRN-81{n:02d}").json["id"] for n in range(2))
    _forget(app)
    page = _web(app, tokens["auditor"]).get("/audit/trail")
    assert page.status_code == 200 and "MRN-8100" in page.get_data(as_text=True)
    records = _records(app)
    assert sorted(r.instance_id for r in records) == ids
    assert {(r.action, r.route, r.status) for r in records} == {("audit.verify", "GET /audit/trail", 200)}
    assert {r.patient_ref for r in records} == {"MRN-8100", "MRN-8101"}
    _forget(app)
    verified = client.get(f"/v1/audit/verify?instance_id={ids[0]}", headers=auth("auditor"))
    assert verified.status_code == 200 and verified.json["verified"] is True
    job = client.post("/v1/audit/verifications", headers=auth("auditor"))
    assert job.status_code == 202
    assert client.get(job.headers["Location"], headers=auth("auditor")).status_code == 200
    assert _records(app) == []


def test_a_list_records_one_row_per_instance_shown_and_nothing_clinical(app: Flask, client: Any, auth: Any) -> None:
    ids = [start(client, auth, f"MRN-80{n:02d}").json["id"] for n in range(3)]
    _forget(app)
    shown = client.get("/v1/instances?limit=2", headers=auth("clinician")).json["items"]
    records = _records(app)
    assert sorted(r.instance_id for r in records) == sorted(i["id"] for i in shown)
    assert {r.patient_ref for r in records} <= {"MRN-8000", "MRN-8001", "MRN-8002"} and len(records) == 2
    assert set(ids) > {r.instance_id for r in records}  # the third was not shown: not recorded
    # Completing a task is not a look (a write, recorded in the event trail); reading it afterwards is.
    _forget(app)
    instance = assessed(client, auth, {"worry_fear_anxiety": 7}, patient_ref="MRN-8100")
    assert _records(app) == []
    read = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician"))
    (record,) = _records(app)
    columns = {c.name: getattr(record, c.name) for c in AccessRecord.__table__.columns if c.name not in ("id", "at")}
    assert columns == {
        "actor": columns["actor"],
        "on_behalf_of": None,
        "action": "documents.read",
        "route": "GET /v1/instances/<uuid:instance_id>/care-plan",
        "status": 200,
        "instance_id": instance["id"],
        "patient_ref": "MRN-8100",
        "request_id": read.headers["X-Request-ID"],
        "organisation": "local",
        "break_glass": False,
        "break_glass_reason": None,
        "break_glass_note": None,
    }
    assert re.fullmatch(r"clinician:tok_[0-9a-f]{16}", columns["actor"])  # identifiers only: no score, no text


def test_refused_and_missing_reads_are_recorded_as_attempts(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-8200").json
    _forget(app)
    assert_problem(client.get(f"/v1/instances/{instance['id']}/events", headers=auth("system")), 403, "forbidden")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(f"/v1/instances/{missing}", headers=auth("clinician")), 404, "not-found")
    assert (
        client.get(f"/v1/instances/{instance['id']}", headers={"Authorization": "Bearer " + "x" * 40}).status_code
        == 401
    )  # names no one: not a look
    records = _records(app)
    assert [(r.instance_id, r.patient_ref, r.status, r.action) for r in records] == [
        (instance["id"], "MRN-8200", 403, "events.read"),
        (missing, None, 404, "instances.read"),
    ]


def test_on_behalf_of_is_recorded_beside_the_token(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-8300").json
    _forget(app)
    client.get(f"/v1/instances/{instance['id']}", headers=auth("system", **{"X-On-Behalf-Of": "staff:nurse-17"}))
    client.get(f"/v1/instances/{instance['id']}", headers=auth("system", **{"X-On-Behalf-Of": "<script>"}))
    assert [r.on_behalf_of for r in _records(app)] == ["staff:nurse-17", None]


def test_auditors_ask_who_looked_at_a_patient(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth, "MRN-8400").json
    other = start(client, auth, "MRN-8401").json
    for _ in range(3):
        client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician"))
    client.get(f"/v1/instances/{other['id']}", headers=auth("clinician"))
    first = client.get("/v1/access-log?patient_ref=MRN-8400&limit=2", headers=auth("auditor"))
    assert first.status_code == 200
    page = first.json
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/v1/access-log?patient_ref=MRN-8400&cursor={page['next_cursor']}", headers=auth("auditor")).json
    seen = page["items"] + rest["items"]
    assert len(seen) == 3 and {item["instance_id"] for item in seen} == {instance["id"]}
    assert [item["at"] for item in seen] == sorted((item["at"] for item in seen), reverse=True)
    assert all(item["route"] == "GET /v1/instances/<uuid:instance_id>" for item in seen)
    for role in ("clinician", "system", "author"):
        assert_problem(client.get("/v1/access-log", headers=auth(role)), 403, "forbidden")
    assert_problem(client.get("/v1/access-log?cursor=nope", headers=auth("auditor")), 400, "request-invalid")


def test_a_lost_record_does_not_fail_the_read_and_names_no_patient(
    app: Flask, client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    instance = start(client, auth, "MRN-8500").json

    def fail(*_args: Any) -> int:
        raise OperationalError("INSERT INTO access_log ... MRN-8500", {}, Exception("disk full"))

    monkeypatch.setattr(api.access_log, "record_reads", fail)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician"))
    assert response.status_code == 200
    assert "access record lost: OperationalError" in caplog.text and "MRN-8500" not in caplog.text


def test_care_plan_ids_helper_reads_are_recorded(app: Flask, client: Any, auth: Any) -> None:
    """The evaluation routes name no instance in their URL: the evaluation's instance is recorded."""
    ids = care_plan_ids(client, auth)
    _forget(app)
    assert client.get(f"/v1/evaluations/{ids['evaluation_id']}", headers=auth("auditor")).status_code == 200
    assert len(_records(app)) == 1 and _records(app)[0].patient_ref == "MRN-3003"


def test_the_command_line_prints_who_looked_and_purges_past_retention(
    app: Flask, client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = start(client, auth, "MRN-8600").json
    client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician"))
    client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician"))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(Path(__file__).resolve().parent.parent / "pathways"))
    printed = CliRunner().invoke(main, ["audit", "reads", "--patient", "MRN-8600"])
    assert printed.exit_code == 0, printed.output
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [line["route"] for line in lines] == [
        "GET /v1/instances/<uuid:instance_id>/care-plan",
        "GET /v1/instances/<uuid:instance_id>",
    ]
    assert "2 access record(s)" in printed.stderr
    assert CliRunner().invoke(main, ["audit", "purge-reads", "--older-than", "eight years"]).exit_code == 2
    kept = CliRunner().invoke(main, ["audit", "purge-reads", "--older-than", "P8Y", "--yes"])
    assert kept.exit_code == 0 and "0 access record(s) erased" in kept.output
    purged = CliRunner().invoke(main, ["audit", "purge-reads", "--older-than", "P0D", "--yes"])
    assert purged.exit_code == 0 and "access record(s) erased" in purged.output
    assert not any(r.patient_ref == "MRN-8600" for r in _records(app))
