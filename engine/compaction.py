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
    * Branch points: a task with unfinished work under two or more children keeps its place, so
      the branches stay apart and the depth-first order of tasks (what users see) is unchanged.
    * Subprocesses: ``workflow.subprocesses`` is keyed by the id of the task that runs them; the
      trees of active subprocesses are compacted the same way, and a subprocess whose task was cut
      out (it finished long ago) is deleted with everything nested in it.
    * The root task: it stays the root.

Everything else — chains of finished tasks and finished branches hanging off them — is removed,
and each kept task is re-attached to its nearest kept ancestor. ``workflow.last_task`` is cleared
if it was removed (as SpiffWorkflow's own migration does); a subprocess sets it again when it ends.
Ad-hoc subprocesses are left alone: they track their paths through the root's children.

The size of the kept tree depends on the diagram (how many branches are open), never on how long
the instance has run.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import AdHocSubprocessSpec
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.util.task import TaskState

__all__ = ["compact"]


def compact(workflow: Any) -> int:
    """Remove the finished history no task can read any more; returns how many tasks were removed."""
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
    pins = _pins(tasks)
    if not pins or root.id in pins:
        return 0
    keep = _kept(tasks, root, pins)
    if len(keep) == len(tasks):
        return 0
    _reattach(tasks, root, keep)
    removed = [task_id for task_id in tasks if task_id not in keep]
    event_tasks = workflow.top_workflow.event_manager.tasks
    for task_id in removed:
        del tasks[task_id]
        event_tasks.pop(task_id, None)
    if workflow.last_task is not None and workflow.last_task.id not in tasks:
        workflow.last_task = None
    return len(removed)


def _pins(tasks: dict[Any, Any]) -> set[Any]:
    """Tasks that must stay with their subtree and their parent."""
    unfinished = [t for t in tasks.values() if t.has_state(TaskState.NOT_FINISHED_MASK)]
    pins = {t.id for t in unfinished}
    for task in unfinished:
        spec = task.task_spec
        split = getattr(spec, "split_task", None)
        if split:
            ancestor = task.find_ancestor(split)
            if ancestor is not None:
                pins.add(ancestor.id)
        if isinstance(spec, UnstructuredJoin):
            ancestors = _ancestor_ids(task)
            pins.update(t.id for t in tasks.values() if t.task_spec is spec and t.id not in ancestors)
    return pins


def _ancestor_ids(task: Any) -> set[Any]:
    found = set()
    parent = task.parent
    while parent is not None:
        found.add(parent.id)
        parent = parent.parent
    return found


def _kept(tasks: dict[Any, Any], root: Any, pins: set[Any]) -> set[Any]:
    keep = {root.id}
    # Pins keep their whole subtree and their parent (the data anchor).
    in_subtrees: set[Any] = set()
    for pin in pins:
        _add_subtree(tasks[pin], in_subtrees)
        if tasks[pin]._parent is not None:
            keep.add(tasks[pin]._parent)
    keep |= in_subtrees
    # Branch points: tasks with pins below two or more of their children.
    pinned_below: dict[Any, set[Any]] = {}
    for pin in pins:
        child, parent = pin, tasks[pin]._parent
        while parent is not None:
            branches = pinned_below.setdefault(parent, set())
            if child in branches:
                break  # this path up is already recorded
            branches.add(child)
            child, parent = parent, tasks[parent]._parent
    keep.update(task_id for task_id, branches in pinned_below.items() if len(branches) > 1)
    return keep


def _add_subtree(task: Any, found: set[Any]) -> None:
    stack = [task]
    while stack:
        current = stack.pop()
        if current.id in found:
            continue  # already added with all that is under it
        found.add(current.id)
        stack.extend(current.children)


def _reattach(tasks: dict[Any, Any], root: Any, keep: set[Any]) -> None:
    """Give every kept task its nearest kept ancestor as parent, keeping depth-first order."""
    new_children: dict[Any, list[Any]] = {task_id: [] for task_id in keep}
    stack: list[tuple[Any, Any]] = [(root.id, root.id)]  # (task, nearest kept ancestor or itself)
    while stack:
        task_id, anchor = stack.pop()
        task = tasks[task_id]
        if task_id in keep and task_id != root.id:
            new_children[anchor].append(task_id)
            task._parent = anchor
            anchor = task_id
        # Reversed so the stack pops children in their original order.
        stack.extend((child_id, anchor) for child_id in reversed(task._children))
    for task_id, children in new_children.items():
        tasks[task_id]._children = children


def _drop_orphaned_subprocesses(workflow: Any) -> int:
    """Delete subprocesses whose task is no longer in any tree (nested ones follow their parent)."""
    removed = 0
    while True:
        present = set(workflow.tasks)
        for subprocess in workflow.subprocesses.values():
            present.update(subprocess.tasks)
        orphans = [task_id for task_id in workflow.subprocesses if task_id not in present]
        if not orphans:
            return removed
        for task_id in orphans:
            subprocess = workflow.subprocesses.pop(task_id)
            for sub_task_id in subprocess.tasks:
                workflow.event_manager.tasks.pop(sub_task_id, None)
            removed += len(subprocess.tasks)
