"""The timer worker survives faults: one instance's failure is an incident on that instance, the
others are fired; a database outage is waited out, never a reason to exit."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from engine import CarePath, ManualClock
from engine.audit import verify_trail
from engine.db.models import InstanceEvent, PathwayInstance
from engine.instances import timers, worker
from engine.instances.timers import Backoff, fire_due_timers
from engine.instances.worker import run_worker

# A day after the start, a script builds a number of 6,001 digits: Python refuses to write an int of
# more than 4,300 digits as text (ValueError), so the state cannot be stored. It made every
# `carepath worker` exit, leaving the healthy instances behind it unfired.
HUGE_NUMBER = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs_huge"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="test_huge_number" name="A number too long to store" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="one_day" />
    <bpmn:intermediateCatchEvent id="one_day"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="t1"><bpmn:timeDuration xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"P1D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="one_day" targetRef="grow" />
    <bpmn:scriptTask id="grow"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>a = 10 ** 1000 * 10 ** 1000 * 10 ** 1000
big = a * a</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="grow" targetRef="a_month" />
    <bpmn:intermediateCatchEvent id="a_month"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:timerEventDefinition id="t2"><bpmn:timeDuration xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"P30D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="a_month" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _statuses(carepath: CarePath) -> Counter[str]:
    with carepath.sessions() as session:
        return Counter(session.scalars(select(PathwayInstance.status)))


def _events(carepath: CarePath, instance_id: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def _state(carepath: CarePath, instance_id: str) -> str:
    with carepath.sessions() as session:
        instance = session.get(PathwayInstance, instance_id)
        assert instance is not None
        return instance.state


def test_a_state_too_large_to_store_is_an_incident_and_the_worker_goes_on(
    carepath: CarePath, clock: ManualClock
) -> None:
    carepath.catalog.deploy_upload({"huge_number.bpmn": HUGE_NUMBER}, "author:test")
    bad = carepath.instances.start("test_huge_number", "MRN-BAD", "system:ehr")
    healthy = [carepath.instances.start("test_timer_p1d", f"MRN-{n}", "system:ehr").id for n in range(5)]
    state_before = _state(carepath, bad.id)
    clock.advance(timedelta(days=2))

    # Several workers' passes: none exits, every healthy instance is fired once.
    assert run_worker(carepath.instances, worker_id="w1", once=True) == 6
    assert run_worker(carepath.instances, worker_id="w2", once=True) == 0  # the failing one is not refired
    assert _statuses(carepath) == Counter({"completed": 5, "error": 1})
    for instance_id in healthy:
        assert [e.type for e in _events(carepath, instance_id)] == ["started", "timer_fired", "completed"]

    view = carepath.instances.get(bad.id)
    assert view.status == "error"
    assert view.incident is not None
    error = _events(carepath, bad.id)[-1]
    assert error.type == "error" and error.actor == "engine"
    if view.incident["kind"] == "ExpressionError":
        # The expression language refused to build the number: an ordinary incident at the script.
        assert view.incident["element"] == "grow"
    else:  # the number was built and the state could not be written: the worker's own barrier
        assert view.incident["kind"] == "ValueError"
        assert view.incident["message"] == "ValueError while firing timers; the state before the timers fired is kept"
        # Type and element only: the error's own text (it quotes the limit; others quote values) is not kept.
        assert json.loads(error.payload) == {"kind": "ValueError", "message": view.incident["message"], "worker": "w1"}
        assert _state(carepath, bad.id) == state_before  # what was stored is kept as it was
    with carepath.sessions() as session:
        assert verify_trail(session) == []


def test_any_exception_in_one_instance_step_is_an_incident_without_its_text(
    carepath: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = carepath.instances.start("test_timer_p1d", "MRN-1", "system:ehr")
    clock.advance(timedelta(minutes=1))
    second = carepath.instances.start("test_timer_p1d", "MRN-2", "system:ehr")
    clock.advance(timedelta(days=2))
    runner = carepath.instances.steps
    original = runner.settle
    calls: list[int] = []

    def fails_the_first_time(step: Any) -> None:  # outside the workflow's run: not a diagram incident
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("patient MRN-1 Jane Doe")  # a message quoting values must not be kept
        original(step)

    monkeypatch.setattr(runner, "settle", fails_the_first_time)
    assert fire_due_timers(carepath.instances, worker_id="w1") == 2
    assert carepath.instances.get(second.id).status == "completed"
    failed = carepath.instances.get(first.id)
    assert failed.status == "error" and failed.incident is not None
    assert failed.incident["kind"] == "RuntimeError"
    assert failed.incident["message"] == "RuntimeError while firing timers; the state before the timers fired is kept"
    with carepath.sessions() as session:
        texts = list(session.scalars(select(InstanceEvent.payload)))
        incident = session.get(PathwayInstance, first.id).incident  # type: ignore[union-attr]
    assert not any("Jane" in text or "MRN-1" in text for text in [*texts, incident or ""])

    # Once the cause is gone, a retry runs the timer.
    assert carepath.instances.retry(first.id, "clinician:duty").status in ("running", "completed")


def test_an_instance_whose_incident_cannot_be_written_is_backed_off(
    carepath: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = carepath.instances.start("test_timer_p1d", "MRN-1", "system:ehr")
    clock.advance(timedelta(days=2))
    attempts: list[str] = []

    def broken(step: Any) -> None:  # storing the state fails, outside the workflow's run
        attempts.append("step")
        raise RuntimeError("broken")

    def cannot_save(*args: Any, **kwargs: Any) -> None:
        attempts.append("incident")
        raise RuntimeError("cannot save either")

    monkeypatch.setattr(carepath.instances.steps, "settle", broken)
    monkeypatch.setattr(timers, "save_instance", cannot_save)
    backoff = Backoff(first=timedelta(minutes=1), longest=timedelta(minutes=4))
    assert fire_due_timers(carepath.instances, backoff=backoff) == 0
    assert attempts == ["step", "incident"]
    assert fire_due_timers(carepath.instances, backoff=backoff) == 0  # the same pass time: left alone
    clock.advance(timedelta(seconds=59))
    assert fire_due_timers(carepath.instances, backoff=backoff) == 0
    assert attempts == ["step", "incident"]
    clock.advance(timedelta(seconds=2))
    assert fire_due_timers(carepath.instances, backoff=backoff) == 0
    assert attempts == ["step", "incident"] * 2
    clock.advance(timedelta(minutes=1, seconds=1))  # now two minutes' wait
    fire_due_timers(carepath.instances, backoff=backoff)
    assert len(attempts) == 4
    assert carepath.instances.get(stuck.id).status == "running"  # nothing of the failed steps was written

    monkeypatch.undo()
    clock.advance(timedelta(hours=1))
    assert fire_due_timers(carepath.instances, backoff=backoff) == 1
    assert carepath.instances.get(stuck.id).status == "completed"


def _outage() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_the_worker_loop_waits_out_a_database_outage(
    carepath: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    carepath.instances.start("test_timer_p1d", "MRN-1", "system:ehr")
    clock.advance(timedelta(days=2))
    real = worker.fire_due_timers
    outcomes: list[Exception | None] = [_outage(), _outage(), _outage(), None]

    def flaky(*args: Any, **kwargs: Any) -> int:
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "fire_due_timers", flaky)
    waits: list[float] = []
    beats: list[int] = []
    stop_after = [0]

    def should_stop() -> bool:
        return stop_after[0] >= 1

    def report(advanced: int) -> None:
        stop_after[0] += advanced

    total = run_worker(
        carepath.instances,
        worker_id="w",
        interval=0.5,
        should_stop=should_stop,
        report=report,
        sleep=waits.append,
        heartbeat=lambda: beats.append(1),
        first_wait=1.0,
        max_wait=3.0,
    )
    assert total == 1
    assert waits == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # 1 s, 2 s, then 3 s (the cap), in one-second turns
    assert len(beats) >= len(waits)  # the supervisor hears from it while it waits
    assert _statuses(carepath) == Counter({"completed": 1})


def test_once_gives_up_on_a_lasting_outage_and_other_database_errors_are_raised(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def down(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        raise _outage()

    monkeypatch.setattr(worker, "fire_due_timers", down)
    with pytest.raises(OperationalError):
        run_worker(carepath.instances, worker_id="w", once=True, once_attempts=3, sleep=lambda s: None)
    assert len(calls) == 3

    def wrong_schema(*args: Any, **kwargs: Any) -> int:
        raise ProgrammingError("SELECT", {}, Exception("no such table"))

    monkeypatch.setattr(worker, "fire_due_timers", wrong_schema)
    with pytest.raises(ProgrammingError):  # not an outage: waiting would not fix it
        run_worker(carepath.instances, worker_id="w", sleep=lambda s: None)
