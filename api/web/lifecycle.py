"""Managing a patient's pathway from their page: pausing it, resuming it, ending it, and handing it to another
care team of the organisation, each with a reason code from a list, as the API does
(``POST /v1/instances/{id}/suspend|resume|cancel``, ``PUT .../care-team``: the same calls and permissions).

Each is a page of its own that says what it does and asks for the reason, and sends the instance version it
was drawn at: a pathway that moved on since (a timer, another person) is not changed, and the page says so.
Ending a pathway is not how a death is recorded (that ends every pathway of the patient and stops every
invitation: api.web.recording), and the page says so where the pathway waits for one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.care_teams import TEAM_CHANGE_REASONS
from engine.errors import ConflictError, InvalidInputError, StaleVersionError
from engine.instances.deaths import DEATH_MESSAGE
from engine.instances.progress import instance_progress
from engine.instances.view import CANCEL_REASONS, NOT_ENDED, SUSPEND_REASONS, InstanceView, Status

from .. import carepath
from ..access_log import shows_patients
from .auth import actor, page
from .flashes import tell
from .forms import revision_of
from .i18n import translate

bp = Blueprint("lifecycle", __name__, url_prefix="/patients")

# action -> (the statuses it applies to, the reason codes offered; None: it takes no reason)
ACTIONS: dict[str, tuple[frozenset[str], tuple[str, ...] | None]] = {
    "suspend": (frozenset({Status.RUNNING, Status.ERROR}), SUSPEND_REASONS),
    "resume": (frozenset({Status.SUSPENDED}), None),
    "cancel": (NOT_ENDED, CANCEL_REASONS),
    "care-team": (frozenset(Status), TEAM_CHANGE_REASONS),  # an ended pathway's records move with the patient
}
_MANAGE = "<any('suspend', 'resume', 'cancel'):action>"


def offered(view: InstanceView) -> list[str]:
    """The actions the patient page offers for ``view`` (its status allows them), in the table's order."""
    return [action for action, (statuses, _) in ACTIONS.items() if view.status in statuses]


@bp.get(f"/<uuid:instance_id>/{_MANAGE}")
@shows_patients  # the patient's reference and their pathway's status: a look, recorded
@page("instances.manage")
def confirm(instance_id: Any, action: str) -> tuple[str, int]:
    return _page(carepath().instances.get(str(instance_id)), action, {}, {})


@bp.post(f"/<uuid:instance_id>/{_MANAGE}")
@page("instances.manage")
def apply(instance_id: Any, action: str) -> WerkzeugResponse | tuple[str, int]:
    return _apply(str(instance_id), action)


@bp.get("/<uuid:instance_id>/care-team")
@shows_patients
@page("instances.transfer")
def team(instance_id: Any) -> tuple[str, int]:
    return _page(carepath().instances.get(str(instance_id)), "care-team", {}, {})


@bp.post("/<uuid:instance_id>/care-team")
@page("instances.transfer")
def transfer(instance_id: Any) -> WerkzeugResponse | tuple[str, int]:
    return _apply(str(instance_id), "care-team")


def _apply(instance_id: str, action: str) -> WerkzeugResponse | tuple[str, int]:
    view = carepath().instances.get(instance_id)
    statuses, reasons = ACTIONS[action]
    if view.status not in statuses:
        return _page(view, action, request.form, {}, 409, stale=True)
    errors: dict[str, str] = {}
    reason = request.form.get("reason", "")
    if reasons is not None and reason not in reasons:
        errors["reason"] = translate("manage.errors.reason")
    new_team = request.form.get("care_team", "").strip()
    if action == "care-team" and not new_team:
        errors["care_team"] = translate("manage.errors.care_team")
    if errors:
        return _page(view, action, request.form, errors, 422)
    version = revision_of(request.form.get("version", ""))
    service = carepath().instances
    try:
        if action == "suspend":
            service.suspend(view.id, actor(), reason, version)
        elif action == "resume":
            service.resume(view.id, actor(), version)
        elif action == "cancel":
            service.cancel(view.id, actor(), reason, version)
        else:
            service.change_care_team(view.id, new_team, reason, actor(), version)
    except InvalidInputError:  # a team name that is not an identifier
        return _page(view, action, request.form, {"care_team": translate("manage.errors.care_team")}, 422)
    except (StaleVersionError, ConflictError) as exc:
        # Moved on since the page was drawn, or already in that team: nothing changed.
        same_team = action == "care-team" and not isinstance(exc, StaleVersionError) and view.care_team == new_team
        if same_team:
            return _page(view, action, request.form, {"care_team": translate("manage.errors.same_team")}, 409)
        return _page(carepath().instances.get(view.id), action, request.form, {}, 409, stale=True)
    tell(f"manage.done.{action}", instance_id=view.id, team=new_team)
    if action == "care-team":  # handed over: the new team's now, maybe not this person's to open any more
        return redirect(url_for("web.patients.find"), code=303)
    return redirect(url_for("web.patients.patient", instance_id=view.id), code=303)


def _page(
    view: InstanceView, action: str, values: Any, errors: dict[str, str], status: int = 200, *, stale: bool = False
) -> tuple[str, int]:
    statuses, reasons = ACTIONS[action]
    death_waited = (
        action == "cancel"
        and view.status == Status.RUNNING
        and DEATH_MESSAGE in instance_progress(carepath().instances, view.id).messages
    )
    return render_template(
        "web/manage.html",
        view=view,
        action=action,
        reasons=reasons or (),
        values=values,
        errors=errors,
        stale=stale or view.status not in statuses,
        death_waited=death_waited,
        glass=g.get("break_glass"),
    ), status if view.status in statuses or status != 200 else 409
