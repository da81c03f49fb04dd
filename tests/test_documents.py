"""The Personalised Care Plan and the End of Treatment Summary, from real bundled pathways.

Synthetic patients (SYN-DOC-...) are driven through the bundled breast and general pathways with the
journeys of tests/pathways_bundled, then the documents are read as JSON and as HTML in both languages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pathways_bundled.conftest import bundled_app
from pathways_bundled.journey import PATHWAYS, PATIENT, REPO, Journey
from pathways_bundled.journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES, Options, full_journey
from pathways_bundled.journeys import _end_of_treatment as end_of_treatment
from pathways_bundled.journeys import _mdt as mdt
from pathways_bundled.journeys import _start as start
from pathways_bundled.journeys import _support as support
from pathways_bundled.journeys import _treatment as treatment

from engine import CarePath, ConflictError, ManualClock, NotFoundError, Settings
from engine.documents.build import (
    CARE_PLAN,
    END_OF_TREATMENT,
    SCHEMA_VERSION,
    care_plan_document,
    end_of_treatment_summary,
    render_html,
    resolve_language,
)
from engine.documents.warning_signs import load_warning_signs
from engine.rules import get_evaluation

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
WHAT_MATTERS = 'Walking the dog <script>alert("x")</script> & "seeing" my grandchildren'
HEADER = {"document_type", "schema_version", "generated_at", "instance_id", "pathway_id", "pathway_version",
          "language"}


@dataclass
class Patients:
    app: CarePath
    planned: Journey  # care plan agreed, referrals sent (referred), one of them completed; in treatment
    ended: Journey  # end of treatment summary written
    completed: Journey  # the whole pathway done


def _hna(journey: Journey, what_matters: str) -> None:
    """The HNA at diagnosis with high concerns: agree everything but information, which is declined."""
    journey.do("offer_hna", {"hna_accepted": True})
    journey.do("complete_checklist", {"concerns": HIGH_CONCERNS, "about_you": ABOUT_WORKING_PARENT},
               actor=PATIENT)
    journey.do("priority_review", {"discussed_on": journey.today(), "urgent_action": "same_day_referral"})
    decisions = {i.id: "declined" if i.kind == "information" else "agreed" for i in journey.proposals()}
    journey.do("agree", {"decisions": decisions, "what_matters": what_matters, "review_on": "2026-07-01"})
    journey.do("send_referrals", {"referrals_sent_on": journey.today()})
    journey.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Patients]:
    folder = tmp_path_factory.mktemp("documents")
    clock = ManualClock(START)
    template = folder / "template.sqlite3"
    setup = CarePath(Settings(database_url=f"sqlite:///{template}", pathways_dir=PATHWAYS, rules_dir=REPO / "rules"),
                     clock, upgrade=True)
    setup.catalog.sync_library()
    setup.close()
    app = bundled_app(template, folder / "db", clock)
    try:
        # First, and the clock set back: its waits fire every due timer in the database.
        completed = full_journey(app, clock, SITES["general"], "SYN-DOC-0003", Options(support="later"))
        clock.set(START)
        site = SITES["breast"]
        planned = start(app, clock, site, "SYN-DOC-0001")
        support(planned, "yes_now")
        _hna(planned, WHAT_MATTERS)
        referral = next(i for i in app.care_plans.get(planned.view.id).items if i["kind"] == "referral")
        app.care_plans.set_status(planned.view.id, referral["id"], "completed", "clinician:cns-syn")
        planned.view = app.instances.get(planned.view.id)  # the status change is a new revision
        mdt(planned, site, prehab=False, special=False)

        ended = start(app, clock, site, "SYN-DOC-0002")
        support(ended, "later")
        _hna(ended, "Getting back to work")
        mdt(ended, site, prehab=False, special=False)
        treatment(ended, site, special=False)
        ended.hna_declined()
        end_of_treatment(ended, "patient_initiated")

        yield Patients(app, planned, ended, completed)
    finally:
        app.close()


# --- the care plan ---------------------------------------------------------------------------------


def test_care_plan_json(patients: Patients) -> None:
    doc = care_plan_document(patients.app, patients.planned.view.id, "en")
    assert set(doc) >= HEADER
    assert (doc["document_type"], doc["schema_version"], doc["language"]) == (CARE_PLAN, SCHEMA_VERSION, "en")
    assert doc["pathway_id"] == "breast_cancer" and doc["patient_ref"] == "SYN-DOC-0001"
    assert doc["what_matters"] == WHAT_MATTERS
    assert doc["named_contact"]["role_label"] == "Clinical nurse specialist"
    assert doc["diagnosis"]["label"] == "Breast cancer"
    scores = {n["code"]: (n["score"], n["level"]) for n in doc["needs"]}
    assert scores == {"worry_fear_anxiety": (9, "priority"), "money_housing": (7, "discuss"),
                      "fatigue": (6, "discuss")}
    assert [n["code"] for n in doc["needs"]][0] == "worry_fear_anxiety"  # worst first
    assert doc["agreed"] and doc["declined"] and doc["awaiting_decision"] == []
    assert {i["kind"] for i in doc["declined"]} == {"information"}
    # Sending the agreed referrals marked them referred; one has since been completed.
    referrals = [i for i in doc["agreed"] if i["kind"] == "referral"]
    assert len(referrals) > 1 and all(i["service"]["name"] for i in referrals)
    assert sorted(i["status"] for i in referrals) == ["completed"] + ["referred"] * (len(referrals) - 1)
    assert {i["status"] for i in doc["agreed"] if i["kind"] != "referral"} == {"agreed"}
    json.dumps(doc)  # JSON all the way down


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


def test_care_plan_next_steps(patients: Patients) -> None:
    steps = care_plan_document(patients.app, patients.planned.view.id, "en")["next_steps"]
    assert {t["element"] for t in steps["ready_tasks"]} >= {"treatment", "first_review"}
    upcoming = {u["code"]: u["due_on"] for u in steps["upcoming"]}
    assert upcoming == {"cancer_care_review_3_months": "2026-04-12", "cancer_care_review_12_months": "2027-01-12",
                        "quality_of_life_survey": "2027-07-12", "care_plan_review": "2026-07-01"}
    assert [u["due_on"] for u in steps["upcoming"]] == sorted(upcoming.values())
    assert steps["next_due_at"].startswith("2026-04-12")


def test_care_plan_in_swedish(patients: Patients) -> None:
    doc = care_plan_document(patients.app, patients.planned.view.id, "sv-SE")
    assert doc["language"] == "sv" and doc["title"] == "Min vårdplan"
    assert {n["name"] for n in doc["needs"]} >= {"Oro, rädsla eller ångest"}
    assert doc["named_contact"]["role_label"] == "Kontaktsjuksköterska"
    referral = next(i for i in doc["agreed"] if i["status"] == "referred")
    assert referral["status_label"] == "Remiss skickad" and referral["kind_label"] == "Remiss"
    assert referral["name"].startswith("Remiss")


def test_other_languages_fall_back_to_english(patients: Patients) -> None:
    assert [resolve_language(x) for x in ("sv", "SV", "sv_SE", "en-GB", "de", "", None)] == \
        ["sv", "sv", "sv", "en", "en", "en", "en"]
    assert care_plan_document(patients.app, patients.planned.view.id, "de")["language"] == "en"


def test_care_plan_html(patients: Patients) -> None:
    english = render_html(care_plan_document(patients.app, patients.planned.view.id, "en"))
    swedish = render_html(care_plan_document(patients.app, patients.planned.view.id, "sv"))
    for page, lang, headings in (
        (english, "en", ["My personalised care and support plan", "What matters to me", "My named contact",
                         "My concerns and scores", "Support I have agreed to", "Support I have declined",
                         "Next steps", "How these proposals were made"]),
        (swedish, "sv", ["Min vårdplan", "Det här är viktigt för mig", "Min kontaktsjuksköterska",
                         "Mina besvär och skattningar", "Stöd som jag har tackat ja till",
                         "Stöd som jag har tackat nej till", "Nästa steg", "Så togs förslagen fram"]),
    ):
        assert page.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in page
        for heading in headings:
            assert re.search(rf"<h[12][^>]*>{re.escape(heading)}</h[12]>", page), heading
        _assert_safe(page)
        assert '<th scope="col">' in page and "@media print" in page
    for page in (english, swedish):  # what matters, in the patient's words, escaped
        assert "Walking the dog &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;seeing&#34;" in page
    doc = care_plan_document(patients.app, patients.planned.view.id, "en")
    for item in doc["agreed"]:
        assert item["why"]["evaluation_id"] in english and item["why"]["rules"][0]["id"] in english
    assert doc["assessments"][0]["ruleset_version"] in english


def _assert_safe(page: str) -> None:
    """No script, no external assets, no template or Python error text."""
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page) and "<link" not in page
    for leak in ("Traceback", "Undefined", "jinja2", "{{", "{%", "None</"):
        assert leak not in page, leak


# --- the end of treatment summary ---------------------------------------------------------------------


def test_end_of_treatment_summary_json(patients: Patients) -> None:
    doc = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")
    assert set(doc) >= HEADER and doc["document_type"] == END_OF_TREATMENT
    assert doc["diagnosis"]["code"] == "breast" and doc["diagnosis"]["treatment_intent"]["code"] == "curative"
    assert [t["label"] for t in doc["treatments_received"]] == ["Breast-conserving surgery", "Radiotherapy",
                                                                 "Surgery"]
    assert doc["effects_to_watch_for"] == ["fatigue"]
    assert doc["gp_actions"] == ["review fatigue at the cancer care review"]
    assert doc["follow_up"]["model"] == "patient_initiated"
    signs = load_warning_signs(REPO / "rules" / "catalogues" / "warning_signs.yaml")
    expected = [s.code for s in signs.for_diagnosis("breast", when="after_treatment")]
    assert [s["code"] for s in doc["warning_signs"]["signs"]] == expected
    assert "breast_new_lump" in expected and doc["warning_signs"]["explained"] is True
    assert doc["warning_signs"]["signs"][0]["urgency"] == "emergency"
    assert {s["code"] for s in doc["who_to_call"]["services"]} >= {"key-worker"}
    assert doc["who_to_call"]["named_contact"]["team"] == "Synthetic cancer nursing team"
    support = doc["ongoing_support"]
    assert support["other"] == ["local support group"]
    assert support["care_plan"] and all(i["why"]["evaluation_id"] for i in support["care_plan"])


def test_end_of_treatment_summary_html_in_both_languages(patients: Patients) -> None:
    english = render_html(end_of_treatment_summary(patients.app, patients.ended.view.id, "en"))
    swedish = render_html(end_of_treatment_summary(patients.app, patients.ended.view.id, "sv"))
    for heading in ("End of treatment summary", "Diagnosis and treatment", "Warning signs and who to call",
                    "Ongoing support", "Actions for the GP", "Follow-up"):
        assert f">{heading}</h" in english, heading
    for heading in ("Sammanfattning efter avslutad behandling", "Diagnos och behandling",
                    "Varningstecken och vem du ska kontakta", "Fortsatt stöd", "Åtgärder för vårdcentralen",
                    "Uppföljning"):
        assert f">{heading}</h" in swedish, heading
    assert "Bröstbevarande operation" in swedish and "Kontaktsjuksköterska" in swedish
    for page in (english, swedish):
        _assert_safe(page)


def test_staff_entered_text_is_escaped(patients: Patients) -> None:
    doc = end_of_treatment_summary(patients.app, patients.ended.view.id, "en")
    doc["gp_actions"].append('<img src=x onerror="alert(1)">')
    doc["effects_to_watch_for"].append("</li><script>x</script>")
    page = render_html(doc)
    _assert_safe(page)
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page and "<img" not in page


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
    plan = care_plan_document(patients.app, view.id, "sv")
    assert plan["next_steps"] == {"ready_tasks": [], "next_due_at": None, "upcoming": []}
    assert len(plan["assessments"]) == 2 and plan["named_contact"]["team"] == "Synthetic community team"
    summary = end_of_treatment_summary(patients.app, view.id, "sv")
    assert summary["diagnosis"]["code"] == "kidney" and summary["warning_signs"]["diagnosis"] == "general"
    assert summary["follow_up"]["label"].startswith("Patientinitierad")
    _assert_safe(render_html(summary))
    _assert_safe(render_html(plan))


def test_render_refuses_unknown_documents() -> None:
    with pytest.raises(ValueError, match="no HTML template"):
        render_html({"document_type": "letter", "language": "en"})


def test_documents_contract_is_written_down() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "documents.md").read_text(encoding="utf-8")
    for name in ("care_plan_document", "end_of_treatment_summary", "render_html", "schema_version", "ConflictError"):
        assert name in text
