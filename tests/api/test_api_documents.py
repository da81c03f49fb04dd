"""Documents over HTTP: the care plan and the end of treatment summary (JSON or HTML, English or
Swedish), and clinicians moving care plan items on."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from multiprocessing import forkserver
from typing import Any

import pytest
from flask import Flask
from helpers import PATHWAY, assert_problem, assessed, start
from pypdf import PdfReader
from sqlalchemy import select

from engine.db.models import InstanceEvent, TreatmentSummary
from engine.db.session import unit_of_work
from engine.documents.render import MAX_LIST_ENTRIES

MISSING = "00000000-0000-4000-8000-000000000000"
SUMMARY_DATA = {
    "diagnosis": "breast",
    "summary_treatments": ["Course completed as planned"],
    "gp_actions": ["Review tiredness <b>and</b> mood"],
    "follow_up_model": "patient_initiated",
}


def _plan(client: Any, auth: Any, instance_id: str, role: str = "clinician", **headers: str) -> Any:
    return client.get(f"/v1/instances/{instance_id}/care-plan", headers=auth(role, **headers))


def _item(client: Any, auth: Any, instance_id: str, item_id: str, status: Any, role: str = "clinician") -> Any:
    return client.patch(
        f"/v1/instances/{instance_id}/care-plan/items/{item_id}", json={"status": status}, headers=auth(role)
    )


def test_care_plan_is_json_in_english_by_default(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9, "fatigue": 2})
    response = _plan(client, auth, instance["id"])
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Language"] == "en"
    assert response.headers["Vary"] == "Accept, Accept-Language"
    doc = response.json
    assert (doc["document_type"], doc["language"], doc["instance_id"]) == (
        "personalised_care_plan",
        "en",
        instance["id"],
    )
    assert doc["patient_ref"] == "MRN-3003" and doc["agreed"] == [] and doc["declined"] == []
    referral = next(i for i in doc["awaiting_decision"] if i["kind"] == "referral")
    assert referral["code"] == "psychological-support-referral" and referral["status"] == "proposed"
    assert referral["why"]["rules"][0]["id"] == "psych-support-urgent"
    assert [n["code"] for n in doc["needs"]] == ["worry_fear_anxiety", "fatigue"]
    for role in ("system", "auditor"):  # patient apps and auditors read it too
        assert _plan(client, auth, instance["id"], role).json["instance_id"] == instance["id"]


def test_care_plan_language_comes_from_accept_language(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    for asked, given in (
        ("sv-SE", "sv"),
        ("sv", "sv"),
        ("de, sv;q=0.5", "sv"),
        ("en-GB", "en"),
        ("de", "en"),
        ("*", "en"),
    ):
        response = _plan(client, auth, instance["id"], **{"Accept-Language": asked})
        assert response.headers["Content-Language"] == given, asked
        assert response.json["language"] == given
    assert _plan(client, auth, instance["id"], **{"Accept-Language": "sv"}).json["title"] == "Min vårdplan"


def test_care_plan_as_html(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    for accept in ("text/html", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"):
        response = _plan(client, auth, instance["id"], Accept=accept, **{"Accept-Language": "sv"})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Content-Language"] == "sv" and response.headers["Vary"] == "Accept, Accept-Language"
        page = response.get_data(as_text=True)
        assert page.startswith("<!DOCTYPE html>") and '<html lang="sv">' in page and "Min vårdplan" in page
        assert "<script" not in page
    # JSON wins when it is preferred or nothing is said.
    for accept in ("application/json", "*/*", "application/json, text/html;q=0.5"):
        assert _plan(client, auth, instance["id"], Accept=accept).mimetype == "application/json"


def test_care_plan_of_an_unknown_instance(client: Any, auth: Any) -> None:
    assert_problem(_plan(client, auth, MISSING), 404, "not-found")
    assert_problem(_plan(client, auth, MISSING, Accept="text/html"), 404, "not-found")
    assert_problem(_plan(client, auth, MISSING, "author"), 403, "forbidden")


def test_clinician_moves_an_item_on_and_it_is_in_the_trail(app: Flask, client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    plan = _plan(client, auth, instance["id"]).json
    referral = next(i for i in plan["awaiting_decision"] if i["kind"] == "referral")
    path = ("agreed", "referred", "accepted", "first_contact", "completed")
    for status in path:
        response = _item(client, auth, instance["id"], referral["id"], status)
        assert response.status_code == 200, response.json
        body = response.json
        assert (body["id"], body["status"]) == (referral["id"], status)
        assert (
            body["updated_by"].startswith("clinician:tok_")
            and body["evaluation_id"] == referral["why"]["evaluation_id"]
        )
    completed = _plan(client, auth, instance["id"]).json["agreed"]
    assert [(i["id"], i["status"]) for i in completed] == [(referral["id"], "completed")]
    # Each move with who and when, in the care plan the API serves.
    history = completed[0]["history"]
    assert [(h["change"], h["from_status"], h["to_status"]) for h in history] == [
        ("created", None, "proposed"),
        *zip(["status"] * 5, ("proposed", *path[:-1]), path, strict=True),
    ]
    assert all(h["actor"].startswith("clinician:tok_") for h in history[1:]) and history[0]["actor"] == "engine"
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        events = session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == instance["id"], InstanceEvent.type == "care_plan_updated")
            .order_by(InstanceEvent.seq)
        ).all()
    assert [e.actor.split(":")[0] for e in events] == ["clinician"] * 5
    assert [json.loads(e.payload)["status"] for e in events] == list(path)
    # What service measures read: ids, codes, the status, service and urgency; nothing of the patient.
    assert set(json.loads(events[-1].payload)) == {"item", "code", "status", "service", "urgency"}


def test_item_transitions_are_checked(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    items = _plan(client, auth, instance["id"]).json["awaiting_decision"]
    first, second = items[0]["id"], items[1]["id"]
    body = assert_problem(_item(client, auth, instance["id"], first, "completed"), 409, "instance-state-conflict")
    assert body["detail"] == "a proposed item cannot become completed"
    assert _item(client, auth, instance["id"], first, "declined").json["status"] == "declined"
    assert_problem(_item(client, auth, instance["id"], first, "agreed"), 409, "instance-state-conflict")
    body = assert_problem(_item(client, auth, instance["id"], second, "proposed"), 400, "request-invalid")
    assert [e["field"] for e in body["errors"]] == ["/status"]
    assert_problem(_item(client, auth, instance["id"], second, None), 400, "request-invalid")
    # Nothing changed by the refusals.
    statuses = {i["id"]: i["status"] for i in _plan(client, auth, instance["id"]).json["awaiting_decision"]}
    assert first not in statuses and statuses[second] == "proposed"


def test_items_are_found_only_in_their_own_instance(client: Any, auth: Any) -> None:
    own = assessed(client, auth, {"worry_fear_anxiety": 9}, "MRN-1")
    other = assessed(client, auth, {"worry_fear_anxiety": 9}, "MRN-2")
    foreign = _plan(client, auth, other["id"]).json["awaiting_decision"][0]["id"]
    assert_problem(_item(client, auth, own["id"], foreign, "agreed"), 404, "not-found")
    assert_problem(_item(client, auth, MISSING, foreign, "agreed"), 404, "not-found")
    assert_problem(_item(client, auth, own["id"], MISSING, "agreed"), 404, "not-found")
    for role in ("system", "auditor", "author"):
        assert_problem(_item(client, auth, other["id"], foreign, "agreed", role), 403, "forbidden")
    assert _plan(client, auth, other["id"]).json["awaiting_decision"][0]["status"] == "proposed"


def test_summary_is_a_conflict_until_it_is_written(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    body = assert_problem(
        client.get(f"/v1/instances/{instance['id']}/end-of-treatment-summary", headers=auth("clinician")),
        409,
        "instance-state-conflict",
    )
    assert body["detail"].startswith("no end of treatment summary yet")
    assert_problem(
        client.get(f"/v1/instances/{MISSING}/end-of-treatment-summary", headers=auth("clinician")), 404, "not-found"
    )


def test_summary_as_json_and_html(client: Any, auth: Any) -> None:
    response = client.post(
        "/v1/instances",
        json={"pathway_id": PATHWAY, "patient_ref": "MRN-4004", "data": SUMMARY_DATA},
        headers=auth("system"),
    )
    url = f"/v1/instances/{response.json['id']}/end-of-treatment-summary"
    doc = client.get(url, headers=auth("system"))
    assert doc.status_code == 200 and doc.headers["Content-Language"] == "en"
    assert doc.headers["Vary"] == "Accept, Accept-Language"
    assert doc.json["document_type"] == "end_of_treatment_summary"
    assert doc.json["warning_signs"]["diagnosis"] == "breast" and doc.json["warning_signs"]["signs"]
    assert doc.json["gp_actions"] == SUMMARY_DATA["gp_actions"]
    page = client.get(url, headers=auth("auditor", Accept="text/html", **{"Accept-Language": "sv-SE"}))
    assert page.status_code == 200 and page.mimetype == "text/html" and page.headers["Content-Language"] == "sv"
    text = page.get_data(as_text=True)
    assert '<html lang="sv">' in text and "Sammanfattning efter avslutad behandling" in text
    assert "Review tiredness &lt;b&gt;and&lt;/b&gt; mood" in text  # staff-entered text is escaped


def test_documents_as_pdf_for_the_gp(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    response = _plan(client, auth, instance["id"], Accept="application/pdf", **{"Accept-Language": "sv"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Language"] == "sv" and response.headers["Vary"] == "Accept, Accept-Language"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="care-plan-') and "MRN-3003" not in disposition
    pdf = response.get_data()
    assert pdf.startswith(b"%PDF-")
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    words = " ".join("\n".join(pages).split())
    assert "Min vårdplan" in pages[0] and "Du skattade oro, rädsla eller ångest till 9 av 10" in words
    for n, text in enumerate(pages, start=1):
        assert f"Sida {n} av {len(pages)}" in text and "MRN-3003" in text
    # A browser's Accept still gets the page, and */* the JSON.
    assert _plan(client, auth, instance["id"], Accept="text/html,*/*;q=0.8").mimetype == "text/html"
    assert _plan(client, auth, instance["id"], Accept="*/*").mimetype == "application/json"
    assert_problem(_plan(client, auth, MISSING, Accept="application/pdf"), 404, "not-found")


# A sitecustomize module that makes WeasyPrint's import fail as on a server without Pango: cffi cannot
# open the library (an OSError).
_NO_PANGO = """
import sys


class NoPango:
    def find_spec(self, name, *args):
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")


sys.meta_path.insert(0, NoPango())
"""


@pytest.fixture
def without_pango(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PDFs rendered as on a server without Pango: a fork server of their own (engine.documents.render),
    whose interpreter cannot import WeasyPrint; stopped after the test, so the next PDF starts one with it."""
    (tmp_path / "sitecustomize.py").write_text(_NO_PANGO, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    forkserver._forkserver._stop()  # the fork server this process started, if any
    try:
        yield
    finally:
        forkserver._forkserver._stop()


@pytest.mark.usefixtures("without_pango")
def test_pdf_on_a_server_without_pango_is_503_and_the_page_still_works(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    response = _plan(client, auth, instance["id"], Accept="application/pdf")
    assert_problem(response, 503, "pdf-unavailable")
    assert "Traceback" not in response.get_data(as_text=True)
    assert _plan(client, auth, instance["id"], Accept="text/html").status_code == 200


def test_a_document_too_large_to_print_is_a_located_422_not_a_minute_long_pdf(client: Any, auth: Any) -> None:
    # More GP actions than a PDF is made from (the form caps them at 30; start data and corrections
    # are not that form): refused before rendering, and the JSON and HTML still work.
    data = {**SUMMARY_DATA, "gp_actions": [f"Review {n}" for n in range(MAX_LIST_ENTRIES + 1)]}
    response = client.post(
        "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": "MRN-4006", "data": data}, headers=auth("system")
    )
    url = f"/v1/instances/{response.json['id']}/end-of-treatment-summary"
    body = assert_problem(
        client.get(url, headers=auth("clinician", Accept="application/pdf")), 422, "document-too-large"
    )
    assert [e["field"] for e in body["errors"]] == ["/gp_actions"]
    assert "too large to print" in body["detail"]
    assert client.get(url, headers=auth("clinician")).status_code == 200
    assert client.get(url, headers=auth("clinician", Accept="text/html")).status_code == 200


def test_summary_benefits_form_and_contacts(client: Any, auth: Any) -> None:
    data = {
        **SUMMARY_DATA,
        "treatment_intent": "palliative",
        "benefits_form_status": "completed",
        "gp_practice": "EXAMPLE-GP-2",
        "named_contact": {"role": "clinical_nurse_specialist", "staff_ref": "STAFF-DEMO-1", "team": "A team"},
    }
    response = client.post(
        "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": "MRN-4005", "data": data}, headers=auth("system")
    )
    url = f"/v1/instances/{response.json['id']}/end-of-treatment-summary"
    doc = client.get(url, headers=auth("clinician")).json
    assert doc["benefits_form"] == {"form": "SR1", "status": "completed", "label": "Completed"}
    assert doc["gp_practice"]["name"] == "Sample Road Medical Centre"
    assert doc["who_to_call"]["named_contact"]["name"] == "Sam Example"
    assert "STAFF-DEMO-1" not in json.dumps(doc)
    # Read in Swedish, the patient is still in England: SR1 and the English contacts, in Swedish words.
    swedish = client.get(url, headers=auth("clinician", **{"Accept-Language": "sv"})).json
    assert swedish["benefits_form"]["form"] == "SR1" and swedish["directory"]["health_system"] == "england"
    assert swedish["who_to_call"]["named_contact"]["name"] == "Sam Example"
    assert swedish["who_to_call"]["emergency_number"] == "999"


def _phase(app: Flask, instance_id: str, number: int, phase: str, ended_on: str, content: dict[str, Any]) -> None:
    """A phase's summary as the shared sub-pathway keeps it (engine.careplan.summaries)."""
    ended = date.fromisoformat(ended_on)
    written = datetime.combine(ended + timedelta(days=10), datetime.min.time(), UTC)
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        session.add(
            TreatmentSummary(
                id=f"00000000-0000-4000-8000-00000000000{number}",
                instance_id=instance_id,
                number=number,
                phase=phase,
                ended_on=ended,
                due_by=ended + timedelta(weeks=6),
                status="written",
                opened_at=written,
                written_at=written,
                written_by="clinician:cns-1",
                content=json.dumps(content),
            )
        )


def test_each_phase_of_care_has_its_own_summary(app: Flask, client: Any, auth: Any) -> None:
    legacy = client.post(
        "/v1/instances",
        json={"pathway_id": PATHWAY, "patient_ref": "MRN-4010", "data": SUMMARY_DATA},
        headers=auth("system"),
    ).json["id"]
    # A summary written before phases were kept is phase 1.
    listed = client.get(f"/v1/instances/{legacy}/end-of-treatment-summaries", headers=auth("clinician"))
    assert listed.status_code == 200 and [p["number"] for p in listed.json["phases"]] == [1]
    assert (
        client.get(f"/v1/instances/{legacy}/end-of-treatment-summaries/1", headers=auth("clinician")).json["gp_actions"]
        == SUMMARY_DATA["gp_actions"]
    )

    instance = client.post(
        "/v1/instances",
        json={"pathway_id": PATHWAY, "patient_ref": "MRN-4011", "data": {"diagnosis": "breast"}},
        headers=auth("system"),
    ).json["id"]
    _phase(
        app,
        instance,
        1,
        "first_line",
        "2026-03-02",
        {**SUMMARY_DATA, "completed_on": "2026-03-02", "gp_actions": ["first"]},
    )
    _phase(
        app,
        instance,
        2,
        "recurrence",
        "2027-05-10",
        {**SUMMARY_DATA, "completed_on": "2027-05-10", "gp_actions": ["second"]},
    )
    url = f"/v1/instances/{instance}/end-of-treatment-summaries"
    listed = client.get(url, headers=auth("auditor", **{"Accept-Language": "sv"}))
    assert listed.headers["Content-Language"] == "sv"
    assert [(p["number"], p["code"], p["ended_on"], p["label"]) for p in listed.json["phases"]] == [
        (1, "first_line", "2026-03-02", "Första behandlingen"),
        (2, "recurrence", "2027-05-10", "Behandling av återfall"),
    ]
    first, second = (client.get(f"{url}/{n}", headers=auth("clinician")).json for n in (1, 2))
    assert (first["completed_on"], first["gp_actions"], first["phase"]["number"]) == ("2026-03-02", ["first"], 1)
    assert (second["completed_on"], second["gp_actions"], second["phase"]["number"]) == ("2027-05-10", ["second"], 2)
    latest = client.get(f"/v1/instances/{instance}/end-of-treatment-summary", headers=auth("clinician")).json
    assert latest["phase"]["number"] == 2
    page = client.get(f"{url}/1", headers=auth("clinician", Accept="text/html", **{"Accept-Language": "sv"}))
    assert page.status_code == 200 and "Första behandlingen" in page.get_data(as_text=True)
    pdf = client.get(f"{url}/2", headers=auth("clinician", Accept="application/pdf"))
    assert pdf.headers["Content-Disposition"].startswith('inline; filename="end-of-treatment-summary-2-')
    assert_problem(client.get(f"{url}/3", headers=auth("clinician")), 404, "not-found")
    for bad in ("0", "1000", "x", "-1"):
        assert client.get(f"{url}/{bad}", headers=auth("clinician")).status_code == 404
    assert_problem(
        client.get(f"/v1/instances/{MISSING}/end-of-treatment-summaries", headers=auth("clinician")), 404, "not-found"
    )


def test_overdue_summaries_are_listed_with_the_tasks_for_the_named_contact(app: Flask, client: Any, auth: Any) -> None:
    instance = start(client, auth).json["id"]
    assert client.get("/v1/tasks", headers=auth("clinician")).json["summaries_overdue"] == []
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        session.add(
            TreatmentSummary(
                id="00000000-0000-4000-8000-0000000000b1",
                instance_id=instance,
                number=1,
                phase="first_line",
                ended_on=date(2026, 1, 1),
                due_by=date(2026, 2, 12),
                status="due",
                opened_at=datetime(2026, 1, 1, tzinfo=UTC),
                overdue_at=datetime(2026, 2, 13, tzinfo=UTC),
                assignee="STAFF-1",
            )
        )
    [task] = client.get("/v1/tasks", headers=auth("clinician")).json["summaries_overdue"]
    assert (task["kind"], task["instance_id"], task["assignee"], task["due_by"]) == (
        "summary_overdue",
        instance,
        "STAFF-1",
        "2026-02-12",
    )
    assert client.get("/v1/tasks?patient_ref=MRN-9999", headers=auth("clinician")).json["summaries_overdue"] == []
    listed = client.get(f"/v1/instances/{instance}/end-of-treatment-summaries", headers=auth("clinician")).json
    assert [(p["status"], p["overdue"]) for p in listed["phases"]] == [("due", True)]
