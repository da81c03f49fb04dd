"""The personalised care and support plan: proposed interventions and referrals, and their status.

A pathway's service task with operator ``carepath.rules`` evaluates the task's holistic needs
assessment with a named rule set. The evaluation is stored (engine.rules.store) and every
referral, intervention and piece of information it proposes becomes a care plan item with status
``proposed``, linked to that evaluation, so an auditor can go from any referral to the need, the
rule, its version and the pathway version. The operator ``carepath.careplan`` records the patient's
decisions (agreed / declined) and what matters to them. Later status changes (referred, completed)
come from clinicians through :class:`CarePlanService`.

Statuses and the moves between them are in :mod:`engine.careplan.moves`; a referral goes
``proposed -> agreed -> referred -> accepted -> first_contact -> completed`` (or ``service_declined``,
``did_not_attend``, ``withdrawn``), each move with who and when in the item's history and a
``care_plan_updated`` event. By when a service must accept a referral, one open referral per service
and escalating the late ones are in :mod:`engine.careplan.referrals`.

An **emergency** referral never waits for the plan to be agreed: it is created ``referred`` (by the
engine, the moment the rules propose it) and the pathway opens the acute oncology task at once. The
patient can still decline it afterwards; agreeing to it later changes nothing.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import append_event
from engine.careplan.health_system import health_system_operators
from engine.careplan.moves import OPEN_REFERRAL, STATUSES, history, move_item, next_statuses, record_history
from engine.careplan.patient_status import patient_status_operators
from engine.careplan.reassessment import reassessment_operators
from engine.careplan.referrals import find_open_referral, raise_urgency
from engine.careplan.summaries import summary_operators
from engine.clock import Clock
from engine.db.models import CarePlanItem, CarePlanNote, PathwayInstance
from engine.db.session import read_only, unit_of_work
from engine.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    Problem,
    RuleFileError,
    TaskDataError,
    WorkflowError,
)
from engine.instances.step import ServiceOperator, StepContext
from engine.instances.store import ConflictMapper, load_instance, save_instance
from engine.rules import Assessment, deteriorated, evaluate_and_record, latest_scores
from engine.rules.diagnoses import pathway_site
from engine.settings import ReferralTimeframes
from engine.webhooks import note_referral

__all__ = ["STATUSES", "CarePlanItem", "CarePlanNote", "CarePlanService", "care_plan_operators", "next_statuses"]

EMERGENCY = "emergency"  # the urgency that never waits for agreement (engine.rules.model.URGENCIES)


def _items_from_outcomes(outcomes: Any) -> list[tuple[str, str, str | None, str | None, tuple[str, ...]]]:
    items: list[tuple[str, str, str | None, str | None, tuple[str, ...]]] = []
    for referral in outcomes.referrals:
        items.append(("referral", referral.intervention, referral.service, referral.urgency, referral.rules))
    for intervention in outcomes.interventions:
        items.append(("intervention", intervention.code, None, None, intervention.rules))
    for info in outcomes.information:
        items.append(("information", info.code, None, None, info.rules))
    return items


def care_plan_operators(
    registry: Any,
    timeframes: ReferralTimeframes | None = None,
    *,
    active_only: bool = False,
    health_system: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, ServiceOperator]:
    """The service operators pathways use: ``carepath.rules``, ``carepath.careplan``, ``carepath.referrals``,
    the patient status and warning sign operators of :mod:`engine.careplan.patient_status`, and
    ``carepath.end_of_treatment_summary`` (:mod:`engine.careplan.summaries`).
    ``timeframes``: by when referrals must be accepted (default: :class:`ReferralTimeframes`' defaults).
    ``active_only`` (four eyes): ``carepath.rules`` evaluates each rule set's active version
    (:mod:`engine.rules.activation`), not the folder's current text. ``health_system``: the patient's health
    system for an instance's data, as the documents resolve it, for ``carepath.health_system``
    (:mod:`engine.careplan.health_system`)."""
    timeframes = timeframes or ReferralTimeframes()
    return {
        "carepath.rules": functools.partial(_propose, registry, active_only, timeframes),
        "carepath.careplan": functools.partial(_decide, timeframes),
        "carepath.referrals": functools.partial(_referrals_sent, timeframes),
        **patient_status_operators(registry, active_only=active_only),
        **reassessment_operators(),
        **summary_operators(),
        **health_system_operators(health_system),
    }


def _step_recorder(context: StepContext, element: str) -> Any:
    return lambda payload: context.record("care_plan_updated", element, payload)


def _propose(
    registry: Any,
    active_only: bool,
    timeframes: ReferralTimeframes,
    context: StepContext,
    task: Any,
    params: dict[str, Any],
) -> dict[str, Any]:
    """carepath.rules: evaluate the task's assessment and add the proposals to the care plan."""

    ruleset = params.get("ruleset")
    if not isinstance(ruleset, str):
        raise InvalidInputError(
            "carepath.rules needs a 'ruleset' parameter naming a rule set",
            [Problem("missing rule set name", element=task.task_spec.bpmn_id)],
        )
    # The change since the last assessment: the facts carry it (rules may test it), and a
    # deterioration is returned to the pathway, which assesses the needs again soon.
    previous = latest_scores(context.session, context.instance.id)
    try:
        assessment = Assessment.from_dict(
            {"concerns": params.get("concerns") or {}, "context": params.get("context") or {}, "previous": previous}
        )
    except InvalidInputError as exc:  # the submitted assessment is wrong: refuse it, change nothing
        raise TaskDataError(exc.message, exc.problems) from exc
    # A diagnosis naming no site ("Invasive ductal carcinoma") is the site of the patient's own pathway.
    assessment = replace(assessment, pathway_site=pathway_site(context.instance.pathway_id))
    try:
        evaluation = evaluate_and_record(
            context.session,
            registry,
            ruleset,
            assessment,
            clock=context.clock,
            instance_id=context.instance.id,
            task_id=str(task.id),
            active_only=active_only,
        )
    except (NotFoundError, RuleFileError) as exc:  # the diagram or the rule files are at fault
        raise WorkflowError(
            f"rule set {ruleset!r} cannot be used: {exc.message}",
            [Problem(str(p), element=task.task_spec.bpmn_id) for p in exc.problems]
            or [Problem(exc.message, element=task.task_spec.bpmn_id)],
        ) from exc
    now = context.clock.now()
    created: list[dict[str, Any]] = []
    raised: list[dict[str, Any]] = []
    element = task.task_spec.bpmn_id
    for kind, code, service, urgency, rules in _items_from_outcomes(evaluation.outcomes):
        existing = find_open_referral(context.session, context.instance.id, service) if kind == "referral" else None
        if existing is not None:  # one open referral per service: raise it, never list it twice
            was = raise_urgency(context.session, existing, urgency, evaluation.id, list(rules), now, timeframes)
            if was is not None:
                _record_item(
                    context,
                    element,
                    existing,
                    change="urgency_raised",
                    previous_urgency=was,
                    evaluation_id=evaluation.id,
                )
                note_referral(context.session, context.instance.id, existing.id, existing.status, created=False)
            entry = {**_entry(existing), "rules": list(rules), "existing": True, "raised_from": was}
            if urgency == EMERGENCY:
                # An emergency found now is acted on now, whether it raised the open referral or the
                # referral already was one: a fever on chemotherapy weeks after a spinal cord compression
                # referral was merged into it (already an emergency, in first contact) and opened nothing.
                # Listed with the new items, it opens the acute oncology task as a new emergency does.
                if was is None:
                    _record_item(
                        context, element, existing, change="emergency_proposed_again", evaluation_id=evaluation.id
                    )
                created.append(entry)
            else:
                raised.append(entry)
            continue
        # An emergency is referred at once, by the engine: it never waits for the plan's agreement.
        status = "referred" if urgency == EMERGENCY else "proposed"
        item = CarePlanItem(
            id=str(uuid.uuid4()),
            instance_id=context.instance.id,
            evaluation_id=evaluation.id,
            task_id=str(task.id),
            kind=kind,
            code=code,
            service=service,
            urgency=urgency,
            rules=json.dumps(list(rules)),
            status=status,
            created_at=now,
            updated_at=now,
            updated_by="engine",
            accept_by=timeframes.due(now, urgency) if status == "referred" else None,
        )
        context.session.add(item)
        record_history(context.session, item, "created", now, "engine", evaluation_id=evaluation.id, rules=list(rules))
        if kind == "referral":
            note_referral(context.session, context.instance.id, item.id, status, created=True)
            if status == "referred":  # a referral made: service measures count from this event
                _record_item(context, element, item, change="created")
        created.append({**_entry(item), "rules": list(rules)})
    version = evaluation.ruleset_version
    emergencies = sum(1 for item in created if item["urgency"] == EMERGENCY)
    context.record(
        "rules_evaluated",
        task.task_spec.bpmn_id,
        {
            "evaluation_id": evaluation.id,
            "ruleset": ruleset,
            "ruleset_version": version,
            "proposed": len(created) - emergencies,
            **({"emergency_referred": emergencies} if emergencies else {}),
            **({"proposed_again": len(raised)} if raised else {}),
        },
    )
    return {
        "evaluation_id": evaluation.id,
        "ruleset": ruleset,
        "ruleset_version": version,
        "items": created,
        "open_referrals": raised,
        "deteriorated": [] if previous is None else deteriorated(previous, assessment.concerns),
    }


def _entry(item: CarePlanItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "code": item.code,
        "service": item.service,
        "urgency": item.urgency,
        "status": item.status,
    }


def _record_item(context: StepContext, element: str, item: CarePlanItem, **extra: Any) -> None:
    """A ``care_plan_updated`` event for one item that was not moved by :func:`move_item`."""
    context.record(
        "care_plan_updated",
        element,
        {
            "item": item.id,
            "code": item.code,
            "status": item.status,
            "service": item.service,
            "urgency": item.urgency,
            **extra,
        },
    )


def _decide(timeframes: ReferralTimeframes, context: StepContext, task: Any, params: dict[str, Any]) -> dict[str, Any]:
    """carepath.careplan: record the patient's decisions and what matters to them."""
    decisions = params.get("decisions") or {}
    if not isinstance(decisions, dict):
        raise InvalidInputError(
            "decisions must map care plan item ids to agreed/declined",
            [Problem("expected an object", field="/decisions")],
        )
    agreed: list[str] = []
    declined: list[str] = []
    problems: list[Problem] = []
    for item_id, decision in sorted(decisions.items()):
        try:
            item = _item(context.session, context.instance.id, item_id)
            if not (decision == "agreed" and _already_acted_on(item)):
                _move(
                    context.session,
                    item,
                    decision,
                    context.actor,
                    context.clock.now(),
                    _step_recorder(context, task.task_spec.bpmn_id),
                    timeframes,
                )
        except (NotFoundError, ConflictError, InvalidInputError) as exc:
            problems.append(Problem(exc.message, field=f"/decisions/{item_id}"))
            continue
        (agreed if decision == "agreed" else declined).append(item_id)
    if problems:  # decisions come from the task's form: refuse them whole, change nothing
        raise TaskDataError("some decisions cannot be recorded", problems)
    what_matters = params.get("what_matters")
    if isinstance(what_matters, str) and what_matters.strip():
        note = context.session.get(CarePlanNote, context.instance.id)
        if note is None:
            note = CarePlanNote(instance_id=context.instance.id, what_matters="", updated_at=context.clock.now())
            context.session.add(note)
        note.what_matters, note.updated_at = what_matters.strip(), context.clock.now()
    context.record("care_plan_updated", task.task_spec.bpmn_id, {"agreed": len(agreed), "declined": len(declined)})
    return {"agreed": agreed, "declined": declined}


def _referrals_sent(
    timeframes: ReferralTimeframes, context: StepContext, task: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """carepath.referrals: the agreed referrals were sent, so they become *referred*.

    ``items`` names the care plan items agreed in this round (``care_plan['agreed']``); of those,
    the referrals still agreed move to referred, by the person who completed the task that says
    they were sent. Interventions and information are not referrals and stay agreed.
    """
    item_ids = params.get("items") or []
    if not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids):
        raise InvalidInputError(
            "carepath.referrals needs 'items', the ids of the agreed care plan items",
            [Problem("expected a list of item ids", element=task.task_spec.bpmn_id)],
        )
    now = context.clock.now()
    referred = []
    for item_id in sorted(set(item_ids)):
        item = _item(context.session, context.instance.id, item_id)
        if item.kind == "referral" and item.status == "agreed":
            _move(
                context.session,
                item,
                "referred",
                context.actor,
                now,
                _step_recorder(context, task.task_spec.bpmn_id),
                timeframes,
            )
            referred.append(item_id)
    context.record("care_plan_updated", task.task_spec.bpmn_id, {"referred": len(referred)})
    return {"referred": referred}


def _already_acted_on(item: CarePlanItem) -> bool:
    """An emergency referral made before the plan was agreed: agreeing to it now changes nothing."""
    return (
        item.urgency == EMERGENCY
        and item.kind == "referral"
        and item.status in (*OPEN_REFERRAL, "did_not_attend", "completed")
    )


def _item(session: Session, instance_id: str, item_id: str) -> CarePlanItem:
    item = session.get(CarePlanItem, item_id)
    if item is None or item.instance_id != instance_id:
        raise NotFoundError(f"no care plan item {item_id!r} in this instance")
    return item


def _move(
    session: Session,
    item: CarePlanItem,
    status: str,
    actor: str,
    at: datetime,
    record: Any,
    timeframes: ReferralTimeframes,
    reason: str | None = None,
) -> None:
    move_item(session, item, status, actor, at, record, reason)
    if status == "referred":  # sent now: the service's timeframe starts today
        item.accept_by, item.escalated_at = timeframes.due(at, item.urgency), None


@dataclass(frozen=True)
class CarePlan:
    instance_id: str
    patient_ref: str
    pathway_id: str
    pathway_version: str
    what_matters: str | None
    items: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class CarePlanService:
    """Reading a patient's care plan and moving its items on (referred, accepted, ... completed)."""

    def __init__(
        self, session_factory: sessionmaker[Session], clock: Clock, timeframes: ReferralTimeframes | None = None
    ) -> None:
        self.sessions = session_factory
        self.clock = clock
        self.timeframes = timeframes or ReferralTimeframes()

    def get(self, instance_id: str) -> CarePlan:
        """Raises: NotFoundError."""
        with read_only(self.sessions) as session:
            return self.read(session, instance_id)

    @staticmethod
    def read(session: Session, instance_id: str) -> CarePlan:
        """The care plan in the caller's (read-only) session, each item with its history and the moves
        it may make now. Raises: NotFoundError."""
        instance = session.get(PathwayInstance, instance_id)
        if instance is None:
            raise NotFoundError(f"no instance {instance_id!r}")
        items = session.scalars(
            select(CarePlanItem)
            .where(CarePlanItem.instance_id == instance_id)
            .order_by(CarePlanItem.created_at, CarePlanItem.kind, CarePlanItem.code)
        ).all()
        moves = history(session, [i.id for i in items])
        note = session.get(CarePlanNote, instance_id)
        return CarePlan(
            instance.id,
            instance.patient_ref,
            instance.pathway_id,
            instance.pathway_version.version,
            note.what_matters if note else None,
            [
                {**i.as_dict(), "next_statuses": list(next_statuses(i.status, i.kind)), "history": moves[i.id]}
                for i in items
            ],
        )

    def set_status(
        self, instance_id: str, item_id: str, status: str, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Move one item on (e.g. accepted when the service accepts the referral); ``reason``: a code,
        needed to reconsider a declined item (declined -> agreed).

        Raises: NotFoundError, InvalidInputError (unknown status, a reason that is not a code),
        ConflictError (not allowed now, or a reason needed).
        """
        with ConflictMapper(), unit_of_work(self.sessions) as session:
            instance = load_instance(session, instance_id)
            item = _item(session, instance_id, item_id)
            now = self.clock.now()

            def record(payload: dict[str, Any]) -> None:
                # The item, the instance's new revision and its event: one guarded write (the store).
                append_event(
                    session,
                    instance,
                    "care_plan_updated",
                    at=now,
                    actor=actor,
                    pathway_version=instance.pathway_version,
                    payload=payload,
                )

            _move(session, item, status, actor, now, record, self.timeframes, reason)
            instance.updated_at = now
            save_instance(session, instance)
            return {
                **item.as_dict(),
                "next_statuses": list(next_statuses(item.status, item.kind)),
                "history": history(session, [item.id])[item.id],
            }
