"""Webhook subscriptions: a receiver's URL, the event types it wants, and the secret that signs them.

The secret is a Standard Webhooks key (``whsec_`` + base64 of 32 random bytes), made here and shown
once, to the admin who adds the subscription: it is never returned by a listing, never logged.
It is stored as it is because signing needs it (an HMAC key cannot be kept as a hash); the
database's access controls protect it as they protect the patient data beside it.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db.models import WebhookDelivery, WebhookSubscription
from engine.errors import InvalidInputError, NotFoundError, Problem
from engine.webhooks.catalogue import WEBHOOK_EVENT_TYPES
from engine.webhooks.network import literal_host_problem, url_characters_problem

__all__ = ["MAX_URL_LENGTH", "SubscriptionInfo", "add_subscription", "list_subscriptions", "remove_subscription"]

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

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "event_types": list(self.event_types),
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "removed_at": self.removed_at.isoformat() if self.removed_at else None,
        }


def _info(row: WebhookSubscription) -> SubscriptionInfo:
    return SubscriptionInfo(
        row.id, row.url, tuple(json.loads(row.event_types)), row.description, row.created_at, row.removed_at
    )


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
    allow_private_networks: bool = False,
) -> tuple[SubscriptionInfo, str]:
    """Subscribe ``url`` to ``event_types``; returns the subscription and its secret (shown only now).

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
    )
    session.add(row)
    session.flush()
    return _info(row), secret


def list_subscriptions(session: Session, *, include_removed: bool = False) -> list[SubscriptionInfo]:
    """Subscriptions, oldest first, without their secrets."""
    query = select(WebhookSubscription).order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    if not include_removed:
        query = query.where(WebhookSubscription.removed_at.is_(None))
    return [_info(row) for row in session.scalars(query)]


def remove_subscription(session: Session, subscription_id: str, clock: Clock) -> int:
    """Stop a subscription: no new deliveries, and its pending ones are cancelled (kept, not sent).
    Returns the number of deliveries cancelled.

    Raises:
        NotFoundError: no such subscription (or it was removed already).
    """
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.removed_at is not None:
        raise NotFoundError(f"no webhook subscription {subscription_id!r}")
    row.removed_at = clock.now()
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")
        .values(status="cancelled", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
