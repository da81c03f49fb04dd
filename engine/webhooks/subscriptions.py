"""Webhook subscriptions: a receiver's URL, the event types it wants, and the secret that signs them.

The secret is a Standard Webhooks key (``whsec_`` + base64 of 32 random bytes), made here and shown
once, to the admin who adds the subscription: it is never returned by a listing, never logged.
It is stored as it is because signing needs it (an HMAC key cannot be kept as a hash); the
database's access controls protect it as they protect the patient data beside it.

**Whose.** A subscription is one organisation's (``organisation``) or the deployment's (None). An
organisation's receives the events of that organisation's instances only (engine.webhooks.outbox),
and is seen and managed only by a caller of that organisation or of every organisation. Each use
case takes the caller's organisation (None: a caller of every organisation, who sees them all): a
subscription that is not the caller's is *not found*, the same answer as one that does not exist.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, select, true, update
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db.models import WebhookDelivery, WebhookSubscription
from engine.errors import InvalidInputError, NotFoundError, Problem
from engine.webhooks.catalogue import WEBHOOK_EVENT_TYPES
from engine.webhooks.network import literal_host_problem, url_characters_problem

__all__ = [
    "MAX_URL_LENGTH",
    "SubscriptionInfo",
    "add_subscription",
    "find_subscription",
    "list_subscriptions",
    "remove_subscription",
    "visible_to",
]

MAX_URL_LENGTH = 2000
_MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription as listings show it: never its secret."""

    id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    created_at: datetime
    removed_at: datetime | None
    organisation: str | None  # None: the deployment's (every organisation's events)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "event_types": list(self.event_types),
            "description": self.description,
            "organisation": self.organisation,
            "created_at": self.created_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
        }


def _info(row: WebhookSubscription) -> SubscriptionInfo:
    return SubscriptionInfo(
        row.id,
        row.url,
        tuple(json.loads(row.event_types)),
        row.description,
        row.created_at,
        row.removed_at,
        row.organisation,
    )


def visible_to(organisation: str | None) -> ColumnElement[bool]:
    """The subscriptions a caller of ``organisation`` sees: its own; every one for None (a caller of
    every organisation). An organisation's caller never sees the deployment's."""
    if organisation is None:
        return true()
    return WebhookSubscription.organisation == organisation


def find_subscription(session: Session, subscription_id: str, organisation: str | None = None) -> WebhookSubscription:
    """The subscription, as a caller of ``organisation`` may see it (removed ones too).

    Raises:
        NotFoundError: no such subscription, or another organisation's or the deployment's for a caller
            of one organisation: the same answer, with the same words.
    """
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or (organisation is not None and row.organisation != organisation):
        raise NotFoundError(f"no webhook subscription {subscription_id!r}")
    return row


def _check(url: object, event_types: object, description: object, allow_private: bool) -> list[Problem]:
    problems = []
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        problems.append(Problem(f"a URL of at most {MAX_URL_LENGTH} characters", field="/url"))
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            problems.append(Problem("must be an http:// or https:// URL with a host", field="/url"))
        elif (why := url_characters_problem(url)) is not None:
            problems.append(Problem(why, field="/url"))
        elif "@" in parts.netloc:
            problems.append(Problem("must not carry a user name or password (listings show the URL)", field="/url"))
        elif not allow_private and (why := literal_host_problem(parts.hostname or "")) is not None:
            problems.append(Problem(why, field="/url"))
    if not isinstance(event_types, list | tuple) or not event_types:
        problems.append(Problem(f"a non-empty list of: {', '.join(WEBHOOK_EVENT_TYPES)}", field="/event_types"))
    else:
        for n, name in enumerate(event_types):
            if name not in WEBHOOK_EVENT_TYPES:
                problems.append(
                    Problem(f"unknown event type; one of {', '.join(WEBHOOK_EVENT_TYPES)}", field=f"/event_types/{n}")
                )
    if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
        problems.append(Problem(f"at most {_MAX_DESCRIPTION} characters", field="/description"))
    return problems


def add_subscription(
    session: Session,
    url: str,
    event_types: list[str],
    clock: Clock,
    description: str = "",
    *,
    organisation: str | None = None,
    allow_private_networks: bool = False,
) -> tuple[SubscriptionInfo, str]:
    """Subscribe ``url`` to ``event_types`` for ``organisation`` (an identifier the caller checked: its
    instances' events only; None: the deployment's, every organisation's); returns the subscription
    and its secret (shown only now).

    Raises:
        InvalidInputError: a URL that is not http(s) with a host (or holds characters outside
            printable ASCII, or carries credentials, or names a private, loopback or link-local
            address, in any form ``inet_aton`` reads, unless ``allow_private_networks``), an empty
            list or an unknown event type, a description over 200 characters; every field named.
    """
    problems = _check(url, event_types, description, allow_private_networks)
    if problems:
        raise InvalidInputError("the subscription is invalid", problems)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    row = WebhookSubscription(
        id="whsub_" + uuid.uuid4().hex[:16],
        url=url,
        event_types=json.dumps(sorted(set(event_types))),
        secret=secret,
        description=description,
        created_at=clock.now(),
        removed_at=None,
        organisation=organisation,
    )
    session.add(row)
    session.flush()
    return _info(row), secret


def list_subscriptions(
    session: Session, *, include_removed: bool = False, organisation: str | None = None
) -> list[SubscriptionInfo]:
    """Subscriptions, oldest first, without their secrets: a caller of ``organisation`` sees its own
    only, a caller of every organisation (None) every one."""
    query = (
        select(WebhookSubscription)
        .where(visible_to(organisation))
        .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    )
    if not include_removed:
        query = query.where(WebhookSubscription.removed_at.is_(None))
    return [_info(row) for row in session.scalars(query)]


def remove_subscription(
    session: Session, subscription_id: str, clock: Clock, *, organisation: str | None = None
) -> int:
    """Stop a subscription: no new deliveries, and its pending ones are cancelled (kept, not sent).
    Returns the number of deliveries cancelled. ``organisation``: the caller's (None: every one).

    Raises:
        NotFoundError: no such subscription, or it was removed already, or it is not the caller's
            (another organisation's, or the deployment's for a caller of one organisation).
    """
    row = find_subscription(session, subscription_id, organisation)
    if row.removed_at is not None:
        raise NotFoundError(f"no webhook subscription {subscription_id!r}")
    row.removed_at = clock.now()
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")
        .values(status="cancelled", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
