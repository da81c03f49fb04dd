"""The SpiffWorkflow boundary: building, restoring, stepping and serialising workflows.

Everything that touches SpiffWorkflow objects while an instance runs lives here, so the rest of the
engine deals in CarePath terms (instances, tasks, forms, incidents).

Design points (each measured in LIBRARY_NOTES):

* Instance state is stored without the spec; the spec is stored once per pathway version and
  restored objects are cached per version, so a warm step does not re-parse anything.
* The script engine is not serialised: :func:`restore` always attaches the safe one.
* Timers read the clock given to the engine (``engine.spiff.patches.clock_in_effect``).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.errors import (
    ExpressionError,
    NotFoundError,
    Problem,
    StartDataError,
    TaskNotReadyError,
    WorkflowError,
    translate_workflow_errors,
)
from engine.spiff import state_json
from engine.spiff.serializer import SERIALIZER

# The property under which a user task's form (a JSON Schema) is kept on its task spec; written by
# engine.pathways.diagrams when a diagram is prepared for the engine, so it is part of the version.
FORM_PROPERTY = "carepath.formSchema"
# What a form declares at its top when it must be shown with the patient's 24-hour line (the needs
# checklists): the documents fill it (engine.documents.notices); the row keeps what they fill it from.
NOTICE_KEY = "x-carepath-safety-notice"
# The data a patient's 24-hour line is chosen by, as the documents choose it: their health system's
# section of the service directory (engine.directory.ServiceDirectory.for_patient: the
# instance's own ``health_system``, else the one section knowing their named contact, GP practice or
# local hospital), and whether they are a child with a treatment centre's line (the pathway or
# ``diagnosis``; the team of their named contact, their ``local_hospital``:
# engine.documents.contacts.Contacts.childrens_hospital). Of ``named_contact`` only the staff reference.
CONTACT_KEYS = ("diagnosis", "gp_practice", "health_system", "local_hospital", "named_contact")

__all__ = [
    "CONTACT_KEYS",
    "FORM_PROPERTY",
    "NOTICE_KEY",
    "TaskInfo",
    "accumulated_data",
    "correct_data",
    "error_tasks",
    "make_ready",
    "new_workflow",
    "notice_contacts",
    "ready_task_summary",
    "ready_tasks",
    "task_lane",
    "restore",
    "task_by_id",
    "tasks_from_summary",
    "terminating_end_event",
]


# --- serialisation --------------------------------------------------------------------------------


class _CalledSpecs(Mapping[str, Any]):
    """A version's called-process specs, each restored the first time a workflow needs it.

    A diagnosis pathway calls several shared sub-pathways, but an instance is inside at most a few
    at a time: restoring them all up front was, for the first step of a process on a version, as
    much work as the step itself. SpiffWorkflow only looks specs up by name (``in``, ``get``,
    ``[]``), which a Mapping serves; restored specs are shared, like the top-level spec.
    """

    def __init__(self, stored: dict[str, dict[str, Any]]) -> None:
        self._stored = stored
        self._restored: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Any:
        spec = self._restored.get(name)
        if spec is None:
            stored = self._stored[name]  # KeyError for an unknown name, as a dict would
            with self._lock:  # the converters consume their input: restore each one once
                spec = self._restored.get(name)
                if spec is None:
                    spec = self._restored[name] = SERIALIZER.registry.restore(stored)
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._stored

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


@dataclass(frozen=True)
class RestoredSpecs:
    spec: Any
    subprocess_specs: Mapping[str, Any]


_spec_cache: dict[str, RestoredSpecs] = {}
_spec_cache_lock = threading.Lock()


def specs_for(version_key: str, spec_json: str | Callable[[], str]) -> RestoredSpecs:
    """Restored spec objects for a pathway version, cached per process (specs are immutable).

    ``spec_json`` may be a function, so the stored spec is only read from the database on a miss.
    """
    cached = _spec_cache.get(version_key)
    if cached is not None:
        return cached
    stored = state_json.loads(spec_json() if callable(spec_json) else spec_json)
    registry = SERIALIZER.registry
    restored = RestoredSpecs(registry.restore(stored["spec"]), _CalledSpecs(stored["subprocess_specs"]))
    with _spec_cache_lock:
        _spec_cache.setdefault(version_key, restored)
    return _spec_cache[version_key]


def clear_spec_cache() -> None:
    with _spec_cache_lock:
        _spec_cache.clear()


def new_workflow(specs: RestoredSpecs, script_engine: Any) -> BpmnWorkflow:
    return BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=script_engine)


def restore(specs: RestoredSpecs, stored_state: str, script_engine: Any) -> BpmnWorkflow:
    """Rebuild a workflow from its stored state, with the safe script engine attached.

    A state in an older format is migrated first (``engine.spiff.state_migrations``); ``dump_state``
    then writes the workflow in the current one.

    Raises:
        WorkflowError: the state is in a format this CarePath cannot read (a newer one wrote it), or
            does not fit the spec.
    """
    dct = state_json.loads(stored_state)
    dct["spec"] = specs.spec
    dct["subprocess_specs"] = specs.subprocess_specs
    SERIALIZER.migrate(dct)
    with translate_workflow_errors():
        workflow = SERIALIZER.from_dict(dct)
    workflow.script_engine = script_engine
    return workflow


# --- tasks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    """A task as CarePath shows it."""

    id: str
    element: str
    name: str
    process: str
    kind: str
    state: str
    lane: str | None
    form: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def form_json(task: Any) -> str | None:
    """The task's form as the JSON Schema text stored on its element (None: the task has no form)."""
    return _spec_form_json(task.task_spec)


def _spec_form_json(task_spec: Any) -> str | None:
    properties = (getattr(task_spec, "extensions", None) or {}).get("properties", {})
    form: str | None = properties.get(FORM_PROPERTY)
    return form


def ready_task_summary(workflow: BpmnWorkflow) -> str:
    """The ready tasks as stored on the instance row for work lists: what :func:`task_info` shows,
    without the form (read from the version's spec when listed) and with the task spec's name."""
    return json.dumps(
        [{**_task_fields(task), "spec": task.task_spec.name} for task in ready_tasks(workflow)], separators=(",", ":")
    )


def tasks_from_summary(specs: RestoredSpecs, summary: str) -> list[TaskInfo] | None:
    """The tasks of a stored summary with their forms, or None if a task's spec is not in ``specs``."""
    found = []
    for stored in json.loads(summary):
        spec_name = stored.pop("spec")
        process = specs.spec if specs.spec.name == stored["process"] else specs.subprocess_specs.get(stored["process"])
        task_spec = process.task_specs.get(spec_name) if process is not None else None
        if task_spec is None:
            return None
        form_text = _spec_form_json(task_spec)
        found.append(TaskInfo(**stored, form=json.loads(form_text) if form_text is not None else None))
    return found


def task_info(task: Any) -> TaskInfo:
    """A task with its form. The form's ``readOnly`` fields show what they are about: each one present
    in the task's data gets that value as its ``default`` (the reported warning sign on the triage
    task, for example), so the person completing the task sees it."""
    form_text = form_json(task)
    form = json.loads(form_text) if form_text is not None else None
    if isinstance(form, dict) and isinstance(form.get("properties"), dict):
        for name, field_schema in form["properties"].items():
            if isinstance(field_schema, dict) and field_schema.get("readOnly") is True and name in task.data:
                field_schema["default"] = copy.deepcopy(task.data[name])
    return TaskInfo(**_task_fields(task), form=form)


def _task_fields(task: Any) -> dict[str, Any]:
    spec = task.task_spec
    return {
        "id": str(task.id),
        "element": spec.bpmn_id or spec.name,
        "name": spec.bpmn_name or spec.bpmn_id or spec.name,
        "process": task.workflow.spec.name,
        "kind": type(spec).__name__,
        "state": TaskState.get_name(task.state),
        "lane": task_lane(task),
    }


def task_lane(task: Any) -> str | None:
    """The lane a task is drawn in; for a task of a shared sub-pathway drawn without lanes, the lane of
    the call activity that runs it (the nearest caller that has one): who does the work is the calling
    pathway's to say, and the work list and the diagram show it."""
    while True:
        lane: str | None = getattr(task.task_spec, "lane", None)
        parent_task_id = getattr(task.workflow, "parent_task_id", None)
        if lane is not None or parent_task_id is None:
            return lane
        caller = task.workflow.top_workflow.get_task_from_id(parent_task_id)
        if caller is None:
            return None
        task = caller


def ready_tasks(workflow: BpmnWorkflow) -> list[Any]:
    """READY tasks a person must complete (user and manual tasks), in a stable order: the order
    SpiffWorkflow's depth-first walk of the tree meets them (``get_tasks(state=READY, manual=True)``).

    Found from the task dictionaries, and sorted by :func:`_tree_position` when there are several:
    the walk costs ten times a pass over the dictionaries, and a breast pathway often has several
    tasks ready at once on its parallel branches.
    """
    found = [
        task
        for part in (workflow, *workflow.subprocesses.values())
        for task in part.tasks.values()
        if task.state == TaskState.READY and task.task_spec.manual
    ]
    if len(found) < 2:
        return found
    return sorted(found, key=_tree_position)


def _tree_position(task: Any) -> tuple[int, ...]:
    """Where SpiffWorkflow's depth-first walk meets ``task``, as a key to sort by: from the root down,
    each ancestor's index among its parent's children. The walk goes into a subprocess's tree right
    after the task that calls it, before that task's children: the subprocess's root is at -1 below
    its caller."""
    position: list[int] = []
    while True:
        parent = task.parent
        if parent is not None:
            position.append(parent._children.index(task.id))
            task = parent
            continue
        caller_id = task.workflow.parent_task_id
        caller = task.workflow.top_workflow.get_task_from_id(caller_id) if caller_id is not None else None
        if caller is None:
            position.reverse()
            return tuple(position)
        position.append(-1)
        task = caller


def error_tasks(workflow: BpmnWorkflow) -> list[Any]:
    return list(workflow.get_tasks(state=TaskState.ERROR))


def make_ready(task: Any) -> None:
    """Put a failed task back to READY so the next engine steps run it again (retrying an incident).

    SpiffWorkflow 3.2 has no public call for it; ``_set_state`` is what its own reset uses.
    """
    task._set_state(TaskState.READY)


def task_by_id(workflow: BpmnWorkflow, task_id: str) -> Any:
    """The task with this id, which must be a READY manual task.

    Raises:
        NotFoundError: no such task in the instance.
        TaskNotReadyError: the task exists but is completed, cancelled or not yet reached.
    """
    try:
        uuid = UUID(task_id)
    except ValueError as exc:
        raise NotFoundError(f"no task {task_id!r} in this instance") from exc
    task = workflow.get_task_from_id(uuid) if _has_task(workflow, uuid) else None
    if task is None:
        raise NotFoundError(f"no task {task_id!r} in this instance")
    if not task.task_spec.manual:
        raise TaskNotReadyError(f"task {task_id} is not a task people complete")
    if task.state != TaskState.READY:
        state = TaskState.get_name(task.state)
        raise TaskNotReadyError(f"task {task_id} is {state.lower()}, not ready")
    return task


def _has_task(workflow: BpmnWorkflow, uuid: UUID) -> bool:
    if uuid in workflow.tasks:
        return True
    return any(uuid in sp.tasks for sp in workflow.subprocesses.values())


def accumulated_data(workflow: BpmnWorkflow, keys: Collection[str] | None = None) -> dict[str, Any]:
    """The data an instance has accumulated so far, running or finished (a copy); only ``keys`` of
    it when given (the others are neither read nor copied).

    Finished history is compacted away (engine.spiff.compaction), so this reads the newest data of each
    branch: every task holding data whose children hold none (the frontier, or the last tasks of a
    finished workflow), in subprocesses too. Parallel branches all start with the data at their
    split; a branch's value counts only where it differs from that (a named contact changed in a
    listener branch beats the unchanged copy the care branch carries). When branches changed the
    same key, the most recently changed branch wins.
    """

    def wanted(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        return iter(data.items()) if keys is None else ((k, data[k]) for k in keys if k in data)

    holders = [
        task
        for wf in (workflow, *workflow.subprocesses.values())
        for task in wf.tasks.values()
        if task.data and not any(child.data for child in task.children)
    ]
    top = [task for task in holders if task.workflow is workflow]
    baseline = _common_ancestor(top).data if len(top) > 1 else {}
    merged = {k: copy.deepcopy(v) for k, v in wanted(workflow.data)}
    for task in sorted(holders, key=lambda t: t.last_state_change):
        merged.update({k: copy.deepcopy(v) for k, v in wanted(task.data) if k not in baseline or baseline[k] != v})
    for key, value in wanted(baseline):
        merged.setdefault(key, copy.deepcopy(value))
    return merged


def notice_contacts(workflow: BpmnWorkflow) -> str | None:
    """What the row keeps for its ready tasks' safety notices (JSON of :data:`CONTACT_KEYS` as the
    instance's data holds them): a work list fills a listed checklist's notice from it without
    restoring the instance. None when no ready task's form declares a notice (nothing to fill)."""
    if not any(_declares_notice(_spec_form_json(task.task_spec)) for task in ready_tasks(workflow)):
        return None
    data = accumulated_data(workflow, CONTACT_KEYS)
    contact = data.get("named_contact")
    if "named_contact" in data:
        data["named_contact"] = {"staff_ref": contact.get("staff_ref")} if isinstance(contact, dict) else None
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


@functools.lru_cache(maxsize=256)
def _declares_notice(form_text: str | None) -> bool:
    if form_text is None or NOTICE_KEY not in form_text:
        return False
    try:
        form = json.loads(form_text)
    except ValueError:
        return False
    return isinstance(form, dict) and NOTICE_KEY in form


def correct_data(workflow: BpmnWorkflow, update: dict[str, Any], *, where_held: bool = False) -> None:
    """Set ``update`` in the instance's data where the next steps read it: the workflow's own data
    and every task not yet finished (ready, waiting, started or failed) and its parent, in subprocesses
    too, so that retrying a failed task runs it with the corrected values and a waiting timer fires
    with them. ``where_held``: only in the data that holds each name already (a value a script worked
    out, :func:`rederive`, is replaced where it is, never added where it never was)."""
    unfinished = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR

    def put(data: dict[str, Any]) -> None:
        data.update(copy.deepcopy({k: v for k, v in update.items() if k in data} if where_held else update))

    put(workflow.data)
    for part in (workflow, *workflow.subprocesses.values()):
        for task in part.tasks.values():
            if task.state & unfinished:
                put(task.data)
                # A waiting task takes its parent's data again at each refresh (TaskSpec._update_hook,
                # engine.spiff.compaction): without its parent, a timer would fire with the old value.
                if task.parent is not None:
                    put(task.parent.data)


def _common_ancestor(tasks: list[Any]) -> Any:
    paths = []
    for task in tasks:
        path = []
        while task is not None:
            path.append(task)
            task = task.parent
        paths.append(path[::-1])
    common = paths[0][0]
    for level in zip(*paths, strict=False):
        if any(task is not level[0] for task in level):
            break
        common = level[0]
    return common


# --- timers -----------------------------------------------------------------------------------------


def next_due_at(workflow: BpmnWorkflow) -> datetime | None:
    """The earliest due time of any waiting timer (also behind event-based gateways and cycles).

    SpiffWorkflow keeps a reached timer's due time in the task's ``internal_data['event_value']``
    (an ISO string, or a dict with ``next`` for cycles); an event-based gateway keeps those of its
    branches on the gateway task.
    """
    due: list[datetime] = []
    waiting = TaskState.WAITING | TaskState.STARTED
    # Every task of the workflow and its subprocesses, in no particular order (the earliest is
    # wanted): the task dictionaries, not SpiffWorkflow's tree iterator, which costs ten times more.
    for part in (workflow, *workflow.subprocesses.values()):
        for task in part.tasks.values():
            if task.state & waiting:
                _collect_due(task.internal_data, due)
    return min(due) if due else None


def rederive(
    workflow: BpmnWorkflow, correction: Mapping[str, Any], inputs: Collection[str], helpers: Collection[str]
) -> dict[str, Any]:
    """The values script tasks worked out from corrected start data, worked out again from the correction
    (call before :func:`correct_data`): ``first_review_due = add_months(diagnosis_date, 3)`` moves with a
    corrected ``diagnosis_date``, so the timer that waits for it moves too (:func:`retime_timers` with
    these names). Returns {name: new value} for each value that changes; set them as corrected data.

    Only a script of plain assignments (``name = expression``) that reads a corrected field and nothing
    but ``inputs`` (the start data's fields), names it assigned itself and ``helpers`` (functions that
    read no clock: ``today()`` would move with the day of the correction) is worked out again, and only
    when every value it assigns is in the instance's data as the script works it out from the data before
    the correction (so the value is the script's, not a form's or another branch's of the same name).

    Raises: StartDataError naming each corrected field the script reads and its element, when the script
    fails on the corrected data (nothing is kept: the caller's unit of work is not committed).
    """
    before = accumulated_data(workflow)
    after = {**before, **correction}
    allowed = set(inputs) | set(correction) | set(helpers)
    environment = workflow.script_engine.environment
    derived: dict[str, Any] = {}
    specs = {
        id(spec): spec for part in (workflow, *workflow.subprocesses.values()) for spec in part.spec.task_specs.values()
    }
    for spec in specs.values():
        script = getattr(spec, "script", None)
        names = _assignments(script) if isinstance(script, str) else None
        if names is None:
            continue
        reads, writes = names
        corrected = reads & set(correction)
        if not corrected or not reads <= allowed | writes or not all(name in before for name in writes):
            continue
        then = {name: before[name] for name in reads if name in before and name not in writes}
        now = {name: after[name] for name in reads if name in after and name not in writes}
        try:
            with translate_workflow_errors():
                environment.execute(script, then)
        except (ExpressionError, WorkflowError):
            continue  # the script cannot be the source of the values it would fail to work out
        if any(then.get(name) != before[name] for name in writes):
            continue  # the values in the data are not this script's
        try:
            with translate_workflow_errors():
                environment.execute(script, now)
        except (ExpressionError, WorkflowError) as exc:
            element = str(spec.bpmn_id)
            raise StartDataError(
                "the corrected data cannot give the values a script works out from it",
                [
                    Problem(
                        f"script '{element}' cannot work out its values from it", field=f"/data/{n}", element=element
                    )
                    for n in sorted(corrected)
                ],
            ) from exc
        derived.update({name: now[name] for name in writes if now.get(name) != before[name]})
    return derived


@functools.lru_cache(maxsize=256)
def _assignments(script: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(the names a script reads, the names it assigns) when it is plain assignments of names, else None."""
    import ast

    try:
        tree = ast.parse(script.strip(), mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if not tree.body or not all(
        isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) for s in tree.body
    ):
        return None
    writes = frozenset(
        s.targets[0].id for s in tree.body if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
    )
    reads = frozenset(
        n.id for s in tree.body if isinstance(s, ast.Assign) for n in ast.walk(s.value) if isinstance(n, ast.Name)
    )
    return reads, writes


def retime_timers(workflow: BpmnWorkflow, fields: Collection[str]) -> list[str]:
    """Work out again the date of each waiting date timer (``timeDate``) whose expression reads one of
    ``fields``, after a correction of them (:func:`correct_data`): the quality of life survey at
    ``add_months(diagnosis_date, 18)`` then falls due 18 months after the corrected date, not the mistyped
    one. Returns the element ids of the timers whose date changed, sorted. A timer whose expression reads
    none of the fields keeps its date (its expression may read the clock: working it out again would move
    it); so do durations (they count from when the timer was reached) and the timers of an event-based
    gateway, which keeps them on the gateway.

    Raises: StartDataError naming each field read and the timer when its expression fails on the
    corrected data (nothing is kept: the caller's unit of work is not committed).
    """
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimeDateEventDefinition

    moved: set[str] = set()
    waiting = TaskState.WAITING | TaskState.STARTED
    for part in (workflow, *workflow.subprocesses.values()):
        for task in part.tasks.values():
            definition = getattr(task.task_spec, "event_definition", None)
            if not task.state & waiting or not isinstance(definition, TimeDateEventDefinition):
                continue
            before = task._get_internal_data("event_value")
            read = _names_read(definition.expression) & set(fields)
            if before is None or not read:
                continue
            try:
                with translate_workflow_errors():
                    after = workflow.script_engine.evaluate(task, definition.expression)
            except (ExpressionError, WorkflowError) as exc:  # the data's fault, not the diagram's: 422, no value
                element = str(task.task_spec.bpmn_id)
                raise StartDataError(
                    "the corrected data cannot give the date of a waiting timer",
                    [
                        Problem(
                            f"the date of timer '{element}' cannot be worked out from it",
                            field=f"/data/{n}",
                            element=element,
                        )
                        for n in sorted(read)
                    ],
                ) from exc
            if after != before:
                task._set_internal_data(event_value=after)
                moved.add(str(task.task_spec.bpmn_id))
    return sorted(moved)


@functools.lru_cache(maxsize=256)
def _names_read(expression: str) -> frozenset[str]:
    """The data names an expression reads (``add_months(diagnosis_date, 18)`` -> diagnosis_date and the
    helper's name; the names of helpers are never data fields). Deployed expressions have been checked."""
    import ast

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return frozenset()
    return frozenset(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))


def _collect_due(value: Any, due: list[datetime], key: str | None = None) -> None:
    if isinstance(value, dict):
        if key == "event_value" and isinstance(value.get("next"), str):
            _collect_due(value["next"], due, "event_value")
            return
        for inner_key, inner in value.items():
            _collect_due(inner, due, inner_key)
    elif isinstance(value, str) and key in ("event_value", "next"):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return
        due.append(when if when.tzinfo else when.replace(tzinfo=UTC))


def waiting_messages(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The messages the workflow (or any subprocess) waits for now: name -> event definition.

    ``waiting_events()`` reports an event-based gateway as one nameless "multiple" event, so the
    gateway's own event definitions are read instead.
    """
    from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
    from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition

    found: dict[str, Any] = {}
    # One event manager serves the workflow and all its subprocesses.
    for task in workflow.event_manager.tasks.values():
        if task.state not in (TaskState.WAITING, TaskState.STARTED, TaskState.READY):
            continue
        definition = getattr(task.task_spec, "event_definition", None)
        definitions = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        found.update((d.name, d) for d in definitions if isinstance(d, MessageEventDefinition))
    return found


def terminating_end_event(workflow: BpmnWorkflow) -> str | None:
    """The element id of the terminate end event that ended the top workflow (``None`` if none did).

    A pathway can end in more than one way (its care completed, or a ``patient_died`` message):
    the "completed" event names the end that was reached, so the reason is in the trail. Only the
    top workflow's own tasks are read, before compaction drops the finished history.
    """
    from SpiffWorkflow.bpmn.specs.event_definitions.simple import TerminateEventDefinition

    for task in workflow.tasks.values():
        definition = getattr(task.task_spec, "event_definition", None)
        if task.state == TaskState.COMPLETED and isinstance(definition, TerminateEventDefinition):
            return str(task.task_spec.bpmn_id)
    return None
