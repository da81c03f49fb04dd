"""Firing due timers from a worker: each due instance is one step, committed on its own.

Each instance carries ``next_due_at`` (indexed with its status). :func:`fire_due_timers` reads the
ids of a batch of due running instances in one query, then fires each in its own unit of work and
commits per instance, so a worker killed at any moment loses nothing: an uncommitted instance is
still due and the next run picks it up. On PostgreSQL each instance of a batch is locked with
``SELECT ... FOR UPDATE SKIP LOCKED`` and checked to be still due: several workers share the due
instances and never fire the same one. SQLite has no row locks; there the database's single writer
serialises workers, and the instance's revision check (the same optimistic lock every change uses)
makes a second worker that read the same instance lose cleanly (nothing of its work is written)
instead of firing a timer twice. Which timers fired is read by ``engine.spiff.timers``; the
calendar arithmetic they use is in ``engine.spiff.patches``.

Faults. A failure while firing one instance -- its state cannot be restored or stored (a script
that built a number too long to write), a bug, a row the database refuses -- must not stop the
worker or the other instances: the step is rolled back and the instance is put in ``error`` with an
incident naming the error's type (never its text), in a unit of work of its own, so it is not
picked again until someone retries it. If even that cannot be written, the instance is left alone
for a while (:class:`Backoff`: one pass, then two, four... up to an hour) instead of on every pass.
The database being unreachable is not an instance's fault: it is raised to the caller (the
worker's loop waits and tries again, :mod:`engine.instances.worker`).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from engine.audit import append_event, has_pending_events, take_pending_events
from engine.db.models import PathwayInstance
from engine.db.session import database_unavailable, read_only, unit_of_work
from engine.errors import StaleVersionError
from engine.instances.service import PathwayService
from engine.instances.store import ConflictMapper, load_instance, save_instance
from engine.instances.view import ENGINE_ACTOR, Status
from engine.spiff import workflows
from engine.spiff.timers import FiredTimer, run_due_timers

__all__ = ["Backoff", "fire_due_timers"]


@dataclass
class Backoff:
    """Instances a worker leaves alone for a while: their step failed and not even the incident
    could be written. Each further failure doubles the wait (from ``first`` up to ``longest``)."""

    first: timedelta = timedelta(seconds=30)
    longest: timedelta = timedelta(hours=1)
    _until: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def failed(self, instance_id: str, now: datetime) -> datetime:
        """Note a failure; returns when the instance may be tried again."""
        failures = self._until.get(instance_id, (now, 0))[1] + 1
        wait = min(self.longest, self.first * 2 ** min(failures - 1, 20))
        self._until[instance_id] = (now + wait, failures)
        return now + wait

    def succeeded(self, instance_id: str) -> None:
        self._until.pop(instance_id, None)

    def waiting(self, now: datetime) -> set[str]:
        """The instances not to pick at ``now``."""
        return {instance_id for instance_id, (until, _) in self._until.items() if until > now}


def fire_due_timers(
    service: PathwayService,
    now: datetime | None = None,
    limit: int = 100,
    worker_id: str = "worker",
    backoff: Backoff | None = None,
) -> int:
    """Fire the due timers of up to ``limit`` running instances whose ``next_due_at <= now``.

    ``now`` (default: the service's clock) chooses which instances are due; the timers themselves
    fire by the service's clock, as every step does. Due instances are claimed in batches (one
    query reads the ids of up to ``limit`` of the most overdue); each is then fired in its own unit
    of work, committed on its own: a ``timer_fired`` event per timer element that fired, the new
    state and the new ``next_due_at``. An instance another worker holds or changed meanwhile is
    skipped (it stays due if it still is). A step that fails inside the diagram becomes an
    incident, as for any step; any other failure of one instance's step becomes an incident too
    (see the module's docstring), and the next instance is fired. ``backoff`` remembers, across
    calls, the instances whose incident could not be written either.

    Returns the number of instances advanced (committed), incidents included.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable
            (:func:`engine.db.session.database_unavailable`); what was committed stays committed.
    """
    now = now or service.clock.now()
    backoff = backoff if backoff is not None else Backoff()
    # Instances not to pick again in this call: held or changed by another worker, or still due
    # after their step (a timer that cannot fire yet). Advanced instances are no longer due by themselves.
    # Only instances advanced count towards ``limit``: one held by another worker is someone else's work.
    passed: set[str] = set()
    advanced = 0
    while advanced < limit:
        batch = _due_batch(service, now, limit - advanced, passed | backoff.waiting(now))
        if not batch:
            break
        for instance_id in batch:
            if advanced >= limit:
                break
            outcome = _fire_claimed(service, instance_id, now, worker_id, backoff)
            if outcome is not _Outcome.SKIPPED:
                advanced += 1
            if outcome is not _Outcome.ADVANCED:
                passed.add(instance_id)
    return advanced


class _Outcome(enum.Enum):
    ADVANCED = "advanced"  # committed, no longer due
    STILL_DUE = "still due"  # committed, but a timer is still due (it cannot fire yet)
    SKIPPED = "skipped"  # held or changed by someone else, or no longer due: nothing written


def _due_batch(service: PathwayService, now: datetime, size: int, passed: set[str]) -> list[str]:
    """The ids of up to ``size`` due running instances, most overdue first, not in ``passed``
    (one read of the (status, next_due_at) index; nothing is locked until each is fired)."""
    with read_only(service.steps.sessions) as session:
        query = (
            select(PathwayInstance.id)
            .where(PathwayInstance.status == Status.RUNNING, PathwayInstance.next_due_at <= now)
            .order_by(PathwayInstance.next_due_at)
            .limit(size)
        )
        if passed:
            query = query.where(PathwayInstance.id.not_in(passed))
        return list(session.scalars(query))


def _fire_claimed(
    service: PathwayService, instance_id: str, now: datetime, worker_id: str, backoff: Backoff
) -> _Outcome:
    """Fire one instance of a claimed batch; a failure of its step becomes its incident."""
    try:
        fired = _fire_one(service, instance_id, now, worker_id)
    except StaleVersionError:
        return _Outcome.SKIPPED  # someone else changed it first; our work was rolled back
    except Exception as exc:
        if database_unavailable(exc):
            raise  # not one instance's fault
        if _record_incident(service, instance_id, exc, worker_id):
            backoff.succeeded(instance_id)
            return _Outcome.STILL_DUE  # counted as advanced, and not picked again in this call
        backoff.failed(instance_id, service.clock.now())
        return _Outcome.SKIPPED
    if fired is not _Outcome.SKIPPED:
        backoff.succeeded(instance_id)
    return fired


def _record_incident(service: PathwayService, instance_id: str, exc: Exception, worker_id: str) -> bool:
    """Put a running instance whose timer step failed in ``error``, its stored state unchanged.

    The incident names the error's type alone: its text may quote values. Returns False when the
    incident could not be written (the caller backs off); a database outage is raised.
    """
    runner = service.steps
    kind = type(exc).__name__
    message = f"{kind} while firing timers; the state before the timers fired is kept"
    try:
        with ConflictMapper(), unit_of_work(runner.sessions) as session:
            take_pending_events(session)
            instance = load_instance(session, instance_id)
            if instance.status != Status.RUNNING:
                return True  # someone else moved it meanwhile: nothing to record
            now = runner.clock.now()
            instance.status = Status.ERROR
            instance.incident = json.dumps({"element": None, "message": message, "kind": kind, "at": now.isoformat()})
            instance.updated_at = now
            append_event(
                session,
                instance,
                "error",
                at=now,
                actor=ENGINE_ACTOR,
                pathway_version=instance.pathway_version,
                payload={"message": message, "kind": kind, "worker": worker_id},
            )
            save_instance(session, instance)
    except StaleVersionError:
        return True  # changed by someone else meanwhile: the next pass sees it as it is now
    except Exception as failure:
        if database_unavailable(failure):
            raise
        return False
    runner.cache.take_latest(instance_id)  # the cached copy is older than the incident
    return True


def _fire_one(service: PathwayService, instance_id: str, now: datetime, worker_id: str) -> _Outcome:
    """Advance one instance of a batch if it is still due and no other worker holds it."""
    runner = service.steps
    with ConflictMapper(), unit_of_work(runner.sessions) as session:
        # PostgreSQL: lock the row, or skip it if another worker holds it. SQLite ignores the lock;
        # there the revision check makes the loser of a race write nothing.
        claimed = session.scalars(
            select(PathwayInstance.id)
            .where(
                PathwayInstance.id == instance_id,
                PathwayInstance.status == Status.RUNNING,
                PathwayInstance.next_due_at <= now,
            )
            .with_for_update(skip_locked=True)
        ).first()
        if claimed is None:
            return _Outcome.SKIPPED
        step = runner.open(session, instance_id, f"timer-worker:{worker_id}")

        def record(timer: FiredTimer) -> None:
            # Appended after the workflow has run, before a "completed" event.
            step.context.record("timer_fired", timer.element, {**timer.details(), "worker": worker_id})

        step.advance(lambda: run_due_timers(step.workflow, record), watch_timers=False)
        if not has_pending_events(session, instance_id):
            # Nothing fired and nothing else happened: the stored state is kept as it was (a new state
            # is recorded by the digest on its step's newest event, and this step has none); only
            # when the instance is next due is brought up to date.
            step.workflow_changed = False
            step.instance.next_due_at = workflows.next_due_at(step.workflow)
        runner.save(step)
        instance = step.instance
        due = instance.status == Status.RUNNING and instance.next_due_at is not None and instance.next_due_at <= now
        return _Outcome.STILL_DUE if due else _Outcome.ADVANCED
