"""The fast path of a migration: instances whose stored state means the same under both versions.

Moving an instance the full way (:mod:`engine.instances.migration`) restores its state into
SpiffWorkflow's objects, runs ``migrate_workflow`` and serialises it again: about 35 ms of one core.
Most instances of a caseload never touch what a new version changed (a renamed label, a task far
ahead of them), and for those all that work writes back the state it read.

What a stored state depends on in a spec. The state holds no spec and no version
(:mod:`engine.spiff.serializer`): it names task specs, and nothing else of the diagram. It names
the spec of every task of the top workflow's tree and of each subprocess's tree (``task_spec``),
the called process of each subprocess (``spec``), and, on each tree's root, the elements that
compaction removed after they completed (:data:`engine.spiff.compaction.COMPLETED_NOTE`). Restoring
finds each named spec by its name in the version's process (or called process). The full path
(SpiffWorkflow's ``migrate_workflow`` and ours around it) does three things with them:

* it points every task at the new spec aligned with its old one (``SpecDiff``, by element id);
* it refuses an instance whose completed work changed or was removed (``work_changes``);
* it resets the ready and waiting tasks, which drops what was predicted after them and predicts
  it again from the new specs, and it puts back the timers' due dates and the data each task held.

So an instance takes the fast path when, in each process its state names (the processes themselves
equal apart from their task specs: data objects, IO specification, correlations), every named spec
is aligned with the spec of the same name in the new version, and:

* every spec of a task reached and not finished (ready, waiting, started: what the reset runs
  again) serialises identically (inputs, outputs, conditions, timers, forms, scripts, label: the
  whole spec), so a timer keeps its due date and the reset's update does what it did;
* every spec of a task only predicted (future, likely, maybe) is identical but for what it says to
  people (label, documentation, extensions): it runs with the new spec on either path, and the
  tree the reset predicts again from these specs is the one predicted before;
* every finished one (completed or cancelled in the tree, or in the note) has no change to its
  work, which is all the full path asks of it.

The restored workflow is then the one the full path makes (``_reset`` below does to the JSON what
the full path does to the ready and waiting tasks: keeps their data, drops a note it does not
write again), and what lies ahead (reached later, by following the
new specs) is the same in both. The migration is then the row's version and the ``migrated``
event, whose ``tasks_added`` and ``tasks_removed`` are what is reachable from the patient's
positions in each version (``migration._ahead``'s rule, computed here from the names).

A state in an older format, or one that names anything else, takes the full path.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.util.diff import SpecDiff
from SpiffWorkflow.util.task import TaskState

from engine.spiff import serializer, state_json, state_migrations, workflows
from engine.spiff.compaction import COMPLETED_NOTE

__all__ = ["FastPath", "FastPlan", "elements_ahead", "prescript_constants", "work_changes"]

_DEFINITE = int(TaskState.DEFINITE_MASK)
_FINISHED = int(TaskState.FINISHED_MASK)
_RESET = int(TaskState.READY | TaskState.WAITING)  # what SpiffWorkflow's migrate_workflow resets
# The internal data a waiting task may have for the fast path: a timer's due date (put back by the
# full path), a note that its event has not fired (dropped by the reset), and a multiple event's
# empty list of the events it has seen (written again by the reset's update).
_RESET_INTERNAL = frozenset({"event_value", "event_fired", "seen_events"})
# What a spec says to the people doing it, and not how the flow runs: its label, its documentation,
# its extensions (forms, instructions, scripts run when it runs). A task only predicted (not yet
# reached) runs with the new spec on either path; the flow it predicts is the same if the rest is.
_SAYS = frozenset({"bpmn_name", "documentation", "description", "extensions", "lane"})
_PREDICTED = int(TaskState.PREDICTED_MASK | TaskState.FUTURE)
# Attributes that place an element in the flow rather than say what it does.
_PLACEMENT = frozenset(
    {"inputs", "outputs", "lookahead", "bpmn_name", "documentation", "lane", "description", "default_task_spec"}
)


@dataclass(frozen=True)
class FastPlan:
    """What the fast path does to one instance: the ``migrated`` event's ``tasks_added`` and
    ``tasks_removed``, and its new state when the reset changes it (None: the state is kept as it is)."""

    tasks_added: list[str]
    tasks_removed: list[str]
    state: str | None


def work_changes(registry: Any, old: Any, new: Any) -> list[str]:
    """The attributes of a task spec that say what it does (not where it is in the flow) that differ
    between ``old`` and ``new``: a migration refuses an instance that completed it if there are any."""
    before, after = registry.convert(old), registry.convert(new)
    changed = [
        key for key in sorted(set(before) | set(after)) if key not in _PLACEMENT and before.get(key) != after.get(key)
    ]
    if "cond_task_specs" in changed and _conditions(before) == _conditions(after):
        changed.remove("cond_task_specs")  # only the targets moved
    if "name" in changed and before.get("bpmn_id") == after.get("bpmn_id"):
        changed.remove("name")
    return changed


def _conditions(spec: dict[str, Any]) -> list[str]:
    return sorted(str(c.get("condition")) for c in spec.get("cond_task_specs") or [])


@dataclass(frozen=True)
class _Same:
    """Of one process's task specs, by name: those identical in both versions, those whose work is,
    and the catching events with a timer (whose due date a migration keeps)."""

    identical: frozenset[str]
    same_flow: frozenset[str]
    same_work: frozenset[str]
    timers: frozenset[str]
    # Task specs whose update only sets constants (a pre-script of ``name = literal`` lines, or none,
    # and no data inputs): what it sets, by spec name.
    prescripts: Mapping[str, dict[str, Any]]


class FastPath:
    """The fast path between two versions: which specs are unchanged, computed once per process and
    kept for the whole migration; and the plan of one stored state, or None when it must take the
    full path. ``new`` is the target version's restored specs; ``spec_diff`` gives SpiffWorkflow's
    ``SpecDiff`` of an old and a new process spec."""

    def __init__(self, new: workflows.RestoredSpecs, spec_diff: Callable[[Any, Any], SpecDiff]) -> None:
        self._new = new
        self._spec_diff = spec_diff  # the migration's, so that both paths share one diff per pair of processes
        self._same: dict[tuple[int, str], _Same | None] = {}
        self._ahead: dict[tuple[int, frozenset[Any]], tuple[list[str], list[str]]] = {}
        self._held: dict[int, workflows.RestoredSpecs] = {}  # keeps the ids of the keys above theirs

    def plan(self, old: workflows.RestoredSpecs, state: str) -> FastPlan | None:
        """The plan for an instance on version ``old`` whose stored state is ``state`` (JSON text),
        when the state names only unchanged specs and the reset changes nothing but the data of its
        waiting tasks; None otherwise (the full path)."""
        self._held.setdefault(id(old), old)
        try:
            dct = state_json.loads(state)
        except ValueError:
            return None  # the full path reports what is wrong with it
        if (
            not isinstance(dct, dict)
            or dct.get(serializer.SERIALIZER.VERSION_KEY) != serializer.STATE_FORMAT
            or dct.get(state_migrations.FORMAT_KEY) != state_migrations.CAREPATH_FORMAT
        ):
            return None  # the full path writes it in the current format
        parts = [(True, old.spec.name, dct)]
        parts += [(False, sub.get("spec"), sub) for sub in (dct.get("subprocesses") or {}).values()]
        positions = set()
        reset = False
        for is_top, name, part in parts:
            same = self._same_specs(old, name, is_top)
            if same is None:
                return None
            live, predicted, finished = _names(part)
            if not live <= same.identical or not predicted <= same.same_flow or not finished <= same.same_work:
                return None
            changed = _reset(part, same.timers, same.prescripts)
            if changed is None:
                return None
            reset = reset or changed
            if not part.get("completed"):
                positions.add(
                    (
                        is_top,
                        name,
                        frozenset(task["task_spec"] for task in part["tasks"].values() if task["state"] & _DEFINITE),
                    )
                )
        key = (id(old), frozenset(positions))
        found = self._ahead.get(key)
        if found is None:
            before = _reachable(old, positions)
            after = _reachable(self._new, positions)
            found = self._ahead[key] = (sorted(after - before), sorted(before - after))
        return FastPlan(
            list(found[0]), list(found[1]), state_json.dumps(dct, serializer.ENCODE_OTHER) if reset else None
        )

    def _same_specs(self, old: workflows.RestoredSpecs, name: Any, is_top: bool) -> _Same | None:
        """Which task specs of process ``name`` are the same in both versions (None: the process is
        missing from one of them; none: the process itself changed)."""
        key = (id(old), f"{is_top}:{name}")
        if key in self._same:
            return self._same[key]
        before, after = _process(old, name, is_top), _process(self._new, name, is_top)
        found: _Same | None = None
        if before is not None and after is not None:
            found = _compare(before, after, self._spec_diff(before, after))
        self._same[key] = found
        return found


def _process(specs: workflows.RestoredSpecs, name: Any, is_top: bool = False) -> Any:
    if is_top:
        return specs.spec
    return specs.subprocess_specs[name] if isinstance(name, str) and name in specs.subprocess_specs else None


def _reset(part: dict[str, Any], timers: frozenset[str], prescripts: Mapping[str, dict[str, Any]]) -> bool | None:
    """Do to a tree of a stored state (in place) what the full path does to its ready and waiting
    tasks; whether that changed anything, or None when the fast path cannot.

    The full path's reset sets each such task's data to its parent's and runs its spec's update,
    then gives it back the data it held (``migration.kept_data``), but for a constant the new
    spec's pre-script sets where the task holds the old pre-script's value or none: with the spec
    identical in both versions, and a pre-script that sets only constants (or none), that is the
    data it held, so its data is kept as it is. Any other pre-script (the reset runs it again, and
    it might fail), data inputs, or data stored whole rather than as its delta from its parent, is
    left to the full path.

    Internal data: the reset empties it, but for a waiting timer's due date, which the full path
    puts back, and a waiting event's note that it has not fired (``event_fired`` false), which it
    drops here too. A ready task with internal data, or a due date on anything but a timer, is
    left to the full path."""
    changed = False
    for task in (part.get("tasks") or {}).values():
        state = task.get("state", 0)
        if not state & _RESET:
            continue
        internal = task.get("internal_data") or {}
        if task.get("data") not in (None, {}) or task.get("task_spec") not in prescripts:
            return None  # its data stored whole, or a pre-script the reset runs that does more than set constants
        if state & TaskState.READY:
            if internal:
                return None
            continue
        if "event_value" in internal and task.get("task_spec") not in timers:
            return None  # a due date the full path drops: its next due time would change
        if set(internal) - _RESET_INTERNAL or internal.get("event_fired") or internal.get("seen_events", []) != []:
            return None  # an event that fired, or a note the reset's update would not write again
        if "event_fired" in internal:  # not fired: the reset drops the note, and its update does not write it
            task["internal_data"] = {k: v for k, v in internal.items() if k != "event_fired"}
            if not task["internal_data"]:
                del task["internal_data"]  # version 3: none means {}
            changed = True
    return changed


def _compare(before: Any, after: Any, diff: SpecDiff) -> _Same:
    registry = serializer.SERIALIZER.registry
    was, now = registry.convert(before), registry.convert(after)
    was_specs, now_specs = was.pop("task_specs"), now.pop("task_specs")
    if was != now:
        return _Same(frozenset(), frozenset(), frozenset(), frozenset(), {})
    alignment = diff.alignment
    identical, same_flow, same_work = set(), set(), set()
    for name, spec in before.task_specs.items():
        aligned = alignment.get(spec)
        if aligned is None or aligned.name != name:
            continue  # the full path would point its tasks at another spec, or refuse it
        old, new = was_specs[name], now_specs.get(name) or {}
        if new == old:
            identical.add(name)
        if {k: v for k, v in new.items() if k not in _SAYS} == {k: v for k, v in old.items() if k not in _SAYS}:
            same_flow.add(name)
        if spec.bpmn_id is None or not work_changes(registry, spec, aligned):
            same_work.add(name)
    timers = frozenset(name for name, spec in before.task_specs.items() if _is_timer(spec))
    prescripts = {
        name: found for name, spec in before.task_specs.items() if (found := prescript_constants(spec)) is not None
    }
    return _Same(frozenset(identical), frozenset(same_flow), frozenset(same_work), timers, prescripts)


def prescript_constants(spec: Any) -> dict[str, Any] | None:
    """What a task spec's update sets in its task's data, if that is only constants: its pre-script's
    ``name = literal`` lines (none: nothing); None when it reads data inputs or runs anything else."""
    io = getattr(spec, "io_specification", None)
    if getattr(spec, "data_input_associations", None) or (io is not None and io.data_inputs):
        return None
    script = getattr(spec, "prescript", None)
    if not script:
        return {}
    try:
        statements = ast.parse(script).body
        found = {}
        for statement in statements:
            if (
                not isinstance(statement, ast.Assign)
                or len(statement.targets) != 1
                or not isinstance(statement.targets[0], ast.Name)
            ):
                return None
            found[statement.targets[0].id] = ast.literal_eval(statement.value)
    except (SyntaxError, ValueError):
        return None
    return found


def _is_timer(spec: Any) -> bool:
    """A catching event with a timer: the full path keeps its saved due date (``migration._saved_timers``)."""
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return isinstance(spec, CatchingEvent) and any(
            isinstance(d, TimerEventDefinition) for d in definition.event_definitions
        )
    return isinstance(spec, CatchingEvent) and isinstance(definition, TimerEventDefinition)


def _names(part: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """The task specs a tree of a stored state names: those of its tasks reached and not finished
    (ready, waiting, started), those only predicted (future, likely, maybe), and those of its
    finished tasks with its root's note of the completed ones compaction removed."""
    live: set[str] = set()
    predicted: set[str] = set()
    finished: set[str] = set()
    tasks = part.get("tasks") or {}
    for task in tasks.values():
        state = task.get("state", 0)
        (finished if state & _FINISHED else predicted if state & _PREDICTED else live).add(task.get("task_spec"))
    root = tasks.get(part.get("root")) or {}
    finished.update((root.get("internal_data") or {}).get(COMPLETED_NOTE, []))
    return live, predicted, finished


def _reachable(specs: workflows.RestoredSpecs, positions: Iterable[tuple[bool, str, frozenset[str]]]) -> set[str]:
    """Elements reachable in ``specs`` from the positions (in the top process or a called one, by
    name), named as the full path names them."""
    found: set[str] = set()
    for is_top, name, at in positions:
        process = specs.spec if is_top else _process(specs, name)
        found |= elements_ahead([process.task_specs[spec] for spec in at], None if is_top else name)
    return found


def elements_ahead(starts: Iterable[Any], called: str | None) -> set[str]:
    """The BPMN elements reachable in the flow from the task specs ``starts`` (themselves included), named
    by their id, prefixed ``<process>:`` when they are in the called process ``called``."""
    found: set[str] = set()
    pending, seen = list(starts), set[int]()
    while pending:
        spec = pending.pop()
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        if spec.bpmn_id is not None:
            found.add(spec.bpmn_id if called is None else f"{called}:{spec.bpmn_id}")
        pending.extend(spec.outputs)
    return found
