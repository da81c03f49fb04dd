"""A death ends the pathway (issue 14 point 3): the ``patient_died`` message cancels every survey,
reminder and review, records the event, and no invitation is ever produced for that patient again."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, PathwayInstance
from engine.errors import (
    ConflictError,
    InvalidInputError,
    MessageNotDeliverableError,
    NotFoundError,
    PatientDeceasedError,
    TaskDataError,
)
from engine.instances.timers import fire_due_timers

from .journey import Journey
from .journeys import HIGH_CONCERNS, SITES, Options, _mdt, _start, _support, full_journey


def _events(app: CarePath, instance_id: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def _mid_treatment(app: CarePath, clock: ManualClock, site: str, patient: str) -> Journey:
    """Diagnosed, assessed, the MDT plan agreed, treatment under way: the first cancer care review is
    open, the second review's and the 18-month survey's timers are waiting."""
    j = _start(app, clock, SITES[site], patient)
    _support(j, "no")
    j.hna(HIGH_CONCERNS)
    _mdt(j, SITES[site], prehab=False, special=False)
    assert "treatment" in j.ready and "first_review" in j.ready
    return j


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_death_ends_the_pathway_and_no_timer_fires_afterwards(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = _mid_treatment(bundled, journey_clock, site, "SYN-0901")
    with bundled.sessions() as session:
        assert session.get(PathwayInstance, j.view.id).next_due_at is not None  # timers were waiting
    j.message("patient_died", {"date_of_death": j.today()})
    assert (j.status, j.ready) == ("completed", [])
    with bundled.sessions() as session:
        assert session.get(PathwayInstance, j.view.id).next_due_at is None
    before = [e.seq for e in _events(bundled, j.view.id)]

    j.wait_for(timedelta(days=3 * 366))  # past the 3- and 12-month reviews and the 18-month survey

    assert (j.status, j.ready) == ("completed", [])
    events = _events(bundled, j.view.id)
    assert [e.seq for e in events] == before  # nothing fired, nothing recorded after the death
    received, completed = events[-2:]
    assert (received.type, completed.type, completed.element) == ("message_received", "completed", "pd_end")
    assert '"patient_died"' in received.payload and j.today() not in received.payload  # a digest, no date
    assert bundled.instances.instance_data(j.view.id)["patient_status_record"]["date_of_death"] == "2026-01-15"
    with pytest.raises(MessageNotDeliverableError):  # nothing is listening any more
        j.message("warning_sign_reported", {"warning_sign": "fever_on_treatment"})


def test_a_death_without_a_date_is_accepted(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _mid_treatment(bundled, journey_clock, "general", "SYN-0902")
    j.message("patient_died")
    assert (j.status, j.ready) == ("completed", [])
    assert "date_of_death" not in bundled.instances.instance_data(j.view.id)["patient_status_record"]


def test_a_wrong_death_notice_is_refused_and_the_pathway_goes_on(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _mid_treatment(bundled, journey_clock, "breast", "SYN-0903")
    before = bundled.instances.get(j.view.id).version
    with pytest.raises(TaskDataError) as refused:
        j.message("patient_died", {"date_of_death": "2026-02-30", "cause": "SYN cause"})
    assert sorted(p.field for p in refused.value.problems) == ["/cause", "/date_of_death"]
    assert "SYN cause" not in str(refused.value) and "2026-02-30" not in str(refused.value)
    assert bundled.instances.get(j.view.id).version == before
    assert j.status == "running" and "treatment" in j.ready
    with pytest.raises(TaskDataError) as refused:
        j.message("patient_died", {"date_of_death": "2026-01-16"})  # the clock says 2026-01-15
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("/date_of_death", "a date of death cannot be in the future")
    ]
    assert bundled.instances.get(j.view.id).version == before


def test_a_death_ends_only_that_patients_pathway(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _mid_treatment(bundled, journey_clock, "general", "SYN-0904")
    other = _mid_treatment(bundled, journey_clock, "general", "SYN-0905")
    j.message("patient_died")
    assert j.status == "completed"
    assert bundled.instances.get(other.view.id).status == "running"  # correlated on the patient only


def test_a_pathway_that_ran_its_course_ends_at_its_own_end(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = full_journey(bundled, journey_clock, SITES["general"], "SYN-0906", Options())
    completed = _events(bundled, j.view.id)[-1]
    assert (completed.type, completed.element) == ("completed", "end")  # not pd_end: the reason is told apart


# --- the death is recorded for the patient: instances not listening end too, and nothing starts again ---


def test_a_suspended_pathway_of_the_patient_ends_with_the_death_and_never_wakes(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    listening = _mid_treatment(bundled, journey_clock, "breast", "SYN-0911")
    paused = _start(bundled, journey_clock, SITES["general"], "SYN-0911")  # a second pathway of the same patient
    bundled.instances.suspend(paused.view.id, "clinician:cns-1", "patient_abroad")
    with bundled.sessions() as session:
        assert session.get(PathwayInstance, paused.view.id).next_due_at is not None  # its timers were waiting

    reached = bundled.instances.send_message("patient_died", "system:spine", patient_ref="SYN-0911")

    assert sorted((v.id, v.status) for v in reached) == sorted(
        [(listening.view.id, "completed"), (paused.view.id, "cancelled")]
    )
    ended = _events(bundled, paused.view.id)[-1]
    assert (ended.type, ended.actor, json.loads(ended.payload)) == (
        "cancelled",
        "system:spine",
        {"reason": "patient_died"},
    )
    with bundled.sessions() as session:
        assert session.get(PathwayInstance, paused.view.id).next_due_at is None
    with pytest.raises(ConflictError):  # a cancelled instance cannot be resumed into sending invitations
        bundled.instances.resume(paused.view.id, "clinician:cns-1")
    before = len(_events(bundled, paused.view.id))
    journey_clock.advance(timedelta(days=2 * 366))
    fire_due_timers(bundled.instances)
    assert len(_events(bundled, paused.view.id)) == before


def test_no_pathway_starts_for_a_patient_whose_death_is_recorded_until_a_mistake_is_withdrawn(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    # The register of deaths can report a patient CarePath has no pathway for yet: it is recorded all the same.
    assert bundled.instances.send_message("patient_died", "system:spine", patient_ref="SYN-0912") == []
    record = bundled.instances.death_record("SYN-0912")
    assert record is not None and (record["recorded_by"], record["withdrawn_at"]) == ("system:spine", None)
    with pytest.raises(PatientDeceasedError) as refused:
        bundled.instances.start(SITES["general"].pathway, "SYN-0912", "system:ehr", {})
    assert [p.code for p in refused.value.problems] == ["patient-deceased"]
    with pytest.raises(PatientDeceasedError):  # one deceased patient in a bulk start refuses it whole
        bundled.instances.start_many(SITES["general"].pathway, ["SYN-0913", "SYN-0912"], "system:ehr")
    assert bundled.instances.death_record("SYN-0913") is None

    with pytest.raises(InvalidInputError):
        bundled.instances.withdraw_death("SYN-0912", "cli:death-record", "  ")
    withdrawn = bundled.instances.withdraw_death("SYN-0912", "cli:death-record", "wrong patient on the notice")
    assert withdrawn["withdrawn_by"] == "cli:death-record"
    with pytest.raises(NotFoundError):
        bundled.instances.withdraw_death("SYN-0912", "cli:death-record", "again")
    started = _start(bundled, journey_clock, SITES["general"], "SYN-0912")
    assert started.status == "running"


def test_a_wrong_death_notice_for_a_patient_without_a_listener_records_nothing(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    with pytest.raises(TaskDataError) as refused:
        bundled.instances.send_message(
            "patient_died",
            "system:spine",
            patient_ref="SYN-0914",
            payload={"date_of_death": "2026-13-01", "cause": "SYN words"},
        )
    assert sorted(p.field for p in refused.value.problems) == ["/cause", "/date_of_death"]
    assert "SYN words" not in str(refused.value)
    assert bundled.instances.death_record("SYN-0914") is None
