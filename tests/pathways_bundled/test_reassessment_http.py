"""Re-assessment over HTTP on the bundled pathways: a wrong ``reassessment_requested`` is refused with a
located 422, and the concern trends are served by the API and shown on the patient's page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from engine import ManualClock
from engine.access import create_token
from engine.db.session import unit_of_work

from .journey import Journey
from .journeys import SITES
from .reassessment_journeys import agree, assessed, checklist

PROBLEMS = "https://carepath.dev/problems/"


@pytest.fixture
def app(bundled_http: Flask) -> Flask:
    return bundled_http


def _auth(app: Flask, role: str) -> dict[str, str]:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, f"test {role}", engine.clock)
    return {"Authorization": f"Bearer {secret}"}


def _deteriorated(app: Flask, clock: ManualClock) -> Journey:
    """Assessed with worry 2, then (a week later, on request) with worry 6 and fatigue 3."""
    j = assessed(app.extensions["carepath"], clock, SITES["lung"], "SYN-1421")
    j.wait(7)
    j.message("reassessment_requested", {"asked_by": "patient"})
    checklist(j, {"worry_fear_anxiety": 6, "fatigue": 3})
    return agree(j)


def test_a_wrong_request_is_refused_with_a_located_422(app: Flask, journey_clock: ManualClock) -> None:
    j = assessed(app.extensions["carepath"], journey_clock, SITES["breast"], "SYN-1420")
    client, system = app.test_client(), _auth(app, "system")
    response = client.post(
        "/v1/messages",
        headers=system,
        json={
            "name": "reassessment_requested",
            "patient_ref": "SYN-1420",
            "payload": {"asked_by": "neighbour", "x": 1},
        },
    )
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body["type"].startswith(PROBLEMS)
    assert sorted(p["field"] for p in body["errors"]) == ["/asked_by", "/x"]
    assert "neighbour" not in response.get_data(as_text=True)
    accepted = client.post(
        "/v1/messages",
        headers=system,
        json={"name": "reassessment_requested", "patient_ref": "SYN-1420", "payload": {"asked_by": "gp"}},
    )
    assert accepted.status_code == 200, accepted.json
    assert "offer_hna" in [t["element"] for t in accepted.json["delivered"][0]["ready_tasks"]]
    assert j.view.id == accepted.json["delivered"][0]["id"]


def test_concern_trends_over_http(app: Flask, journey_clock: ManualClock) -> None:
    j = _deteriorated(app, journey_clock)
    client = app.test_client()
    response = client.get(f"/v1/instances/{j.view.id}/concerns", headers=_auth(app, "clinician"))
    assert response.status_code == 200
    body = response.json
    assert [a["at"][:10] for a in body["assessments"]] == ["2026-01-15", "2026-01-22"]
    series = {s["code"]: [(p["score"], p["change"]) for p in s["points"]] for s in body["concerns"]}
    assert series == {"worry_fear_anxiety": [(2, None), (6, 4)], "fatigue": [(0, None), (3, 3)]}
    assert body["deteriorated"] == ["fatigue", "worry_fear_anxiety"]
    missing = client.get("/v1/instances/00000000-0000-4000-8000-000000000000/concerns", headers=_auth(app, "clinician"))
    assert missing.status_code == 404
    assert client.get(f"/v1/instances/{j.view.id}/concerns", headers=_auth(app, "system")).status_code == 403


def test_the_patient_page_shows_the_trends_in_a_table(app: Flask, journey_clock: ManualClock) -> None:
    j = _deteriorated(app, journey_clock)
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, "clinician", "test clinician", engine.clock)
    client = app.test_client()
    # The sign-in link shows a button (never signs in on a GET); the button POSTs with the CSRF token.
    page = client.get(f"/sign-in?token={secret}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and client.post("/sign-in", data={"token": secret, "csrf_token": csrf.group(1)}).status_code == 303
    html = client.get(f"/patients/{j.view.id}").get_data(as_text=True)
    assert 'data-test="concern-trends"' in html and "Concerns over time" in html
    row = html[html.index('data-concern="worry_fear_anxiety"') :]
    row = row[: row.index("</tr>")]
    assert "Worse since the last assessment" in row and '<td class="nhsuk-table__cell">6 (+4)</td>' in row
