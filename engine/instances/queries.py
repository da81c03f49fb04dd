"""Read-only queries for front ends: instance lists, ready tasks across instances, event trails, rule
evaluations and their explanations.

Lists use keyset pagination on ``(created_at, id)``: a page never skips or repeats an instance
while others are started, and the cursor is opaque to callers (base64 of the last row's key).

At a national caseload (a million instances) a page must cost the same as on an empty database:
the cursor is a row-value comparison ``(created_at, id) > (:at, :id)``, which an index on the
filter columns followed by ``(created_at, id)`` answers with one range scan (the ``OR`` form it
replaced defeated every index); every filter, ``element`` included, is in the SQL, so the database
stops after ``limit + 1`` matching rows and a page is always full (an element is looked up in
``ready_task_elements``, whose index is in page order too); and a list reads no workflow
state (tens of kilobytes per row). A caller's care teams are a filter like the others
(:meth:`engine.care_teams.CareScope.condition`), answered by the indexes that begin with
``(organisation, care_team)``: a team the caller is not in is never read, so pages stay full.
``due_before`` is a range on ``next_due_at``: no index can give both that range and the
``(created_at, id)`` order, so such a page would walk the instances in creation order until enough
of them are due. A list of what falls due is therefore ordered by when it falls due,
``(next_due_at, id)`` (most overdue first), with a cursor of that pair, and the indexes on
``(next_due_at, id)`` and ``(status, next_due_at, id)`` make it one range scan too.
``bench/scale.py`` measures these queries and prints their plans.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, literal, select, tuple_
from sqlalchemy.orm import Session, defer, sessionmaker

from engine.access_log import saw
from engine.audit import TrailProblem, split_actor, verify_trail
from engine.care_teams import EVERYWHERE, CareScope
from engine.db.models import InstanceEvent, PathwayInstance, PathwayVersion, ReadyTaskElement
from engine.db.session import read_only
from engine.decisions import (
    DecisionExplanation,
    StoredDecisionEvaluation,
    explain_decision,
    get_decision_evaluation,
    list_decision_evaluations,
)
from engine.errors import InvalidInputError, NotFoundError, Problem
from engine.instances.service import PathwayService
from engine.instances.store import load_spec
from engine.instances.view import Status
from engine.rules import (
    RuleSetRegistry,
    StoredEvaluation,
    WhyExplanation,
    WhyNotExplanation,
    concern_trends,
    explain_evaluation,
    get_evaluation,
    list_evaluations,
)
from engine.spiff import workflows

__all__ = ["STATUSES", "InstanceFilter", "InstanceQueries", "Page"]

STATUSES = tuple(status.value for status in Status)
MAX_LIMIT = 100


@dataclass(frozen=True)
class InstanceFilter:
    """Which instances to list; every field is optional and they combine with AND.

    Raises:
        InvalidInputError: for an unknown status or a naive ``due_before``.
    """

    patient_ref: str | None = None
    pathway_id: str | None = None
    status: str | None = None
    due_before: datetime | None = None
    # Whose instances the caller reaches (engine.care_teams): a team the caller is not in is never listed.
    scope: CareScope = EVERYWHERE
    # Only instances that wait for a clinician to check their pathway against their diagnosis
    # (engine.pathway_checks: the row's pathway_check is set; an instance that ends has it cleared).
    pathway_check: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise InvalidInputError(
                "unknown status", [Problem(f"must be one of {', '.join(STATUSES)}", field="status")]
            )
        if self.due_before is not None and self.due_before.tzinfo is None:
            raise InvalidInputError(
                "due_before needs a time zone", [Problem("must be a date-time with a zone offset", field="due_before")]
            )


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    # A task list's: for each listed instance, what its checklists' safety notices are chosen by, as its
    # row keeps it (engine.spiff.workflows.notice_contacts; None: nothing kept). Not part of the page shown.
    notice_contacts: dict[str, str | None] = field(default_factory=dict)
    # A list's: the listed instances whose diagnosis names another site than their pathway's, not yet
    # checked by a clinician (engine.pathway_checks), with that site, as the row keeps it. Not part of the page.
    pathway_checks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


# A page in due order carries this mark in its cursor: a cursor of one order is refused by the other.
_DUE_ORDER = "due"


def _encode_cursor(at: datetime, instance_id: str, *, due_order: bool = False) -> str:
    key = [at.astimezone(UTC).isoformat(), instance_id]
    raw = json.dumps([_DUE_ORDER, *key] if due_order else key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, *, due_order: bool = False) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or (len(key) == 3 and key[0] == _DUE_ORDER) != due_order:
            raise ValueError("a cursor of another order")
        at, instance_id = key[1:] if due_order else key
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(instance_id, str):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "the cursor is not one this API returned", [Problem("is not a valid cursor", field="cursor")]
        ) from exc
    return when.astimezone(UTC), instance_id


def _as_bound(when: datetime) -> Any:
    """A cursor's time as a bound value of the column's type (a tuple comparison does not infer it)."""
    return literal(when, PathwayInstance.created_at.type)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("limit out of range", [Problem(f"must be between 1 and {MAX_LIMIT}", field="limit")])


def summary(instance: PathwayInstance) -> dict[str, Any]:
    """An instance without its ready tasks (listing does not restore workflows)."""
    return _summary(instance, instance.pathway_version.version)


# What a list shows of an instance, read as columns: building ORM objects (and their versions'
# objects) cost more of a page's CPU than its query (issue 19).
_LISTED = (
    PathwayInstance.id,
    PathwayInstance.pathway_id,
    PathwayVersion.version,
    PathwayInstance.patient_ref,
    PathwayInstance.status,
    PathwayInstance.revision,
    PathwayInstance.next_due_at,
    PathwayInstance.incident,
    PathwayInstance.created_at,
    PathwayInstance.updated_at,
    PathwayInstance.organisation,
    PathwayInstance.care_team,
    PathwayInstance.pathway_check,
)


def _pathway_checks(rows: list[Any]) -> dict[str, str]:
    """The listed rows' pending pathway checks (engine.pathway_checks), by instance id."""
    return {row.id: row.pathway_check for row in rows if row.pathway_check is not None}


def _summary(instance: Any, version: str) -> dict[str, Any]:
    return {
        "id": instance.id,
        "pathway_id": instance.pathway_id,
        "pathway_version": version,
        "patient_ref": instance.patient_ref,
        "status": instance.status,
        "version": instance.revision,
        "next_due_at": instance.next_due_at.isoformat() if instance.next_due_at else None,
        "incident": json.loads(instance.incident) if instance.incident else None,
        "created_at": instance.created_at.isoformat(),
        "updated_at": instance.updated_at.isoformat(),
        "organisation": instance.organisation,
        "care_team": instance.care_team,
    }


# What the work list reads of an instance (with _select's join to its version), as columns.
_WORKED = (
    PathwayInstance.id,
    PathwayInstance.pathway_id,
    PathwayInstance.patient_ref,
    PathwayInstance.revision,
    PathwayInstance.ready_tasks,
    PathwayInstance.notice_contacts,
    PathwayInstance.pathway_check,
    PathwayInstance.created_at,
    PathwayInstance.next_due_at,
    PathwayInstance.pathway_version_id,
    PathwayVersion.version,
)


def _stored_ready_tasks(session: Session, row: Any) -> list[workflows.TaskInfo] | None:
    """The ready tasks a row of ``_WORKED`` summarises (None: saved before summaries existed)."""
    if row.ready_tasks is None:
        return None
    specs = workflows.specs_for(row.version, lambda: load_spec(session, row.pathway_version_id))
    return workflows.tasks_from_summary(specs, row.ready_tasks)


# What the trail page shows of an event, read as columns (not ORM objects: see _LISTED).
_TRAIL = (
    InstanceEvent.seq,
    InstanceEvent.type,
    InstanceEvent.at,
    InstanceEvent.actor,
    InstanceEvent.pathway_version,
    InstanceEvent.element,
    InstanceEvent.task_id,
    InstanceEvent.payload,
    InstanceEvent.prev_hash,
    InstanceEvent.hash,
)


class InstanceQueries:
    """Listing and reading; each method is one read-only unit of work (or several service reads)."""

    def __init__(self, session_factory: sessionmaker[Session], service: PathwayService) -> None:
        self.sessions = session_factory
        self.service = service

    def find(self, where: InstanceFilter, cursor: str | None = None, limit: int = 50) -> Page:
        """Instances matching ``where``, oldest first; with ``due_before``, soonest due first.

        Raises: InvalidInputError (bad cursor or limit).
        """
        _check_limit(limit)
        with read_only(self.sessions) as session:
            rows = list(session.execute(self._select(where, cursor, limit, columns=_LISTED)))
            page = self._page([_summary(r, r.version) for r in rows[:limit]], rows, limit, due_order=_due_order(where))
            return replace(page, pathway_checks=_pathway_checks(rows[:limit]))

    def ready_tasks(
        self, where: InstanceFilter, element: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> Page:
        """Ready tasks of the running instances matching ``where`` (``limit`` instances per page).

        Read from the summary each instance row keeps of its ready tasks (one query, forms from
        the version's spec); an instance saved before summaries existed is restored instead.
        Pages are counted in instances; with ``element``, only instances with a ready task of
        that element are counted (read from ``ready_task_elements`` in SQL), so a page is full.
        An instance saved before summaries existed (``ready_tasks`` NULL) has no elements there:
        an element filter does not find it until its next step.

        Raises: InvalidInputError (bad cursor, limit or a status other than running).
        """
        _check_limit(limit)
        if where.status not in (None, Status.RUNNING):
            raise InvalidInputError(
                "only running instances have ready tasks", [Problem("must be running or absent", field="status")]
            )
        where = replace(where, status=Status.RUNNING)
        items: list[dict[str, Any]] = []
        with read_only(self.sessions) as session:
            rows = list(session.execute(self._select(where, cursor, limit, element, columns=_WORKED)))
            for row in rows[:limit]:
                tasks = _stored_ready_tasks(session, row)
                if tasks is None:
                    tasks = [workflows.TaskInfo(**task) for task in self.service.get(row.id).ready_tasks]
                items.extend(
                    {
                        **task.as_dict(),
                        "instance_id": row.id,
                        "instance_version": row.revision,
                        "pathway_id": row.pathway_id,
                        "patient_ref": row.patient_ref,
                    }
                    for task in tasks
                    if element is None or task.element == element
                )
        page = self._page(items, rows, limit, due_order=_due_order(where, element))
        return replace(
            page,
            notice_contacts={row.id: row.notice_contacts for row in rows[:limit]},
            pathway_checks=_pathway_checks(rows[:limit]),
        )

    def events(self, instance_id: str) -> list[dict[str, Any]]:
        """The event trail of one instance, oldest first.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            if session.get(PathwayInstance, instance_id) is None:
                raise NotFoundError(f"no instance {instance_id!r}")
            events = session.execute(
                select(*_TRAIL).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
            return [
                {
                    "seq": e.seq,
                    "type": e.type,
                    "at": e.at.isoformat(),
                    "actor": split_actor(e.actor)[0],
                    "on_behalf_of": split_actor(e.actor)[1],
                    "pathway_version": e.pathway_version,
                    "element": e.element,
                    "task_id": e.task_id,
                    "payload": json.loads(e.payload),
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in events
            ]

    def verify(self, instance_ids: list[str] | None = None) -> list[TrailProblem]:
        """Problems in the event trails (all instances, or those named); empty when intact."""
        with read_only(self.sessions) as session:
            return verify_trail(session, instance_ids)

    def evaluations(self, instance_id: str) -> list[dict[str, Any]]:
        """The rule evaluations made for one instance, oldest first (without the rule texts).

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            if session.get(PathwayInstance, instance_id) is None:
                raise NotFoundError(f"no instance {instance_id!r}")
            return [
                {
                    "id": r.id,
                    "ruleset": r.ruleset_name,
                    "ruleset_version": r.ruleset_version,
                    "catalogue_version": r.catalogue_version,
                    "created_at": r.created_at.isoformat(),
                    "instance_id": r.instance_id,
                    "task_id": r.task_id,
                    "firings": list(r.fired),
                    "outcomes": dict(r.outcomes),
                }
                for r in list_evaluations(session, instance_id=instance_id)
            ]

    def concern_trends(self, instance_id: str) -> dict[str, Any]:
        """Each concern's scores over the instance's assessments, oldest first, and the concerns that
        deteriorated at the latest one (engine.rules.trends).

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            if session.get(PathwayInstance, instance_id) is None:
                raise NotFoundError(f"no instance {instance_id!r}")
            return {"instance_id": instance_id, **concern_trends(session, instance_id).as_dict()}

    def decision_evaluations(self, instance_id: str) -> list[dict[str, Any]]:
        """The decision table evaluations made for one instance, oldest first.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            if session.get(PathwayInstance, instance_id) is None:
                raise NotFoundError(f"no instance {instance_id!r}")
            return [stored.as_dict() for stored in list_decision_evaluations(session, instance_id=instance_id)]

    def decision_evaluation(self, evaluation_id: str) -> tuple[StoredDecisionEvaluation, DecisionExplanation]:
        """One decision evaluation, and its explanation from the .dmn file of the version it ran.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            stored = get_decision_evaluation(session, evaluation_id)
            version = session.scalars(
                select(PathwayVersion).where(
                    PathwayVersion.pathway_id == stored.pathway_id, PathwayVersion.version == stored.pathway_version
                )
            ).first()
            files: dict[str, str] = json.loads(version.files) if version is not None else {}
            if stored.file not in files:
                raise NotFoundError(f"the decision table of evaluation {evaluation_id} is not stored")
            return stored, explain_decision(stored, files[stored.file].encode("utf-8"))

    def evaluation(self, evaluation_id: str) -> StoredEvaluation:
        """One stored evaluation with the exact rule and catalogue texts it used.

        Raises: NotFoundError.
        """
        with read_only(self.sessions) as session:
            return get_evaluation(session, evaluation_id)

    def evaluation_event(self, evaluation_id: str, instance_id: str | None) -> dict[str, Any] | None:
        """Where an evaluation stands in its instance's trail: the ``rules_evaluated`` event that records
        it -- its ``seq``, time, and the pathway (``pathway_id``, ``pathway_version``) the instance was on
        -- so that an auditor follows a referral from the need, through the rule and its version, to the
        pathway version. None for an evaluation of no instance, or of one deleted since."""
        if instance_id is None:
            return None
        with read_only(self.sessions) as session:
            pathway_id = session.scalar(select(PathwayInstance.pathway_id).where(PathwayInstance.id == instance_id))
            rows = session.execute(
                select(InstanceEvent.seq, InstanceEvent.at, InstanceEvent.pathway_version, InstanceEvent.payload)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == "rules_evaluated")
                .order_by(InstanceEvent.seq)
            ).all()
        for seq, at, version, payload in rows:
            if json.loads(payload).get("evaluation_id") == evaluation_id:
                return {"seq": seq, "at": at.isoformat(), "pathway_id": pathway_id, "pathway_version": version}
        return None

    def explanation(
        self, registry: RuleSetRegistry, evaluation_id: str, *, why: str | None = None, why_not: str | None = None
    ) -> WhyExplanation | WhyNotExplanation:
        """Why (or why not) a stored evaluation proposed a code, from the rule texts it used.

        Raises: NotFoundError, ValueError (not exactly one of why / why_not), RuleFileError.
        """
        with read_only(self.sessions) as session:
            return explain_evaluation(session, registry, evaluation_id, why=why, why_not=why_not)

    @staticmethod
    def _select(
        where: InstanceFilter,
        cursor: str | None,
        limit: int,
        element: str | None = None,
        columns: tuple[Any, ...] | None = None,
    ) -> Select[Any]:
        # The workflow state is never read by a list: not even fetched. With ``columns`` (which may
        # name the version's), those columns alone, as rows.
        if columns is None:
            query: Select[Any] = select(PathwayInstance).options(defer(PathwayInstance.state))
        else:
            query = (
                select(*columns)
                .select_from(PathwayInstance)
                .join(PathwayVersion, PathwayVersion.id == PathwayInstance.pathway_version_id)
            )
        # The page order: the instance's (created_at, id), or with an element the same pair as the
        # element's rows keep it, so the element's index gives the order (a rare element is then
        # as cheap as a common one, and an element nobody is at costs one index probe).
        at: Any = PathwayInstance.created_at
        key: Any = PathwayInstance.id
        due_order = _due_order(where, element)
        if due_order:  # what falls due, in the order it falls due: one range of a next_due_at index
            at = PathwayInstance.next_due_at
        if element is not None:
            query = query.join(
                ReadyTaskElement,
                and_(ReadyTaskElement.instance_id == PathwayInstance.id, ReadyTaskElement.element == element),
            )
            at, key = ReadyTaskElement.created_at, ReadyTaskElement.instance_id
        if not where.scope.everywhere:
            query = query.where(where.scope.condition())
        if where.patient_ref is not None:
            query = query.where(PathwayInstance.patient_ref == where.patient_ref)
        if where.pathway_id is not None:
            query = query.where(PathwayInstance.pathway_id == where.pathway_id)
        if where.status is not None:
            query = query.where(PathwayInstance.status == where.status)
        if where.due_before is not None:
            query = query.where(PathwayInstance.next_due_at < where.due_before.astimezone(UTC))
        if where.pathway_check:  # the partial index ix_pathway_instances_pathway_check_created_at_id; an
            query = query.where(PathwayInstance.pathway_check.is_not(None))  # ended instance has none

        if cursor:
            after, after_id = _decode_cursor(cursor, due_order=due_order)
            # A row value, not "a > x OR (a = x AND b > y)": only this form is one index range.
            query = query.where(tuple_(at, key) > tuple_(_as_bound(after), after_id))
        # One row more than asked tells whether there is a next page.
        return query.order_by(at, key).limit(limit + 1)

    @staticmethod
    def _page(items: list[dict[str, Any]], rows: list[Any], limit: int, *, due_order: bool) -> Page:
        # Rows are read as columns, which no ORM load event sees: the page names what it showed.
        saw([row.id for row in rows[:limit]])
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        if last is None:
            return Page(items, None)
        at = last.next_due_at if due_order else last.created_at
        assert at is not None  # in due order every row listed has a due time (the filter is on it)
        return Page(items, _encode_cursor(at, last.id, due_order=due_order))


def _due_order(where: InstanceFilter, element: str | None = None) -> bool:
    """Whether a list is in due order: it asks for what falls due, and no element gives the order."""
    return where.due_before is not None and element is None
