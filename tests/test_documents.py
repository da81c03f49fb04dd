"""The Personalised Care Plan and the End of Treatment Summary, from real bundled pathways (issue 15).

Synthetic patients (SYN-DOC-...) are driven through the bundled breast and general pathways with the
journeys of tests/pathways_bundled, then the documents are read as JSON and as HTML in both languages,
with a service directory of example data (the bundled one, with the journeys' staff reference added).
Rendering in a browser and as PDF: tests/test_documents_print.py.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import io
import json
import os
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pathways_bundled.journey import PATHWAYS, PATIENT, REPO, Journey, contact
from pathways_bundled.journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES, Options, full_journey
from pathways_bundled.journeys import _mdt as mdt
from pathways_bundled.journeys import _support as support
from pathways_bundled.journeys import _treatment as treatment
from pypdf import PdfReader

from engine import CarePath, ConflictError, ManualClock, NotFoundError, Settings
from engine.audit import on_behalf_of
from engine.directory import phone_problem
from engine.documents.build import (
    CARE_PLAN,
    END_OF_TREATMENT,
    SCHEMA_VERSION,
    care_plan_document,
    end_of_treatment_summary,
    render_html,
    render_pdf,
    resolve_language,
)
from engine.rules import get_evaluation
from engine.rules.warning_signs import load_warning_signs
from engine.settings import bundled_service_directory

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
WHAT_MATTERS = 'Walking the dog <script>alert("x")</script> & "seeing" my grandchildren'
HEADER = {
    "document_type",
    "schema_version",
    "generated_at",
    "instance_id",
    "pathway_id",
    "pathway_version",
    "language",
    "directory",
}
# What the end of treatment summary form does not ask yet; given as start data (docs/documents.md).
SUMMARY_EXTRA = {
    "cancer_stage": "T2 N1 M0 (stage IIB)",
    "last_sact_date": "2026-01-20",
    "prognosis_discussed": "Told the aim is cure; the chance of recurrence was discussed.",
    "summary_author": {"name": "Dr Syn Thetic", "role": "Consultant clinical oncologist"},
    "surveillance_plan": [{"what": "Mammogram", "due_on": "2027-01-20"}],
}
UK_ONLY = ("NHS", "GP ", "Macmillan", "999", "SR1", "cancer care review")
# Identifiers (instance, evaluation, version hashes) are random hex: "999" may turn up inside one.
_IDENTIFIERS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{12,64}\b")


def _readable(page: str) -> str:
    """The page without its identifiers: what a reader reads."""
    return _IDENTIFIERS.sub("", page)


@dataclass
class Patients:
    app: CarePath  # a deployment whose patients are in England (the directory's first section)
    planned: Journey  # care plan agreed, referrals sent (referred), one of them completed; in treatment
    ended: Journey  # end of treatment summary written
    completed: Journey  # the whole pathway done
    # The same patients as a deployment in Sweden sees them (CAREPATH_HEALTH_SYSTEM=sweden): its numbers.
    swedish: CarePath


def _app(patients: Patients, language: str) -> CarePath:
    """The deployment whose numbers a reader in ``language`` expects in these tests: each language's own."""
    return patients.swedish if language.startswith("sv") else patients.app


def _directory(folder: Path) -> Path:
    """The bundled example directory, plus the journeys' staff reference and shared care hospital."""
    data = yaml.safe_load(bundled_service_directory().read_text(encoding="utf-8"))
    for system in ("england", "sweden"):
        data[system]["staff"]["STAFF-SYN-1"] = copy.deepcopy(data[system]["staff"]["STAFF-DEMO-1"])
    path = folder / "service_directory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _start(app: CarePath, clock: ManualClock, site_key: str, patient: str, **extra: Any) -> Journey:
    site = SITES[site_key]
    journey = Journey(
        app,
        clock,
        site.pathway,
        patient,
        {
            "diagnosis": site.diagnosis,
            "diagnosis_date": "2026-01-12",
            "age": site.age,
            "treatment_intent": "curative",
            "gp_practice": "EXAMPLE-GP-1",
            **extra,
        },
    )
    journey.do("assign_contact", contact())
    return journey.do(
        "tell_practice", {"told_on": journey.today(), "told_via": "electronic_message", "reviews_asked": True}
    )


def _hna(journey: Journey, what_matters: str) -> None:
    """The HNA at diagnosis with high concerns: agree everything but information, which is declined."""
    journey.do("offer_hna", {"hna_accepted": True})
    journey.do("complete_checklist", {"concerns": HIGH_CONCERNS, "about_you": ABOUT_WORKING_PARENT}, actor=PATIENT)
    journey.do("priority_review", {"discussed_on": journey.today(), "urgent_action": "same_day_referral"})
    decisions = {i.id: "declined" if i.code == "info-emotional-support" else "agreed" for i in journey.proposals()}
    journey.do("agree", {"decisions": decisions, "what_matters": what_matters, "review_on": "2026-07-01"})
    journey.do("send_referrals", {"referrals_sent_on": journey.today()})
    journey.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates) -> Iterator[Patients]:
    folder = tmp_path_factory.mktemp("documents")
    clock = ManualClock(START)
    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), folder / "documents.sqlite3")
    # Four eyes off: the patients' assessments evaluate the rules folder's texts (as tests/conftest.py).
    settings = Settings(
        database_url=f"sqlite:///{folder / 'documents.sqlite3'}",
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        service_directory=_directory(folder),
        four_eyes=False,
    )
    # These patients have no health system recorded (started before their pathway declared one), so a
    # deployment's setting decides their documents: the same instances read by an English and a Swedish
    # deployment. tests/pathways_bundled/test_health_system.py has patients whose start recorded one.
    unrecorded = pytest.MonkeyPatch()
    unrecorded.setattr("engine.instances.service.with_health_system", lambda schema, data, resolve: data)
    app = CarePath(settings, clock)
    try:
        # First, and the clock set back: its waits fire every due timer in the database.
        completed = full_journey(app, clock, SITES["general"], "SYN-DOC-0003", Options(support="later"))
        clock.set(START)
        planned = _start(app, clock, "breast", "SYN-DOC-0001")
        support(planned, "yes_now")
        _hna(planned, WHAT_MATTERS)
        referral = next(i for i in app.care_plans.get(planned.view.id).items if i["kind"] == "referral")
        for status in ("accepted", "first_contact", "completed"):  # sent by _hna: the service's steps
            app.care_plans.set_status(planned.view.id, referral["id"], status, "clinician:cns-syn")
        planned.view = app.instances.get(planned.view.id)  # the status change is a new revision
        mdt(planned, SITES["breast"], prehab=False, special=False)

        ended = _start(app, clock, "breast", "SYN-DOC-0002", **SUMMARY_EXTRA)
        support(ended, "later")
        _hna(ended, "Getting back to work")
        mdt(ended, SITES["breast"], prehab=False, special=False)
        treatment(ended, SITES["breast"], special=True)  # with endocrine therapy, which continues
        ended.hna_declined()
        ended.do(
            "write_summary",
            {
                "summary_treatments": ["surgery"],
                "effects_to_watch_for": ["fatigue"],
                "warning_signs_given": True,
                "ongoing_support": ["local support group"],
                "gp_actions": ["review fatigue at the cancer care review"],
                "follow_up_model": "patient_initiated",
            },
            actor=on_behalf_of("system:tok_ehr", "N-4711"),
        )  # an EHR recording it for a consultant
        swedish = CarePath(dataclasses.replace(settings, health_system="sweden"), clock)
        try:
            yield Patients(app, planned, ended, completed, swedish)
        finally:
            swedish.close()
    finally:
        app.close()
        unrecorded.undo()


def _phones(doc: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("phone"), str):
                found.append(value["phone"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(doc)
    return found


# --- the care plan ---------------------------------------------------------------------------------


def test_care_plan_json(patients: Patients) -> None:
    doc = care_plan_document(patients.app, patients.planned.view.id, "en")
    assert set(doc) >= HEADER
    assert (doc["document_type"], doc["schema_version"], doc["language"]) == (CARE_PLAN, SCHEMA_VERSION, "en")
    assert doc["pathway_id"] == "breast_cancer" and doc["patient_ref"] == "SYN-DOC-0001"
    assert doc["directory"]["example"] is True and doc["directory"]["health_system"] == "england"
    assert doc["what_matters"] == WHAT_MATTERS
    assert doc["diagnosis"]["label"] == "Breast cancer"
    scores = {n["code"]: (n["score"], n["level"]) for n in doc["needs"]}
    assert scores == {"worry_fear_anxiety": (9, "priority"), "money_housing": (7, "discuss"), "fatigue": (6, "discuss")}
    assert doc["agreed"] and doc["declined"] and doc["awaiting_decision"] == []
    referrals = [i for i in doc["agreed"] if i["kind"] == "referral"]
    assert len(referrals) > 1 and all(i["provider"]["phone"] for i in referrals)
    assert sorted(i["status"] for i in referrals) == ["completed"] + ["referred"] * (len(referrals) - 1)
    assert {i["section"] for i in doc["agreed"]} == {"rehabilitation", "self_care", "practical"}
    assert {i["code"] for i in doc["agreed"] if i["section"] == "practical"} >= {"benefits-advice-referral"}
    json.dumps(doc)  # JSON all the way down


def test_contacts_come_from_the_directory(patients: Patients) -> None:
    contacts = care_plan_document(patients.app, patients.planned.view.id, "en")["contacts"]
    named = contacts["named_contact"]
    assert (named["name"], named["role_label"], named["phone"], named["hours_label"]) == (
        "Sam Example",
        "Clinical nurse specialist",
        "01632 960111",
        "Monday to Friday, 08:30 to 16:30",
    )
    assert named["team"] == "Cancer nursing team, Example Hospital" and named["example"] is True
    assert "staff_ref" not in named and "STAFF-SYN-1" not in json.dumps(contacts)
    assert contacts["twenty_four_hour_line"]["phone"] == "01632 960100"
    assert contacts["twenty_four_hour_line"]["hours_label"] == "24 hours a day, every day"
    assert contacts["gp_practice"]["name"] == "Example Street Surgery"
    assert [c["role"] for c in contacts["team"]] == ["team", "doctor", "social_worker", "rehabilitation_coordinator"]
    assert contacts["emergency_number"] == "999" and contacts["urgent_advice"]["phone"] == "111"
    sv = care_plan_document(patients.swedish, patients.planned.view.id, "sv")["contacts"]
    assert (sv["named_contact"]["name"], sv["named_contact"]["role_label"]) == (
        "Kim Exempelsson",
        "Kontaktsjuksköterska",
    )
    assert [c["role_label"] for c in sv["team"]] == ["Mitt team", "Läkare", "Kurator", "Rehabiliteringskoordinator"]
    assert sv["gp_practice"]["name"] == "Vårdcentralen Exempelgatan" and sv["emergency_number"] == "112"
    assert sv["twenty_four_hour_line"]["hours_label"] == "Dygnet runt, alla dagar"
    assert sv["team"][0]["hours_label"] == "Måndag–fredag kl. 08.00–16.00"


def test_the_care_plan_names_the_organisations_the_patient_was_put_in_touch_with(patients: Patients) -> None:
    # The planned patient was connected to EXAMPLE-SUPPORT-ORG at diagnosis (support "yes_now").
    names = {"england": "Example Cancer Support (local charity)", "sweden": "Patientföreningen Exempel"}
    heading = {
        "en": "Support organisations you were put in touch with",
        "sv": "Stödorganisationer du har fått kontakt med",
    }
    for language in ("en", "sv"):
        doc = care_plan_document(patients.app, patients.planned.view.id, language)
        [organisation] = doc["contacts"]["organisations"]
        assert organisation["name"] == names[doc["directory"]["health_system"]], organisation
        assert organisation["phone"] and organisation["example"] is True
        page = html.unescape(render_html(doc))
        assert heading[language] in page and organisation["name"] in page and organisation["phone"] in page
        pdf = "\n".join(_pdf_pages(render_pdf(doc)))
        assert organisation["name"] in " ".join(pdf.split()), pdf[:500]


def test_the_numbers_are_the_patients_health_systems_whatever_the_language(patients: Patients) -> None:
    """An English patient reading Swedish still calls 999 and NHS 111, and a Swedish patient reading
    English 112 and 1177: the reader's language picks the words, never the numbers."""
    national = re.compile(r"(?<![\w])(999|112|111|1177)(?![\w])")
    for app, language, (emergency, urgent, gp, line) in (
        (patients.app, "sv", ("999", "111", "Example Street Surgery", "01632 960100")),
        (patients.swedish, "en", ("112", "1177", "Vårdcentralen Exempelgatan", "08-465 004 00")),
    ):
        doc = end_of_treatment_summary(app, patients.ended.view.id, language)
        assert doc["language"] == language
        calls = doc["who_to_call"]
        assert (calls["emergency_number"], calls["urgent_advice"]["phone"], calls["gp_practice"]["name"]) == (
            emergency,
            urgent,
            gp,
        )
        assert doc["safety"]["phone"] == line and line in doc["safety"]["text"]
        signs = {s["code"]: s for s in doc["warning_signs"]["signs"]}
        action = signs["thoughts_of_suicide_or_self_harm"]["action"]
        assert emergency in action and urgent in action, action
        for sign in signs.values():  # no number of the other health system, no placeholder left
            assert set(national.findall(sign["action"])) <= {emergency, urgent}, sign["action"]
            assert "{" not in sign["action"], sign["action"]
        plan = care_plan_document(app, patients.planned.view.id, language)
        assert plan["contacts"]["emergency_number"] == emergency and plan["safety"]["phone"] == line
        assert plan["directory"]["health_system"] == ("england" if emergency == "999" else "sweden")


def test_the_safety_message_gives_the_24_hour_number(patients: Patients) -> None:
    for language, words in (
        (
            "en",
            "If you have a temperature, feel shivery or feel unwell during treatment, "
            "call the 24-hour line now: 01632 960100",
        ),
        (
            "sv",
            "Om du får feber, frossa eller känner dig sjuk under behandlingen: ring "
            "rådgivningen dygnet runt direkt, 08-465 004 00",
        ),
    ):
        doc = care_plan_document(_app(patients, language), patients.planned.view.id, language)
        assert doc["safety"]["text"].startswith(words), doc["safety"]["text"]
        assert doc["safety"]["text"] in html.unescape(render_html(doc))


def test_reasons_are_in_the_readers_words(patients: Patients) -> None:
    english = care_plan_document(patients.app, patients.planned.view.id, "en")
    swedish = care_plan_document(patients.swedish, patients.planned.view.id, "sv")
    by_code = {i["code"]: i for i in english["agreed"]}
    psych = by_code["psychological-support-referral"]
    assert [r["text"] for r in psych["reasons"]] == ["You scored worry, fear or anxiety 9 out of 10"]
    assert psych["why"]["rules"][0]["id"] == "psych-support-urgent"  # still there, for clinicians
    work = by_code["work-support-referral"]["reasons"]
    assert "You want to return to work or study" in [r["text"] for r in work], work
    sv_psych = next(i for i in swedish["agreed"] if i["code"] == "psychological-support-referral")
    assert [r["text"] for r in sv_psych["reasons"]] == ["Du skattade oro, rädsla eller ångest till 9 av 10"]
    assert all(i["reasons"] for i in english["agreed"] + english["declined"])
    page = render_html(english)
    assert "You scored worry, fear or anxiety 9 out of 10" in page
    assert psych["why"]["evaluation_id"] in page and "psych-support-urgent" in page  # smaller, in .audit
    assert re.search(r'<div class="audit">[^<]*<code[^>]*>psych-support-urgent</code>', page)


def test_every_item_is_traceable_to_a_stored_rule_evaluation(patients: Patients) -> None:
    doc = care_plan_document(patients.app, patients.planned.view.id, "en")
    [assessment] = doc["assessments"]
    with patients.app.sessions() as session:
        for item in doc["agreed"] + doc["declined"]:
            why = item["why"]
            stored = get_evaluation(session, why["evaluation_id"])
            assert stored.instance_id == patients.planned.view.id
            assert why["ruleset_version"] == stored.ruleset_version == assessment["ruleset_version"]
            fired = {f.rule_id for f in stored.firings}
            assert why["rules"] and {r["id"] for r in why["rules"]} <= fired
            assert all(r["title"] for r in why["rules"])


def test_care_plan_next_steps_in_the_patients_words(patients: Patients) -> None:
    steps = care_plan_document(patients.app, patients.planned.view.id, "en")["next_steps"]
    assert {t["element"] for t in steps["ready_tasks"]} >= {"treatment", "first_review"}
    now = {n["element"]: n["text"] for n in steps["now"]}
    assert now["treatment"] == "You are having your treatment."
    assert now["first_review"].startswith("A cancer care review with your GP practice")
    upcoming = {u["code"]: u["due_on"] for u in steps["upcoming"]}
    assert upcoming == {
        "cancer_care_review_3_months": "2026-04-12",
        "cancer_care_review_12_months": "2027-01-12",
        "quality_of_life_survey": "2027-07-12",
        "care_plan_review": "2026-07-01",
    }
    assert [u["due_on"] for u in steps["upcoming"]] == sorted(upcoming.values())
    assert steps["next_due_at"].startswith("2026-04-12")
    # Sweden has no GP cancer care review: neither coming up nor happening now.
    sv = care_plan_document(patients.swedish, patients.planned.view.id, "sv")["next_steps"]
    # At 18 months a patient in Sweden is asked about Min vårdplan through 1177, not NHS England's survey.
    assert {u["code"]: u["due_on"] for u in sv["upcoming"]} == {
        "min_vardplan_survey": "2027-07-12",
        "care_plan_review": "2026-07-01",
    }
    assert [n["text"] for n in sv["now"]] == ["Du får din behandling."]
    page = render_html(care_plan_document(patients.swedish, patients.planned.view.id, "sv"))
    for name in (t["name"] for t in steps["ready_tasks"]):  # the diagrams' staff task names
        assert name not in page


def test_care_plan_in_swedish_reads_as_min_vardplan(patients: Patients) -> None:
    doc = care_plan_document(patients.swedish, patients.planned.view.id, "sv-SE")
    assert doc["language"] == "sv" and doc["title"] == "Min vårdplan"
    assert doc["directory"]["health_system"] == "sweden"
    assert {n["name"] for n in doc["needs"]} >= {"Oro, rädsla eller ångest"}
    referral = next(i for i in doc["agreed"] if i["status"] == "referred")
    assert referral["status_label"] == "Remiss skickad" and referral["kind_label"] == "Remiss"
    assert referral["name"].startswith("Remiss")
    page = render_html(doc)
    for heading in (
        "Mina kontakter",
        "Min rehabiliteringsplan",
        "Egenvård",
        "Praktiska frågor och rättigheter",
        "Mina rättigheter",
        "Det här händer nu",
    ):
        assert re.search(rf"<h[23][^>]*>{heading}</h[23]>", page), heading
    for word in (
        "Kontaktsjuksköterska",
        "Läkare",
        "Kurator",
        "Rehabiliteringskoordinator",
        "Vårdcentralen",
        "Patientlag (2014:821)",
        "112",
        "1177",
    ):
        assert word in page, word
    for uk in UK_ONLY:
        assert uk not in _readable(page), uk
    assert [r["source"] for r in doc["rights"]][0].startswith("Patientlag")


def test_other_languages_fall_back_to_english(patients: Patients) -> None:
    assert [resolve_language(x) for x in ("sv", "SV", "sv_SE", "en-GB", "de", "", None)] == [
        "sv",
        "sv",
        "sv",
        "en",
        "en",
        "en",
        "en",
    ]
    assert care_plan_document(patients.app, patients.planned.view.id, "de")["language"] == "en"


def test_care_plan_html(patients: Patients) -> None:
    english = render_html(care_plan_document(patients.app, patients.planned.view.id, "en"))
    swedish = render_html(care_plan_document(patients.swedish, patients.planned.view.id, "sv"))
    for page, lang, headings in (
        (
            english,
            "en",
            [
                "My personalised care and support plan",
                "If you feel unwell",
                "My contacts",
                "What matters to me",
                "My concerns and scores",
                "My support and rehabilitation plan",
                "Looking after myself",
                "Practical matters and my rights",
                "Support I have declined",
                "Next steps",
                "For my care team and auditors",
            ],
        ),
        (
            swedish,
            "sv",
            [
                "Min vårdplan",
                "Om du känner dig sjuk",
                "Mina kontakter",
                "Det här är viktigt för mig",
                "Mina besvär och skattningar",
                "Min rehabiliteringsplan",
                "Stöd som jag har tackat nej till",
                "Nästa steg",
                "För vårdteamet och granskare",
            ],
        ),
    ):
        assert page.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in page
        for heading in headings:
            assert re.search(rf"<h[12][^>]*>{re.escape(heading)}</h[12]>", page), heading
        _assert_safe(page)
        assert '<th scope="col">' in page and "@page" in page and "counter(pages)" in page
    for page in (english, swedish):  # what matters, in the patient's words, escaped
        assert "Walking the dog &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;seeing&#34;" in page
    doc = care_plan_document(patients.app, patients.planned.view.id, "en")
    assert doc["assessments"][0]["ruleset_version"] in english


def test_no_document_shows_a_staff_identifier_or_a_placeholder(patients: Patients) -> None:
    app = patients.app
    documents = [
        build(app, journey.view.id, language)
        for language in ("en", "sv")
        for build, journey in (
            (care_plan_document, patients.planned),
            (care_plan_document, patients.ended),
            (end_of_treatment_summary, patients.ended),
            (care_plan_document, patients.completed),
            (end_of_treatment_summary, patients.completed),
        )
    ]
    for doc in documents:
        text = json.dumps(doc, ensure_ascii=False) + render_html(doc)
        assert "STAFF-" not in text and "staff_ref" not in text
        assert not re.search(r"\b(TBC|TBD|xxx+|0000)\b", text, re.IGNORECASE)
        phones = _phones(doc)
        assert phones and all(phone_problem(p, national=True) is None for p in phones), phones


def test_every_rendering_says_when_it_is_example_data(patients: Patients, tmp_path: Path) -> None:
    english = render_html(care_plan_document(patients.app, patients.planned.view.id, "en"))
    swedish = render_html(end_of_treatment_summary(patients.swedish, patients.ended.view.id, "sv"))
    assert 'class="example-banner"' in english and "EXAMPLE DATA" in english
    assert "(example)" in english and "EXAMPLE DATA - not for a real patient" in english  # each number, each page
    assert "EXEMPELDATA" in swedish and "(exempel)" in swedish
    # A real directory: no banner, no marks.
    data = yaml.safe_load(patients.app.settings.service_directory.read_text(encoding="utf-8"))
    real = {
        "example": False,
        "england": {
            "emergency_number": "999",
            "twenty_four_hour_line": {
                "name_en": "Acute oncology line",
                "name_sv": "Akut onkologi",
                "phone": "0191 555 0100",
                "hours": "always",
            },
            "staff": {
                "STAFF-SYN-1": {
                    **copy.deepcopy(data["england"]["staff"]["STAFF-DEMO-1"]),
                    "example": False,
                    "team": "T",
                    "direct_line": "0191 555 0111",
                }
            },
            "teams": {
                "T": {
                    "name_en": "Oncology",
                    "name_sv": "Onkologi",
                    "phone": "0191 555 0110",
                    "hours": {"days": "weekdays", "from": "08:00", "to": "16:00"},
                }
            },
        },
    }
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(real), encoding="utf-8")
    settings = Settings(
        database_url=patients.app.settings.database_url,
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        service_directory=tmp_path / "real.yaml",
    )
    other = CarePath(settings, patients.app.clock)
    try:
        doc = care_plan_document(other, patients.planned.view.id, "sv")
    finally:
        other.close()
    page = render_html(doc)
    assert doc["directory"] == {"example": False, "health_system": "england", "version": doc["directory"]["version"]}
    assert 'class="example-banner"' not in page and "(exempel)" not in page and "EXEMPELDATA" not in page
    assert doc["contacts"]["named_contact"]["phone"] == "0191 555 0111"


def test_a_named_contact_missing_from_the_directory_is_shown_without_a_number(patients: Patients) -> None:
    settings = Settings(
        database_url=patients.app.settings.database_url, pathways_dir=PATHWAYS, rules_dir=REPO / "rules"
    )  # the bundled directory: STAFF-SYN-1 is not in it
    other = CarePath(settings, patients.app.clock)
    try:
        doc = care_plan_document(other, patients.planned.view.id, "en")
    finally:
        other.close()
    named = doc["contacts"]["named_contact"]
    assert named["in_directory"] is False and named["phone"] is None and named["name"] is None
    assert named["role_label"] == "Clinical nurse specialist" and named["team"] == "Synthetic cancer nursing team"
    page = render_html(doc)
    assert "ask your team for it" in page and "STAFF-SYN-1" not in page
    assert doc["contacts"]["twenty_four_hour_line"]["phone"] == "01632 960100"  # always there


def _assert_safe(page: str) -> None:
    """No script, no external assets, no template or Python error text."""
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page) and "<link" not in page
    for leak in ("Traceback", "Undefined", "jinja2", "{{", "{%", "None</", ">None<"):
        assert leak not in page, leak


# --- the end of treatment summary ---------------------------------------------------------------------


def test_end_of_treatment_summary_carries_the_nhs_england_template(patients: Patients) -> None:
    doc = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")
    assert set(doc) >= HEADER and doc["document_type"] == END_OF_TREATMENT
    assert doc["diagnosis"]["code"] == "breast" and doc["diagnosis"]["stage"] == "T2 N1 M0 (stage IIB)"
    assert doc["diagnosis"]["treatment_intent"]["code"] == "curative"
    treatments = {t["label"]: t for t in doc["treatments_received"]}
    assert list(treatments) == ["Breast-conserving surgery", "Radiotherapy", "Endocrine (hormone) therapy", "Surgery"]
    assert treatments["Radiotherapy"]["completed_on"] == "2026-01-15" and treatments["Radiotherapy"]["decided_on"]
    assert [o["code"] for o in doc["ongoing_treatment"]] == ["endocrine_therapy"]
    assert doc["effects_to_watch_for"] == ["fatigue"]
    summary = doc["summary"]
    assert summary["written_by"] == {"name": "Dr Syn Thetic", "role": "Consultant clinical oncologist"}
    assert (summary["course_completed_on"], summary["due_by"]) == ("2026-01-15", "2026-02-26")
    assert summary["written_on"] == "2026-01-15" and summary["on_time"] is True
    assert (summary["recorded_by"], summary["recorded_for"]) == ("system:tok_ehr", "N-4711")
    assert doc["prognosis"]["discussed"].startswith("Told the aim is cure")
    assert {"what": "Mammogram", "due_on": "2027-01-20"} in doc["surveillance"]
    assert "Cancer care review with your GP practice (within 3 months of diagnosis)" in [
        s["what"] for s in doc["surveillance"]
    ]
    assert doc["gp_actions"] == ["review fatigue at the cancer care review"]
    assert doc["gp_practice"]["phone"] == "01632 960200"
    assert doc["follow_up"]["model"] == "patient_initiated"
    assert doc["benefits_form"] is None  # curative: SR1 is for end of life
    referrals = doc["referrals_made"]["care_plan"]
    assert referrals and all(r["kind"] == "referral" and r["provider"]["phone"] for r in referrals)
    assert doc["ongoing_support"]["other"] == ["local support group"]
    json.dumps(doc)


def test_warning_signs_include_those_for_treatment_within_six_weeks_of_it(patients: Patients) -> None:
    doc = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")  # last SACT 2026-01-20
    signs = load_warning_signs(REPO / "rules" / "catalogues" / "warning_signs.yaml")
    after = [s.code for s in signs.for_diagnosis("breast", when="after_treatment")]
    during = [s.code for s in signs.for_diagnosis("breast", when="during_treatment")]
    warning = doc["warning_signs"]
    assert warning["during_treatment_apply"] is True and warning["during_treatment_until"] == "2026-03-03"
    assert {s["code"] for s in warning["signs"]} == set(after) | set(during)
    assert "fever_on_treatment" in during and "still apply until 2026-03-03" in warning["note"]
    assert doc["safety"]["kind"] == "during_treatment"
    for sign in warning["signs"]:
        assert sign["contact"]["phone"], sign["code"]
        if sign["urgency"] == "emergency":  # never a number answered in working hours only
            assert sign["contact"]["phone"] in ("01632 960100", "999"), sign
    # Seven weeks later, the summary keeps only the signs for after treatment.
    clock = patients.app.clock
    saved = clock.now()
    clock.set(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    try:
        later = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")
    finally:
        clock.set(saved)
    assert [s["code"] for s in later["warning_signs"]["signs"]] == after
    assert later["warning_signs"]["note"] is None and later["safety"]["kind"] == "after_treatment"


def test_end_of_treatment_summary_html_in_both_languages(patients: Patients) -> None:
    english = render_html(end_of_treatment_summary(patients.app, patients.ended.view.id, "en"))
    swedish = render_html(end_of_treatment_summary(patients.swedish, patients.ended.view.id, "sv"))
    for heading in (
        "End of treatment summary",
        "About this summary",
        "Diagnosis and treatment",
        "Treatment that continues",
        "Possible late effects to watch for",
        "Warning signs and who to call",
        "Planned follow-up and tests",
        "Referrals made",
        "What I have been told about my prognosis",
        "Ongoing support",
        "Actions for the GP",
    ):
        assert f">{heading}</h" in english, heading
    for heading in (
        "Sammanfattning efter avslutad behandling",
        "Om sammanfattningen",
        "Diagnos och behandling",
        "Behandling som fortsätter",
        "Varningstecken och vem du ska kontakta",
        "Planerad uppföljning och kontroller",
        "Remisser som har skickats",
        "Det här har jag fått veta om prognosen",
        "Fortsatt stöd",
        "Åtgärder för vårdcentralen",
    ):
        assert f">{heading}</h" in swedish, heading
    assert "Bröstbevarande operation" in swedish and "Kontaktsjuksköterska" in swedish
    assert "T2 N1 M0 (stage IIB)" in english and "Dr Syn Thetic" in english and "2026-02-26" in english
    staff_wrote = "review fatigue at the cancer care review"  # the team's own words, in their language
    for uk in UK_ONLY:
        assert uk not in _readable(swedish).replace(staff_wrote, ""), uk
    for page in (english, swedish):
        _assert_safe(page)


def test_staff_entered_text_is_escaped(patients: Patients) -> None:
    doc = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")
    doc["gp_actions"].append('<img src=x onerror="alert(1)">')
    doc["effects_to_watch_for"].append("</li><script>x</script>")
    doc["patient_ref"] = 'SYN-"</style><script>x</script>'  # also where it is written into the CSS
    page = render_html(doc)
    _assert_safe(page)
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page and "<img" not in page
    assert "</style><script>" not in page


def test_summary_before_it_is_written_is_a_conflict(patients: Patients) -> None:
    with pytest.raises(ConflictError, match="no end of treatment summary yet"):
        end_of_treatment_summary(patients.app, patients.planned.view.id, "en")


def test_unknown_instance(patients: Patients) -> None:
    with pytest.raises(NotFoundError):
        care_plan_document(patients.app, "00000000-0000-0000-0000-000000000000", "en")


def test_documents_after_the_pathway_completed(patients: Patients) -> None:
    """The live state is compacted; the documents still find every form's data (and the newest
    named contact, changed by a message in a parallel branch)."""
    view = patients.completed.view
    assert view.status == "completed"
    plan = care_plan_document(patients.swedish, view.id, "sv")
    assert plan["next_steps"] == {"now": [], "ready_tasks": [], "next_due_at": None, "upcoming": []}
    assert len(plan["assessments"]) == 2 and plan["contacts"]["named_contact"]["name"] == "Kim Exempelsson"
    summary = end_of_treatment_summary(patients.swedish, view.id, "sv")
    assert summary["diagnosis"]["code"] == "kidney" and summary["warning_signs"]["diagnosis"] == "general"
    assert summary["follow_up"]["label"].startswith("Patientinitierad")
    assert summary["diagnosis"]["stage"] is None  # not recorded: shown as such
    page = render_html(summary)
    assert "Inte registrerat." in page
    _assert_safe(page)
    _assert_safe(render_html(plan))


def test_render_refuses_unknown_documents() -> None:
    with pytest.raises(ValueError, match="no HTML template"):
        render_html({"document_type": "letter", "language": "en"})


def test_both_languages_have_the_same_strings() -> None:
    folder = REPO / "engine" / "documents" / "locales"
    english, swedish = (yaml.safe_load((folder / f"{lang}.yaml").read_text(encoding="utf-8")) for lang in ("en", "sv"))

    def keys(value: Any, prefix: str = "") -> set[str]:
        if isinstance(value, dict):
            return {k for key, child in value.items() for k in keys(child, f"{prefix}/{key}")} | {prefix}
        if isinstance(value, list):
            return {k for i, child in enumerate(value) for k in keys(child, f"{prefix}/{i}")} | {prefix}
        return {prefix}

    assert keys(english) == keys(swedish)


def test_documents_contract_is_written_down() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "documents.md").read_text(encoding="utf-8")
    for name in (
        "care_plan_document",
        "end_of_treatment_summary",
        "render_html",
        "render_pdf",
        "schema_version",
        "ConflictError",
        "CAREPATH_SERVICE_DIRECTORY",
        "CAREPATH_ENV",
        "reasons",
        "application/pdf",
    ):
        assert name in text, name


# --- printed: in Chromium and as the PDF for the GP (issue 15, points 5 and 6) ---------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE_OF = {"en": "Page {n} of {total}", "sv": "Sida {n} av {total}"}
META = {"en": "For my care team and auditors", "sv": "För vårdteamet och granskare"}


class _Text(HTMLParser):
    """The text a reader sees (outside <head>, <style> and <script>): words, and identifiers (<code>,
    which may break anywhere at the end of a line)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.codes: list[str] = []
        self.hidden = self.code = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.hidden += tag in ("head", "style", "script")
        self.code += tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("head", "style", "script")
        self.code -= tag == "code"

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            (self.codes if self.code else self.words).append(data)


def _words(text: str) -> Counter[str]:
    """Words, as a PDF's text gives them back (its ligatures, fi and ffe, undone)."""
    return Counter(re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower()))


def _pdf_pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _check_printed(pages: list[str], doc: dict[str, Any], page: str) -> None:
    """Every page: page N of M, the patient reference and the document's date; the words of the HTML,
    all of them; and the technical details never on a page of their own."""
    language, day = doc["language"], doc["generated_at"][:10]
    assert len(pages) >= 2, pages
    for n, text in enumerate(pages, start=1):
        assert PAGE_OF[language].format(n=n, total=len(pages)) in text, (n, text[:300])
        assert doc["patient_ref"] in text and day in text, (n, text[:300])
    parser = _Text()
    parser.feed(page)
    printed = "\n".join(pages)
    missing = _words(" ".join(parser.words)) - _words(printed)
    assert not missing, missing
    squeezed = re.sub(r"\s", "", printed)
    assert all(re.sub(r"\s", "", code) in squeezed for code in parser.codes)
    [last] = [text for text in pages if META[language] in text]
    running = {doc["title"], doc["patient_ref"], day}
    lines = [
        line
        for line in last.splitlines()
        if line.strip() and not any(r in line for r in running) and not line.startswith(PAGE_OF[language].split(" ")[0])
    ]
    assert not lines[0].startswith(META[language]), lines[:5]  # something of the document before them


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_documents_print_in_chromium_with_page_numbers_in_both_languages(patients: Patients, tmp_path: Path) -> None:
    app = patients.app
    docs = {
        "care-plan-en": care_plan_document(app, patients.planned.view.id, "en"),
        "care-plan-sv": care_plan_document(patients.swedish, patients.planned.view.id, "sv"),
        "summary-en": end_of_treatment_summary(app, patients.ended.view.id, "en"),
        "summary-sv": end_of_treatment_summary(patients.swedish, patients.ended.view.id, "sv"),
    }
    runs = {}
    for name, doc in docs.items():  # side by side: a browser start is most of the time
        (tmp_path / f"{name}.html").write_text(render_html(doc), encoding="utf-8")
        command = [
            str(CHROMIUM),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp_path / name}-profile",
            f"--print-to-pdf={tmp_path / name}.pdf",
            (tmp_path / f"{name}.html").as_uri(),
        ]
        if os.geteuid() == 0:  # Chromium's sandbox refuses root (a CI container)
            command.insert(1, "--no-sandbox")
        runs[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = {name: run.communicate(timeout=180)[1] for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, errors[name].decode(errors="replace")[-2000:]
        doc = docs[name]
        pages = _pdf_pages((tmp_path / f"{name}.pdf").read_bytes())
        _check_printed(pages, doc, render_html(doc))
        text = "\n".join(pages)
        assert doc["safety"]["phone"] in text and "EXAMPLE DATA" in text or "EXEMPELDATA" in text
    english, swedish = (
        "\n".join(_pdf_pages((tmp_path / f"care-plan-{lang}.pdf").read_bytes())) for lang in ("en", "sv")
    )
    assert "Sam Example" in english and "01632 960111" in english and "You scored worry, fear or anxiety" in english
    assert "Kim Exempelsson" in swedish and "08-465 004 11" in swedish and "Min rehabiliteringsplan" in swedish
    assert "Du skattade oro, rädsla eller ångest" in swedish and "Kurator" in swedish


@pytest.mark.slow
def test_the_pdf_for_the_gp_has_the_content_of_the_page(patients: Patients) -> None:
    for doc in (
        end_of_treatment_summary(patients.app, patients.ended.view.id, "en"),
        care_plan_document(patients.swedish, patients.planned.view.id, "sv"),
    ):
        pdf = render_pdf(doc)
        assert pdf.startswith(b"%PDF-")
        pages = _pdf_pages(pdf)
        _check_printed(pages, doc, render_html(doc))
