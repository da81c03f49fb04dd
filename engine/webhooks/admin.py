"""What an admin does with webhooks, one unit of work per use case: the API (api/webhooks.py) and
the command line (``carepath webhooks ...``) call these.

Each takes the caller's organisation (``organisation``): a caller of one organisation adds
subscriptions of that organisation and sees, removes and replays only those; None is a caller of
every organisation (an admin token made without one, the command line), who adds the deployment's
subscriptions (unless it names an organisation) and sees every one (engine.webhooks.subscriptions).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.db.session import read_only, unit_of_work
from engine.webhooks.delivery import MAX_REPLAY_IDS, DeliveryInfo, dead_letters, replay
from engine.webhooks.subscriptions import (
    SubscriptionInfo,
    add_subscription,
    list_subscriptions,
    remove_subscription,
)

__all__ = ["MAX_REPLAY_IDS", "WebhookAdmin"]


class WebhookAdmin:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, allow_private_networks: bool = False) -> None:
        self.sessions = sessions
        self.clock = clock
        self.allow_private_networks = allow_private_networks

    def add(
        self, url: str, event_types: list[str], description: str = "", *, organisation: str | None = None
    ) -> tuple[SubscriptionInfo, str]:
        """A new subscription of ``organisation`` (None: the deployment's) and its secret, shown only now.

        Raises: InvalidInputError (every field named)."""
        with unit_of_work(self.sessions) as session:
            return add_subscription(
                session,
                url,
                event_types,
                self.clock,
                description,
                organisation=organisation,
                allow_private_networks=self.allow_private_networks,
            )

    def subscriptions(
        self, include_removed: bool = False, *, organisation: str | None = None
    ) -> list[SubscriptionInfo]:
        with read_only(self.sessions) as session:
            return list_subscriptions(session, include_removed=include_removed, organisation=organisation)

    def remove(self, subscription_id: str, *, organisation: str | None = None) -> int:
        """Returns the deliveries cancelled. Raises: NotFoundError (missing, removed, or not the caller's)."""
        with unit_of_work(self.sessions) as session:
            return remove_subscription(session, subscription_id, self.clock, organisation=organisation)

    def dead_letters(
        self, subscription_id: str | None = None, limit: int = 100, *, organisation: str | None = None
    ) -> list[DeliveryInfo]:
        """Raises: NotFoundError (a subscription the caller does not see)."""
        with read_only(self.sessions) as session:
            return dead_letters(session, subscription_id, limit, organisation=organisation)

    def replay(
        self,
        *,
        delivery_ids: list[int] | None = None,
        subscription_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        organisation: str | None = None,
    ) -> list[DeliveryInfo]:
        """Raises: InvalidInputError, NotFoundError (see :func:`engine.webhooks.delivery.replay`)."""
        with unit_of_work(self.sessions) as session:
            return replay(
                session,
                self.clock,
                delivery_ids=delivery_ids,
                subscription_id=subscription_id,
                since=since,
                until=until,
                organisation=organisation,
            )
