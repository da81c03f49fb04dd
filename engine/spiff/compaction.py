"""Compacting an instance's task tree after each step, so years-long pathways stay small and fast.

Why
    SpiffWorkflow keeps every task an instance ever ran in one tree, and a loop adds a level per
    round. Two things then go wrong for pathways that run for years (LIBRARY_NOTES): the state and
    the cost of one "load, complete, save" step grow with the history (1.19 MB and 309 ms after
    1,000 review rounds), and the task iterators stop at depth 1,000, past which READY tasks become
    invisible and ``is_completed()`` turns true too early — and that wrong state is persisted.

Options weighed
    * Raising the iterators' ``max_depth``: fixes visibility only; cost and size still grow, and the
      default is spelled out in many call sites inside the library.
    * Starting a fresh instance at each round ("continue as new"): changes what a pathway is for
      the author and the audit trail, and does not help loops that are not at the top level.
    * Compaction (chosen): after each step, finished history that nothing can read any more is cut
      out of the tree. What was done is already in the event trail (who, when, a digest of the
      data), which is where history belongs; the live state keeps only what the engine still needs.

What the engine still needs (read from SpiffWorkflow 3.2.0)
    * Every unfinished task (FUTURE, WAITING, READY, STARTED, ERROR and predicted ones) with its
      whole subtree: multi-instance and cycle-timer tasks count their finished children, gateways
      keep the branches they predicted.
    * The parent of each of those: WAITING tasks re-inherit their parent's data on every refresh
      (``TaskSpec._update_hook``), so the parent is the data anchor and is kept as it is.
    * Joins: a structured join (boundary events, start events) looks up its split with
      ``find_ancestor``; parallel and inclusive gateways read the other arrivals (tasks of the same
      spec) and their parents' state and data. While such a join waits, those are kept.
    * The process's end join: every branch that ends arrives there (a listener's round each time a
      warning sign is triaged), and when it runs it merges the data at each arrival's parent. Earlier
      arrivals are folded into the newest one (the same merges, in the same order, done ahead), so
      they do not accumulate with the rounds an instance has had.
    * Branch points: a task with unfinished work under two or more children keeps its place, so
      the branches stay apart and the depth-first order of tasks (what users see) is unchanged.
    * Subprocesses: ``workflow.subprocesses`` is keyed by the id of the task that runs them; the
      trees of active subprocesses are compacted the same way, and a subprocess whose task was cut
      out (it finished long ago) is deleted with everything nested in it.
    * The root task: it stays the root.

Everything else — chains of finished tasks and finished branches hanging off them — is removed,
and the names of the elements completed in it are noted on the root task (a set bounded by the
diagram, read by :func:`completed_elements` when a migration checks completed work),
and each kept task is re-attached to its nearest kept ancestor. ``workflow.last_task`` is cleared
if it was removed (as SpiffWorkflow's own migration does); a subprocess sets it again when it ends.
Ad-hoc subprocesses are left alone: they track their paths through the root's children.

The size of the kept tree depends on the diagram (how many branches are open), never on how long
the instance has run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.spiff.workflows import accumulated_data

__all__ = ["COMPLETED_NOTE", "compact", "completed_elements"]

# Kept on the root task's internal data: the spec names of completed tasks that were removed. Part of
# the stored state's format (engine.spiff.state_migrations): changing it needs a new format version.
COMPLETED_NOTE = "carepath.completed_elements"


def compact(workflow: Any) -> int:
    """Remove the finished history no task can read any more; returns how many tasks were removed.

    A signal that no element was waiting for is dropped too: SpiffWorkflow keeps it in
    ``bpmn_events`` for the application (where it would stay, in the state, for ever); a pathway's
    signals only wake its own listeners (the re-assessment listener), which re-read what they need.
    """
    if workflow.bpmn_events:
        workflow.bpmn_events = [
            e for e in workflow.bpmn_events if not isinstance(e.event_definition, SignalEventDefinition)
        ]
    if workflow.completed:
        return _compact_finished(workflow)
    removed = _compact_tree(workflow)
    for subprocess in list(workflow.subprocesses.values()):
        if not subprocess.completed:
            removed += _compact_tree(subprocess)
    removed += _drop_orphaned_subprocesses(workflow)
    return removed


def _compact_tree(workflow: Any) -> int:
    if isinstance(workflow.spec, AdHocSubprocessSpec):
        return 0
    tasks: dict[Any, Any] = workflow.tasks
    root = workflow.task_tree
    # Keyed by the ids' integers: a UUID hashes in Python, an int in C, and a step compacts the
    # tree each time (a sixth of the step's cost was hashing UUIDs here).
    by_key = {task_id.int: task for task_id, task in tasks.items()}
    needs = _needs(by_key, _fold_end_join_arrivals(workflow, by_key))
    if not needs.pins or root.id.int in needs.pins:
        return 0
    keep = _kept(by_key, root, needs)
    if len(keep) == len(tasks):
        return 0
    _reattach(by_key, root, keep)
    removed = [task for key, task in by_key.items() if key not in keep]
    _note_completed(root, removed)
    event_tasks = workflow.top_workflow.event_manager.tasks
    for task in removed:
        del tasks[task.id]
        if event_tasks:
            event_tasks.pop(task.id, None)
    if workflow.last_task is not None and workflow.last_task.id.int not in keep:
        workflow.last_task = None
    return len(removed)


def _compact_finished(workflow: Any) -> int:
    """A finished instance needs only its final data: the tree is cut back to its root task and the
    data every branch and sub-pathway accumulated is kept as the workflow's data (what documents read
    through :func:`engine.spiff.workflows.accumulated_data`). ``workflow.completed`` keeps it finished."""

    subprocess_tasks = sum(len(sp.tasks) for sp in workflow.subprocesses.values())
    if len(workflow.tasks) == 1 and not subprocess_tasks:
        return 0
    data = accumulated_data(workflow)
    root = workflow.task_tree
    removed = [task for task_id, task in workflow.tasks.items() if task_id != root.id]
    _note_completed(root, removed)
    for task in removed:
        workflow.event_manager.tasks.pop(task.id, None)
    for subprocess in workflow.subprocesses.values():
        for task_id in subprocess.tasks:
            workflow.event_manager.tasks.pop(task_id, None)
    workflow.subprocesses.clear()
    root._children = []
    workflow.tasks = {root.id: root}
    workflow.data = data
    workflow.last_task = None
    return len(removed) + subprocess_tasks


def completed_elements(workflow: Any) -> set[str]:
    """Names of the task specs this workflow (not its subprocesses) ever completed, removed or not."""
    names = set(workflow.task_tree.internal_data.get(COMPLETED_NOTE, []))
    names.update(t.task_spec.name for t in workflow.tasks.values() if t.state == TaskState.COMPLETED)
    return names


def _note_completed(root: Any, removed: Any) -> None:
    # Which elements ran is needed later (a migration must not change completed work); the note is
    # bounded by the diagram's size, not by the instance's history.
    names = set(root.internal_data.get(COMPLETED_NOTE, []))
    names.update(t.task_spec.name for t in removed if t.state == TaskState.COMPLETED)
    root.internal_data[COMPLETED_NOTE] = sorted(names)


@dataclass
class _Needs:
    """What must stay: ``pins`` with their subtree and parent, ``anchored`` tasks with their parent,
    ``marks`` alone (only their spec is read)."""

    pins: set[Any] = field(default_factory=set)
    anchored: set[Any] = field(default_factory=set)
    marks: set[Any] = field(default_factory=set)

    def all(self) -> set[Any]:
        return self.pins | self.anchored | self.marks


def _fold_end_join_arrivals(workflow: Any, by_key: dict[int, Any]) -> set[int]:
    """Fold the cancelled arrivals at the process's end join into the newest one; returns the folded.

    Every branch that ends (each round of a listener: a warning sign reported and triaged) leaves
    an arrival at the end join, cancelled when the next one arrives. When the join finally runs it
    merges the data at each finished arrival's parent (the branch's end), oldest first
    (``UnstructuredJoin._run_hook``), so SpiffWorkflow keeps every one of them: a state that grew by
    each warning sign an instance ever had (bench/engine.py: 38 KB to 81 KB in two years of monthly
    signs). The same merges, done now in the same order, leave that data on the newest arrival's
    parent; the older arrivals then hold nothing the join reads and are cut out with their branches.
    Arrivals whose parent is unfinished or has other children are left as they are.
    """
    end_join = workflow.spec.task_specs.get(f"{workflow.spec.name}.EndJoin")
    if end_join is None:
        return set()
    arrivals = sorted(
        (t for t in by_key.values() if t.task_spec is end_join and t._state == TaskState.CANCELLED),
        key=lambda t: t.last_state_change,
    )
    if len(arrivals) < 2:
        return set()
    parents = [_parent_of(by_key, t) for t in arrivals]
    if any(p is None or not p._state & TaskState.FINISHED_MASK or len(p._children) != 1 for p in parents):
        return set()
    folded: dict[str, Any] = {}
    for parent in parents:
        DeepMerge.merge(folded, copy.deepcopy(parent.data))
    parents[-1].data = folded
    return {t.id.int for t in arrivals[:-1]}


def _needs(by_key: dict[int, Any], folded: set[int]) -> _Needs:
    unfinished = [t for t in by_key.values() if t._state & TaskState.NOT_FINISHED_MASK]
    needs = _Needs(pins={t.id.int for t in unfinished})
    for task in unfinished:
        spec = task.task_spec
        split = getattr(spec, "split_task", None)
        if split:
            ancestor = task.find_ancestor(split)
            if ancestor is not None:
                needs.pins.add(ancestor.id.int)
        if isinstance(spec, UnstructuredJoin):
            _add_join_context(by_key, task, needs, folded)
    return needs


def _parent_of(by_key: dict[int, Any], task: Any) -> Any:
    return None if task._parent is None else by_key.get(task._parent.int)


def _add_join_context(by_key: dict[int, Any], join: Any, needs: _Needs, folded: set[int]) -> None:
    """What a parallel or inclusive gateway reads.

    * The other arrivals (tasks of its spec), with their parents' state and data. Only those of the
      current pass count: arrivals below the previous pass's gateway task. (SpiffWorkflow itself also
      counts arrivals of earlier passes through a loop, so a join in a loop can fire before all its
      branches arrived; once those are compacted away they no longer count.)
    * The nearest ancestor with each of its inputs' specs: in a loop it walks up to find which inputs
      come before it.
    """
    inputs = set(join.task_spec.inputs)
    ancestors, previous_pass = set(), None
    parent = _parent_of(by_key, join)
    while parent is not None:
        ancestors.add(parent.id.int)
        if parent.task_spec in inputs:
            inputs.discard(parent.task_spec)
            needs.marks.add(parent.id.int)
        if previous_pass is None and parent.task_spec is join.task_spec:
            previous_pass = parent
        parent = _parent_of(by_key, parent)
    for key, task in by_key.items():
        if (
            task.task_spec is join.task_spec
            and key not in ancestors
            and task is not join
            and key not in folded
            and (previous_pass is None or _descends_from(by_key, task, previous_pass))
        ):
            needs.anchored.add(key)


def _descends_from(by_key: dict[int, Any], task: Any, ancestor: Any) -> bool:
    parent = _parent_of(by_key, task)
    while parent is not None:
        if parent is ancestor:
            return True
        parent = _parent_of(by_key, parent)
    return False


def _kept(by_key: dict[int, Any], root: Any, needs: _Needs) -> set[int]:
    keep = {root.id.int} | needs.marks
    in_subtrees: set[int] = set()
    for pin in needs.pins:
        _add_subtree(by_key, pin, in_subtrees)
    keep |= in_subtrees
    for key in needs.pins | needs.anchored:
        keep.add(key)
        parent = by_key[key]._parent
        if parent is not None:
            keep.add(parent.int)  # the data anchor
    # Branch points: tasks with needed tasks below two or more of their children.
    pinned_below: dict[int, set[int]] = {}
    for needed in needs.all():
        child, parent = needed, by_key[needed]._parent
        while parent is not None:
            branches = pinned_below.setdefault(parent.int, set())
            if child in branches:
                break  # this path up is already recorded
            branches.add(child)
            child, parent = parent.int, by_key[parent.int]._parent
    keep.update(key for key, branches in pinned_below.items() if len(branches) > 1)
    return keep


def _add_subtree(by_key: dict[int, Any], key: int, found: set[int]) -> None:
    stack = [key]
    while stack:
        current = stack.pop()
        if current in found:
            continue  # already added with all that is under it
        found.add(current)
        stack.extend(child.int for child in by_key[current]._children)


def _reattach(by_key: dict[int, Any], root: Any, keep: set[int]) -> None:
    """Give every kept task its nearest kept ancestor as parent, keeping depth-first order."""
    root_key = root.id.int
    new_children: dict[int, list[Any]] = {key: [] for key in keep}
    stack: list[tuple[int, int]] = [(root_key, root_key)]  # (task, nearest kept ancestor or itself)
    while stack:
        key, anchor = stack.pop()
        task = by_key[key]
        if key in keep and key != root_key:
            new_children[anchor].append(task.id)
            task._parent = by_key[anchor].id
            anchor = key
        # Reversed so the stack pops children in their original order.
        stack.extend((child.int, anchor) for child in reversed(task._children))
    for key, children in new_children.items():
        by_key[key]._children = children


def _drop_orphaned_subprocesses(workflow: Any) -> int:
    """Delete subprocesses whose task is no longer in any tree (nested ones follow their parent)."""
    removed = 0
    while True:
        present = {task_id.int for task_id in workflow.tasks}
        for subprocess in workflow.subprocesses.values():
            present.update(task_id.int for task_id in subprocess.tasks)
        orphans = [task_id for task_id in workflow.subprocesses if task_id.int not in present]
        if not orphans:
            return removed
        for task_id in orphans:
            subprocess = workflow.subprocesses.pop(task_id)
            for sub_task_id in subprocess.tasks:
                workflow.event_manager.tasks.pop(sub_task_id, None)
            removed += len(subprocess.tasks)
