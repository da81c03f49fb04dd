"""How instance states and pathway specs are stored: SpiffWorkflow's serializer, adapted.

* The spec is kept out of an instance's state: it is stored once per pathway version
  (:func:`serialize_specs`) and restored objects are shared (``engine.spiff.workflows.specs_for``).
* A state is converted without converting its spec, and restored with each task id parsed once,
  from the compact form CarePath stores (``state_migrations``, version 3) without expanding it, and
  with stored values restored in place; the ids' texts are kept for the save that follows.
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
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS as SPIFF_MIGRATIONS
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
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
    """SpiffWorkflow 3.2's task converter, restoring a task from its compact stored form directly and
    parsing each task id once per restore (and writing the text of each once per save).

    A task's id is written three times in a state: as its own id, in its parent's children and as
    its children's parent. SpiffWorkflow parsed each into a UUID object of its own (3 us each), and
    every lookup of a parent or a child then compared two equal UUIDs in Python. Parsed once, the
    tasks dictionary finds the very object it holds. A task restores from what a version-3 state
    keeps of it (``engine.spiff.state_migrations``: its id is its key, its parent the task listing it
    among its children, and the rest has defaults) without first being expanded into SpiffWorkflow's
    full form. Its data is copied from its parent's as DeepMerge did, without its per-key bookkeeping,
    and stored values are restored in place (:func:`_restore_parsed`). The body is SpiffWorkflow's own
    otherwise (``SpiffWorkflow/bpmn/serializer/default/workflow.py``, pinned below 3.3); tests check
    that a restored state saves back to the same text.
    """

    def __init__(self, target_class: type, registry: Any, typename: str | None = None) -> None:
        super().__init__(target_class, registry, typename)
        registry.carepath_task_converter = self  # for _restore_tasks, which calls restore_task itself

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
        return self.restore_task(dct["id"], dct, workflow, {})

    def restore_task(self, key: str, dct: dict[str, Any], workflow: Any, parents: dict[str, str]) -> Task:
        """The task stored under ``key`` as ``dct`` (full or compact); ``parents`` maps a task's key to
        its parent's key for a task that leaves its parent out."""
        ids = _parsed_ids.get()
        if ids is None:
            ids = {}
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=_parse(ids, dct.get("id", key)))
        parent_key = dct["parent"] if "parent" in dct else parents.get(key)
        task._parent = _parse(ids, parent_key) if parent_key is not None else None
        task._children = [_parse(ids, child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct.get("triggered", False)
        task.internal_data = self._restore(dct.get("internal_data"))
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)
        # What a task leaves out of its delta: none without a parent, otherwise no updates and no deletions.
        delta = dct.get("delta", _NO_CHANGES if parent_key is not None else None)
        parent = workflow.tasks.get(task._parent)  # Task.parent
        if delta and parent is not None:
            # What DeepMerge.merge({}, parent.data) does (every key is new): a copy one level deep.
            data = {key: copy(value) if isinstance(value, _MUTABLE) else value for key, value in parent.data.items()}
            updates = delta.get("updates", {})
            if not _empty(updates):
                data.update(_restore_parsed(self.registry, updates))
            for key in delta.get("deletions", {}):
                if key in data:
                    del data[key]
        else:
            data = self._restore(dct.get("data"))
        task.data = data
        return task

    def _restore(self, value: Any) -> Any:
        """What the registry restores of a stored value; a new object for the empty one most tasks hold."""
        return {} if value is None or _empty(value) else _restore_parsed(self.registry, value)


_MUTABLE = (dict, list, set)
_NO_CHANGES: dict[str, Any] = {"updates": {}, "deletions": []}  # read only


def _empty(value: Any) -> bool:
    return type(value) is dict and not value


def _parse(ids: dict[str, UUID], text: str) -> UUID:
    found = ids.get(text)
    if found is None:
        found = ids[text] = UUID(text)
    return found


def _restore_parsed(registry: Any, value: Any) -> Any:
    """``registry.restore(value)`` for a value just parsed from a state's JSON, which nothing else holds:
    the objects SpiffWorkflow wrote with a ``typename`` are restored by the registry, in place of their
    dicts, and every other dict and list is kept as parsed. SpiffWorkflow's restore rebuilt every dict
    and list of a task's data on the way down (a fifth of a restore); the values are the same."""
    kind = type(value)
    if kind is dict:
        if "typename" in value:
            return registry.restore(value)
        for key, item in value.items():
            if type(item) in _CONTAINERS:
                restored = _restore_parsed(registry, item)
                if restored is not item:
                    value[key] = restored  # the same key: the dict does not change size while iterated
    elif kind is list:
        for index, item in enumerate(value):
            if type(item) in _CONTAINERS:
                restored = _restore_parsed(registry, item)
                if restored is not item:
                    value[index] = restored
    return value


_CONTAINERS = (dict, list)


def _restore_tasks(registry: Any, tasks: dict[str, dict[str, Any]], workflow: Any) -> dict[UUID, Task]:
    """The ``tasks`` of a stored workflow (its own or a subprocess's), restored in their order, full or compact.

    Restoring a task registers it on ``workflow`` (SpiffWorkflow's Task does), so a parent, stored
    before its children, is found by them.

    Raises:
        WorkflowError: a task is stored with a typename other than SpiffWorkflow's Task (no CarePath
            writes one; SpiffWorkflow's registry would have failed on it with a TypeError).
    """
    converter: _TaskConverter = registry.carepath_task_converter
    ids = _parsed_ids.get()
    if ids is None:
        ids = {}
    parents: dict[str, str] | None = None
    restored = {}
    for key, task in tasks.items():
        if parents is None and "parent" not in task:
            parents = {child: parent for parent, stored in tasks.items() for child in stored["children"]}
        if task.get("typename", "Task") != "Task":
            message = "the stored instance state holds a task of a type this CarePath does not know"
            raise WorkflowError(message, [Problem(message, code="state-format")])
        restored[_parse(ids, key)] = converter.restore_task(key, task, workflow, parents or {})
    return restored


def _set_default_attributes(converter: WorkflowConverter, workflow: Any, dct: dict[str, Any]) -> None:
    """SpiffWorkflow's ``WorkflowConverter.set_default_attributes``, with the workflow's data restored in
    place (:func:`_restore_parsed`) and its last task's id parsed once."""
    workflow.success = dct["success"]
    workflow.completed = dct.get("completed", False)
    workflow.correlations = dct.pop("correlations", {})
    if isinstance(dct["last_task"], str):
        workflow.last_task = workflow.tasks.get(_task_id(dct["last_task"]))
    workflow.data = _restore_parsed(converter.registry, dct.pop("data", {}))


class _SpecCachingConverter(BpmnWorkflowConverter):
    """Keeps the spec out of an instance's state: it is stored once per pathway version.

    Restores a workflow around already-restored spec objects when they are handed in, and
    converts a workflow without converting its spec (SpiffWorkflow's own converter would, and
    the result was thrown away: a third of the cost of saving a state).
    """

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        # The texts of the ids the restore parsed, so that only a new task's id is written afresh; used
        # by the save that follows the restore and then let go (a cached workflow does not keep them).
        parsed: dict[str, UUID] = workflow.__dict__.pop(_PARSED_IDS, None) or {}
        token = _id_texts.set({task_id: text for text, task_id in parsed.items()})
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
        ids: dict[str, UUID] = {}
        token = _parsed_ids.set(ids)
        try:
            workflow.tasks = _restore_tasks(self.registry, dct["tasks"], workflow)
            workflow.task_tree = workflow.tasks.get(_task_id(dct["root"]))
            _set_default_attributes(self, workflow, dct)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
        finally:
            _parsed_ids.reset(token)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        setattr(workflow, _PARSED_IDS, ids)
        return workflow


# The attribute of a restored workflow holding the ids its restore parsed (text -> UUID).
_PARSED_IDS = "_carepath_parsed_ids"


class _SubWorkflowConverter(BpmnSubWorkflowConverter):
    """SpiffWorkflow's subprocess converter, restoring the subprocess's tasks as the workflow's are
    (:func:`_restore_tasks`: compact, ids parsed once). Its ``from_dict`` is otherwise SpiffWorkflow's."""

    def from_dict(self, dct: dict[str, Any], task: Task, top_workflow: BpmnWorkflow) -> Any:
        spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
        subprocess = self.target_class(spec, task.id, top_workflow, deserializing=True)
        subprocess.tasks = _restore_tasks(self.registry, dct["tasks"], subprocess)
        subprocess.task_tree = subprocess.tasks.get(_task_id(dct["root"]))
        _set_default_attributes(self, subprocess, dct)
        return subprocess


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
        state_migrations.migrate(dct)  # a version-3 state stays compact: the converters above read it


_CONFIG = dict(SPIFF_CONFIG)
_CONFIG[BpmnWorkflow] = _SpecCachingConverter
_CONFIG[Task] = _TaskConverter
_CONFIG[BpmnSubWorkflow] = _SubWorkflowConverter
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
