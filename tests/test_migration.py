"""Migrating running instances to a pathway's newest version: safe moves, kept timers, refusals, dry runs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine import CarePath, ManualClock, Settings
from engine.audit import verify_trail
from engine.db.models import InstanceEvent, PathwayInstance
from engine.instances.migration import MigrationProgress, migrate_pathway
from engine.instances.timers import fire_due_timers

NURSE = "clinician:cns-1"
PATHWAY = "test_followup"

_USER_TASK = """
    <bpmn:userTask id="{id}" name="{name}">
      <bpmn:extensionElements>
        <camunda:formData>{fields}</camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>{incoming}</bpmn:incoming>
      <bpmn:outgoing>{outgoing}</bpmn:outgoing>
    </bpmn:userTask>"""
_FIELD = """
          <camunda:formField id="{id}" label="{id}" type="long">
            <camunda:validation><camunda:constraint name="required" /></camunda:validation>
          </camunda:formField>"""


def _diagram(*, hna_fields: tuple[str, ...] = ("anxiety",), wait: str = "P30D", extra: bool = False) -> str:
    """start -> hna -> wait (timer) -> review [-> extra] -> end"""
    fields = "".join(_FIELD.format(id=f) for f in hna_fields)
    after_review = "f_extra" if extra else "f_end"
    body = [
        '<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>',
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="hna" />',
        _USER_TASK.format(id="hna", name="Holistic needs assessment", fields=fields, incoming="f1", outgoing="f2"),
        '<bpmn:sequenceFlow id="f2" sourceRef="hna" targetRef="wait" />',
        f"""<bpmn:intermediateCatchEvent id="wait" name="Follow-up due">
          <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
          <bpmn:timerEventDefinition id="wait_timer">
            <bpmn:timeDuration>{wait}</bpmn:timeDuration>
          </bpmn:timerEventDefinition>
        </bpmn:intermediateCatchEvent>""",
        '<bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="review" />',
        _USER_TASK.format(
            id="review",
            name="Follow-up review",
            fields=_FIELD.format(id="outcome"),
            incoming="f3",
            outgoing=after_review,
        ),
    ]
    if extra:
        body += [
            '<bpmn:sequenceFlow id="f_extra" sourceRef="review" targetRef="extra" />',
            _USER_TASK.format(
                id="extra",
                name="Exercise referral",
                fields=_FIELD.format(id="referred"),
                incoming="f_extra",
                outgoing="f_end",
            ),
        ]
    source = "extra" if extra else "review"
    body += [
        f'<bpmn:sequenceFlow id="f_end" sourceRef="{source}" targetRef="end" />',
        '<bpmn:endEvent id="end"><bpmn:incoming>f_end</bpmn:incoming></bpmn:endEvent>',
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_followup" '
        'targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f'  <bpmn:process id="{PATHWAY}" name="Test follow-up" isExecutable="true">\n'
        + "\n".join(body)
        + "\n  </bpmn:process>\n</bpmn:definitions>\n"
    )


@pytest.fixture
def pathways_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pathways"
    folder.mkdir()
    (folder / "followup.bpmn").write_text(_diagram())
    return folder


@pytest.fixture
def app(database_url: str, pathways_dir: Path, clock: ManualClock) -> Iterator[CarePath]:
    # Four eyes off: these tests move instances at once (tests/test_four_eyes_migration.py has it on).
    carepath = CarePath(
        Settings(database_url=database_url, pathways_dir=pathways_dir, four_eyes=False), clock, upgrade=True
    )
    carepath.catalog.sync_library()
    try:
        yield carepath
    finally:
        carepath.close()


def _deploy(app: CarePath, clock: ManualClock, pathways_dir: Path, diagram: str) -> str:
    clock.advance(timedelta(minutes=1))
    (pathways_dir / "followup.bpmn").write_text(diagram)
    [info] = app.catalog.sync_library()
    assert info.latest
    return info.version


def _complete(app: CarePath, instance_id: str, element: str, data: dict[str, object]) -> None:
    [task] = [t for t in app.instances.get(instance_id).ready_tasks if t["element"] == element]
    app.instances.complete_task(instance_id, task["id"], data, NURSE)


def _waiting_instance(app: CarePath, patient: str = "MRN-1") -> str:
    view = app.instances.start(PATHWAY, patient, "system:ehr")
    _complete(app, view.id, "hna", {"anxiety": 2})
    return view.id


def _events(app: CarePath, instance_id: str, event_type: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == event_type)
            )
        )


def _row(app: CarePath, instance_id: str) -> tuple[str, str, int]:
    with app.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None
        return row.pathway_version.version, row.state, row.revision


def test_a_waiting_instance_moves_and_keeps_its_timer(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    started = clock.now()
    instance_id = _waiting_instance(app)
    old_version = _row(app, instance_id)[0]
    clock.advance(timedelta(days=10))
    new_version = _deploy(app, clock, pathways_dir, _diagram(extra=True))

    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    [moved] = report.instances
    assert moved.migrated and moved.refused is None
    assert (moved.from_version, moved.to_version) == (old_version, new_version)
    assert moved.tasks_added == ["extra"] and moved.tasks_removed == [] and moved.timers_moved == []

    view = app.instances.get(instance_id)
    assert view.pathway_version == new_version
    assert view.next_due_at == (started + timedelta(days=30)).isoformat()  # not restarted by the migration
    [event] = _events(app, instance_id, "migrated")
    assert json.loads(event.payload) == {
        "from_version": old_version,
        "to_version": new_version,
        "tasks_added": ["extra"],
        "tasks_removed": [],
        "timers_moved": [],
    }
    # The instance runs on in the new version: the timer fires when it always would have.
    clock.set(started + timedelta(days=30, minutes=1))
    assert fire_due_timers(app.instances) == 1
    _complete(app, instance_id, "review", {"outcome": 1})
    _complete(app, instance_id, "extra", {"referred": 1})
    assert app.instances.get(instance_id).status == "completed"
    # Instances already on the newest version are left alone.
    assert migrate_pathway(app.instances, PATHWAY, "cli:test").instances == []


def test_a_dry_run_lists_the_changes_and_writes_nothing(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    instance_id = _waiting_instance(app)
    before = _row(app, instance_id)
    _deploy(app, clock, pathways_dir, _diagram(extra=True, wait="P60D"))

    report = migrate_pathway(app.instances, PATHWAY, "cli:test", dry_run=True)
    [plan] = report.instances
    assert not plan.migrated and plan.refused is None
    assert plan.tasks_added == ["extra"]
    start = app.clock.now() - timedelta(minutes=1)
    assert plan.timers_moved == [
        {
            "element": "wait",
            "from": (start + timedelta(days=30)).isoformat(),
            "to": (start + timedelta(days=60)).isoformat(),
        }
    ]
    assert _row(app, instance_id) == before
    assert _events(app, instance_id, "migrated") == []


def test_a_changed_timer_counts_from_when_the_wait_began(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    started = clock.now()
    instance_id = _waiting_instance(app)
    clock.advance(timedelta(days=20))
    _deploy(app, clock, pathways_dir, _diagram(wait="P60D"))
    [moved] = migrate_pathway(app.instances, PATHWAY, "cli:test").instances
    assert moved.migrated
    assert app.instances.get(instance_id).next_due_at == (started + timedelta(days=60)).isoformat()


def test_changing_completed_work_is_refused_per_instance(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    past_hna = _waiting_instance(app, "MRN-1")
    at_hna = app.instances.start(PATHWAY, "MRN-2", "system:ehr").id
    before = _row(app, past_hna)
    new_version = _deploy(app, clock, pathways_dir, _diagram(hna_fields=("anxiety", "fatigue")))

    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    by_id = {item.instance_id: item for item in report.instances}
    assert by_id[past_hna].refused is not None and "completed task 'hna' would change" in by_id[past_hna].refused
    assert not by_id[past_hna].migrated
    assert _row(app, past_hna) == before
    # An instance that has not done the assessment yet moves, and sees the new form.
    assert by_id[at_hna].migrated
    view = app.instances.get(at_hna)
    assert view.pathway_version == new_version
    [task] = view.ready_tasks
    assert task["form"]["required"] == ["anxiety", "fatigue"]


def test_migrate_command(
    app: CarePath, clock: ManualClock, pathways_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    instance_id = _waiting_instance(app)
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(pathways_dir))
    monkeypatch.setenv("CAREPATH_FOUR_EYES", "off")
    runner = CliRunner()
    dry = runner.invoke(main, ["migrate", PATHWAY, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{instance_id} (MRN-1): would move" in dry.output
    assert "+ task ahead: extra" in dry.output
    assert "1 instance(s) would move, 0 refused" in dry.output
    done = runner.invoke(main, ["migrate", PATHWAY])
    assert done.exit_code == 0, done.output
    assert "1 instance(s) moved" in done.output
    assert f"migrating {PATHWAY}: 1/1 (100%), 0 refused" in done.stderr
    assert len(_events(app, instance_id, "migrated")) == 1


def test_a_stopped_migration_resumes_where_it_stopped(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    ids = []
    for n in range(4):  # oldest first: the order they are migrated in
        clock.advance(timedelta(minutes=1))
        ids.append(_waiting_instance(app, f"MRN-{n}"))
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    seen: list[MigrationProgress] = []

    def killed_after_two(progress: MigrationProgress) -> None:
        seen.append(progress)
        if progress.done == 2:
            raise KeyboardInterrupt  # as a kill between two instances: each one before was committed

    with pytest.raises(KeyboardInterrupt):
        migrate_pathway(app.instances, PATHWAY, "cli:test", progress=killed_after_two, progress_every=1)
    assert [(p.done, p.total, p.refused) for p in seen] == [(1, 4, 0), (2, 4, 0)]
    assert [len(_events(app, i, "migrated")) for i in ids] == [1, 1, 0, 0]
    rerun = migrate_pathway(app.instances, PATHWAY, "cli:test")
    assert [i.instance_id for i in rerun.instances] == ids[2:] and all(i.migrated for i in rerun.instances)
    assert [len(_events(app, i, "migrated")) for i in ids] == [1, 1, 1, 1]


def test_many_instances_share_one_diff_of_the_two_versions(
    app: CarePath, clock: ManualClock, pathways_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from SpiffWorkflow.bpmn.util import diff

    [_waiting_instance(app, f"MRN-{n}") for n in range(3)]
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    built = []
    original = diff.SpecDiff.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(diff.SpecDiff, "__init__", counted)
    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    assert len(report.instances) == 3 and all(i.migrated for i in report.instances)
    assert len(built) == 1  # was two per instance


def test_parts_split_the_instances_between_commands(
    app: CarePath, clock: ManualClock, pathways_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    ids = {_waiting_instance(app, f"MRN-{n}") for n in range(6)}
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    shares = [
        {
            i.instance_id
            for i in migrate_pathway(app.instances, PATHWAY, "cli:test", dry_run=True, part=(k, 3)).instances
        }
        for k in (1, 2, 3)
    ]
    assert set().union(*shares) == ids and sum(len(s) for s in shares) == len(ids)  # disjoint, all covered
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(pathways_dir))
    monkeypatch.setenv("CAREPATH_FOUR_EYES", "off")
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", PATHWAY, "--part", "4/3"]).exit_code == 2
    for k in (1, 2, 3):
        done = runner.invoke(main, ["migrate", PATHWAY, "--part", f"{k}/3"])
        assert done.exit_code == 0, done.output
    assert all(len(_events(app, i, "migrated")) == 1 for i in ids)


def test_the_target_version_is_read_once_per_migration_not_per_instance(
    app: CarePath, clock: ManualClock, pathways_dir: Path
) -> None:
    from sqlalchemy import event

    [_waiting_instance(app, f"MRN-{n}") for n in range(4)]
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(app.db, "before_cursor_execute", note)
    try:
        report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    finally:
        event.remove(app.db, "before_cursor_execute", note)
    assert len(report.instances) == 4 and all(i.migrated for i in report.instances)
    # The active version is looked up once (and its spec, when this process has not restored it): was once per instance.
    assert len([s for s in seen if "FROM pathway_versions" in s]) <= 2


def test_migrate_command_moves_every_instance_once_in_several_processes(
    app: CarePath, clock: ManualClock, pathways_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    ids = {_waiting_instance(app, f"MRN-{n}") for n in range(7)}
    _deploy(app, clock, pathways_dir, _diagram(extra=True))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(pathways_dir))
    monkeypatch.setenv("CAREPATH_FOUR_EYES", "off")
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", PATHWAY, "--jobs", "2", "--part", "1/2"]).exit_code == 2
    done = runner.invoke(main, ["migrate", PATHWAY, "--jobs", "3", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert sorted(i["instance_id"] for i in report["instances"]) == sorted(ids)
    assert all(i["migrated"] for i in report["instances"])
    assert all(len(_events(app, i, "migrated")) == 1 for i in ids)
    assert "migrating test_followup: 7/7 (100%), 0 refused" in done.stderr
    again = runner.invoke(main, ["migrate", PATHWAY, "--jobs", "3", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["instances"] == []  # nothing left: resumable


def test_a_share_that_fails_fails_the_command_with_its_reason(
    app: CarePath, database_url: str, pathways_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(pathways_dir))
    monkeypatch.setenv("CAREPATH_FOUR_EYES", "off")
    failed = CliRunner().invoke(main, ["migrate", "no_such_pathway", "--jobs", "2"])
    assert failed.exit_code == 1
    assert (
        "share 1/2: no version of pathway 'no_such_pathway' is deployed and active" in failed.output
        or "share 2/2: no version of pathway 'no_such_pathway' is deployed and active" in failed.output
    )
    assert "run the command again to go on" in failed.output


# --- the fast path (engine.instances.migration_fast; tests/pathways_bundled/test_migration_fast.py
# compares it with the full path on the bundled breast pathway) -----------------------------------


def _relabelled(element: str) -> str:
    """The diagram with one element's label changed: nothing an instance past it depends on."""
    label = {"hna": "Holistic needs assessment", "review": "Follow-up review"}[element]
    changed = _diagram().replace(f'name="{label}"', f'name="{label} (renamed)"')
    assert changed != _diagram()
    return changed


def _stored_state(app: CarePath, instance_id: str) -> bytes:
    from sqlalchemy import text

    with app.db.connect() as connection:
        return bytes(
            connection.execute(
                text("SELECT state FROM pathway_instances WHERE id = :i"), {"i": instance_id}
            ).scalar_one()
        )


def test_the_fast_path_keeps_the_state_and_seals_its_digest(
    app: CarePath, clock: ManualClock, pathways_dir: Path
) -> None:
    from engine.audit import state_digest, verify_trail
    from engine.db.stored_state import decode_state

    started = clock.now()
    instance_id = _waiting_instance(app)  # hna completed, the timer waiting, review predicted
    stored = _stored_state(app, instance_id)
    old_version = _row(app, instance_id)[0]
    new_version = _deploy(app, clock, pathways_dir, _relabelled("review"))

    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    [moved] = report.instances
    assert moved.migrated and moved.fast_path and report.fast_path == 1
    assert _stored_state(app, instance_id) == stored  # not rewritten
    [event] = _events(app, instance_id, "migrated")
    assert json.loads(event.payload) == {
        "from_version": old_version,
        "to_version": new_version,
        "tasks_added": [],
        "tasks_removed": [],
        "timers_moved": [],
    }
    assert event.state_digest == state_digest(decode_state(stored))
    with app.sessions() as session:
        assert verify_trail(session, [instance_id]) == []
    view = app.instances.get(instance_id)
    assert (view.pathway_version, view.version) == (new_version, _row(app, instance_id)[2])
    # The workflow this process cached before the move is not used: the review shows the new label.
    clock.set(started + timedelta(days=30, minutes=1))
    assert fire_due_timers(app.instances) == 1
    [review] = app.instances.get(instance_id).ready_tasks
    assert review["name"] == "Follow-up review (renamed)"
    _complete(app, instance_id, "review", {"outcome": 1})
    assert app.instances.get(instance_id).status == "completed"


def test_the_fast_path_seals_the_state_it_keeps_to_its_new_digest(
    database_url: str, pathways_dir: Path, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a trail key, the state kept as it is gets a new seal for the migrated event's digest
    (engine.audit.TrailKey.state_mac): verification still takes it without inflating it."""
    from sqlalchemy import text

    from engine import audit
    from engine.audit import trail_key_of, verify_trail

    key_file = tmp_path / "trail.key"
    key_file.write_text("9e1b" * 12 + "\n")
    key_file.chmod(0o400)
    settings = Settings(database_url=database_url, pathways_dir=pathways_dir, four_eyes=False, trail_key_file=key_file)
    keyed = CarePath(settings, clock, upgrade=True)
    try:
        keyed.catalog.sync_library()
        instance_id = _waiting_instance(keyed)
        stored = _stored_state(keyed, instance_id)
        _deploy(keyed, clock, pathways_dir, _relabelled("review"))
        report = migrate_pathway(keyed.instances, PATHWAY, "cli:test")
        assert report.fast_path == 1 and _stored_state(keyed, instance_id) == stored
        [event] = _events(keyed, instance_id, "migrated")
        with keyed.db.connect() as connection:
            seal = connection.execute(
                text("SELECT state_mac FROM pathway_instances WHERE id = :i"), {"i": instance_id}
            ).scalar_one()
        with keyed.sessions() as session:
            key = trail_key_of(session)
        assert key is not None and seal == key.state_mac(instance_id, event.state_digest, stored)
        monkeypatch.setattr(audit, "decode_state", lambda stored: pytest.fail("a sealed state was inflated"))
        with keyed.sessions() as session:
            assert verify_trail(session, [instance_id]) == []
    finally:
        keyed.close()


def test_an_instance_at_a_changed_task_takes_the_full_path(
    app: CarePath, clock: ManualClock, pathways_dir: Path
) -> None:
    at_hna = app.instances.start(PATHWAY, "MRN-1", "system:ehr").id  # hna ready: its spec changes
    past_hna = _waiting_instance(app, "MRN-2")  # hna completed: its work is the same
    _deploy(app, clock, pathways_dir, _relabelled("hna"))

    dry = migrate_pathway(app.instances, PATHWAY, "cli:test", dry_run=True)
    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    paths = {i.instance_id: (i.migrated, i.fast_path) for i in report.instances}
    assert paths == {at_hna: (True, False), past_hna: (True, True)}
    assert report.fast_path == 1
    [ready] = app.instances.get(at_hna).ready_tasks
    assert ready["name"] == "Holistic needs assessment (renamed)"
    # A dry run reports the same plan, path included, and wrote nothing.
    assert [(i.instance_id, i.fast_path, i.tasks_added, i.tasks_removed, i.timers_moved) for i in dry.instances] == [
        (i.instance_id, i.fast_path, i.tasks_added, i.tasks_removed, i.timers_moved) for i in report.instances
    ]
    assert dry.fast_path == 1 and not any(i.migrated for i in dry.instances)


def test_a_dry_run_of_the_fast_path_writes_nothing(app: CarePath, clock: ManualClock, pathways_dir: Path) -> None:
    instance_id = _waiting_instance(app)
    before = _row(app, instance_id)
    _deploy(app, clock, pathways_dir, _relabelled("review"))
    report = migrate_pathway(app.instances, PATHWAY, "cli:test", dry_run=True)
    assert report.fast_path == 1 and not report.instances[0].migrated
    assert _row(app, instance_id) == before
    assert _events(app, instance_id, "migrated") == []


def test_an_instance_changed_after_its_batch_was_read_takes_the_full_path(
    app: CarePath, clock: ManualClock, pathways_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.instances import migration

    ids = [_waiting_instance(app, f"MRN-{n}") for n in range(3)]
    changed = ids[1]  # the others of its batch move before and after it
    _deploy(app, clock, pathways_dir, _relabelled("review"))
    original = migration.load_instances

    def then_changed(session: Any, batch: list[str]) -> Any:
        found = original(session, batch)
        app.instances.suspend(changed, "clinician:cns-2", "patient_request")  # another request
        return found

    monkeypatch.setattr(migration, "load_instances", then_changed)
    report = migrate_pathway(app.instances, PATHWAY, "cli:test")
    paths = {i.instance_id: (i.migrated, i.fast_path, i.status) for i in report.instances}
    # The guarded write refused the revision read: read again, it took the full path; the others the fast one.
    assert paths == {
        ids[0]: (True, True, "running"),
        changed: (True, False, "suspended"),
        ids[2]: (True, True, "running"),
    }
    assert app.instances.get(changed).status == "suspended"
    # The fast path's event, chained to the head its batch read, was not written: one migration, after
    # the suspension, and every trail verifies.
    assert [e.type for e in sorted(_all_events(app, changed), key=lambda e: e.seq)][-2:] == ["suspended", "migrated"]
    with app.sessions() as session:
        assert verify_trail(session, ids) == []


def _all_events(app: CarePath, instance_id: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(session.scalars(select(InstanceEvent).where(InstanceEvent.instance_id == instance_id)))


def test_a_fast_path_move_on_postgresql_is_one_statement_in_autocommit(
    app: CarePath, clock: ManualClock, pathways_dir: Path, database_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the guarded update and the event are one statement run in autocommit (one round
    trip): another connection sees the move as soon as the statement ran, before the unit's end. On
    SQLite it is a transaction: nothing is seen before its commit."""
    from engine.instances import migration

    instance_id = _waiting_instance(app)
    old_version = _row(app, instance_id)[0]
    new_version = _deploy(app, clock, pathways_dir, _relabelled("review"))
    seen = []
    original = migration.save_instance

    query = (
        "SELECT v.version FROM pathway_instances i JOIN pathway_versions v ON v.id = i.pathway_version_id "
        f"WHERE i.id = '{instance_id}'"
    )

    def and_look(session: Any, record: Any, **kwargs: Any) -> None:
        original(session, record, **kwargs)
        if database_kind == "postgresql":
            with app.db.connect() as other:
                seen.append(other.exec_driver_sql(query).scalar_one())
        else:  # a reader of its own: SQLite's WAL shows it the last commit
            with closing(sqlite3.connect(app.settings.database_url.removeprefix("sqlite:///"))) as other:
                seen.append(other.execute(query).fetchone()[0])

    monkeypatch.setattr(migration, "save_instance", and_look)
    [moved] = migrate_pathway(app.instances, PATHWAY, "cli:test").instances
    assert moved.migrated and moved.fast_path
    assert seen == [new_version if database_kind == "postgresql" else old_version]
    with app.sessions() as session:
        assert verify_trail(session, [instance_id]) == []


def test_a_one_statement_write_that_needs_more_is_refused_on_postgresql(app: CarePath, database_kind: str) -> None:
    """Autocommit would make a second statement a unit of its own: such a write is refused, nothing
    written. SQLite's write is a transaction, where more statements are atomic too."""
    from engine.audit import append_event
    from engine.db.session import read_only, unit_of_work
    from engine.instances.store import load_instance, save_instance

    instance_id = _waiting_instance(app)
    before = _row(app, instance_id)

    def write() -> None:
        with read_only(app.sessions) as session:
            record = load_instance(session, instance_id)
        with unit_of_work(app.sessions) as session:  # the write is its first use of the database
            append_event(
                session,
                record,
                "migrated",
                at=record.updated_at,
                actor="cli:test",
                pathway_version=before[0],
                payload={},
            )
            record.ready_tasks = json.dumps([{"id": "t1", "element": "review"}])  # their elements: another statement
            save_instance(session, record, seal_state=True, one_statement=True)

    if database_kind == "postgresql":
        with pytest.raises(RuntimeError, match="more than one"):
            write()
        assert _row(app, instance_id) == before
    else:
        write()
        assert _row(app, instance_id)[2] == before[2] + 1
    with app.sessions() as session:
        assert verify_trail(session, [instance_id]) == []


def test_the_command_counts_the_fast_path_over_its_processes(
    app: CarePath, clock: ManualClock, pathways_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import main

    ids = {_waiting_instance(app, f"MRN-{n}") for n in range(5)}
    _deploy(app, clock, pathways_dir, _relabelled("review"))
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(pathways_dir))
    monkeypatch.setenv("CAREPATH_FOUR_EYES", "off")
    done = CliRunner().invoke(main, ["migrate", PATHWAY, "--jobs", "2", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["fast_path"] == 5 and {i["instance_id"] for i in report["instances"] if i["fast_path"]} == ids
    assert "migrating test_followup: 5/5 (100%), 0 refused, 5 by the fast path" in done.stderr


@pytest.mark.parametrize("path", ["full", "fast"])
def test_a_correction_at_the_ready_task_survives_the_migration(
    app: CarePath, clock: ManualClock, pathways_dir: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A clinician corrects a value while the patient is at a ready task; the instance is migrated; the
    next step reads the corrected value, whichever path moved it, and the trail still verifies."""
    from api.cli import main
    from engine.instances.migration_fast import FastPath

    instance_id = app.instances.start(PATHWAY, "MRN-1", "system:ehr", {"stage": "T1", "site": "left"}).id
    app.instances.correct_data(instance_id, {"stage": "T2"}, "mdt_review", NURSE)  # hna is ready
    _deploy(app, clock, pathways_dir, _relabelled("review"))  # hna unchanged: the fast path may keep it
    if path == "full":
        monkeypatch.setattr(FastPath, "plan", lambda *_args: None)

    [moved] = migrate_pathway(app.instances, PATHWAY, "cli:test").instances
    assert moved.migrated and moved.fast_path == (path == "fast")
    _complete(app, instance_id, "hna", {"anxiety": 2})
    clock.advance(timedelta(days=30, minutes=1))
    assert fire_due_timers(app.instances) == 1
    assert [t["element"] for t in app.instances.get(instance_id).ready_tasks] == ["review"]
    data = app.instances.instance_data(instance_id)
    assert (data["stage"], data["site"], data["anxiety"]) == ("T2", "left", 2)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", app.settings.database_url)
    verified = CliRunner().invoke(main, ["audit", "verify", "--instance", instance_id])
    assert verified.exit_code == 0, verified.output


def test_a_task_keeps_its_data_but_for_the_constants_a_new_pre_script_sets() -> None:
    from engine.instances.migration import kept_data

    parent = {"stage": "T1", "review_outcome": "x"}
    # Entered under the old version (pre-script: review_outcome = None, prompt = 1), then corrected.
    old = {"stage": "T2", "review_outcome": None, "prompt": 1}
    was_set = {"review_outcome": None, "prompt": 1}
    now_set = {"review_outcome": None, "prompt": 2, "form_version": 3}
    reset = {**parent, **now_set}
    # The correction stays; a constant still as the old pre-script set it takes the new value; a new one is set.
    assert kept_data(reset, old, was_set, now_set, []) == {
        "stage": "T2",
        "review_outcome": None,
        "prompt": 2,
        "form_version": 3,
    }
    # A value changed since the task was entered (a correction of what the pre-script set) is kept.
    assert kept_data(reset, {**old, "prompt": 7}, was_set, now_set, [])["prompt"] == 7
    # An old pre-script that computed: what the task holds stands; the reset's values of the parent do not
    # come back (a waiting join holds none), but data objects are read again.
    assert kept_data({**reset, "plan": "new"}, {}, None, None, ["plan"]) == {"plan": "new"}
    assert kept_data(reset, old, None, None, []) == old
