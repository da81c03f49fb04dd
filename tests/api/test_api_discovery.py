"""What a new user meets first (issue 17, point 6): the index at /v1/, the public OpenAPI document,
the care plan item moves written down, and one problem type for every bad query parameter."""

from __future__ import annotations

from typing import Any

import pytest
from api_contract import Contract
from helpers import assert_problem, care_plan_ids

from api.openapi import DOCUMENT, FHIR_BASE
from engine.access import PERMISSIONS
from engine.careplan.service import STATUSES, next_statuses


def test_the_openapi_document_needs_no_token(client: Any) -> None:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.json["openapi"] == "3.1.0"
    assert "security" in response.json["paths"]["/v1/openapi.json"]["get"]
    assert response.json["paths"]["/v1/openapi.json"]["get"]["security"] == []


def test_the_index_links_every_collection_and_the_documents(client: Any, auth: Any) -> None:
    body = client.get("/v1/").json
    links = body["links"]
    collections = {t for t in DOCUMENT["paths"] if "{" not in t and t != "/v1/"}
    assert {link["href"] for link in links.values()} == collections | {f"{FHIR_BASE}/metadata"}
    assert links["instances"]["methods"] == ["POST", "GET"]
    assert links["openapi.json"]["href"] == "/v1/openapi.json"
    # Every link answers GET (the public ones without a token, the others with a role allowed to read them),
    # unless its GET needs a query parameter (verifying named trails).
    for name, link in links.items():
        if "GET" not in link["methods"] or link["href"].startswith(FHIR_BASE):
            continue
        operation = DOCUMENT["paths"][link["href"]]["get"]
        if any(p["in"] == "query" and p.get("required") for p in operation.get("parameters", [])):
            assert client.get(link["href"], headers=auth("auditor")).status_code == 400, name
            continue
        permission = operation.get("x-permission")
        headers = auth(sorted(PERMISSIONS[permission])[0]) if permission else {}
        response = client.get(link["href"], headers=headers)
        assert response.status_code == 200, (name, response.status_code)


def test_the_care_plan_item_moves_are_in_the_document() -> None:
    update = DOCUMENT["components"]["schemas"]["CarePlanItemUpdate"]
    assert update["x-transitions"] == {status: list(next_statuses(status)) for status in STATUSES}
    assert update["x-transitions"]["proposed"] == ["agreed", "declined"]
    assert update["x-transitions"]["completed"] == []
    assert "proposed -> agreed | declined" in update["description"]
    assert set(update["properties"]["status"]["enum"]) == {
        "agreed",
        "declined",
        "referred",
        "accepted",
        "first_contact",
        "completed",
        "service_declined",
        "did_not_attend",
        "withdrawn",
    }
    assert update["x-transitions-other-items"]["agreed"] == ["declined", "completed"]


def test_a_move_the_machine_does_not_allow_is_a_conflict(client: Any, auth: Any) -> None:
    ids = care_plan_ids(client, auth)
    instance = client.get(f"/v1/evaluations/{ids['evaluation_id']}", headers=auth("auditor")).json["instance_id"]
    url = f"/v1/instances/{instance}/care-plan/items/{ids['item_id']}"
    assert_problem(
        client.patch(url, json={"status": "referred"}, headers=auth("clinician")), 409, "instance-state-conflict"
    )  # proposed -> referred is not a move
    assert client.patch(url, json={"status": "agreed"}, headers=auth("clinician")).status_code == 200


@pytest.mark.parametrize(
    "url,field",
    [
        ("/v1/instances?status=sleeping", "status"),
        ("/v1/instances?cursor=zzz", "cursor"),
        ("/v1/instances?limit=1000", "limit"),
        ("/v1/tasks?cursor=zzz", "cursor"),
        ("/v1/tasks?status=completed", "status"),
        ("/v1/tasks?element=1bad", "element"),
        ("/v1/tasks?pathway=x", "pathway"),
        ("/v1/audit/verify?instance_id=nope", "instance_id"),
        ("/v1/pathways/test_assessment/versions/latest/diagram?file=../x%20y", "file"),
    ],
)
def test_every_bad_query_parameter_is_the_same_problem(client: Any, auth: Any, url: str, field: str) -> None:
    role = "auditor" if "audit" in url or "pathways" in url else "system"
    body = assert_problem(client.get(url, headers=auth(role)), 400, "request-invalid")
    assert [e["field"] for e in body["errors"]] == [field]


def test_fhir_responses_are_checked_against_fhir_not_the_openapi_document(client: Any) -> None:
    """The FHIR API is excluded from the OpenAPI document explicitly: its answers meet the R4 models."""
    assert not any(path.startswith(FHIR_BASE) for path in DOCUMENT["paths"])
    response = client.get(f"{FHIR_BASE}/metadata")  # the contract client checks it as FHIR
    assert response.status_code == 200 and response.json["resourceType"] == "CapabilityStatement"
    headers = {"X-Request-ID": "x" * 8, "Content-Type": "application/problem+json"}
    assert Contract(DOCUMENT).violations("GET", f"{FHIR_BASE}/metadata", 200, headers, b"{}")
    headers["Content-Type"] = "application/fhir+json"
    with pytest.raises(ValueError):  # not a FHIR resource at all
        Contract(DOCUMENT).violations(
            "GET",
            f"{FHIR_BASE}/metadata",
            200,
            headers,
            b'{"resourceType": "CapabilityStatement", "status": "sometimes"}',
        )
