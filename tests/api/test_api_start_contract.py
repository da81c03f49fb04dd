"""The start contract over HTTP (issue 17, point 1): the schema in GET /v1/pathways/{id} and the
OpenAPI document, 422 with every field and nothing left behind, 409 with the running instance's
Location, and a clinician's PATCH of an instance's data followed by a retry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import assert_problem, deploy

TESTS = Path(__file__).parent.parent
CONTRACT = TESTS / "diagrams" / "contract"
FILES = {
    name: (CONTRACT / name).read_bytes() for name in ("contract.bpmn", "contract.start.schema.json", "review.json")
}
GOOD = {"diagnosis_date": "2026-01-12", "age": 52}


def _deploy(client: Any, auth: Any) -> None:
    deploy(client, auth("author"), FILES)


def _start(client: Any, auth: Any, patient: str, data: Any, **headers: str) -> Any:
    return client.post(
        "/v1/instances",
        json={"pathway_id": "test_contract", "patient_ref": patient, "data": data},
        headers=auth("system", **headers),
    )


def test_the_schema_is_shown_by_the_pathway_and_the_openapi_document(client: Any, auth: Any) -> None:
    _deploy(client, auth)
    pathway = client.get("/v1/pathways/test_contract", headers=auth("auditor"))
    assert pathway.status_code == 200
    assert pathway.json["start_schema"] == json.loads(FILES["contract.start.schema.json"])
    assert client.get("/v1/pathways/test_assessment", headers=auth("clinician")).json["start_schema"] is None
    assert_problem(client.get("/v1/pathways/no_such_pathway", headers=auth("clinician")), 404, "not-found")
    document = client.get("/v1/openapi.json").json
    assert document["components"]["schemas"]["StartData.test_contract"]["required"] == ["diagnosis_date", "age"]
    [condition] = document["components"]["schemas"]["StartRequest"]["allOf"]
    assert condition["if"]["properties"]["pathway_id"] == {"const": "test_contract"}
    assert condition["then"]["properties"]["data"] == {"$ref": "#/components/schemas/StartData.test_contract"}


def test_a_start_failing_the_schema_is_422_and_leaves_nothing(client: Any, auth: Any) -> None:
    _deploy(client, auth)
    refused = _start(client, auth, "MRN-1", {"age": "fifty"}, **{"Idempotency-Key": "start-mrn-1"})
    body = assert_problem(refused, 422, "start-data-invalid")
    assert sorted(e["field"] for e in body["errors"]) == ["/data/age", "/data/diagnosis_date"]
    assert "fifty" not in refused.get_data(as_text=True)
    assert client.get("/v1/instances?patient_ref=MRN-1", headers=auth("auditor")).json["items"] == []
    # The key is free again: the corrected request (another body) runs, not "in use" or "reused".
    started = _start(client, auth, "MRN-1", GOOD, **{"Idempotency-Key": "start-mrn-1"})
    assert started.status_code == 201


def test_a_start_naming_a_health_system_of_no_section_is_422_on_the_field(client: Any, auth: Any) -> None:
    _deploy(client, auth)
    refused = _start(client, auth, "MRN-1", {**GOOD, "health_system": "wales"})
    body = assert_problem(refused, 422, "start-data-invalid")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("/data/health_system", "enum")]
    assert "england" in body["errors"][0]["message"] and "sweden" in body["errors"][0]["message"]
    assert "wales" not in refused.get_data(as_text=True)
    assert client.get("/v1/instances?patient_ref=MRN-1", headers=auth("auditor")).json["items"] == []
    assert _start(client, auth, "MRN-1", {**GOOD, "health_system": "sweden"}).status_code == 201


def test_a_second_start_is_409_with_the_running_instance(client: Any, auth: Any) -> None:
    _deploy(client, auth)
    first = _start(client, auth, "MRN-2", GOOD)
    second = _start(client, auth, "MRN-2", GOOD)
    body = assert_problem(second, 409, "instance-exists")
    assert second.headers["Location"] == first.headers["Location"]
    assert body["errors"][0]["field"] == "/patient_ref"
    assert len(client.get("/v1/instances?patient_ref=MRN-2", headers=auth("auditor")).json["items"]) == 1


def test_a_clinician_corrects_the_data_and_the_retry_runs_on(client: Any, auth: Any) -> None:
    _deploy(client, auth)
    started = _start(client, auth, "MRN-3", {"diagnosis_date": "soon", "age": 52}).json
    assert started["status"] == "error"
    url = f"/v1/instances/{started['id']}/data"
    correction = {"data": {"diagnosis_date": "2026-01-12"}, "reason": "entered_in_error"}
    for role in ("system", "author", "auditor"):
        assert_problem(client.patch(url, json=correction, headers=auth(role)), 403, "forbidden")
    body = assert_problem(
        client.patch(url, json={"data": {"age": "x"}, "reason": "fix"}, headers=auth("clinician")),
        422,
        "start-data-invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["/data/age"]
    assert_problem(
        client.patch(url, json={"data": {}, "reason": "fix"}, headers=auth("clinician")), 400, "request-invalid"
    )
    # The reason is recorded in the trail: free text (which could hold the values) is refused, not echoed.
    free_text = "Jane Doe's date of birth is 1961-04-23"
    for reason in (free_text, "Entered in error", ""):
        refused = client.patch(url, json={**correction, "reason": reason}, headers=auth("clinician"))
        body = assert_problem(refused, 400, "request-invalid")
        assert [e["field"] for e in body["errors"]] == ["/reason"]
        assert "Jane" not in refused.get_data(as_text=True)
    corrected = client.patch(url, json=correction, headers=auth("clinician", **{"If-Match": '"1"'}))
    assert corrected.status_code == 200 and corrected.json["status"] == "error"
    retried = client.post(f"/v1/instances/{started['id']}/retry", headers=auth("clinician"))
    assert retried.status_code == 200 and retried.json["status"] == "running"
    assert [t["element"] for t in retried.json["ready_tasks"]] == ["review"]
    events = client.get(f"/v1/instances/{started['id']}/events", headers=auth("auditor")).json["items"]
    [event] = [e for e in events if e["type"] == "data_corrected"]
    assert event["payload"]["fields"] == ["diagnosis_date"] and event["payload"]["reason"] == "entered_in_error"
    assert "2026-01-12" not in json.dumps(events)


def test_a_correction_no_timer_can_be_worked_out_from_is_422_on_the_field(client: Any, auth: Any) -> None:
    """A diagram without a start schema takes any value; a waiting timer worked out from the corrected field
    that cannot be worked out from the new value refuses the correction (422, never 500), echoing nothing."""
    diagram = (TESTS / "diagrams" / "timers" / "three_timers.bpmn").read_bytes()
    deploy(client, auth("author"), {"three_timers.bpmn": diagram})
    started = client.post(
        "/v1/instances",
        json={"pathway_id": "test_three_timers", "patient_ref": "MRN-8", "data": {"diagnosis_date": "2026-01-12"}},
        headers=auth("system"),
    ).json
    url = f"/v1/instances/{started['id']}/data"
    refused = client.patch(
        url, json={"data": {"diagnosis_date": "the 12th"}, "reason": "transcription_error"}, headers=auth("clinician")
    )
    body = assert_problem(refused, 422, "start-data-invalid")
    assert [(e["field"], e.get("element")) for e in body["errors"]] == [("/data/diagnosis_date", "survey_due")]
    assert "the 12th" not in refused.get_data(as_text=True)
    corrected = client.patch(
        url, json={"data": {"diagnosis_date": "2025-01-12"}, "reason": "transcription_error"}, headers=auth("clinician")
    )
    assert corrected.status_code == 200 and corrected.json["version"] == started["version"] + 1
    events = client.get(f"/v1/instances/{started['id']}/events", headers=auth("auditor")).json["items"]
    [event] = [e for e in events if e["type"] == "data_corrected"]
    assert event["payload"]["timers_moved"] == ["survey_due"]
