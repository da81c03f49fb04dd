"""End of Treatment Summaries per phase of care, and the task when one is overdue (issue 15, point 3).

A phase is a course of treatment that ends (first-line treatment; the treatment of a recurrence); each
gets its own summary, and one not written within 6 weeks of its end opens a task for the named contact
(engine.careplan.summaries). Synthetic patients on the bundled breast pathway, a manual clock.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from engine import CarePath, ConflictError, ManualClock, NotFoundError
from engine.db.models import InstanceEvent, TreatmentSummary, WebhookDelivery
from engine.documents.build import end_of_treatment_summaries, end_of_treatment_summary, render_html

from .journey import Journey, contact
from .journeys import SITES, _mdt, _start, _support, _treatment, course_ended

SITE = SITES["breast"]
SUMMARY = {
    "summary_treatments": ["surgery"],
    "effects_to_watch_for": ["fatigue"],
    "warning_signs_given": True,
    "gp_actions": ["review fatigue"],
    "follow_up_model": "patient_initiated",
}


def _course_ended(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Diagnosis to the end of first-line treatment (today): the summary is awaited."""
    return course_ended(app, clock, "breast", patient, support="later")


def _events(app: CarePath, instance_id: str, *types: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type.in_(types))
                .order_by(InstanceEvent.seq)
            )
        )


def _rows(app: CarePath, instance_id: str) -> list[TreatmentSummary]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(TreatmentSummary)
                .where(TreatmentSummary.instance_id == instance_id)
                .order_by(TreatmentSummary.number)
            )
        )


def test_an_overdue_summary_opens_a_task_at_six_weeks_and_not_before(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    bundled.webhook_admin.add("https://receiver.example/hooks", ["summary.overdue"])
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0001")
    ended = journey_clock.now().date()
    assert bundled.treatment_summaries.open_due() == 0  # noted as awaited, not overdue
    [row] = _rows(bundled, j.view.id)
    assert (row.status, row.phase, row.number, row.ended_on) == ("due", "first_line", 1, ended)
    assert row.due_by == ended + timedelta(weeks=6)

    # The last minute of the 6th week: a summary written now is still on time.
    journey_clock.set(datetime.combine(row.due_by, datetime.max.time(), journey_clock.now().tzinfo))
    assert bundled.treatment_summaries.open_due() == 0
    assert bundled.treatment_summaries.list_overdue() == []
    journey_clock.advance(timedelta(seconds=1))
    assert bundled.treatment_summaries.open_due() == 1
    assert bundled.treatment_summaries.open_due() == 0  # once
    [task] = bundled.treatment_summaries.list_overdue()
    assert task["kind"] == "summary_overdue" and task["instance_id"] == j.view.id
    assert (task["assignee"], task["phase"], task["number"]) == ("STAFF-SYN-1", "first_line", 1)
    assert task["patient_ref"] == "SYN-EOT-0001" and task["due_by"] == row.due_by.isoformat()
    [opened] = _events(bundled, j.view.id, "summary_overdue")
    assert opened.actor == "engine"  # the system's timer, not a person
    assert json.loads(opened.payload) == {
        "summary": row.id,
        "number": 1,
        "phase": "first_line",
        "ended_on": ended.isoformat(),
        "due_by": row.due_by.isoformat(),
    }
    with bundled.sessions() as session:  # subscribers hear of it (ids, codes and dates only)
        [webhook] = session.scalars(select(WebhookDelivery)).all()
    assert webhook.event_type == "summary.overdue"
    assert {k: json.loads(webhook.body)["data"][k] for k in ("summary_id", "phase", "phase_number", "due_by")} == {
        "summary_id": row.id,
        "phase": "first_line",
        "phase_number": 1,
        "due_by": row.due_by.isoformat(),
    }

    # Writing the summary closes the task in the same step.
    j.view = bundled.instances.get(j.view.id)
    j.do("write_summary", SUMMARY)
    assert bundled.treatment_summaries.list_overdue() == []
    [row] = _rows(bundled, j.view.id)
    assert row.status == "written" and row.closed_at == journey_clock.now() and row.written_by == "clinician:cns-syn"
    [closed] = _events(bundled, j.view.id, "summary_overdue_closed")
    assert json.loads(closed.payload)["outcome"] == "written"
    assert bundled.treatment_summaries.open_due() == 0


def test_a_summary_written_in_time_opens_no_task(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0002")
    bundled.treatment_summaries.open_due()
    journey_clock.advance(timedelta(weeks=6))
    j.do("write_summary", SUMMARY)
    journey_clock.advance(timedelta(weeks=10))
    assert bundled.treatment_summaries.open_due() == 0
    [row] = _rows(bundled, j.view.id)
    assert row.status == "written" and row.overdue_at is None
    assert _events(bundled, j.view.id, "summary_overdue", "summary_overdue_closed") == []


def test_a_summary_written_is_on_the_trail_and_heard_by_subscribers(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """Writing the summary records ``summary_written`` (ids and codes only) and a subscriber of
    ``summary.written`` hears of it in the same step, to fetch the document and show or send it."""
    bundled.webhook_admin.add("https://receiver.example/written", ["summary.written"])
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0009")
    j.do("write_summary", SUMMARY)
    [row] = _rows(bundled, j.view.id)
    [written] = _events(bundled, j.view.id, "summary_written")
    assert json.loads(written.payload) == {"summary": row.id, "number": 1, "phase": "first_line"}
    assert (written.element, written.actor) == ("keep_summary", "clinician:cns-syn")  # the step of who wrote it
    with bundled.sessions() as session:
        deliveries = [d for d in session.scalars(select(WebhookDelivery)) if d.event_type == "summary.written"]
    [delivery] = [d for d in deliveries if json.loads(d.body)["data"]["instance_id"] == j.view.id]
    data = json.loads(delivery.body)["data"]
    assert (data["summary_id"], data["phase"], data["phase_number"], data["trail_seq"]) == (
        row.id,
        "first_line",
        1,
        written.seq,
    )
    assert "SYN-EOT" not in delivery.body  # never the patient's reference


def test_an_instance_that_ends_without_its_summary_closes_the_task(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0003")
    bundled.treatment_summaries.open_due()
    journey_clock.advance(timedelta(weeks=7))
    assert bundled.treatment_summaries.open_due() == 1
    bundled.instances.cancel(j.view.id, "clinician:cns-syn", "transferred")
    bundled.treatment_summaries.open_due()
    assert bundled.treatment_summaries.list_overdue() == []
    [row] = _rows(bundled, j.view.id)
    assert row.status == "closed" and row.closed_at is not None and row.written_at is None
    [closed] = _events(bundled, j.view.id, "summary_overdue_closed")
    assert closed.actor == "engine" and json.loads(closed.payload)["outcome"] == "closed"


def _recurrence_treated(j: Journey, weeks_later: int) -> None:
    """A recurrence, assessed, then its own course of treatment ends ``weeks_later`` weeks on."""
    j.message("recurrence_confirmed")
    j.hna_declined()  # on recurrence
    assert "rec_treatment" not in j.ready  # the course is under way: nothing to record yet
    j.wait(7 * weeks_later)
    j.message("recurrence_treatment_completed")
    j.do("rec_treatment", {"treatments_received": ["chemotherapy", "radiotherapy"], "completed_on": j.today()})
    j.hna_declined()  # at the end of the course for the recurrence


def test_two_phases_give_two_summaries_with_their_own_dates(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0004")
    first_ended = j.today()
    j.do("write_summary", SUMMARY)
    j.do("discuss", {"discussed_on": j.today(), "copy_given": True}).do("send_to_gp", {"sent_on": j.today()})
    j.do("explain_pifu", {"arranged_on": j.today()})
    _recurrence_treated(j, weeks_later=20)
    second_ended = j.today()
    assert "write_summary" in j.ready
    j.do(
        "write_summary",
        {**SUMMARY, "summary_treatments": ["chemotherapy for the recurrence"], "gp_actions": ["check blood counts"]},
    )
    first, second = _rows(bundled, j.view.id)
    assert (first.number, first.phase, first.ended_on.isoformat()) == (1, "first_line", first_ended)
    assert (second.number, second.phase, second.ended_on.isoformat()) == (2, "recurrence", second_ended)
    assert first.status == second.status == "written" and first.written_at < second.written_at
    kept = json.loads(first.content), json.loads(second.content)
    assert [k["completed_on"] for k in kept] == [first_ended, second_ended]
    assert kept[0]["treatments_received"] == SITE.treatments
    assert kept[1]["treatments_received"] == ["chemotherapy", "radiotherapy"]
    assert [k["gp_actions"] for k in kept] == [["review fatigue"], ["check blood counts"]]

    # Each phase's summary is its own document, with its own treatments and dates.
    docs = [end_of_treatment_summary(bundled, j.view.id, "en", phase) for phase in (1, 2)]
    assert [d["phase"]["number"] for d in docs] == [1, 2]
    assert [d["phase"]["label"] for d in docs] == ["First treatment", "Treatment of a recurrence"]
    assert [d["completed_on"] for d in docs] == [first_ended, second_ended]
    assert [d["summary"]["course_completed_on"] for d in docs] == [first_ended, second_ended]
    assert docs[0]["summary"]["due_by"] == (date.fromisoformat(first_ended) + timedelta(weeks=6)).isoformat()
    assert [t["label"] for t in docs[0]["treatments_received"]] == [
        "Breast-conserving surgery",
        "Radiotherapy",
        "Surgery",
    ]
    assert [t["completed_on"] for t in docs[1]["treatments_received"] if t["code"]] == [second_ended] * 2
    assert {t["code"] for t in docs[1]["treatments_received"]} == {"chemotherapy", "radiotherapy", None}
    assert docs[0]["treatments_received"][0]["decided_on"] and docs[1]["treatments_received"][0]["decided_on"] is None
    assert [d["gp_actions"] for d in docs] == [["review fatigue"], ["check blood counts"]]
    assert [d["summary"]["written_on"] for d in docs] == [first_ended, second_ended]
    assert end_of_treatment_summary(bundled, j.view.id, "en")["phase"]["number"] == 2  # the latest
    listed = end_of_treatment_summaries(bundled, j.view.id, "sv")["phases"]
    assert [(p["number"], p["code"], p["ended_on"], p["status"]) for p in listed] == [
        (1, "first_line", first_ended, "written"),
        (2, "recurrence", second_ended, "written"),
    ]
    assert listed[1]["label"] == "Behandling av återfall"

    # Swedish: each printed summary names its phase and its own course's end, and lists the other.
    for number, ended, other in ((1, first_ended, second_ended), (2, second_ended, first_ended)):
        page = render_html(end_of_treatment_summary(bundled, j.view.id, "sv-SE", number))
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        assert 'lang="sv"' in page and "Sammanfattning efter avslutad behandling" in text
        assert f"Behandlingen avslutades {ended}" in text
        assert f"Andra sammanfattningar {3 - number}." in text and f"({other})" in text
    assert "Behandling av återfall" in render_html(end_of_treatment_summary(bundled, j.view.id, "sv", 2))


def test_a_phase_without_its_summary_is_refused_clearly(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0005")
    bundled.treatment_summaries.open_due()
    with pytest.raises(ConflictError, match="phase 1"):
        end_of_treatment_summary(bundled, j.view.id, "en", 1)
    with pytest.raises(NotFoundError, match="no phase 2"):
        end_of_treatment_summary(bundled, j.view.id, "en", 2)
    [listed] = end_of_treatment_summaries(bundled, j.view.id, "en")["phases"]
    assert (listed["status"], listed["status_label"], listed["written_on"]) == ("due", "Not written yet", None)


def test_the_worker_command_opens_the_task_for_a_summary_already_overdue(
    bundled: CarePath, journey_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance that waited for its summary before the worker first looked (one started on an earlier
    version, or a worker that was down): its task opens in the worker's first turn."""
    j = _course_ended(bundled, journey_clock, "SYN-EOT-0006")  # in 2026-01, the test clock
    assert datetime.now(journey_clock.now().tzinfo) > journey_clock.now() + timedelta(weeks=7)  # the premise
    monkeypatch.setenv("CAREPATH_DATABASE_URL", str(bundled.settings.database_url))
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(bundled.settings.pathways_dir))
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(bundled.settings.rules_dir))
    result = CliRunner().invoke(main, ["worker", "--once", "--worker-id", "cli"])
    assert result.exit_code == 0, result.output
    [task] = bundled.treatment_summaries.list_overdue()
    assert (task["instance_id"], task["assignee"]) == (j.view.id, "STAFF-SYN-1")


def test_a_recurrence_treated_with_chemotherapy_gets_the_signs_for_people_on_treatment(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The last dose recorded at diagnosis (start data) must not hide the chemotherapy of the recurrence:
    its summary gives the signs for people on treatment (UKONS: up to 6 weeks after SACT), the first
    phase's (surgery and radiotherapy, months ago) does not."""
    j = Journey(
        bundled,
        journey_clock,
        SITE.pathway,
        "SYN-EOT-0007",
        {
            "diagnosis": "breast",
            "diagnosis_date": "2026-01-12",
            "age": 52,
            "treatment_intent": "curative",
            "last_sact_date": "2025-12-01",
        },
    )
    j.do("assign_contact", contact())
    _support(j, "later")
    j.hna_declined()
    _mdt(j, SITE, prehab=False, special=False)
    _treatment(j, SITE, special=False)
    j.hna_declined()
    j.do("write_summary", SUMMARY)
    _recurrence_treated(j, weeks_later=30)
    j.do("write_summary", SUMMARY)
    first, second = (end_of_treatment_summary(bundled, j.view.id, "en", n)["warning_signs"] for n in (1, 2))
    assert not first["during_treatment_apply"] and first["sact_ended_on"] is None
    assert second["during_treatment_apply"] and second["sact_ended_on"] == j.today()
    assert any(s["when"] == "during_treatment" for s in second["signs"])


def test_the_children_and_young_peoples_summary_is_of_the_end_of_the_treatment_protocol(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The children and young people's pathway names its first phase for what it is (CCLG / NICE CSG7: the
    end of the treatment protocol), so the summary is not labelled as a first-line course."""
    site = SITES["children_young_people"]
    j = _start(bundled, journey_clock, site, "SYN-EOT-CYP")
    _support(j, "later")
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    j.hna_declined()
    assert "write_summary" in j.ready
    j.do("write_summary", SUMMARY)
    [phase] = bundled.treatment_summaries.list_phases(j.view.id)
    assert phase["phase"] == "end_of_protocol"
