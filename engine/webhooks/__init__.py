"""Webhooks: what happened on a pathway, told to subscribed systems, signed and delivered at least once.

Owns: the event catalogue and how each webhook event is derived from a step's trail events and
ready tasks (``catalogue``), the outbox rows written in the step's own transaction (``outbox``),
subscriptions managed by an admin (``subscriptions``), and delivery by the worker -- Standard
Webhooks signatures, retries with exponential backoff and jitter, dead letters, replay, order per
instance (``delivery``), and the admin's use cases (``admin``). docs/webhooks.md is the receiver's guide.

Payloads carry ids and types only (instance, task, element, pathway version, trail sequence),
never clinical values or the patient's reference.

May import: ``engine.db`` and the shared modules (clock, errors, settings). ``engine.instances.store``
(the only writer of instances and events) calls :func:`enqueue` and ``engine.careplan`` notes
referral changes with :func:`note_referral`: nothing here imports them.
"""

from engine.webhooks.admin import WebhookAdmin
from engine.webhooks.catalogue import WEBHOOK_EVENT_TYPES, Notice, StepFacts, derive_notices
from engine.webhooks.delivery import (
    MAX_REPLAY_IDS,
    Attempt,
    DeliveryInfo,
    RetryPolicy,
    Transport,
    WebhookDeliverer,
    dead_letters,
    replay,
)
from engine.webhooks.network import AddressNotAllowedError, GuardedTransport
from engine.webhooks.outbox import enqueue, note_referral, take_referrals
from engine.webhooks.subscriptions import (
    SubscriptionInfo,
    add_subscription,
    list_subscriptions,
    remove_subscription,
)

__all__ = [
    "MAX_REPLAY_IDS",
    "WEBHOOK_EVENT_TYPES",
    "Attempt",
    "AddressNotAllowedError",
    "DeliveryInfo",
    "GuardedTransport",
    "Notice",
    "RetryPolicy",
    "StepFacts",
    "SubscriptionInfo",
    "Transport",
    "WebhookAdmin",
    "WebhookDeliverer",
    "add_subscription",
    "dead_letters",
    "derive_notices",
    "enqueue",
    "list_subscriptions",
    "note_referral",
    "remove_subscription",
    "replay",
    "take_referrals",
]
