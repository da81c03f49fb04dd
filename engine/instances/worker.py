"""The timer worker's loop: fire due timers in batches until stopped, with housekeeping between."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.instances.timers import fire_due_timers

if TYPE_CHECKING:
    from engine.instances.service import PathwayService

__all__ = ["run_worker"]


def run_worker(service: PathwayService, *, worker_id: str, batch: int = 100, interval: float = 5.0,
               once: bool = False, should_stop: Callable[[], bool] = lambda: False,
               report: Callable[[int], None] | None = None,
               housekeeping: Callable[[], object] | None = None, housekeeping_seconds: float = 600.0) -> int:
    """Fire due timers until stopped; with ``once``, until nothing is due. Returns instances advanced.

    ``housekeeping`` (e.g. purging expired idempotency records) runs when the worker starts and
    then at most every ``housekeeping_seconds``, between batches.
    """
    total = 0
    next_housekeeping = time.monotonic()
    while not should_stop():
        if housekeeping is not None and time.monotonic() >= next_housekeeping:
            housekeeping()
            next_housekeeping = time.monotonic() + housekeeping_seconds
        advanced = fire_due_timers(service, limit=batch, worker_id=worker_id)
        total += advanced
        if advanced and report is not None:
            report(advanced)
        if advanced == batch:
            continue  # more may be due right now
        if once:
            break
        time.sleep(interval)
    return total
