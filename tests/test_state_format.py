"""The stored state's CarePath format version: written on every save, older states migrated, newer refused.

``tests/states/monthly_cycle_v1.json`` is a version-1 state written by CarePath itself, before calendar
cycles and before the version key (commit 6feb411): ``tests/pathways/monthly_cycle.bpmn`` started on
15 January 2026, its first occurrence (31 January) fired on 1 February by the worker and its symptom
check completed. Its cycle counts by SpiffWorkflow's fixed period (28 days, the length of that first
month). Run on by that code, the next occurrences fell due on 28 February and 28 March.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.util.deep_merge import DeepMerge
from sqlalchemy import select, update

from engine import CarePath, ManualClock, WorkflowError
from engine.db.models import InstanceEvent, PathwayInstance
from engine.expressions import SafeEnvironment
from engine.instances.timers import fire_due_timers
from engine.pathways.sources import PathwayLibrary, compile_source
from engine.spiff import patches, serializer, state_migrations, workflows
from engine.spiff.state_migrations import CAREPATH_FORMAT, FORMAT_KEY, MIGRATIONS

TESTS = Path(__file__).resolve().parent
VERSION_1_CYCLE = (TESTS / "states" / "monthly_cycle_v1.json").read_text()


def _specs(pathway_id: str) -> workflows.RestoredSpecs:
    compiled = compile_source(PathwayLibrary(TESTS / "pathways").source(pathway_id))
    return workflows.RestoredSpecs(compiled.spec, compiled.subprocess_specs)


def _engine(clock: ManualClock) -> PythonScriptEngine:
    return PythonScriptEngine(environment=SafeEnvironment(clock))


def _cycle_value(workflow: Any) -> dict[str, Any]:
    [task] = [t for t in workflow.tasks.values() if t.task_spec.name == "month_end"]
    value: dict[str, Any] = task.internal_data["event_value"]
    return value


def _fire(workflow: Any, clock: ManualClock, when: datetime) -> list[str]:
    """Move the clock on and refresh the timers, as a worker's step does; the ready tasks' names."""
    clock.set(when)
    with patches.clock_in_effect(clock):
        workflow.refresh_timers()
        workflow.do_engine_steps()
    return [t.task_spec.name for t in workflows.ready_tasks(workflow)]


# --- the version in every state ---------------------------------------------------------------------


def test_every_saved_state_carries_the_current_format_beside_spiffworkflows() -> None:
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    workflow = workflows.new_workflow(_specs("test_review_loop"), _engine(clock))
    workflow.do_engine_steps()
    stored = json.loads(serializer.dump_state(workflow))
    assert stored[FORMAT_KEY] == CAREPATH_FORMAT
    assert stored["serializer_version"] == serializer.STATE_FORMAT


def test_a_current_state_restores_without_migrating_and_saves_back_to_the_same_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patches.install()
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    specs = _specs("test_monthly_cycle")
    workflow = workflows.new_workflow(specs, _engine(clock))
    _fire(workflow, clock, datetime(2026, 2, 1, 9, 0, tzinfo=UTC))
    text = serializer.dump_state(workflow)

    def no_migration(dct: dict[str, Any]) -> None:
        raise AssertionError("a current state must not be migrated")

    monkeypatch.setitem(MIGRATIONS, "1", state_migrations.Migration("2", no_migration))
    assert serializer.dump_state(workflows.restore(specs, text, _engine(clock))) == text


# --- version 1 -----------------------------------------------------------------------------------------


def test_a_version_1_cycle_is_anchored_on_its_fixed_period_and_saved_as_the_current_version() -> None:
    patches.install()
    clock = ManualClock(datetime(2026, 2, 1, 9, 0, tzinfo=UTC))
    specs = _specs("test_monthly_cycle")
    assert FORMAT_KEY not in json.loads(VERSION_1_CYCLE)
    workflow = workflows.restore(specs, VERSION_1_CYCLE, _engine(clock))
    assert _cycle_value(workflow) == {
        "cycles": 2,
        "next": "2026-02-28T09:00:00+00:00",
        "duration": 28 * 86400.0,
        "first": "2026-02-28T09:00:00+00:00",
        "period_months": 0,
        "period_seconds": 28 * 86400.0,
        "occurrence": 0,
    }
    text = serializer.dump_state(workflow)
    assert json.loads(text)[FORMAT_KEY] == CAREPATH_FORMAT
    # Only the version key and the cycle's anchors changed (what version 3 leaves out put back).
    stored, old = json.loads(text), json.loads(VERSION_1_CYCLE)
    state_migrations.expand_tasks(stored)
    del stored[FORMAT_KEY]
    for value in (stored, old):
        [cycle] = [t for t in value["tasks"].values() if t["task_spec"] == "month_end"]
        cycle["internal_data"]["event_value"] = {
            k: v for k, v in cycle["internal_data"]["event_value"].items() if k in ("cycles", "next", "duration")
        }
    assert stored == old
    assert serializer.dump_state(workflows.restore(specs, text, _engine(clock))) == text


def test_a_version_1_cycle_runs_on_as_it_did_before() -> None:
    # 28 February and 28 March, as the code that wrote it ran on (a calendar cycle: 31 March).
    patches.install()
    clock = ManualClock(datetime(2026, 2, 1, 9, 0, tzinfo=UTC))
    specs = _specs("test_monthly_cycle")
    workflow = workflows.restore(specs, VERSION_1_CYCLE, _engine(clock))
    assert workflows.next_due_at(workflow) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert _fire(workflow, clock, datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) == ["symptom_check"]
    assert workflows.next_due_at(workflow) == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    workflow = workflows.restore(specs, serializer.dump_state(workflow), _engine(clock))
    assert _fire(workflow, clock, datetime(2026, 3, 28, 8, 59, tzinfo=UTC)) == ["symptom_check"]  # not yet due
    assert _fire(workflow, clock, datetime(2026, 3, 28, 9, 1, tzinfo=UTC)) == ["symptom_check"] * 2
    assert _cycle_value(workflow)["cycles"] == 0  # three occurrences, all fired


def test_a_version_1_instance_runs_on_through_the_worker_with_each_occurrences_due_date(
    carepath: CarePath, clock: ManualClock
) -> None:
    view = carepath.instances.start("test_monthly_cycle", "MRN-CY-V1", "system:ehr")
    with carepath.sessions() as session:
        session.execute(
            update(PathwayInstance)
            .where(PathwayInstance.id == view.id)
            .values(
                state=VERSION_1_CYCLE,
                ready_tasks="[]",
                next_due_at=datetime(2026, 2, 28, 9, 0, tzinfo=UTC),
                revision=PathwayInstance.revision + 1,
            )
        )
        session.commit()
    clock.set(datetime(2026, 4, 1, 9, 0, tzinfo=UTC))  # 28 February and 28 March both passed
    assert fire_due_timers(carepath.instances, worker_id="w1") == 1
    view = carepath.instances.get(view.id)
    assert [t["element"] for t in view.ready_tasks] == ["symptom_check", "symptom_check"]
    with carepath.sessions() as session:
        fired = session.scalars(
            select(InstanceEvent.payload).where(
                InstanceEvent.instance_id == view.id, InstanceEvent.type == "timer_fired"
            )
        ).all()
        state = session.scalars(select(PathwayInstance.state).where(PathwayInstance.id == view.id)).one()
    assert [json.loads(payload)["due_at"] for payload in fired] == [
        "2026-02-28T09:00:00+00:00",
        "2026-03-28T09:00:00+00:00",
    ]
    assert json.loads(state)[FORMAT_KEY] == CAREPATH_FORMAT


def test_the_migration_anchors_cycles_in_subprocesses_and_leaves_calendar_cycles_and_other_timers() -> None:
    fixed = {"cycles": -1, "next": "2026-05-01T00:00:00+00:00", "duration": 3600.0}
    calendar = {
        "cycles": 1,
        "next": "2026-05-31T09:00:00+00:00",
        "duration": 2592000.0,
        "first": "2026-01-31T09:00:00+00:00",
        "period_months": 1,
        "period_seconds": 0.0,
        "occurrence": 4,
    }

    def task(internal_data: dict[str, Any]) -> dict[str, Any]:
        return {"internal_data": internal_data}

    state = {
        "serializer_version": "1.5",
        "tasks": {
            "a": task({"event_value": dict(calendar)}),
            "b": task({"event_value": "2026-06-01T00:00:00"}),
            "c": task({}),
        },
        "subprocesses": {"s": {"tasks": {"d": task({"event_value": dict(fixed)})}}},
    }
    state_migrations.migrate(state)
    assert state["tasks"]["a"]["internal_data"]["event_value"] == calendar
    assert state["tasks"]["b"]["internal_data"]["event_value"] == "2026-06-01T00:00:00"
    assert state["subprocesses"]["s"]["tasks"]["d"]["internal_data"]["event_value"] == {
        **fixed,
        "first": fixed["next"],
        "period_months": 0,
        "period_seconds": 3600.0,
        "occurrence": 0,
    }
    assert FORMAT_KEY not in state  # taken: dump_state writes the current one


def test_a_new_cycle_in_fractional_months_carries_anchors_that_keep_its_fixed_period() -> None:
    # P1.5M keeps SpiffWorkflow's arithmetic: a fixed number of seconds, computed at the first occurrence.
    patches.install()
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    specs = _specs("test_monthly_cycle")
    specs.spec.task_specs["month_end"].event_definition.expression = "'R3/2026-01-31T09:00:00+00:00/P1.5M'"
    workflow = workflows.new_workflow(specs, _engine(clock))
    assert _fire(workflow, clock, datetime(2026, 2, 1, 9, 0, tzinfo=UTC)) == ["symptom_check"]
    value = _cycle_value(workflow)
    period = 42 * 86400.0  # to 28 February (clamped), and half of February's 28 days: computed once
    assert value == {
        "cycles": 2,
        "next": "2026-03-14T09:00:00+00:00",
        "duration": period,
        "first": "2026-01-31T09:00:00+00:00",
        "period_months": 0,
        "period_seconds": period,
        "occurrence": 1,
    }
    assert _fire(workflow, clock, datetime(2026, 3, 15, 9, 0, tzinfo=UTC)) == ["symptom_check"] * 2
    assert _cycle_value(workflow)["next"] == "2026-04-25T09:00:00+00:00"  # 42 days again


# --- formats this code does not know ----------------------------------------------------------------


def _review_loop_state() -> tuple[workflows.RestoredSpecs, ManualClock, dict[str, Any]]:
    """A started review loop's specs, clock and stored state (as loaded from its JSON), to be edited."""
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    specs = _specs("test_review_loop")
    workflow = workflows.new_workflow(specs, _engine(clock))
    workflow.do_engine_steps()
    return specs, clock, json.loads(serializer.dump_state(workflow))


@pytest.mark.parametrize("version", ["4", "10", "2b", 2, None])
def test_a_state_of_a_format_this_code_does_not_know_is_refused(version: object) -> None:
    specs, clock, stored = _review_loop_state()
    stored[FORMAT_KEY] = version
    with pytest.raises(WorkflowError, match="CarePath format") as raised:
        workflows.restore(specs, json.dumps(stored), _engine(clock))
    if version in ("4", "10"):
        assert "a newer CarePath wrote it" in str(raised.value)
    assert raised.value.problems[0].code == "state-format"


def test_a_state_of_a_newer_spiffworkflow_format_is_refused() -> None:
    specs, clock, stored = _review_loop_state()
    stored["serializer_version"] = "1.6"
    with pytest.raises(WorkflowError, match="SpiffWorkflow's format '1.6'"):
        workflows.restore(specs, json.dumps(stored), _engine(clock))


# --- the registry ---------------------------------------------------------------------------------------


def test_each_migration_says_what_changed() -> None:
    for version, migration in MIGRATIONS.items():
        doc = migration.apply.__doc__ or ""
        assert doc.startswith(f"Version {version} to {migration.target}:"), migration.apply.__name__
        assert len(doc.split()) > 20, f"{migration.apply.__name__}: say what changed, and why"


def test_the_migrations_lead_from_version_1_to_the_current_format_one_step_at_a_time() -> None:
    version, seen = "1", []
    while version in MIGRATIONS:
        seen.append(version)
        target = MIGRATIONS[version].target
        assert int(target) == int(version) + 1
        version = target
    assert version == CAREPATH_FORMAT
    assert seen == sorted(MIGRATIONS, key=int)  # every migration is on the way
    assert f"\n{CAREPATH_FORMAT}  " in (state_migrations.__doc__ or "")  # and in the version table


# --- restoring a task's data ----------------------------------------------------------------------------


def test_a_restored_task_holds_its_parents_data_in_a_copy_of_its_own() -> None:
    """A task stored as its parent's data plus a delta gets a copy one level deep, as SpiffWorkflow's
    DeepMerge.merge({}, parent.data) made it: no list or object shared with the parent, so a change
    to one task's data never shows in another's."""
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    specs = _specs("test_review_loop")
    workflow = workflows.new_workflow(specs, _engine(clock))
    workflow.task_tree.data.update({"concerns": ["fatigue", "money"], "contact": {"name": "CNS"}, "score": 4})
    workflow.do_engine_steps()
    restored = workflows.restore(specs, serializer.dump_state(workflow), _engine(clock))
    inherited = [
        t
        for t in restored.tasks.values()
        if t.parent is not None and "concerns" in t.data and "concerns" in t.parent.data
    ]
    assert len(inherited) >= 2
    for task in inherited:
        assert task.data["concerns"] == DeepMerge.merge({}, task.parent.data)["concerns"] == ["fatigue", "money"]
        assert task.data["concerns"] is not task.parent.data["concerns"]
        assert task.data["contact"] is not task.parent.data["contact"]
    inherited[-1].data["concerns"].append("work")
    assert all("work" not in t.data["concerns"] for t in inherited[:-1])


def test_a_state_holding_a_task_of_an_unknown_type_is_refused() -> None:
    """A task's typename is left out when it is SpiffWorkflow's Task; any other is not one CarePath wrote."""
    specs, clock, stored = _review_loop_state()
    assert all("typename" not in task for task in stored["tasks"].values())
    next(iter(stored["tasks"].values()))["typename"] = "CustomTask"
    with pytest.raises(WorkflowError) as raised:
        workflows.restore(specs, json.dumps(stored), _engine(clock))
    assert [p.code for p in raised.value.problems] == ["state-format"]
