"""The needs checklist's safety notice over the API: every reply carrying the checklist's form carries the
24-hour line's message with the patient's number and hours (their instance's health system, else the
deployment's; a child's treatment centre's), in the reader's language (issue 13 point 5).

The test pathway's checklist (tests/pathways/forms/hna_small.json) declares the notice as the bundled
one does; the directory is a copy of the bundled example with this test's own numbers, rewritten in the
middle of a test to show the number comes from the file, not from a copy kept anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from helpers import CARE_PLAN_PATHWAY
from sqlalchemy import update

from api import create_app
from engine import ManualClock
from engine.db.models import PathwayInstance
from engine.settings import bundled_service_directory

TESTS = Path(__file__).resolve().parent.parent
NOTICE, TEXT = "x-carepath-safety-notice", "x-carepath-safety-notice-text"
ENGLAND, SWEDEN, MOVED = "01632 960177", "08-465 004 77", "+44 1632 960 188"
# The bundled example directory's children's cancer centres (each section has one): a child's 24-hour line.
PTC_ENGLAND, PTC_SWEDEN = "01632 960310", "031-390 06 00"


def _write(path: Path, england: str, sweden: str) -> None:
    data = yaml.safe_load(bundled_service_directory().read_text(encoding="utf-8"))
    data["england"]["twenty_four_hour_line"]["phone"] = england
    data["sweden"]["twenty_four_hour_line"]["phone"] = sweden
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "service_directory.yaml"
    _write(path, ENGLAND, SWEDEN)
    return path


@pytest.fixture
def client(app: Flask, deployed_database_url: str, clock: ManualClock, directory: Path) -> Iterator[Any]:
    """A second app on the same database (so the tokens of ``auth`` work), reading this test's directory,
    with the contract-checking client of the usual one."""
    ours = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": deployed_database_url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            "SERVICE_DIRECTORY": str(directory),
        }
    )
    ours.test_client_class = app.test_client_class
    try:
        yield ours.test_client()
    finally:
        ours.extensions["carepath"].close()


def _start(client: Any, auth: Any, data: dict[str, Any] | None = None, **headers: str) -> Any:
    response = client.post(
        "/v1/instances",
        json={"pathway_id": CARE_PLAN_PATHWAY, "patient_ref": "MRN-5005", "data": data or {"age": 54}},
        headers=auth("system", **headers),
    )
    assert response.status_code == 201, response.json
    return response


def _checklist(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    form: dict[str, Any] = next(t["form"] for t in tasks if t["form"] and NOTICE in t["form"])
    return form


def _replies(client: Any, auth: Any, instance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The checklist's form in each reply that carries it: the start, the instance, the task list, the task."""
    task_id = instance["ready_tasks"][0]["id"]
    return {
        "start": _checklist(instance["ready_tasks"]),
        "instance": _checklist(
            client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician")).json["ready_tasks"]
        ),
        "task list": _checklist(client.get("/v1/tasks", headers=auth("clinician")).json["items"]),
        "task": client.get(f"/v1/instances/{instance['id']}/tasks/{task_id}", headers=auth("clinician")).json["form"],
    }


def test_every_reply_with_the_checklist_carries_the_directorys_number(client: Any, auth: Any) -> None:
    started = _start(client, auth)
    replies = _replies(client, auth, started.json)
    for reply, form in replies.items():
        notice = form[TEXT]
        assert notice["phone"] == ENGLAND and notice["language"] == "en", reply
        assert notice["hours_label"] == "24 hours a day, every day", reply
        assert ENGLAND in notice["text"] and "call the 24-hour line now" in notice["text"], reply
        assert "{" not in notice["text"] and "care plan" not in notice["text"], reply  # filled, no pointer
        assert form["description"].startswith(notice["text"]), reply  # shown by any JSON Schema form renderer
        assert form["description"].endswith("Score each concern from 0 (no concern) to 10 (worst)."), reply
    assert started.headers["Vary"] == "Accept-Language"


def test_the_notice_is_swedish_with_the_deployments_line_for_a_swedish_reader(client: Any, auth: Any) -> None:
    # The reader's language picks the words, never the number: the deployment's (the directory's first
    # section here, England's), not Sweden's line for whoever reads Swedish.
    instance = _start(client, auth, **{"Accept-Language": "sv-SE"}).json
    notice = _checklist(instance["ready_tasks"])[TEXT]
    assert (notice["language"], notice["phone"], notice["hours_label"]) == ("sv", ENGLAND, "Dygnet runt, alla dagar")
    assert notice["text"].startswith("Om du får feber") and ENGLAND in notice["text"]
    assert SWEDEN not in notice["text"]
    items = client.get("/v1/tasks", headers=auth("clinician", **{"Accept-Language": "de, sv;q=0.5"})).json["items"]
    assert _checklist(items)[TEXT]["phone"] == ENGLAND
    assert (
        _checklist(client.get("/v1/tasks", headers=auth("clinician", **{"Accept-Language": "de"})).json["items"])[TEXT][
            "language"
        ]
        == "en"
    )


def test_every_reply_gives_the_line_of_the_instances_own_health_system(client: Any, auth: Any) -> None:
    # The deployment names no section (the directory's first, England's, for pages with no patient); the
    # patient's instance records Sweden: every reply about their task gives Sweden's line, in English words.
    instance = _start(client, auth, {"age": 54, "health_system": "sweden"}).json
    for reply, form in _replies(client, auth, instance).items():
        notice = form[TEXT]
        assert (notice["phone"], notice["language"]) == (SWEDEN, "en"), reply
        assert SWEDEN in notice["text"] and ENGLAND not in form["description"], reply


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"age": 9, "diagnosis": "children_young_people"}, PTC_ENGLAND),
        ({"age": 9, "diagnosis": "children_young_people", "health_system": "sweden"}, PTC_SWEDEN),
    ],
)
def test_a_childs_checklist_gives_the_childs_treatment_centre_line(
    client: Any, auth: Any, data: dict[str, Any], line: str
) -> None:
    # A child (decided as their documents decide it: here by the diagnosis) calls their principal treatment
    # centre, answered at all hours, never the adult 24-hour line: in every reply carrying the form.
    instance = _start(client, auth, data).json
    for reply, form in _replies(client, auth, instance).items():
        notice = form[TEXT]
        assert notice["phone"] == line and line in notice["text"], (reply, notice)
        assert ENGLAND not in form["description"] and SWEDEN not in form["description"], reply


def test_a_new_number_in_the_directory_is_shown_at_once(client: Any, auth: Any, directory: Path) -> None:
    instance = _start(client, auth).json
    assert _checklist(instance["ready_tasks"])[TEXT]["phone"] == ENGLAND
    _write(directory, MOVED, SWEDEN)  # the deployment changes its 24-hour line
    found = client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician")).json
    notice = _checklist(found["ready_tasks"])[TEXT]
    assert notice["phone"] == MOVED and MOVED in notice["text"] and ENGLAND not in notice["text"]


def test_forms_without_a_notice_are_untouched(client: Any, auth: Any) -> None:
    instance = client.post(
        "/v1/instances", json={"pathway_id": "test_assessment", "patient_ref": "MRN-5006"}, headers=auth("system")
    ).json
    form = instance["ready_tasks"][0]["form"]
    assert TEXT not in form and NOTICE not in form


def _instance_reads(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the instances whose workflow is read (restored, or taken from the cache) from now on."""
    service = client.application.extensions["carepath"].instances
    read: list[str] = []
    real = service.read

    def spy(session: Any, instance_id: str) -> Any:
        read.append(instance_id)
        return real(session, instance_id)

    monkeypatch.setattr(service, "read", spy)
    return read


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"age": 54}, ENGLAND),
        ({"age": 54, "health_system": "sweden"}, SWEDEN),
        ({"age": 54, "local_hospital": "EXEMPELSJUKHUSET"}, SWEDEN),  # the one section knowing the hospital
        ({"age": 9, "diagnosis": "children_young_people"}, PTC_ENGLAND),
        ({"age": 9, "diagnosis": "children_young_people", "health_system": "sweden"}, PTC_SWEDEN),
    ],
)
def test_the_task_list_fills_each_checklist_from_its_row_without_restoring_the_instance(
    client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any], line: str
) -> None:
    # Issue 19: no workflow state is fetched for a list. The row keeps what the line is chosen by, so the
    # list gives each patient's own line (an adult's, a Swedish patient's, a child's treatment centre's)
    # and no instance read.
    _start(client, auth, data)
    read = _instance_reads(client, monkeypatch)
    response = client.get("/v1/tasks", headers=auth("clinician"))
    assert response.status_code == 200, response.json
    notice = _checklist(response.json["items"])[TEXT]
    assert notice["phone"] == line and line in notice["text"], notice
    assert read == []


def test_a_row_saved_before_it_kept_the_lines_inputs_is_read_and_still_gets_its_own_line(
    client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row from before migration 0030 keeps nothing (NULL): the list reads that instance, as before, and
    # gives the same line. Here the deployment's section is England's and the child's instance Sweden's.
    instance = _start(client, auth, {"age": 9, "diagnosis": "children_young_people", "health_system": "sweden"}).json
    carepath = client.application.extensions["carepath"]
    with carepath.sessions.begin() as session:
        session.execute(
            update(PathwayInstance).where(PathwayInstance.id == instance["id"]).values(notice_contacts=None)
        )
    read = _instance_reads(client, monkeypatch)
    notice = _checklist(client.get("/v1/tasks", headers=auth("clinician")).json["items"])[TEXT]
    assert notice["phone"] == PTC_SWEDEN
    assert read == [instance["id"]]


def test_a_corrected_health_system_moves_the_listed_line(client: Any, auth: Any) -> None:
    # The row's kept values follow a correction of the data: the list gives the corrected section's line.
    instance = _start(client, auth).json
    assert _checklist(client.get("/v1/tasks", headers=auth("clinician")).json["items"])[TEXT]["phone"] == ENGLAND
    corrected = client.patch(
        f"/v1/instances/{instance['id']}/data",
        json={"data": {"health_system": "sweden"}, "reason": "entered_in_error"},
        headers=auth("clinician", **{"If-Match": f'"{instance["version"]}"'}),
    )
    assert corrected.status_code == 200, corrected.json
    assert _checklist(client.get("/v1/tasks", headers=auth("clinician")).json["items"])[TEXT]["phone"] == SWEDEN
