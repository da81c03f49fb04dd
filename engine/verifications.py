"""Verifying the whole event trail as a background job, with its progress kept in the database.

At a national caseload a full verification reads millions of events: minutes, far past any HTTP
timeout. So the API never verifies every trail in one request: it records a job
(:func:`request_verification`), answers 202 with the job's address, and runs the job outside the
request (:func:`run_verification`, on a thread of the process that accepted it). The job's row
keeps its progress (instances checked of the total, updated after every batch) and its result, so
any API process behind the load balancer can report it.

A process that dies with a job running (or before its thread started) leaves the job ``running`` (or
``queued``) with a ``progress_at`` that stops moving. Once it has not moved for
:data:`ABANDONED_AFTER` (progress is written after every batch, seconds apart), a worker takes the
job over (:func:`claim_abandoned`, one claimant even with several workers) and runs it again from
the start: verifying only reads, so running a job twice changes nothing but the time it takes.

A job verifies every trail, or one organisation's (``organisation``: what an auditor of one
organisation may start); :func:`get_verification` shows a job to a caller of that organisation, or
to one of every organisation, and to no other, so its counts and problems never cross organisations.

A job of every trail also checks the deployment trail (:func:`engine.four_eyes.verify_deployment_trail`).

Imports ``audit``, ``db`` and ``four_eyes`` only. Problems name instance ids and event numbers, never patient data;
a failure of the job itself is recorded by the error's type, never its text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import TrailProblem, count_instances, latest_checkpoint, verify_trail
from engine.db.models import AuditVerification
from engine.db.session import read_only, unit_of_work
from engine.errors import NotFoundError
from engine.four_eyes import verify_deployment_trail

__all__ = ["ABANDONED_AFTER", "MAX_KEPT_PROBLEMS", "Verification", "claim_abandoned", "get_verification",
           "request_verification", "run_verification"]

# A job keeps the first problems it finds (and counts them all): a trail broken everywhere must not
# make a row of hundreds of megabytes.
MAX_KEPT_PROBLEMS = 1000
# A job whose progress has not moved for this long was left by a process that died: a worker takes it over.
ABANDONED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Verification:
    """A verification job as its row shows it."""

    id: str
    status: str  # queued | running | verified | problems | failed
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    progress_at: datetime | None
    finished_at: datetime | None
    instances_total: int | None
    instances_checked: int
    problem_count: int
    problems: list[dict[str, Any]]
    failure: str | None
    organisation: str | None = None  # None: every trail of the deployment

    @classmethod
    def of(cls, row: AuditVerification) -> Verification:
        return cls(row.id, row.status, row.requested_by, row.requested_at, row.started_at, row.progress_at,
                   row.finished_at, row.instances_total, row.instances_checked, row.problem_count,
                   json.loads(row.problems), row.failure, row.organisation)

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"id": self.id, "status": self.status, "requested_by": self.requested_by,
                "requested_at": self.requested_at.isoformat(), "started_at": when(self.started_at),
                "progress_at": when(self.progress_at), "finished_at": when(self.finished_at),
                "instances_total": self.instances_total, "instances_checked": self.instances_checked,
                "verified": self.status == "verified" if self.status in ("verified", "problems") else None,
                "problem_count": self.problem_count, "problems": self.problems, "failure": self.failure,
                "organisation": self.organisation}


def request_verification(sessions: sessionmaker[Session], actor: str, now: datetime,
                         organisation: str | None = None) -> Verification:
    """Record a new verification job of every trail (or of ``organisation``'s), queued; run it with
    :func:`run_verification`."""
    row = AuditVerification(id=str(uuid.uuid4()), status="queued", requested_by=actor, requested_at=now,
                            instances_checked=0, problem_count=0, problems="[]", organisation=organisation)
    with unit_of_work(sessions) as session:
        session.add(row)
    return Verification.of(row)


def get_verification(sessions: sessionmaker[Session], job_id: str, *,
                     organisation: str | None = None) -> Verification:
    """The job, as a caller of ``organisation`` may see it (None: a caller of every organisation, who
    sees every job). A job of another organisation, or of every trail, is not found for a caller of
    one organisation: the same answer as a job that does not exist.

    Raises: NotFoundError.
    """
    with read_only(sessions) as session:
        row = session.get(AuditVerification, job_id)
        if row is None or (organisation is not None and row.organisation != organisation):
            raise NotFoundError(f"no verification {job_id!r}")
        return Verification.of(row)


def run_verification(sessions: sessionmaker[Session], job_id: str, now: Callable[[], datetime],
                     checkpoint_dir: Path | None = None, batch: int = 2000) -> Verification:
    """Run a queued job: one streaming scan of every trail, or of the job's organisation's
    (:func:`engine.audit.verify_trail`),
    against the newest checkpoint in ``checkpoint_dir`` when given, writing its progress after
    every ``batch`` instances. Whatever happens, the job ends ``verified``, ``problems`` or
    ``failed`` (with the error's type), unless the process itself dies.

    Raises: NotFoundError (no such job).
    """
    organisation = get_verification(sessions, job_id).organisation
    _set(sessions, job_id, status="running", started_at=now(), progress_at=now())
    try:
        problems: list[TrailProblem] = []
        checkpoint = None
        if checkpoint_dir is not None:
            try:
                checkpoint = latest_checkpoint(checkpoint_dir)
            except ValueError as exc:
                problems.append(TrailProblem("", None, str(exc)))

        def progress(checked: int) -> None:
            _set(sessions, job_id, instances_checked=checked, progress_at=now())

        with read_only(sessions) as session:
            _set(sessions, job_id, instances_total=count_instances(session, organisation=organisation))
            problems += verify_trail(session, checkpoint=checkpoint, progress=progress, batch=batch,
                                     organisation=organisation)
            if organisation is None:  # who deployed and activated what: the deployment's, not an organisation's
                problems += verify_deployment_trail(session, checkpoint.deployment_head if checkpoint else None)
        kept = [{"instance_id": p.instance_id, "seq": p.seq, "message": p.message}
                for p in problems[:MAX_KEPT_PROBLEMS]]
        _set(sessions, job_id, status="problems" if problems else "verified", finished_at=now(),
             problem_count=len(problems), problems=json.dumps(kept))
    except Exception as exc:
        _set(sessions, job_id, status="failed", finished_at=now(), failure=type(exc).__name__)
    return get_verification(sessions, job_id)


def claim_abandoned(sessions: sessionmaker[Session], now: datetime,
                    after: timedelta = ABANDONED_AFTER) -> str | None:
    """Take over the oldest job left ``queued`` or ``running`` with no progress for ``after``: it is
    marked running again, as of ``now``, so no other worker takes it meanwhile (on PostgreSQL
    ``FOR UPDATE SKIP LOCKED``; on SQLite the single writer serialises claims). Returns its id, to be
    run with :func:`run_verification`, or None."""
    job = AuditVerification
    with unit_of_work(sessions) as session:
        row = session.scalars(select(job).where(
            job.status.in_(("queued", "running")), func.coalesce(job.progress_at, job.requested_at) < now - after)
            .order_by(job.requested_at).limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        row.status, row.progress_at, row.instances_checked = "running", now, 0
        return row.id


def _set(sessions: sessionmaker[Session], job_id: str, **values: Any) -> None:
    """Raises: NotFoundError."""
    with unit_of_work(sessions) as session:
        changed = session.execute(update(AuditVerification).where(AuditVerification.id == job_id).values(**values)
                                  .execution_options(synchronize_session=False))
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFoundError(f"no verification {job_id!r}")
