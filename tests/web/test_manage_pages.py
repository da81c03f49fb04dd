"""Managing a patient's pathway from their page (api/web/lifecycle.py), on the bundled breast pathway: pause,
resume and end it with a reason code, and hand it over to another care team; a page drawn before the pathway
moved on changes nothing, and ending it points to recording a death instead where that is what happened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journeys import SITES, _start
from sqlalchemy import select
from web_helpers import bundled_app, csrf_of, sign_in_with

from engine import ManualClock
from engine.access import create_token
from engine.db.models import InstanceEvent
from engine.db.session import unit_of_work
from engine.pathway_checks import read_again, read_diagnoses


@dataclass
class World:
    app: Flask
    instance_id: str

    @property
    def url(self) -> str:
        return f"/patients/{self.instance_id}"

    def view(self) -> Any:
        return self.app.extensions["carepath"].instances.get(self.instance_id)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.app.extensions["carepath"].sessions() as session:
            rows = session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == self.instance_id, InstanceEvent.type == kind)
                .order_by(InstanceEvent.seq)
            )
            return [json.loads(row.payload) for row in rows]


@pytest.fixture
def world(tmp_path: Path, database_templates: Any) -> Iterator[World]:
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    app = bundled_app(tmp_path, database_templates, clock)
    try:
        engine = app.extensions["carepath"]
        journey = _start(engine, clock, SITES["breast"], "SYN-MAN-0001")
        yield World(app, journey.view.id)
    finally:
        app.extensions["carepath"].close()


def _client(world: World, role: str = "clinician", teams: list[str] | None = None) -> FlaskClient:
    engine = world.app.extensions["carepath"]
    view = world.view()
    with unit_of_work(engine.sessions) as session:
        secret = create_token(
            session,
            role,
            role,
            engine.clock,
            organisation=view.organisation,
            teams=teams if teams is not None else [view.care_team],
        )[1]
    client = world.app.test_client()
    assert sign_in_with(client, secret).status_code == 303
    return client


def _csrf(client: FlaskClient) -> str:
    return csrf_of(client.get("/work-list").get_data(as_text=True))


def _post(client: FlaskClient, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, data={"csrf_token": _csrf(client), **data})


def test_pause_and_resume_with_a_reason(world: World) -> None:
    client = _client(world)
    page = client.get(world.url).get_data(as_text=True)
    assert 'data-test="manage-actions"' in page
    for action in ("suspend", "cancel"):
        assert f'href="{world.url}/{action}"' in page
    assert f'href="{world.url}/resume"' not in page  # it is running
    form = client.get(f"{world.url}/suspend").get_data(as_text=True)
    assert "no timer fires" in form and 'value="treatment_paused"' in form
    version = world.view().version
    missing = _post(client, f"{world.url}/suspend", {"version": version})
    assert missing.status_code == 422 and "Choose a reason" in missing.get_data(as_text=True)
    done = _post(client, f"{world.url}/suspend", {"version": version, "reason": "treatment_paused"})
    assert done.status_code == 303 and world.view().status == "suspended"
    assert world.events("suspended") == [{"reason": "treatment_paused"}]
    page = client.get(world.url).get_data(as_text=True)
    assert "Paused for SYN-MAN-0001." in page and f'href="{world.url}/resume"' in page
    assert f'href="{world.url}/suspend"' not in page
    resumed = _post(client, f"{world.url}/resume", {"version": world.view().version})
    assert resumed.status_code == 303 and world.view().status == "running"


def test_a_page_drawn_before_the_pathway_moved_on_changes_nothing(world: World) -> None:
    client = _client(world)
    stale_version = world.view().version
    world.app.extensions["carepath"].instances.send_message(
        "recurrence_confirmed", "system:ehr", instance_id=world.instance_id
    )
    refused = _post(client, f"{world.url}/cancel", {"version": stale_version, "reason": "started_in_error"})
    assert refused.status_code == 409 and 'data-test="stale"' in refused.get_data(as_text=True)
    assert world.view().status == "running" and world.events("cancelled") == []
    # Resuming a pathway that is not paused: the same answer, nothing changed.
    assert _post(client, f"{world.url}/resume", {"version": world.view().version}).status_code == 409


def test_ending_it_points_to_recording_a_death_and_ends_this_pathway_only(world: World) -> None:
    engine = world.app.extensions["carepath"]
    view = world.view()
    other = engine.instances.start(
        "lung_cancer",
        "SYN-MAN-0001",
        "system:ehr",
        {"diagnosis": "lung", "diagnosis_date": "2026-01-10", "age": 60, "treatment_intent": "curative"},
        organisation=view.organisation,
        care_team=view.care_team,
    )
    client = _client(world)
    form = client.get(f"{world.url}/cancel").get_data(as_text=True)
    assert 'data-test="death-hint"' in form and f'href="{world.url}/record/patient_died"' in form
    hostile = _post(client, f"{world.url}/cancel", {"version": view.version, "reason": "<b>free text</b>"})
    assert hostile.status_code == 422 and "<b>free text</b>" not in hostile.get_data(as_text=True)
    done = _post(client, f"{world.url}/cancel", {"version": view.version, "reason": "started_in_error"})
    assert done.status_code == 303 and world.view().status == "cancelled"
    assert engine.instances.get(other.id).status == "running"
    assert world.events("cancelled") == [{"reason": "started_in_error"}]
    page = client.get(world.url).get_data(as_text=True)
    assert "Ended for SYN-MAN-0001." in page
    assert f'href="{world.url}/cancel"' not in page and f'href="{world.url}/care-team"' in page


def test_a_handover_moves_the_pathway_to_the_new_team(world: World) -> None:
    client = _client(world)
    view = world.view()
    same = _post(
        client, f"{world.url}/care-team", {"version": view.version, "care_team": view.care_team, "reason": "referral"}
    )
    assert same.status_code == 409 and "in this care team already" in same.get_data(as_text=True)
    bad = _post(
        client, f"{world.url}/care-team", {"version": view.version, "care_team": "a team!", "reason": "referral"}
    )
    assert bad.status_code == 422 and "Enter the team" in bad.get_data(as_text=True)
    done = _post(
        client, f"{world.url}/care-team", {"version": view.version, "care_team": "palliative", "reason": "mdt-decision"}
    )
    assert done.status_code == 303 and done.location == "/patients"
    assert world.view().care_team == "palliative"
    assert world.events("care_team_changed") == [{"from": view.care_team, "to": "palliative", "reason": "mdt-decision"}]
    # No longer this clinician's to open; the message names no one it may not see.
    listed = client.get("/patients").get_data(as_text=True)
    assert "Handed over to palliative: this patient." in listed and "SYN-MAN-0001" not in listed
    assert client.get(world.url).status_code == 404
    assert _client(world, teams=["palliative"]).get(world.url).status_code == 200


@pytest.mark.parametrize("role", ["auditor", "author", "manager"])
def test_roles_that_do_not_manage_see_no_action_and_cannot_post(world: World, role: str) -> None:
    client = _client(world, role)
    page = client.get(world.url)
    if page.status_code == 200:
        assert 'data-test="manage-actions"' not in page.get_data(as_text=True)
    for path in ("suspend", "cancel", "care-team"):
        assert client.get(f"{world.url}/{path}").status_code == 403
        refused = _post(client, f"{world.url}/{path}", {"version": world.view().version, "reason": "duplicate"})
        assert refused.status_code == 403
    assert world.view().status == "running"


def test_the_start_data_is_corrected_with_a_reason_and_only_changes_are_sent(world: World) -> None:
    client = _client(world)
    assert f'href="{world.url}/data"' in client.get(world.url).get_data(as_text=True)
    form = client.get(f"{world.url}/data").get_data(as_text=True)
    assert 'name="diagnosis_date"' in form and 'value="2026-01-12"' in form  # the instance's own values
    view = world.view()
    data = {"version": view.version, "diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": "52"}
    data["treatment_intent"] = "curative"
    # What the engine recorded at the start besides (the health system): the form holds it as well.
    recorded = world.app.extensions["carepath"].instances.instance_data(world.instance_id)
    data["health_system"] = recorded["health_system"]
    emptied = _post(client, f"{world.url}/data", {**data, "health_system": "", "reason": "transcription_error"})
    assert emptied.status_code == 422 and "cannot be emptied" in emptied.get_data(as_text=True)
    unchanged = _post(client, f"{world.url}/data", {**data, "reason": "transcription_error"})
    assert unchanged.status_code == 422 and "Change at least one value" in unchanged.get_data(as_text=True)
    no_reason = _post(client, f"{world.url}/data", {**data, "diagnosis_date": "2026-01-02"})
    assert no_reason.status_code == 422 and "Choose a reason" in no_reason.get_data(as_text=True)
    bad = _post(client, f"{world.url}/data", {**data, "age": "300", "reason": "transcription_error"})
    assert bad.status_code == 422 and 'id="f-age-error"' in bad.get_data(as_text=True)
    assert world.events("data_corrected") == []
    done = _post(client, f"{world.url}/data", {**data, "diagnosis_date": "2026-01-02", "reason": "transcription_error"})
    assert done.status_code == 303
    corrected = world.app.extensions["carepath"].instances.instance_data(world.instance_id)
    assert corrected["diagnosis_date"] == "2026-01-02" and corrected["age"] == 52
    [event] = world.events("data_corrected")
    assert event["fields"] == ["diagnosis_date"] and event["reason"] == "transcription_error"
    assert "survey_due" in event["timers_moved"]  # the 18-month survey counts from the corrected date
    assert "2026-01-02" not in json.dumps(event)
    shown = client.get(world.url).get_data(as_text=True)
    assert "Corrected for SYN-MAN-0001." in shown
    assert f"moved with them ({len(event['timers_moved'])})" in shown
    # A page drawn before that correction changes nothing.
    stale = _post(client, f"{world.url}/data", {**data, "age": "53", "reason": "updated_information"})
    assert stale.status_code == 409 and world.events("data_corrected") == [event]


def test_a_diagnosis_of_another_site_is_shown_until_a_clinician_checks_the_pathway(world: World) -> None:
    """A breast pathway whose diagnosis (as an EHR sent it, or corrected) names lung cancer: the patient's
    page warns, with the ways out, until a clinician confirms the pathway; a later correction naming yet
    another site asks again; a page drawn before that correction confirms nothing."""
    engine = world.app.extensions["carepath"]
    client = _client(world)
    assert 'data-test="pathway-check"' not in client.get(world.url).get_data(as_text=True)
    engine.instances.correct_data(
        world.instance_id, {"diagnosis": "Non-small cell lung cancer"}, "updated_information", "clinician:t"
    )
    page = client.get(world.url).get_data(as_text=True)
    assert 'data-test="pathway-check" data-site="lung"' in page
    assert "The diagnosis names lung cancer, and the patient is on the pathway for breast cancer" in page
    assert f'href="{world.url}/data"' in page and f'href="{world.url}/cancel"' in page
    # The work list flags the patient's tasks, and each task's page carries the same warning.
    listed = client.get("/work-list").get_data(as_text=True)
    assert listed.count('data-test="check-pathway"') == len(world.view().ready_tasks) > 0
    flagged = client.get("/patients?check=pending").get_data(as_text=True)
    assert flagged.count('data-test="check-pathway"') == 1 and "SYN-MAN-0001" in flagged
    # While the diagnoses of pathways started before the check are being read, the list says it may grow.
    assert 'data-test="diagnoses-unread"' not in flagged
    read_again(engine)
    assert "still being read against their diagnoses" in client.get("/patients?check=pending").get_data(as_text=True)
    assert 'data-test="diagnoses-unread"' not in client.get("/patients").get_data(as_text=True)  # not filtered
    assert read_diagnoses(engine).done
    assert 'data-test="diagnoses-unread"' not in client.get("/patients?check=pending").get_data(as_text=True)
    task = world.view().ready_tasks[0]["id"]
    task_page = client.get(f"{world.url}/tasks/{task}").get_data(as_text=True)
    assert 'data-test="pathway-check" data-site="lung"' in task_page
    drawn_at = world.view().version
    done = _post(client, f"{world.url}/pathway-check", {"version": drawn_at, "site": "lung"})
    assert done.status_code == 303
    shown = client.get(world.url).get_data(as_text=True)
    assert "Pathway confirmed for SYN-MAN-0001." in shown and 'data-test="pathway-check"' not in shown
    assert world.events("pathway_checked") == [{}]  # who and when, in the event; never the diagnosis
    assert "Pathway checked against the diagnosis" in shown  # the timeline names it
    assert 'data-test="check-pathway"' not in client.get("/work-list").get_data(as_text=True)
    assert "SYN-MAN-0001" not in client.get("/patients?check=pending").get_data(as_text=True)
    engine.instances.correct_data(
        world.instance_id, {"diagnosis": "Carcinoma of the prostate"}, "updated_information", "clinician:t"
    )
    assert 'data-site="prostate"' in client.get(world.url).get_data(as_text=True)
    stale = _post(client, f"{world.url}/pathway-check", {"version": drawn_at, "site": "lung"})
    assert stale.status_code == 303 and len(world.events("pathway_checked")) == 1
    again = client.get(world.url).get_data(as_text=True)
    assert "changed since you opened the page" in again and 'data-site="prostate"' in again
    engine.instances.correct_data(world.instance_id, {"diagnosis": "breast"}, "transcription_error", "clinician:t")
    assert 'data-test="pathway-check"' not in client.get(world.url).get_data(as_text=True)


def test_a_role_that_does_not_correct_sees_the_warning_without_the_confirmation(world: World) -> None:
    engine = world.app.extensions["carepath"]
    engine.instances.correct_data(world.instance_id, {"diagnosis": "C34"}, "updated_information", "clinician:t")
    client = _client(world, role="auditor")
    page = client.get(world.url)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-test="pathway-check"' in text and 'data-test="confirm-pathway"' not in text
    refused = _post(client, f"{world.url}/pathway-check", {"version": world.view().version, "site": "lung"})
    assert refused.status_code == 403 and world.events("pathway_checked") == []
