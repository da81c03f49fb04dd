"""The pathway check over HTTP (engine.pathway_checks), on the bundled breast pathway, every answer checked
against the OpenAPI document by the contract client: an EHR that starts the breast pathway for a diagnosis
naming lung cancer gets the instance and a warning; the instance carries it until a clinician confirms the
pathway (or the diagnosis is corrected); a start may confirm it at once. The trail records the check, never
the diagnosis; no answer echoes the diagnosis as written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_contract import bundled_running_app, make_token
from flask import Flask
from flask.testing import FlaskClient
from helpers import assert_problem
from sqlalchemy import select

from engine import ManualClock
from engine.db.models import WebhookDelivery
from engine.db.session import unit_of_work
from engine.documents.build import warning_sign_choices
from engine.webhooks import add_subscription

LUNG = "Non-small cell lung cancer"
BREAST = {"diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"}


@pytest.fixture
def app(tmp_path: Path, database_templates: Any) -> Iterator[Flask]:
    with bundled_running_app(tmp_path, database_templates, ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))) as app:
        yield app


def _as(app: Flask, role: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(app, role)}", **extra}


def _start(client: FlaskClient, headers: dict[str, str], patient: str, diagnosis: str, **more: Any) -> Any:
    body = {"pathway_id": "breast_cancer", "patient_ref": patient, "data": {**BREAST, "diagnosis": diagnosis}, **more}
    return client.post("/v1/instances", json=body, headers=headers)


def _trail(app: Flask, instance_id: str) -> list[dict[str, Any]]:
    return app.extensions["carepath.queries"].events(instance_id)


def test_a_start_for_a_diagnosis_of_another_site_warns_until_a_clinician_confirms(app: Flask) -> None:
    client, ehr = app.test_client(), _as(app, "system", **{"Idempotency-Key": "start-lung-1"})
    started = _start(client, ehr, "SYN-CHK-0001", LUNG)
    assert started.status_code == 201
    [warning] = started.json["warnings"]
    assert warning["code"] == "diagnosis-names-other-site" and warning["field"] == "/data/diagnosis"
    assert (warning["site"], warning["pathway_site"]) == ("lung", "breast")
    assert "lung cancer" in warning["detail"] and "Non-small" not in started.get_data(as_text=True)
    instance_id = started.json["id"]
    assert _start(client, ehr, "SYN-CHK-0001", LUNG).json["warnings"] == [warning]  # the replay, the same
    clinician = _as(app, "clinician")
    read = client.get(f"/v1/instances/{instance_id}", headers=clinician)
    assert read.json["warnings"] == [warning]
    url = f"/v1/instances/{instance_id}/pathway-check"
    # Confirming another site than the diagnosis names, or a version since moved on, confirms nothing.
    other = client.post(url, json={"site": "prostate"}, headers=clinician)
    assert [e["field"] for e in assert_problem(other, 400, "input-invalid")["errors"]] == ["/site"]
    assert "lung" not in other.get_data(as_text=True)  # an error names no site of the patient's
    stale = client.post(url, json={"site": "lung"}, headers={**clinician, "If-Match": '"0"'})
    assert stale.status_code == 412
    assert client.post(url, json={"site": "lung"}, headers=_as(app, "auditor")).status_code == 403
    assert client.post(url, json={"site": "lung", "note": "x"}, headers=clinician).status_code == 400
    assert [e["type"] for e in _trail(app, instance_id)].count("pathway_checked") == 0
    confirmed = client.post(url, json={"site": "lung"}, headers={**clinician, "If-Match": read.headers["ETag"]})
    assert confirmed.status_code == 200 and confirmed.json["warnings"] == []
    assert client.get(f"/v1/instances/{instance_id}", headers=clinician).json["warnings"] == []
    trail = _trail(app, instance_id)
    assert [e["payload"] for e in trail if e["type"] == "pathway_checked"] == [{}]
    assert "lung" not in json.dumps(trail).lower()  # the trail holds no diagnosis, nor its site
    # A correction naming yet another site asks again; one naming the pathway's own site asks nothing.
    corrected = client.patch(
        f"/v1/instances/{instance_id}/data",
        json={"data": {"diagnosis": "C61"}, "reason": "updated_information"},
        headers=clinician,
    )
    assert corrected.status_code == 200 and [w["site"] for w in corrected.json["warnings"]] == ["prostate"]
    [again] = client.get(f"/v1/instances/{instance_id}", headers=clinician).json["warnings"]
    assert again["site"] == "prostate"
    client.patch(
        f"/v1/instances/{instance_id}/data",
        json={"data": {"diagnosis": "Breast cancer"}, "reason": "transcription_error"},
        headers=clinician,
    )
    assert client.get(f"/v1/instances/{instance_id}", headers=clinician).json["warnings"] == []
    nothing = client.post(url, json={"site": "prostate"}, headers=clinician)
    assert "nothing to confirm" in assert_problem(nothing, 400, "input-invalid")["errors"][0]["message"]


def test_a_start_may_confirm_the_site_and_only_the_site_the_diagnosis_names(app: Flask) -> None:
    client, ehr = app.test_client(), _as(app, "system")
    wrong = _start(client, ehr, "SYN-CHK-0002", LUNG, confirm_other_site="prostate")
    assert [e["field"] for e in assert_problem(wrong, 400, "input-invalid")["errors"]] == ["/confirm_other_site"]
    own = _start(client, ehr, "SYN-CHK-0002", "Breast cancer", confirm_other_site="lung")
    assert "nothing to confirm" in assert_problem(own, 400, "input-invalid")["errors"][0]["message"]
    listed = client.get("/v1/instances?patient_ref=SYN-CHK-0002", headers=_as(app, "auditor"))
    assert listed.json["items"] == []  # refused whole: nothing started
    started = _start(client, ehr, "SYN-CHK-0002", LUNG, confirm_other_site="lung")
    assert started.status_code == 201 and started.json["warnings"] == []
    [first, *_] = _trail(app, started.json["id"])
    assert first["type"] == "started" and first["payload"]["pathway_checked"] is True
    clinician = _as(app, "clinician")
    assert client.get(f"/v1/instances/{started.json['id']}", headers=clinician).json["warnings"] == []


@pytest.mark.parametrize(
    "diagnosis", ["Invasive ductal carcinoma", "Lung metastases from breast cancer", "C509", "breast", "DCIS"]
)
def test_a_diagnosis_naming_the_pathways_own_site_none_or_two_warns_of_nothing(app: Flask, diagnosis: str) -> None:
    started = _start(app.test_client(), _as(app, "system"), "SYN-CHK-0003", diagnosis)
    assert started.status_code == 201 and started.json["warnings"] == []
    assert "pathway_checked" not in _trail(app, started.json["id"])[0]["payload"]


def test_a_receiver_learns_that_a_pathway_needs_checking_without_the_diagnosis(app: Flask) -> None:
    """``pathway_check.needed`` at a start that leaves a check pending and at a correction that asks again;
    not at a start that confirmed it, nor at a correction naming the pathway's own site. Ids and types only."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        add_subscription(session, "https://ehr.example.org/hooks", ["pathway_check.needed"], engine.clock)
    client, ehr, clinician = app.test_client(), _as(app, "system"), _as(app, "clinician")
    pending = _start(client, ehr, "SYN-CHK-0004", LUNG).json["id"]
    _start(client, ehr, "SYN-CHK-0005", LUNG, confirm_other_site="lung")
    _start(client, ehr, "SYN-CHK-0006", "Breast cancer")
    for diagnosis in ("Breast cancer", "C61"):  # the pathway's own site: nothing; prostate: asked again
        client.patch(
            f"/v1/instances/{pending}/data",
            json={"data": {"diagnosis": diagnosis}, "reason": "updated_information"},
            headers=clinician,
        )
    with engine.sessions() as session:
        bodies = [
            json.loads(body) for body in session.scalars(select(WebhookDelivery.body).order_by(WebhookDelivery.id))
        ]
    assert [(b["type"], b["data"]["instance_id"]) for b in bodies] == [("pathway_check.needed", pending)] * 2
    trail = {e["seq"]: e["type"] for e in _trail(app, pending)}
    assert [trail[b["data"]["trail_seq"]] for b in bodies] == ["started", "data_corrected"]
    assert not any(word in json.dumps(bodies).lower() for word in ("lung", "prostate", "c61"))


def test_the_instances_waiting_for_a_check_are_listed_and_leave_the_list_when_checked(app: Flask) -> None:
    client, ehr, clinician = app.test_client(), _as(app, "system"), _as(app, "clinician")
    pending = _start(client, ehr, "SYN-CHK-0007", LUNG).json["id"]
    _start(client, ehr, "SYN-CHK-0008", "Breast cancer")
    _start(client, ehr, "SYN-CHK-0009", LUNG, confirm_other_site="lung")
    listed = client.get("/v1/instances?pathway_check=pending", headers=clinician)
    assert [item["id"] for item in listed.json["items"]] == [pending]
    tasks = client.get("/v1/tasks?pathway_check=pending", headers=clinician).json["items"]
    assert tasks and {task["instance_id"] for task in tasks} == {pending}
    assert_problem(client.get("/v1/instances?pathway_check=yes", headers=clinician), 400, "request-invalid")
    client.post(f"/v1/instances/{pending}/pathway-check", json={"site": "lung"}, headers=clinician)
    assert client.get("/v1/instances?pathway_check=pending", headers=clinician).json["items"] == []
    # Ended as started on the wrong pathway: it waits for no check any more.
    wrong = _start(client, ehr, "SYN-CHK-0010", "Small cell lung carcinoma").json["id"]
    assert [i["id"] for i in client.get("/v1/instances?pathway_check=pending", headers=clinician).json["items"]] == [
        wrong
    ]
    ended = client.post(f"/v1/instances/{wrong}/cancel", json={"reason": "wrong_pathway"}, headers=clinician)
    assert ended.status_code == 200 and ended.json.get("warnings", []) == []
    assert client.get("/v1/instances?pathway_check=pending", headers=clinician).json["items"] == []


def test_a_patient_whose_diagnosis_names_another_site_is_given_the_warning_signs_of_both(app: Flask) -> None:
    """Whichever is the patient's cancer, its signs are never left out: the breast pathway for a lung cancer
    diagnosis offers lung cancer's warning signs (coughing blood) as well as breast cancer's, confirmed or not,
    in the choices the patient and the clinician report from (and in the documents, which read the same
    diagnoses: engine.documents.build._warning_signs_keys)."""
    client, ehr, engine = app.test_client(), _as(app, "system"), app.extensions["carepath"]
    for patient, more in (("SYN-CHK-0011", {}), ("SYN-CHK-0012", {"confirm_other_site": "lung"})):
        instance = _start(client, ehr, patient, LUNG, **more).json["id"]
        codes = [choice["code"] for choice in warning_sign_choices(engine, instance)]
        assert {"coughing_blood", "breast_new_lump"} <= set(codes) and len(codes) == len(set(codes))
    own = _start(client, ehr, "SYN-CHK-0013", "Invasive ductal carcinoma").json["id"]
    codes = {choice["code"] for choice in warning_sign_choices(engine, own)}
    assert "breast_new_lump" in codes and "coughing_blood" not in codes
