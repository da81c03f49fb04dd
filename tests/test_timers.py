"""Timers: the engine's clock, month arithmetic that clamps, and the same due dates in any time zone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.calendar import add_months
from engine.db.models import InstanceEvent
from engine.instances.timers import fire_due_timers

SYSTEM, NURSE = "system:ehr", "clinician:cns-1"
ROOT = Path(__file__).resolve().parent.parent


def _complete(carepath: CarePath, instance_id: str, element: str, data: dict[str, object]) -> dict[str, object]:
    view = carepath.instances.get(instance_id)
    [task] = [t for t in view.ready_tasks if t["element"] == element]
    return carepath.instances.complete_task(instance_id, task["id"], data, NURSE).as_dict()


def _reach_survey_wait(carepath: CarePath) -> str:
    view = carepath.instances.start("test_assessment", "MRN-000123", "system:ehr")
    _complete(carepath, view.id, "hna", {"anxiety": 3, "fatigue": 4})
    _complete(carepath, view.id, "offer_support", {"support_accepted": True})
    return view.id


def _events(carepath: CarePath, instance_id: str, event_type: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == event_type)
            )
        )


# --- month arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2024-08-31", 18, "2026-02-28"),
        ("2024-01-31", 1, "2024-02-29"),  # leap year
        ("2025-01-31", 1, "2025-02-28"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-03-31", 1, "2024-04-30"),
        ("2024-01-15", 1, "2024-02-15"),
        ("2024-12-31", 2, "2025-02-28"),
        ("2024-03-31", -1, "2024-02-29"),
    ],
)
def test_months_clamp_to_the_end_of_the_month(start: str, months: int, expected: str) -> None:
    when = datetime.fromisoformat(start).replace(hour=9, tzinfo=UTC)
    assert add_months(when, months) == datetime.fromisoformat(expected).replace(hour=9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("P18M", "2024-08-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00"),
        ("P1M", "2024-01-31T09:00:00+00:00", "2024-02-29T09:00:00+00:00"),
        ("P1Y", "2024-02-29T09:00:00+00:00", "2025-02-28T09:00:00+00:00"),
        ("P1Y1M2DT3H", "2024-01-31T09:00:00+00:00", "2025-03-02T12:00:00+00:00"),
        ("P2W", "2024-01-31T09:00:00+00:00", "2024-02-14T09:00:00+00:00"),
        ("PT36H", "2024-01-31T09:00:00+00:00", "2024-02-01T21:00:00+00:00"),
    ],
)
def test_spiffworkflow_durations_use_the_clamped_arithmetic(expression: str, start: str, expected: str) -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    from engine.spiff import patches

    patches.install()  # as the CarePath facade does wherever workflows run

    begin = datetime.fromisoformat(start)
    delta = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(expression), begin)
    assert begin + delta == datetime.fromisoformat(expected)


def test_intervals_counted_back_from_an_end_date_clamp_too() -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    from engine.spiff import patches

    patches.install()

    cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval("R3/P1M/2026-03-31T00:00:00+00:00")
    assert (cycles, start) == (3, datetime(2026, 2, 28, tzinfo=UTC))
    assert duration == timedelta(days=31)


# --- the engine's clock ---------------------------------------------------------------------------------


def test_moving_the_clock_18_months_fires_the_survey_timer(carepath: CarePath, clock: ManualClock) -> None:
    clock.set(datetime(2024, 8, 31, 9, 0, tzinfo=UTC))
    instance_id = _reach_survey_wait(carepath)
    view = carepath.instances.get(instance_id)
    assert view.next_due_at == "2026-02-28T09:00:00+00:00"
    assert [t["element"] for t in view.ready_tasks] == []

    clock.set(datetime(2026, 2, 28, 8, 59, tzinfo=UTC))
    assert fire_due_timers(carepath.instances, worker_id="w1") == 0  # not yet due

    clock.set(datetime(2026, 2, 28, 9, 1, tzinfo=UTC))
    assert fire_due_timers(carepath.instances, worker_id="w1") == 1
    view = carepath.instances.get(instance_id)
    assert [t["element"] for t in view.ready_tasks] == ["survey"]
    assert view.next_due_at is None
    [fired] = _events(carepath, instance_id, "timer_fired")
    assert fired.element == "survey_due"
    assert fired.at == datetime(2026, 2, 28, 9, 1, tzinfo=UTC)
    assert json.loads(fired.payload) == {"due_at": "2026-02-28T09:00:00+00:00", "worker": "w1"}
    # Nothing is due any more: a second pass fires nothing.
    assert fire_due_timers(carepath.instances, worker_id="w1") == 0

    _complete(carepath, instance_id, "survey", {"qol_score": 70})
    assert carepath.instances.get(instance_id).status == "completed"


def test_a_timer_that_fires_during_a_clinicians_step_is_in_the_event_trail(
    carepath: CarePath, clock: ManualClock
) -> None:
    # A one-week phone follow-up waits beside a weight check; the clinician records the weight
    # after the week is up, before the worker ran: SpiffWorkflow fires the timer in that step.
    early = carepath.instances.start("test_parallel_timer", "MRN-PT-1", SYSTEM)
    assert early.next_due_at == "2026-01-22T09:00:00+00:00"
    _complete(carepath, early.id, "weight", {"weight_kg": 70})  # before it is due: nothing fires
    assert _events(carepath, early.id, "timer_fired") == []

    view = carepath.instances.start("test_parallel_timer", "MRN-PT-2", SYSTEM)
    clock.advance(timedelta(days=8))
    after = _complete(carepath, view.id, "weight", {"weight_kg": 70})
    assert [t["element"] for t in after["ready_tasks"]] == ["phone_check"]
    [fired] = _events(carepath, view.id, "timer_fired")
    # The timer is the system's doing, not the nurse's whose step happened to run it.
    assert fired.element == "one_week" and fired.actor == "engine"
    assert fired.at == datetime(2026, 1, 23, 9, 0, tzinfo=UTC)
    assert json.loads(fired.payload) == {"due_at": "2026-01-22T09:00:00+00:00"}
    # The worker fires only the first instance's timer (it was still waiting there), once.
    assert fire_due_timers(carepath.instances, worker_id="w1") == 1
    assert len(_events(carepath, view.id, "timer_fired")) == 1
    [by_worker] = _events(carepath, early.id, "timer_fired")
    assert json.loads(by_worker.payload) == {"due_at": "2026-01-22T09:00:00+00:00", "worker": "w1"}


def test_a_monthly_cycle_falls_due_on_the_calendar_not_every_28_days(carepath: CarePath, clock: ManualClock) -> None:
    # R3/2026-01-31T09:00Z/P1M: SpiffWorkflow alone turned the period into 28 days (31 January to
    # 28 February) and kept adding it: 28 March, 25 April. Each occurrence counts from the first.
    view = carepath.instances.start("test_monthly_cycle", "MRN-CY-1", SYSTEM)
    due_dates = []
    while view.next_due_at is not None and len(due_dates) < 4:
        due_dates.append(view.next_due_at)
        clock.set(datetime.fromisoformat(view.next_due_at) + timedelta(minutes=1))
        assert fire_due_timers(carepath.instances, worker_id="w1") == 1
        view = carepath.instances.get(view.id)
    assert due_dates[:3] == ["2026-01-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00", "2026-03-31T09:00:00+00:00"]
    fired = _events(carepath, view.id, "timer_fired")
    assert [json.loads(event.payload)["due_at"] for event in fired] == due_dates[:3]  # three occurrences
    assert [t["element"] for t in view.ready_tasks] == ["symptom_check"] * 3
    assert view.next_due_at is None  # the cycles are used up


def test_occurrences_missed_while_no_worker_ran_each_get_an_event_with_their_due_date(
    carepath: CarePath, clock: ManualClock
) -> None:
    view = carepath.instances.start("test_monthly_cycle", "MRN-CY-2", SYSTEM)
    clock.set(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))  # 31 January and 28 February both passed
    assert fire_due_timers(carepath.instances, worker_id="w1") == 1
    view = carepath.instances.get(view.id)
    assert [t["element"] for t in view.ready_tasks] == ["symptom_check", "symptom_check"]
    fired = _events(carepath, view.id, "timer_fired")
    assert [json.loads(event.payload)["due_at"] for event in fired] == [
        "2026-01-31T09:00:00+00:00",
        "2026-02-28T09:00:00+00:00",
    ]
    assert view.next_due_at == "2026-03-31T09:00:00+00:00"


def test_a_cycle_saved_before_calendar_occurrences_keeps_its_fixed_period() -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition

    from engine.spiff import patches

    patches.install()
    old = {"cycles": 2, "next": "2026-02-28T09:00:00+00:00", "duration": 28 * 86400.0}
    assert patches.next_occurrence(old, datetime(2026, 2, 28, 9, tzinfo=UTC)) == datetime(2026, 3, 28, 9, tzinfo=UTC)
    assert CycleTimerEventDefinition.cycle_complete is patches.cycle_complete


def test_a_due_timer_does_not_fire_without_the_worker_or_a_step(carepath: CarePath, clock: ManualClock) -> None:
    instance_id = _reach_survey_wait(carepath)
    clock.advance(timedelta(days=3 * 365))
    assert carepath.instances.get(instance_id).ready_tasks == []
    assert fire_due_timers(carepath.instances) == 1
    assert [t["element"] for t in carepath.instances.get(instance_id).ready_tasks] == ["survey"]


def test_the_message_branch_cancels_the_timer(carepath: CarePath, clock: ManualClock) -> None:
    instance_id = _reach_survey_wait(carepath)
    carepath.instances.send_message("warning_sign_reported", SYSTEM, patient_ref="MRN-000123")
    view = carepath.instances.get(instance_id)
    assert [t["element"] for t in view.ready_tasks] == ["triage"]
    assert view.next_due_at is None
    clock.advance(timedelta(days=600))
    assert fire_due_timers(carepath.instances) == 0
    assert _events(carepath, instance_id, "timer_fired") == []


# --- time zones ---------------------------------------------------------------------------------------------

_DUE_DATES_SCRIPT = """
import json, sys
from datetime import datetime, timezone
from pathlib import Path
from engine import CarePath, ManualClock, Settings

clock = ManualClock(datetime(2024, 8, 31, 23, 30, tzinfo=timezone.utc))  # already 1 September in Auckland
app = CarePath(Settings(database_url=sys.argv[1], pathways_dir=Path(sys.argv[2])), clock, upgrade=True)
app.catalog.sync_library()
view = app.instances.start("test_assessment", "MRN-1", "system:ehr")
for element, data in [("hna", {"anxiety": 1, "fatigue": 1}), ("offer_support", {"support_accepted": False})]:
    [task] = [t for t in app.instances.get(view.id).ready_tasks if t["element"] == element]
    app.instances.complete_task(view.id, task["id"], data, "clinician:1")
print(json.dumps({"next_due_at": app.instances.get(view.id).next_due_at, "local_now": datetime.now().isoformat()}))
"""


def _due_dates_in_zone(zone: str, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "TZ": zone}
    database = f"sqlite:///{tmp_path / (zone.replace('/', '_') + '.sqlite3')}"
    result = subprocess.run(
        [sys.executable, "-c", _DUE_DATES_SCRIPT, database, str(ROOT / "tests" / "pathways")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_due_dates_are_the_same_in_any_host_time_zone(tmp_path: Path) -> None:
    utc = _due_dates_in_zone("UTC", tmp_path)
    auckland = _due_dates_in_zone("Pacific/Auckland", tmp_path)
    assert utc["local_now"][:13] != auckland["local_now"][:13]  # the zones really differed
    assert utc["next_due_at"] == auckland["next_due_at"] == "2026-02-28T23:30:00+00:00"
