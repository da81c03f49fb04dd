"""Moving running instances of a pathway to its active version.

Built on SpiffWorkflow's ``SpecDiff`` / ``WorkflowDiff`` / ``migrate_workflow`` (``SpiffWorkflow.bpmn.util.diff``),
with three things added that a clinical service needs:

* Completed work never changes. The diff aligns the old and new task specs (by element id, then by
  structure); if an element the patient has already completed was removed or its behaviour changed
  (form, script, type, timer, called process...), the instance is refused with the reason. Which
  elements were completed comes from the task tree plus the note compaction keeps of the ones it
  removed (:func:`engine.spiff.compaction.completed_elements`). Changes to an element's place in the flow
  (its incoming and outgoing flows, its label) are not changes to the work done.
* Timers keep their due dates. ``migrate_workflow`` resets WAITING tasks, which would restart a
  timer from now (an 18-month survey moved by the months already waited). The saved due dates are
  put back; when the new version changed the timer's duration, the due date is recomputed from
  when the wait began.
* The data at the patient's positions is kept. ``migrate_workflow`` resets the ready and waiting
  tasks too: each gets its parent's data again and its spec's update runs (data inputs, then the
  pre-script). What the task held beyond that is dropped: a clinician's correction
  (:func:`engine.spiff.workflows.correct_data` writes into every unfinished task) would be lost
  from the task the patient is at, and the next step would run on the uncorrected value. So each
  task the reset replaced at the same element gets back the data it held (:func:`kept_data`).
  Why that is right: a task's data is fixed when it is entered (its parent's data, then its
  pre-script), and afterwards only acts on it change it (a correction); the parent is a finished
  task, which the migration does not touch, so the reset's data is the entry data again minus
  those acts, plus only what the new spec's update does differently. Of that, two things are kept
  from the new version, as SpiffWorkflow would apply them when the task is entered: a constant
  the new pre-script sets, where the task holds no value of that name or still the one the old
  pre-script set (so a value changed since entry, a correction, wins over it; a pre-script that
  computes its values ran at entry and is not run again over the task's data), and the data
  objects the spec reads (read again, as their current values). A waiting parallel join holds no
  data of its own (SpiffWorkflow's join inherits only when it fires), and keeps none.
* Each instance is its own unit of work, checked by its revision like any change, and gets a
  ``migrated`` event (from and to version, and what changed ahead of the patient). A dry run
  computes the same plan and writes nothing.

Four eyes (:mod:`engine.four_eyes`): with it on, instances move only under a migration request a
second author approved (:mod:`engine.instances.migration_requests`), which pins the version the
requester's dry run reported; a dry run needs no approval.

Moving a national caseload (100,000 instances of a pathway) takes minutes: the caller is told the
progress as it goes, and a run that is killed loses at most the instance in hand. Running it again
resumes: the instances already moved are on the newest version, so they are no longer candidates.

Two paths. The candidates are read in batches (one SELECT per :data:`engine.instances.store.MAX_BATCH`).
An instance whose stored state names only specs the new version left unchanged
(:mod:`engine.instances.migration_fast`) keeps its state bytes: its unit of work is the guarded
write of its row's version and its ``migrated`` event (the digest of the unchanged state sealed
in it, as the full path seals the rewritten one; the event chained to the head the batch read).
On PostgreSQL that is one statement run in autocommit, one round trip: atomic by itself, and the
revision guard makes it write nothing for an instance changed since its batch was read (the
instances of a batch share one session for it, :func:`_fast_units`); on SQLite, a transaction.
Every other instance, and one changed since its batch was read, takes the full path through the
step runner.
The report counts the instances that took the fast path.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event, take_pending_events
from engine.db.models import PathwayInstance
from engine.db.session import read_only, unit_of_work
from engine.errors import ConflictError, FourEyesError, StaleVersionError, VersionStateError
from engine.instances.migration_fast import FastPath, elements_ahead, prescript_constants, work_changes
from engine.instances.service import PathwayService
from engine.instances.step import Step, StepRunner
from engine.instances.store import MAX_BATCH, ConflictMapper, InstanceRecord, load_instances, load_spec, save_instance
from engine.instances.view import Status
from engine.spiff import patches, serializer, workflows
from engine.spiff.compaction import completed_elements

__all__ = ["InstanceMigration", "MigrationProgress", "MigrationReport", "migrate_pathway"]

_MIGRATABLE = (Status.RUNNING, Status.SUSPENDED)
_RESET = TaskState.READY | TaskState.WAITING  # what SpiffWorkflow's migrate_workflow resets


@dataclass
class InstanceMigration:
    """What migrating one instance does (or would do), or why it is refused."""

    instance_id: str
    patient_ref: str
    status: str
    from_version: str
    to_version: str
    migrated: bool = False
    refused: str | None = None
    tasks_added: list[str] = field(default_factory=list)
    tasks_removed: list[str] = field(default_factory=list)
    timers_moved: list[dict[str, str | None]] = field(default_factory=list)
    fast_path: bool = False  # its state named only unchanged specs: kept as it is (engine.instances.migration_fast)

    def summary(self) -> dict[str, Any]:
        return {"tasks_added": self.tasks_added, "tasks_removed": self.tasks_removed, "timers_moved": self.timers_moved}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MigrationReport:
    pathway_id: str
    to_version: str
    dry_run: bool
    instances: list[InstanceMigration]

    @property
    def refused(self) -> list[InstanceMigration]:
        return [i for i in self.instances if i.refused]

    @property
    def fast_path(self) -> int:
        """How many instances took (or, in a dry run, would take) the fast path."""
        return sum(i.fast_path for i in self.instances)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pathway_id": self.pathway_id,
            "to_version": self.to_version,
            "dry_run": self.dry_run,
            "fast_path": self.fast_path,
            "instances": [i.as_dict() for i in self.instances],
        }


@dataclass(frozen=True)
class MigrationProgress:
    """How far a migration is: ``done`` of ``total`` candidates handled, of which ``refused`` were
    refused and ``fast`` took the fast path."""

    done: int
    total: int
    refused: int
    fast: int = 0


class _Diffs:
    """What one migration computes once per pair of versions, not once per instance: the diff of each
    (old, new) process spec and the work changes of each (old, new) task spec. Comparing two specs
    serialises every task spec of both: it was a third of the time of migrating one instance.
    Specs come from the process-wide spec cache, so one pair of versions is one pair of objects;
    they are held here so their ids stay theirs."""

    def __init__(self) -> None:
        self._specs: dict[tuple[int, int], tuple[Any, Any, SpecDiff]] = {}
        self._work: dict[tuple[int, int], tuple[Any, Any, list[str]]] = {}

    def spec_diff(self, registry: Any, old: Any, new: Any) -> SpecDiff:
        found = self._specs.get((id(old), id(new)))
        if found is None:
            found = self._specs[(id(old), id(new))] = (old, new, SpecDiff(registry, old, new))
        return found[2]

    def work_changes(self, registry: Any, old: Any, new: Any) -> list[str]:
        found = self._work.get((id(old), id(new)))
        if found is None:
            found = self._work[(id(old), id(new))] = (old, new, work_changes(registry, old, new))
        return found[2]


class _Refused(Exception):
    pass


def migrate_pathway(
    service: PathwayService,
    pathway_id: str,
    actor: str,
    *,
    dry_run: bool = False,
    progress: Callable[[MigrationProgress], None] | None = None,
    progress_every: int = 500,
    part: tuple[int, int] = (1, 1),
    approved_target: str | None = None,
) -> MigrationReport:
    """Move the running and suspended instances of a pathway to its active version.

    Instances already on it are left out (so a run that was stopped is resumed by running it again).
    Each other instance is migrated in its own unit of work, committed before the next, or refused
    with the reason; a dry run reports the same without writing anything. ``progress`` is called
    after every ``progress_every`` instances and once at the end. ``part`` ``(k, n)``: only the
    k-th of n disjoint shares of the instances (by id), so n processes can move a caseload together.
    ``approved_target``: the version an approved migration request moves to
    (:func:`engine.instances.migration_requests.approve_migration` passes it); with four eyes on,
    instances move only with it.

    Raises:
        NotFoundError: no such pathway deployed.
        ValueError: ``part`` is not ``(k, n)`` with 1 <= k <= n.
        FourEyesError: four eyes is on, this is not a dry run and no approved target is given.
        VersionStateError: the pathway's active version is no longer ``approved_target``.
    """
    share, shares = part
    if not 1 <= share <= shares:
        raise ValueError(f"part {share}/{shares}: must be k/n with 1 <= k <= n")
    if service.settings.four_eyes and not dry_run and approved_target is None:
        raise FourEyesError(
            "moving running instances needs a migration request approved by a second author: "
            "ask for one (its dry run is kept), and another author approves and runs it"
        )
    runner = service.steps
    with read_only(runner.sessions) as session:
        target = runner.latest_version(session, pathway_id)
        to_version, target_id = target.version, target.id
        if approved_target is not None and to_version != approved_target:
            raise VersionStateError(
                f"the active version of {pathway_id} is {to_version[:12]}, not the "
                f"{approved_target[:12]} the request was approved for: ask again"
            )
        # The target's specs are restored once (from the process-wide cache when this process has them),
        # not looked up per instance: reading the version row for each instance cost a round trip and an
        # ORM load, a tenth of an instance's migration.
        target_specs = workflows.specs_for(to_version, lambda: target.spec)
        candidates = list(
            session.scalars(
                select(PathwayInstance.id)
                .where(
                    PathwayInstance.pathway_id == pathway_id,
                    PathwayInstance.status.in_(_MIGRATABLE),
                    PathwayInstance.pathway_version_id != target_id,
                )
                .order_by(PathwayInstance.created_at, PathwayInstance.id)
            )
        )
    # Ids are random UUIDs: their first 32 bits split the instances evenly, and the same way in every process.
    candidates = [i for i in candidates if int(i.replace("-", "")[:8], 16) % shares == share - 1]
    results = []
    refused = fast = 0
    diffs = _Diffs()
    fast_path = FastPath(target_specs, lambda old, new: diffs.spec_diff(serializer.SERIALIZER.registry, old, new))
    target_parts = (target_id, to_version, target_specs)
    for first in range(0, len(candidates), MAX_BATCH):
        batch = candidates[first : first + MAX_BATCH]
        records = _read_batch(runner, batch, target_id)
        with _fast_units(runner.sessions) as unit:
            moving = _migrate_batch(runner, batch, records, fast_path, (target_parts, actor, dry_run, diffs), unit)
            for done, result in enumerate(moving, start=first + 1):
                results.append(result)
                refused += result.refused is not None
                fast += result.fast_path
                if progress is not None and (done % progress_every == 0 or done == len(candidates)):
                    progress(MigrationProgress(done, len(candidates), refused, fast))
    return MigrationReport(pathway_id, to_version, dry_run, results)


def _migrate_batch(
    runner: StepRunner,
    batch: list[str],
    records: dict[str, _Candidate],
    fast_path: FastPath,
    how: tuple[tuple[int, str, workflows.RestoredSpecs], str, bool, _Diffs],
    unit: Callable[[], contextlib.AbstractContextManager[Session]],
) -> Iterator[InstanceMigration]:
    """Each instance of a batch by the fast path when it can, else by the full path, as it is done."""
    target, actor, dry_run, diffs = how
    for instance_id in batch:
        result = None
        record = records.get(instance_id)
        if record is not None:
            result = _migrate_fast(runner, record, target[:2], fast_path, actor, dry_run, unit)
        if result is None:
            try:
                result = _migrate_one(runner, instance_id, target, actor, dry_run, diffs)
            except (StaleVersionError, ConflictError) as exc:
                result = InstanceMigration(instance_id, "", "", "", target[1], refused=exc.message)
        yield result


@contextlib.contextmanager
def _fast_units(sessions: sessionmaker[Session]) -> Iterator[Callable[[], contextlib.AbstractContextManager[Session]]]:
    """The units of work of a batch's fast path. On PostgreSQL each is one statement run in
    autocommit (:func:`engine.instances.store.save_instance`), committed as it runs: they share one
    session for the batch, so the session's begin and end, and the connection's checkout from the
    pool and return, are paid once a batch rather than once an instance. Elsewhere (SQLite) each is
    a transaction of its own."""
    with unit_of_work(sessions) as batch:
        if batch.get_bind().dialect.name != "postgresql":
            yield functools.partial(unit_of_work, sessions)
            return

        @contextlib.contextmanager
        def unit() -> Iterator[Session]:
            take_pending_events(batch)  # an instance that failed before its write leaves none to the next
            yield batch

        yield unit


def _read_batch(runner: StepRunner, instance_ids: list[str], target_id: int) -> dict[str, _Candidate]:
    """The candidates of a batch that may take the fast path, with the specs of the version each is on
    (restored once per process, read here on a miss). Left out (to the full path): an instance no
    longer running or suspended, already on the target, or whose stored state cannot be read."""
    found: dict[str, _Candidate] = {}
    with read_only(runner.sessions) as session:
        for record in load_instances(session, instance_ids).values():
            if (
                record.status not in _MIGRATABLE
                or record.pathway_version_id == target_id
                or record.unreadable_state is not None
            ):
                continue
            specs = workflows.specs_for(
                record.pathway_version, functools.partial(load_spec, session, record.pathway_version_id)
            )
            found[record.id] = _Candidate(record, specs)
    return found


@dataclass
class _Candidate:
    record: InstanceRecord
    specs: workflows.RestoredSpecs


def _migrate_fast(
    runner: StepRunner,
    candidate: _Candidate,
    target: tuple[int, str],
    fast_path: FastPath,
    actor: str,
    dry_run: bool,
    unit: Callable[[], contextlib.AbstractContextManager[Session]],
) -> InstanceMigration | None:
    """Move one instance by the fast path in its own unit of work; None when it must take the full
    path (its state names a changed spec, or it changed since its batch was read)."""
    record = candidate.record
    found = fast_path.plan(candidate.specs, record.state)
    if found is None:
        return None
    target_id, to_version = target
    plan = InstanceMigration(
        record.id,
        record.patient_ref,
        record.status,
        record.pathway_version,
        to_version,
        tasks_added=found.tasks_added,
        tasks_removed=found.tasks_removed,
        fast_path=True,
    )
    if dry_run:
        return plan
    now = runner.clock.now()
    try:
        with ConflictMapper(), unit() as session:
            append_event(
                session,
                record,
                "migrated",
                at=now,
                actor=actor,
                pathway_version=to_version,
                payload={"from_version": plan.from_version, "to_version": to_version, **plan.summary()},
            )
            record.pathway_version_id, record.pathway_version, record.updated_at = target_id, to_version, now
            if found.state is not None:
                record.state = found.state
            # Guarded by the revision the batch read; the digest of the state (kept or new) in the event.
            save_instance(session, record, state_changed=found.state is not None, seal_state=True, one_statement=True)
    except StaleVersionError:
        return None  # changed since it was read: the full path reads it again
    runner.cache.take_latest(record.id)  # a workflow this process cached is of the old version
    plan.migrated = True
    return plan


def _migrate_one(
    runner: StepRunner,
    instance_id: str,
    target: tuple[int, str, workflows.RestoredSpecs],
    actor: str,
    dry_run: bool,
    diffs: _Diffs,
) -> InstanceMigration:
    """Move one instance to ``target`` (the version's id, key and restored specs).

    Raises: StaleVersionError, ConflictError (the instance is not running or suspended).
    """
    plans: list[InstanceMigration] = []
    target_id, target_version, new_specs = target

    def move(step: Step) -> bool:
        instance = step.instance
        plan = InstanceMigration(
            instance.id, instance.patient_ref, instance.status, instance.pathway_version, target_version
        )
        plans.append(plan)
        try:
            with patches.clock_in_effect(runner.clock):
                _move(step.workflow, new_specs, plan, runner.clock.now(), diffs)
        except _Refused as exc:
            plan.refused = str(exc)
            return False
        if dry_run:
            return False
        instance.pathway_version_id, instance.pathway_version = target_id, target_version
        step.workflow_changed = True
        step.record(
            "migrated",
            pathway_version=target_version,
            payload={"from_version": plan.from_version, "to_version": plan.to_version, **plan.summary()},
        )
        plan.migrated = True
        return True

    runner.run(instance_id, actor, move, allowed=_MIGRATABLE, refusal="it cannot be migrated")
    return plans[-1]


def _move(workflow: Any, new: workflows.RestoredSpecs, plan: InstanceMigration, now: datetime, diffs: _Diffs) -> None:
    registry = serializer.SERIALIZER.registry
    # SpiffWorkflow's diff_workflow, with each spec diff computed once per migration.
    top_spec_diff = diffs.spec_diff(registry, workflow.spec, new.spec)
    parts = [(workflow, WorkflowDiff(workflow, top_spec_diff), new.spec, top_spec_diff)]
    for subprocess in workflow.subprocesses.values():
        spec = new.subprocess_specs.get(subprocess.spec.name)
        if spec is None:
            raise _Refused(f"called process {subprocess.spec.name!r} is not in the new version")
        spec_diff = diffs.spec_diff(registry, subprocess.spec, spec)
        parts.append((subprocess, WorkflowDiff(subprocess, spec_diff), spec, spec_diff))
    ahead_before = _ahead(workflow)
    for part, _diff, _spec, spec_diff in parts:
        # The workflow diff only covers tasks still in the tree; the spec diff covers every element.
        _check_completed_work(part, spec_diff, registry, diffs)
    timers = _saved_timers(workflow)
    held = _held_data(workflow)
    for part, diff, spec, _spec_diff in parts:
        migrate_workflow(diff, part, spec)
    workflow.subprocess_specs = new.subprocess_specs
    _check_positions(workflow)
    _restore_data(workflow, held)
    plan.timers_moved = _restore_timers(workflow, timers, now)
    ahead_after = _ahead(workflow)
    plan.tasks_added = sorted(ahead_after - ahead_before)
    plan.tasks_removed = sorted(ahead_before - ahead_after)


def _check_completed_work(workflow: Any, diff: SpecDiff, registry: Any, diffs: _Diffs) -> None:
    problems = []
    for spec_name in sorted(completed_elements(workflow)):
        spec = workflow.spec.task_specs.get(spec_name)
        if spec is None or spec.bpmn_id is None:
            continue  # engine-internal specs (Start, End joins) carry no clinical work
        new_spec = diff.alignment.get(spec)
        if new_spec is None:
            problems.append(f"completed task {spec.bpmn_id!r} was removed")
            continue
        changed = diffs.work_changes(registry, spec, new_spec)
        if changed:
            problems.append(f"completed task {spec.bpmn_id!r} would change ({', '.join(changed)})")
    if problems:
        raise _Refused("; ".join(problems))


def _check_positions(workflow: Any) -> None:
    """Every task the patient is at (or waiting in) must exist in the new version."""
    for part in [workflow, *workflow.subprocesses.values()]:
        for task in part.tasks.values():
            if (
                task.has_state(TaskState.DEFINITE_MASK)
                and part.spec.task_specs.get(task.task_spec.name) is not task.task_spec
            ):
                raise _Refused(
                    f"the instance is at {task.task_spec.bpmn_id or task.task_spec.name!r}, "
                    "which the new version removed"
                )


def _ahead(workflow: Any) -> set[str]:
    """Elements reachable from where the patient is now (in the flow, by the current specs)."""
    found: set[str] = set()
    for part in [workflow, *workflow.subprocesses.values()]:
        if not part.completed:
            found |= elements_ahead(
                [t.task_spec for t in part.tasks.values() if t.has_state(TaskState.DEFINITE_MASK)],
                None if part is workflow else part.spec.name,
            )
    return found


# --- the data at the patient's positions ----------------------------------------------------------


@dataclass(frozen=True)
class _HeldData:
    element: str | None
    data: dict[str, Any]
    was_set: dict[str, Any] | None  # what the old spec's pre-script sets, when only constants


def _held_data(workflow: Any) -> dict[Any, _HeldData]:
    """The data of every task the reset will replace (ready and waiting), by task id. The reset puts a
    new dict on the task, so the old one is held as it is, not copied."""
    held = {}
    for part in [workflow, *workflow.subprocesses.values()]:
        for task in part.tasks.values():
            if task.state & _RESET:
                held[task.id] = _HeldData(task.task_spec.bpmn_id, task.data, prescript_constants(task.task_spec))
    return held


def _restore_data(workflow: Any, held: dict[Any, _HeldData]) -> None:
    """Give each ready or waiting task that the reset replaced, at the same element, its data back."""
    for part in [workflow, *workflow.subprocesses.values()]:
        for task in part.tasks.values():
            old = held.get(task.id)
            if old is not None and task.state & _RESET and task.task_spec.bpmn_id == old.element:
                spec = task.task_spec
                task.data = kept_data(
                    task.data,
                    old.data,
                    old.was_set,
                    prescript_constants(spec),
                    [a.bpmn_id for a in getattr(spec, "data_input_associations", None) or []],
                )


def kept_data(
    reset: dict[str, Any],
    old: dict[str, Any],
    was_set: dict[str, Any] | None,
    now_set: dict[str, Any] | None,
    data_objects: list[str],
) -> dict[str, Any]:
    """The data of a ready or waiting task after a migration (the module docstring says why).

    ``old`` is what the task held; ``reset`` what SpiffWorkflow's reset gave it (its parent's data,
    then the new spec's update); ``was_set`` and ``now_set`` what the old and the new spec's
    pre-script set, when only constants (None: it computes); ``data_objects`` the data objects the
    new spec reads. The task keeps its data, but for a constant the new pre-script sets where the
    task holds no value of that name or still the old pre-script's, and the data objects (read
    again, as the reset does)."""
    kept = dict(old)
    for key in data_objects:
        if key in reset:
            kept[key] = reset[key]
    for key, value in (now_set or {}).items():
        if key not in old or (was_set is not None and key in was_set and old[key] == was_set[key]):
            kept[key] = value
    return kept


# --- timers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SavedTimer:
    element: str
    event_value: Any
    definition: Any  # serialised, to tell whether the new version changed it
    expression: str | None


def _timer_definition(task: Any) -> Any:
    from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition

    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        timers = [d for d in definition.event_definitions if isinstance(d, TimerEventDefinition)]
        return timers[0] if timers else None
    return definition if isinstance(definition, TimerEventDefinition) else None


def _saved_timers(workflow: Any) -> dict[Any, _SavedTimer]:
    saved = {}
    for task in workflow.event_manager.tasks.values():
        definition = _timer_definition(task)
        value = task.internal_data.get("event_value")
        if definition is not None and value is not None:
            saved[task.id] = _SavedTimer(
                task.task_spec.bpmn_id or task.task_spec.name,
                value,
                serializer.SERIALIZER.registry.convert(definition),
                definition.expression,
            )
    return saved


def _restore_timers(workflow: Any, saved: dict[Any, _SavedTimer], now: datetime) -> list[dict[str, str | None]]:
    moved: list[dict[str, str | None]] = []
    for task_id, timer in saved.items():
        task = workflow.get_task_from_id(task_id) if _exists(workflow, task_id) else None
        definition = _timer_definition(task) if task is not None else None
        if task is None or definition is None:
            moved.append({"element": timer.element, "from": _due(timer.event_value), "to": None})
            continue
        if serializer.SERIALIZER.registry.convert(definition) == timer.definition:
            value = timer.event_value
        else:
            value = _rescheduled(timer, definition, task) or task.internal_data.get("event_value")
        task.internal_data["event_value"] = value
        task.internal_data.pop("event_fired", None)
        if _due(value) != _due(timer.event_value):
            moved.append({"element": timer.element, "from": _due(timer.event_value), "to": _due(value)})
    return moved


def _rescheduled(timer: _SavedTimer, definition: Any, task: Any) -> str | None:
    """A changed duration counts from when the wait began (old due date minus the old duration)."""
    if (
        not isinstance(definition, DurationTimerEventDefinition)
        or isinstance(definition, CycleTimerEventDefinition)
        or not isinstance(timer.event_value, str)
        or timer.expression is None
    ):
        return None
    engine = task.workflow.script_engine
    try:
        old = TimerEventDefinition.parse_iso_duration(engine.evaluate(task, timer.expression))
        due = TimerEventDefinition.get_datetime(timer.event_value)
        began = due - TimerEventDefinition.get_timedelta_from_end(old, due)
        new = TimerEventDefinition.parse_iso_duration(engine.evaluate(task, definition.expression))
        return (began + TimerEventDefinition.get_timedelta_from_start(new, began)).isoformat()
    except Exception as exc:  # noqa: BLE001 - an expression or a date this instance cannot use
        # One instance's timer must not stop the migration of the others: this one is refused.
        raise _Refused(f"timer {timer.element!r} cannot be rescheduled ({type(exc).__name__})") from exc


def _exists(workflow: Any, task_id: Any) -> bool:
    return task_id in workflow.tasks or any(task_id in sp.tasks for sp in workflow.subprocesses.values())


def _due(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("next")
    return value if isinstance(value, str) else None
