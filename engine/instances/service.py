"""Use cases on pathway instances: start, read, complete tasks, suspend, resume, cancel, retry, messages.

Each public method is one unit of work: it opens a session, does its work and commits in one place
(:func:`engine.db.session.unit_of_work`); on any error nothing is written. Concurrent changes to the
same instance are serialised by the instance's revision (optimistic locking): the loser gets
:class:`~engine.errors.StaleVersionError` and nothing of its work is kept.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event, data_digest
from engine.clock import Clock, SystemClock
from engine.db.models import InstanceEvent, PathwayVersion
from engine.db.session import read_only, unit_of_work
from engine.errors import (
    CarePathError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    Problem,
    StaleVersionError,
    TaskDataError,
    TaskNotReadyError,
)
from engine.instances.cache import WorkflowCache
from engine.instances.forms import check_form_data
from engine.instances.step import ServiceOperator, StepContext, make_step_engine, run_step
from engine.instances.store import (
    ConflictMapper,
    InstanceRecord,
    insert_instances,
    load_instance,
    load_spec,
    save_instance,
)
from engine.instances.timers import TimerWatch
from engine.instances.view import (
    CANCELLED,
    COMPLETED,
    ERROR,
    RUNNING,
    SUSPENDED,
    InstanceView,
    instance_view,
    validate_patient_ref,
)
from engine.settings import Settings
from engine.spiff import patches, serializer, workflows
from engine.spiff.compaction import compact

__all__ = ["InstanceView", "PathwayService", "validate_patient_ref"]

class PathwayService:
    """The engine's entry point for running pathway instances."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        clock: Clock | None = None,
        operators: Mapping[str, ServiceOperator] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.clock = clock or SystemClock()
        self.operators: dict[str, ServiceOperator] = dict(operators or {})
        self.workflows = WorkflowCache()

    # --- reading ----------------------------------------------------------------------------

    def get(self, instance_id: str) -> InstanceView:
        """Raises: NotFoundError."""
        with read_only(self.sessions) as session:
            return self._view(*self._read_workflow(session, instance_id))

    def ready_tasks(self, instance_id: str) -> list[dict[str, Any]]:
        """Raises: NotFoundError."""
        return self.get(instance_id).ready_tasks

    def instance_data(self, instance_id: str) -> dict[str, Any]:
        """The data the instance has accumulated (start data and every form), also once it ended.

        Patient data: for documents and screens, never for logs or events. Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            return workflows.accumulated_data(self._read_workflow(session, instance_id)[1])

    def read(self, session: Session, instance_id: str) -> tuple[InstanceView, dict[str, Any]]:
        """The view and the accumulated data of an instance, in the caller's (read-only) session,
        so a document reads them in the same snapshot as the rest. Raises: NotFoundError."""
        instance, workflow = self._read_workflow(session, instance_id)
        return self._view(instance, workflow), workflows.accumulated_data(workflow)

    def _read_workflow(self, session: Session, instance_id: str) -> tuple[InstanceRecord, Any]:
        instance = self._instance(session, instance_id)
        workflow = self._restore(session, instance)
        self._remember(instance, workflow)
        return instance, workflow

    # --- starting ----------------------------------------------------------------------------

    def start(self, pathway_id: str, patient_ref: str, actor: str, data: dict[str, Any] | None = None) -> InstanceView:
        """Start the latest version of a pathway for a patient.

        Raises:
            InvalidInputError: bad patient reference or start data that is not an object.
            NotFoundError: no such pathway deployed.
        """
        return self.start_many(pathway_id, [patient_ref], actor, data)[0]

    def start_many(self, pathway_id: str, patient_refs: list[str], actor: str,
                   data: dict[str, Any] | None = None) -> list[InstanceView]:
        """Start the latest version of a pathway for several patients in one unit of work (all or none).

        For bulk loads (a clinic list, a migration from another system, load tests).

        Raises:
            InvalidInputError: a bad patient reference or start data that is not an object.
            NotFoundError: no such pathway deployed.
        """
        for patient_ref in patient_refs:
            validate_patient_ref(patient_ref)
        if data is not None and not isinstance(data, dict):
            raise InvalidInputError("start data must be a JSON object", [Problem("must be an object", field="/data")])
        with unit_of_work(self.sessions) as session:
            version = self._latest_version(session, pathway_id)
            started = [self._start_one(session, version, patient_ref, actor, copy.deepcopy(data))
                       for patient_ref in patient_refs]
            insert_instances(session, [instance for instance, _ in started])  # one multi-row INSERT
            views = [self._view(instance, workflow) for instance, workflow in started]
        for instance, workflow in started:
            self._remember(instance, workflow)
        return views

    def _start_one(self, session: Session, version: PathwayVersion, patient_ref: str, actor: str,
                   data: dict[str, Any] | None) -> tuple[InstanceRecord, Any]:
        now = self.clock.now()
        instance = InstanceRecord(
            id=str(uuid.uuid4()), pathway_id=version.pathway_id, pathway_version_id=version.id,
            pathway_version=version.version, patient_ref=patient_ref, status=RUNNING, state="", revision=1,
            next_due_at=None, incident=None, event_seq=0, event_head="0" * 64, created_at=now, updated_at=now,
        )
        context = self._context(session, instance, actor)
        specs = workflows.specs_for(version.version, lambda: version.spec)
        workflow = workflows.new_workflow(specs, self._script_engine(context))
        if data:
            workflow.task_tree.data.update(data)
            workflow.data.update(data)
        append_event(session, instance, "started", at=now, actor=actor, pathway_version=version.version,
                     payload={"data_digest": data_digest(data or {})})
        self._advance(context, workflow, workflow.do_engine_steps)
        return instance, workflow

    # --- tasks -----------------------------------------------------------------------------------

    def complete_task(self, instance_id: str, task_id: str, data: dict[str, Any], actor: str,
                      expected_version: int | None = None) -> InstanceView:
        """Complete a ready task with data that must pass the task's form.

        Raises:
            NotFoundError: no such instance or task.
            StaleVersionError: ``expected_version`` is not the instance's current version, or a
                concurrent request changed the instance first.
            TaskNotReadyError: the task is already completed or not ready.
            ConflictError: the instance is suspended, cancelled, completed or in error.
            TaskDataError: the data fails the form's schema (every failing field is named).
        """
        if not isinstance(data, dict):
            raise TaskDataError("task data must be a JSON object", [Problem("must be an object", field="/")])
        return self._change(instance_id, expected_version, actor,
                            lambda ctx, wf: self._complete(ctx, wf, task_id, data))

    def _complete(self, context: StepContext, workflow: Any, task_id: str, data: dict[str, Any]) -> None:
        try:
            task = workflows.task_by_id(workflow, task_id)
        except NotFoundError:
            # Finished history is compacted out of the live state; the event trail remembers it.
            done = context.session.scalar(select(InstanceEvent.id).where(
                InstanceEvent.instance_id == context.instance.id, InstanceEvent.task_id == task_id,
                InstanceEvent.type == "task_completed").limit(1))
            if done is not None:
                raise TaskNotReadyError(f"task {task_id} is completed, not ready") from None
            raise
        form = workflows.form_json(task)
        if form is not None:
            check_form_data(form, data)
        info = workflows.task_info(task)
        append_event(context.session, context.instance, "task_completed", at=self.clock.now(), actor=context.actor,
                     pathway_version=context.pathway_version, element=info.element, task_id=info.id,
                     payload={"data_digest": data_digest(data), "task": info.name})
        task.set_data(**data)

        def run() -> None:
            task.run()
            workflow.do_engine_steps()

        self._advance(context, workflow, run)

    # --- lifecycle -------------------------------------------------------------------------------

    def suspend(self, instance_id: str, actor: str, reason: str = "",
                expected_version: int | None = None) -> InstanceView:
        """Raises: NotFoundError, StaleVersionError, ConflictError (not running)."""
        return self._set_status(instance_id, actor, expected_version, "suspended", {RUNNING, ERROR}, SUSPENDED, reason)

    def resume(self, instance_id: str, actor: str, expected_version: int | None = None) -> InstanceView:
        """Raises: NotFoundError, StaleVersionError, ConflictError (not suspended)."""
        return self._set_status(instance_id, actor, expected_version, "resumed", {SUSPENDED}, RUNNING, "")

    def cancel(self, instance_id: str, actor: str, reason: str = "",
               expected_version: int | None = None) -> InstanceView:
        """Raises: NotFoundError, StaleVersionError, ConflictError (already ended)."""
        return self._set_status(instance_id, actor, expected_version, "cancelled", {RUNNING, SUSPENDED, ERROR},
                                CANCELLED, reason)

    def _set_status(self, instance_id: str, actor: str, expected_version: int | None, event: str,
                    allowed: set[str], new_status: str, reason: str) -> InstanceView:
        with self._conflicts_mapped(), unit_of_work(self.sessions) as session:
            instance = self._instance(session, instance_id, lock_version=expected_version)
            if instance.status not in allowed:
                raise ConflictError(f"instance is {instance.status}; cannot be {event}")
            workflow = self._restore(session, instance)
            if new_status == CANCELLED:
                workflow.cancel()
                instance.state, instance.ready_tasks = serializer.dump_state(workflow), None
            # A suspended or resumed instance keeps its incident until it is retried.
            if new_status == RUNNING and instance.incident:
                new_status = ERROR
            instance.status = new_status
            instance.updated_at = self.clock.now()
            append_event(session, instance, event, at=instance.updated_at, actor=actor,
                         pathway_version=instance.pathway_version, payload={"reason": reason} if reason else {})
            save_instance(session, instance)
            return self._view(instance, workflow)

    def retry(self, instance_id: str, actor: str, expected_version: int | None = None) -> InstanceView:
        """Run the failed element of an instance in error again.

        Raises: NotFoundError, StaleVersionError, ConflictError (no incident).
        """

        def again(context: StepContext, workflow: Any) -> None:
            failed = workflows.error_tasks(workflow)
            append_event(context.session, context.instance, "retried", at=self.clock.now(), actor=context.actor,
                         pathway_version=context.pathway_version,
                         element=json.loads(context.instance.incident or "{}").get("element"))
            context.instance.incident = None
            context.instance.status = RUNNING

            def run() -> None:
                from SpiffWorkflow.util.task import TaskState

                for task in failed:
                    task._set_state(TaskState.READY)
                workflow.do_engine_steps()

            self._advance(context, workflow, run)

        return self._change(instance_id, expected_version, actor, again, allowed={ERROR})

    # --- messages -------------------------------------------------------------------------------

    def send_message(self, name: str, actor: str, *, patient_ref: str | None = None, instance_id: str | None = None,
                     payload: dict[str, Any] | None = None) -> list[InstanceView]:
        """Deliver a message to the instances of one patient (or one instance) waiting for it.

        Raises:
            InvalidInputError: neither (or both) of patient_ref and instance_id given.
            MessageNotDeliverableError: no running instance of that patient is waiting for it.
        """
        from engine.instances.messages import send_message

        return send_message(self, name, actor, patient_ref=patient_ref, instance_id=instance_id, payload=payload)

    # --- internals ----------------------------------------------------------------------------------

    def _change(self, instance_id: str, expected_version: int | None, actor: str,
                change: Callable[[StepContext, Any], None], allowed: frozenset[str] | set[str] = frozenset({RUNNING}),
                ) -> InstanceView:
        cached = self.workflows.take_latest(instance_id)
        if cached is not None and cached[0].status in allowed \
                and expected_version in (None, cached[0].revision):
            # The instance as this process last committed it: no read. The save is guarded by the
            # revision, so if another process changed it since, the save fails; any failure here
            # may come from a copy that fell behind, so the step runs again from the database.
            try:
                return self._change_once(instance_id, expected_version, actor, change, allowed, cached)
            except CarePathError:
                pass
        return self._change_once(instance_id, expected_version, actor, change, allowed, None)

    def _change_once(self, instance_id: str, expected_version: int | None, actor: str,
                     change: Callable[[StepContext, Any], None], allowed: frozenset[str] | set[str],
                     cached: tuple[InstanceRecord, Any] | None) -> InstanceView:
        with self._conflicts_mapped(), unit_of_work(self.sessions) as session:
            if cached is not None:
                instance, workflow = cached
                context = self._context(session, instance, actor)
                workflow.script_engine = self._script_engine(context)  # the script engine is per step
            else:
                instance = self._instance(session, instance_id, lock_version=expected_version)
                if instance.status not in allowed:
                    detail = f" (incident at {json.loads(instance.incident)['element']})" if instance.incident else ""
                    raise ConflictError(f"instance is {instance.status}{detail}; it cannot be changed now")
                context = self._context(session, instance, actor)
                workflow = self._restore(session, instance, context)
            change(context, workflow)
            save_instance(session, instance)  # the revision check: a concurrent winner makes this fail
            view = self._view(instance, workflow)
        self._remember(instance, workflow)  # only once the change is committed
        return view

    def _remember(self, instance: InstanceRecord, workflow: Any) -> None:
        self.workflows.put(instance, workflow)

    def _advance(self, context: StepContext, workflow: Any, action: Callable[[], None], *,
                 watch_timers: bool = True) -> None:
        """Run the workflow, then save its state, status, incident and the events it produced.

        ``watch_timers``: record the timers that fire during the step (the worker records its own).
        """
        instance, now = context.instance, self.clock.now()
        watch = TimerWatch(workflow) if watch_timers else None
        with patches.clock_in_effect(self.clock):
            outcome = run_step(action, lambda: _first_error_element(workflow), now.isoformat())
        for timer in watch.fired() if watch is not None else ():
            context.events.append(("timer_fired", timer.element, {"due_at": timer.due_at}))
        for event_type, element, payload in context.events:
            append_event(context.session, instance, event_type, at=now, actor=context.actor,
                         pathway_version=context.pathway_version, element=element, payload=payload)
        context.events.clear()
        if outcome.incident is not None:
            instance.status, instance.incident = ERROR, json.dumps(outcome.incident)
            append_event(context.session, instance, "error", at=now, actor="engine",
                         pathway_version=context.pathway_version, element=outcome.incident["element"],
                         payload={"message": outcome.incident["message"], "kind": outcome.incident["kind"]})
        elif workflow.is_completed() and instance.status == RUNNING:
            instance.status = COMPLETED
            append_event(context.session, instance, "completed", at=now, actor="engine",
                         pathway_version=context.pathway_version)
        compact(workflow)  # finished history lives in the event trail, not the state (engine.spiff.compaction)
        instance.state = serializer.dump_state(workflow)
        instance.ready_tasks = workflows.ready_task_summary(workflow) if instance.status == RUNNING else None
        instance.next_due_at = workflows.next_due_at(workflow)
        instance.updated_at = now

    def _context(self, session: Session, instance: InstanceRecord, actor: str) -> StepContext:
        return StepContext(session, instance, self.clock, actor, instance.pathway_version)

    def _script_engine(self, context: StepContext) -> Any:
        return make_step_engine(self.clock, self.operators, context, self.settings.expression_max_steps,
                                self.settings.expression_max_seconds)

    def _restore(self, session: Session, instance: InstanceRecord, context: StepContext | None = None) -> Any:
        context = context or self._context(session, instance, "reader")
        cached = self.workflows.take(instance.id, instance.revision, instance.pathway_version)
        if cached is not None:
            cached.script_engine = self._script_engine(context)  # the script engine is per step
            return cached
        specs = workflows.specs_for(instance.pathway_version, lambda: load_spec(session, instance.pathway_version_id))
        return workflows.restore(specs, instance.state, self._script_engine(context))

    def _instance(self, session: Session, instance_id: str, lock_version: int | None = None) -> InstanceRecord:
        """Raises: NotFoundError, StaleVersionError (``lock_version`` given and not the current one)."""
        instance = load_instance(session, instance_id)
        if lock_version is not None and instance.revision != lock_version:
            raise StaleVersionError(
                f"instance is at version {instance.revision}, not {lock_version}: reload it and try again")
        return instance

    def _latest_version(self, session: Session, pathway_id: str) -> PathwayVersion:
        version = session.scalars(
            select(PathwayVersion).where(PathwayVersion.pathway_id == pathway_id)
            .order_by(PathwayVersion.deployed_at.desc(), PathwayVersion.id.desc()).limit(1)
        ).first()
        if version is None:
            raise NotFoundError(f"no pathway {pathway_id!r} is deployed")
        return version

    def _view(self, instance: InstanceRecord, workflow: Any) -> InstanceView:
        return instance_view(instance, workflow)

    @staticmethod
    def _conflicts_mapped() -> Any:
        return ConflictMapper()


def _first_error_element(workflow: Any) -> str | None:
    failed = workflows.error_tasks(workflow)
    return failed[0].task_spec.bpmn_id if failed else None
