"""CarePath's version of a stored instance state, and the migrations that bring older states up to it.

An instance's state is SpiffWorkflow's serialised workflow (its own format, ``serializer_version``,
migrated by SpiffWorkflow) plus what CarePath adds to it. CarePath's additions have a version of their
own, :data:`CAREPATH_FORMAT`, stored beside SpiffWorkflow's under :data:`FORMAT_KEY`. A state without
the key was stored before it existed: it is version "1".

=======  ==============================================================================================
Version  What it holds (each version: what the one before held, with these changes)
=======  ==============================================================================================
1        (no key) SpiffWorkflow's format 1.5 without ``spec`` and ``subprocess_specs``: the spec is
         stored once per pathway version and put back on restore. Finished history may be cut out
         (``engine.spiff.compaction``): the names of the elements completed in it are on the root
         task's internal data under ``carepath.completed_elements``; a finished instance keeps its
         root task and its accumulated data. A started cycle timer's ``event_value`` holds
         SpiffWorkflow's ``cycles``, ``next`` and ``duration`` (seconds), and, if it was started
         since calendar cycles, the anchors ``first``, ``period_months``, ``period_seconds`` and
         ``occurrence``. Without them (started before, or a period in fractional months) the next
         occurrence is the last plus ``duration``.
2        The key ``carepath_format``. Every started cycle timer carries the anchors: the n-th
         occurrence after ``first`` falls ``period_months`` on the calendar plus
         ``period_seconds`` later. A fixed-period cycle has ``period_months`` 0 and its
         ``duration`` as ``period_seconds``, which continues SpiffWorkflow's arithmetic exactly.
3        A task may leave out what its place in the state gives (:func:`compact_tasks`): ``id`` (its
         key in ``tasks``), ``parent`` (the task listing it among its ``children`` in the same
         ``tasks``, or none), ``delta`` (none for a task without a parent, otherwise no updates and
         no deletions), and ``data`` ``{}``, ``internal_data`` ``{}``, ``triggered`` false and
         ``typename`` ``"Task"``. CarePath's converters (``engine.spiff.serializer``) restore the
         tasks from this form directly; :func:`expand_tasks` puts what was left out back, for
         SpiffWorkflow's own converters. A version-2 state is a valid version-3 state that leaves
         nothing out. (Two fifths of the text of a breast pathway's state, and an eighth of it
         compressed.)
=======  ==============================================================================================

:func:`migrate` runs on every restore: for a current state it is one dictionary look-up. An older
state is brought up by the functions of :data:`MIGRATIONS` in turn, as SpiffWorkflow's serializer
does (``SpiffWorkflow/bpmn/serializer/migration/version_migration.py``); it is saved in the current
version at the end of the step. Each function's docstring says what changed. A migration writes the
shape of the version it targets and reads nothing but the state, so later changes to the engine
never change what it does; new versions add a function, they do not edit the old ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from engine.errors import Problem, WorkflowError

__all__ = ["CAREPATH_FORMAT", "FORMAT_KEY", "MIGRATIONS", "Migration", "compact_tasks", "expand_tasks", "migrate"]

FORMAT_KEY = "carepath_format"
CAREPATH_FORMAT = "3"
# Version of a state without FORMAT_KEY: everything stored before the key existed.
_UNVERSIONED = "1"


def _task_dicts(dct: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every task of a stored state: the workflow's and its subprocesses' (all kept at the top level)."""
    yield from dct["tasks"].values()
    for subprocess in dct.get("subprocesses", {}).values():
        yield from subprocess["tasks"].values()


def from_version_1(dct: dict[str, Any]) -> None:
    """Version 1 to 2: every started cycle timer carries calendar anchors; the state carries its version.

    Cycle timers started before calendar cycles (and those with a period in fractional months) had
    no anchors, and their next occurrence was the last plus ``duration`` seconds. They are anchored
    on their next occurrence with that fixed period (``period_months`` 0, ``period_seconds`` the
    duration, ``occurrence`` 0): the occurrences fall due exactly when they did, and code reading a
    version-2 state finds the anchors on every cycle instead of telling the two kinds apart by shape.
    A used-up cycle (``cycles`` 0) is anchored too: it fires no more, and SpiffWorkflow removes the
    value at its next refresh. Compaction notes and the state without its spec are unchanged.
    """
    for task in _task_dicts(dct):
        value = task.get("internal_data", {}).get("event_value")
        if isinstance(value, dict) and {"cycles", "next", "duration"} <= value.keys() and "first" not in value:
            value.update(first=value["next"], period_months=0, period_seconds=value["duration"], occurrence=0)


def from_version_2(dct: dict[str, Any]) -> None:
    """Version 2 to 3: nothing to change. Version 3 lets a task leave out what its place in the
    state gives; a version-2 state leaves nothing out, which version 3 allows."""


# What a task of a version-3 state may leave out, and the value it then has (id, parent and delta
# are given by its place: expand_tasks).
_DEFAULTS: dict[str, Any] = {"data": {}, "internal_data": {}, "triggered": False, "typename": "Task"}
_EMPTY_DELTA: dict[str, Any] = {"updates": {}, "deletions": []}


def _task_tables(dct: dict[str, Any]) -> Iterator[dict[str, dict[str, Any]]]:
    """The ``tasks`` of the workflow and of each of its subprocesses."""
    yield dct["tasks"]
    for subprocess in dct.get("subprocesses", {}).values():
        yield subprocess["tasks"]


def _parents(tasks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {child: key for key, task in tasks.items() for child in task["children"]}


def compact_tasks(dct: dict[str, Any]) -> None:
    """Leave out of each task, in place, what :func:`expand_tasks` gives back exactly (version 3)."""
    for tasks in _task_tables(dct):
        parents = _parents(tasks)
        for key, task in tasks.items():
            parent = parents.get(key)
            if task.get("id") == key:
                del task["id"]
            if "parent" in task and task["parent"] == parent:
                del task["parent"]
            if "delta" in task and task["delta"] == ({} if parent is None else _EMPTY_DELTA):
                del task["delta"]
            for name, default in _DEFAULTS.items():
                if name in task and task[name] == default and type(task[name]) is type(default):
                    del task[name]


def expand_tasks(dct: dict[str, Any]) -> None:
    """Put back, in place, what :func:`compact_tasks` left out of each task: SpiffWorkflow's own task converter
    reads every key (CarePath's reads the compact form; ``tests/pathways_bundled/test_state_restore.py``
    holds the two to the same workflow)."""
    for tasks in _task_tables(dct):
        parents: dict[str, str] | None = None
        for key, task in tasks.items():
            if "id" not in task:
                task["id"] = key
            if "parent" not in task:
                if parents is None:
                    parents = _parents(tasks)
                task["parent"] = parents.get(key)
            if "delta" not in task:
                task["delta"] = {} if task["parent"] is None else {"updates": {}, "deletions": []}
            for name, default in _DEFAULTS.items():
                if name not in task:
                    task[name] = {} if isinstance(default, dict) else default


class Migration(NamedTuple):
    """What brings a state of one version to the next: ``apply`` changes it in place."""

    target: str
    apply: Callable[[dict[str, Any]], None]


# The version a state is in -> the migration to the next one. The last target is CAREPATH_FORMAT.
MIGRATIONS: dict[str, Migration] = {
    "1": Migration("2", from_version_1),
    "2": Migration("3", from_version_2),
}


def migrate(dct: dict[str, Any]) -> None:
    """Bring a stored state (as loaded from JSON, in place) to :data:`CAREPATH_FORMAT`, taking its version key.

    Raises:
        WorkflowError: the state is of a format this CarePath does not know (a newer CarePath wrote it);
            it is left unread rather than misread.
    """
    version = dct.pop(FORMAT_KEY, _UNVERSIONED)
    while version != CAREPATH_FORMAT:
        migration = MIGRATIONS.get(version) if isinstance(version, str) else None
        if migration is None:
            raise _unknown_format(version)
        migration.apply(dct)
        version = migration.target


def _unknown_format(version: Any) -> WorkflowError:
    newer = isinstance(version, str) and version.isascii() and version.isdigit() and int(version) > int(CAREPATH_FORMAT)
    reason = "a newer CarePath wrote it" if newer else "no CarePath version writes it"
    message = (
        f"the stored instance state is in CarePath format {version!r}, which this CarePath cannot read "
        f"({reason}; this one reads formats up to {CAREPATH_FORMAT!r})"
    )
    return WorkflowError(message, [Problem(message, code="state-format")])
