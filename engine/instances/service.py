"""Use cases on pathway instances: start, read, complete tasks, suspend, resume, cancel, retry, messages.

Each public method is one unit of work; every change runs as a step through the public
:class:`~engine.instances.step.StepRunner` (load -> restore -> act -> advance -> save), so on any
error nothing is written, and concurrent changes to the same instance are serialised by its
revision (the loser gets :class:`~engine.errors.StaleVersionError`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import check_reason, reason_problem
from engine.calendar import latest_today
from engine.care_teams import EVERYWHERE, TEAM_CHANGE_REASONS, CareScope, check_name
from engine.clock import Clock, SystemClock
from engine.db.models import InstanceEvent, PathwayVersion
from engine.db.session import note_outcome, read_only, unit_of_work
from engine.errors import (
    ConflictError,
    InstanceExistsError,
    InvalidInputError,
    NotFoundError,
    Problem,
    StaleVersionError,
    StartDataError,
    TaskDataError,
    TaskNotReadyError,
)
from engine.expressions.functions import ALLOWED_FUNCTIONS
from engine.instances import deaths, messages
from engine.instances.deaths import PatientDeathInfo, refuse_deceased
from engine.instances.forms import (
    check_form_data,
    check_read_only,
    check_start_data,
    with_health_system,
)
from engine.instances.step import ServiceOperator, Step, StepRunner
from engine.instances.store import (
    InstanceRecord,
    active_instance_of,
    insert_instances,
    is_second_active_instance,
    load_instance,
)
from engine.instances.view import (
    ENGINE_ACTOR,
    NOT_ENDED,
    SYNTHETIC_PREFIX,
    InstanceView,
    Status,
    instance_view,
    validate_patient_ref,
)
from engine.settings import Settings
from engine.spiff import workflows
from engine.spiff.form_keywords import CHOICE_LISTS, CHOICES

__all__ = ["InstanceView", "PathwayService", "validate_patient_ref"]

# A correction names a few fields by their plain names (what a diagram reads), never internals.
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_CORRECTED_FIELDS = 50


# The helpers a script's values may be worked out again with on a correction: those that read no clock.
_PURE_HELPERS = frozenset(name for name, helper in ALLOWED_FUNCTIONS.items() if not helper.uses_clock)


class PathwayService:
    """The engine's entry point for running pathway instances."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        clock: Clock | None = None,
        operators: Mapping[str, ServiceOperator] | None = None,
        *,
        health_system: Callable[[dict[str, Any]], str] | None = None,
        site_check: Callable[[str, dict[str, Any]], str | None] | None = None,
        choice_codes: Callable[[Session, str], frozenset[str]] | None = None,
    ) -> None:
        """``health_system``: the patient's health system for start data, recorded at the start when the
        data names none (the facade's resolves it as the documents do); without it, the deployment's.
        ``site_check(pathway_id, data)``: the cancer site the data's diagnosis names when it is not the
        pathway's own (engine.pathway_checks, from the rules' diagnoses vocabulary), kept on the instance until
        a clinician checks the pathway; without it, nothing is kept. ``choice_codes(session, name)``: the codes a
        form's field marked ``x-carepath-choices: name`` may hold (engine.spiff.form_keywords; the warning
        signs in use); without it, such a field is checked by its pattern alone."""
        self.settings = settings
        self.health_system = health_system
        self.site_check = site_check
        self.choice_codes = choice_codes
        self.sessions = session_factory
        self.clock = clock or SystemClock()
        self.steps = StepRunner(settings, session_factory, self.clock, operators or {})

    @property
    def operators(self) -> dict[str, ServiceOperator]:
        """The service operators steps may call, by name (a deployment or a test may add its own)."""
        return self.steps.operators

    # --- reading ----------------------------------------------------------------------------

    def get(self, instance_id: str) -> InstanceView:
        """Raises: NotFoundError."""
        with read_only(self.sessions) as session:
            return instance_view(*self._read_workflow(session, instance_id))

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
        return instance_view(instance, workflow), workflows.accumulated_data(workflow)

    def _read_workflow(self, session: Session, instance_id: str) -> tuple[InstanceRecord, Any]:
        instance = load_instance(session, instance_id)
        workflow = self.steps.restore(session, instance)
        self.steps.remember(instance, workflow)
        return instance, workflow

    # --- starting ----------------------------------------------------------------------------

    def start(
        self,
        pathway_id: str,
        patient_ref: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        organisation: str | None = None,
        care_team: str | None = None,
        pathway_checked: bool = False,
    ) -> InstanceView:
        """Start the latest version of a pathway for a patient looked after by ``care_team`` of
        ``organisation`` (each, when None, the deployment's default: :meth:`Settings.care_team_default`).
        ``pathway_checked``: the starter was told that the diagnosis names another site than the pathway's
        and confirmed the pathway (engine.pathway_checks); the ``started`` event records it.

        Raises:
            InvalidInputError: bad patient reference or start data that is not an object; an organisation
                or care team that is not an identifier, or not given where the deployment has no default.
            StartDataError: the start data fails the pathway's start data schema.
            InstanceExistsError: the patient already has a running instance of the pathway.
            PatientDeceasedError: the patient's death is recorded.
            NotFoundError: no such pathway deployed.
        """
        return self.start_many(
            pathway_id,
            [patient_ref],
            actor,
            data,
            organisation=organisation,
            care_team=care_team,
            pathway_checked=pathway_checked,
        )[0]

    def _site_check(self, pathway_id: str, data: dict[str, Any]) -> str | None:
        return self.site_check(pathway_id, data) if self.site_check is not None else None

    def placement(self, organisation: str | None, care_team: str | None) -> tuple[str, str]:
        """The organisation and care team a new instance gets: those given, else the deployment's defaults.

        Raises: InvalidInputError (not an identifier, or missing with no default).
        """
        default_organisation, default_team = self.settings.care_team_default()
        placed = []
        for value, default, field in (
            (organisation, default_organisation, "/organisation"),
            (care_team, default_team, "/care_team"),
        ):
            if value is None and default is None:
                raise InvalidInputError(
                    f"{field[1:]} is required",
                    [
                        Problem(
                            "name it: this deployment has no default (CAREPATH_DEFAULT_ORGANISATION, "
                            "CAREPATH_DEFAULT_CARE_TEAM)",
                            field=field,
                        )
                    ],
                )
            placed.append(check_name(default if value is None else value, field))
        return placed[0], placed[1]

    def start_many(
        self,
        pathway_id: str,
        patient_refs: list[str],
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        organisation: str | None = None,
        care_team: str | None = None,
        pathway_checked: bool = False,
    ) -> list[InstanceView]:
        """Start the latest version of a pathway for several patients in one unit of work (all or none).

        For bulk loads (a clinic list, a migration from another system, load tests). The start data
        must pass the version's start data schema, when it declares one; a patient may have one
        running (or suspended, or in error) instance of a pathway unless the deployment allows more
        (``Settings.allow_concurrent_instances``), which the database holds against concurrent starts.

        Raises:
            InvalidInputError: a bad patient reference (or one given twice), or start data that is
                not an object.
            StartDataError: the start data fails the pathway's start data schema (every field named).
            InstanceExistsError: a patient already has a running instance of the pathway.
            PatientDeceasedError: a patient's death is recorded (engine.instances.deaths).
            NotFoundError: no such pathway deployed.
        """
        for patient_ref in patient_refs:
            validate_patient_ref(patient_ref)
            if self.settings.sandbox and not patient_ref.startswith(SYNTHETIC_PREFIX):
                raise InvalidInputError(
                    "a sandbox runs synthetic patients only",
                    [
                        Problem(
                            f"must start with {SYNTHETIC_PREFIX} in sandbox mode (engine.sandbox)", field="/patient_ref"
                        )
                    ],
                )
        if len(set(patient_refs)) != len(patient_refs):
            raise InvalidInputError("a patient is named twice", [Problem("each patient once", field="/patient_refs")])
        if data is not None and not isinstance(data, dict):
            raise InvalidInputError("start data must be a JSON object", [Problem("must be an object", field="/data")])
        placement = self.placement(organisation, care_team)
        try:
            return self._start(pathway_id, patient_refs, actor, data, placement, pathway_checked)
        except IntegrityError as exc:
            if not is_second_active_instance(exc):
                raise
            # A concurrent start for one of these patients committed first: name its instance.
            with read_only(self.sessions) as session:
                existing = next(
                    filter(None, (active_instance_of(session, pathway_id, ref) for ref in patient_refs)), None
                )
            if existing is None:
                raise
            raise InstanceExistsError(
                "the patient already has a running instance of this pathway", instance_id=existing
            ) from exc

    def _start(
        self,
        pathway_id: str,
        patient_refs: list[str],
        actor: str,
        data: dict[str, Any] | None,
        placement: tuple[str, str],
        pathway_checked: bool = False,
    ) -> list[InstanceView]:
        started_payload: dict[str, Any] = {"pathway_checked": True} if pathway_checked else {}
        with unit_of_work(self.sessions) as session:
            version = self.steps.version_to_start(session, pathway_id)
            refuse_deceased(session, patient_refs)
            check_start_data(
                version.start_schema, data or {}, today=latest_today(self.clock.now())
            )  # and health_system
            # Recorded for the pathway's gateways and the documents alike (forms.with_health_system).
            given = data or {}
            resolve = self.health_system
            recorded = with_health_system(
                version.start_schema,
                given,
                (lambda: resolve(given)) if resolve is not None else (lambda: self.settings.health_system),
            )
            if not self.settings.allow_concurrent_instances:
                for patient_ref in patient_refs:
                    existing = active_instance_of(session, pathway_id, patient_ref)
                    if existing is not None:
                        raise InstanceExistsError(
                            "the patient already has a running instance of this pathway", instance_id=existing
                        )
            started = []
            for patient_ref in patient_refs:
                step = self.steps.begin(session, version, patient_ref, actor, copy.deepcopy(recorded), placement)
                step.instance.pathway_check = None if pathway_checked else self._site_check(pathway_id, given)
                step.record("started", payload={"data_digest": step.digest(data or {}), **started_payload})
                step.advance(step.workflow.do_engine_steps)
                started.append(step)
            for step in started:
                self.steps.settle(step)
            insert_instances(session, [step.instance for step in started])  # one multi-row INSERT
            views = [self.steps.view(step) for step in started]
            for view in views:
                note_outcome(session, view.id)
        for step in started:
            self.steps.remember(step.instance, step.workflow)
        return views

    # --- tasks -----------------------------------------------------------------------------------

    def _choices(self, session: Session, form: str | None) -> dict[str, frozenset[str]] | None:
        """The codes of each list a form's fields choose from (:data:`CHOICE_LISTS`), when it has such a field."""
        if self.choice_codes is None or form is None or CHOICES not in form:
            return None
        return {name: self.choice_codes(session, name) for name in CHOICE_LISTS}

    def complete_task(
        self, instance_id: str, task_id: str, data: dict[str, Any], actor: str, expected_version: int | None = None
    ) -> InstanceView:
        """Complete a ready task with data that must pass the task's form (a task without a form
        declares no fields, so it takes ``{}`` only).

        Raises:
            NotFoundError: no such instance or task.
            StaleVersionError: ``expected_version`` is not the instance's current version, or a
                concurrent request changed the instance first.
            TaskNotReadyError: the task is already completed or not ready.
            ConflictError: the instance is suspended, cancelled, completed or in error.
            TaskDataError: the data fails the form's schema, or names a field the form does not
                declare (code ``undeclared``); every failing field is named.
        """
        if not isinstance(data, dict):
            raise TaskDataError("task data must be a JSON object", [Problem("must be an object", field="/")])

        def complete(step: Step) -> None:
            task = self._ready_task(step, task_id)
            # A task without a form declares no fields: data sent to it would steer the pathway unasked.
            form = workflows.form_json(task)
            check_form_data(form, data, latest_today(self.clock.now()), self._choices(step.session, form))
            check_read_only(form, data, task.data)
            info = workflows.task_info(task)
            step.record(
                "task_completed",
                element=info.element,
                task_id=info.id,
                payload={"data_digest": step.digest(data), "task": info.name},
            )
            task.set_data(**data)

            def run() -> None:
                task.run()
                step.workflow.do_engine_steps()

            step.advance(run)

        return self._run(instance_id, actor, complete, expected_version)

    @staticmethod
    def _ready_task(step: Step, task_id: str) -> Any:
        """Raises: NotFoundError, TaskNotReadyError (also for a task compacted out after completion)."""
        try:
            return workflows.task_by_id(step.workflow, task_id)
        except NotFoundError:
            # Finished history is compacted out of the live state; the event trail remembers it.
            done = step.session.scalar(
                select(InstanceEvent.id)
                .where(
                    InstanceEvent.instance_id == step.instance.id,
                    InstanceEvent.task_id == task_id,
                    InstanceEvent.type == "task_completed",
                )
                .limit(1)
            )
            if done is not None:
                raise TaskNotReadyError(f"task {task_id} is completed, not ready") from None
            raise

    # --- lifecycle -------------------------------------------------------------------------------

    def suspend(
        self, instance_id: str, actor: str, reason: str | None = None, expected_version: int | None = None
    ) -> InstanceView:
        """Pause an instance; ``reason``, when given, is a code (recorded in the trail, so never free text).

        Raises: InvalidInputError (a reason that is not a code), NotFoundError, StaleVersionError,
            ConflictError (not running).
        """
        return self._set_status(
            instance_id, actor, expected_version, "suspended", {Status.RUNNING, Status.ERROR}, Status.SUSPENDED, reason
        )

    def resume(self, instance_id: str, actor: str, expected_version: int | None = None) -> InstanceView:
        """Raises: NotFoundError, StaleVersionError, ConflictError (not suspended)."""
        return self._set_status(
            instance_id, actor, expected_version, "resumed", {Status.SUSPENDED}, Status.RUNNING, None
        )

    def cancel(
        self, instance_id: str, actor: str, reason: str | None = None, expected_version: int | None = None
    ) -> InstanceView:
        """End an instance; ``reason``, when given, is a code (recorded in the trail, so never free text).

        Raises: InvalidInputError (a reason that is not a code), NotFoundError, StaleVersionError,
            ConflictError (already ended).
        """
        return self._set_status(
            instance_id,
            actor,
            expected_version,
            "cancelled",
            NOT_ENDED,
            Status.CANCELLED,
            reason,
        )

    def _set_status(
        self,
        instance_id: str,
        actor: str,
        expected_version: int | None,
        event: str,
        allowed: Collection[Status],
        new_status: Status,
        reason: str | None,
    ) -> InstanceView:
        code = check_reason(reason)  # before anything runs: free text never reaches the trail

        def move(step: Step) -> None:
            if new_status == Status.CANCELLED:
                step.workflow.cancel()
                step.workflow_changed = True
            # A suspended or resumed instance keeps its incident until it is retried.
            status = Status.ERROR if new_status == Status.RUNNING and step.instance.incident else new_status
            step.instance.status = status
            step.record(event, payload={"reason": code} if code else {})

        return self._run(instance_id, actor, move, expected_version, allowed, refusal=f"cannot be {event}")

    def retry(self, instance_id: str, actor: str, expected_version: int | None = None) -> InstanceView:
        """Run the failed element of an instance in error again.

        Raises: NotFoundError, StaleVersionError, ConflictError (no incident).
        """

        def again(step: Step) -> None:
            failed = workflows.error_tasks(step.workflow)
            step.record("retried", element=json.loads(step.instance.incident or "{}").get("element"))
            step.instance.incident = None
            step.instance.status = Status.RUNNING

            def run() -> None:
                for task in failed:
                    workflows.make_ready(task)
                step.workflow.do_engine_steps()

            step.advance(run)

        return self._run(instance_id, actor, again, expected_version, {Status.ERROR})

    # --- correcting data ---------------------------------------------------------------------------

    def correct_data(
        self, instance_id: str, data: dict[str, Any], reason: str, actor: str, expected_version: int | None = None
    ) -> InstanceView:
        """Correct an instance's data (a clinician's act, with a reason code): the fields given replace
        the instance's values where its next steps read them (a failed task is then retried with
        them). A waiting timer whose date is worked out from a corrected field is worked out again
        (:func:`engine.spiff.workflows.retime_timers`): the reviews and the survey that count from the date
        of diagnosis move with its correction. Nothing runs here (a timer moved into the past fires at
        the worker's next round); the event records the fields' names, a digest of the change, the
        reason code and the elements of the timers moved, never the values or the dates (and never free
        text, which could hold them).

        When the version declares a start data schema, only its fields may be corrected and the
        instance's values of them, corrected, must pass it.

        Raises:
            InvalidInputError: data that is not a non-empty object of at most 50 fields, field
                names that are not plain names, or a reason that is missing or not a code.
            StartDataError: the corrected values fail the start data schema (every field named).
            NotFoundError, StaleVersionError, ConflictError (the instance has ended).
        """
        _check_correction(data, reason)

        def correct(step: Step) -> None:
            schema = step.session.scalar(
                select(PathwayVersion.start_schema).where(PathwayVersion.id == step.instance.pathway_version_id)
            )
            if schema is not None:
                declared = json.loads(schema).get("properties", {})
                unknown = sorted(set(data) - set(declared))
                if unknown:
                    raise StartDataError(
                        "only the fields of the start data schema can be corrected",
                        [
                            Problem(
                                "not a field of the start data schema",
                                field=f"/data/{name}",
                                code="additionalProperties",
                            )
                            for name in unknown
                        ],
                    )
                current = workflows.accumulated_data(step.workflow)
                merged = {**{k: current[k] for k in declared if k in current}, **data}
                check_start_data(schema, merged, today=latest_today(self.clock.now()))
            else:
                check_start_data(None, data)  # a health_system of no section, as at the start
            # What a script worked out from a corrected field alone is worked out again (a review's due date
            # set from the date of diagnosis, as diagrams before the timers read the date themselves did).
            declared_fields = json.loads(schema).get("properties", {}) if schema is not None else {}
            derived = workflows.rederive(step.workflow, data, declared_fields, _PURE_HELPERS)
            workflows.correct_data(step.workflow, data)
            workflows.correct_data(step.workflow, derived, where_held=True)
            if "diagnosis" in data:  # a new diagnosis is checked against the pathway again
                accumulated = workflows.accumulated_data(step.workflow)
                step.instance.pathway_check = self._site_check(step.instance.pathway_id, accumulated)
            # The dates worked out from a corrected field move with it (the survey 18 months after diagnosis).
            moved = workflows.retime_timers(step.workflow, [*data, *derived])
            step.workflow_changed = True
            payload: dict[str, Any] = {"data_digest": step.digest(data), "fields": sorted(data), "reason": reason}
            if derived:  # the names only, as for the fields: never the values
                payload["recomputed"] = sorted(derived)
            if moved:
                payload["timers_moved"] = moved
            step.record("data_corrected", payload=payload)

        return self._run(
            instance_id,
            actor,
            correct,
            expected_version,
            NOT_ENDED,
            refusal="cannot have its data corrected",
        )

    def record_pathway_check(
        self,
        instance_id: str,
        actor: str,
        confirm: Callable[[str, dict[str, Any]], None],
        expected_version: int | None = None,
    ) -> InstanceView:
        """Record that a clinician checked the pathway against the diagnosis (``pathway_checked``, an event
        with no payload: never the diagnosis). ``confirm(pathway_id, data)`` is called with the instance's
        data in the same unit of work and raises when there is nothing (or something else) to confirm, so a
        diagnosis corrected meanwhile is never confirmed unseen (engine.pathway_checks). Nothing runs.

        Raises: whatever ``confirm`` raises; NotFoundError, StaleVersionError, ConflictError (ended).
        """

        def check(step: Step) -> None:
            confirm(step.instance.pathway_id, workflows.accumulated_data(step.workflow))
            step.instance.pathway_check = None
            step.record("pathway_checked", payload={})

        return self._run(
            instance_id,
            actor,
            check,
            expected_version,
            NOT_ENDED,
            refusal="cannot have its pathway checked",
        )

    def ask_pathway_check(self, instance_id: str) -> InstanceView | None:
        """Read an instance's diagnosis against its pathway as its start would have, for an instance that
        carries no pathway check (one started before the check existed: engine.pathway_checks.read_diagnoses).
        When the diagnosis names another site and no clinician has confirmed the pathway since the diagnosis
        was given (:func:`_confirmed_since_given`), the instance gets the check, and its trail a
        ``pathway_check_asked`` event with no payload (never the diagnosis, nor the site). Returns None,
        writing nothing, when there is nothing to ask or the instance has ended meanwhile. Nothing runs.

        Raises: StaleVersionError (the instance's own steps won three times over: read it later); RuleFileError
        (the diagnoses' vocabulary is invalid)."""

        def ask(step: Step) -> bool:
            if step.instance.pathway_check is not None:
                return False
            diagnosis = workflows.accumulated_data(step.workflow, ("diagnosis",))
            site = self._site_check(step.instance.pathway_id, diagnosis)
            if site is None or _confirmed_since_given(step.session, step.instance.id):
                return False
            step.instance.pathway_check = site
            step.record("pathway_check_asked", payload={})
            return True

        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                return self.steps.run(instance_id, ENGINE_ACTOR, ask, allowed=NOT_ENDED)
            except StaleVersionError:
                if attempt == attempts:
                    raise  # a step of its own committed meanwhile, each time: read it again
            except (ConflictError, NotFoundError):  # ended (or erased) since it was listed: it waits for no check
                return None
        return None

    # --- care teams ------------------------------------------------------------------------------

    def change_care_team(
        self, instance_id: str, care_team: str, reason: str, actor: str, expected_version: int | None = None
    ) -> InstanceView:
        """Move an instance to another care team of its organisation (never to another organisation: that
        is a new referral there). The ``care_team_changed`` event records the old and new team and the
        reason code (:data:`engine.care_teams.TEAM_CHANGE_REASONS`); no free text, no patient data.
        Any status: an ended instance's records move with the patient too. Nothing runs.

        Raises:
            InvalidInputError: a team that is not an identifier, or a reason not in the list.
            ConflictError: the instance is already in that team.
            NotFoundError, StaleVersionError.
        """
        check_name(care_team, "/care_team")
        if reason not in TEAM_CHANGE_REASONS:
            raise InvalidInputError(
                "unknown reason", [Problem(f"must be one of {', '.join(TEAM_CHANGE_REASONS)}", field="/reason")]
            )

        def move(step: Step) -> None:
            old = step.instance.care_team
            if old == care_team:
                raise ConflictError(f"the instance is already in care team {care_team!r}")
            step.instance.care_team = care_team
            step.record("care_team_changed", payload={"from": old, "to": care_team, "reason": reason})

        return self._run(instance_id, actor, move, expected_version, set(Status))

    # --- messages -------------------------------------------------------------------------------

    def send_message(
        self,
        name: str,
        actor: str,
        *,
        patient_ref: str | None = None,
        instance_id: str | None = None,
        payload: dict[str, Any] | None = None,
        scope: CareScope = EVERYWHERE,
    ) -> list[InstanceView]:
        """Deliver a message to the instances of one patient (or one instance) waiting for it, within the
        sender's ``scope`` (engine.care_teams).

        Raises:
            InvalidInputError: neither (or both) of patient_ref and instance_id given.
            MessageNotDeliverableError: no running instance of that patient is waiting for it.
        """
        return messages.send_message(
            self.steps, name, actor, patient_ref=patient_ref, instance_id=instance_id, payload=payload, scope=scope
        )

    def death_record(self, patient_ref: str) -> PatientDeathInfo | None:
        """The patient's death record (withdrawn or not), or None. Raises: InvalidInputError (bad reference)."""
        return deaths.death_of(self.steps, patient_ref)

    def withdraw_death(self, patient_ref: str, actor: str, reason: str) -> PatientDeathInfo:
        """Withdraw a death recorded in error, with a reason. Raises: InvalidInputError, NotFoundError."""
        return deaths.withdraw_death(self.steps, patient_ref, actor, reason)

    # --- internals ----------------------------------------------------------------------------------

    def _run(
        self,
        instance_id: str,
        actor: str,
        act: Any,
        expected_version: int | None,
        allowed: Collection[Status] | None = None,
        refusal: str | None = None,
    ) -> InstanceView:
        view = self.steps.run(
            instance_id,
            actor,
            act,
            expected_version=expected_version,
            allowed=allowed or {Status.RUNNING},
            refusal=refusal,
        )
        assert view is not None  # these acts always change the instance
        return view


def _confirmed_since_given(session: Session, instance_id: str) -> bool:
    """Whether a clinician confirmed the instance's pathway after its diagnosis was last given, by its trail:
    the newest of its start, its corrections of the diagnosis and its ``pathway_checked`` events decides (a
    start confirmed on the web page before the start recorded it counts as not confirmed: asked again)."""
    rows = session.execute(
        select(InstanceEvent.type, InstanceEvent.payload)
        .where(
            InstanceEvent.instance_id == instance_id,
            InstanceEvent.type.in_(("started", "data_corrected", "pathway_checked")),
        )
        .order_by(InstanceEvent.seq.desc())
    )
    for kind, text in rows:
        payload = json.loads(text)
        if kind == "pathway_checked":
            return True
        if kind == "started":
            return payload.get("pathway_checked") is True
        if "diagnosis" in payload.get("fields", ()):
            return False
    return False


def _check_correction(data: Any, reason: Any) -> None:
    """Raises: InvalidInputError naming every problem with a correction's shape (not its values)."""
    problems = []
    if not isinstance(data, dict) or not data:
        problems.append(Problem("must be an object with at least one field", field="/data"))
    elif len(data) > MAX_CORRECTED_FIELDS:
        problems.append(Problem(f"at most {MAX_CORRECTED_FIELDS} fields", field="/data"))
    else:
        problems += [
            Problem(
                "must be a plain name (a letter, then letters, digits or _; at most 64)",
                field="/data",
                code="field-name",
            )
            for name in data
            if not _FIELD_NAME.match(str(name))
        ]
    if reason is None or reason == "":
        problems.append(Problem("say why the data is corrected, as a code (e.g. entered_in_error)", field="/reason"))
    elif (problem := reason_problem(reason)) is not None:
        problems.append(problem)
    if problems:
        raise InvalidInputError("the correction cannot be used", problems)
