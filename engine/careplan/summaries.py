"""End of Treatment Summaries over time: one per phase of care, each due 6 weeks after its phase ended.

**Phases.** A phase is a course of treatment that ends: first-line treatment (for children and young
people, the end of the treatment protocol), the treatment of a recurrence. A pathway calls the shared
sub-pathway ``end_of_treatment_summary`` when a phase ends, naming it in ``eot_phase`` (absent:
``first_line``). Each phase has a row in ``treatment_summaries`` (number 1, 2, ... in the instance):
the operator ``carepath.end_of_treatment_summary``, which the sub-pathway runs as the summary is
written, keeps the instance's data as it was then (``content``), so a later phase's summary never
overwrites an earlier one's treatments and dates.

**The deadline.** NHS England: the summary is written within 6 weeks of the end of treatment. When it
is not, an "End of treatment summary overdue" task opens for the patient's named contact (their staff
identifier when one is recorded, else the team's work list): the worker's scan
(:meth:`TreatmentSummaries.open_due`), not a boundary timer in the diagram. A running instance keeps
the diagram version it started on, so a timer added to the diagram now would never reach the patients
already waiting for a summary; the scan reads what every version has -- the ready ``write_summary``
tasks (the ready-task elements table and summary) and the course's ``completed_on`` -- and so covers them too. It
opens the task once the last day of the 6 weeks has passed in the deployment's time zone (a summary
written on that day is on time, as the documents and the reports count it), appending a
``summary_overdue`` event by the system (actor ``engine``). The task closes when the summary is
written: at once, in the step that records it (new diagram versions), or at the scan's next turn
(older ones), with a ``summary_overdue_closed`` event. A patient's instance that ends without the
summary closes its phase, and its task, without one.

**Two at once.** An instance can wait for two summaries (the first-line one still unwritten when a
recurrence's treatment ends, or two recurrences), so each awaited summary is keyed by the
SpiffWorkflow task that writes it -- its ``write_summary`` task's id, in ``task_id`` -- with its own
phase, end date (the ``completed_on`` in that task's own data: each branch carries its own course's,
where the instance's accumulated data holds only the latest), deadline and overdue task. Writing one
marks the row of the task just completed (the parent of ``keep_summary``), never another phase's.

The id is stable: it is stored with the task in the instance state and restored as it was (the
compact ids of engine.spiff.patches are ids like any other); compaction removes only finished tasks;
and ``carepath migrate`` keeps it -- the full path's ``migrate_workflow`` resets a ready task in place
(``Task.reset_branch`` drops its children and keeps the task), the fast path keeps the stored state or
rewrites only its data (tests/test_summaries_two_phases.py migrates an instance waiting for two).

**The scan stays cheap.** The ready-task elements table has one row per element, so it says that an
instance waits for a summary, not for how many; the instance's stored ready-task summary lists each
waiting task with its id. Each turn compares, in SQL, every waiting instance's due rows with that
summary (as many rows as waiting ``write_summary`` tasks, each row naming a task still listed) and
restores only the instances where they differ, to read the new tasks' own data. An instance whose
state cannot be restored stays different (no row can be noted for its tasks): the scan remembers it,
with its row's revision, and passes it by while the row is as it was, so that any number of them
never fills a turn and keeps the scan from the rest. A row noted before
revision 0026 (``task_id`` NULL; one per instance then) is given the waiting task of its phase, the one
of its end date first.

Patient data: ``content`` is the instance's data; events carry ids, codes and dates only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, exists, func, literal, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event
from engine.clock import Clock
from engine.db.models import InstanceEvent, PathwayInstance, ReadyTaskElement, TreatmentSummary
from engine.db.session import read_only, unit_of_work
from engine.errors import ConflictError, Problem, StaleVersionError, WorkflowError
from engine.instances.service import PathwayService
from engine.instances.step import ServiceOperator, StepContext
from engine.instances.store import ConflictMapper, InstanceRecord, load_instance, save_instance
from engine.instances.view import ENGINE_ACTOR

__all__ = [
    "AWAITED_BY_TASK_LIMIT",
    "DUE_WEEKS",
    "OVERDUE_LIMIT",
    "PHASES",
    "WRITE_ELEMENT",
    "TreatmentSummaries",
    "due_by",
    "summary_operators",
]

DUE_WEEKS = 6  # NHS England: within 6 weeks of the end of treatment
PHASES = ("first_line", "recurrence", "end_of_protocol")
WRITE_ELEMENT = "write_summary"  # the sub-pathway's task that writes (signs off) the summary
OVERDUE_LIMIT = 200  # open overdue tasks listed at most, oldest first
_PHASE_KEY = "eot_phase"
# How the stored ready-task summary (engine.spiff.workflows.ready_task_summary, compact JSON) names a
# waiting write_summary task: counted in its text, so the scan finds instances to look at in SQL.
_TASK_MARK = f'"element":"{WRITE_ELEMENT}"'
_WALK_LIMIT = 20  # keep_summary follows write_summary directly: a few steps up the tree at most
_STAFF_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# Waiting instances a scanning process remembers as unreadable, at most (the oldest noted is forgotten
# first, and is tried again: one more restore, never a lost instance).
UNREADABLE_KEPT = 10_000
# Waiting write_summary tasks one awaited_by_task read answers for, at most: a work list page holds a
# few per patient on 50 patients; past this the rest show no phase (one bounded IN list per page).
AWAITED_BY_TASK_LIMIT = 1000


def due_by(ended_on: date) -> date:
    """The last day a summary of a phase that ended on ``ended_on`` is on time."""
    return ended_on + timedelta(weeks=DUE_WEEKS)


def _ended_on(data: dict[str, Any], fallback: date) -> date:
    """The course's end (the treatment form's ``completed_on``), else ``fallback``."""
    value = data.get("completed_on")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    return fallback


def _phase(data: dict[str, Any], element: str) -> str:
    """The phase the pathway named (``eot_phase``, set by the calling diagram); absent: first-line.

    Raises:
        WorkflowError: the diagram named no phase of care (an incident on the element: the clinician
            writing the summary cannot put it right, an author can).
    """
    value = data.get(_PHASE_KEY, "first_line")
    if value not in PHASES:
        raise WorkflowError(
            "eot_phase names no phase of care",
            [Problem(f"expected one of {', '.join(PHASES)}", field=f"/{_PHASE_KEY}", element=element)],
        )
    return str(value)


def _named_contact(data: dict[str, Any]) -> str | None:
    """The named contact's staff identifier, when the pathway recorded one (an identifier, never a name)."""
    record = data.get("patient_status_record")
    contact = (record.get("named_contact") if isinstance(record, dict) else None) or data.get("named_contact")
    staff = contact.get("staff_ref") if isinstance(contact, dict) else None
    return staff if isinstance(staff, str) and _STAFF_REF.match(staff) else None


def _next_number(session: Session, instance_id: str) -> int:
    highest = session.scalar(
        select(func.max(TreatmentSummary.number)).where(TreatmentSummary.instance_id == instance_id)
    )
    return int(highest or 0) + 1


def _awaited(ready_tasks: str | None) -> list[str]:
    """The ids of the instance's waiting ``write_summary`` tasks, in its ready-task summary's order."""
    listed = json.loads(ready_tasks) if ready_tasks else []
    return [str(task["id"]) for task in listed if isinstance(task, dict) and task.get("element") == WRITE_ELEMENT]


_AWAITING = (
    TreatmentSummary.instance_id,
    TreatmentSummary.task_id,
    TreatmentSummary.phase,
    TreatmentSummary.ended_on,
    TreatmentSummary.due_by,
    TreatmentSummary.overdue_at,
    TreatmentSummary.closed_at,
)


def _awaiting(row: Any) -> dict[str, Any]:
    """What a due row (or its :data:`_AWAITING` columns) says of the summary its task writes: codes and dates."""
    return {
        "phase": row.phase,
        "ended_on": row.ended_on.isoformat(),
        "due_by": row.due_by.isoformat(),
        "overdue": row.overdue_at is not None and row.closed_at is None,
    }


def _own_phase(data: dict[str, Any]) -> str:
    """The phase a waiting task's own data names (the scan is lenient: the operator refuses a bad one)."""
    value = data.get(_PHASE_KEY)
    return str(value) if value in PHASES else "first_line"


def _match_legacy(rows: list[TreatmentSummary], phase: str, ended: date) -> TreatmentSummary | None:
    """The due row noted before rows were keyed by task (``task_id`` NULL) that a task of ``phase`` ended
    on ``ended`` takes: one of its phase, the one of its end date first, else the first noted."""
    same = [row for row in rows if row.task_id is None and row.phase == phase]
    return next((row for row in same if row.ended_on == ended), same[0] if same else None)


def _writing_task(task: Any) -> Any | None:
    """The ``write_summary`` task whose completion led to ``task`` (its parent, in the bundled sub-pathway)."""
    current = getattr(task, "parent", None)
    for _ in range(_WALK_LIMIT):
        if current is None:
            return None
        if getattr(current.task_spec, "bpmn_id", None) == WRITE_ELEMENT:
            return current
        current = current.parent
    return None


def _task_in(workflow: Any, task_id: str) -> Any | None:
    """The task of ``workflow`` (or of one of its sub-pathways) with this id, if it has one."""
    try:
        key = uuid.UUID(task_id)
    except ValueError:
        return None
    for part in (workflow, *workflow.subprocesses.values()):
        task = part.tasks.get(key)
        if task is not None:
            return task
    return None


def _unmatched(after: tuple[datetime, str] | None = None) -> Select[str, datetime, int]:
    """Instances waiting for a summary whose due rows are not exactly their waiting tasks' rows: each
    one's id, its place in the index's order (``created_at``) and its row's revision, past ``after``
    (a ``created_at, instance_id`` of that order) when given.

    They match when every due row names a task the stored ready-task summary still lists and there are
    as many due rows as ``write_summary`` tasks in it (each counted by its mark in the summary's text,
    which JSON escaping keeps out of names). Read through the ready-task elements index, one instance
    row and an index range of its summaries (``instance_id, status``) per waiting instance: nothing is restored.
    """
    summary = func.coalesce(PathwayInstance.ready_tasks, "")
    marks = func.length(summary) - func.length(func.replace(summary, _TASK_MARK, ""))
    due = (
        select(func.count())
        .select_from(TreatmentSummary)
        .where(TreatmentSummary.instance_id == ReadyTaskElement.instance_id, TreatmentSummary.status == "due")
        .scalar_subquery()
    )
    stray = exists().where(
        TreatmentSummary.instance_id == ReadyTaskElement.instance_id,
        TreatmentSummary.status == "due",
        or_(
            TreatmentSummary.task_id.is_(None),
            ~summary.contains(literal('"id":"') + TreatmentSummary.task_id + literal('"')),
        ),
    )
    query = (
        select(ReadyTaskElement.instance_id, ReadyTaskElement.created_at, PathwayInstance.revision)
        .join(PathwayInstance, PathwayInstance.id == ReadyTaskElement.instance_id)
        .where(ReadyTaskElement.element == WRITE_ELEMENT, or_(due * len(_TASK_MARK) != marks, stray))
    )
    if after is not None:
        # A row value, not "a > x OR (a = x AND b > y)": only this form is one index range.
        bound = literal(after[0], ReadyTaskElement.created_at.type)
        query = query.where(tuple_(ReadyTaskElement.created_at, ReadyTaskElement.instance_id) > tuple_(bound, after[1]))
    return query.order_by(ReadyTaskElement.created_at, ReadyTaskElement.instance_id)


def summary_operators() -> dict[str, ServiceOperator]:
    """``carepath.end_of_treatment_summary``: keep the summary of the phase being written (no parameters)."""
    return {"carepath.end_of_treatment_summary": _record_written}


def _record_written(context: StepContext, task: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The summary of the phase that ended is written: keep the data it was written from in the row of
    the ``write_summary`` task just completed (never another waiting phase's), close that phase's
    overdue task. Returns ids and codes only (the task's result variable)."""
    element = str(task.task_spec.bpmn_id)
    data = dict(task.data)
    phase = _phase(data, element)
    now = context.clock.now()
    session, instance_id = context.session, context.instance.id
    writer = _writing_task(task)
    task_id = str(writer.id) if writer is not None else None
    ended = _ended_on(data, now.date())
    due = list(
        session.scalars(
            select(TreatmentSummary)
            .where(TreatmentSummary.instance_id == instance_id, TreatmentSummary.status == "due")
            .order_by(TreatmentSummary.number)
        )
    )
    row = next((r for r in due if task_id is not None and r.task_id == task_id), None) or _match_legacy(
        due, phase, ended
    )
    if row is None:  # written before the worker's scan saw it waiting
        row = TreatmentSummary(
            id=str(uuid.uuid4()),
            instance_id=instance_id,
            number=_next_number(session, instance_id),
            phase=phase,
            ended_on=ended,
            due_by=due_by(ended),
            status="due",
            opened_at=now,
            task_id=task_id,
        )
        session.add(row)
    row.task_id = row.task_id or task_id
    row.phase, row.status, row.written_at, row.written_by = phase, "written", now, context.actor
    row.content = json.dumps({k: v for k, v in data.items() if k != "treatment_summary"}, default=str)
    # Written: a document the patient and the GP can now read (webhook summary.written). Ids and codes only.
    context.record("summary_written", element, {"summary": row.id, "number": row.number, "phase": row.phase})
    if row.overdue_at is not None and row.closed_at is None:
        row.closed_at = now
        context.record(
            "summary_overdue_closed",
            element,
            {"summary": row.id, "number": row.number, "phase": row.phase, "outcome": "written"},
        )
    return {"summary": row.id, "number": row.number, "phase": row.phase}


class TreatmentSummaries:
    """The phases' summaries of each instance, and their deadlines (the worker's scan)."""

    def __init__(
        self, session_factory: sessionmaker[Session], clock: Clock, instances: PathwayService, time_zone: str = "UTC"
    ) -> None:
        self.sessions = session_factory
        self.clock = clock
        self.instances = instances
        self.zone = ZoneInfo(time_zone)
        # Waiting instances whose stored state could not be restored, with their row's revision then:
        # the scan passes them by until the row changes (a retry, a restore from a backup), so however
        # many there are they never take a turn's places (at most UNREADABLE_KEPT, oldest first out).
        self._unreadable: dict[str, int] = {}

    # --- reading -----------------------------------------------------------------------------------

    @staticmethod
    def phases(session: Session, instance_id: str) -> list[TreatmentSummary]:
        """The instance's phases, first first, in the caller's (read-only) session."""
        return list(
            session.scalars(
                select(TreatmentSummary)
                .where(TreatmentSummary.instance_id == instance_id)
                .order_by(TreatmentSummary.number)
            )
        )

    def list_phases(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's phases and their summaries' state (ids, codes and dates), first first."""
        with read_only(self.sessions) as session:
            return [
                {**row.as_dict(), "overdue": row.overdue_at is not None and row.closed_at is None}
                for row in self.phases(session, instance_id)
            ]

    def awaited(self, instance_id: str) -> dict[str, dict[str, Any]]:
        """Per waiting ``write_summary`` task (by its id), the summary it writes: its ``phase``, the
        course's end (``ended_on``), the deadline (``due_by``, ISO dates) and whether its overdue task is
        open, so two waiting tasks can be told apart. From the task's row when the worker's scan has noted
        it, else from the task's own data as the scan will note it. Ids, codes and dates only.

        Raises:
            NotFoundError: no such instance.
            ConflictError: the state cannot be read (only when a waiting task has no row yet).
        """
        with read_only(self.sessions) as session:
            instance = load_instance(session, instance_id)
            waiting = _awaited(instance.ready_tasks)
            if not waiting:
                return {}
            found = {
                str(row.task_id): _awaiting(row)
                for row in self.phases(session, instance_id)
                if row.status == "due" and row.task_id in waiting
            }
            missing = [task_id for task_id in waiting if task_id not in found]
            if missing:
                workflow = self.instances.steps.restore(session, instance)
                self.instances.steps.remember(instance, workflow)
                today = self.clock.now().astimezone(self.zone).date()
                for task_id in missing:
                    task = _task_in(workflow, task_id)
                    if task is not None:
                        ended = _ended_on(task.data, today)
                        found[task_id] = {
                            "phase": _own_phase(task.data),
                            "ended_on": ended.isoformat(),
                            "due_by": due_by(ended).isoformat(),
                            "overdue": False,
                        }
        return {task_id: found[task_id] for task_id in waiting if task_id in found}

    def awaited_by_task(self, tasks: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Per waiting ``write_summary`` task, given as ``(instance_id, task_id)``, the summary its row
        says it writes -- ``phase``, ``ended_on``, ``due_by`` (ISO dates), ``overdue`` -- as
        :meth:`awaited` gives it, for many instances at once (the work list's page) in ONE query of the
        due rows, keyed by the pair (a task id is unique within its instance, as the table's constraint
        says). Nothing is restored: a task whose row the worker's scan has not noted yet (it notes them
        on every turn) is absent, and so is any past the first :data:`AWAITED_BY_TASK_LIMIT` pairs.
        Ids, codes and dates only."""
        wanted = list(dict.fromkeys((str(i), str(t)) for i, t in tasks))[:AWAITED_BY_TASK_LIMIT]
        if not wanted:
            return {}
        # Two plain IN lists, the instances' through the (instance_id, status) index; the pair is
        # checked here. Columns, not ORM objects: this is read on every work list page.
        with read_only(self.sessions) as session:
            rows = session.execute(
                select(*_AWAITING).where(
                    TreatmentSummary.instance_id.in_(sorted({i for i, _ in wanted})),
                    TreatmentSummary.status == "due",
                    TreatmentSummary.task_id.in_(sorted({t for _, t in wanted})),
                )
            )
            found = {(row.instance_id, str(row.task_id)): _awaiting(row) for row in rows}
        return {pair: found[pair] for pair in wanted if pair in found}

    def list_overdue(
        self, patient_ref: str | None = None, pathway_id: str | None = None, reach: ColumnElement[bool] | None = None
    ) -> list[dict[str, Any]]:
        """Open overdue tasks (oldest first, at most :data:`OVERDUE_LIMIT`), optionally of one patient or
        one pathway, of the instances ``reach`` selects (engine.care_teams.CareScope.condition)."""
        with read_only(self.sessions) as session:
            query = (
                select(TreatmentSummary, PathwayInstance)
                .join(PathwayInstance, PathwayInstance.id == TreatmentSummary.instance_id)
                .where(TreatmentSummary.overdue_at.is_not(None), TreatmentSummary.closed_at.is_(None))
                .order_by(TreatmentSummary.overdue_at, TreatmentSummary.id)
                .limit(OVERDUE_LIMIT)
            )
            if patient_ref is not None:
                query = query.where(PathwayInstance.patient_ref == patient_ref)
            if pathway_id is not None:
                query = query.where(PathwayInstance.pathway_id == pathway_id)
            if reach is not None:
                query = query.where(reach)
            return [
                {**s.as_dict(), "kind": "summary_overdue", "pathway_id": p.pathway_id, "patient_ref": p.patient_ref}
                for s, p in session.execute(query)
            ]

    # --- the worker's scan ---------------------------------------------------------------------------

    def open_due(self, limit: int = 100) -> int:
        """One turn of the scan: match each instance's due summaries to the ``write_summary`` tasks it
        waits for -- noting a phase whose summary is now awaited, closing one no longer awaited -- and
        open the overdue task of each awaited one past its 6 weeks (up to ``limit`` instances and
        ``limit`` tasks, every instance and task in its own unit of work). An instance another worker or
        a step changed meanwhile is left to the next turn. An instance whose stored state cannot be
        restored takes none of the ``limit`` places: it is remembered and passed by until its row
        changes; its overdue task opens on the team's work list. Returns how many tasks opened.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
        """
        now = self.clock.now()
        waiting = select(ReadyTaskElement.instance_id).where(ReadyTaskElement.element == WRITE_ELEMENT)
        matched = self._match_changed(now, limit)
        with read_only(self.sessions) as session:
            gone = list(
                session.scalars(
                    select(TreatmentSummary.instance_id)
                    .where(TreatmentSummary.status == "due", TreatmentSummary.instance_id.not_in(waiting))
                    .group_by(TreatmentSummary.instance_id)
                    .limit(limit)
                )
            )
        for instance_id in gone:
            if instance_id not in matched:
                self._guarded(self._match, instance_id, now)
        # Read after matching: a summary already past its 6 weeks when first seen gets its task in this turn.
        today = now.astimezone(self.zone).date()
        with read_only(self.sessions) as session:
            late = list(
                session.scalars(
                    select(TreatmentSummary.id)
                    .where(
                        TreatmentSummary.status == "due",
                        TreatmentSummary.due_by < today,
                        TreatmentSummary.overdue_at.is_(None),
                    )
                    .order_by(TreatmentSummary.due_by)
                    .limit(limit)
                )
            )
        return sum(self._guarded(self._open_overdue, summary_id, now, today) for summary_id in late)

    def _match_changed(self, now: datetime, limit: int) -> set[str]:
        """Match up to ``limit`` readable instances whose waiting summaries changed, in the index's order.
        One whose state cannot be restored does not count, and is passed by in later turns while its row
        is as it was (a page of the index is read again past them: they cost an index range, not a
        restore), so unreadable instances never keep the scan from the rest. Returns the ids matched."""
        matched: set[str] = set()
        readable = 0
        after: tuple[datetime, str] | None = None
        while readable < limit:
            with read_only(self.sessions) as session:
                page = session.execute(_unmatched(after).limit(limit)).all()
            for instance_id, _, revision in page:
                if readable >= limit:
                    break
                if self._unreadable.get(instance_id) == revision:
                    continue  # its state could not be restored, and its row has not changed since
                self._guarded(self._match, instance_id, now)
                matched.add(instance_id)
                readable += instance_id not in self._unreadable
            if len(page) < limit:
                break
            after = page[-1].created_at, page[-1].instance_id
        return matched

    def _remember_unreadable(self, instance: InstanceRecord) -> None:
        self._unreadable.pop(instance.id, None)
        self._unreadable[instance.id] = instance.revision
        while len(self._unreadable) > UNREADABLE_KEPT:
            del self._unreadable[next(iter(self._unreadable))]

    @staticmethod
    def _guarded(act: Any, *args: Any) -> int:
        try:
            return int(act(*args) or 0)
        except (StaleVersionError, IntegrityError):
            return 0  # another worker, or a step, got there first: the next turn sees it as it is

    def _match(self, instance_id: str, now: datetime) -> None:
        """One due row per waiting ``write_summary`` task, each with what the task's own data says: its
        phase and the end of its course (``completed_on``; a recurrence's course and the first-line one
        each carry their own, in their own branch). A due row whose task no longer waits is closed."""
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            # The rows first, then the instance: its ready tasks are then at least as new as the state
            # another worker noted a row from. A row a step is writing is skipped (this turn's note of
            # its task then meets the task's unique key and is rolled back).
            rows = list(
                session.scalars(
                    select(TreatmentSummary)
                    .where(TreatmentSummary.instance_id == instance_id, TreatmentSummary.status == "due")
                    .order_by(TreatmentSummary.number)
                    .with_for_update(skip_locked=True)
                )
            )
            instance = load_instance(session, instance_id)
            awaited = _awaited(instance.ready_tasks)
            claimed = {row.task_id for row in rows}
            missing = [task_id for task_id in awaited if task_id not in claimed]
            if missing:
                self._note_awaited(session, instance, rows, missing, now)
            closed = [self._close(session, instance, row, now) for row in rows if row.task_id not in awaited]
            if any(closed):
                instance.updated_at = now
                save_instance(session, instance)

    def _note_awaited(
        self,
        session: Session,
        instance: InstanceRecord,
        rows: list[TreatmentSummary],
        missing: list[str],
        now: datetime,
    ) -> None:
        """Rows for the waiting tasks that have none (a row noted before rows were keyed by task is
        given the task of its phase); each task's own data, read from the restored workflow. A state that
        cannot be restored (held in an incident by the step runner) is left: noted once it is put right."""
        try:
            workflow = self.instances.steps.restore(session, instance)
        except (ConflictError, WorkflowError):
            self._remember_unreadable(instance)
            return
        self._unreadable.pop(instance.id, None)
        self.instances.steps.remember(instance, workflow)
        today = now.astimezone(self.zone).date()
        for task_id in missing:
            task = _task_in(workflow, task_id)
            if task is None:
                continue  # the summary names a task the state has not: the next step rewrites the summary
            data = task.data
            phase, ended = _own_phase(data), _ended_on(data, today)
            legacy = _match_legacy(rows, phase, ended)
            if legacy is not None:
                legacy.task_id = task_id
                continue
            row = TreatmentSummary(
                id=str(uuid.uuid4()),
                instance_id=instance.id,
                number=_next_number(session, instance.id),
                phase=phase,
                ended_on=ended,
                due_by=due_by(ended),
                status="due",
                opened_at=now,
                task_id=task_id,
            )
            session.add(row)
            session.flush()  # the next row's number counts this one

    @staticmethod
    def _close(session: Session, instance: InstanceRecord, row: TreatmentSummary, now: datetime) -> bool:
        """The row's task waits no more: written (an older diagram, without the operator), or the
        instance ended or moved on without it. Returns whether an overdue task closed (an event)."""
        completed = (
            InstanceEvent.task_id == row.task_id if row.task_id is not None else InstanceEvent.at >= row.opened_at
        )
        written = session.execute(
            select(InstanceEvent.at, InstanceEvent.actor)
            .where(
                InstanceEvent.instance_id == row.instance_id,
                InstanceEvent.type == "task_completed",
                InstanceEvent.element == WRITE_ELEMENT,
                completed,
            )
            .order_by(InstanceEvent.seq.desc())
        ).first()
        if written is not None:
            row.status, row.written_at, row.written_by = "written", written[0], written[1]
        else:
            row.status = "closed"
        if row.overdue_at is None or row.closed_at is not None:
            return False
        row.closed_at = now
        append_event(
            session,
            instance,
            "summary_overdue_closed",
            at=now,
            actor=ENGINE_ACTOR,
            pathway_version=instance.pathway_version,
            payload={"summary": row.id, "number": row.number, "phase": row.phase, "outcome": row.status},
        )
        return True

    def _open_overdue(self, summary_id: str, now: datetime, today: date) -> int:
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            row = session.scalars(
                select(TreatmentSummary)
                .where(
                    TreatmentSummary.id == summary_id,
                    TreatmentSummary.status == "due",
                    TreatmentSummary.due_by < today,
                    TreatmentSummary.overdue_at.is_(None),
                )
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return 0  # written, closed or opened by another worker meanwhile
            instance = load_instance(session, row.instance_id)
            try:
                _, data = self.instances.read(session, row.instance_id)
            except (ConflictError, WorkflowError):
                # Its state cannot be restored (an incident holds it): the task opens all the same, on the
                # team's work list, rather than stopping the scan (and the worker) at this instance.
                data = {}
            row.overdue_at, row.assignee = now, _named_contact(data)
            append_event(
                session,
                instance,
                "summary_overdue",
                at=now,
                actor=ENGINE_ACTOR,
                pathway_version=instance.pathway_version,
                payload={
                    "summary": row.id,
                    "number": row.number,
                    "phase": row.phase,
                    "ended_on": row.ended_on.isoformat(),
                    "due_by": row.due_by.isoformat(),
                },
            )
            instance.updated_at = now
            save_instance(session, instance)
            return 1
