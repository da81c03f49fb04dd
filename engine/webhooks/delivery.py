"""Delivering the outbox: claimed by the worker, signed, POSTed, retried, dead-lettered, replayed.

**Claim.** :meth:`WebhookDeliverer.run_once` takes up to ``batch`` due deliveries in one short
transaction -- on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED``, so several workers share the
outbox and never take the same row; on SQLite the database's single writer (``BEGIN IMMEDIATE``)
serialises workers -- and gives each a lease (``lease_until``) before committing. The batch is then
attempted one delivery after another, so the claim's lease cannot cover them all: just before its
own attempt each delivery's lease is renewed, and its attempt counted, in a guarded UPDATE that
holds only while the row is still this claim's (still pending under the very lease it was given).
A delivery whose lease ran out while it waited its turn and that another worker took meanwhile is
skipped, not sent twice or counted twice (outcome ``superseded``). The HTTP request runs outside any
transaction; its outcome is written in another. A worker killed mid-delivery leaves the row pending
under its lease: once the lease runs out another worker takes it again, with the same ``webhook-id``
(delivery is at least once; receivers de-duplicate on that id).

**Order.** A delivery is due only when no earlier delivery of the same instance to the same
subscription is still pending (waiting, leased or retrying): an instance's events reach a receiver
in the order they happened. A dead letter no longer holds the later ones back.

**Retries.** A failed attempt (no whole answer within the timeout, which bounds the attempt from
connecting to the answer's body; a URL that cannot be sent; a network error, any status but 2xx;
redirects are not followed; a receiver outside the public internet unless the deployment allows it,
engine.webhooks.network) is tried again after an exponentially growing wait with jitter: the
``n``-th wait is between half and all of ``first_wait * 2**(n-1)``, capped at ``longest_wait``.
After ``max_attempts`` the delivery is dead-lettered; an admin can replay it (:func:`replay`).

**Signing.** Standard Webhooks (the ``standardwebhooks`` package): ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (``v1,`` HMAC-SHA256 of ``id.timestamp.body``).
The timestamp is the real time of the attempt (``signing_clock``), which receivers compare with
their own clock to refuse replays, even when the engine's clock is a sandbox's.

What is logged or stored of an attempt: ids, the event type, the HTTP status or the error's type;
never the body, the receiver's answer, the URL or the secret.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker
from standardwebhooks import Webhook

from engine.clock import Clock, SystemClock
from engine.db.models import WebhookDelivery, WebhookSubscription
from engine.db.session import unit_of_work
from engine.errors import InvalidInputError, Problem
from engine.webhooks.network import GuardedTransport
from engine.webhooks.outbox import PENDING
from engine.webhooks.subscriptions import find_subscription, visible_to

__all__ = [
    "MAX_REPLAY_IDS",
    "Attempt",
    "DeliveryInfo",
    "RetryPolicy",
    "Transport",
    "WebhookDeliverer",
    "dead_letters",
    "replay",
]

_log = logging.getLogger("carepath.webhooks")
DELIVERED, DEAD = "delivered", "dead"
_USER_AGENT = "CarePath-Webhooks/1"
MAX_REPLAY_IDS = 1000
_MAX_ID = 2**31 - 1  # the id column's range on both databases


@dataclass(frozen=True)
class RetryPolicy:
    """How deliveries are retried (settings ``CAREPATH_WEBHOOK_*``, docs/webhooks.md).

    Raises:
        ValueError: a bound that is not positive, or a longest wait shorter than the first.
    """

    max_attempts: int = 12
    first_wait: timedelta = timedelta(seconds=30)
    longest_wait: timedelta = timedelta(hours=6)
    timeout_seconds: float = 10.0
    batch: int = 20

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch < 1:
            raise ValueError("webhook max attempts and batch must be at least 1")
        if self.timeout_seconds <= 0 or self.first_wait <= timedelta(0) or self.longest_wait < self.first_wait:
            raise ValueError("webhook timeout and waits must be positive, the longest wait at least the first")

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left to its worker: longer than the worker can take to reach
        it and finish it. Each attempt ends by its deadline (the timeout covers the whole attempt,
        engine.webhooks.network), and a claim's deliveries are attempted one after another, so the
        last of a full batch is done within ``batch`` timeouts; 30 s more for the database."""
        return timedelta(seconds=self.batch * self.timeout_seconds + 30)

    def wait(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: exponential, with equal jitter."""
        base = min(self.longest_wait, self.first_wait * 2 ** min(attempts - 1, 30))
        return base / 2 + base / 2 * rng.random()


class Transport(Protocol):
    """Sends one POST. Returns the HTTP status; raises OSError (timeouts included) or
    http.client.HTTPException when no status came back."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int: ...


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: ``delivered``, ``retry`` (at ``next_attempt_at``), ``dead``, or
    ``superseded`` (the lease had run out and another worker took the delivery meanwhile)."""

    delivery_id: int
    message_id: str
    outcome: str
    http_status: int | None
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class _Claimed:
    id: int
    message_id: str
    subscription_id: str
    event_type: str
    attempts: int  # before this claim's attempt; counted when the attempt starts (_renew)
    body: str
    url: str
    secret: str
    lease_until: datetime  # the claim's lease: the row is this claim's while it still holds it


class WebhookDeliverer:
    """Delivers due outbox rows (the worker calls :meth:`run_once` on every turn of its loop).

    ``clock`` schedules (due times, leases, backoff); ``signing_clock`` stamps what is sent.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        policy: RetryPolicy | None = None,
        transport: Transport | None = None,
        *,
        signing_clock: Clock | None = None,
        rng: random.Random | None = None,
        allow_private_networks: bool = False,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.transport = transport or GuardedTransport(allow_private=allow_private_networks)
        self.signing_clock = signing_clock or SystemClock()
        self.rng = rng or random.Random()

    def run_once(self, between: Callable[[], None] | None = None) -> list[Attempt]:
        """Claim the due deliveries (at most ``batch``) and attempt each once; ``between`` is called
        before each attempt (the worker's heartbeat: a batch of receivers that each take the whole
        timeout lasts ``batch`` timeouts, longer than a supervisor's watchdog waits).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database is unreachable (what was claimed stays
                leased and is taken again once the lease runs out).
        """
        attempts = []
        for claimed in self._claim():
            if between is not None:
                between()
            renewed = self._renew(claimed)
            attempts.append(self._superseded(claimed) if renewed is None else self._attempt(renewed))
        return attempts

    def _claim(self) -> list[_Claimed]:
        delivery, earlier = WebhookDelivery, aliased(WebhookDelivery)
        with unit_of_work(self.sessions) as session:
            now = self.clock.now()
            waiting_behind = exists().where(
                earlier.subscription_id == delivery.subscription_id,
                earlier.instance_id == delivery.instance_id,
                earlier.status == PENDING,
                earlier.id < delivery.id,
            )
            query = (
                select(delivery, WebhookSubscription.url, WebhookSubscription.secret)
                .join(WebhookSubscription, WebhookSubscription.id == delivery.subscription_id)
                .where(
                    delivery.status == PENDING,
                    delivery.next_attempt_at <= now,
                    or_(delivery.lease_until.is_(None), delivery.lease_until <= now),
                    WebhookSubscription.removed_at.is_(None),
                    ~waiting_behind,
                )
                .order_by(delivery.id)
                .limit(self.policy.batch)
                .with_for_update(skip_locked=True, of=delivery)
            )
            claimed = []
            lease_until = now + self.policy.lease
            for row, url, secret in session.execute(query).all():
                row.lease_until = lease_until
                claimed.append(
                    _Claimed(
                        row.id,
                        row.message_id,
                        row.subscription_id,
                        row.event_type,
                        row.attempts,
                        row.body,
                        url,
                        secret,
                        lease_until,
                    )
                )
        return claimed

    def _renew(self, claimed: _Claimed) -> _Claimed | None:
        """Just before its attempt: a fresh lease for the delivery, and its attempt counted, if it is still
        this claim's; None when another worker took it after the claim's lease ran out."""
        with unit_of_work(self.sessions) as session:
            lease_until = self.clock.now() + self.policy.lease
            result = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claimed.id,
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.attempts == claimed.attempts,
                    WebhookDelivery.lease_until == claimed.lease_until,
                )
                .values(attempts=claimed.attempts + 1, lease_until=lease_until)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                return None
        return dataclasses.replace(claimed, attempts=claimed.attempts + 1, lease_until=lease_until)

    def _superseded(self, claimed: _Claimed) -> Attempt:
        _log.info(
            "webhook %s (%s, subscription %s): superseded before its attempt (its lease ran out and another "
            "worker took it)",
            claimed.message_id,
            claimed.event_type,
            claimed.subscription_id,
        )
        return Attempt(claimed.id, claimed.message_id, "superseded", None, None, None)

    def _attempt(self, claimed: _Claimed) -> Attempt:
        status: int | None = None
        try:
            sent_at = self.signing_clock.now()
            headers = {
                "content-type": "application/json",
                "user-agent": _USER_AGENT,
                "webhook-id": claimed.message_id,
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": Webhook(claimed.secret).sign(claimed.message_id, sent_at, claimed.body),
            }
            status = self.transport.post(claimed.url, claimed.body.encode(), headers, self.policy.timeout_seconds)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # noqa: BLE001 - one delivery's failure (network, receiver, a bad secret) is its own
            error = type(exc).__name__  # its text may quote the URL or the receiver's answer
        return self._finish(claimed, status, error)

    def _finish(self, claimed: _Claimed, status: int | None, error: str | None) -> Attempt:
        with unit_of_work(self.sessions) as session:
            now = self.clock.now()
            values: dict[str, Any] = {"lease_until": None, "last_error": error}
            next_at = None
            if error is None:
                outcome = DELIVERED
                values.update(status=DELIVERED, delivered_at=now)
            elif claimed.attempts >= self.policy.max_attempts:
                outcome = DEAD
                values.update(status=DEAD)
            else:
                outcome, next_at = "retry", now + self.policy.wait(claimed.attempts, self.rng)
                values.update(next_attempt_at=next_at)
            # Only while the claim is still ours: the same attempt count, still pending.
            result = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claimed.id,
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.attempts == claimed.attempts,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                outcome, next_at = "superseded", None
        _log.info(
            "webhook %s (%s, subscription %s, attempt %d): %s%s",
            claimed.message_id,
            claimed.event_type,
            claimed.subscription_id,
            claimed.attempts,
            outcome,
            f" ({error})" if error else "",
        )
        return Attempt(claimed.id, claimed.message_id, outcome, status, error, next_at)


@dataclass(frozen=True)
class DeliveryInfo:
    """One outbox row as an admin sees it (never its body's signature or the subscription's secret)."""

    id: int
    message_id: str
    subscription_id: str
    instance_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        found = dict(self.__dict__)
        for name in ("created_at", "next_attempt_at", "delivered_at"):
            found[name] = found[name].isoformat() if found[name] else None
        return found


def _info(row: WebhookDelivery) -> DeliveryInfo:
    return DeliveryInfo(
        row.id,
        row.message_id,
        row.subscription_id,
        row.instance_id,
        row.event_type,
        row.status,
        row.attempts,
        row.last_error,
        row.created_at,
        row.next_attempt_at,
        row.delivered_at,
    )


def dead_letters(
    session: Session, subscription_id: str | None = None, limit: int = 100, *, organisation: str | None = None
) -> list[DeliveryInfo]:
    """Dead-lettered deliveries, oldest first: of the subscriptions a caller of ``organisation`` sees
    (its own; None: every one), or of ``subscription_id`` only.

    Raises:
        NotFoundError: ``subscription_id`` names no subscription the caller sees (none, or another's).
    """
    query = (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.status == DEAD, visible_to(organisation))
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    if subscription_id is not None:
        find_subscription(session, subscription_id, organisation)
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    return [_info(row) for row in session.scalars(query)]


def replay(
    session: Session,
    clock: Clock,
    *,
    delivery_ids: list[int] | None = None,
    subscription_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    organisation: str | None = None,
) -> list[DeliveryInfo]:
    """Deliver again, each with the ``webhook-id`` it had (a receiver that kept it may ignore it):
    the dead letters named by ``delivery_ids``, or every dead or delivered one of ``subscription_id``
    created in ``[since, until)``. They are due at once, with a fresh count of attempts, and hold an
    instance's later deliveries back until they are through (order). Deliveries of removed
    subscriptions are not replayed, nor those of subscriptions a caller of ``organisation`` does not
    see (its own only; None: every one): an id of another's is passed over as a missing one is.
    Returns those replayed.

    Raises:
        InvalidInputError: neither ids nor a subscription given, or both; a range that ends before it starts.
        NotFoundError: ``subscription_id`` names no subscription the caller sees (none, or another's).
    """
    if (delivery_ids is None) == (subscription_id is None):
        raise InvalidInputError(
            "name the deliveries to replay: their ids, or a subscription and a time range",
            [Problem("give delivery_ids or subscription_id (with since/until)", field="/")],
        )
    if delivery_ids is not None and (
        len(delivery_ids) > MAX_REPLAY_IDS or not all(1 <= i <= _MAX_ID for i in delivery_ids)
    ):
        raise InvalidInputError(
            "delivery ids are out of range",
            [Problem(f"at most {MAX_REPLAY_IDS} ids, each from 1 to {_MAX_ID}", field="/delivery_ids")],
        )
    if since is not None and until is not None and until <= since:
        raise InvalidInputError("the range ends before it starts", [Problem("must be after since", field="/until")])
    if subscription_id is not None:
        find_subscription(session, subscription_id, organisation)
    query = (
        select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookSubscription.removed_at.is_(None), visible_to(organisation))
        .order_by(WebhookDelivery.id)
    )
    if delivery_ids is not None:
        query = query.where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == DEAD)
    else:
        query = query.where(
            WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status.in_((DEAD, DELIVERED))
        )
        if since is not None:
            query = query.where(WebhookDelivery.created_at >= since)
        if until is not None:
            query = query.where(WebhookDelivery.created_at < until)
    now = clock.now()
    rows = list(session.scalars(query.with_for_update(of=WebhookDelivery)))
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = PENDING, 0, now
        row.lease_until = row.last_error = row.delivered_at = None
    session.flush()
    return [_info(row) for row in rows]
