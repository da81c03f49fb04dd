"""An end of treatment summary not written within 6 weeks of its phase's end is on the work list for the
named contact, in the page's language, until it is written (issue 15, point 3; the scan that opens and
closes these tasks: tests/pathways_bundled/test_end_of_treatment_phases.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import make_token

from engine.db.models import TreatmentSummary
from engine.db.session import unit_of_work

Client = Callable[[str], FlaskClient]


def _overdue(app: Flask, patient_ref: str) -> str:
    carepath = app.extensions["carepath"]
    view = carepath.instances.start("test_careplan", patient_ref, "system:test", {"age": 54})
    with unit_of_work(carepath.sessions) as session:
        session.add(
            TreatmentSummary(
                id="00000000-0000-4000-8000-0000000000a1",
                instance_id=view.id,
                number=2,
                phase="recurrence",
                ended_on=date(2026, 1, 1),
                due_by=date(2026, 2, 12),
                status="due",
                opened_at=datetime(2026, 1, 1, tzinfo=UTC),
                overdue_at=datetime(2026, 2, 13, tzinfo=UTC),
                assignee="STAFF-SYN-1",
            )
        )
    return str(view.id)


def _text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


def test_an_overdue_summary_is_on_the_work_list_for_the_named_contact(app: Flask, signed_in: Client) -> None:
    client = signed_in("clinician")
    assert 'data-test="summaries-overdue"' not in _text(client.get("/work-list"))
    instance_id = _overdue(app, "MRN-5006")
    html = _text(client.get("/work-list"))
    assert 'data-test="summaries-overdue"' in html and "End of treatment summaries overdue" in html
    assert "2. Treatment of a recurrence (course ended 2026-01-01)" in html
    assert "STAFF-SYN-1" in html and "2026-02-12" in html and f"/patients/{instance_id}" in html
    sv = _text(client.get("/work-list", headers={"Accept-Language": "sv"}))
    assert "Försenade sammanfattningar efter avslutad behandling" in sv and "Behandling av återfall" in sv
    assert 'data-test="summaries-overdue"' not in _text(client.get("/work-list?patient=MRN-9999"))


def _two_phases(app: Flask, patient_ref: str) -> str:
    carepath = app.extensions["carepath"]
    view = carepath.instances.start("test_careplan", patient_ref, "system:test", {"age": 54, "diagnosis": "breast"})
    with unit_of_work(carepath.sessions) as session:
        for number, phase, ended in ((1, "first_line", date(2026, 3, 2)), (2, "recurrence", date(2027, 5, 10))):
            written = datetime(ended.year, ended.month, ended.day + 5, tzinfo=UTC)
            content = {
                "summary_treatments": [f"course {number}"],
                "completed_on": ended.isoformat(),
                "gp_actions": [f"action {number}"],
                "follow_up_model": "patient_initiated",
            }
            session.add(
                TreatmentSummary(
                    id=f"00000000-0000-4000-8000-0000000000c{number}",
                    instance_id=view.id,
                    number=number,
                    phase=phase,
                    ended_on=ended,
                    due_by=ended,
                    status="written",
                    opened_at=written,
                    written_at=written,
                    written_by="clinician:test",
                    content=json.dumps(content),
                )
            )
    return str(view.id)


def test_each_phase_summary_has_its_own_page_from_the_patient_page(app: Flask, signed_in: Client) -> None:
    instance_id = _two_phases(app, "MRN-5007")
    client = signed_in("clinician")
    html = _text(client.get(f"/patients/{instance_id}"))
    assert 'data-phase="1"' in html and 'data-phase="2"' in html
    assert "2. Treatment of a recurrence (course ended 2027-05-10)" in html
    url = f"/patients/{instance_id}/documents/end-of-treatment-summary"
    first = _text(client.get(f"{url}?phase=1&lang=sv"))
    assert "Första behandlingen" in first and "action 1" in first and "action 2" not in first
    assert "action 2" in _text(client.get(url))  # the latest written
    for bad in ("3", "0", "x", "1000"):
        assert client.get(f"{url}?phase={bad}").status_code == 404


def test_the_patient_reads_each_of_their_summaries(app: Flask, signed_in: Client) -> None:
    instance_id = _two_phases(app, "MRN-1001")  # the signed-in patient's own
    client = signed_in("patient")
    html = _text(client.get(f"/my/plans/{instance_id}", headers={"Accept-Language": "sv"}))
    assert 'data-phase="1"' in html and 'data-phase="2"' in html and "Behandling av återfall" in html
    url = f"/my/plans/{instance_id}/documents/end-of-treatment-summary"
    assert "action 1" in _text(client.get(f"{url}?phase=1")) and "action 2" not in _text(client.get(f"{url}?phase=1"))
    assert client.get(f"{url}?phase=2&format=pdf").mimetype == "application/pdf"
    assert client.get(f"{url}?phase=9").status_code == 404 and client.get(f"{url}?phase=x").status_code == 404
    token = make_token(app, "patient")
    own = app.test_client().get(
        f"/v1/me/instances/{instance_id}/end-of-treatment-summaries/2",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert own.status_code == 200 and own.json["gp_actions"] == ["action 2"] and own.json["phase"]["number"] == 2
