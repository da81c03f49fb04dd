"""The worker's loop: fire due timers in batches until stopped, escalate overdue referrals, deliver
webhooks, with housekeeping between.

The loop outlives the database: when it cannot be reached (a restart, a failover, a network cut),
:func:`run_worker` waits -- 1 s, then 2, 4, ... up to ``max_wait`` -- and tries again, so a
PostgreSQL restart needs no restart of any worker. What a pass committed before the outage stays
committed; an instance whose step was cut off is still due and is fired by a later pass. A failure
of one instance's step is not the loop's business: :func:`engine.instances.timers.fire_due_timers`
makes it an incident on that instance and goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.db.session import database_unavailable
from engine.instances.timers import Backoff, fire_due_timers

if TYPE_CHECKING:
    from engine.instances.service import PathwayService

__all__ = ["run_worker"]

_log = logging.getLogger("carepath.worker")


def run_worker(
    service: PathwayService,
    *,
    worker_id: str,
    batch: int = 100,
    interval: float = 5.0,
    once: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    report: Callable[[int], None] | None = None,
    housekeeping: Callable[[], object] | None = None,
    housekeeping_seconds: float = 600.0,
    heartbeat: Callable[[], None] | None = None,
    first_wait: float = 1.0,
    max_wait: float = 60.0,
    checkpoint: Callable[[], object] | None = None,
    checkpoint_seconds: float = 3600.0,
    deliver: Callable[[], int] | None = None,
    escalate: Callable[[], int] | None = None,
    upgrade: Callable[[], int] | None = None,
    once_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Fire due timers until stopped; with ``once``, until nothing is due. Returns instances advanced.

    ``housekeeping`` (e.g. purging expired idempotency records) runs when the worker starts and
    then at most every ``housekeeping_seconds``, between batches; ``checkpoint`` (exporting the
    event trail's checkpoint, :mod:`engine.audit`) likewise every ``checkpoint_seconds``.
    ``deliver`` (the webhook outbox's deliverer, :mod:`engine.webhooks`) runs after the timers on
    every turn and returns how many attempts it made; the loop goes round again at once while it
    finds work, as it does for a full batch of timers. ``escalate`` (the care plan's scan for referrals
    not accepted in time, :meth:`engine.careplan.referrals.ReferralEscalations.open_due`; this package
    cannot import it) runs after the timers, before delivery, so its webhooks go out on the same turn.
    ``upgrade`` (a batch of the work an upgrade left, :func:`engine.pathway_checks.read_diagnoses`) runs last
    and returns how much it did: while it finds work the loop goes round again at once, so the timers
    still fire between its batches.
    ``heartbeat`` is called on every turn of the loop, waiting for the database included (a
    supervisor's liveness check: the process is alive and not stuck). While the database is
    unreachable the loop waits ``first_wait`` seconds, doubling up to ``max_wait``, and tries
    again; with ``once`` it gives up after ``once_attempts`` attempts.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: with ``once``, the database stayed unreachable; without
            ``once``, any database error that is not an outage (a wrong schema, a bad URL).
    """
    total = 0
    next_housekeeping = next_checkpoint = time.monotonic()
    backoff = Backoff()
    failures = 0
    while not should_stop():
        if heartbeat is not None:
            heartbeat()
        try:
            if housekeeping is not None and time.monotonic() >= next_housekeeping:
                housekeeping()
                next_housekeeping = time.monotonic() + housekeeping_seconds
            if checkpoint is not None and time.monotonic() >= next_checkpoint:
                checkpoint()
                next_checkpoint = time.monotonic() + checkpoint_seconds
            advanced = fire_due_timers(service, limit=batch, worker_id=worker_id, backoff=backoff)
            advanced += (escalate or _nothing)()
            attempted = (deliver or _nothing)()
            upgraded = (upgrade or _nothing)()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            failures += 1
            if once and failures >= once_attempts:
                raise
            wait = min(max_wait, first_wait * 2 ** min(failures - 1, 16))
            # The error's type only: a driver's message may quote statement parameters.
            _log.warning(
                "worker %s: database unavailable (%s); trying again in %.1f s", worker_id, type(exc).__name__, wait
            )
            _wait(wait, should_stop, heartbeat, sleep)
            continue
        if failures:
            _log.warning("worker %s: database reachable again", worker_id)
            failures = 0
        total += advanced
        if advanced and report is not None:
            report(advanced)
        if advanced == batch or attempted or upgraded:
            continue  # more may be due right now
        if once:
            break
        _wait(interval, should_stop, heartbeat, sleep)
    return total


def _nothing() -> int:
    return 0


def _wait(
    seconds: float,
    should_stop: Callable[[], bool],
    heartbeat: Callable[[], None] | None,
    sleep: Callable[[float], None],
) -> None:
    """Sleep in steps of at most a second, so a stop request or a heartbeat is never long delayed."""
    left = seconds
    while left > 0 and not should_stop():
        turn = min(1.0, left)
        sleep(turn)
        left -= turn
        if heartbeat is not None:
            heartbeat()
