"""Recording what happened to a patient on their page (api/web/recording.py), on the bundled breast pathway: a
clinician of the care team records a warning sign phoned in, a change of treatment, a request for a needs
assessment or a death, and the pathway moves on as it does when the EHR sends the message. Bad input is
refused in the page's language with nothing recorded; the page offers only what the pathway waits for now."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journey import Journey
from pathways_bundled.journeys import SITES, _start
from sqlalchemy import select
from web_helpers import bundled_app, csrf_of, make_token, sign_in_with

from api.web import recording
from engine import ManualClock
from engine.access import create_token
from engine.careplan.patient_status import TREATMENT_STATUS_FIELDS, treatment_status
from engine.db.models import AccessRecord, InstanceEvent
from engine.db.session import unit_of_work

PATIENT = "SYN-REC-0001"


@dataclass
class World:
    app: Flask
    patient: Journey  # breast, named contact assigned: waiting for warning signs, a recurrence, a death...

    @property
    def url(self) -> str:
        return f"/patients/{self.patient.view.id}"

    def reload(self) -> Any:
        return self.app.extensions["carepath"].instances.get(self.patient.view.id)


@pytest.fixture
def world(tmp_path: Path, database_templates: Any) -> Iterator[World]:
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    app = bundled_app(tmp_path, database_templates, clock)
    try:
        yield World(app, _start(app.extensions["carepath"], clock, SITES["breast"], PATIENT))
    finally:
        app.extensions["carepath"].close()


def _signed_in(app: Flask, role: str = "clinician", language: str | None = None) -> FlaskClient:
    client = app.test_client()
    assert sign_in_with(client, make_token(app, role, PATIENT)).status_code == 303
    if language:
        client.post("/language", data={"language": language, "csrf_token": _csrf(client), "next": "/work-list"})
    return client


def _csrf(client: FlaskClient) -> str:
    return csrf_of(client.get("/work-list").get_data(as_text=True))


def _post(client: FlaskClient, world: World, message: str, data: dict[str, Any]) -> Any:
    return client.post(f"{world.url}/record/{message}", data={"csrf_token": _csrf(client), **data})


def _received(world: World) -> list[InstanceEvent]:
    engine = world.app.extensions["carepath"]
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == world.patient.view.id, InstanceEvent.type == "message_received")
                .order_by(InstanceEvent.seq)
            )
        )


def test_the_patient_page_offers_what_the_pathway_waits_for(world: World) -> None:
    page = _signed_in(world.app).get(world.url).get_data(as_text=True)
    assert 'data-test="record-events"' in page and "Record what has happened" in page
    for message, words in (
        ("warning_sign_reported", "Warning sign reported"),
        ("treatment_status_changed", "Treatment status changed"),
        ("named_contact_changed", "Named contact changed"),
        ("recurrence_confirmed", "Recurrence confirmed"),
        ("patient_died", "Patient died"),
    ):
        assert f'href="{world.url}/record/{message}">{words}</a>' in page, message
    # Not before a recurrence: the end of its treatment.
    assert "recurrence_treatment_completed" not in page
    swedish = _signed_in(world.app, language="sv").get(world.url).get_data(as_text=True)
    assert "Registrera vad som har hänt" in swedish and ">Patienten har avlidit</a>" in swedish
    # An auditor reads the page but records nothing: no section, and the form is refused.
    auditor = _signed_in(world.app, "auditor")
    assert 'data-test="record-events"' not in auditor.get(world.url).get_data(as_text=True)
    assert auditor.get(f"{world.url}/record/patient_died").status_code == 403
    assert _signed_in(world.app, "author").get(f"{world.url}/record/patient_died").status_code == 403


def test_a_warning_sign_phoned_in_starts_triage_and_the_trail_names_the_clinician(world: World) -> None:
    client = _signed_in(world.app)
    form = client.get(f"{world.url}/record/warning_sign_reported").get_data(as_text=True)
    assert "Record: Warning sign reported" in form and 'name="warning_sign"' in form
    assert 'value="other"' in form and "follow your emergency procedure first" in form
    done = _post(
        client, world, "warning_sign_reported", {"warning_sign": "fever_on_treatment", "description": "38.4 last night"}
    )
    assert done.status_code == 303 and done.location == world.url
    assert "triage" in [t["element"] for t in world.reload().ready_tasks]
    page = client.get(world.url).get_data(as_text=True)
    assert f"Recorded for {PATIENT}: Warning sign reported." in page
    [event] = _received(world)
    assert event.actor.startswith("clinician:tok_")  # the clinician's token, never the EHR's
    assert json.loads(event.payload)["message"] == "warning_sign_reported" and "38.4" not in event.payload


@pytest.mark.parametrize(
    "data,field,words",
    [
        ({}, "warning_sign", "Choose what the patient noticed"),
        ({"warning_sign": "not_a_sign"}, "warning_sign", "Choose one of the options"),
        (
            {"warning_sign": "fever_on_treatment", "description": "x" * 2001},
            "description",
            "Write at most 2000 characters",
        ),
    ],
)
def test_a_bad_warning_sign_report_is_refused_and_nothing_is_recorded(
    world: World, data: dict[str, str], field: str, words: str
) -> None:
    version = world.reload().version
    refused = _post(_signed_in(world.app), world, "warning_sign_reported", data)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and f'href="#f-{field}">{words}</a>' in page
    assert world.reload().version == version and _received(world) == []


def test_a_date_of_today_in_any_time_zone_is_not_the_future(world: World) -> None:
    """At 22:30 UTC it is already tomorrow in Stockholm: the nurse's "today" is accepted there too."""
    world.app.extensions["carepath"].clock.advance(timedelta(hours=13, minutes=30))
    done = _post(_signed_in(world.app), world, "treatment_status_changed", {"last_sact_date": "2026-01-16"})
    assert done.status_code == 303


def test_the_treatment_status_is_recorded_for_the_safety_rules(world: World) -> None:
    client = _signed_in(world.app, language="sv")
    future = _post(client, world, "treatment_status_changed", {"on_sact": "true", "last_sact_date": "2026-02-01"})
    assert future.status_code == 422 and "Datumet kan inte vara i framtiden" in future.get_data(as_text=True)
    assert _received(world) == []
    done = _post(
        client,
        world,
        "treatment_status_changed",
        {"on_sact": "true", "last_sact_date": "2026-01-14", "smoking_status": "never", "on_immunotherapy": ""},
    )
    assert done.status_code == 303
    record = world.app.extensions["carepath"].instances.instance_data(world.patient.view.id)["patient_status_record"]
    assert record["on_sact"] is True and record["last_sact_date"] == "2026-01-14"
    assert record["smoking_status"] == "never" and record.get("on_immunotherapy") is None
    page = client.get(world.url).get_data(as_text=True)
    assert "Registrerat för SYN-REC-0001: Behandlingsstatus ändrad." in page
    # The patient page shows what is recorded now, in the page's language.
    shown = {
        name: re.search(rf'data-field="{name}">.*?<dd[^>]*>(.*?)</dd>', page, re.S).group(1)  # type: ignore[union-attr]
        for name in TREATMENT_STATUS_FIELDS
    }
    assert shown == {
        "on_sact": "Ja",
        "last_sact_date": "2026-01-14",
        "on_immunotherapy": "Inte registrerat",
        "last_immunotherapy_date": "Inte registrerat",
        "smoking_status": "Har aldrig rökt",
    }


def test_the_treatment_status_shown_is_only_what_its_checks_allow() -> None:
    record = {"on_sact": "yes", "last_sact_date": "2026-13-40", "on_immunotherapy": False, "smoking_status": "never"}
    assert treatment_status({"patient_status_record": record}) == {
        "on_sact": None,  # edited by hand: not shown as what it says
        "last_sact_date": None,
        "on_immunotherapy": False,
        "last_immunotherapy_date": None,
        "smoking_status": "never",
    }
    assert treatment_status({"patient_status_record": "not a record"}) == dict.fromkeys(TREATMENT_STATUS_FIELDS)


def test_a_needs_assessment_asked_for_by_the_gp_starts_one(world: World) -> None:
    client = _signed_in(world.app)
    assert _post(client, world, "reassessment_requested", {}).status_code == 422
    assert _post(client, world, "reassessment_requested", {"asked_by": "gp"}).status_code == 303
    engine = world.app.extensions["carepath"]
    with engine.sessions() as session:
        started = session.scalars(
            select(InstanceEvent).where(
                InstanceEvent.instance_id == world.patient.view.id, InstanceEvent.type == "reassessment_started"
            )
        ).one()
    assert json.loads(started.payload)["asked_by"] == "gp"


def test_a_death_needs_its_confirmation_and_ends_every_pathway_of_the_patient(world: World) -> None:
    engine = world.app.extensions["carepath"]
    other = engine.instances.start(
        "lung_cancer",
        PATIENT,
        "system:test",
        {"diagnosis": "lung", "diagnosis_date": "2026-01-10", "age": 60, "treatment_intent": "curative"},
    )
    client = _signed_in(world.app)
    form = client.get(f"{world.url}/record/patient_died").get_data(as_text=True)
    assert 'data-test="death-warning"' in form and f"I confirm that {PATIENT} has died" in form
    unconfirmed = _post(client, world, "patient_died", {"date_of_death": "2026-01-14"})
    assert unconfirmed.status_code == 422 and "Tick the box to confirm" in unconfirmed.get_data(as_text=True)
    assert world.reload().status == "running"
    done = _post(client, world, "patient_died", {"date_of_death": "2026-01-14", "confirmed": "yes"})
    assert done.status_code == 303
    # Both were waiting for it: each ends at its own end event for a death.
    assert world.reload().status == "completed" and engine.instances.get(other.id).status == "completed"
    # Nothing is waiting any more: the page offers nothing, and the form says so.
    assert 'data-test="record-events"' not in client.get(world.url).get_data(as_text=True)
    again = client.get(f"{world.url}/record/patient_died")
    assert again.status_code == 409 and 'data-test="not-waiting"' in again.get_data(as_text=True)
    assert _post(client, world, "patient_died", {"confirmed": "yes"}).status_code == 409


@pytest.mark.parametrize("message", ["recurrence_treatment_completed", "no_such_message", "bad%20name%3Cscript%3E"])
def test_a_message_the_pathway_does_not_wait_for_is_not_recorded(world: World, message: str) -> None:
    client = _signed_in(world.app)
    shown = client.get(f"{world.url}/record/{message}")
    assert shown.status_code == 409 and 'id="record-form"' not in shown.get_data(as_text=True)
    assert "<script>" not in shown.get_data(as_text=True)
    assert _post(client, world, message, {}).status_code == 409 and _received(world) == []


def test_a_message_without_details_is_recorded_with_one_button(world: World) -> None:
    client = _signed_in(world.app)
    form = client.get(f"{world.url}/record/recurrence_confirmed").get_data(as_text=True)
    assert "A holistic needs assessment on recurrence follows." in form and 'data-test="record"' in form
    assert _post(client, world, "recurrence_confirmed", {}).status_code == 303
    assert [json.loads(e.payload)["message"] for e in _received(world)] == ["recurrence_confirmed"]
    world.patient.view = world.reload()
    assert "offer_hna" in world.patient.ready  # the needs assessment on recurrence first
    assert "recurrence_treatment_completed" not in client.get(world.url).get_data(as_text=True)
    world.patient.hna_declined()  # then the pathway waits for the end of the recurrence's treatment
    assert f'href="{world.url}/record/recurrence_treatment_completed"' in client.get(world.url).get_data(as_text=True)


def test_a_value_the_pathway_refuses_is_shown_and_nothing_is_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The page's own check let through an answer the pathway does not take (a form out of step with it):
    # the engine refuses it, the page says so on the field, and nothing is recorded.
    loose = recording.Field("asked_by", "choice", ("patient", "carer", "gp", "neighbour"), required=True)
    monkeypatch.setitem(recording.FORMS, "reassessment_requested", (loose,))
    version = world.reload().version
    refused = _post(_signed_in(world.app), world, "reassessment_requested", {"asked_by": "neighbour"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "The pathway did not accept this value." in page
    assert world.reload().version == version and _received(world) == []


def test_a_post_without_the_csrf_token_records_nothing(world: World) -> None:
    client = _signed_in(world.app)
    refused = client.post(f"{world.url}/record/patient_died", data={"confirmed": "yes"})
    assert refused.status_code == 400 and world.reload().status == "running"


def test_break_glass_reads_the_form_but_records_nothing(world: World) -> None:
    engine = world.app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, "clinician", "lung nurse", engine.clock, organisation="rx1", teams=["lung"])
    lung = engine.instances.start(
        "lung_cancer",
        "SYN-REC-0002",
        "system:test",
        {"diagnosis": "lung", "diagnosis_date": "2026-01-10", "age": 60, "treatment_intent": "curative"},
        organisation="rx1",
        care_team="breast",
    )
    client = world.app.test_client()
    assert sign_in_with(client, secret).status_code == 303
    url = f"/patients/{lung.id}"
    assert client.get(f"{url}/record/patient_died").status_code == 404  # another team's: as if not there
    opened = client.post(
        "/patients/break-glass", data={"csrf_token": _csrf(client), "instance_id": lung.id, "reason": "cross-cover"}
    )
    assert opened.status_code == 303
    assert 'data-test="record-events"' not in client.get(url).get_data(as_text=True)
    form = client.get(f"{url}/record/patient_died").get_data(as_text=True)
    assert 'data-test="read-only"' in form and 'id="record-form"' not in form
    refused = client.post(f"{url}/record/patient_died", data={"csrf_token": _csrf(client), "confirmed": "yes"})
    assert refused.status_code in (400, 404) and engine.instances.get(lung.id).status == "running"


def test_hostile_values_in_every_field_are_refused_without_a_server_error(world: World) -> None:
    client = _signed_in(world.app)
    mark = "<b>hostile</b>"
    for message, fields in recording.FORMS.items():
        for value in (mark, "\x00", "x" * 5000, "2026-02-30", "%ff%fe", "\u202e", "true"):
            data = {field.name: value for field in fields if field.kind != "confirm"}
            response = _post(client, world, message, data)
            assert response.status_code == 422, (message, value[:20], response.status_code)
            assert mark not in response.get_data(as_text=True)
    assert _received(world) == [] and world.reload().status == "running"


def test_a_death_is_recorded_for_a_paused_pathway_too(world: World) -> None:
    engine = world.app.extensions["carepath"]
    engine.instances.suspend(world.patient.view.id, "clinician:test", "treatment_paused")
    client = _signed_in(world.app)
    page = client.get(world.url).get_data(as_text=True)
    # Paused, it takes no message, but a death is a fact about the patient: it is offered all the same.
    assert f'href="{world.url}/record/patient_died"' in page and "/record/warning_sign_reported" not in page
    assert client.get(f"{world.url}/record/warning_sign_reported").status_code == 409
    done = _post(client, world, "patient_died", {"date_of_death": "2026-01-14", "confirmed": "yes"})
    assert done.status_code == 303 and world.reload().status == "cancelled"
    with engine.sessions() as session:
        [cancelled] = session.scalars(
            select(InstanceEvent).where(
                InstanceEvent.instance_id == world.patient.view.id, InstanceEvent.type == "cancelled"
            )
        )
    assert json.loads(cancelled.payload)["reason"] == "patient_died"
    # Ended: nothing more to record.
    assert "/record/" not in client.get(world.url).get_data(as_text=True)


def test_the_triage_task_page_shows_the_recorded_treatment_status(world: World) -> None:
    client = _signed_in(world.app)
    status = {"on_sact": "true", "last_sact_date": "2026-01-13", "csrf_token": _csrf(client)}
    assert client.post(f"{world.url}/record/treatment_status_changed", data=status).status_code == 303
    assert _post(client, world, "warning_sign_reported", {"warning_sign": "fever_on_treatment"}).status_code == 303
    tasks = world.reload().ready_tasks
    triage = next(t for t in tasks if t["element"] == "triage")
    page = client.get(f"{world.url}/tasks/{triage['id']}").get_data(as_text=True)
    assert 'data-test="treatment-status"' in page
    assert re.search(r'data-field="on_sact">.*?<dd[^>]*>Yes</dd>', page, re.S)
    assert re.search(r'data-field="last_sact_date">.*?<dd[^>]*>2026-01-13</dd>', page, re.S)
    # A task that does not ask about treatment does not show it.
    other = next(t for t in tasks if t["element"] != "triage")
    assert 'data-test="treatment-status"' not in client.get(f"{world.url}/tasks/{other['id']}").get_data(as_text=True)


def test_what_was_done_is_listed_by_name_not_by_the_diagrams_ids(world: World) -> None:
    """The patient page's list in words: tasks whose history compaction removed are named from the diagrams
    (not 'complete_checklist'), and unnamed gateways and events are left out of what was done."""
    client = _signed_in(world.app)
    page = client.get(world.url).get_data(as_text=True)
    words = page[page.index('data-test="where-list"') :]
    words = words[: words.index("</ul>")]
    done = re.search(r"<strong>Done</strong>: (.*?)</li>", words, re.S)
    assert done, words
    assert "Assign the named contact" in done.group(1)
    assert not re.findall(r"\b[a-z0-9]+_[a-z0-9_]+\b", done.group(1)), done.group(1)  # no bare element id


def test_the_triage_page_shows_what_the_patient_reported_and_the_form_cannot_change_it(world: World) -> None:
    """The form's read-only report is what the 24-hour line triages from: shown as read, in the
    author's order with the rest of the form, never an input; a posted copy of it is ignored."""
    client = _signed_in(world.app)
    sent = {"warning_sign": "fever_on_treatment", "description": "38.4 last night"}
    assert _post(client, world, "warning_sign_reported", sent).status_code == 303
    triage = next(t for t in world.reload().ready_tasks if t["element"] == "triage")
    page = client.get(f"{world.url}/tasks/{triage['id']}").get_data(as_text=True)
    held = page[page.index('data-test="held-report"') :]
    held = held[: held.index("</dl>")]
    assert "What the patient reported" in held and 'name="report' not in page
    assert re.search(r"In the patient(&#39;|')s words</dt><dd[^>]*>38.4 last night</dd>", held)
    # The urgency in the catalogue's words, as the patient was told it (the form names its choices).
    assert re.search(r"Urgency of the sign</dt><dd[^>]*>Emergency: act now, day or night</dd>", held)
    assert re.search(r'for="f-triage_rating-2">Amber: a review within 24 hours</label>', page)
    assert re.search(r"A sign of the catalogue</dt><dd[^>]*>Yes</dd>", held)
    assert re.search(r"Catalogue version</dt><dd[^>]*><code>[0-9a-f]{12}</code></dd>", held)
    assert re.search(r"Escalated if not triaged within</dt><dd[^>]*>[0-9]+ (minutes|hours?)</dd>", held)
    # The author's order: the report, then the rating, then the advice (not the alphabet's).
    order = [page.index(mark) for mark in ('data-test="held-report"', 'name="triage_rating"', 'name="advice_given"')]
    assert order == sorted(order)
    answer = {"triage_rating": "amber", "report.description": "nothing", "report.urgency": "soon", "version": ""}
    answer["version"] = str(world.reload().version)
    done = client.post(f"{world.url}/tasks/{triage['id']}", data={**answer, "csrf_token": _csrf(client)})
    assert done.status_code == 303
    data = world.app.extensions["carepath"].instances.instance_data(world.patient.view.id)
    assert data["report"]["description"] == "38.4 last night" and data["report"]["urgency"] == "emergency"


def test_the_problem_as_triaged_is_chosen_from_the_patients_warning_signs_by_name(world: World) -> None:
    """The nurse reclassifying a report chose nothing: she typed a catalogue code from memory. The page
    now offers the patient's own signs by name (most urgent first), and a code outside them is refused."""
    client = _signed_in(world.app)
    sent = {"warning_sign": "other", "description": "Swollen, painful left calf"}
    assert _post(client, world, "warning_sign_reported", sent).status_code == 303
    triage = next(t for t in world.reload().ready_tasks if t["element"] == "triage")
    url = f"{world.url}/tasks/{triage['id']}"
    page = client.get(url).get_data(as_text=True)
    chosen = page[page.index('name="warning_sign"') :]
    chosen = chosen[: chosen.index("</select>")]
    assert '<option value="blood_clot_signs">A leg or arm that is swollen, painful, red or warm' in chosen
    assert chosen.index("(Emergency: act now") < chosen.index("(Same day)") < chosen.index("(Within a few days)")
    assert "catalogue code" not in page.split('name="warning_sign"')[0][-400:]
    wrong = {"triage_rating": "red", "warning_sign": "not_a_sign", "version": str(world.reload().version)}
    refused = client.post(url, data={**wrong, "csrf_token": _csrf(client)})
    assert refused.status_code == 422 and world.reload().ready_tasks
    right = {**wrong, "warning_sign": "blood_clot_signs"}
    assert client.post(url, data={**right, "csrf_token": _csrf(client)}).status_code == 303
    data = world.app.extensions["carepath"].instances.instance_data(world.patient.view.id)
    assert data["warning_sign"] == "blood_clot_signs" and data["triage_rating"] == "red"


def test_a_form_answered_with_its_problems_is_a_look_and_a_redirect_is_not(world: World) -> None:
    client = _signed_in(world.app)
    engine = world.app.extensions["carepath"]

    def posts() -> list[tuple[str, int, str]]:
        with engine.sessions() as session:
            rows = session.scalars(select(AccessRecord).where(AccessRecord.route.like("POST %")))
            return [(r.instance_id, r.status, r.action) for r in rows]

    assert _post(client, world, "warning_sign_reported", {}).status_code == 422  # the page names the patient
    assert posts() == [(world.patient.view.id, 422, "messages.send")]
    assert _post(client, world, "recurrence_confirmed", {}).status_code == 303  # recorded in the trail instead
    assert posts() == [(world.patient.view.id, 422, "messages.send")]
