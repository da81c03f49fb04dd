"""The migration's fast path (engine.instances.migration_fast) is the full path, done without restoring.

Each case takes one bundled breast journey to a point, twice, on two copies of one database; deploys
a new version; migrates one copy (fast path allowed) and the other (fast path forced off); and checks
that the row, the ``migrated`` event and the state are the same (the state up to what the full path
makes afresh each time: task ids and state-change times), and that the rest of the journey then runs
the same on both, to the same end.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, PathwayInstance
from engine.instances.migration import MigrationReport, migrate_pathway
from engine.instances.migration_fast import FastPath
from engine.instances.store import load_instance
from engine.spiff import state_json, state_migrations

from .conftest import DATABASE, START, _settings
from .journey import NURSE, PATHWAYS, Journey
from .journeys import JOURNEYS

PATHWAY = "breast_cancer"
AUTHOR = "clinician:author-syn"
_PREDICTED = TaskState.PREDICTED_MASK | TaskState.FUTURE
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _renamed_first_task(text: str) -> str:
    """What bench/scale.py's migrate section deploys: the first user task's label changed."""
    changed = text.replace('name="Assign the named contact"', 'name="Assign the named contact (renamed)"', 1)
    assert changed != text
    return changed


def _changed_far_ahead(text: str) -> str:
    """The discharge task at the end of five years of follow-up says more."""
    old = "open access to the breast care team.</bpmn:documentation>"
    changed = text.replace(old, "open access to the breast care team. Reviewed.</bpmn:documentation>", 1)
    assert changed != text
    return changed


VARIANTS: dict[str, Callable[[str], str]] = {"renamed": _renamed_first_task, "far-ahead": _changed_far_ahead}


@pytest.fixture(scope="module")
def templates(bundled_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per variant, a database with the bundled pathways active and the changed breast version pending."""
    found = {}
    for name, change in VARIANTS.items():
        folder = tmp_path_factory.mktemp(f"fast-{name}")
        pathways = folder / "pathways"
        shutil.copytree(PATHWAYS, pathways)
        diagram = pathways / "breast.bpmn"
        diagram.write_text(change(diagram.read_text(encoding="utf-8")), encoding="utf-8")
        shutil.copyfile(bundled_template, folder / DATABASE)
        settings = _settings(folder)
        app = CarePath(dataclasses.replace(settings, pathways_dir=pathways), ManualClock(START))
        try:
            [changed] = [v for v in app.catalog.sync_library(actor=AUTHOR) if v.pathway_id == PATHWAY]
        finally:
            app.close()
        with closing(sqlite3.connect(folder / DATABASE)) as connection:
            # Four eyes is off, so it was activated at once: pending again, instances start on the bundled one.
            connection.execute(
                "UPDATE pathway_versions SET activated_at = NULL, activated_by = NULL WHERE version = ?",
                (changed.version,),
            )
            connection.commit()
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        found[name] = folder / DATABASE
    return found


class _Paused:
    """A journey run in a thread of its own that stops before its ``at``-th action until released;
    with ``corrections``, the start data corrected before the actions numbered (a clinician's act)."""

    _current: dict[int, _Paused] = {}

    def __init__(
        self, run: Callable[[], Journey], at: int, corrections: dict[int, dict[str, Any]] | None = None
    ) -> None:
        self.at, self.count, self.corrections = at, 0, corrections or {}
        self.reached, self.go, self.done = threading.Event(), threading.Event(), threading.Event()
        self.journey: Journey | None = None
        self.instance_id: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(run,), daemon=True)

    def _main(self, run: Callable[[], Journey]) -> None:
        _Paused._current[threading.get_ident()] = self
        try:
            self.journey = run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            self.error = exc
        finally:
            self.done.set()
            self.reached.set()

    def before_action(self, journey: Journey) -> None:
        self.count += 1
        self.instance_id = journey.view.id
        if self.count in self.corrections:
            journey.view = journey.app.instances.correct_data(
                journey.view.id,
                self.corrections[self.count],
                "mdt_review",
                NURSE,
                expected_version=journey.view.version,
            )
        if self.count == self.at:
            self.reached.set()
            assert self.go.wait(600)
            journey.view = journey.app.instances.get(journey.view.id)  # the migration's revision

    def start(self) -> None:
        self.thread.start()
        assert self.reached.wait(600)
        if self.error is not None:
            raise self.error

    def finish(self) -> Journey:
        self.go.set()
        assert self.done.wait(600)
        if self.error is not None:
            raise self.error
        assert self.journey is not None
        return self.journey

    @classmethod
    def hook(cls, method: Callable[..., Journey]) -> Callable[..., Journey]:
        def paused(journey: Journey, *args: Any, **kwargs: Any) -> Journey:
            current = cls._current.get(threading.get_ident())
            if current is not None:
                current.before_action(journey)
            return method(journey, *args, **kwargs)

        return paused


@pytest.fixture
def paused_journeys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("do", "message", "wait_for"):
        monkeypatch.setattr(Journey, name, _Paused.hook(getattr(Journey, name)))


# A clinician's corrections of the start data, made while tasks are ready: before the 2nd action of
# the journey (the support offer and the first review ready) and before the 6th (within the HNA).
CORRECTIONS = {2: {"diagnosis_date": "2026-01-05"}, 6: {"age": 53}}


def _canonical(state: str) -> Any:
    """A stored state with each task id replaced by its place in the tree (by spec names), without
    what the full path makes afresh: SpiffWorkflow's ``migrate_workflow`` resets the ready and
    waiting tasks, which predicts what follows them again (new ids, new state-change times, a
    prediction of the new specs), and forgets each workflow's last task. Ids of other rows
    (care plan items, evaluations), random on each copy, are left out."""
    dct = state_json.loads(state)
    state_migrations.expand_tasks(dct)
    names: dict[str, str] = {}

    def place(tasks: dict[str, Any], key: str, path: str) -> None:
        names[key] = path
        seen: dict[str, int] = {}
        for child in tasks[key]["children"]:
            spec = tasks[child]["task_spec"]
            seen[spec] = seen.get(spec, -1) + 1
            place(tasks, child, f"{path}/{spec}#{seen[spec]}")

    place(dct["tasks"], dct["root"], "root")
    pending = dict(dct.get("subprocesses", {}))
    while pending:  # a subprocess is placed under its call task, which may be in another subprocess
        key = next(k for k in pending if k in names)
        sub = pending.pop(key)
        place(sub["tasks"], sub["root"], names[key] + ":sub")

    for table in [dct, *dct.get("subprocesses", {}).values()]:
        # What is predicted (and the workflow's note of its last task) the full path works out afresh.
        table.pop("last_task", None)
        tasks = table["tasks"]
        for key in [k for k, task in tasks.items() if task["state"] & _PREDICTED]:
            del tasks[key]
        for task in tasks.values():
            task["children"] = [child for child in task["children"] if child in tasks]

    def name(text: str) -> str:
        return names.get(text, "<row id>" if _UUID.fullmatch(text) else text)

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            foreign = {k for k in value if _UUID.fullmatch(k) and k not in names}
            renamed = {name(k): rename(v) for k, v in value.items() if k != "last_state_change" and k not in foreign}
            if foreign:
                renamed["<rows>"] = sorted(repr(rename(value[k])) for k in foreign)
            return renamed
        if isinstance(value, list):
            return [rename(v) for v in value]
        return name(value) if isinstance(value, str) else value

    return rename(dct), names


def _row(app: CarePath, instance_id: str) -> dict[str, Any]:
    with app.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None
        state, names = _canonical(row.state)
        ready = json.loads(row.ready_tasks) if row.ready_tasks else None
        for task in ready or []:
            task["id"] = names[task["id"]]
        events = list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )
        return {
            "version": row.pathway_version.version,
            "status": row.status,
            "revision": row.revision,
            "next_due_at": row.next_due_at,
            "incident": row.incident,
            "ready": ready,
            "state": state,
            "trail": [
                (e.type, e.element, e.pathway_version, e.actor, e.at, e.payload if e.type == "migrated" else None)
                for e in events
            ],
        }


def _data_at_positions(app: CarePath, instance_id: str) -> dict[str, dict[str, Any]]:
    """The data of each task the patient is at (ready or waiting, in subprocesses too), by task id:
    what the next steps read."""
    with app.sessions() as session:
        workflow = app.instances.steps.restore(session, load_instance(session, instance_id))
        return {
            str(task.id): task.data
            for part in (workflow, *workflow.subprocesses.values())
            for task in part.tasks.values()
            if task.state & (TaskState.READY | TaskState.WAITING)
        }


def _open(template: Path, folder: Path) -> tuple[CarePath, ManualClock]:
    folder.mkdir()
    shutil.copyfile(template, folder / DATABASE)
    clock = ManualClock(START)
    return CarePath(_settings(folder), clock), clock


def _migrate(app: CarePath) -> MigrationReport:
    [pending] = [v for v in app.catalog.versions(PATHWAY) if v.activated_at is None]
    app.catalog.activate(PATHWAY, pending.version, AUTHOR)
    return migrate_pathway(app.instances, PATHWAY, "clinician:cns-syn")


CASES = [
    (variant, journey, at)
    for variant in VARIANTS
    for journey, points in (
        ("breast-full", (1, 2, 4, 7, 11, 16, 22, 29, 37, 46)),
        ("breast-short", (3, 6)),
        ("breast-palliative", (3, 8)),
        ("breast-recurrence", (5, 12)),
        # paused just after a correction at ready tasks (2, 6), and later (9)
        ("breast-short-corrected", (2, 6, 9)),
    )
    for at in points
]


@pytest.mark.parametrize(("variant", "journey", "at"), CASES)
def test_the_fast_path_moves_an_instance_as_the_full_path_does(
    variant: str,
    journey: str,
    at: int,
    templates: dict[str, Path],
    tmp_path: Path,
    paused_journeys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_app, fast_clock = _open(templates[variant], tmp_path / "fast")
    full_app, full_clock = _open(templates[variant], tmp_path / "full")
    try:
        name, corrected = journey.removesuffix("-corrected"), journey.endswith("-corrected")
        fast = _Paused(lambda: JOURNEYS[name](fast_app, fast_clock), at, CORRECTIONS if corrected else None)
        full = _Paused(lambda: JOURNEYS[name](full_app, full_clock), at, CORRECTIONS if corrected else None)
        fast.start()
        full.start()
        assert not fast.done.is_set(), f"{journey} has fewer than {at} actions: a case that tests nothing"
        assert fast.instance_id is not None and full.instance_id is not None
        before = _row(fast_app, fast.instance_id)
        assert before == _row(full_app, full.instance_id)  # the same point on both copies
        held = _data_at_positions(fast_app, fast.instance_id), _data_at_positions(full_app, full.instance_id)

        fast_report = _migrate(fast_app)
        with monkeypatch.context() as forced:
            forced.setattr(FastPath, "plan", lambda *_args: None)
            full_report = _migrate(full_app)

        [moved_fast] = [i for i in fast_report.instances if i.instance_id == fast.instance_id]
        [moved_full] = [i for i in full_report.instances if i.instance_id == full.instance_id]
        assert full_report.fast_path == 0
        assert moved_fast.migrated and moved_full.migrated
        assert (moved_fast.tasks_added, moved_fast.tasks_removed, moved_fast.timers_moved) == (
            moved_full.tasks_added,
            moved_full.tasks_removed,
            moved_full.timers_moved,
        )
        after = _row(fast_app, fast.instance_id)
        assert after == _row(full_app, full.instance_id)
        assert after["version"] != before["version"]
        # The data at the patient's positions is what it was, whichever path moved the instance.
        for was, app, paused in zip(held, (fast_app, full_app), (fast, full), strict=True):
            now = _data_at_positions(app, paused.instance_id)
            assert now == was, {
                key: (was.get(key), now.get(key)) for key in set(was) | set(now) if was.get(key) != now.get(key)
            }
        if corrected:
            assert any(
                all(task.get(k) == v for k, v in fields.items())
                for task in held[0].values()
                for number, fields in CORRECTIONS.items()
                if number <= at
            )  # a correction was held
            assert moved_fast.fast_path  # kept as it is: the full path gives each task its data back

        finished = _row(fast.finish().app, fast.instance_id), _row(full.finish().app, full.instance_id)
        assert finished[0] == finished[1]
        # Which path ran: at the first task, renamed (a ready task whose spec changed), the full path.
        if journey == "breast-full":
            assert moved_fast.fast_path == (variant != "renamed" or at != 1)
    finally:
        for paused in (fast, full):
            paused.go.set()
        fast_app.close()
        full_app.close()
