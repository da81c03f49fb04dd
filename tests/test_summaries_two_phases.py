"""Two End of Treatment Summaries awaited at once (engine.careplan.summaries): each its own row.

The first-line summary is still unwritten when a recurrence's treatment ends and its summary becomes
due: each awaited summary is keyed by the ``write_summary`` task that writes it, with its own phase,
end date, deadline and overdue task; writing one marks its own row. Synthetic patients on the bundled
breast pathway, on SQLite and PostgreSQL (the scan's queries are dialect-sensitive), a manual clock.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from pathways_bundled.journey import PATHWAYS, REPO, Journey
from pathways_bundled.journeys import (
    HIGH_CONCERNS,
    SITES,
    course_ended,
    recurrence_treated,
)
from sqlalchemy import select, update

from engine import CarePath, ConflictError, ManualClock, Settings
from engine.careplan import summaries
from engine.db.models import InstanceEvent, PathwayInstance, ReadyTaskElement, TreatmentSummary
from engine.db.session import alembic_config, upgrade_schema
from engine.documents.build import end_of_treatment_summaries, end_of_treatment_summary
from engine.instances.migration import migrate_pathway
from engine.instances.migration_fast import FastPath
from tests.test_scale_queries import _plan, statements

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

SITE = SITES["breast"]
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
FIRST_LINE = {
    "summary_treatments": ["surgery"],
    "effects_to_watch_for": ["fatigue"],
    "warning_signs_given": True,
    "gp_actions": ["review fatigue"],
    "follow_up_model": "patient_initiated",
}
RECURRENCE = {
    **FIRST_LINE,
    "summary_treatments": ["chemotherapy for the recurrence"],
    "gp_actions": ["check blood counts"],
}
AUTHOR = "clinician:author-syn"


def _settings(url: str, pathways: Path = PATHWAYS) -> Settings:
    return Settings(database_url=url, pathways_dir=pathways, rules_dir=REPO / "rules", four_eyes=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def database(database_kind: str, tmp_path: Path, database_templates: DatabaseTemplates) -> Iterator[str]:
    """A database of the test's own (SQLite or PostgreSQL) with the bundled pathways deployed."""
    with database_templates.copy(database_kind, PATHWAYS, tmp_path) as url:
        yield url


@pytest.fixture
def app(database: str, clock: ManualClock) -> Iterator[CarePath]:
    carepath = CarePath(_settings(database), clock)
    try:
        yield carepath
    finally:
        carepath.close()


def _first_line_ended(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Diagnosis to the end of first-line treatment (today): its summary is awaited."""
    return course_ended(app, clock, "breast", patient, support="later")


def _recurrence_treated(j: Journey, weeks_later: int, concerns: dict[str, int] | None = None) -> None:
    """journeys.recurrence_treated, the first-line summary still unwritten: two are awaited."""
    recurrence_treated(j, weeks_later, concerns)
    assert j.ready.count("write_summary") == 2


def _write(j: Journey, task_id: str, answers: dict[str, Any]) -> None:
    """Complete one waiting write_summary task (by its id: two of them wait), on the instance as it is
    now (the scan's overdue events move its revision on)."""
    j.view = j.app.instances.get(j.view.id)
    j.view = j.app.instances.complete_task(
        j.view.id, task_id, answers, "clinician:cns-syn", expected_version=j.view.version
    )
    assert j.view.status == "running", j.view.incident


def _waiting(j: Journey) -> list[str]:
    return [t["id"] for t in j.view.ready_tasks if t["element"] == "write_summary"]


def _rows(app: CarePath, instance_id: str) -> list[TreatmentSummary]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(TreatmentSummary)
                .where(TreatmentSummary.instance_id == instance_id)
                .order_by(TreatmentSummary.number)
            )
        )


def _events(app: CarePath, instance_id: str, event_type: str) -> list[dict[str, Any]]:
    with app.sessions() as session:
        return [
            json.loads(p)
            for p in session.scalars(
                select(InstanceEvent.payload)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == event_type)
                .order_by(InstanceEvent.seq)
            )
        ]


def _last_minute(clock: ManualClock, day: date) -> None:
    clock.set(datetime.combine(day, datetime.max.time(), UTC))


@pytest.mark.parametrize("scan_before", [True, False], ids=["seen-at-once", "both-seen-late"])
def test_two_awaited_summaries_have_their_own_rows_deadlines_and_tasks(
    app: CarePath, clock: ManualClock, scan_before: bool
) -> None:
    j = _first_line_ended(app, clock, "SYN-EOT2-0001")
    first_ended = clock.now().date()
    [first_task] = _waiting(j)
    if scan_before:  # the worker saw the first summary awaited before the recurrence
        assert app.treatment_summaries.open_due() == 0
    _recurrence_treated(j, weeks_later=20)
    second_ended = clock.now().date()
    [second_task] = [t for t in _waiting(j) if t != first_task]

    # Two due rows, each with its own task, phase, end of course and deadline. Noted late, the first
    # still has its own end date, not the recurrence's (the instance's latest data).
    assert app.treatment_summaries.open_due() == 1  # the first is past its 6 weeks already: its task opens
    first, second = _rows(app, j.view.id)
    assert (first.number, first.task_id, first.phase, first.ended_on, first.due_by, first.status) == (
        1,
        first_task,
        "first_line",
        first_ended,
        first_ended + timedelta(weeks=6),
        "due",
    )
    assert (second.number, second.task_id, second.phase, second.ended_on, second.due_by, second.status) == (
        2,
        second_task,
        "recurrence",
        second_ended,
        second_ended + timedelta(weeks=6),
        "due",
    )
    assert app.treatment_summaries.open_due() == 0  # matched: nothing more to note
    assert len(_rows(app, j.view.id)) == 2

    # Each goes overdue on its own date, with its own task.
    [task] = app.treatment_summaries.list_overdue()
    assert (task["id"], task["phase"], task["task_id"]) == (first.id, "first_line", first_task)
    _last_minute(clock, second.due_by)
    assert app.treatment_summaries.open_due() == 0
    clock.advance(timedelta(seconds=1))
    assert app.treatment_summaries.open_due() == 1
    assert app.treatment_summaries.open_due() == 0
    tasks = app.treatment_summaries.list_overdue()
    assert [(t["id"], t["number"], t["phase"], t["due_by"], t["assignee"]) for t in tasks] == [
        (first.id, 1, "first_line", first.due_by.isoformat(), "STAFF-SYN-1"),
        (second.id, 2, "recurrence", second.due_by.isoformat(), "STAFF-SYN-1"),
    ]
    assert [(e["summary"], e["ended_on"]) for e in _events(app, j.view.id, "summary_overdue")] == [
        (first.id, first_ended.isoformat()),
        (second.id, second_ended.isoformat()),
    ]

    # The recurrence's summary written first: its own row and task, the first-line one still overdue.
    _write(j, second_task, RECURRENCE)
    first, second = _rows(app, j.view.id)
    assert (second.status, second.closed_at, first.status, first.closed_at) == ("written", clock.now(), "due", None)
    assert json.loads(second.content)["completed_on"] == second_ended.isoformat()
    [still] = app.treatment_summaries.list_overdue()
    assert still["id"] == first.id
    assert app.treatment_summaries.open_due() == 0  # the scan leaves the first one as it is
    assert [(r.status, r.overdue_at is not None, r.closed_at) for r in _rows(app, j.view.id)][0] == ("due", True, None)
    assert [e["summary"] for e in _events(app, j.view.id, "summary_overdue_closed")] == [second.id]

    # Then the first-line one: its overdue task closes.
    clock.advance(timedelta(days=1))
    _write(j, first_task, FIRST_LINE)
    first, second = _rows(app, j.view.id)
    assert (first.status, first.closed_at, first.task_id) == ("written", clock.now(), first_task)
    assert app.treatment_summaries.list_overdue() == []
    assert [e["summary"] for e in _events(app, j.view.id, "summary_overdue_closed")] == [second.id, first.id]
    assert app.treatment_summaries.open_due() == 0
    assert [r.status for r in _rows(app, j.view.id)] == ["written", "written"]

    # Each phase's document has its own course, treatments and dates.
    docs = [end_of_treatment_summary(app, j.view.id, "en", n) for n in (1, 2)]
    assert [d["phase"]["code"] for d in docs] == ["first_line", "recurrence"]
    assert [d["completed_on"] for d in docs] == [first_ended.isoformat(), second_ended.isoformat()]
    assert [d["summary"]["course_completed_on"] for d in docs] == [first_ended.isoformat(), second_ended.isoformat()]
    assert [d["summary"]["due_by"] for d in docs] == [first.due_by.isoformat(), second.due_by.isoformat()]
    assert [d["summary"]["on_time"] for d in docs] == [False, False]
    assert [d["gp_actions"] for d in docs] == [["review fatigue"], ["check blood counts"]]
    assert {t["code"] for t in docs[0]["treatments_received"]} == {
        "breast_conserving_surgery",
        "radiotherapy",
        "surgery",
    }
    assert {t["code"] for t in docs[1]["treatments_received"]} == {"chemotherapy", "radiotherapy", None}
    # The MDT planned the first-line course, not the recurrence's, though the first summary was written last.
    assert docs[0]["treatments_received"][0]["decided_on"] == first_ended.isoformat()
    assert docs[1]["treatments_received"][0]["decided_on"] is None
    listed = end_of_treatment_summaries(app, j.view.id, "en")["phases"]
    assert [(p["number"], p["code"], p["ended_on"], p["status"]) for p in listed] == [
        (1, "first_line", first_ended.isoformat(), "written"),
        (2, "recurrence", second_ended.isoformat(), "written"),
    ]


def test_a_summary_not_written_yet_is_refused_while_the_other_phase_shows(app: CarePath, clock: ManualClock) -> None:
    j = _first_line_ended(app, clock, "SYN-EOT2-0002")
    [first_task] = _waiting(j)
    _recurrence_treated(j, weeks_later=10)
    app.treatment_summaries.open_due()
    [second_task] = [t for t in _waiting(j) if t != first_task]
    _write(j, second_task, RECURRENCE)
    with pytest.raises(ConflictError, match="phase 1"):
        end_of_treatment_summary(app, j.view.id, "en", 1)
    shown = end_of_treatment_summary(app, j.view.id, "en", 2)
    assert (shown["phase"]["code"], shown["gp_actions"]) == ("recurrence", ["check blood counts"])
    assert end_of_treatment_summary(app, j.view.id, "en")["phase"]["number"] == 2  # the latest written


def test_a_summary_written_before_the_scan_saw_it_takes_its_own_row(app: CarePath, clock: ManualClock) -> None:
    """The operator, not the scan, makes the recurrence's row: it names its task, and the first-line
    row (noted by the scan) is left due."""
    j = _first_line_ended(app, clock, "SYN-EOT2-0003")
    app.treatment_summaries.open_due()
    [first_task] = _waiting(j)
    _recurrence_treated(j, weeks_later=3)  # the first-line summary is within its 6 weeks still
    [second_task] = [t for t in _waiting(j) if t != first_task]
    _write(j, second_task, RECURRENCE)
    first, second = _rows(app, j.view.id)
    assert (first.task_id, first.status, second.task_id, second.status, second.phase) == (
        first_task,
        "due",
        second_task,
        "written",
        "recurrence",
    )
    assert app.treatment_summaries.open_due() == 0
    assert [r.status for r in _rows(app, j.view.id)] == ["due", "written"]


def test_each_waiting_summary_task_is_told_apart_by_its_phase_and_deadline(app: CarePath, clock: ManualClock) -> None:
    """What the patient page shows of each waiting write_summary task: from its row once the scan noted
    it (the first-line one here), from the task's own data before (the recurrence's)."""
    j = _first_line_ended(app, clock, "SYN-EOT2-0011")
    first_ended = clock.now().date()
    app.treatment_summaries.open_due()
    [first_task] = _waiting(j)
    _recurrence_treated(j, weeks_later=3)
    second_ended = clock.now().date()
    [second_task] = [t for t in _waiting(j) if t != first_task]
    assert [r.task_id for r in _rows(app, j.view.id)] == [first_task]
    six_weeks = timedelta(weeks=6)
    assert app.treatment_summaries.awaited(j.view.id) == {
        first_task: {
            "phase": "first_line",
            "ended_on": first_ended.isoformat(),
            "due_by": (first_ended + six_weeks).isoformat(),
            "overdue": False,
        },
        second_task: {
            "phase": "recurrence",
            "ended_on": second_ended.isoformat(),
            "due_by": (second_ended + six_weeks).isoformat(),
            "overdue": False,
        },
    }
    _write(j, second_task, RECURRENCE)
    assert list(app.treatment_summaries.awaited(j.view.id)) == [first_task]
    _write(j, first_task, FIRST_LINE)
    assert app.treatment_summaries.awaited(j.view.id) == {}


def test_the_work_lists_read_of_waiting_summary_tasks_is_one_query_of_noted_rows(
    app: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """awaited_by_task answers for the tasks of many instances (the work list's page) from their due rows
    alone, in one statement; a task the scan has not noted yet has no answer (nothing is restored)."""
    j = _first_line_ended(app, clock, "SYN-EOT2-0012")
    first_ended = clock.now().date()
    [first_task] = _waiting(j)
    _recurrence_treated(j, weeks_later=3)
    [second_task] = [t for t in _waiting(j) if t != first_task]
    other = _first_line_ended(app, clock, "SYN-EOT2-0013")
    [third_task] = _waiting(other)
    pairs = [(j.view.id, first_task), (j.view.id, second_task), (other.view.id, third_task)]
    with statements(app.db) as seen:
        assert app.treatment_summaries.awaited_by_task(pairs) == {}  # not noted yet
    assert len(seen) == 1  # the rows' query: no instance row read, no state restored

    app.treatment_summaries.open_due()
    stray = (other.view.id, first_task)  # a task id paired with an instance it is not of
    with statements(app.db) as seen:
        found = app.treatment_summaries.awaited_by_task([*pairs, stray, pairs[0]])
    assert len(seen) == 1
    assert list(found) == pairs
    assert found[pairs[0]] == {
        "phase": "first_line",
        "ended_on": first_ended.isoformat(),
        "due_by": (first_ended + timedelta(weeks=6)).isoformat(),
        "overdue": False,
    }
    assert {task_id: found[(j.view.id, task_id)] for task_id in (first_task, second_task)} == (
        app.treatment_summaries.awaited(j.view.id)
    )  # as the patient page says
    assert found[pairs[2]]["phase"] == "first_line" and found[pairs[1]]["phase"] == "recurrence"

    j.wait(7 * 7)  # the first-line summary past its 6 weeks: its overdue task opens
    assert app.treatment_summaries.open_due() >= 1
    assert app.treatment_summaries.awaited_by_task(pairs)[pairs[0]]["overdue"] is True
    _write(j, second_task, RECURRENCE)  # written: no longer awaited
    assert list(app.treatment_summaries.awaited_by_task(pairs)) == [pairs[0], pairs[2]]

    with statements(app.db) as seen:
        assert app.treatment_summaries.awaited_by_task([]) == {}
    assert seen == []
    monkeypatch.setattr(summaries, "AWAITED_BY_TASK_LIMIT", 1)  # bounded: the first pairs only
    assert list(app.treatment_summaries.awaited_by_task([pairs[2], pairs[0]])) == [pairs[2]]


def test_a_row_noted_before_rows_named_their_task_is_matched_by_its_phase(app: CarePath, clock: ManualClock) -> None:
    """A due row without a task (noted before revision 0026, when one row per instance was noted) is
    given the waiting task of its own phase; the other phase gets a row of its own."""
    j = _first_line_ended(app, clock, "SYN-EOT2-0004")
    app.treatment_summaries.open_due()
    [first_task] = _waiting(j)
    with app.sessions() as session, session.begin():
        session.execute(update(TreatmentSummary).where(TreatmentSummary.instance_id == j.view.id).values(task_id=None))
    _recurrence_treated(j, weeks_later=12)
    [second_task] = [t for t in _waiting(j) if t != first_task]
    app.treatment_summaries.open_due()
    first, second = _rows(app, j.view.id)
    assert (first.task_id, first.phase, second.task_id, second.phase) == (
        first_task,
        "first_line",
        second_task,
        "recurrence",
    )
    assert first.status == second.status == "due"


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "full-path"])
def test_migrating_an_instance_waiting_for_two_summaries_keeps_both_rows_matched(
    database: str, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_path: bool
) -> None:
    """The rows name SpiffWorkflow task ids: the migration resets ready tasks (the full path) or rewrites
    their data (the fast path), and keeps each task, and its id; both rows stay matched."""
    before = CarePath(_settings(database), clock)
    try:
        j = _first_line_ended(before, clock, "SYN-EOT2-0005")
        first_ended = clock.now().date()
        [first_task] = _waiting(j)
        _recurrence_treated(j, weeks_later=8)
        before.treatment_summaries.open_due()
        rows = [(r.task_id, r.phase, r.ended_on, r.status) for r in _rows(before, j.view.id)]
        old_version = j.view.version
    finally:
        before.close()
    # A new version of the pathway: the label of the task ahead of the patient after the summary.
    pathways = tmp_path / "pathways"
    shutil.copytree(PATHWAYS, pathways)
    diagram = pathways / "breast.bpmn"
    text = diagram.read_text(encoding="utf-8")
    changed = text.replace(
        'name="Discharge to the breast screening programme"',
        'name="Discharge to the NHS breast screening programme"',
        1,
    )
    assert changed != text
    diagram.write_text(changed, encoding="utf-8")
    app = CarePath(dataclasses.replace(_settings(database), pathways_dir=pathways), clock)
    try:
        app.catalog.sync_library(actor=AUTHOR)
        if not fast_path:
            monkeypatch.setattr(FastPath, "plan", lambda *_args: None)
        report = migrate_pathway(app.instances, "breast_cancer", "clinician:cns-syn")
        [moved] = [i for i in report.instances if i.instance_id == j.view.id]
        assert moved.migrated and moved.fast_path == fast_path
        j.app, j.view = app, app.instances.get(j.view.id)
        assert j.view.version != old_version
        assert sorted(_waiting(j)) == sorted(r[0] for r in rows)  # the same tasks wait, by the same ids

        assert app.treatment_summaries.open_due() == 0  # nothing to note, close or open (the first is overdue already)
        assert [(r.task_id, r.phase, r.ended_on, r.status) for r in _rows(app, j.view.id)] == rows
        assert rows[0][:3] == (first_task, "first_line", first_ended)
        _write(j, first_task, FIRST_LINE)
        first, second = _rows(app, j.view.id)
        assert (first.status, first.task_id, second.status) == ("written", first_task, "due")
        assert app.treatment_summaries.list_overdue() == []
    finally:
        app.close()


def test_what_was_made_in_the_recurrence_is_in_its_summary_whichever_is_written_first(
    app: CarePath, clock: ManualClock
) -> None:
    """The referrals from the HNA on recurrence belong to the recurrence's summary, not to the first-line
    one written after it (engine.documents.build: a phase's span)."""
    j = _first_line_ended(app, clock, "SYN-EOT2-0006")
    [first_task] = _waiting(j)
    _recurrence_treated(j, weeks_later=10, concerns=HIGH_CONCERNS)
    app.treatment_summaries.open_due()
    [second_task] = [t for t in _waiting(j) if t != first_task]
    _write(j, second_task, RECURRENCE)
    clock.advance(timedelta(days=2))
    _write(j, first_task, FIRST_LINE)
    first, second = (end_of_treatment_summary(app, j.view.id, "en", n) for n in (1, 2))
    referred = second["referrals_made"]["care_plan"]
    assert referred and all(r["kind"] == "referral" for r in referred)
    assert first["referrals_made"]["care_plan"] == []
    assert first["treatments_received"][0]["decided_on"] == START.date().isoformat()  # the MDT: first-line
    assert second["treatments_received"][0]["decided_on"] is None


def test_revision_0026_names_the_task_of_a_row_whose_instance_waits_for_one(database: str, clock: ManualClock) -> None:
    """Upgrading: a due row whose instance waits for one summary gets that task's id; the rows of an
    instance waiting for two stay without one, and the scan matches them by their phase."""
    app = CarePath(_settings(database), clock)
    try:
        one = _first_line_ended(app, clock, "SYN-EOT2-0007")
        two = _first_line_ended(app, clock, "SYN-EOT2-0008")
        app.treatment_summaries.open_due()
        _recurrence_treated(two, weeks_later=2)
        app.treatment_summaries.open_due()
        expected = {i: [(r.number, r.task_id, r.phase) for r in _rows(app, i)] for i in (one.view.id, two.view.id)}
        assert [len(rows) for rows in expected.values()] == [1, 2]
    finally:
        app.close()
    command.downgrade(alembic_config(database), "0020")
    upgrade_schema(database)
    app = CarePath(_settings(database), clock)
    try:
        assert [(r.number, r.task_id, r.phase) for r in _rows(app, one.view.id)] == expected[one.view.id]
        assert [r.task_id for r in _rows(app, two.view.id)] == [None, None]
        app.treatment_summaries.open_due()
        assert [(r.number, r.task_id, r.phase) for r in _rows(app, two.view.id)] == expected[two.view.id]
        assert [r.status for r in _rows(app, two.view.id)] == ["due", "due"]
    finally:
        app.close()


def test_a_waiting_instance_whose_state_cannot_be_read_does_not_stop_the_scan(
    database: str, clock: ManualClock
) -> None:
    app = CarePath(_settings(database), clock)
    try:
        damaged = _first_line_ended(app, clock, "SYN-EOT2-0009")
        other = _first_line_ended(app, clock, "SYN-EOT2-0010")
        table = PathwayInstance.__table__
        with app.db.begin() as connection:
            connection.execute(table.update().where(table.c.id == damaged.view.id).values(state=b"\x01broken"))
    finally:
        app.close()
    worker = CarePath(_settings(database), clock)  # a worker process: nothing of the instances cached
    try:
        assert worker.treatment_summaries.open_due() == 0
        assert _rows(worker, damaged.view.id) == []
        assert [r.phase for r in _rows(worker, other.view.id)] == ["first_line"]
    finally:
        worker.close()


def _damage(app: CarePath, *journeys: Journey) -> None:
    table = PathwayInstance.__table__
    with app.db.begin() as connection:
        connection.execute(
            table.update().where(table.c.id.in_([j.view.id for j in journeys])).values(state=b"\x01broken")
        )


def test_more_unreadable_instances_than_a_turn_takes_do_not_keep_the_scan_from_the_rest(
    database: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three waiting instances whose state cannot be read come first in the scan's order, with a turn of
    two: they take none of its places, and later turns pass them by until their row changes."""
    app = CarePath(_settings(database), clock)
    try:
        damaged = [_first_line_ended(app, clock, f"SYN-EOT2-02{n}") for n in range(3)]
        healthy = _first_line_ended(app, clock, "SYN-EOT2-0210")
        _damage(app, *damaged)
        with app.db.begin() as connection:  # started before the healthy one: first in the scan's order
            for n, j in enumerate(damaged):
                started = START - timedelta(minutes=3 - n)
                for table in (PathwayInstance.__table__, ReadyTaskElement.__table__):
                    key = table.c.id if table is PathwayInstance.__table__ else table.c.instance_id
                    connection.execute(table.update().where(key == j.view.id).values(created_at=started))
    finally:
        app.close()
    worker = CarePath(_settings(database), clock)  # a worker process: nothing of the instances cached
    try:
        restored = _count_restores(worker, monkeypatch)
        assert worker.treatment_summaries.open_due(limit=2) == 0
        assert [r.phase for r in _rows(worker, healthy.view.id)] == ["first_line"]
        assert restored == [j.view.id for j in (*damaged, healthy)]
        assert all(_rows(worker, j.view.id) == [] for j in damaged)

        restored.clear()
        with statements(worker.db) as seen:
            worker.treatment_summaries.open_due(limit=2)
        assert restored == []  # remembered: passed by without a restore
        # Past a full page of them, the next page is read from where it ended: still one index range.
        [(scan, parameters)] = [
            (s, p)
            for s, p in seen
            if "ready_task_elements" in s
            and "replace(" in s.lower()
            and "(ready_task_elements.created_at, ready_task_elements.instance_id) >" in s
        ]
        plan = _plan(worker.db, scan, parameters)
        assert "ix_ready_task_elements_element_created_at_instance_id" in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
        with worker.db.begin() as connection:  # a step (its retry) moves one row on: it is tried again
            table = PathwayInstance.__table__
            connection.execute(
                table.update().where(table.c.id == damaged[1].view.id).values(revision=table.c.revision + 1)
            )
        worker.treatment_summaries.open_due(limit=2)
        assert restored == [damaged[1].view.id]
    finally:
        worker.close()


def test_an_overdue_summary_of_an_unreadable_instance_opens_on_the_team_list_and_the_scan_goes_on(
    app: CarePath, database: str, clock: ManualClock
) -> None:
    """Its named contact is in the state that cannot be read: the task opens without one (the team's
    work list) instead of stopping the turn, and the worker with it, at that instance."""
    damaged = _first_line_ended(app, clock, "SYN-EOT2-0220")
    healthy = _first_line_ended(app, clock, "SYN-EOT2-0221")
    assert app.treatment_summaries.open_due() == 0  # both rows noted while the states read
    _damage(app, damaged)
    clock.advance(timedelta(weeks=7))
    worker = CarePath(_settings(database), clock)  # a worker process: nothing of the instances cached
    try:
        assert worker.treatment_summaries.open_due() == 2
        [lost], [kept] = _rows(worker, damaged.view.id), _rows(worker, healthy.view.id)
        assert (lost.overdue_at, lost.assignee) == (clock.now(), None)
        assert (kept.overdue_at, kept.assignee) == (clock.now(), "STAFF-SYN-1")
        assert [e["summary"] for e in _events(worker, damaged.view.id, "summary_overdue")] == [lost.id]
    finally:
        worker.close()


def test_a_turn_restores_only_the_instances_whose_waiting_summaries_changed(
    app: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan runs every worker turn on whole caseloads: it compares rows and waiting tasks in SQL, one
    range of the ready-task elements index, and restores an instance only to note a new task."""
    journeys = [_first_line_ended(app, clock, f"SYN-EOT2-01{n}") for n in range(3)]
    restored = _count_restores(app, monkeypatch)
    app.treatment_summaries.open_due()
    assert sorted(restored) == sorted(j.view.id for j in journeys)
    restored.clear()
    with statements(app.db) as seen:
        assert app.treatment_summaries.open_due() == 0
    assert restored == []  # nothing changed: nothing restored
    [(scan, parameters)] = [(s, p) for s, p in seen if "ready_task_elements" in s and "replace(" in s.lower()]
    if app.db.dialect.name == "postgresql":
        with app.db.begin() as connection:  # the planner's statistics, as autovacuum keeps them
            connection.exec_driver_sql("ANALYZE treatment_summaries")
    plan = _plan(app.db, scan, parameters)
    assert "ix_ready_task_elements_element_created_at_instance_id" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan  # the index gives the order
    # Each instance's due rows through its own index range, not every due row for each instance.
    assert "ix_treatment_summaries_instance_id_status" in plan and "status_due_by" not in plan, plan
    assert "SCAN treatment_summaries" not in plan and "Seq Scan" not in plan, plan

    _recurrence_treated(journeys[1], weeks_later=3)
    restored.clear()  # (the steps restore too)
    app.treatment_summaries.open_due()
    assert restored == [journeys[1].view.id]
    assert [len(_rows(app, j.view.id)) for j in journeys] == [1, 2, 1]


def _count_restores(app: CarePath, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the instances ``app`` restores from their rows from now on, in order (filled as it runs)."""
    restored: list[str] = []
    restore = app.instances.steps.restore

    def counted(session: Any, instance: Any, *rest: Any) -> Any:
        restored.append(instance.id)
        return restore(session, instance, *rest)

    monkeypatch.setattr(app.instances.steps, "restore", counted)
    return restored
