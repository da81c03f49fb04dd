"""Authentication and the role x endpoint matrix, walked from the OpenAPI document itself."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from helpers import PATHWAY, assert_problem, care_plan_ids, start
from sqlalchemy import select

from api.openapi import DOCUMENT, FHIR_BASE
from api.parsing import route_template
from engine import ManualClock
from engine.access import PERMISSIONS, ROLES, ApiToken, create_token, revoke_token
from engine.db.session import unit_of_work

OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item]
BODIES = {
    "/v1/instances": {"pathway_id": PATHWAY, "patient_ref": "MRN-2002"},
    "/v1/messages": {"name": "warning_sign_reported", "patient_ref": "MRN-1001"},
    "/v1/instances/{instance_id}/care-plan/items/{item_id}": {"status": "agreed"},
    "/v1/pathways/{pathway_id}/migrate": {"dry_run": True},
    "/v1/referral-escalations/{escalation_id}/complete": {"outcome": "chased_service"},
}
UPLOAD = "/v1/pathways"


def _request(client: Any, path: str, method: str, headers: dict[str, str], ids: dict[str, str]) -> Any:
    url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
    if method == "get":
        return client.get(url, headers=headers)
    if path in (UPLOAD, UPLOAD + "/validate"):
        with open("tests/pathways/assessment.bpmn", "rb") as diagram:
            return client.post(
                url, data={"files": [(diagram, "assessment.bpmn")]}, headers=headers, content_type="multipart/form-data"
            )
    body = BODIES.get(path, {"data": {"anxiety": 1, "fatigue": 1}} if path.endswith("/complete") else {})
    return client.open(url, method=method.upper(), json=body, headers=headers)


@pytest.fixture
def ids(client: Any, auth: Any) -> dict[str, str]:
    instance = start(client, auth).json
    return {
        "pathway_id": PATHWAY,
        "version": "latest",
        "instance_id": instance["id"],
        "subscription_id": "whsub_0000000000000000",
        "job_id": "00000000-0000-4000-8000-000000000000",
        "escalation_id": "00000000-0000-4000-8000-000000000000",
        "number": "1",
        "request_id": "00000000-0000-4000-8000-000000000000",
        "ruleset": "supportive_care",
        "task_id": instance["ready_tasks"][0]["id"],
        **care_plan_ids(client, auth),
    }


def test_every_route_is_documented_with_its_permission(app: Flask) -> None:
    """Every /v1 route is in the OpenAPI document with its permission; the FHIR API's routes, and only
    they, are left out of it (its CapabilityStatement describes them: tests/fhir)."""
    routes = {}
    for rule in app.url_map.iter_rules():
        # The web pages (api/web) are not API operations; tests/web holds their permissions to the same table.
        if rule.endpoint == "static" or rule.endpoint.startswith("web.") or rule.rule.startswith(FHIR_BASE + "/"):
            continue
        assert rule.rule.startswith("/v1/"), rule.rule
        template = route_template(rule.rule)
        view = app.view_functions[rule.endpoint]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes[(template, method.lower())] = getattr(view, "permission", None)
    documented = {(p, m): DOCUMENT["paths"][p][m].get("x-permission") for p, m in OPERATIONS}
    assert routes == documented
    assert set(documented.values()) - {None} == set(PERMISSIONS)


@pytest.mark.parametrize("path,method", OPERATIONS)
def test_role_matrix(client: Any, tokens: dict[str, str], ids: dict[str, str], path: str, method: str) -> None:
    permission = DOCUMENT["paths"][path][method].get("x-permission")
    public = permission is None
    for name, headers in [
        ("no token", {}),
        ("bad token", {"Authorization": "Bearer " + "x" * 43}),
        ("not bearer", {"Authorization": "Basic dXNlcjpwYXNz"}),
    ]:
        response = _request(client, path, method, headers, ids)
        if public:
            assert response.status_code < 400, (name, response.json)
        else:
            body = assert_problem(response, 401, "unauthenticated")
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
            assert "errors" not in body
    for role in ROLES:
        response = _request(client, path, method, {"Authorization": f"Bearer {tokens[role]}"}, ids)
        if public or role in PERMISSIONS[permission]:
            assert response.status_code not in (401, 403), (role, response.json)
            assert response.status_code < 500
        else:
            assert_problem(response, 403, "forbidden")


def test_revoked_token_is_refused(app: Flask, client: Any, tokens: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {tokens['auditor']}"}
    assert client.get("/v1/pathways", headers=headers).status_code == 200
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        token = session.scalars(select(ApiToken).where(ApiToken.role == "auditor")).one()
        revoke_token(session, token.id, engine.clock)
    assert_problem(client.get("/v1/pathways", headers=headers), 401, "unauthenticated")


def test_a_token_is_refused_from_its_expiry_on(app: Flask, client: Any, clock: ManualClock) -> None:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, "auditor", "expiring", engine.clock, timedelta(hours=1))
        _, lasting = create_token(session, "auditor", "until revoked", engine.clock)
    headers = {"Authorization": f"Bearer {secret}"}
    clock.advance(timedelta(minutes=59))
    assert client.get("/v1/pathways", headers=headers).status_code == 200
    clock.advance(timedelta(minutes=1))
    body = assert_problem(client.get("/v1/pathways", headers=headers), 401, "unauthenticated")
    assert secret not in str(body)
    assert client.get("/v1/pathways", headers={"Authorization": f"Bearer {lasting}"}).status_code == 200


def test_only_the_hash_of_a_secret_is_stored(app: Flask, tokens: dict[str, str]) -> None:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        stored = session.scalars(select(ApiToken)).all()
    assert len(stored) == len(ROLES)
    for token in stored:
        assert token.secret_sha256 not in tokens.values()
        assert all(secret not in (token.id, token.label, token.secret_sha256) for secret in tokens.values())
