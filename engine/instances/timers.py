"""Firing due timers from a worker: each due instance is one step, committed on its own.

Each instance carries ``next_due_at`` (indexed with its status). :func:`fire_due_timers` picks due
running instances one at a time, each in its own unit of work, and commits per instance, so a worker
killed at any moment loses nothing: an uncommitted instance is still due and the next run picks it
up. On PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP LOCKED``: several workers share the due
instances and never take the same one. SQLite has no row locks; there the database's single writer
serialises workers, and the instance's revision check (the same optimistic lock every change uses)
makes a second worker that read the same instance lose cleanly (nothing of its work is written)
instead of firing a timer twice. Which timers fired is read by ``engine.spiff.timers``; the
calendar arithmetic they use is in ``engine.spiff.patches``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.db.models import PathwayInstance
from engine.db.session import unit_of_work
from engine.errors import StaleVersionError
from engine.instances.service import PathwayService
from engine.instances.store import ConflictMapper
from engine.instances.view import Status
from engine.spiff.timers import FiredTimer, run_due_timers

__all__ = ["fire_due_timers"]


def fire_due_timers(service: PathwayService, now: datetime | None = None, limit: int = 100,
                    worker_id: str = "worker") -> int:
    """Fire the due timers of up to ``limit`` running instances whose ``next_due_at <= now``.

    ``now`` (default: the service's clock) chooses which instances are due; the timers themselves
    fire by the service's clock, as every step does. Each instance is one unit of work, committed
    on its own: a ``timer_fired`` event per timer element that fired, the new state and the new
    ``next_due_at``. An instance another worker or a user changed meanwhile is skipped (it stays due
    if it still is). A step that fails inside the diagram becomes an incident, as for any step.

    Returns the number of instances advanced (committed).
    """
    now = now or service.clock.now()
    # Instances not to pick again in this call: lost to a concurrent change, or still due after
    # their step (a timer that cannot fire yet). Advanced instances are no longer due by themselves.
    passed: set[str] = set()
    advanced = 0
    while advanced + len(passed) < limit:
        picked: list[str] = []
        try:
            still_due = _fire_next(service, now, worker_id, passed, picked)
        except StaleVersionError:
            passed.update(picked)  # someone else changed it first; our work was rolled back
            continue
        if not picked:
            break
        advanced += 1
        if still_due:
            passed.update(picked)
    return advanced


def _fire_next(service: PathwayService, now: datetime, worker_id: str, passed: set[str], picked: list[str]) -> bool:
    """Advance the most overdue instance not in ``passed``; returns whether it is still due."""
    runner = service.steps
    with ConflictMapper(), unit_of_work(runner.sessions) as session:
        # Only the id, in (status, next_due_at) index order, so the database stops at the first row
        # it can lock. PostgreSQL: lock it and let other workers skip it. SQLite ignores the lock.
        query = (select(PathwayInstance.id).where(PathwayInstance.status == Status.RUNNING,
                                                  PathwayInstance.next_due_at <= now)
                 .order_by(PathwayInstance.next_due_at).limit(1).with_for_update(skip_locked=True))
        if passed:
            query = query.where(PathwayInstance.id.not_in(passed))
        instance_id = session.scalars(query).first()
        if instance_id is None:
            return False
        picked.append(instance_id)
        step = runner.open(session, instance_id, f"timer-worker:{worker_id}")

        def record(timer: FiredTimer) -> None:
            # Appended after the workflow has run, before a "completed" event.
            step.context.record("timer_fired", timer.element, {"due_at": timer.due_at, "worker": worker_id})

        step.advance(lambda: run_due_timers(step.workflow, record), watch_timers=False)
        runner.save(step)
        instance = step.instance
        return instance.status == Status.RUNNING and instance.next_due_at is not None and instance.next_due_at <= now
