"""/v1/webhooks: subscriptions (the secret is in the answer to the POST, and nowhere else), dead
letters and replays. The admin role only (docs/webhooks.md).

Whose (docs/access.md): an admin whose token names an organisation adds subscriptions of that
organisation (which receive its instances' events only) and sees, removes, and reads and replays the
deliveries of, those only; another organisation's subscription, or the deployment's, is not found
(404, as one that does not exist). An admin of every organisation adds the deployment's and sees all."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from flask import Blueprint, url_for

from engine.errors import NotFoundError, PermissionDeniedError, Problem

from . import carepath
from .auth import current_principal, requires
from .errors import ApiError
from .parsing import json_body, query_str

bp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks")

SUBSCRIPTION_ID = r"^whsub_[0-9a-f]{16}$"


@bp.get("/subscriptions")
@requires("webhooks.manage")
def list_subscriptions() -> dict[str, Any]:
    found = carepath().webhook_admin.subscriptions(organisation=_organisation())
    return {"items": [info.as_dict() for info in found]}


@bp.post("/subscriptions")
@requires("webhooks.manage")
def add_subscription() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = json_body("WebhookSubscriptionRequest")
    organisation = _organisation()
    if organisation == "":  # a person signed in without an organisation claim: they reach no organisation
        raise PermissionDeniedError("this caller reaches no organisation, so it may not subscribe to its events")
    info, secret = carepath().webhook_admin.add(
        body["url"], list(body["event_types"]), body.get("description", ""), organisation=organisation
    )
    location = url_for("webhooks.remove_subscription", subscription_id=info.id)
    return {**info.as_dict(), "secret": secret}, 201, {"Location": location}


@bp.delete("/subscriptions/<subscription_id>")
@requires("webhooks.manage")
def remove_subscription(subscription_id: str) -> dict[str, Any]:
    if not re.match(SUBSCRIPTION_ID, subscription_id):
        raise NotFoundError("no such webhook subscription")
    cancelled = carepath().webhook_admin.remove(subscription_id, organisation=_organisation())
    return {"id": subscription_id, "cancelled_deliveries": cancelled}


@bp.get("/dead-letters")
@requires("webhooks.manage")
def list_dead_letters() -> dict[str, Any]:
    subscription_id = query_str("subscription_id", SUBSCRIPTION_ID, 40)
    found = carepath().webhook_admin.dead_letters(subscription_id, organisation=_organisation())
    return {"items": [d.as_dict() for d in found]}


@bp.post("/replay")
@requires("webhooks.manage")
def replay() -> dict[str, Any]:
    body = json_body("WebhookReplayRequest")
    replayed = carepath().webhook_admin.replay(
        delivery_ids=body.get("delivery_ids"),
        subscription_id=body.get("subscription_id"),
        since=_time(body, "since"),
        until=_time(body, "until"),
        organisation=_organisation(),
    )
    return {"items": [d.as_dict() for d in replayed]}


def _organisation() -> str | None:
    """The caller's organisation: whose subscriptions it manages (None: every organisation's, and the
    deployment's). A token limited to care teams manages its organisation's, as it links its
    organisation's patients (the subscription is the organisation's, not a team's)."""
    return current_principal().scope.organisation


def _time(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value).upper().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or math.isnan(when.timestamp()):
        raise ApiError(
            400,
            "request-invalid",
            "the request body is not valid",
            [Problem("must be an RFC 3339 date-time with a zone, like 2026-01-15T09:00:00Z", field=f"/{name}")],
        )
    return when
