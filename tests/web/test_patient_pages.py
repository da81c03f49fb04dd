"""The patient's own pages through Flask's test client (issue 16 point 6): a patient lands on their plan,
reads it in both languages with the 24-hour line first, sees their own forms and no staff task, reports a
warning sign, and reaches nothing of another patient's (404) nor any staff page (403)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import copy_of, csrf_of, make_token, sign_in_with

from api import create_app
from engine import ManualClock
from engine.db.models import InstanceEvent
from engine.demo import CONTACT, YOUNG_PEOPLE_CONTACT
from engine.documents.render import PdfLimits
from engine.instances.timers import fire_due_timers

PATHWAY = "test_assessment"
REPO = Path(__file__).resolve().parent.parent.parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def engine(app: Flask) -> Any:
    return app.extensions["carepath"]


def start(app: Flask, patient: str) -> Any:
    return engine(app).instances.start(PATHWAY, patient, "system:test")


def waiting(app: Flask, patient: str) -> Any:
    """An instance past its needs assessment: waiting for the survey's timer or a warning sign."""
    view = start(app, patient)
    view = engine(app).instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 3}, "clinician:test"
    )
    return engine(app).instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"support_accepted": False}, "clinician:test"
    )


def text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


def test_a_patient_lands_on_their_own_plan_never_the_work_list(app: Flask, signed_in: Any) -> None:
    start(app, "MRN-1001")
    client: FlaskClient = signed_in("patient")
    response = client.get("/")
    assert response.status_code == 302 and response.location == "/my"
    html = text(client.get("/my"))
    assert "<h1>My care plan</h1>" in html and 'href="/work-list"' not in html
    # The 24-hour line comes before anything else on the page.
    assert html.index('data-test="twenty-four-hour-line"') < html.index('id="next"') < html.index('id="plan"')
    assert 'data-test="my-contacts"' in html and 'data-test="my-documents"' in html
    # What happens next is in plain words: the staff's task (its name in the diagram) is not shown.
    assert "Holistic needs assessment" not in html and "MRN-1001" not in html


def test_the_plan_is_in_swedish_for_a_swedish_reader(app: Flask, signed_in: Any) -> None:
    view = start(app, "MRN-1001")
    client = signed_in("patient")
    html = text(client.get(f"/my/plans/{view.id}", headers={"Accept-Language": "sv-SE,sv;q=0.9"}))
    assert "<h1>Min vårdplan</h1>" in html and '<html lang="sv">' in html
    document = client.get(f"/my/plans/{view.id}/documents/care-plan?lang=sv")
    assert document.status_code == 200 and document.headers["Content-Language"] == "sv"
    assert document.mimetype == "text/html" and "no-store" in document.headers["Cache-Control"]


def test_every_example_number_on_the_patients_page_says_so(app: Flask, signed_in: Any) -> None:
    data = {
        "gp_practice": "EXAMPLE-GP-2",
        "named_contact": {"role": "clinical_nurse_specialist", "staff_ref": "STAFF-DEMO-1", "team": "A team"},
    }
    view = engine(app).instances.start(PATHWAY, "MRN-1001", "system:test", data)
    client = signed_in("patient")
    for language, mark in (("en", "(example)"), ("sv", "(exempel)")):
        html = text(client.get(f"/my/plans/{view.id}", headers={"Accept-Language": language}))
        assert 'data-test="example-data"' in html  # the banner: the bundled directory is example data
        contacts = html[html.index('data-test="my-contacts"') :]
        contacts = contacts[: contacts.index("</ul>")]
        links = re.findall(
            r'href="tel:([^"]+)"[^>]*>[^<]*</a>(\s*<span class="cp-example"[^>]*>([^<]*)</span>)?', contacts
        )
        assert len(links) >= 4, links  # named contact, team, 24-hour line, GP practice...
        for number, _, shown in links:
            # Every number but the national ones (NHS 111, 1177) is the example directory's, marked beside it.
            assert shown == ("" if number in ("111", "1177") else mark), (number, shown)


def test_a_patients_other_plans_are_named_by_their_pathways_titles(app: Flask, signed_in: Any) -> None:
    first = start(app, "MRN-1001")
    second = engine(app).instances.start("test_timer_p1d", "MRN-1001", "system:test")
    title = engine(app).catalog.titles()["test_timer_p1d"]
    html = text(signed_in("patient").get(f"/my/plans/{first.id}"))
    assert f'href="/my/plans/{second.id}">{title}</a>' in html and title != "test_timer_p1d"


def test_nothing_of_another_patient_is_reachable(app: Flask, signed_in: Any) -> None:
    own = waiting(app, "MRN-1001")
    other = waiting(app, "MRN-2002")
    client = signed_in("patient")
    csrf = csrf_of(text(client.get("/my")))
    for url in (
        f"/my/plans/{other.id}",
        f"/my/plans/{other.id}/documents/care-plan",
        f"/my/plans/{other.id}/documents/end-of-treatment-summary?format=pdf",
        f"/my/plans/{other.id}/warning-sign",
    ):
        response = client.get(url)
        assert response.status_code == 404 and "MRN-2002" not in text(response), url
    posted = client.post(f"/my/plans/{other.id}/warning-sign", data={"csrf_token": csrf, "warning_sign": "other"})
    assert posted.status_code == 404
    assert engine(app).instances.get(other.id).ready_tasks == []  # nothing reached their pathway
    # Staff pages are forbidden whoever's they are, the patient's own included.
    for url in (
        "/work-list",
        "/patients",
        f"/patients/{own.id}",
        f"/patients/{own.id}/documents/care-plan",
        f"/patients/{own.id}/evaluations",
        "/pathways",
        "/audit/trail",
    ):
        assert client.get(url).status_code == 403, url


def test_reporting_a_warning_sign_shows_the_line_first_and_reaches_the_care_team(app: Flask, signed_in: Any) -> None:
    view = waiting(app, "MRN-1001")
    client = signed_in("patient")
    html = text(client.get(f"/my/plans/{view.id}/warning-sign"))
    assert html.index('data-test="twenty-four-hour-line"') < html.index('id="warning-form"')
    assert 'href="tel:' in html and 'value="other"' in html
    csrf = csrf_of(html)
    unchosen = client.post(f"/my/plans/{view.id}/warning-sign", data={"csrf_token": csrf, "description": "x"})
    assert unchosen.status_code == 422 and "Choose what you have noticed" in text(unchosen)
    assert client.post(f"/my/plans/{view.id}/warning-sign", data={"warning_sign": "other"}).status_code == 400  # csrf
    sent = client.post(
        f"/my/plans/{view.id}/warning-sign",
        data={"csrf_token": csrf, "warning_sign": "other", "description": "Hot and shivery since this morning"},
    )
    html = text(sent)
    assert sent.status_code == 200 and 'data-level="unknown"' in html
    assert "If you feel unwell now, call the 24-hour line now" in html and 'href="tel:' in html
    assert "Hot and shivery" not in html  # what they wrote is not echoed
    assert [t["element"] for t in engine(app).instances.get(view.id).ready_tasks] == ["triage"]


@pytest.mark.parametrize(
    ("sign", "level", "card", "words"),
    [
        ("fever_on_treatment", "emergency", "emergency", "Do not wait for them to contact you"),
        ("severe_breathlessness_or_chest_pain", "emergency", "emergency", "Call 999."),
        ("cellulitis", "urgent", "urgent", "Call the 24-hour acute oncology line the same day"),
        ("general_bone_pain", "soon", "non-urgent", "They will look at your report and contact you"),
    ],
)
def test_a_reported_sign_is_answered_with_what_to_do_now(
    app: Flask, signed_in: Any, sign: str, level: str, card: str, words: str
) -> None:
    """Sending a report is not getting help: nobody may read it for up to 30 minutes. An emergency or
    same-day sign is told the catalogue's action and not to wait for the team; a later one is told the
    team will be in touch. Before, every report got "Your care team has been told"."""
    view = waiting(app, "MRN-1001")
    client = signed_in("patient")
    csrf = csrf_of(text(client.get(f"/my/plans/{view.id}/warning-sign")))
    sent = client.post(f"/my/plans/{view.id}/warning-sign", data={"csrf_token": csrf, "warning_sign": sign})
    html = text(sent)
    assert sent.status_code == 200, html
    assert f'data-level="{level}"' in html and f"nhsuk-card--care--{card}" in html
    assert words in html and "MRN-1001" not in html
    [triage] = engine(app).instances.get(view.id).ready_tasks
    assert triage["element"] == "triage"


def test_a_reported_sign_is_answered_in_swedish_with_the_patients_numbers(app: Flask, signed_in: Any) -> None:
    view = waiting(app, "MRN-1001")
    client = signed_in("patient")
    client.post("/language", data={"csrf_token": csrf_of(text(client.get("/my"))), "language": "sv"})
    csrf = csrf_of(text(client.get(f"/my/plans/{view.id}/warning-sign")))
    html = text(
        client.post(
            f"/my/plans/{view.id}/warning-sign",
            data={"csrf_token": csrf, "warning_sign": "severe_breathlessness_or_chest_pain"},
        )
    )
    assert "Agera nu: vänta inte på ditt vårdteam" in html and 'lang="sv"' in html
    # The patient's health system's number (a UK deployment's), not the page language's (Sweden's 112).
    assert "Ring 999." in html and "112" not in html


def test_a_patient_fills_in_their_own_survey(app: Flask, signed_in: Any) -> None:
    view = waiting(app, "MRN-1001")
    engine(app).clock.advance(timedelta(days=560))
    fire_due_timers(engine(app).instances, worker_id="test")
    client = signed_in("patient")
    html = text(client.get(f"/my/plans/{view.id}"))
    [task] = engine(app).instances.get(view.id).ready_tasks
    form_url = f"/my/plans/{view.id}/forms/{task['id']}"
    assert f'href="{form_url}"' in html and "Quality of life survey" in html
    page = text(client.get(form_url))
    csrf, version = csrf_of(page), str(engine(app).instances.get(view.id).version)
    wrong = client.post(form_url, data={"csrf_token": csrf, "version": version, "qol_score": "lots"})
    assert wrong.status_code == 422 and "nhsuk-error-summary" in text(wrong)
    done = client.post(form_url, data={"csrf_token": csrf, "version": version, "qol_score": "70"})
    assert done.status_code == 303, text(done)[:400]
    assert engine(app).instances.get(view.id).status == "completed"
    assert client.get(form_url).status_code == 404  # sent: it is no longer there to fill in


def test_a_staff_task_has_no_patient_form_page(app: Flask, signed_in: Any) -> None:
    view = start(app, "MRN-1001")
    client = signed_in("patient")
    url = f"/my/plans/{view.id}/forms/{view.ready_tasks[0]['id']}"
    assert client.get(url).status_code == 404
    response = client.post(
        url,
        data={
            "csrf_token": csrf_of(text(client.get("/my"))),
            "anxiety": "1",
            "fatigue": "1",
            "version": str(view.version),
        },
    )
    assert response.status_code == 404 and engine(app).instances.get(view.id).version == view.version


def test_a_patient_fills_in_the_bundled_needs_checklist_with_the_24_hour_line_first(tmp_path: Path) -> None:
    """The real checklist of the bundled pathways (its form declares the 24-hour line's notice)."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bundled.sqlite3'}",
            "PATHWAYS_DIR": REPO / "pathways",
            "RULES_DIR": REPO / "rules",
            "CLOCK": ManualClock(START),
            "SECRET_KEY": "test-secret-key",
        }
    )
    try:
        carepath = engine(app)
        view = carepath.instances.start(
            "breast_cancer",
            "SYN-0042",
            "system:test",
            {
                "diagnosis": "breast",
                "diagnosis_date": "2026-01-13",
                "age": 50,
                "treatment_intent": "curative",
                "gp_practice": "EXAMPLE-GP-1",
            },
        )

        def do(element: str, data: dict[str, Any]) -> Any:
            task = next(t for t in carepath.instances.get(view.id).ready_tasks if t["element"] == element)
            return carepath.instances.complete_task(view.id, task["id"], data, "clinician:test")

        do("assign_contact", CONTACT)
        do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
        carepath.clock.advance(timedelta(days=7))
        fire_due_timers(carepath.instances, worker_id="test")
        do("offer_hna", {"hna_accepted": True})
        client = app.test_client()
        assert sign_in_with(client, make_token(app, "patient", patient_ref="SYN-0042")).status_code == 303
        [task] = [t for t in carepath.instances.get(view.id).ready_tasks if t["element"] == "complete_checklist"]
        url = f"/my/plans/{view.id}/forms/{task['id']}"
        assert f'href="{url}"' in text(client.get("/my"))
        page = text(client.get(url))
        assert "<h1>Your needs checklist</h1>" in page
        assert page.index('data-test="safety-notice"') < page.index('id="task-form"') and "01632 960100" in page
        version = str(carepath.instances.get(view.id).version)
        sent = client.post(
            url,
            data={
                "csrf_token": csrf_of(page),
                "version": version,
                "concerns.fatigue": "6",
                "about_you.work_status": "retired",
                "what_matters": "My garden",
            },
        )
        assert sent.status_code == 303, text(sent)[:600]
        elements = [t["element"] for t in carepath.instances.get(view.id).ready_tasks]
        assert "complete_checklist" not in elements
        with carepath.sessions() as session:
            [actor] = session.scalars(
                select(InstanceEvent.actor).where(
                    InstanceEvent.instance_id == view.id,
                    InstanceEvent.element == "complete_checklist",
                    InstanceEvent.type == "task_completed",
                )
            )
        assert actor.startswith("patient:tok_") and "SYN-0042" not in actor  # the trail names the token only
    finally:
        app.extensions["carepath"].close()


def test_a_patient_sent_to_a_staff_page_lands_on_their_own(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    csrf = csrf_of(text(client.get("/sign-in?next=/work-list")))
    response = client.post("/sign-in", data={"token": tokens["patient"], "csrf_token": csrf, "next": "/work-list"})
    assert response.status_code == 303 and response.location == "/"
    assert client.get("/").location == "/my"


def test_sign_out_ends_a_copy_of_a_patients_token_session(app: Flask, signed_in: Any) -> None:
    start(app, "MRN-1001")
    client = signed_in("patient")
    thief = copy_of(app, client)
    assert thief.get("/my").status_code == 200
    assert client.post("/sign-out", data={"csrf_token": csrf_of(text(client.get("/my")))}).status_code == 303
    response = thief.get("/my")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def test_a_childs_checklist_gives_the_childs_treatment_centre_line_wherever_it_is_shown(tmp_path: Path) -> None:
    """The children's checklist's safety notice gives the child's 24-hour line (their principal treatment
    centre, EXAMPLE-PTC), as their documents do, never the adult acute oncology line: on the patient's
    form page, the staff task page, and the API's task representations and /v1/me."""
    adult_line, ptc_line = "01632 960100", "01632 960310"  # the bundled example directory's (england)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'child.sqlite3'}",
            "PATHWAYS_DIR": REPO / "pathways",
            "RULES_DIR": REPO / "rules",
            "CLOCK": ManualClock(START),
            "SECRET_KEY": "test-secret-key",
        }
    )
    try:
        carepath = engine(app)
        data = {
            "diagnosis": "hodgkin_lymphoma",
            "diagnosis_date": "2026-01-13",
            "age": 9,
            "treatment_intent": "curative",
        }
        view = carepath.instances.start("children_young_people_cancer", "SYN-0043", "system:test", data)

        def do(element: str, answers: dict[str, Any]) -> Any:
            task = next(t for t in carepath.instances.get(view.id).ready_tasks if t["element"] == element)
            return carepath.instances.complete_task(view.id, task["id"], answers, "clinician:test")

        do("assign_contact", YOUNG_PEOPLE_CONTACT)
        do("parents_take_part", {"participants": ["mother"], "person_with_parental_responsibility_consents": True})
        do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
        carepath.clock.advance(timedelta(days=7))
        fire_due_timers(carepath.instances, worker_id="test")
        do("offer_hna", {"hna_accepted": True})
        [task] = [t for t in carepath.instances.get(view.id).ready_tasks if t["element"] == "complete_checklist_cyp"]

        def notice_of(page: str) -> str:
            start = page.index('data-test="safety-notice"')
            return page[start : page.index("</div>", start)]

        patient = app.test_client()
        assert sign_in_with(patient, make_token(app, "patient", patient_ref="SYN-0043")).status_code == 303
        staff = app.test_client()
        assert sign_in_with(staff, make_token(app, "clinician")).status_code == 303
        pages = {
            "/my form": text(patient.get(f"/my/plans/{view.id}/forms/{task['id']}")),
            "staff task page": text(staff.get(f"/patients/{view.id}/tasks/{task['id']}")),
        }
        for where, page in pages.items():
            assert ptc_line in notice_of(page) and adult_line not in notice_of(page), where
        headers = {"Authorization": f"Bearer {make_token(app, 'clinician')}"}
        mine = {"Authorization": f"Bearer {make_token(app, 'patient', patient_ref='SYN-0043')}"}
        api = app.test_client()
        one = api.get(f"/v1/instances/{view.id}/tasks/{task['id']}", headers=headers).json
        instance = api.get(f"/v1/instances/{view.id}", headers=headers).json
        listed = api.get("/v1/tasks", headers=headers).json["items"]
        me = api.get("/v1/me", headers=mine).json["instances"][0]["forms"]
        forms = {
            "one task": one["form"],
            "instance": next(t["form"] for t in instance["ready_tasks"] if t["id"] == task["id"]),
            "task list": next(t["form"] for t in listed if t["id"] == task["id"]),
            "/v1/me": next(f["form"] for f in me if f["id"] == task["id"]),
        }
        for where, form in forms.items():
            notice = form["x-carepath-safety-notice-text"]
            assert notice["phone"] == ptc_line and ptc_line in notice["text"], (where, notice)
            assert adult_line not in form["description"], where
    finally:
        engine(app).close()


def test_the_patients_pdf_past_the_renderers_limits_is_a_422_and_the_page_still_shows(
    app: Flask, signed_in: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = start(app, "MRN-1001")
    client = signed_in("patient")
    monkeypatch.setattr(PdfLimits, "of", classmethod(lambda cls, settings: cls(seconds=0.05)))
    response = client.get(f"/my/plans/{view.id}/documents/care-plan?format=pdf")
    assert response.status_code == 422 and "MRN-1001" not in text(response)
    assert client.get(f"/my/plans/{view.id}/documents/care-plan").status_code == 200
