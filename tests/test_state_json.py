"""The JSON of instance states (engine.spiff.state_json): orjson, stored in the form the stdlib stored."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from engine import ManualClock
from engine.expressions import SafeEnvironment
from engine.pathways.sources import PathwayLibrary, compile_source
from engine.spiff import patches, serializer, state_json, state_migrations, workflows
from engine.spiff.serializer import SERIALIZER

TESTS = Path(__file__).resolve().parent


def _stdlib_dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), cls=SERIALIZER._encoder_cls)


def test_values_spiffworkflow_converts_are_stored_as_the_stdlib_stored_them() -> None:
    # A datetime in task data (a timer's due date, a date an operator set) must come back a datetime:
    # SpiffWorkflow's encoder stores it tagged with its type, and orjson must not write it natively.
    data = {
        "due": datetime(2027, 8, 31, 9, 0, tzinfo=UTC),
        "every": timedelta(days=30),
        "seen": {"a"},
        "scores": [1, 2.5, None, True],
        "nested": {"text": "Ångest"},
    }
    written = state_json.dumps(data, serializer.ENCODE_OTHER)
    assert json.loads(written) == json.loads(_stdlib_dumps(data))
    restored = SERIALIZER.registry.restore(state_json.loads(written))
    assert restored["due"] == data["due"] and restored["every"] == data["every"]


def test_integers_past_64_bits_are_kept() -> None:
    # Expressions may compute them; orjson refuses them, so the stdlib writes and reads them.
    value = {"big": 2**70, "negative": -(2**65)}
    written = state_json.dumps(value, serializer.ENCODE_OTHER)
    assert state_json.loads(written) == value


def test_states_written_with_nan_by_the_stdlib_still_load() -> None:
    loaded = state_json.loads('{"score": NaN, "limit": Infinity}')
    assert math.isnan(loaded["score"]) and loaded["limit"] == math.inf


def test_text_that_is_not_json_raises_the_stdlib_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        state_json.loads('{"truncated": ')


def test_a_value_json_cannot_hold_raises_type_error_as_before() -> None:
    with pytest.raises(TypeError):
        state_json.dumps({"thing": object()}, serializer.ENCODE_OTHER)


def test_a_saved_workflow_restores_to_the_same_state() -> None:
    # A real diagram, a few review rounds in, with a timer's datetime in its task data.
    specs = _specs("test_review_loop")
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    engine = PythonScriptEngine(environment=SafeEnvironment(clock))
    with patches.clock_in_effect(clock):
        workflow = workflows.new_workflow(specs, engine)
        workflow.do_engine_steps()
        for round_number in range(1, 4):
            [task] = workflows.ready_tasks(workflow)
            task.set_data(round=round_number, follow_up_ends=False, seen_at=clock.now())
            task.run()
            workflow.do_engine_steps()
    text = serializer.dump_state(workflow)
    assert json.loads(text) == json.loads(_stdlib_dumps_state(workflow))
    restored = workflows.restore(specs, text, engine)
    assert serializer.dump_state(restored) == text
    [task] = workflows.ready_tasks(restored)
    assert task.data["seen_at"] == clock.now()


def test_a_workflow_inside_a_called_sub_pathway_restores_with_its_links() -> None:
    # test_assessment calls a shared sub-pathway: tasks in two trees, each id written three times.
    specs = _specs("test_assessment")
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    engine = PythonScriptEngine(environment=SafeEnvironment(clock))
    answers = {"hna": {"anxiety": 3, "fatigue": 4}, "offer_support": {"support_accepted": True}}
    with patches.clock_in_effect(clock):
        workflow = workflows.new_workflow(specs, engine)
        workflow.do_engine_steps()
        [task] = workflows.ready_tasks(workflow)
        task.set_data(**answers[task.task_spec.name])
        task.run()
        workflow.do_engine_steps()
    assert workflow.subprocesses, "the step should have entered the called sub-pathway"
    text = serializer.dump_state(workflow)
    restored = workflows.restore(specs, text, engine)
    assert serializer.dump_state(restored) == text
    for part in (restored, *restored.subprocesses.values()):
        for task in part.tasks.values():
            assert all(child.parent is task for child in task.children)
    assert [t.task_spec.name for t in workflows.ready_tasks(restored)] == [
        t.task_spec.name for t in workflows.ready_tasks(workflow)
    ]


def _specs(pathway_id: str) -> workflows.RestoredSpecs:
    compiled = compile_source(PathwayLibrary(TESTS / "pathways").source(pathway_id))
    return workflows.RestoredSpecs(compiled.spec, compiled.subprocess_specs)


def _stdlib_dumps_state(workflow: object) -> str:
    registry = SERIALIZER.registry
    registry._encoder_mode = True
    try:
        dct = SERIALIZER.to_dict(workflow)
    finally:
        registry._encoder_mode = False
    state_migrations.compact_tasks(dct)
    dct[SERIALIZER.VERSION_KEY] = serializer.STATE_FORMAT
    dct[state_migrations.FORMAT_KEY] = state_migrations.CAREPATH_FORMAT
    return _stdlib_dumps(dct)
