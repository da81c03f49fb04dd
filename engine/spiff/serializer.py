"""How instance states and pathway specs are stored: SpiffWorkflow's serializer, adapted.

* The spec is kept out of an instance's state: it is stored once per pathway version
  (:func:`serialize_specs`) and restored objects are shared (``engine.spiff.workflows.specs_for``).
* A state is converted without converting its spec, and restored with each task id parsed once.
* The JSON is read and written with :mod:`engine.spiff.state_json`.
* A state carries two format versions: SpiffWorkflow's (``serializer_version``) and CarePath's
  (``carepath_format``, :mod:`engine.spiff.state_migrations`, which lists the versions). Restoring
  runs SpiffWorkflow's migrations, then CarePath's, and refuses a format neither knows.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Mapping
from copy import copy
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS as SPIFF_MIGRATIONS
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.errors import Problem, WorkflowError
from engine.spiff import state_json, state_migrations

__all__ = ["SERIALIZER", "STATE_FORMAT", "CarePathSerializer", "dump_state", "serialize_specs"]


# The ids parsed while one state is restored (None outside a restore): text -> the one UUID object.
_parsed_ids: contextvars.ContextVar[dict[str, UUID] | None] = contextvars.ContextVar("carepath_ids", default=None)


# The texts of the ids written while one state is converted (None outside): UUID -> its text.
_id_texts: contextvars.ContextVar[dict[UUID, str] | None] = contextvars.ContextVar("carepath_id_texts", default=None)


def _once(seen: contextvars.ContextVar[dict[Any, Any] | None], key: Any, make: Callable[[Any], Any]) -> Any:
    """``make(key)``, made once per restore or save (while ``seen`` holds a dict) and then looked up."""
    made = seen.get()
    if made is None:
        return make(key)
    found = made.get(key)
    if found is None:
        found = made[key] = make(key)
    return found


def _task_id(text: str) -> UUID:
    found: UUID = _once(_parsed_ids, text, UUID)
    return found


def _id_text(task_id: UUID) -> str:
    found: str = _once(_id_texts, task_id, str)
    return found


class _TaskConverter(TaskConverter):
    """SpiffWorkflow 3.2's task converter, parsing each task id once per restore (and writing the
    text of each once per save).

    A task's id is written three times in a state: as its own id, in its parent's children and as
    its children's parent. SpiffWorkflow parsed each into a UUID object of its own (3 us each), and
    every lookup of a parent or a child then compared two equal UUIDs in Python. Parsed once, the
    tasks dictionary finds the very object it holds. An empty object is not walked, and a task's
    data is copied from its parent's as DeepMerge did, without its per-key bookkeeping (together a
    fifth of a restore). The body is SpiffWorkflow's own otherwise
    (``SpiffWorkflow/bpmn/serializer/default/workflow.py``, pinned below 3.3); tests check that a
    restored state saves back to the same text.
    """

    def to_dict(self, task: Task) -> dict[str, Any]:
        parent = task.parent
        if parent is None:
            data, delta = task.data, {}
        else:
            data = {}
            delta = {
                "updates": DeepMerge.get_updated_keys(parent.data, task.data),
                "deletions": DeepMerge.get_deleted_keys(parent.data, task.data),
            }
        internal = task.internal_data
        return {
            "id": _id_text(task.id),
            "parent": _id_text(task._parent) if parent is not None else None,
            "children": [_id_text(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task.state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": {} if _empty(internal) else self.registry.convert(internal),
            "data": data,
            "delta": delta,
        }

    def from_dict(self, dct: dict[str, Any], workflow: Any) -> Task:
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=_task_id(dct["id"]))
        task._parent = _task_id(dct["parent"]) if dct["parent"] is not None else None
        task._children = [_task_id(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        task.internal_data = self._restore(dct["internal_data"])
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        if delta and task.parent is not None:
            # What DeepMerge.merge({}, parent.data) does (every key is new): a copy one level deep.
            data = {
                key: copy(value) if isinstance(value, _MUTABLE) else value for key, value in task.parent.data.items()
            }
            updates = delta.get("updates", {})
            if not _empty(updates):
                data.update(self.registry.restore(updates))
            for key in delta.get("deletions", {}):
                if key in data:
                    del data[key]
        else:
            data = self._restore(dct["data"])
        task.data = data
        return task

    def _restore(self, value: Any) -> Any:
        """``registry.restore``, without its walk for the empty object most tasks hold (a new one)."""
        return {} if _empty(value) else self.registry.restore(value)


_MUTABLE = (dict, list, set)


def _empty(value: Any) -> bool:
    return type(value) is dict and not value


class _SpecCachingConverter(BpmnWorkflowConverter):
    """Keeps the spec out of an instance's state: it is stored once per pathway version.

    Restores a workflow around already-restored spec objects when they are handed in, and
    converts a workflow without converting its spec (SpiffWorkflow's own converter would, and
    the result was thrown away: a third of the cost of saving a state).
    """

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        token = _id_texts.set({})
        try:
            dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
            dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        finally:
            _id_texts.reset(token)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any]) -> BpmnWorkflow:
        spec = dct.pop("spec")
        subprocess_specs = dct.pop("subprocess_specs", {})
        if isinstance(spec, dict):
            spec = self.registry.restore(spec)
            subprocess_specs = self.mapping_from_dict(subprocess_specs)
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        token = _parsed_ids.set({})
        try:
            workflow.tasks = {
                _task_id(key): self.registry.restore(task, workflow=workflow) for key, task in dct["tasks"].items()
            }
            workflow.task_tree = workflow.tasks.get(_task_id(dct["root"]))
            self.set_default_attributes(workflow, dct)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
        finally:
            _parsed_ids.reset(token)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class CarePathSerializer(BpmnWorkflowSerializer):
    """SpiffWorkflow's serializer, whose migration also brings CarePath's additions up to date."""

    def migrate(self, dct: dict[str, Any]) -> None:
        """Bring a loaded state to the current formats, in place: SpiffWorkflow's, then CarePath's.

        Raises:
            WorkflowError: the state is in a format this CarePath cannot read (a newer one wrote it).
        """
        version = dct.get(self.VERSION_KEY)
        # SpiffWorkflow's own migrate passes over a version it does not know, and the state is misread.
        if version != self.VERSION and version not in SPIFF_MIGRATIONS:
            message = (
                f"the stored instance state is in SpiffWorkflow's format {version!r}, which this CarePath "
                f"cannot read (it reads formats up to {self.VERSION!r})"
            )
            raise WorkflowError(message, [Problem(message, code="state-format")])
        super().migrate(dct)
        state_migrations.migrate(dct)
        state_migrations.expand_tasks(dct)  # what a version-3 state leaves out, for SpiffWorkflow's converters


_CONFIG = dict(SPIFF_CONFIG)
_CONFIG[BpmnWorkflow] = _SpecCachingConverter
_CONFIG[Task] = _TaskConverter
# One serializer for the process: thread-safe for restore/convert (LIBRARY_NOTES, 880 runs).
SERIALIZER = CarePathSerializer(BpmnWorkflowSerializer.configure(_CONFIG))
STATE_FORMAT = SERIALIZER.VERSION
# SpiffWorkflow's JSON encoder's fallback (datetimes, sets, its own classes), for engine.spiff.state_json.
ENCODE_OTHER = SERIALIZER._encoder_cls().default


def serialize_specs(spec: Any, subprocess_specs: Mapping[str, Any]) -> str:
    registry = SERIALIZER.registry
    return json.dumps(
        {
            "format": STATE_FORMAT,
            "spec": registry.convert(spec),
            "subprocess_specs": {name: registry.convert(s) for name, s in subprocess_specs.items()},
        },
        separators=(",", ":"),
    )


def dump_state(workflow: BpmnWorkflow) -> str:
    """The workflow's state as stored on its instance: without the spec, in the current formats."""
    registry = SERIALIZER.registry
    registry._encoder_mode = True  # as BpmnWorkflowSerializer.serialize_json does
    try:
        dct = SERIALIZER.to_dict(workflow)
    finally:
        registry._encoder_mode = False
    state_migrations.compact_tasks(dct)
    dct[SERIALIZER.VERSION_KEY] = STATE_FORMAT
    dct[state_migrations.FORMAT_KEY] = state_migrations.CAREPATH_FORMAT
    return state_json.dumps(dct, ENCODE_OTHER)
