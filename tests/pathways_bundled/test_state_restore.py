"""A stored state restores to the workflow SpiffWorkflow's own serializer restores from its full form.

CarePath restores a version-3 state (``engine.spiff.state_migrations``) directly from its compact form,
with each task id parsed once and stored values restored in place (``engine.spiff.serializer``). The
reference here is SpiffWorkflow 3.2's stock serializer (its default converters, ``SPIFF_CONFIG``) given
the same state expanded to SpiffWorkflow's full form: every task and workflow attribute must be equal,
on every step of bundled journeys, before and after compaction, and both must save the same text.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

from engine import CarePath, ManualClock
from engine.spiff import serializer, state_json, state_migrations, workflows
from engine.spiff.compaction import compact

from .journeys import JOURNEYS
from .palliative_journeys import PALLIATIVE_JOURNEYS

STOCK = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


def _stock_restore(specs: workflows.RestoredSpecs, text: str) -> Any:
    dct = state_json.loads(text)
    STOCK.migrate(dct)
    state_migrations.migrate(dct)
    state_migrations.expand_tasks(dct)
    dct["spec"], dct["subprocess_specs"] = specs.spec, dict(specs.subprocess_specs)
    return STOCK.from_dict(dct)


def _task(task: Any) -> tuple[Any, ...]:
    return (
        task.id,
        task._parent,
        task._children,
        task.state,
        task.task_spec.name,
        task.triggered,
        task.last_state_change,
        _plain(task.data),
        _plain(task.internal_data),
    )


def _plain(value: Any) -> Any:
    """The value with each object the registry restores (events, datetimes: no equality of their own)
    as its type and what the registry converts it to; a dict left unrestored stays a dict."""
    if type(value) is dict:
        return {key: _plain(item) for key, item in value.items()}
    if type(value) is list:
        return [_plain(item) for item in value]
    if type(value) in (str, int, float, bool, type(None)):
        return value
    return (type(value).__qualname__, serializer.SERIALIZER.registry.convert(value))


def _with_stored_values(text: str) -> str:
    """The state with what the journeys never store: in each table, the first task triggered and, for
    each task with data or updates of its own, a datetime, a timedelta and a list of them in it."""
    dct = state_json.loads(text)
    registry = serializer.SERIALIZER.registry
    values = registry.convert({"when": datetime(2026, 3, 1, 9, tzinfo=UTC), "wait": [timedelta(days=2)]})
    for table in [dct["tasks"], *(sub["tasks"] for sub in dct["subprocesses"].values())]:
        first = next(iter(table.values()))
        first["triggered"] = True
        for task in table.values():
            updates = task.get("delta", {}).get("updates")
            (updates if updates else task.get("data") or {}).update(copy.deepcopy(values))
    return state_json.dumps(dct, serializer.ENCODE_OTHER)


def _workflow(workflow: Any) -> dict[str, Any]:
    return {
        "tasks": [_task(task) for task in workflow.tasks.values()],
        "root": workflow.task_tree.id,
        "last_task": workflow.last_task.id if workflow.last_task is not None else None,
        "data": _plain(workflow.data),
        "success": workflow.success,
        "completed": workflow.completed,
        "correlations": workflow.correlations,
    }


def _everything(workflow: Any) -> dict[str, Any]:
    return {
        "top": _workflow(workflow),
        "subprocesses": {key: _workflow(sub) for key, sub in workflow.subprocesses.items()},
        "bpmn_events": _plain(workflow.bpmn_events),
        "waiting_events": sorted(str(task_id) for task_id in workflow.event_manager.tasks),
    }


@pytest.mark.parametrize("name", ["breast-full", "children_young_people-recurrence", "palliative-two-years"])
def test_every_step_restores_as_spiffworkflow_restores_the_full_form(
    name: str, bundled: CarePath, journey_clock: ManualClock
) -> None:
    states: list[tuple[workflows.RestoredSpecs, str]] = []
    bundled.instances.steps.observers.append(
        lambda workflow: states.append(
            (workflows.RestoredSpecs(workflow.spec, workflow.subprocess_specs), serializer.dump_state(workflow))
        )
    )
    {**JOURNEYS, **PALLIATIVE_JOURNEYS}[name](bundled, journey_clock)
    assert len(states) > 15
    compared = 0
    for specs, text in states:
        restored = workflows.restore(specs, text, None)
        compact(restored)  # the state as stored after the step, from the state before compaction
        for state in (text, serializer.dump_state(restored), _with_stored_values(text)):
            ours, stock = workflows.restore(specs, state, None), _stock_restore(specs, state)
            assert _everything(ours) == _everything(stock)
            saved = serializer.dump_state(ours)
            assert saved == serializer.dump_state(stock)
            # The subprocesses come back in the order of their tasks, not of their creation; once
            # restored, a state saves back to its own text.
            assert serializer.dump_state(workflows.restore(specs, saved, None)) == saved
            compared += 1
    assert compared == 3 * len(states)
