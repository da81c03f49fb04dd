"""Problem details for every error, request ids, body limits, and no patient data in errors or logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.logging import default_handler
from helpers import PATHWAY, assert_problem, start

from api.errors import PatientDataFilter

SECRET_REF = "MRN-SECRET-77"


def test_malformed_json_is_400(client: Any, auth: Any) -> None:
    for raw in (b'{"pathway_id": ', b"\xff\xfe", b'{"a": NaN}', b"[" * 100_000):
        response = client.post("/v1/instances", data=raw, content_type="application/json", headers=auth("system"))
        assert_problem(response, 400, "malformed-json")


def test_wrong_content_type_is_415(client: Any, auth: Any) -> None:
    response = client.post(
        "/v1/instances", data="pathway_id=x", content_type="application/x-www-form-urlencoded", headers=auth("system")
    )
    assert_problem(response, 415, "unsupported-media-type")
    response = client.post("/v1/pathways", json={"files": []}, headers=auth("author"))
    assert_problem(response, 415, "unsupported-media-type")


def test_oversized_body_is_413(client: Any, auth: Any) -> None:
    big = b'{"pathway_id": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = client.post("/v1/instances", data=big, content_type="application/json", headers=auth("system"))
    assert_problem(response, 413, "body-too-large")


def test_unknown_route_and_method(client: Any, auth: Any) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=auth("system")), 404, "not-found")
    response = client.delete("/v1/instances", headers=auth("system"))
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


def test_request_id_is_echoed_when_well_formed_else_generated(client: Any, auth: Any) -> None:
    assert (
        client.get("/v1/health", headers={"X-Request-ID": "abc-123-def-456"}).headers["X-Request-ID"]
        == "abc-123-def-456"
    )
    generated = client.get("/v1/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated
    response = client.get("/v1/pathways", headers={"X-Request-ID": "trace-0001-aaaa"})
    assert assert_problem(response, 401, "unauthenticated")["request_id"] == "trace-0001-aaaa"


def test_errors_never_echo_patient_data(client: Any, auth: Any) -> None:
    responses = [
        client.post("/v1/instances", json={"pathway_id": "missing", "patient_ref": SECRET_REF}, headers=auth("system")),
        client.post(
            "/v1/messages", json={"name": "warning_sign_reported", "patient_ref": SECRET_REF}, headers=auth("system")
        ),
        client.get(f"/v1/instances?patient_ref={SECRET_REF}&cursor=bad", headers=auth("system")),
        client.post(
            "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": SECRET_REF + " Smith"}, headers=auth("system")
        ),
    ]
    for response in responses:
        assert response.status_code >= 400
        assert SECRET_REF not in response.get_data(as_text=True)


def test_unexpected_errors_are_500_without_detail_and_logged_without_values(
    app: Flask, client: Any, auth: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode() -> None:
        raise RuntimeError(f"database said: parameters ({SECRET_REF!r}, 9)")

    monkeypatch.setattr(app.extensions["carepath"].catalog, "pathways", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/v1/pathways", headers=auth("author"))
    body = assert_problem(response, 500, "internal-error")
    assert set(body) == {"type", "title", "status", "request_id"}
    logged = "\n".join(caplog.text.splitlines())
    assert "RuntimeError" in logged and body["request_id"] in logged and "explode" in logged
    assert SECRET_REF not in logged


def test_log_filter_redacts_query_strings_and_exception_messages() -> None:
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s - - "%s" %s -',
        ("127.0.0.1", f"GET /v1/instances?patient_ref={SECRET_REF}&limit=5 HTTP/1.1", "200"),
        None,
    )
    assert PatientDataFilter().filter(record)
    assert SECRET_REF not in record.getMessage() and "/v1/instances?[query redacted]" in record.getMessage()
    try:
        raise ValueError(SECRET_REF)
    except ValueError as exc:
        failed = logging.LogRecord(
            "api", logging.ERROR, __file__, 1, "failed", None, (type(exc), exc, exc.__traceback__)
        )
    PatientDataFilter().filter(failed)
    text = logging.Formatter().format(failed)
    assert "ValueError" in text and SECRET_REF not in text


def test_records_of_every_logger_reach_a_filtered_handler(app: Any) -> None:
    """A logger's filter does not apply to its children's records: those of api.web.session,
    carepath.worker or engine.db.replica reach Flask's default handler (through "api") or the root
    logger's handlers (Python's last resort when none is configured), and those carry the filter."""
    handlers = [default_handler, *logging.getLogger().handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        assert any(isinstance(f, PatientDataFilter) for f in handler.filters), handler
    try:
        raise ValueError(SECRET_REF)
    except ValueError as exc:
        failed = logging.LogRecord(
            "carepath.worker", logging.ERROR, __file__, 1, "GET /x?ref=%s", (SECRET_REF,), (type(exc), exc, None)
        )
    assert logging.lastResort is not None and logging.lastResort.filter(failed)
    text = logging.Formatter().format(failed)
    assert "ValueError" in text and SECRET_REF not in text


def test_no_patient_data_in_app_logs_for_a_whole_flow(client: Any, auth: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        instance = start(client, auth, SECRET_REF).json
        client.get(f"/v1/instances?patient_ref={SECRET_REF}", headers=auth("system"))
        client.post("/v1/messages", json={"name": "nothing", "patient_ref": SECRET_REF}, headers=auth("system"))
        client.post(
            f"/v1/instances/{instance['id']}/tasks/{instance['ready_tasks'][0]['id']}/complete",
            json={"data": {"anxiety": SECRET_REF}},
            headers=auth("system"),
        )
    assert SECRET_REF not in caplog.text


def test_unknown_query_parameters_are_refused(client: Any, auth: Any) -> None:
    start(client, auth, "MRN-1")
    body = assert_problem(client.get("/v1/instances?patient=MRN-2", headers=auth("system")), 400, "request-invalid")
    assert body["errors"] == [{"field": "patient", "message": "is not a parameter of this operation"}]
    assert client.get("/v1/instances?patient_ref=MRN-2", headers=auth("system")).json["items"] == []


def test_every_documented_read_refuses_unknown_query_parameters(app: Flask, client: Any, auth: Any) -> None:
    """Every GET the OpenAPI document lists refuses a parameter it does not document, whatever its blueprint
    is called (the web pages' exemption once matched the webhooks API's blueprint by its prefix "web")."""
    from api.openapi import DOCUMENT

    uuid = "00000000-0000-4000-8000-000000000000"  # routes with a uuid converter do not match other text
    sample = {name: uuid for name in ("instance_id", "task_id", "job_id", "item_id", "evaluation_id", "escalation_id")}
    sample.update(version="latest", number="1")
    checked = []
    for template, item in DOCUMENT["paths"].items():
        if "get" not in item:
            continue
        path = template
        for name in (p["name"] for p in item["get"].get("parameters", []) if p["in"] == "path"):
            path = path.replace("{" + name + "}", sample.get(name, "x1"))
        response = client.get(f"{path}?not_a_parameter=1", headers=auth("admin"))
        assert response.status_code == 400, (template, response.status_code)
        assert response.json["errors"] == [
            {"field": "not_a_parameter", "message": "is not a parameter of this operation"}
        ]
        checked.append(template)
    assert "/v1/webhooks/dead-letters" in checked and len(checked) > 30
