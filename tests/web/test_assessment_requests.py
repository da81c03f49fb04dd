"""A patient asks for a holistic needs assessment at any time (engine.patients.request_assessment) on their own
pages, on the bundled breast pathway: the re-assessment listener starts it with asked_by patient; another
patient's pathway is not found; a pathway not listening says so and records nothing. Through /v1/me:
tests/api/test_api_assessment_requests.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journeys import SITES, _start, events
from web_helpers import bundled_app, csrf_of, make_token, sign_in_with

from engine import ManualClock

PATIENT, OTHER = "SYN-ASK-0001", "SYN-ASK-0002"


@pytest.fixture
def app(tmp_path: Path, database_templates: Any) -> Iterator[Flask]:
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    app = bundled_app(tmp_path, database_templates, clock)
    try:
        engine = app.extensions["carepath"]
        app.config["IDS"] = {p: _start(engine, clock, SITES["breast"], p).view.id for p in (PATIENT, OTHER)}
        yield app
    finally:
        app.extensions["carepath"].close()


def _started(app: Flask, instance_id: str) -> list[dict[str, Any]]:
    """The payloads of the instance's reassessment_started events (asked_by, never who asked)."""
    found = events(app.extensions["carepath"], instance_id)
    return [json.loads(e.payload) for e in found if e.type == "reassessment_started"]


def _patient(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in_with(client, make_token(app, "patient", PATIENT)).status_code == 303
    return client


def test_a_patient_asks_on_their_own_pages(app: Flask) -> None:
    own = app.config["IDS"][PATIENT]
    client = _patient(app)
    plan = client.get(f"/my/plans/{own}").get_data(as_text=True)
    assert f'href="/my/plans/{own}/assessment"' in plan
    page = client.get(f"/my/plans/{own}/assessment").get_data(as_text=True)
    assert "You can ask for one at any time" in page and "call the 24-hour line now" in page
    done = client.post(f"/my/plans/{own}/assessment", data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303 and done.location == f"/my/plans/{own}"
    assert _started(app, own) == [{"reasons": ["request"], "asked_by": "patient"}]
    assert "Your care team has been asked for a needs assessment" in client.get(done.location).get_data(as_text=True)
    # An assessment under way: the pathway is not listening for another request, and says so.
    again = client.post(f"/my/plans/{own}/assessment", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 409 and 'data-test="already"' in again.get_data(as_text=True)
    assert len(_started(app, own)) == 1
    # Another patient's pathway: not found, nothing started.
    other = app.config["IDS"][OTHER]
    assert client.get(f"/my/plans/{other}/assessment").status_code == 404
    assert client.post(f"/my/plans/{other}/assessment", data={"csrf_token": csrf_of(page)}).status_code == 404
    assert _started(app, other) == []
