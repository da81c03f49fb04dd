"""Messages the safety features read (issue 13): a treatment status or warning sign report of the wrong shape
is refused whole, with every field named and nothing recorded; what is missing from a report never is."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import RuleEvaluationRecord
from engine.errors import TaskDataError

from .journey import PATIENT, Journey
from .journeys import DIAGNOSED, SITES, _start, _support
from .safety_journeys import care_plan


def _started(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    site = SITES["general"]
    return Journey(
        app,
        clock,
        site.pathway,
        patient,
        {"diagnosis": site.diagnosis, "diagnosis_date": DIAGNOSED, "age": site.age, "treatment_intent": "palliative"},
    )


def test_a_wrong_treatment_status_is_refused_and_nothing_is_recorded(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _started(bundled, journey_clock, "SYN-0501")
    before = bundled.instances.get(j.view.id).version
    with pytest.raises(TaskDataError) as refused:
        j.message(
            "treatment_status_changed",
            {
                "on_sact": "yes",
                "last_sact_date": "2026-02-30",
                "smoking_status": "sometimes",
                "chemo": True,
                "named_contact": {"staff_ref": "STAFF-SYN-9"},
            },
        )
    # A treatment message may set treatment and smoking, never the named contact.
    assert sorted(p.field for p in refused.value.problems) == [
        "/chemo",
        "/last_sact_date",
        "/named_contact",
        "/on_sact",
        "/smoking_status",
    ]
    assert "yes" not in str(refused.value) and "sometimes" not in str(refused.value)  # no patient values
    assert bundled.instances.get(j.view.id).version == before
    j.message("treatment_status_changed", {"on_sact": True, "last_sact_date": "2026-01-14"})
    assert bundled.instances.instance_data(j.view.id)["patient_status_record"] == {
        "on_sact": True,
        "last_sact_date": "2026-01-14",
    }


def test_the_triage_cannot_rewrite_what_the_patient_reported(bundled: CarePath, journey_clock: ManualClock) -> None:
    """The report is the form's read-only field: a client may send it back as it is (echoing the form),
    never changed; the refusal names the field, not the values, and nothing is recorded."""
    j = _started(bundled, journey_clock, "SYN-0503")
    j.message("warning_sign_reported", {"warning_sign": "fever_on_treatment", "description": "38.9 and shivering"})
    task = j.task("triage")
    report = task["form"]["properties"]["report"]["default"]
    before = bundled.instances.get(j.view.id).version
    for changed in ({**report, "urgency": "soon"}, {**report, "description": "fine now"}, {}):
        with pytest.raises(TaskDataError) as refused:
            bundled.instances.complete_task(j.view.id, task["id"], {"triage_rating": "red", "report": changed}, "n")
        assert [(p.field, p.code) for p in refused.value.problems] == [("/report", "readOnly")]
        assert "shivering" not in str(refused.value) and "fine now" not in str(refused.value)
    assert bundled.instances.get(j.view.id).version == before
    j.do("triage", {"triage_rating": "red", "report": report})  # echoed unchanged: accepted
    assert bundled.instances.instance_data(j.view.id)["report"]["description"] == "38.9 and shivering"


def test_the_problem_as_triaged_must_be_a_sign_of_the_catalogue(bundled: CarePath, journey_clock: ManualClock) -> None:
    """The web page offers the patient's signs by name; a client sending the code itself gets the same bound
    from the engine (``x-carepath-choices``): a code that no sign has is refused, named by field, not quoted."""
    j = _started(bundled, journey_clock, "SYN-0504")
    j.message("warning_sign_reported", {"warning_sign": "fever_on_treatment"})
    task = j.task("triage")
    before = bundled.instances.get(j.view.id).version
    with pytest.raises(TaskDataError) as refused:
        bundled.instances.complete_task(
            j.view.id, task["id"], {"triage_rating": "red", "warning_sign": "fevr_on_treatment"}, "n"
        )
    assert [(p.field, p.code, p.message) for p in refused.value.problems] == [
        ("/warning_sign", "enum", "is not a warning sign of the catalogue in use")
    ]
    assert "fevr" not in str(refused.value)
    assert bundled.instances.get(j.view.id).version == before
    j.do("triage", {"triage_rating": "red", "warning_sign": "breast_new_lump"})  # another list's sign: accepted
    assert bundled.instances.instance_data(j.view.id)["warning_sign"] == "breast_new_lump"


def test_a_report_without_a_known_sign_is_triaged_as_the_most_urgent(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _started(bundled, journey_clock, "SYN-0502")
    j.message("warning_sign_reported", {"warning_sign": "feeling_awful"})
    shown = j.task("triage")["form"]["properties"]["report"]["default"]
    assert (shown["code"], shown["known"], shown["urgency"], shown["escalate_after"]) == (
        "feeling_awful",
        False,
        None,
        "PT30M",
    )
    j.do("triage", {"triage_rating": "green", "advice_given": "Fluids and rest"})
    j.do("self_care", {"advice_given": "Call again if worse"})
    assert "inform_on_call" in j.ready  # the first report is still being followed up...
    j.message("warning_sign_reported")  # ...and a second one, even empty, is accepted at once
    assert j.task("triage")["form"]["properties"]["report"]["default"]["name"] == "no sign named"
    assert "inform_on_call" in j.ready


def test_a_report_of_the_wrong_shape_is_refused(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _started(bundled, journey_clock, "SYN-0503")
    with pytest.raises(TaskDataError) as refused:
        j.message("warning_sign_reported", {"warning_sign": 38.5, "description": "x" * 2001})
    assert sorted(p.field for p in refused.value.problems) == ["/description", "/warning_sign"]
    assert "triage" not in j.ready


@pytest.mark.parametrize(
    ("site_key", "patient", "diagnosis"), [("breast", "SYN-0511", "breast"), ("general", "SYN-0512", None)]
)
def test_a_diagnosis_naming_no_site_is_the_site_of_its_pathway(
    bundled: CarePath, journey_clock: ManualClock, site_key: str, patient: str, diagnosis: str | None
) -> None:
    """ "Invasive ductal carcinoma" names no site, but on the breast pathway it is breast cancer: back pain 6 is
    discussed with acute oncology the same day (mscc-back-pain, NICE NG234), as for "Breast cancer". On the
    general pathway the same words are any other cancer, whose threshold is 8."""
    j = _start(bundled, journey_clock, replace(SITES[site_key], diagnosis="Invasive ductal carcinoma"), patient)
    _support(j, "no")
    j.do("offer_hna", {"hna_accepted": True})
    j.do("complete_checklist", {"concerns": {"back_pain": 6}, "about_you": {}}, actor=PATIENT)
    review = [i for i in care_plan(j) if i.code == "acute-oncology-review"]
    with bundled.sessions() as session:
        [evaluation] = session.scalars(
            select(RuleEvaluationRecord).where(RuleEvaluationRecord.instance_id == j.view.id)
        )
    facts = evaluation.facts
    if diagnosis is None:
        assert review == [] and facts[0]["diagnosis"] == "invasive_ductal_carcinoma"
    else:
        assert [(i.urgency, i.status) for i in review] == [("urgent", "proposed")]
        assert facts[0]["diagnosis"] == diagnosis  # what the rules saw, recorded
        assert "mscc-back-pain" in [f["rule"] for f in evaluation.fired]
    assert bundled.instances.instance_data(j.view.id)["diagnosis"] == "Invasive ductal carcinoma"  # kept as written
