"""Two workers and a receiver that never answers: a batch is claimed under one lease but attempted one
delivery after another. The claim's lease covers a batch of attempts that each end at the timeout;
an attempt can take longer than that (the host name's lookup is the system resolver's, the database
may be slow), and then the lease runs out before the batch's tail has had its turn. Each delivery's
lease is renewed just before its own attempt, so no delivery is POSTed twice in one round or counted
twice (dead-lettered early), and one whose lease ran out and was taken by the other worker is skipped.

The receiver's "timeout" moves the manual clock instead of waiting."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import WebhookDelivery
from engine.db.session import read_only, unit_of_work
from engine.webhooks import RetryPolicy, WebhookDeliverer, add_subscription

DELIVERIES = 10


SLOWER = 3  # each attempt takes three timeouts: a resolver and a database slower than the receiver


class SilentReceiver:
    """Every POST 'times out', late: the clock moves on by SLOWER timeouts, the hook runs, it fails."""

    def __init__(self, name: str, clock: ManualClock, posted: list[tuple[str, str]]) -> None:
        self.name, self.clock, self.posted = name, clock, posted
        self.after_post: Callable[[], None] = lambda: None

    def post(self, url: str, body: bytes, headers: Any, timeout: float) -> int:
        self.posted.append((self.name, headers["webhook-id"]))
        self.clock.advance(timedelta(seconds=SLOWER * timeout))
        self.after_post()
        raise TimeoutError("timed out")


def test_a_second_worker_never_takes_a_delivery_the_first_is_about_to_attempt(
    carepath: CarePath, clock: ManualClock
) -> None:
    with unit_of_work(carepath.sessions) as session:
        add_subscription(session, "http://10.9.9.9/hook", ["task.ready"], clock, "r", allow_private_networks=True)
    for n in range(DELIVERIES):
        carepath.instances.start("test_assessment", f"MRN-{n}", "system:ehr")
    policy = RetryPolicy(first_wait=timedelta(hours=1))  # 10 s timeout, batch 20, a 230 s lease
    assert policy.lease < timedelta(seconds=SLOWER * policy.timeout_seconds * 8)
    posted: list[tuple[str, str]] = []
    receiver_a, receiver_b = SilentReceiver("A", clock, posted), SilentReceiver("B", clock, posted)
    worker_a, worker_b = (
        WebhookDeliverer(
            carepath.sessions, clock, policy, receiver, rng=random.Random(seed), allow_private_networks=True
        )
        for receiver, seed in ((receiver_a, 1), (receiver_b, 2))
    )
    b_outcomes: list[str] = []

    def b_runs_once_a_has_posted_eight() -> None:  # 240 s after A's claim: the claim's lease has run out
        if len(posted) == 8 and not b_outcomes:
            b_outcomes.extend(attempt.outcome for attempt in worker_b.run_once())

    receiver_a.after_post = b_runs_once_a_has_posted_eight
    a_outcomes = Counter(attempt.outcome for attempt in worker_a.run_once())

    assert b_outcomes == ["retry", "retry"]  # the two A had not begun: B sends them
    assert a_outcomes == Counter(retry=8, superseded=2)  # A skips them, unsent
    webhook_ids = Counter(webhook_id for _, webhook_id in posted)
    assert len(webhook_ids) == DELIVERIES and set(webhook_ids.values()) == {1}, "a delivery was POSTed twice"
    with read_only(carepath.sessions) as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert [row.attempts for row in rows] == [1] * DELIVERIES  # one failed round each, counted once
