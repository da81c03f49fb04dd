"""Care teams: which organisation and team each instance belongs to, and whose records a caller may see.

An instance belongs to one organisation and one care team of it (``pathway_instances.organisation``
and ``care_team``, given at start, moved with a reason by :meth:`engine.instances.service.PathwayService.
change_care_team`). A caller's :class:`CareScope` says which of them it reaches:

* ``CareScope()`` (:data:`EVERYWHERE`): every organisation -- an API token made without an
  organisation (development, tests, tokens made before care teams existed);
* ``CareScope(organisation="rx1")``: every team of one organisation (an auditor; a system token made
  with ``--organisation`` and no ``--team``);
* ``CareScope(organisation="rx1", teams={"breast", "lung"})``: those teams only (a clinician);
* :data:`NOWHERE`: nothing (a person whose identity provider sent no organisation).

Out of scope is *not found*: a caller cannot tell an instance of another team from one that does
not exist (:func:`placement` finds the owner, :meth:`CareScope.covers` decides, the front end answers
with the same 404 either way; :data:`NOT_FOUND` is the not-found message of each kind of record).
Lists filter in SQL (:meth:`CareScope.condition`), so counts and pages hold only what may be seen.

Break-glass: a clinician may read the records of a patient of another team of their own
organisation in an emergency, giving one of :data:`BREAK_GLASS_REASONS` (and an optional note kept
only in the access log, never in a log line or the event trail). Reads only; never across
organisations.

May import: ``engine.db`` and the shared ``errors``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.orm import Session

from engine.db.models import (
    CarePlanItem,
    DecisionEvaluationRecord,
    PathwayInstance,
    ReferralEscalation,
    RuleEvaluationRecord,
)
from engine.errors import InvalidInputError, Problem

__all__ = [
    "BREAK_GLASS_REASONS",
    "COMPOSITION_PREFIX",
    "SURVEILLANCE_PLAN_PREFIX",
    "EVERYWHERE",
    "MAX_TEAMS",
    "NAME_PATTERN",
    "NOT_FOUND",
    "NOWHERE",
    "TEAM_CHANGE_REASONS",
    "BreakGlass",
    "CareScope",
    "Placement",
    "check_name",
    "check_teams",
    "placement",
]

# An organisation or team identifier (an ODS code, a directory key, a short slug): no spaces, no names of people.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
MAX_TEAMS = 50

# Why a clinician reads the records of a patient outside their teams (the access log keeps the code).
BREAK_GLASS_REASONS = ("emergency-care", "cross-cover", "urgent-referral", "patient-request", "safeguarding")
MAX_BREAK_GLASS_NOTE = 500
# Why an instance moves to another care team (the event trail keeps the code, never free text).
TEAM_CHANGE_REASONS = ("referral", "mdt-decision", "patient-moved", "team-reorganisation", "correction")


def check_name(value: Any, field: str) -> str:
    """An organisation or team identifier.

    Raises: InvalidInputError (not 1-64 letters, digits or ``. _ -``, starting with a letter or digit).
    """
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInputError(
            f"{field.strip('/')} is not an identifier",
            [
                Problem(
                    "1-64 letters, digits or . _ - starting with a letter or digit (an identifier, never a name)",
                    field=field,
                )
            ],
        )
    return value


def check_teams(values: Any, field: str) -> frozenset[str]:
    """A list of team identifiers (at most :data:`MAX_TEAMS`).

    Raises: InvalidInputError.
    """
    if not isinstance(values, list | tuple | set | frozenset) or len(values) > MAX_TEAMS:
        raise InvalidInputError("too many teams", [Problem(f"a list of at most {MAX_TEAMS} teams", field=field)])
    return frozenset(check_name(value, field) for value in values)


@dataclass(frozen=True)
class CareScope:
    """Which instances a caller reaches: ``organisation`` None is every organisation; ``teams`` None is
    every team of the organisation.

    Raises: ValueError (teams without an organisation).
    """

    organisation: str | None = None
    teams: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.teams is not None and self.organisation is None:
            raise ValueError("teams belong to an organisation")

    @property
    def everywhere(self) -> bool:
        return self.organisation is None

    def covers(self, organisation: str, care_team: str) -> bool:
        """Whether an instance of ``organisation`` and ``care_team`` is in scope."""
        if self.organisation is None:
            return True
        return organisation == self.organisation and (self.teams is None or care_team in self.teams)

    def organisation_wide(self) -> CareScope:
        """The same organisation, every team (what break-glass opens, what an auditor sees)."""
        return self if self.organisation is None else CareScope(self.organisation, None)

    def condition(self) -> ColumnElement[bool]:
        """The SQL condition on ``pathway_instances`` (index-backed: the list indexes begin with
        organisation and care team, engine.db.models)."""
        if self.organisation is None:
            return true()
        if self.teams is not None and not self.teams:
            return false()
        clause = PathwayInstance.organisation == self.organisation
        if self.teams is None:
            return clause
        teams = sorted(self.teams)
        team = PathwayInstance.care_team == teams[0] if len(teams) == 1 else PathwayInstance.care_team.in_(teams)
        return and_(clause, team)


EVERYWHERE = CareScope()
NOWHERE = CareScope(organisation="", teams=frozenset())  # "" is no organisation's identifier


@dataclass(frozen=True)
class BreakGlass:
    """A clinician's declared reason to read outside their teams.

    Raises: InvalidInputError (a reason not in :data:`BREAK_GLASS_REASONS`, or a note that is too long
    or holds control characters).
    """

    reason: str
    note: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in BREAK_GLASS_REASONS:
            raise InvalidInputError(
                "unknown break-glass reason",
                [Problem(f"must be one of {', '.join(BREAK_GLASS_REASONS)}", field="CarePath-Break-Glass")],
            )
        if self.note is not None and (
            len(self.note) > MAX_BREAK_GLASS_NOTE or any(ord(c) < 32 or ord(c) == 127 for c in self.note)
        ):
            raise InvalidInputError(
                "the break-glass note cannot be used",
                [Problem(f"at most {MAX_BREAK_GLASS_NOTE} printable characters", field="CarePath-Break-Glass-Note")],
            )


@dataclass(frozen=True)
class Placement:
    """Where a record lives: its instance and the instance's organisation and care team."""

    instance_id: str
    organisation: str
    care_team: str


# What a request can name, -> the not-found message the engine gives for it (out of scope says the same).
NOT_FOUND: dict[str, str] = {
    "instance": "no instance {key!r}",
    "evaluation": "no rule evaluation with id {key}",
    "decision_evaluation": "no decision evaluation with id {key}",
    "care_plan": "no such care plan",  # FHIR CarePlan/<instance id>
    "care_plan_item": "no such referral",  # FHIR ServiceRequest/<care plan item id>
    "questionnaire_response": "no such questionnaire response",  # FHIR: a rule evaluation
    "composition": "no such composition",  # FHIR Composition/eot-<instance id>[-<phase of care>]
    "referral_escalation": "no referral escalation {key!r}",  # engine.careplan.referrals
}
_OWNER_COLUMN: dict[str, Any] = {
    "evaluation": (RuleEvaluationRecord.instance_id, RuleEvaluationRecord.id),
    "questionnaire_response": (RuleEvaluationRecord.instance_id, RuleEvaluationRecord.id),
    "decision_evaluation": (DecisionEvaluationRecord.instance_id, DecisionEvaluationRecord.id),
    "care_plan_item": (CarePlanItem.instance_id, CarePlanItem.id),
    "referral_escalation": (ReferralEscalation.instance_id, ReferralEscalation.id),
}
COMPOSITION_PREFIX = "eot-"  # a FHIR Composition's id: eot-<instance id> (engine.fhir.documents uses this one)
# ... and an active surveillance plan's: asp-<instance id>.
SURVEILLANCE_PLAN_PREFIX = "asp-"


def placement(session: Session, kind: str, key: str) -> Placement | None:
    """The instance a record of ``kind`` (a key of :data:`NOT_FOUND`) named ``key`` belongs to, with its
    organisation and team; None when there is no such record. A record that belongs to no instance (a
    rule evaluated outside a pathway) is placed nowhere (``Placement("", "", "")``): only an unscoped
    caller reaches it.

    Raises: KeyError (an unknown kind: a programming error, never treated as "no owner").
    """
    if kind not in NOT_FOUND:
        raise KeyError(kind)
    columns = (PathwayInstance.id, PathwayInstance.organisation, PathwayInstance.care_team)
    if kind in _OWNER_COLUMN:
        owner, ident = _OWNER_COLUMN[kind]
        found = session.execute(
            select(owner, *columns)
            .select_from(owner.class_)
            .outerjoin(PathwayInstance, owner == PathwayInstance.id)
            .where(ident == key)
        ).first()
        if found is None:
            return None
        if found[1] is None:
            return Placement("", "", "")
        return Placement(found[1], found[2], found[3])
    if kind == "composition":  # eot-<instance id>, eot-<instance id>-<phase>, asp-<instance id> (engine.fhir.documents)
        prefix = next((p for p in (COMPOSITION_PREFIX, SURVEILLANCE_PLAN_PREFIX) if key.startswith(p)), "")
        key = key.removeprefix(prefix)[:36]
    row = session.execute(select(*columns).where(PathwayInstance.id == key)).first()
    return None if row is None else Placement(row[0], row[1], row[2])


def reachable(session: Session, scope: CareScope, instance_ids: Collection[str]) -> set[str]:
    """Those of ``instance_ids`` that exist and are in ``scope`` (an auditor's verification, for one)."""
    ids = sorted(set(instance_ids))
    found: set[str] = set()
    for first in range(0, len(ids), 500):
        query = select(PathwayInstance.id).where(PathwayInstance.id.in_(ids[first : first + 500]))
        found.update(session.scalars(query if scope.everywhere else query.where(scope.condition())))
    return found
