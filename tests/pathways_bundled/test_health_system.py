"""The England-only steps follow the patient's health system: a patient in Sweden gets no cancer care
reviews in primary care (an English construct: NHS England personalised care, GP QOF) and no invitation
to NHS England's Cancer Quality of Life Survey; their primary care (vårdcentral) is still told of the
diagnosis, and at 18 months the 1177 evaluation survey of Min vårdplan cancer is recorded instead.
The pathway and the documents agree on the health system: one value, recorded in the instance's data
(engine.instances.forms.with_health_system, resolved as the documents resolve it), read by the gateways
(operator carepath.health_system, which resolves it as the documents do for an instance that has none) and by
``for_patient``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine import CarePath, ManualClock
from engine.directory import service_directory
from engine.instances.forms import with_health_system
from engine.settings import Settings

from .conftest import DATABASE, _settings
from .health_system_journeys import start, sweden
from .journey import PATHWAYS, REPO, Journey
from .journeys import events, waiting_timers

CLINICIAN = "clinician:test"


def _app(template: Path, folder: Path, clock: ManualClock, deployment: str | None) -> CarePath:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / DATABASE)
    return CarePath(dataclasses.replace(_settings(folder), health_system=deployment), clock)


def _journey(app: CarePath, clock: ManualClock, patient: str, **extra: Any) -> Journey:
    return start(app, clock, patient, **extra)


def _released(database_templates: Any, tmp_path: Path) -> Settings:
    """Settings for the bundled pathways with the cancer care reviews and the survey as released before the
    health system mattered (released/, from a8d346a), on a database of their own with them deployed."""
    released = tmp_path / "released"
    shutil.copytree(PATHWAYS, released)
    for name in ("quality_of_life_survey.bpmn", "cancer_care_reviews.bpmn"):
        shutil.copyfile(Path(__file__).parent / "released" / name, released / "shared" / name)
    folder = tmp_path / "db"
    folder.mkdir()
    shutil.copyfile(database_templates.sqlite_file(released), folder / DATABASE)
    return dataclasses.replace(_settings(folder), pathways_dir=released)


def _documents_system(app: CarePath, journey: Journey) -> str:
    data = app.instances.instance_data(journey.view.id)
    return service_directory(app.settings).for_patient(data, app.settings.health_system).key


@pytest.mark.parametrize(
    ("deployment", "given", "expected"),
    [
        (None, None, "england"),  # nothing named: the bundled directory's first section, as documents fall back to
        ("sweden", None, "sweden"),  # the deployment's, recorded at the start
        ("england", None, "england"),
        ("sweden", "england", "england"),  # the patient's own comes first
        (None, "sweden", "sweden"),
    ],
)
def test_the_pathway_and_the_documents_follow_the_one_recorded_health_system(
    bundled_template: Path,
    tmp_path: Path,
    journey_clock: ManualClock,
    deployment: str | None,
    given: str | None,
    expected: str,
) -> None:
    app = _app(bundled_template, tmp_path, journey_clock, deployment)
    try:
        j = _journey(app, journey_clock, "SYN-H-0001", **({"health_system": given} if given else {}))
        assert app.instances.instance_data(j.view.id)["health_system"] == expected
        assert _documents_system(app, j) == expected
        english = {"tell_practice"} & set(j.ready)
        swedish = {"tell_primary_care"} & set(j.ready)
        assert (english, swedish) == (
            ({"tell_practice"}, set()) if expected == "england" else (set(), {"tell_primary_care"})
        )
    finally:
        app.close()


def test_a_patient_in_sweden_gets_no_cancer_care_reviews_but_primary_care_is_told(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _journey(bundled, journey_clock, "SYN-H-0002", health_system="sweden")
    task = j.task("tell_primary_care")
    assert task["lane"] == "Key worker (named contact)"
    assert set(task["form"]["properties"]) == {"told_on", "told_via"}  # no reviews asked for


def test_a_patient_in_sweden_gets_the_min_vardplan_survey_recorded_not_englands_invitation(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _journey(bundled, journey_clock, "SYN-H-0003", health_system="sweden")
    j.wait_until("2027-07-12")
    task = j.task("mvp_survey")
    assert task["form"]["properties"]["mvp_survey"]["enum"] == ["sent", "declined", "no_min_vardplan"]
    assert "survey_invitation" not in j.ready


def test_the_swedish_journey_runs_to_the_min_vardplan_survey(bundled: CarePath, journey_clock: ManualClock) -> None:
    sweden(bundled, journey_clock, patient="SYN-H-0006")


def test_a_patient_in_england_keeps_exactly_the_english_steps_beside_one_in_sweden(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    england = _journey(bundled, journey_clock, "SYN-H-0004", health_system="england")
    sweden_ = _journey(bundled, journey_clock, "SYN-H-0007", health_system="sweden")
    assert "tell_practice" in england.ready and "tell_primary_care" not in england.ready
    assert "tell_primary_care" in sweden_.ready and "tell_practice" not in sweden_.ready
    england.wait_until("2027-07-12")
    sweden_.view = bundled.instances.get(sweden_.view.id)
    assert "survey_invitation" in england.ready and "mvp_survey" not in england.ready
    assert "mvp_survey" in sweden_.ready and "survey_invitation" not in sweden_.ready


def test_a_corrected_health_system_reaches_the_survey_and_the_documents_alike(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _journey(bundled, journey_clock, "SYN-H-0005")  # nothing named: england recorded
    view = bundled.instances.correct_data(j.view.id, {"health_system": "sweden"}, "entered_in_error", CLINICIAN)
    j.view = view
    assert _documents_system(bundled, j) == "sweden"
    j.wait_until("2027-07-12")
    assert "mvp_survey" in j.ready and "survey_invitation" not in j.ready


def test_the_health_system_is_recorded_only_where_the_start_schema_declares_it() -> None:
    declared = '{"properties": {"health_system": {"enum": ["england", "sweden"]}}}'
    sweden = lambda: "sweden"  # noqa: E731
    assert with_health_system(declared, {"age": 1}, sweden) == {"age": 1, "health_system": "sweden"}
    assert with_health_system(declared, {"age": 1}, lambda: None) == {"age": 1, "health_system": "england"}
    assert with_health_system(declared, {"health_system": "england"}, sweden) == {"health_system": "england"}
    assert with_health_system('{"properties": {}}', {"age": 1}, sweden) == {"age": 1}
    assert with_health_system(None, {"age": 1}, sweden) == {"age": 1}
    only_england = '{"properties": {"health_system": {"enum": ["england"]}}}'
    assert with_health_system(only_england, {"age": 1}, sweden) == {"age": 1}

    def never() -> str:
        raise AssertionError("resolved where nothing is to be recorded")

    assert with_health_system(None, {"gp_practice": ["not", "text"]}, never) == {"gp_practice": ["not", "text"]}
    assert with_health_system(declared, {"health_system": "sweden"}, never) == {"health_system": "sweden"}


@pytest.mark.parametrize(("deployment", "expected"), [("sweden", "sweden"), (None, "england")])
def test_an_instance_whose_data_names_no_health_system_is_not_stopped_by_the_gateways(
    bundled_template: Path,
    tmp_path: Path,
    journey_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    deployment: str | None,
    expected: str,
) -> None:
    """Started before its pathway declared health_system, or migrated to a version that reads it: its
    data has none. The gateways read the operator's answer, the section its documents take (here the
    deployment's, else england), so the reviews, the survey 18 months on and the documents agree; no incident."""
    monkeypatch.setattr("engine.instances.service.with_health_system", lambda schema, data, deployment: data)
    app = _app(bundled_template, tmp_path, journey_clock, deployment)
    try:
        j = _journey(app, journey_clock, "SYN-H-0008")
        assert j.view.incident is None
        assert "health_system" not in app.instances.instance_data(j.view.id)  # resolved, not recorded
        assert ("tell_practice" in j.ready) == (expected == "england")
        assert ("tell_primary_care" in j.ready) == (expected == "sweden")
        assert _documents_system(app, j) == expected
        j.wait_until("2027-07-12")
        assert j.view.incident is None
        assert ("survey_invitation" in j.ready) == (expected == "england")
        assert ("mvp_survey" in j.ready) == (expected == "sweden")
    finally:
        app.close()


def test_the_operator_reads_the_recorded_health_system_else_the_resolved_one() -> None:
    from types import SimpleNamespace

    from engine.careplan.health_system import health_system_operators

    def task(data: dict[str, Any]) -> Any:
        return SimpleNamespace(workflow=SimpleNamespace(top_workflow=SimpleNamespace(data=data)))

    read = health_system_operators(lambda data: "sweden")["carepath.health_system"]
    recorded = {"health_system": "england"}
    assert read(None, task(recorded), {}) == "england" and recorded == {"health_system": "england"}
    empty: dict[str, Any] = {}
    assert read(None, task(empty), {}) == "sweden" and empty == {}  # resolved, not recorded
    unknown = {"health_system": "wales"}  # not a section of the directory: the resolved one instead
    assert read(None, task(unknown), {}) == "sweden"
    assert health_system_operators(lambda data: "wales")["carepath.health_system"](None, task({}), {}) == "england"
    assert health_system_operators(None)["carepath.health_system"](None, task({}), {}) == "england"


def test_a_deployment_whose_directory_has_only_sweden_records_sweden_as_its_documents_take_it(
    bundled_template: Path, tmp_path: Path, journey_clock: ManualClock
) -> None:
    """No CAREPATH_HEALTH_SYSTEM, and a service directory of one section: the pathway takes the section
    the documents take (the directory's only one), not england."""
    text = (REPO / "directory" / "service_directory.yaml").read_text(encoding="utf-8")
    swedish_only = tmp_path / "directory.yaml"
    swedish_only.write_text(text[: text.index("\nengland:")] + "\n" + text[text.index("\nsweden:") :], encoding="utf-8")
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copyfile(bundled_template, folder / DATABASE)
    settings = dataclasses.replace(_settings(folder), health_system=None, service_directory=str(swedish_only))
    app = CarePath(settings, journey_clock)
    try:
        j = _journey(app, journey_clock, "SYN-H-0009")
        assert app.instances.instance_data(j.view.id)["health_system"] == "sweden"
        assert _documents_system(app, j) == "sweden"
        assert "tell_primary_care" in j.ready and "tell_practice" not in j.ready
    finally:
        app.close()


@pytest.mark.parametrize(("deployment", "survey"), [("sweden", "mvp_survey"), (None, "survey_invitation")])
def test_an_instance_of_the_release_before_migrated_onto_these_diagrams_takes_its_health_systems_survey(
    database_templates: Any,
    tmp_path: Path,
    journey_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    deployment: str | None,
    survey: str,
) -> None:
    """Started on the diagrams as released before the health system mattered (released/, from
    a8d346a), with no health_system recorded, then moved by carepath migrate: at 18 months the survey
    sub-pathway's new gateway reads the resolved health system, with no incident."""
    from engine.instances.migration import migrate_pathway

    settings = dataclasses.replace(_released(database_templates, tmp_path), health_system=deployment)
    with monkeypatch.context() as before:  # that release recorded nothing at the start
        before.setattr("engine.instances.service.with_health_system", lambda schema, data, resolve: data)
        old = CarePath(settings, journey_clock)
        try:
            j = _journey(old, journey_clock, "SYN-H-0010")
            j.do("tell_practice", {"told_on": j.today(), "told_via": "letter", "reviews_asked": True})
            assert "health_system" not in old.instances.instance_data(j.view.id)
            old_version = j.view.version
        finally:
            old.close()
    app = CarePath(dataclasses.replace(settings, pathways_dir=PATHWAYS), journey_clock)
    try:
        app.catalog.sync_library(actor="clinician:author-syn")
        report = migrate_pathway(app.instances, "breast_cancer", "clinician:cns-syn")
        [moved] = [i for i in report.instances if i.instance_id == j.view.id]
        assert moved.migrated, moved.refused
        j.app, j.view = app, app.instances.get(j.view.id)
        assert j.view.version != old_version
        if survey == "survey_invitation":  # England: the GP's reviews wait, their timers now read the date
            assert waiting_timers(j)["first_overdue"] == "2026-04-12"
            j.view = app.instances.correct_data(
                j.view.id, {"diagnosis_date": "2025-12-12"}, "updated_information", CLINICIAN
            )
            assert waiting_timers(j)["first_overdue"] == "2026-03-12"  # moved with the corrected date
        j.wait_until("2027-07-12")
        assert j.view.incident is None and j.view.status == "running"
        assert survey in j.ready and ({"mvp_survey", "survey_invitation"} - {survey}).isdisjoint(j.ready)
    finally:
        app.close()


def test_a_patient_in_swedens_plan_shows_the_min_vardplan_survey_coming_until_it_is_recorded(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    from engine.documents.build import care_plan_document

    def coming(j: Journey) -> dict[str, str]:
        upcoming = care_plan_document(bundled, j.view.id, "sv")["next_steps"]["upcoming"]
        return {u["code"]: u["label"] for u in upcoming if "survey" in u["code"]}

    young = _journey(bundled, journey_clock, "SYN-H-0011", health_system="sweden", age=13)
    assert list(coming(young)) == ["min_vardplan_survey"]  # RCC's survey names no age limit
    assert "Min vårdplan" in coming(young)["min_vardplan_survey"]
    j = sweden(bundled, journey_clock, patient="SYN-H-0012")  # records the survey at 18 months
    assert coming(j) == {}


def test_an_instance_left_on_the_release_before_moves_its_reviews_with_a_corrected_date(
    database_templates: Any, tmp_path: Path, journey_clock: ManualClock
) -> None:
    """Not migrated: its reviews' timers read the due dates its script worked out from the date of diagnosis
    (released/cancer_care_reviews.bpmn, ``due_dates``). A correction of the date works those values out again,
    and the timers move with them; the trail names the values worked out again, never their dates."""
    app = CarePath(_released(database_templates, tmp_path), journey_clock)
    try:
        j = _journey(app, journey_clock, "SYN-H-0013")
        j.do("tell_practice", {"told_on": j.today(), "told_via": "letter", "reviews_asked": True})
        before = waiting_timers(j)
        assert before["first_overdue"] == "2026-04-12" and before["survey_due"] == "2027-07-12"
        j.view = app.instances.correct_data(
            j.view.id, {"diagnosis_date": "2025-12-12"}, "updated_information", CLINICIAN
        )
        after = waiting_timers(j)
        assert after["first_overdue"] == "2026-03-12"  # 3 months after the corrected date, as the care plan says
        assert after["survey_due"] == "2027-06-12"
        recomputed = app.instances.instance_data(j.view.id)
        assert recomputed["first_review_due"] == "2026-03-12" and recomputed["second_review_due"] == "2026-12-12"
        [event] = [e for e in events(app, j.view.id) if e.type == "data_corrected"]
        payload = json.loads(event.payload)
        assert payload["recomputed"] == ["first_review_due", "second_review_due", "second_review_invite"]
        assert {"first_overdue", "survey_due"} <= set(payload["timers_moved"])
        assert "2026-03-12" not in event.payload and "2025-12-12" not in event.payload
    finally:
        app.close()
