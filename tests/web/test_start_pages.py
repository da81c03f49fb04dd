"""Starting a pathway from the web app (api/web/starting.py), on the bundled pathways: a clinician enrols a
newly diagnosed patient in one of their care teams with the pathway's start data, drawn from its start
schema; every problem is shown on its field in the page's language and nothing is started."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from web_helpers import bundled_app, csrf_of, make_token, sign_in_with

from engine import ManualClock
from engine.access import create_token
from engine.db.models import PathwayInstance
from engine.db.session import unit_of_work

START = "/patients/start"
BREAST = {
    "diagnosis": "breast",
    "diagnosis_date": "2026-01-12",
    "age": "52",
    "treatment_intent": "curative",
}


@pytest.fixture
def app(tmp_path: Path, database_templates: Any) -> Iterator[Flask]:
    app = bundled_app(tmp_path, database_templates, ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)))
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


def _client(app: Flask, secret: str, language: str | None = None) -> FlaskClient:
    client = app.test_client()
    assert sign_in_with(client, secret).status_code == 303
    if language:
        client.post("/language", data={"language": language, "csrf_token": _csrf(client), "next": "/patients"})
    return client


def _csrf(client: FlaskClient) -> str:
    return csrf_of(client.get("/work-list").get_data(as_text=True))


def _scoped(app: Flask, teams: list[str]) -> str:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        return create_token(session, "clinician", "nurse", engine.clock, organisation="rx1", teams=teams)[1]


def _instances(app: Flask) -> list[PathwayInstance]:
    with app.extensions["carepath"].sessions() as session:
        return list(session.scalars(select(PathwayInstance).order_by(PathwayInstance.created_at)))


def test_a_clinician_starts_the_breast_pathway_for_a_new_patient(app: Flask) -> None:
    client = _client(app, make_token(app, "clinician"))
    assert 'data-test="start-pathway"' in client.get("/patients").get_data(as_text=True)
    listed = client.get(START).get_data(as_text=True)
    for pathway in ("breast_cancer", "lung_cancer", "prostate_cancer", "children_young_people_cancer"):
        assert f'href="{START}/{pathway}"' in listed, pathway
    form = client.get(f"{START}/breast_cancer").get_data(as_text=True)
    for words in ("Patient reference", "Date of diagnosis", "Age at diagnosis", "Treatment intent"):
        assert words in form, words
    # A site's pathway starts with its diagnosis as the rules name it; the general pathway asks for it.
    assert re.search(r'name="diagnosis"[^>]*value="breast"', form)
    general = client.get(f"{START}/general_cancer").get_data(as_text=True)
    assert re.search(r'name="diagnosis"[^>]*value=""', general)
    done = client.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0001", **BREAST}
    )
    assert done.status_code == 303
    [started] = _instances(app)
    assert done.location == f"/patients/{started.id}"
    assert (started.patient_ref, started.pathway_id, started.status) == ("SYN-START-0001", "breast_cancer", "running")
    view = app.extensions["carepath"].instances.get(started.id)
    assert [t["element"] for t in view.ready_tasks] == ["assign_contact"]
    data = app.extensions["carepath"].instances.instance_data(started.id)
    assert data["age"] == 52 and data["diagnosis_date"] == "2026-01-12"
    page = client.get(done.location).get_data(as_text=True)
    assert "Pathway started for SYN-START-0001" in page


def test_every_problem_is_shown_on_its_field_and_nothing_starts(app: Flask) -> None:
    client = _client(app, make_token(app, "clinician"), language="sv")
    refused = client.post(
        f"{START}/breast_cancer",
        data={
            "csrf_token": _csrf(client),
            "patient_ref": "Anna Andersson",  # a name, not a reference
            "diagnosis_date": "2026-02-30",
            "age": "200",
            "treatment_intent": "maybe",
        },
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    for field in ("patient_ref", "diagnosis_date", "age", "treatment_intent", "diagnosis"):
        assert f'id="f-{field}-error"' in page, field
    assert "Ange patientens referens" in page and "Anna Andersson" in page  # their input kept, to correct
    assert _instances(app) == []


def test_a_diagnosis_after_today_is_shown_on_its_field_and_nothing_starts(app: Flask) -> None:
    """2031 typed for 2021 would have moved every review and the survey years away."""
    client = _client(app, make_token(app, "clinician"), language="sv")
    refused = client.post(
        f"{START}/breast_cancer",
        data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0009", **BREAST, "diagnosis_date": "2031-01-12"},
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="f-diagnosis_date-error"' in page
    assert "Diagnosdatum får inte vara senare än i dag" in page and "2031" not in page.split("<form")[0]
    assert _instances(app) == []


def test_a_patient_who_runs_the_pathway_already_is_not_started_twice(app: Flask) -> None:
    engine = app.extensions["carepath"]
    running = engine.instances.start(
        "breast_cancer", "SYN-START-0002", "system:ehr", {**BREAST, "age": 52}, organisation="rx1", care_team="breast"
    )
    mine = _client(app, _scoped(app, ["breast"]))
    again = mine.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(mine), "patient_ref": "SYN-START-0002", **BREAST}
    )
    page = again.get_data(as_text=True)
    assert again.status_code == 409 and "This patient runs this pathway already" in page
    assert f'href="/patients/{running.id}"' in page
    # Another team's clinician learns it runs, never where.
    other = _client(app, _scoped(app, ["lung"]))
    hidden = other.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(other), "patient_ref": "SYN-START-0002", **BREAST}
    )
    assert hidden.status_code == 409 and running.id not in hidden.get_data(as_text=True)
    assert len(_instances(app)) == 1


def test_a_patient_whose_death_is_recorded_is_refused(app: Flask) -> None:
    engine = app.extensions["carepath"]
    engine.instances.send_message("patient_died", "system:ehr", patient_ref="SYN-START-0003")
    client = _client(app, make_token(app, "clinician"))
    refused = client.post(
        f"{START}/lung_cancer",
        data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0003", **BREAST, "diagnosis": "lung"},
    )
    assert refused.status_code == 409 and "death is recorded" in refused.get_data(as_text=True)
    assert _instances(app) == []


def test_a_clinician_of_several_teams_chooses_one_of_them(app: Flask) -> None:
    client = _client(app, _scoped(app, ["breast", "lung"]))
    form = client.get(f"{START}/lung_cancer").get_data(as_text=True)
    assert 'name="care_team"' in form and '<option value="breast">' in form and '<option value="lung">' in form
    data = {"csrf_token": _csrf(client), "patient_ref": "SYN-START-0004", **BREAST, "diagnosis": "lung"}
    refused = client.post(f"{START}/lung_cancer", data={**data, "care_team": "prostate"})  # not theirs
    assert refused.status_code == 422 and "Choose one of your care teams" in refused.get_data(as_text=True)
    assert _instances(app) == []
    assert client.post(f"{START}/lung_cancer", data={**data, "care_team": "lung"}).status_code == 303
    [started] = _instances(app)
    assert (started.organisation, started.care_team) == ("rx1", "lung")
    # One team: no choice to make, and the instance is in it.
    single = _client(app, _scoped(app, ["breast"]))
    assert 'name="care_team"' not in single.get(f"{START}/breast_cancer").get_data(as_text=True)


@pytest.mark.parametrize("role", ["auditor", "author", "manager", "admin", "patient"])
def test_other_roles_cannot_start(app: Flask, role: str) -> None:
    client = _client(app, make_token(app, role))
    assert client.get(START).status_code == 403
    assert 'data-test="start-pathway"' not in client.get("/patients").get_data(as_text=True)
    refused = client.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0005", **BREAST}
    )
    assert refused.status_code == 403
    with app.extensions["carepath"].sessions() as session:
        assert session.scalar(select(func.count()).select_from(PathwayInstance)) == 0


@pytest.mark.parametrize("pathway", ["no_such_pathway", "bad%20id%3Cb%3E"])
def test_an_unknown_pathway_is_not_found(app: Flask, pathway: str) -> None:
    client = _client(app, make_token(app, "clinician"))
    assert client.get(f"{START}/{pathway}").status_code == 404
    assert client.post(f"{START}/{pathway}", data={"csrf_token": _csrf(client)}).status_code == 404


def test_hostile_values_start_nothing_and_never_fail(app: Flask) -> None:
    client = _client(app, make_token(app, "clinician"))
    for value in ("<b>hostile</b>", "\x00", "x" * 5000, "%ff%fe", "\u202e", "-1", "../../etc"):
        response = client.post(
            f"{START}/breast_cancer",
            data={"csrf_token": _csrf(client), "patient_ref": value, **dict.fromkeys(BREAST, value)},
        )
        assert response.status_code == 422, (value[:20], response.status_code)
        assert "<b>hostile</b>" not in response.get_data(as_text=True)
    assert _instances(app) == []


def test_a_diagnosis_of_another_site_asks_the_clinician_to_check_the_pathway(app: Flask) -> None:
    """Lung cancer on the breast pathway is most likely the wrong pathway chosen from the list: the page says so
    on the diagnosis field and starts nothing, until the clinician ticks that they have checked. A diagnosis
    naming the pathway's own site, none, or two, starts at once."""
    client = _client(app, make_token(app, "clinician"))
    lung = {**BREAST, "diagnosis": "Non-small cell lung cancer"}
    asked = client.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0031", **lung}
    )
    page = asked.get_data(as_text=True)
    assert asked.status_code == 422 and _instances(app) == []
    assert 'id="f-diagnosis-error"' in page
    assert "The diagnosis names lung cancer, and this is the breast cancer pathway" in page
    assert 'name="confirm_other_site"' in page and 'value="lung"' in page
    forged = client.post(
        f"{START}/breast_cancer",
        data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0031", **lung, "confirm_other_site": "prostate"},
    )
    assert forged.status_code == 422 and _instances(app) == []  # a tick for another site is no tick
    checked = client.post(
        f"{START}/breast_cancer",
        data={"csrf_token": _csrf(client), "patient_ref": "SYN-START-0031", **lung, "confirm_other_site": "lung"},
    )
    assert checked.status_code == 303
    # Checked at the start: the trail says so (never the diagnosis), and the patient's page warns of nothing.
    started = app.extensions["carepath.queries"].events(_instances(app)[0].id)[0]
    assert started["type"] == "started" and started["payload"]["pathway_checked"] is True
    assert "lung" not in json.dumps(started).lower()
    assert 'data-test="pathway-check"' not in client.get(checked.headers["Location"]).get_data(as_text=True)
    for n, diagnosis in enumerate(("Invasive ductal carcinoma", "Lung metastases from breast cancer", "C50")):
        done = client.post(
            f"{START}/breast_cancer",
            data={"csrf_token": _csrf(client), "patient_ref": f"SYN-START-004{n}", **BREAST, "diagnosis": diagnosis},
        )
        assert done.status_code == 303, diagnosis
    assert len(_instances(app)) == 4
    swedish = _client(app, make_token(app, "clinician"), language="sv")
    asked_sv = swedish.post(
        f"{START}/breast_cancer", data={"csrf_token": _csrf(swedish), "patient_ref": "SYN-START-0051", **lung}
    )
    assert asked_sv.status_code == 422 and "Diagnosen anger lungcancer" in asked_sv.get_data(as_text=True)
