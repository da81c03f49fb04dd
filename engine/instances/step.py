"""The step: everything the engine does to one instance between two persisted states.

Every trigger -- completing a task, delivering a message, firing timers, retrying an incident,
suspending, resuming, cancelling, migrating to a new version -- is a step, and runs through one
public protocol, :class:`StepRunner`::

    load  ->  restore  ->  act  ->  advance  ->  save
    (row)     (workflow)   (the     (run the     (state, ready tasks, next timer,
                           trigger)  workflow)    events: one guarded write)

:meth:`StepRunner.run` is that whole path as one unit of work (what most triggers need); a trigger
that must pick its instance inside the transaction (the timer worker) or create one (start) uses
:meth:`StepRunner.open` / :meth:`StepRunner.begin`, :meth:`Step.advance` and
:meth:`StepRunner.save` itself.

Incidents. Anything that goes wrong while the workflow runs is the diagram's (or a service's)
fault, not the request's: the instance is saved in the ``error`` status with an incident naming the
element and the error's type, and can be retried once the cause is fixed. Only errors about the
request itself (data that fails a form, a conflict, something not found) are raised to the caller,
and then nothing of the step is written. Incident messages never quote values: CarePath's own
errors are written to carry none, and any other exception is reported by its type alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event, data_digest, take_pending_events, trail_key_of
from engine.clock import Clock
from engine.db.models import PathwayVersion
from engine.db.session import note_outcome, unit_of_work
from engine.decisions import (
    DECISION_PROPERTY,
    DecisionTable,
    evaluate_decision,
    record_decision_evaluation,
    table_from_json,
)
from engine.errors import (
    CarePathError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    StaleVersionError,
    UnsafeExpressionError,
    WorkflowError,
    translate_workflow_errors,
)
from engine.expressions import SafeEnvironment
from engine.instances.cache import LatestVersion, LatestVersionCache, WorkflowCache
from engine.instances.store import (
    ConflictMapper,
    InstanceRecord,
    load_instance,
    load_latest_version,
    load_spec,
    save_instance,
)
from engine.instances.view import InstanceView, Status, instance_view
from engine.settings import Settings
from engine.spiff import patches, serializer, workflows
from engine.spiff.compaction import compact
from engine.spiff.timers import TimerWatch

__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_STEP_TASKS",
    "REQUEST_ERRORS",
    "STATE_UNREADABLE",
    "ServiceOperator",
    "Step",
    "StepContext",
    "StepRunner",
    "StepScriptEngine",
]

# Errors about the request, raised to the caller (nothing is written); anything else raised while
# the workflow runs becomes an incident on the instance.
REQUEST_ERRORS = (InvalidInputError, ConflictError, NotFoundError, PermissionDeniedError)
# Tasks one step may complete. SpiffWorkflow hides tasks past a depth of 1000 and then reports an
# automatic loop as completed (LIBRARY_NOTES), so the bound stays well below; no clinical step
# runs hundreds of automatic tasks.
MAX_STEP_TASKS = 500
MAX_CALL_DEPTH = 25  # call activities and subprocesses inside each other
SYSTEM_ACTOR = "engine"
# The code of the problem a step or read raises for an instance whose stored state cannot be read
# (engine.db.stored_state): 409, and the step path holds the instance in an incident.
STATE_UNREADABLE = "state-unreadable"


@dataclass
class StepContext:
    """What service operators may use during a step (the same transaction as the step)."""

    session: Session
    instance: InstanceRecord
    clock: Clock
    actor: str
    pathway_version: str
    # Events operators record, appended after the workflow has run (type, element, payload).
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)

    def record(self, event_type: str, element: str | None, payload: dict[str, Any]) -> None:
        """Ask for an event on the instance's trail once the step has run (no patient values)."""
        self.events.append((event_type, element, payload))


# An operator gets the step, the task and its evaluated parameters, and returns JSON-able data
# stored in the task's result variable.
ServiceOperator = Callable[[StepContext, Any, dict[str, Any]], Any]


class StepScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine with the safe environment and CarePath's service operators."""

    def __init__(self, environment: Any, operators: Mapping[str, ServiceOperator], context: StepContext) -> None:
        super().__init__(environment=environment)
        self.operators = operators
        self.context = context

    def run_decision(self, task: Any) -> dict[str, Any]:
        """Evaluate a business rule task's decision table (kept on its spec when the pathway was
        deployed) against the task data, record the evaluation and a ``decision_evaluated`` event
        (ids only), and return the outputs to set (``engine.spiff.patches``, ``safe-decisions``).

        Raises:
            WorkflowError: the task carries no decision table, or the table's hit policy was broken.
            ExpressionError: a cell failed while running.
        """
        properties = (getattr(task.task_spec, "extensions", None) or {}).get("properties", {})
        text = properties.get(DECISION_PROPERTY)
        element = str(task.task_spec.bpmn_id)
        if text is None:
            message = "the business rule task carries no decision table: deploy the pathway again"
            raise WorkflowError(message, [Problem(message, element=element)])
        outcome = evaluate_decision(_decision_table(text), dict(task.data), self.environment)
        instance = self.context.instance
        evaluation_id = record_decision_evaluation(
            self.context.session,
            outcome,
            created_at=self.context.clock.now(),
            pathway_id=instance.pathway_id,
            pathway_version=self.context.pathway_version,
            instance_id=instance.id,
            task_id=str(task.id),
            element=element,
        )
        self.context.record(
            "decision_evaluated",
            element,
            {
                "evaluation_id": evaluation_id,
                "decision": outcome.table.decision_id,
                "table_version": outcome.table.digest,
                "matched": outcome.matched,
            },
        )
        return outcome.outputs

    def call_service(self, task: Any, **kwargs: Any) -> str:
        name = kwargs.get("operation_name")
        operator = self.operators.get(str(name))
        if operator is None:
            raise WorkflowError(
                f"unknown service operator {name!r}",
                [Problem(f"unknown service operator {name!r}", element=task.task_spec.bpmn_id)],
            )
        params = {key: value["value"] for key, value in (kwargs.get("operation_params") or {}).items()}
        try:
            return json.dumps(operator(self.context, task, params))
        except CarePathError:
            raise
        except Exception as exc:  # an operator's own failure (network, service down) is an incident
            message = f"service {name!r} failed: {type(exc).__name__}"
            raise WorkflowError(message, [Problem(message, element=task.task_spec.bpmn_id)]) from exc


@functools.lru_cache(maxsize=64)
def _decision_table(text: str) -> DecisionTable:
    """A stored table, parsed once per process (tables are immutable, keyed by their text)."""
    return table_from_json(text)


@dataclass
class Step:
    """One step in progress: the instance row, its restored workflow and the operators' context."""

    runner: StepRunner
    context: StepContext
    workflow: Any
    workflow_changed: bool = False  # the state must be saved again (set by advance, cancel, migrate)

    @property
    def session(self) -> Session:
        return self.context.session

    @property
    def instance(self) -> InstanceRecord:
        return self.context.instance

    @property
    def actor(self) -> str:
        return self.context.actor

    def digest(self, data: Any) -> str:
        """What an event records of ``data``: keyed with the trail key when the deployment has one
        (:func:`engine.audit.data_digest`)."""
        return data_digest(data, trail_key_of(self.session))

    def record(
        self,
        event_type: str,
        *,
        element: str | None = None,
        task_id: str | None = None,
        payload: dict[str, Any] | None = None,
        actor: str | None = None,
        pathway_version: str | None = None,
    ) -> None:
        """Append an event to the instance's trail now (written by the save, in this transaction)."""
        append_event(
            self.session,
            self.instance,
            event_type,
            at=self.runner.clock.now(),
            actor=actor or self.actor,
            pathway_version=pathway_version or self.context.pathway_version,
            element=element,
            task_id=task_id,
            payload=payload,
        )

    def advance(self, action: Callable[[], None], *, watch_timers: bool = True) -> None:
        """Run the workflow (``action`` drives it), then note its status, incident and events.

        ``watch_timers``: record the timers that fire during the step (the worker records its own).
        """
        instance, now = self.instance, self.runner.clock.now()
        watch = TimerWatch(self.workflow) if watch_timers else None
        with patches.clock_in_effect(self.runner.clock), _task_bound(self.workflow, self.runner.max_step_tasks):
            incident = _run(action, self.workflow, now.isoformat())
        for timer in watch.fired() if watch is not None else ():
            # Timers are the system's doing, whoever's step happened to run them.
            self.context.record("timer_fired", timer.element, timer.details())
        for event_type, element, payload in self.context.events:
            actor = SYSTEM_ACTOR if event_type == "timer_fired" and watch is not None else None
            self.record(event_type, element=element, payload=payload, actor=actor)
        self.context.events.clear()
        if incident is not None:
            instance.status, instance.incident = Status.ERROR, json.dumps(incident)
            self.record(
                "error",
                element=incident["element"],
                actor=SYSTEM_ACTOR,
                payload={"message": incident["message"], "kind": incident["kind"]},
            )
        elif self.workflow.is_completed() and instance.status == Status.RUNNING:
            instance.status = Status.COMPLETED
            # Named by the end reached (the care completed, or a death): the reason is in the trail.
            self.record("completed", element=workflows.terminating_end_event(self.workflow), actor=SYSTEM_ACTOR)
        for observe in self.runner.observers:
            observe(self.workflow)
        compact(self.workflow)  # finished history lives in the event trail, not the state (engine.spiff.compaction)
        self.workflow_changed = True


@contextlib.contextmanager
def _task_bound(workflow: Any, limit: int) -> Iterator[None]:
    """Let SpiffWorkflow's engine steps run at most ``limit`` automatic tasks in this step (and none
    more than :data:`MAX_CALL_DEPTH` subprocesses deep), however
    the trigger drives them; the next one raises WorkflowError (an incident on that task, which stays
    ready for a retry) instead of running: a diagram that loops without waiting (an automatic loop,
    a process calling itself, a timer due on every refresh) never spins inside a request.

    Counted with the ``will_complete_task`` callback of the workflow's own engine-step round, which
    ``do_engine_steps`` looks up on the workflow each round (so a trigger holding that method counts too).
    """
    started = 0
    engine_round = workflow._do_engine_steps

    def bounded(will_complete_task: Any = None, did_complete_task: Any = None) -> Any:
        def before(task: Any) -> None:
            nonlocal started
            started += 1
            message = None
            if started > limit:
                message = f"the step ran {limit} tasks without waiting for a person, a message or a timer"
            elif getattr(task.workflow, "depth", 0) > MAX_CALL_DEPTH:  # each level costs more than the last
                message = f"subprocesses nested more than {MAX_CALL_DEPTH} deep: does a process call itself?"
            if message is not None:
                raise WorkflowError(message, [Problem(message, element=task.task_spec.bpmn_id or task.task_spec.name)])
            if will_complete_task is not None:
                will_complete_task(task)

        return engine_round(before, did_complete_task)

    workflow._do_engine_steps = bounded  # this step only: the class's method is back afterwards
    try:
        yield
    finally:
        del workflow._do_engine_steps


def _run(action: Callable[[], None], workflow: Any, at: str) -> dict[str, Any] | None:
    """Run ``action``; return the incident it raised (None when it ran through).

    Raises:
        The request errors of :data:`REQUEST_ERRORS`, unchanged.
    """
    try:
        with translate_workflow_errors():
            action()
    except UnsafeExpressionError as exc:  # the diagram's text, not the request: an incident saying which construct
        element = exc.problems[0].element if exc.problems and exc.problems[0].element else _failing_element(workflow)
        return {"element": element, "message": exc.message, "kind": type(exc).__name__, "at": at}
    except REQUEST_ERRORS:
        raise
    except CarePathError as exc:  # expressions, services, rules, the library's run-time errors
        element = exc.problems[0].element if exc.problems and exc.problems[0].element else _failing_element(workflow)
        return {"element": element, "message": exc.message, "kind": type(exc).__name__, "at": at}
    except Exception as exc:  # noqa: BLE001 - any other failure inside the workflow is an incident
        # Its text may quote values (a KeyError's key, a TypeError's operand): the type alone is kept.
        element = _task_element_in(exc) or _failing_element(workflow)
        message = f"{type(exc).__name__} while running {element or 'the pathway'}"
        return {"element": element, "message": message, "kind": type(exc).__name__, "at": at}
    return None


def _task_element_in(exc: BaseException) -> str | None:
    """The element of the innermost SpiffWorkflow task the exception passed through, if any."""
    found = None
    frame = exc.__traceback__
    while frame is not None:
        for name in ("my_task", "task"):
            candidate = frame.tb_frame.f_locals.get(name)
            if isinstance(candidate, Task):
                found = candidate
        frame = frame.tb_next
    return str(found.task_spec.bpmn_id or found.task_spec.name) if found is not None else None


def _failing_element(workflow: Any) -> str | None:
    """The element that failed: a task in ERROR, else the automatic task that was about to run."""
    failed = workflows.error_tasks(workflow)
    if failed:
        return str(failed[0].task_spec.bpmn_id or failed[0].task_spec.name)
    for part in (workflow, *workflow.subprocesses.values()):
        for task in part.tasks.values():
            if task.state & (TaskState.READY | TaskState.STARTED) and not task.task_spec.manual:
                return str(task.task_spec.bpmn_id or task.task_spec.name)
    return None


# What a trigger does inside a step; returning False means it found nothing to do (nothing is saved).
Act = Callable[[Step], bool | None]


class StepRunner:
    """Runs steps: load -> restore -> act -> advance -> save, one guarded write per step.

    Concurrent steps on one instance are serialised by its revision (optimistic locking): the
    loser gets :class:`~engine.errors.StaleVersionError` and nothing of its work is kept.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: Clock,
        operators: Mapping[str, ServiceOperator],
        cache: WorkflowCache | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.operators = dict(operators)
        self.cache = cache or WorkflowCache()
        self.versions = LatestVersionCache()  # cleared by the facade when this process deploys
        self.max_step_tasks = MAX_STEP_TASKS
        # Called with each step's workflow after it ran and before compaction, to read what the step
        # took (scenario coverage, engine.scenarios); an observer must not change the workflow.
        self.observers: list[Callable[[Any], None]] = []

    # --- the whole step as one unit of work ---------------------------------------------------

    def run(
        self,
        instance_id: str,
        actor: str,
        act: Act,
        *,
        expected_version: int | None = None,
        allowed: Collection[str] = (Status.RUNNING,),
        refusal: str | None = None,
    ) -> InstanceView | None:
        """Load the instance, restore it, ``act`` on it and save it, in one unit of work.

        The instance as this process last committed it is used without reading the row; its save
        is guarded by the revision, so if another process changed it since, the step runs again
        from the database. Returns the instance's view after the step, or None when ``act``
        found nothing to do.

        Raises:
            NotFoundError: no such instance.
            StaleVersionError: ``expected_version`` is not the current revision, or a concurrent
                step won.
            ConflictError: the instance's status is not in ``allowed`` (``refusal`` says what it cannot be).
            Whatever request error ``act`` raises (nothing is written then).
        """
        cached = self.cache.take_latest(instance_id)
        if cached is not None and cached[0].status in allowed and expected_version in (None, cached[0].revision):
            try:
                return self._run_once(instance_id, actor, act, expected_version, allowed, refusal, cached)
            except CarePathError:
                pass  # possibly a copy that fell behind: run again from the database
        try:
            return self._run_once(instance_id, actor, act, expected_version, allowed, refusal, None)
        except ConflictError as exc:
            if any(problem.code == STATE_UNREADABLE for problem in exc.problems):
                self.hold_unreadable(instance_id)
            raise

    def hold_unreadable(self, instance_id: str) -> None:
        """Put an instance whose stored state cannot be read in ``error``, with an incident and an
        ``error`` event, in a unit of work of its own; the stored bytes are kept as they are (for
        whoever restores the row from a backup). Nothing is written if it is already held or ended.
        """
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            instance = load_instance(session, instance_id)
            if instance.unreadable_state is None or instance.status not in (Status.RUNNING, Status.SUSPENDED):
                return
            now = self.clock.now()
            message = f"{instance.unreadable_state}: restore the instance's row from a backup, then retry"
            instance.status = Status.ERROR
            instance.incident = json.dumps(
                {"element": None, "message": message, "kind": "UnreadableStateError", "at": now.isoformat()}
            )
            instance.updated_at = now
            append_event(
                session,
                instance,
                "error",
                at=now,
                actor=SYSTEM_ACTOR,
                pathway_version=instance.pathway_version,
                payload={"message": message, "kind": "UnreadableStateError"},
            )
            save_instance(session, instance)
        self.cache.take_latest(instance_id)

    def _run_once(
        self,
        instance_id: str,
        actor: str,
        act: Act,
        expected_version: int | None,
        allowed: Collection[str],
        refusal: str | None,
        cached: tuple[InstanceRecord, Any] | None,
    ) -> InstanceView | None:
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            if cached is not None:
                step = self.resume(session, cached[0], cached[1], actor)
            else:
                step = self.open(
                    session, instance_id, actor, expected_version=expected_version, allowed=allowed, refusal=refusal
                )
            if act(step) is False:
                take_pending_events(session)  # nothing of a discarded step is written
                session.rollback()
                return None
            self.save(step)
            view = self.view(step)
            note_outcome(session, instance_id)
        self.cache.put(step.instance, step.workflow)  # only once the step is committed
        return view

    # --- the parts, for triggers that run their own unit of work -----------------------------------

    def open(
        self,
        session: Session,
        instance_id: str,
        actor: str,
        *,
        expected_version: int | None = None,
        allowed: Collection[str] | None = None,
        refusal: str | None = None,
    ) -> Step:
        """Load and restore an instance in the caller's transaction.

        Raises:
            NotFoundError: no such instance.
            StaleVersionError: ``expected_version`` given and not the current revision.
            ConflictError: ``allowed`` given and the instance's status is not in it.
        """
        instance = load_instance(session, instance_id)
        if expected_version is not None and instance.revision != expected_version:
            raise StaleVersionError(
                f"instance is at version {instance.revision}, not {expected_version}: reload it and try again"
            )
        if allowed is not None and instance.status not in allowed:
            detail = f" (incident at {json.loads(instance.incident)['element']})" if instance.incident else ""
            raise ConflictError(f"instance is {instance.status}{detail}; {refusal or 'it cannot be changed now'}")
        context = self._context(session, instance, actor)
        return Step(self, context, self.restore(session, instance, context))

    def resume(self, session: Session, instance: InstanceRecord, workflow: Any, actor: str) -> Step:
        """A step on an instance and workflow already in hand (the cached copy of a warm step)."""
        context = self._context(session, instance, actor)
        workflow.script_engine = self._script_engine(context)  # the script engine is per step
        return Step(self, context, workflow)

    def begin(
        self,
        session: Session,
        version: PathwayVersion | LatestVersion,
        patient_ref: str,
        actor: str,
        data: dict[str, Any] | None,
        placement: tuple[str, str],
    ) -> Step:
        """A new instance of ``version`` with its start data and ``started`` event, not yet run or stored,
        in ``placement`` (its organisation and care team)."""
        now = self.clock.now()
        instance = InstanceRecord(
            id=str(uuid.uuid4()),
            pathway_id=version.pathway_id,
            pathway_version_id=version.id,
            pathway_version=version.version,
            patient_ref=patient_ref,
            status=Status.RUNNING,
            state="",
            revision=1,
            next_due_at=None,
            incident=None,
            event_seq=0,
            event_head="0" * 64,
            created_at=now,
            updated_at=now,
            one_per_patient=not self.settings.allow_concurrent_instances,
            organisation=placement[0],
            care_team=placement[1],
        )
        context = self._context(session, instance, actor)
        specs = workflows.specs_for(version.version, lambda: load_spec(session, version.id))
        workflow = workflows.new_workflow(specs, self._script_engine(context))
        if data:
            workflow.task_tree.data.update(data)
            workflow.data.update(data)
        return Step(self, context, workflow)

    def restore(self, session: Session, instance: InstanceRecord, context: StepContext | None = None) -> Any:
        """The instance's workflow: the cached one if it is at this revision, else restored from its row."""
        context = context or self._context(session, instance, "reader")
        cached = self.cache.take(instance.id, instance.revision, instance.pathway_version)
        if cached is not None:
            cached.script_engine = self._script_engine(context)
            return cached
        if instance.unreadable_state is not None:
            message = (
                f"{instance.unreadable_state}; the instance cannot run or be shown until its row is restored "
                "from a backup (a step holds it in an incident)"
            )
            raise ConflictError(message, [Problem(message, code=STATE_UNREADABLE)])
        specs = workflows.specs_for(instance.pathway_version, lambda: load_spec(session, instance.pathway_version_id))
        return workflows.restore(specs, instance.state, self._script_engine(context))

    def settle(self, step: Step) -> None:
        """Set the row's state, ready-task summary and next due time from the workflow, if it changed."""
        instance, workflow = step.instance, step.workflow
        if step.workflow_changed:
            instance.state = serializer.dump_state(workflow)
            live = instance.status in (Status.RUNNING, Status.SUSPENDED)  # suspended: valid on resume
            instance.ready_tasks = workflows.ready_task_summary(workflow) if live else None
            instance.notice_contacts = workflows.notice_contacts(workflow) if live else None
            instance.next_due_at = workflows.next_due_at(workflow)
            step.workflow_changed = False
        if instance.status in (Status.COMPLETED, Status.CANCELLED):
            instance.pathway_check = None  # an ended instance waits for no check (engine.pathway_checks)
        instance.updated_at = self.clock.now()

    def save(self, step: Step) -> None:
        """Write the step: the state (when the workflow changed), the row and its events, one guarded write.

        When the state changed, the step's newest event records its digest (``engine.audit``).

        Raises:
            StaleVersionError: another transaction changed the instance since it was read.
        """
        state_changed = step.workflow_changed
        self.settle(step)
        save_instance(step.session, step.instance, state_changed=state_changed)

    def view(self, step: Step) -> InstanceView:
        return instance_view(step.instance, step.workflow)

    def remember(self, instance: InstanceRecord, workflow: Any) -> None:
        """Keep a committed instance's workflow for the next step or read of it."""
        self.cache.put(instance, workflow)

    def latest_version(self, session: Session, pathway_id: str) -> PathwayVersion:
        """The pathway's active version (the one activated last: engine.pathways.versions).

        Raises: NotFoundError (no version of the pathway is deployed and active).
        """
        version = session.scalars(
            select(PathwayVersion)
            .where(PathwayVersion.pathway_id == pathway_id, PathwayVersion.activated_at.is_not(None))
            .order_by(PathwayVersion.activated_at.desc(), PathwayVersion.id.desc())
            .limit(1)
        ).first()
        if version is None:
            raise NotFoundError(f"no version of pathway {pathway_id!r} is deployed and active")
        return version

    def version_to_start(self, session: Session, pathway_id: str) -> LatestVersion:
        """The version a new instance starts on: the active one (activated last), from :attr:`versions`
        while it is fresh (a version another process activated is seen within ``versions.seconds``).

        Raises: NotFoundError (no version of the pathway is deployed and active).
        """
        cached = self.versions.get(pathway_id)
        if cached is not None:
            return cached
        found = load_latest_version(session, pathway_id)
        if found is None:
            raise NotFoundError(f"no version of pathway {pathway_id!r} is deployed and active")
        version = LatestVersion(found[0], pathway_id, found[1], found[2])
        self.versions.put(version)
        return version

    def warm_up(self, session: Session, pathway_id: str) -> None:
        """Put the pathway's latest version and its restored specs (called processes too) in this
        process's caches, so the first start or step of it parses nothing (a server's warm-up).

        Raises: NotFoundError (no version of the pathway is deployed).
        """
        version = self.version_to_start(session, pathway_id)
        specs = workflows.specs_for(version.version, lambda: load_spec(session, version.id))
        for name in specs.subprocess_specs:
            specs.subprocess_specs[name]  # restored on first use: use each once

    def _context(self, session: Session, instance: InstanceRecord, actor: str) -> StepContext:
        return StepContext(session, instance, self.clock, actor, instance.pathway_version)

    def _script_engine(self, context: StepContext) -> StepScriptEngine:
        environment = SafeEnvironment(
            self.clock, max_steps=self.settings.expression_max_steps, max_seconds=self.settings.expression_max_seconds
        )
        return StepScriptEngine(environment, self.operators, context)
