"""Compaction: years-long instances stay small and correct past SpiffWorkflow's depth limit, and a
compacted instance behaves exactly like an uncompacted one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from sqlalchemy import func, select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, PathwayInstance
from engine.expressions import SafeEnvironment
from engine.pathways.sources import PathwayLibrary, compile_source
from engine.spiff import patches, serializer, workflows
from engine.spiff.compaction import compact, completed_elements

TESTS = Path(__file__).resolve().parent
NURSE = "clinician:cns-1"


def _state_size(carepath: CarePath, instance_id: str) -> int:
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None
        return len(row.state)


@pytest.mark.slow
def test_500_review_rounds_run_correctly_and_the_state_stays_flat(carepath: CarePath) -> None:
    view = carepath.instances.start("test_review_loop", "MRN-000500", "system:ehr")
    sizes: dict[int, int] = {}
    for round_number in range(1, 501):
        # Past round ~500 an uncompacted tree is deeper than the iterators' limit (1,000): the ready
        # task would be invisible and the instance would look completed.
        assert view.status == "running"
        [task] = view.ready_tasks
        assert task["element"] == "review"
        view = carepath.instances.complete_task(
            view.id, task["id"], {"round": round_number, "follow_up_ends": round_number == 500}, NURSE
        )
        if round_number in (10, 250, 499):
            sizes[round_number] = _state_size(carepath, view.id)
    assert view.status == "completed" and view.ready_tasks == []
    assert sizes[499] <= 1.2 * sizes[10], sizes
    assert sizes[250] <= 1.2 * sizes[10], sizes
    with carepath.sessions() as session:
        completed_events = session.scalar(
            select(func.count()).where(InstanceEvent.instance_id == view.id, InstanceEvent.type == "task_completed")
        )
    assert completed_events == 500  # the history is in the event trail


# --- compacted and uncompacted runs side by side ----------------------------------------------------------


def _specs(pathway_id: str) -> workflows.RestoredSpecs:
    compiled = compile_source(PathwayLibrary(TESTS / "pathways").source(pathway_id))
    return workflows.RestoredSpecs(compiled.spec, compiled.subprocess_specs)


Chooser = Callable[[list[Any], int, ManualClock, Any], "dict[str, Any] | None"]


def _drive(
    specs: workflows.RestoredSpecs,
    choose: Chooser,
    *,
    compacting: bool,
    max_steps: int = 400,
) -> tuple[list[tuple[tuple[str, ...], str | None]], dict[str, Any], bool, Any]:
    """Run a workflow, recording the ready tasks and next due time before each step.

    With ``compacting`` it is compacted, saved and restored after every step, as the service does.
    """
    patches.install()  # as the engine runs SpiffWorkflow: alone, this test read the real clock for its timers
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    engine = PythonScriptEngine(environment=SafeEnvironment(clock))
    seen: list[tuple[tuple[str, ...], str | None]] = []
    with patches.clock_in_effect(clock):
        workflow = workflows.new_workflow(specs, engine)
        workflow.do_engine_steps()
        for step in range(max_steps):
            if compacting:
                compact(workflow)
                workflow = workflows.restore(specs, serializer.dump_state(workflow), engine)
            ready = workflows.ready_tasks(workflow)
            due = workflows.next_due_at(workflow)
            seen.append((tuple(t.task_spec.name for t in ready), due.isoformat() if due else None))
            if not ready:
                break
            data = choose(ready, step, clock, workflow)
            if data is None:
                continue  # the chooser moved time on instead
            ready[0].set_data(**data)
            ready[0].run()
            workflow.do_engine_steps()
    return seen, workflow.data, workflow.is_completed(), workflow


def _parallel_chooser(reverse: bool) -> Chooser:
    rounds = {"n": 0}

    def choose(ready: list[Any], step: int, clock: ManualClock, workflow: Any) -> dict[str, Any] | None:
        ready.sort(key=lambda t: t.task_spec.name, reverse=reverse)
        name = ready[0].task_spec.name
        if name == "bloods":
            return {"hb": 120 + step}
        if name == "offer_support":
            return {"support_accepted": step % 2 == 0}
        rounds["n"] += 1
        if name == "plan" and rounds["n"] == 2:
            clock.advance(timedelta(days=8))  # the review is overdue: the boundary timer fires
            workflow.refresh_timers()
            workflow.do_engine_steps()
            return None
        return {"finished": rounds["n"] >= 5}

    return choose


@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_branches_call_activity_and_boundary_timer_behave_as_uncompacted(reverse: bool) -> None:
    specs = _specs("test_parallel_review")
    plain = _drive(specs, _parallel_chooser(reverse), compacting=False)
    compacted = _drive(specs, _parallel_chooser(reverse), compacting=True)
    assert compacted[0] == plain[0]  # the same ready tasks and due times at every step
    assert compacted[1] == plain[1]  # the same final data
    assert compacted[2] is plain[2] is True
    assert ("chase",) in [ready for ready, _due in plain[0]]  # the boundary timer path was taken
    workflow = compacted[3]
    assert len(workflow.tasks) < 15 and workflow.subprocesses == {}  # finished sub-pathways are dropped


def _assessment_chooser(branch: str) -> Chooser:
    def choose(ready: list[Any], step: int, clock: ManualClock, workflow: Any) -> dict[str, Any] | None:
        name = ready[0].task_spec.name
        return {
            "hna": {"anxiety": 9, "fatigue": 2},
            "urgent_review": {"review_outcome": "managed"},
            "offer_support": {"support_accepted": True},
            "survey": {"qol_score": 60},
            "triage": {"triage_outcome": "seen"},
        }[name]

    return choose


@pytest.mark.parametrize("branch", ["timer", "message"])
def test_event_based_gateway_and_call_activity_behave_as_uncompacted(branch: str) -> None:
    specs = _specs("test_assessment")
    results = []
    for compacting in (False, True):
        seen, _data, _done, workflow = _drive(specs, _assessment_chooser(branch), compacting=compacting)
        assert seen[-1] == ((), "2027-07-15T09:00:00+00:00")  # waiting at the event-based gateway
        # The survey is due at 2027-07-15 09:00; the warning sign comes before that.
        when = datetime(2027, 7, 15, 9, 1) if branch == "timer" else datetime(2026, 6, 1, 9, 0)
        clock = ManualClock(when.replace(tzinfo=UTC))
        with patches.clock_in_effect(clock):
            if compacting:
                compact(workflow)
                workflow = workflows.restore(specs, serializer.dump_state(workflow), workflow.script_engine)
            if branch == "timer":
                workflow.refresh_timers()
            else:
                from SpiffWorkflow.bpmn.util.event import BpmnEvent

                workflow.catch(BpmnEvent(workflows.waiting_messages(workflow)["warning_sign_reported"], {}))
            workflow.do_engine_steps()
            [task] = workflows.ready_tasks(workflow)
            name = task.task_spec.name
            task.set_data(**({"qol_score": 60} if name == "survey" else {"triage_outcome": "seen"}))
            task.run()
            workflow.do_engine_steps()
        results.append((seen, name, workflow.data, workflow.is_completed()))
    assert results[0] == results[1]
    assert results[1][1] == ("survey" if branch == "timer" else "triage")
    assert results[1][3] is True


def test_compaction_keeps_what_a_loop_needs_and_notes_what_was_completed() -> None:
    specs = _specs("test_review_loop")
    rounds = 40

    def choose(ready: list[Any], step: int, clock: ManualClock, workflow: Any) -> dict[str, Any]:
        return {"round": step + 1, "follow_up_ends": step + 1 == rounds}

    plain = _drive(specs, choose, compacting=False)
    compacted = _drive(specs, choose, compacting=True)
    assert compacted[:3] == plain[:3]
    assert compacted[1]["round"] == rounds
    assert {"review", "gw_more", "start"} <= completed_elements(compacted[3])
    assert len(compacted[3].tasks) <= 8 < len(plain[3].tasks)


def test_save_and_restore_in_the_middle_changes_nothing() -> None:
    specs = _specs("test_review_loop")
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    engine = PythonScriptEngine(environment=SafeEnvironment(clock))
    workflow = workflows.new_workflow(specs, engine)
    workflow.do_engine_steps()
    for round_number in range(1, 30):
        [task] = workflows.ready_tasks(workflow)
        task.set_data(round=round_number, follow_up_ends=False)
        task.run()
        workflow.do_engine_steps()
        compact(workflow)
    state = serializer.dump_state(workflow)
    restored = workflows.restore(specs, state, engine)
    assert compact(restored) == 0  # nothing more to remove
    assert serializer.dump_state(restored) == state
    assert [t.id for t in workflows.ready_tasks(restored)] == [t.id for t in workflows.ready_tasks(workflow)]


def test_a_finished_instance_keeps_only_its_final_data(carepath: CarePath) -> None:
    import json

    from engine.db.models import PathwayInstance

    nurse = "clinician:cns-9"
    view = carepath.instances.start("test_assessment", "SYN-FIN-1", "system:ehr", {"diagnosis": "breast"})
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 2}, nurse)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"review_outcome": "referred"}, nurse)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"support_accepted": True}, nurse)
    [view] = carepath.instances.send_message("warning_sign_reported", "system:app", instance_id=view.id)
    before = carepath.instances.instance_data(view.id)
    done = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"triage_outcome": "seen"}, nurse)
    assert done.status == "completed" and done.ready_tasks == []
    carepath.instances.steps.cache.clear()  # read it back from the database
    after = carepath.instances.instance_data(view.id)
    assert after == {**before, "triage_outcome": "seen"}
    assert after["support_accepted"] is True  # from the finished sub-pathway
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, view.id)
        assert row is not None
        state = json.loads(row.state)
    assert len(state["tasks"]) == 1 and state["subprocesses"] == {} and state["completed"] is True


def _listener_rounds(compacting: bool, rounds: int) -> tuple[list[Any], list[int], dict[str, Any], bool]:
    """Report and triage ``rounds`` warning signs, then end the care branch; what each round leaves."""
    compiled = compile_source(PathwayLibrary(TESTS / "diagrams" / "compaction").source("test_listener_rounds"))
    specs = workflows.RestoredSpecs(compiled.spec, compiled.subprocess_specs)
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    engine = PythonScriptEngine(environment=SafeEnvironment(clock))
    seen: list[Any] = []
    sizes: list[int] = []
    with patches.clock_in_effect(clock):
        workflow = workflows.new_workflow(specs, engine)
        workflow.do_engine_steps()
        for number in range(rounds):
            from SpiffWorkflow.bpmn.util.event import BpmnEvent

            workflow.catch(BpmnEvent(workflows.waiting_messages(workflow)["warning_sign_reported"], {}))
            workflow.do_engine_steps()
            [triage] = [t for t in workflows.ready_tasks(workflow) if t.task_spec.name == "triage"]
            triage.set_data(round=number, **{f"sign_{number % 3}": number})
            triage.run()
            workflow.do_engine_steps()
            if compacting:
                compact(workflow)
                workflow = workflows.restore(specs, serializer.dump_state(workflow), engine)
            sizes.append(len(workflow.tasks))
            seen.append(
                ([t.task_spec.name for t in workflows.ready_tasks(workflow)], workflows.accumulated_data(workflow))
            )
        [treatment] = workflows.ready_tasks(workflow)
        treatment.set_data(treated=True)
        treatment.run()
        workflow.do_engine_steps()
        if compacting:
            compact(workflow)
    return seen, sizes, workflows.accumulated_data(workflow), workflow.is_completed()


def test_ended_listener_rounds_do_not_grow_the_state_and_behave_as_uncompacted() -> None:
    plain = _listener_rounds(compacting=False, rounds=30)
    compacted = _listener_rounds(compacting=True, rounds=30)
    assert compacted[0] == plain[0]  # the same ready tasks and accumulated data after every round
    assert compacted[2] == plain[2] and compacted[2]["round"] == 29 and compacted[2]["treated"] is True
    assert compacted[3] is plain[3] is True
    assert plain[1][-1] > plain[1][4] + 50  # SpiffWorkflow alone keeps every round's arrival at the end join
    assert compacted[1][-1] == compacted[1][4]  # compacted: as many tasks after 30 rounds as after 5
