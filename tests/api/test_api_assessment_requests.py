"""A patient app asks for a holistic needs assessment through /v1/me (engine.patients.request_assessment), on the
bundled breast pathway, every answer checked against the OpenAPI document by the contract client; the same on
the patient's own pages: tests/web/test_assessment_requests.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_contract import bundled_running_app, make_token
from flask import Flask
from pathways_bundled.journeys import SITES, _start, events

from engine import ManualClock

PATIENT, OTHER = "SYN-ASK-0001", "SYN-ASK-0002"


@pytest.fixture
def app(tmp_path: Path, database_templates: Any) -> Iterator[Flask]:
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    with bundled_running_app(tmp_path, database_templates, clock) as app:
        engine = app.extensions["carepath"]
        app.config["IDS"] = {p: _start(engine, clock, SITES["breast"], p).view.id for p in (PATIENT, OTHER)}
        yield app


def _started(app: Flask, instance_id: str) -> list[dict[str, Any]]:
    """The payloads of the instance's reassessment_started events (asked_by, never who asked)."""
    found = events(app.extensions["carepath"], instance_id)
    return [json.loads(e.payload) for e in found if e.type == "reassessment_started"]


def test_a_patient_app_asks_through_the_api(app: Flask) -> None:
    own, other = app.config["IDS"][PATIENT], app.config["IDS"][OTHER]
    headers = {"Authorization": f"Bearer {make_token(app, 'patient', patient_ref=PATIENT)}"}
    client = app.test_client()
    # Who asks is the token's patient, never the body's say.
    bad = client.post(f"/v1/me/instances/{own}/assessment-requests", json={"asked_by": "gp"}, headers=headers)
    assert bad.status_code == 400 and bad.json["type"].endswith("/request-invalid") and _started(app, own) == []
    asked = client.post(f"/v1/me/instances/{own}/assessment-requests", headers=headers)
    assert asked.status_code == 202 and asked.json["id"] == own and asked.headers["ETag"]
    assert _started(app, own) == [{"reasons": ["request"], "asked_by": "patient"}]
    assert client.post(f"/v1/me/instances/{own}/assessment-requests", headers=headers).status_code == 409
    assert client.post(f"/v1/me/instances/{other}/assessment-requests", headers=headers).status_code == 404
    clinician = {"Authorization": f"Bearer {make_token(app, 'clinician')}"}
    assert client.post(f"/v1/me/instances/{own}/assessment-requests", headers=clinician).status_code == 403


def test_a_retried_request_with_its_idempotency_key_asks_once(app: Flask) -> None:
    own = app.config["IDS"][PATIENT]
    headers = {"Authorization": f"Bearer {make_token(app, 'patient', patient_ref=PATIENT)}", "Idempotency-Key": "ask-1"}
    client = app.test_client()
    first = client.post(f"/v1/me/instances/{own}/assessment-requests", headers=headers)
    again = client.post(f"/v1/me/instances/{own}/assessment-requests", headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json["id"] == own
    assert len(_started(app, own)) == 1
