"""Instances started before the pathway check existed (schema revision 0034) get it when their diagnoses are
read again (engine.pathway_checks.read_diagnoses: a worker's turn, or ``carepath pathways check-diagnoses``),
on the bundled breast pathway. Such an instance is made here as the upgrade leaves it: started (or corrected)
by today's engine, then its ``pathway_check`` emptied, as the rows written before the column were."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from api.cli import main
from api.cli_pathway_checks import diagnoses_reader
from engine import CarePath, ManualClock
from engine.audit import verify_trail
from engine.db.models import PathwayInstance, UpgradeTask, WebhookDelivery
from engine.db.session import unit_of_work
from engine.errors import StaleVersionError
from engine.instances.worker import run_worker
from engine.pathway_checks import READ_DIAGNOSES, DiagnosesRead, confirm, read_again, read_diagnoses, unread_count
from engine.webhooks import add_subscription

from .conftest import DATABASE
from .journey import PATHWAYS, REPO
from .journeys import events

LUNG = "Non-small cell lung cancer"
BREAST = {"diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"}
NURSE = "clinician:cns-1"


def _start(app: CarePath, patient: str, diagnosis: str, confirmed: bool = False) -> str:
    view = app.instances.start(
        "breast_cancer", patient, "system:ehr", {**BREAST, "diagnosis": diagnosis}, pathway_checked=confirmed
    )
    return view.id


def _as_before_the_check(app: CarePath, *instance_ids: str) -> None:
    """The rows as migration 0034 left the instances started before it (no check, whatever their diagnosis), and
    the task migration 0036 leaves on a database holding such instances."""
    with unit_of_work(app.sessions) as session:
        session.execute(update(PathwayInstance).where(PathwayInstance.id.in_(instance_ids)).values(pathway_check=None))
    read_again(app)
    app.instances.steps.cache.clear()  # the upgraded process starts with no instance in hand


def _checks(app: CarePath) -> dict[str, str | None]:
    with app.sessions() as session:
        return {row[0]: row[1] for row in session.execute(select(PathwayInstance.id, PathwayInstance.pathway_check))}


def _types(app: CarePath, instance_id: str) -> list[str]:
    return [event.type for event in events(app, instance_id)]


def test_the_instances_started_before_the_check_are_asked_for_it_unless_confirmed_since(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    with unit_of_work(bundled.sessions) as session:
        add_subscription(session, "https://ehr.example.org/hooks", ["pathway_check.needed"], journey_clock)
    unchecked = _start(bundled, "SYN-READ-0001", LUNG)
    confirmed_at_start = _start(bundled, "SYN-READ-0002", LUNG, confirmed=True)
    own_site = _start(bundled, "SYN-READ-0003", "Invasive ductal carcinoma")
    ended = _start(bundled, "SYN-READ-0004", LUNG)
    bundled.instances.cancel(ended, NURSE, "entered_in_error")
    confirmed_later = _start(bundled, "SYN-READ-0005", LUNG)
    confirm(bundled, confirmed_later, "lung", NURSE, None)
    # Confirmed, then the diagnosis corrected (to another lung cancer) before the check existed: asked again.
    corrected_since = _start(bundled, "SYN-READ-0006", LUNG, confirmed=True)
    bundled.instances.correct_data(
        corrected_since, {"diagnosis": "Small cell lung cancer"}, "transcription_error", NURSE
    )
    # Corrected to the pathway's own site: its earlier data may still hold the old diagnosis; nothing is asked.
    corrected_right = _start(bundled, "SYN-READ-0007", LUNG)
    bundled.instances.correct_data(
        corrected_right, {"diagnosis": "Invasive ductal carcinoma"}, "transcription_error", NURSE
    )
    instances = [unchecked, confirmed_at_start, own_site, ended, confirmed_later, corrected_since, corrected_right]
    _as_before_the_check(bundled, *instances)
    trails = {instance_id: _types(bundled, instance_id) for instance_id in instances}
    with bundled.sessions() as session:
        deliveries = len(session.scalars(select(WebhookDelivery.id)).all())

    assert unread_count(bundled) == 6  # the cancelled one has ended: it waits for no check
    turns = []
    while not (turns and turns[-1].done):
        turns.append(read_diagnoses(bundled, limit=2))
    assert [turn.read for turn in turns] == [2, 2, 2, 0] and sum(turn.asked for turn in turns) == 2
    checks = _checks(bundled)
    assert {instance_id: checks[instance_id] for instance_id in instances} == {
        **dict.fromkeys(instances),
        unchecked: "lung",
        corrected_since: "lung",
    }
    for instance_id in instances:  # the two asked carry a new event, with no payload; the others none
        asked = instance_id in (unchecked, corrected_since)
        new = _types(bundled, instance_id)[len(trails[instance_id]) :]
        assert new == (["pathway_check_asked"] if asked else [])
    [event] = [e for e in events(bundled, unchecked) if e.type == "pathway_check_asked"]
    assert (json.loads(event.payload), event.actor) == ({}, "engine")
    with bundled.sessions() as session:
        assert verify_trail(session, instances) == []
        bodies = [
            json.loads(body) for body in session.scalars(select(WebhookDelivery.body).order_by(WebhookDelivery.id))
        ]
        task = session.get(UpgradeTask, READ_DIAGNOSES)
        assert task is not None and task.done_at is not None and (task.read_count, task.asked_count) == (6, 2)
    told = sorted((b["type"], b["data"]["instance_id"]) for b in bodies[deliveries:])  # read in id order
    assert told == sorted([("pathway_check.needed", unchecked), ("pathway_check.needed", corrected_since)])
    assert "lung" not in json.dumps(bodies).lower()  # ids only, never the diagnosis nor its site
    # The warning now shows as for an instance started today, and the clinician's confirmation clears it.
    assert bundled.instances.get(unchecked).pathway_check == "lung"
    confirm(bundled, unchecked, "lung", NURSE, None)
    # Done: a turn reads nothing. Read again (a vocabulary that names more sites), nothing is asked twice, and
    # the confirmation just given stands.
    assert read_diagnoses(bundled) == DiagnosesRead(0, 0, True)
    read_again(bundled)
    again = read_diagnoses(bundled)
    assert (again.read, again.asked, again.done) == (5, 0, True)
    assert _checks(bundled)[unchecked] is None


def test_one_reader_at_a_time_and_a_dead_readers_batch_is_read_again(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    first, second = _start(bundled, "SYN-READ-0011", LUNG), _start(bundled, "SYN-READ-0012", LUNG)
    _as_before_the_check(bundled, first, second)
    # A reader that died holding the lease (its batch read or not): nobody else reads until the lease ends.
    with unit_of_work(bundled.sessions) as session:
        session.execute(
            update(UpgradeTask)
            .where(UpgradeTask.name == READ_DIAGNOSES)
            .values(lease_id="a-reader-that-died", lease_until=journey_clock.now() + timedelta(minutes=5))
        )
    held = read_diagnoses(bundled)
    assert held.busy and (held.read, held.done) == (0, False)
    journey_clock.advance(timedelta(minutes=6))
    taken = read_diagnoses(bundled, limit=1)
    assert (taken.read, taken.asked, taken.busy) == (1, 1, False)
    # The first batch read again (a reader that died before moving the task on) asks nothing twice.
    with unit_of_work(bundled.sessions) as session:
        session.execute(update(UpgradeTask).where(UpgradeTask.name == READ_DIAGNOSES).values(after_id=None))
    rest = read_diagnoses(bundled)
    assert (rest.read, rest.asked, rest.done) == (1, 1, True)
    assert all(_types(bundled, i).count("pathway_check_asked") == 1 for i in (first, second))


def test_an_instance_whose_own_steps_keep_winning_is_read_at_the_next_turn(
    bundled: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = sorted([_start(bundled, "SYN-READ-0041", LUNG), _start(bundled, "SYN-READ-0042", LUNG)])
    _as_before_the_check(bundled, first, second)
    run, tries = bundled.instances.steps.run, []

    def busy(instance_id: str, *args: Any, **kwargs: Any) -> Any:
        if instance_id == first:
            tries.append(instance_id)
            raise StaleVersionError("a concurrent step won")
        return run(instance_id, *args, **kwargs)

    monkeypatch.setattr(bundled.instances.steps, "run", busy)
    stopped = read_diagnoses(bundled)
    assert (stopped.read, stopped.asked, stopped.done, len(tries)) == (0, 0, False, 3)
    assert _checks(bundled)[second] is None  # not read past the one that could not be read
    monkeypatch.setattr(bundled.instances.steps, "run", run)
    after = read_diagnoses(bundled)
    assert (after.read, after.asked, after.done) == (2, 2, True)


def test_a_worker_reads_a_batch_a_turn_until_done_then_asks_the_database_nothing(
    bundled: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = [_start(bundled, f"SYN-READ-002{n}", LUNG) for n in range(3)]
    _as_before_the_check(bundled, *waiting)
    turn, batches, naps = diagnoses_reader(bundled), [], []

    def batch_of_one() -> int:
        batches.append(read_diagnoses(bundled, limit=1))
        return batches[-1].read

    # While a batch finds work, the worker goes round again at once (firing any timers due between them).
    run_worker(bundled.instances, worker_id="w", once=True, upgrade=batch_of_one, sleep=naps.append)
    assert [b.read for b in batches] == [1, 1, 1, 0] and not naps
    assert all(_checks(bundled)[i] == "lung" for i in waiting)
    # The worker's own reader: done at its first turn here; then it asks the database nothing more.
    assert turn() == 0
    read_again(bundled)  # more to read, but this worker found the task done: it reads no more
    monkeypatch.setattr("engine.pathway_checks.read_diagnoses", lambda *a, **k: pytest.fail("read again"))
    assert turn() == 0


def test_the_command_reads_every_diagnosis_at_once_and_prints_counts_only(bundled: CarePath, tmp_path: Path) -> None:
    asked = _start(bundled, "SYN-READ-0031", LUNG)
    other = _start(bundled, "SYN-READ-0032", "Invasive ductal carcinoma")
    _as_before_the_check(bundled, asked)
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / DATABASE}",
        "CAREPATH_PATHWAYS_DIR": str(PATHWAYS),
        "CAREPATH_RULES_DIR": str(REPO / "rules"),
    }
    ran = CliRunner().invoke(main, ["pathways", "check-diagnoses", "--batch", "1"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "diagnoses read: 2 instance(s) read, 1 now wait for a pathway check" in ran.stdout
    first = int(asked < other)  # read in id order: the asked one in the first batch, or in the second
    assert ran.stderr.splitlines()[-2:] == [
        f"read 1 of 2 instance(s): {first} pathway check(s) asked",
        "read 2 of 2 instance(s): 1 pathway check(s) asked",
    ]
    assert not any(word in ran.output for word in ("SYN-READ", "lung", "Non-small", "ductal"))
    assert _checks(bundled)[asked] == "lung"
    again = CliRunner().invoke(main, ["pathways", "check-diagnoses", "--again"], env=env)
    assert again.exit_code == 0 and "1 instance(s) read, 0 now wait" in again.stdout  # the asked one carries its check
