"""Whose patients: each request that names a patient's record is checked against the caller's care teams
(:mod:`engine.care_teams`) before its view runs, for the API, FHIR and the web pages alike.

A view's wrapper (:func:`api.auth.requires`, :func:`api.web.auth.page`) calls :func:`check_request` with
the kind of record its URL names (``instance`` whenever it has an ``instance_id``). An instance outside
the caller's scope is *not found*, for reads and writes; for a scoped caller a missing record is refused
here too, with the same words, so the two cannot be told apart.

Break-glass: a clinician sends ``CarePath-Break-Glass: <reason code>`` (and, if they wish,
``CarePath-Break-Glass-Note: <text>``, kept only in the access log) to read a patient of another team of
their organisation. It opens reads only, is recorded in the access log with its reason
(:mod:`api.access_log`), and never crosses organisations. Lists with it must name the patient.
"""

from __future__ import annotations

from typing import Any

from flask import g, request

from engine.access import BREAK_GLASS_ROLES, Principal
from engine.care_teams import NOT_FOUND, BreakGlass, CareScope, placement
from engine.db.session import read_only
from engine.errors import InvalidInputError, NotFoundError, PermissionDeniedError, Problem

from . import carepath

__all__ = [
    "BREAK_GLASS_HEADER",
    "BREAK_GLASS_NOTE_HEADER",
    "KINDS",
    "break_glass",
    "check_request",
    "list_scope",
    "start_placement",
    "visible_instance",
]

BREAK_GLASS_HEADER = "CarePath-Break-Glass"
BREAK_GLASS_NOTE_HEADER = "CarePath-Break-Glass-Note"
# The kind of record a view names -> the URL variable that names it.
KINDS: dict[str, str] = {
    "instance": "instance_id",
    "evaluation": "evaluation_id",
    "decision_evaluation": "evaluation_id",
    "care_plan": "resource_id",
    "care_plan_item": "resource_id",
    "questionnaire_response": "resource_id",
    "composition": "resource_id",
    "referral_escalation": "escalation_id",
}
_READS = ("GET", "HEAD")


def break_glass(principal: Principal, grant: BreakGlass | None = None) -> BreakGlass | None:
    """The break-glass the request declares (its headers, or ``grant``: the web page's), kept on ``g``.

    Raises:
        PermissionDeniedError: the caller's role may not break the glass (only clinicians).
        InvalidInputError: not a read, or a reason not in the list, or a note that cannot be kept.
    """
    code = request.headers.get(BREAK_GLASS_HEADER)
    if code is not None:
        grant = BreakGlass(code.strip(), request.headers.get(BREAK_GLASS_NOTE_HEADER))
    g.break_glass = None
    if grant is None:
        return None
    if principal.role not in BREAK_GLASS_ROLES:
        raise PermissionDeniedError(f"a {principal.role} may not break the glass: only clinicians may")
    if request.method not in _READS:
        raise InvalidInputError(
            "break-glass opens a record for reading, never for changes",
            [Problem("send it with GET only", field=BREAK_GLASS_HEADER)],
        )
    g.break_glass = grant
    return grant


def check_request(principal: Principal, kind: str | None) -> None:
    """Refuse a request naming a record outside the principal's scope, as if the record did not exist.

    Raises:
        NotFoundError: the record is out of scope (and no break-glass read opens it).
    """
    view_args: dict[str, Any] = request.view_args or {}
    if kind is None and "instance_id" in view_args:
        kind = "instance"
    if kind is None:
        return
    key = str(view_args[KINDS[kind]])
    scope = principal.scope
    if scope.everywhere:
        return
    with read_only(carepath().sessions) as session:
        found = placement(session, kind, key)
    if found is not None and scope.covers(found.organisation, found.care_team):
        return
    if (
        found is not None
        and g.get("break_glass") is not None
        and scope.organisation_wide().covers(found.organisation, found.care_team)
    ):
        return  # a clinician's declared read of another team's patient (the access log records it)
    # Missing or hidden: the same answer, from here, before the view checks anything else (a view that
    # validated its query first would otherwise answer 400 for a missing record and 404 for a hidden one).
    raise NotFoundError(NOT_FOUND[kind].format(key=key))


def list_scope(principal: Principal, patient_ref: str | None) -> CareScope:
    """The scope a list runs with: the principal's, or with break-glass their organisation's for one patient.

    Raises: InvalidInputError (break-glass on a list that does not name one patient).
    """
    if g.get("break_glass") is None:
        return principal.scope
    if patient_ref is None:
        raise InvalidInputError(
            "break-glass opens one patient's records",
            [Problem("name the patient (patient_ref) when breaking the glass", field="patient_ref")],
        )
    return principal.scope.organisation_wide()


def start_placement(principal: Principal, organisation: str | None, care_team: str | None) -> tuple[str, str]:
    """Where a start request places its instance: as asked, else the caller's own organisation and (when
    it has exactly one) team, else the deployment's defaults; and the caller must reach that team.

    Raises:
        InvalidInputError: not identifiers, or missing with no default.
        PermissionDeniedError: a team the caller does not reach (a system token of other teams).
    """
    scope = principal.scope
    if organisation is None and scope.organisation:
        organisation = scope.organisation
    if care_team is None and scope.teams is not None and len(scope.teams) == 1:
        care_team = next(iter(scope.teams))
    placed = carepath().instances.placement(organisation, care_team)
    if not scope.covers(*placed):
        raise PermissionDeniedError("this token may not start instances for that organisation or care team")
    return placed


def visible_instance(principal: Principal, instance_id: str) -> str:
    """``instance_id`` when the principal's scope covers that instance, else ``""`` (nothing to name): what a
    refusal may say about an instance it did not find in the caller's scope (the running instance a start
    collided with)."""
    scope = principal.scope
    if not instance_id or scope.everywhere:
        return instance_id
    with read_only(carepath().sessions) as session:
        found = placement(session, "instance", instance_id)
    return instance_id if found is not None and scope.covers(found.organisation, found.care_team) else ""
