"""The active surveillance plan of a man with prostate cancer, from the bundled prostate pathway.

Synthetic patients (SYN-ASP-...) are driven through the bundled prostate pathway with the journeys of
tests/pathways_bundled: the plan is read as JSON and as a printable page in both languages, its dates
are held to the dates the pathway's own timers set, and it is refused (409) where there is no active
surveillance. Through the API and the web pages: tests/api/test_documents_api.py and tests/web.
"""

from __future__ import annotations

import dataclasses
import html
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from pathways_bundled.journey import PATHWAYS, REPO, Journey, contact
from pathways_bundled.journeys import (
    SITES,
    SURVEILLANCE_PLAN,
    _start,
    next_due,
    prostate_mdt,
    record_tests_due,
)

from engine import CarePath, ConflictError, ManualClock, NotFoundError, Settings
from engine.calendar import add_months
from engine.documents.build import SURVEILLANCE_PLAN as DOCUMENT_TYPE
from engine.documents.build import active_surveillance_plan, care_plan_document, render_html, render_pdf

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
SUPPORT_GIVEN = ["Prostate cancer support group, Example Town (example)"]


@dataclass
class Men:
    app: CarePath
    swedish: CarePath  # the same instances, read by a deployment in Sweden
    clock: ManualClock
    started: Journey  # the MDT chose active surveillance today; his plan not given yet
    reviewed: Journey  # plan given, a year of PSA tests, the 12-month review continues surveillance
    due_dates: list[str]  # the days his PSA tests and the review fell due, as the pathway's timers fired
    progressed: Journey  # the 12-month review found progression: radical treatment
    radical: Journey  # the MDT chose surgery
    in_sweden: Journey  # a man in Sweden (started in a Swedish deployment) whose MDT chose active surveillance


def _start_in_sweden(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    site = SITES["prostate"]
    j = Journey(
        app,
        clock,
        site.pathway,
        patient,
        {"diagnosis": site.diagnosis, "diagnosis_date": "2026-01-12", "age": site.age, "treatment_intent": "curative"},
    )
    j.do("assign_contact", contact())
    return j.do("tell_primary_care", {"told_on": j.today(), "told_via": "electronic_message"})


def _to_mdt(
    app: CarePath, clock: ManualClock, patient: str, first_treatment: str, support: str = "later", sweden: bool = False
) -> Journey:
    started = _start_in_sweden(app, clock, patient) if sweden else None
    return prostate_mdt(app, clock, patient, first_treatment, support, started)


def _first_year(j: Journey, outcome: str, due: list[str]) -> None:
    while "surveillance" not in j.ready:  # a year of PSA tests, then the review
        next_due(j)
        if "record_result" in j.ready or "surveillance" in j.ready:
            due.append(j.today())
        record_tests_due(j)
    j.do("surveillance", {"reviewed_on": j.today(), "surveillance_outcome": outcome})


@pytest.fixture(scope="module")
def men(tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates) -> Iterator[Men]:
    folder = tmp_path_factory.mktemp("surveillance-plan")
    clock = ManualClock(START)
    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), folder / "plans.sqlite3")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'plans.sqlite3'}",
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        four_eyes=False,
    )
    app = CarePath(settings, clock)
    swedish = CarePath(dataclasses.replace(settings, health_system="sweden"), clock)
    try:
        started = _to_mdt(app, clock, "SYN-ASP-0001", "active_surveillance", support="yes_now")
        radical = _to_mdt(app, clock, "SYN-ASP-0004", "radical_prostatectomy")
        progressed = _to_mdt(app, clock, "SYN-ASP-0003", "active_surveillance")
        reviewed = _to_mdt(app, clock, "SYN-ASP-0002", "active_surveillance")
        reviewed.do(
            "as_plan",
            {**SURVEILLANCE_PLAN, "plan_given_on": reviewed.today(), "ongoing_support": SUPPORT_GIVEN},
        )
        due: list[str] = []
        _first_year(reviewed, "continue", due)
        _first_year(progressed, "radical_treatment", [])
        in_sweden = _to_mdt(swedish, clock, "SYN-ASP-0007", "active_surveillance", support="yes_now", sweden=True)
        yield Men(app, swedish, clock, started, reviewed, due, progressed, radical, in_sweden)
    finally:
        swedish.close()
        app.close()


def test_the_plan_when_surveillance_starts(men: Men) -> None:
    doc = active_surveillance_plan(men.app, men.started.view.id, "en")
    assert (doc["document_type"], doc["language"], doc["pathway_id"]) == (DOCUMENT_TYPE, "en", "prostate_cancer")
    assert doc["title"] == "My active surveillance plan" and doc["patient_ref"] == "SYN-ASP-0001"
    assert doc["directory"]["example"] is True
    started = START.date().isoformat()  # the MDT chose surveillance on the day he started
    assert doc["plan"] == {"started_on": started, "given_on": None, "given_via": [], "shared_with_gp": None}
    # Every 3 months in the first year (NICE NG131), then the 12-month review, from the day it started.
    schedule = [(s["code"], s["due_on"]) for s in doc["schedule"]]
    assert schedule == [
        ("psa", "2026-04-15"),
        ("psa", "2026-07-15"),
        ("psa", "2026-10-15"),
        ("psa", "2027-01-15"),
        ("review", "2027-01-15"),
    ]
    assert doc["first_year_reviewed_on"] is None
    # Warning signs for prostate cancer, each with a number; the emergency ones first and always answered.
    signs = doc["warning_signs"]
    assert signs["diagnosis"] == "prostate"
    codes = [s["code"] for s in signs["signs"]]
    assert {"cannot_pass_urine", "spinal_cord_compression", "new_symptom_persisting"} <= set(codes)
    assert "adt_side_effects" not in codes and "fever_on_treatment" not in codes  # he has no treatment
    assert all(s["contact"]["phone"] for s in signs["signs"])
    assert [s["urgency"] for s in signs["signs"]] == sorted(
        (s["urgency"] for s in signs["signs"]), key=["emergency", "urgent", "soon"].index
    )
    assert doc["safety"]["kind"] == "after_treatment" and doc["safety"]["phone"]
    assert doc["who_to_call"]["twenty_four_hour_line"]["phone"] and doc["who_to_call"]["emergency_number"] == "999"
    # Put in touch with a support organisation at diagnosis: its number is in his plan.
    assert [o["phone"] for o in doc["support"]["organisations"]] and doc["support"]["other"] == []
    json.dumps(doc)


def test_the_schedule_is_the_one_the_pathway_runs(men: Men) -> None:
    """The document's dates are the days the pathway's timers made each PSA test, and the review, due."""
    doc = active_surveillance_plan(men.app, men.reviewed.view.id, "en")
    assert [s["due_on"] for s in doc["schedule"]] == [*men.due_dates, men.due_dates[-1]]
    started = datetime.fromisoformat(doc["plan"]["started_on"])
    assert men.due_dates == [add_months(started, m).date().isoformat() for m in (3, 6, 9, 12)]


def test_the_plan_once_given_and_after_the_first_year(men: Men) -> None:
    doc = active_surveillance_plan(men.app, men.reviewed.view.id, "en")
    assert doc["plan"]["given_on"] == doc["plan"]["started_on"]
    assert doc["plan"]["given_via"] == [{"code": "nhs_app", "label": "The NHS App"}]
    assert doc["plan"]["shared_with_gp"] is True
    assert doc["support"]["other"] == SUPPORT_GIVEN
    assert doc["first_year_reviewed_on"] == men.due_dates[-1]
    page = render_html(doc)
    assert "Your first year was reviewed on " + men.due_dates[-1] in page
    assert html.escape(SUPPORT_GIVEN[0]) in page


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_printable_page(men: Men, language: str) -> None:
    app, man = (men.swedish, men.in_sweden) if language == "sv" else (men.app, men.started)
    doc = active_surveillance_plan(app, man.view.id, language)
    page = render_html(doc)
    title = {"en": "My active surveillance plan", "sv": "Min plan för aktiv monitorering"}[language]
    assert f'<html lang="{language}">' in page and f"<h1>{title}</h1>" in page
    for sign in doc["warning_signs"]["signs"]:
        assert html.escape(sign["name"]) in page
    for entry in doc["schedule"]:
        assert (
            f'<tr data-code="{entry["code"]}"><td>{html.escape(entry["what"])}</td><td>{entry["due_on"]}</td>' in page
        )
    choice = {"en": "You can choose to have treatment", "sv": "Du kan när som helst välja att få behandling"}
    assert choice[language] in page
    # The patient's own health system's numbers: 1177 and 112 in Sweden, 111 and 999 in England.
    urgent, emergency = {"en": ("111", "999"), "sv": ("1177", "112")}[language]
    assert (doc["who_to_call"]["urgent_advice"]["phone"], doc["who_to_call"]["emergency_number"]) == (urgent, emergency)
    assert f'<span class="phone">{urgent}</span>' in page and f'<span class="phone">{emergency}</span>' in page
    assert doc["directory"]["example"] and {"en": "EXAMPLE DATA", "sv": "EXEMPELDATA"}[language] in page


def test_the_pdf(men: Men) -> None:
    pytest.importorskip("weasyprint")
    pdf = render_pdf(active_surveillance_plan(men.app, men.reviewed.view.id, "en"))
    assert pdf.startswith(b"%PDF-")


@pytest.mark.parametrize("who", ["progressed", "radical"])
def test_no_plan_without_active_surveillance(men: Men, who: str) -> None:
    journey = getattr(men, who)
    with pytest.raises(ConflictError, match="no active surveillance plan") as caught:
        active_surveillance_plan(men.app, journey.view.id, "en")
    assert "SYN-ASP" not in str(caught.value)  # never the patient's reference


def test_no_plan_before_the_mdt_or_on_another_pathway(men: Men) -> None:
    before = _start(men.app, men.clock, SITES["prostate"], "SYN-ASP-0005")
    breast = _start(men.app, men.clock, SITES["breast"], "SYN-ASP-0006")
    for journey in (before, breast):
        with pytest.raises(ConflictError, match="no active surveillance plan"):
            active_surveillance_plan(men.app, journey.view.id, "en")
    with pytest.raises(NotFoundError):
        active_surveillance_plan(men.app, "00000000-0000-4000-8000-000000000000", "en")


def test_the_care_plan_shows_the_tests_coming_until_the_first_years_review(men: Men) -> None:
    """His Personalised Care Plan ("Coming up", what the NHS App and 1177 show) lists the PSA tests and the
    review still to come, with the plan's dates; none once the review is done, or surveillance has ended."""

    def coming(app: CarePath, journey: Journey, language: str = "en") -> list[tuple[str, str, str]]:
        upcoming = care_plan_document(app, journey.view.id, language)["next_steps"]["upcoming"]
        return [(u["code"], u["due_on"], u["label"]) for u in upcoming if u["code"].startswith("surveillance_")]

    # The man in Sweden started last: his whole first year is still to come.
    plan = active_surveillance_plan(men.swedish, men.in_sweden.view.id, "en")
    assert plan["schedule"][0]["due_on"] > men.clock.now().date().isoformat()
    expected = [("surveillance_psa", s["due_on"], "PSA blood test (active surveillance)") for s in plan["schedule"][:4]]
    review = "Review of my first year of active surveillance with the urology team (PSA results, examination, MRI scan)"
    assert coming(men.swedish, men.in_sweden) == [*expected, ("surveillance_review", expected[-1][1], review)]
    assert {label for code, _, label in coming(men.swedish, men.in_sweden, "sv") if code == "surveillance_psa"} == {
        "PSA-prov (aktiv monitorering)"
    }
    # Only what is still to come: the man whose year has run has none of it left before today.
    today = men.clock.now().date().isoformat()
    assert all(due >= today for _, due, _ in coming(men.app, men.started))
    assert coming(men.app, men.reviewed) == [] and coming(men.app, men.progressed) == []
    assert coming(men.app, men.radical) == []


def test_recorded_values_of_another_type_are_left_out_not_a_failure(men: Men, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of another type than the form's (data corrected by hand on a version without a start schema)
    is left out of the plan; the plan is still made."""
    read = men.app.instances.read

    def corrupted(session: object, instance_id: str) -> tuple[object, dict[str, object]]:
        view, data = read(session, instance_id)
        bad = {"plan_given_via": "nhs_app", "ongoing_support": {"a": 1}, "plan_given_on": 20260115, "reviewed_on": []}
        return view, {**data, **bad}

    monkeypatch.setattr(men.app.instances, "read", corrupted)
    doc = active_surveillance_plan(men.app, men.reviewed.view.id, "en")
    assert doc["plan"]["given_via"] == [] and doc["plan"]["given_on"] is None
    assert doc["support"]["other"] == [] and doc["first_year_reviewed_on"] is None
    render_html(doc)
