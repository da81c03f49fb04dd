"""The fast path of a migration: instances whose stored state means the same under both versions.

Moving an instance the full way (:mod:`engine.instances.migration`) restores its state into
SpiffWorkflow's objects, runs ``migrate_workflow`` and serialises it again: about 35 ms of one core.
Most instances of a caseload never touch what a new version changed (a renamed label, a task far
ahead of them), and for those all that work rewrites the same state.

What a stored state depends on in a spec. The state holds no spec and no version
(:mod:`engine.spiff.serializer`): it names task specs, and nothing else of the diagram. It names
the spec of every task of the top workflow's tree and of each subprocess's tree (``task_spec``),
the called process of each subprocess (``spec``), and, on each tree's root, the elements that
compaction removed after they completed (:data:`engine.spiff.compaction.COMPLETED_NOTE`), which a
migration checks for changed work. Restoring finds each named spec in the version's process (or
called process) by its name. So when every spec a state names serialises identically in both
versions (inputs, outputs, conditions, timers, forms, scripts, documentation: the whole spec), and
so do the processes themselves apart from their task specs (data objects, IO specification,
correlations), the state restores under the new version to a workflow that behaves exactly as it
would under the old one wherever it is and in everything it predicted.

What lies ahead of those tasks may have changed: it is reached later by following the new specs,
which is what the full path leaves it to as well (its ``migrate_workflow`` only re-predicts the
ready and waiting tasks, from specs that are unchanged). No timer changed, so none moves; no
completed work changed, so nothing is refused. The migration is then the row's version and the
``migrated`` event, whose ``tasks_added`` and ``tasks_removed`` are what is reachable from the
patient's positions in each version (``migration._ahead``'s rule, computed here from the names).

A state in an older format, or one that names anything changed or missing, takes the full path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from SpiffWorkflow.util.task import TaskState

from engine.spiff import serializer, state_json, state_migrations, workflows
from engine.spiff.compaction import COMPLETED_NOTE

__all__ = ["FastPlan", "FastPath"]

FastPlan = tuple[list[str], list[str]]  # (tasks_added, tasks_removed)
_DEFINITE = int(TaskState.DEFINITE_MASK)


class FastPath:
    """The fast path between two versions: which specs are unchanged, computed once per process and
    kept for the whole migration; and the plan of one stored state, or None when it must take the
    full path. ``new`` is the target version's restored specs."""

    def __init__(self, new: workflows.RestoredSpecs) -> None:
        self._new = new
        self._unchanged: dict[tuple[int, str], frozenset[str] | None] = {}
        self._ahead: dict[tuple[int, frozenset[Any]], FastPlan] = {}
        self._held: dict[int, workflows.RestoredSpecs] = {}  # keeps the ids of the keys above theirs

    def plan(self, old: workflows.RestoredSpecs, state: str) -> FastPlan | None:
        """``(tasks_added, tasks_removed)`` for an instance on version ``old`` whose stored state is
        ``state`` (JSON text), when the state names only unchanged specs; None otherwise."""
        self._held.setdefault(id(old), old)
        try:
            dct = state_json.loads(state)
        except ValueError:
            return None  # the full path reports what is wrong with it
        if not isinstance(dct, dict) or dct.get(serializer.SERIALIZER.VERSION_KEY) != serializer.STATE_FORMAT \
                or dct.get(state_migrations.FORMAT_KEY) != state_migrations.CAREPATH_FORMAT:
            return None  # the full path writes it in the current format
        parts = [(True, old.spec.name, dct)]
        parts += [(False, sub.get("spec"), sub) for sub in (dct.get("subprocesses") or {}).values()]
        positions = set()
        for is_top, name, part in parts:
            unchanged = self._unchanged_specs(old, name, is_top)
            if unchanged is None or not _names(part) <= unchanged:
                return None
            if not part.get("completed"):
                positions.add((is_top, name, frozenset(task["task_spec"] for task in part["tasks"].values()
                                                       if task["state"] & _DEFINITE)))
        key = (id(old), frozenset(positions))
        found = self._ahead.get(key)
        if found is None:
            before = _reachable(old, positions)
            after = _reachable(self._new, positions)
            found = self._ahead[key] = (sorted(after - before), sorted(before - after))
        return list(found[0]), list(found[1])

    def _unchanged_specs(self, old: workflows.RestoredSpecs, name: Any, is_top: bool) -> frozenset[str] | None:
        """The names of the task specs of process ``name`` that are the same in both versions (None:
        the process is missing from one of them; none: the process itself changed)."""
        key = (id(old), f"{is_top}:{name}")
        if key in self._unchanged:
            return self._unchanged[key]
        before, after = _process(old, name, is_top), _process(self._new, name, is_top)
        found: frozenset[str] | None = None
        if before is not None and after is not None:
            registry = serializer.SERIALIZER.registry
            was, now = registry.convert(before), registry.convert(after)
            was_specs, now_specs = was.pop("task_specs"), now.pop("task_specs")
            found = frozenset(n for n, spec in was_specs.items() if now_specs.get(n) == spec) if was == now \
                else frozenset()
        self._unchanged[key] = found
        return found


def _process(specs: workflows.RestoredSpecs, name: Any, is_top: bool = False) -> Any:
    if is_top:
        return specs.spec
    return specs.subprocess_specs[name] if isinstance(name, str) and name in specs.subprocess_specs else None


def _names(part: Mapping[str, Any]) -> set[str]:
    """Every task spec a tree of a stored state names: its tasks' and its root's note of completed ones."""
    tasks = part.get("tasks") or {}
    names = {task.get("task_spec") for task in tasks.values()}
    root = tasks.get(part.get("root")) or {}
    names.update((root.get("internal_data") or {}).get(COMPLETED_NOTE, []))
    return names


def _reachable(specs: workflows.RestoredSpecs, positions: Iterable[tuple[bool, str, frozenset[str]]]) -> set[str]:
    """Elements reachable in ``specs`` from the positions (in the top process or a called one, by
    name), named as ``migration._ahead`` names them."""
    found: set[str] = set()
    for is_top, name, at in positions:
        process = specs.spec if is_top else _process(specs, name)
        pending = [process.task_specs[spec] for spec in at]
        seen: set[int] = set()
        while pending:
            spec = pending.pop()
            if id(spec) in seen:
                continue
            seen.add(id(spec))
            if spec.bpmn_id is not None:
                found.add(spec.bpmn_id if is_top else f"{name}:{spec.bpmn_id}")
            pending.extend(spec.outputs)
    return found
