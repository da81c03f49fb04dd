"""Verifying the whole event trail as a background job, with its progress kept in the database.

At a national caseload a full verification reads millions of events: minutes, far past any HTTP
timeout. So the API never verifies every trail in one request: it records a job
(:func:`request_verification`), answers 202 with the job's address, and runs the job outside the
request (:func:`run_verification`, on a thread of the process that accepted it). The job's row
keeps its progress (instances checked of the total, updated after every batch) and its result, so
any API process behind the load balancer can report it.

In parts. One process verifies some thousands of instances a second (hashing every event is the
work); a million take minutes. With ``jobs`` above one, :func:`verify_every_trail` splits the
instances into disjoint ranges of their ids (random UUIDs: even shares) and verifies each range in a
process of its own, started afresh (``spawn``, engine.processes: nothing of the caller's threads or connections is
inherited), each one ordered scan of its range in constant memory, reporting its progress to the
caller; the problems are put together share by share. Each range is read in a snapshot of its own,
so an instance that changes meanwhile is checked as one of them saw it (verifying only reads).

A process that dies with a job running (or before its thread started) leaves the job ``running`` (or
``queued``) with a ``progress_at`` that stops moving. Once it has not moved for
:data:`ABANDONED_AFTER` (progress is written after every batch, seconds apart), a worker takes the
job over (:func:`claim_abandoned`, one claimant even with several workers) and runs it again from
the start: verifying only reads, so running a job twice changes nothing but the time it takes. Each
run owns its job by a token (``run_id``) that the takeover clears: a run that was stalled rather
than dead (a hung connection) writes nothing once it has lost the job, and stops at its next write
(:class:`VerificationTakenOver`), so it never overwrites the result of the run that took over.

A job verifies every trail, or one organisation's (``organisation``: what an auditor of one
organisation may start); :func:`get_verification` shows a job to a caller of that organisation, or
to one of every organisation, and to no other, so its counts and problems never cross organisations.

A job of every trail also checks the deployment trail (:func:`engine.four_eyes.verify_deployment_trail`).

Imports ``audit``, ``db``, ``four_eyes`` and ``processes`` only. Problems name instance ids and event
numbers, never patient data; a failure of the job itself is recorded by the error's type, never its text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import (
    Checkpoint,
    IdRange,
    ProgressCallback,
    TrailProblem,
    checkpoint_problems,
    count_instances,
    latest_checkpoint,
    trail_key_of,
    verify_trail,
)
from engine.db.models import AuditVerification
from engine.db.session import TRAIL_KEY, make_engine, make_session_factory, read_only, unit_of_work
from engine.errors import NotFoundError
from engine.four_eyes import verify_deployment_trail
from engine.processes import ShareFailed, run_shares

__all__ = [
    "ABANDONED_AFTER",
    "MAX_KEPT_PROBLEMS",
    "Verification",
    "VerificationFailed",
    "VerificationTakenOver",
    "claim_abandoned",
    "get_verification",
    "id_ranges",
    "request_verification",
    "run_verification",
    "verify_every_trail",
]

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
        return cls(
            row.id,
            row.status,
            row.requested_by,
            row.requested_at,
            row.started_at,
            row.progress_at,
            row.finished_at,
            row.instances_total,
            row.instances_checked,
            row.problem_count,
            json.loads(row.problems),
            row.failure,
            row.organisation,
        )

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "started_at": when(self.started_at),
            "progress_at": when(self.progress_at),
            "finished_at": when(self.finished_at),
            "instances_total": self.instances_total,
            "instances_checked": self.instances_checked,
            "verified": self.status == "verified" if self.status in ("verified", "problems") else None,
            "problem_count": self.problem_count,
            "problems": self.problems,
            "failure": self.failure,
            "organisation": self.organisation,
        }


def request_verification(
    sessions: sessionmaker[Session], actor: str, now: datetime, organisation: str | None = None
) -> Verification:
    """Record a new verification job of every trail (or of ``organisation``'s), queued; run it with
    :func:`run_verification`."""
    row = AuditVerification(
        id=str(uuid.uuid4()),
        status="queued",
        requested_by=actor,
        requested_at=now,
        instances_checked=0,
        problem_count=0,
        problems="[]",
        organisation=organisation,
    )
    with unit_of_work(sessions) as session:
        session.add(row)
    return Verification.of(row)


def get_verification(sessions: sessionmaker[Session], job_id: str, *, organisation: str | None = None) -> Verification:
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


def run_verification(
    sessions: sessionmaker[Session],
    job_id: str,
    now: Callable[[], datetime],
    checkpoint_dir: Path | None = None,
    batch: int = 2000,
    jobs: int = 1,
) -> Verification:
    """Run a queued job: one streaming scan of every trail, or of the job's organisation's
    (:func:`engine.audit.verify_trail`), in ``jobs`` processes (:func:`verify_every_trail`), against
    the newest checkpoint in ``checkpoint_dir`` when given, writing its progress after every
    ``batch`` instances (of each process). Whatever happens, the job ends ``verified``, ``problems``
    or ``failed`` (with the error's type), unless the process itself dies -- or the job is taken
    over meanwhile (:func:`claim_abandoned`): this run then stops at its next write and leaves the
    job to the run that took it over. A job another run owns is not run. Returns the job as it is.

    Raises: NotFoundError (no such job).
    """
    organisation = get_verification(sessions, job_id).organisation
    run = str(uuid.uuid4())
    if not _take(sessions, job_id, run, now()):
        return get_verification(sessions, job_id)  # another run has it
    # Taken over while this run stalled: the result is the run's that took it over.
    with contextlib.suppress(VerificationTakenOver):
        _run(sessions, job_id, run, now, checkpoint_dir, batch, jobs, organisation)
    return get_verification(sessions, job_id)


class VerificationTakenOver(Exception):
    """This run no longer owns its job (:func:`claim_abandoned` gave it to another run): it stops."""


def _run(
    sessions: sessionmaker[Session],
    job_id: str,
    run: str,
    now: Callable[[], datetime],
    checkpoint_dir: Path | None,
    batch: int,
    jobs: int,
    organisation: str | None,
) -> None:
    """Raises: VerificationTakenOver."""
    try:
        problems: list[TrailProblem] = []
        checkpoint = None
        if checkpoint_dir is not None:
            try:
                checkpoint = latest_checkpoint(checkpoint_dir)
            except ValueError as exc:
                problems.append(TrailProblem("", None, str(exc)))

        def progress(checked: int) -> None:
            _set(sessions, job_id, run, instances_checked=checked, progress_at=now())

        with read_only(sessions) as session:
            _set(sessions, job_id, run, instances_total=count_instances(session, organisation=organisation))
        problems += verify_every_trail(
            sessions, checkpoint=checkpoint, jobs=jobs, progress=progress, batch=batch, organisation=organisation
        )
        if organisation is None:  # who deployed and activated what: the deployment's, not an organisation's
            with read_only(sessions) as session:
                problems += verify_deployment_trail(session, checkpoint.deployment_head if checkpoint else None)
        kept = [
            {"instance_id": p.instance_id, "seq": p.seq, "message": p.message} for p in problems[:MAX_KEPT_PROBLEMS]
        ]
        _set(
            sessions,
            job_id,
            run,
            status="problems" if problems else "verified",
            finished_at=now(),
            problem_count=len(problems),
            problems=json.dumps(kept),
        )
    except VerificationTakenOver:
        raise
    except Exception as exc:
        _set(sessions, job_id, run, status="failed", finished_at=now(), failure=type(exc).__name__)


class VerificationFailed(Exception):
    """A process verifying one range of the trail failed or died (:func:`verify_every_trail`); its
    message names the error's type or the exit code, never data."""


def id_ranges(parts: int) -> list[IdRange]:
    """``parts`` disjoint ranges ``(low, high)`` of instance ids that together hold every id: split
    by the first eight hex digits, which are even for random UUIDs; the first and last are open."""
    bounds = [f"{share * 16**8 // parts:08x}" for share in range(1, parts)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def verify_every_trail(
    sessions: sessionmaker[Session],
    *,
    checkpoint: Checkpoint | None = None,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    batch: int = 2000,
    organisation: str | None = None,
) -> list[TrailProblem]:
    """Every instance's trail verified as :func:`engine.audit.verify_trail` does, in ``jobs``
    processes over disjoint id ranges (:func:`id_ranges`); with one job (or an in-memory database,
    which another process cannot open), in this one. ``progress`` gets the instances checked by all
    processes together. ``organisation``: only its instances (as :func:`engine.audit.verify_trail`).
    Returns the problems share by share, the checkpoint's own first.

    Raises:
        VerificationFailed: a process failed (the error's type) or died; the others are stopped.
        ValueError: ``jobs`` is below one.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    bind: Engine = sessions.kw["bind"]
    if jobs == 1 or bind.url.database in (None, "", ":memory:"):
        with read_only(sessions) as session:
            return verify_trail(
                session, checkpoint=checkpoint, progress=progress, batch=batch, organisation=organisation
            )
    secret: bytes | None = sessions.kw.get("info", {}).get(TRAIL_KEY)
    with read_only(sessions) as session:
        problems = checkpoint_problems(checkpoint, trail_key_of(session)) if checkpoint is not None else []

    def summed(latest: dict[int, int]) -> None:
        if progress is not None:
            progress(sum(latest.values()))

    url = bind.url.render_as_string(hide_password=False)
    try:
        found = run_shares(
            _verify_share,
            [
                (url, secret, share, id_range, _share_of(checkpoint, id_range), batch, organisation)
                for share, id_range in enumerate(id_ranges(jobs))
            ],
            name="carepath-verify",
            progress=summed,
        )
    except ShareFailed as failed:
        what = f"the process verifying share {failed.share + 1} of {jobs}"
        if failed.reason is None:
            raise VerificationFailed(f"{what} died (exit code {failed.exitcode})") from None
        raise VerificationFailed(f"{what} failed: {failed.reason}") from None
    return problems + [problem for share in range(jobs) for problem in found[share]]


def _share_of(checkpoint: Checkpoint | None, id_range: IdRange) -> Checkpoint | None:
    """The checkpoint's heads in ``id_range`` (a share verifies those only; its digest is checked by the caller)."""
    if checkpoint is None:
        return None
    low, high = id_range
    return dataclasses.replace(
        checkpoint,
        heads={
            i: head for i, head in checkpoint.heads.items() if (low is None or i >= low) and (high is None or i < high)
        },
    )


def _verify_share(
    url: str,
    secret: bytes | None,
    share: int,
    id_range: IdRange,
    checkpoint: Checkpoint | None,
    batch: int,
    organisation: str | None,
    messages: Any,
) -> None:
    """A spawned process's work: verify one range and report (progress, then the problems or the
    error's type) on ``messages``."""
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine, trail_key=secret)
        with read_only(sessions) as session:
            problems = verify_trail(
                session,
                checkpoint=checkpoint,
                batch=batch,
                id_range=id_range,
                organisation=organisation,
                progress=lambda checked: messages.put(("progress", share, checked)),
            )
        messages.put(("done", share, problems))
    except Exception as exc:  # noqa: BLE001 - reported to the caller by its type, which raises it
        messages.put(("failed", share, type(exc).__name__))
    finally:
        engine.dispose()


def claim_abandoned(sessions: sessionmaker[Session], now: datetime, after: timedelta = ABANDONED_AFTER) -> str | None:
    """Take over the oldest job left ``queued`` or ``running`` with no progress for ``after``: it is
    marked running again, as of ``now``, so no other worker takes it meanwhile (on PostgreSQL
    ``FOR UPDATE SKIP LOCKED``; on SQLite the single writer serialises claims), and its owner is
    cleared, so the run that left it -- should it be stalled rather than dead -- writes nothing more
    and stops. Returns its id, to be run with :func:`run_verification` (which takes ownership), or None."""
    job = AuditVerification
    with unit_of_work(sessions) as session:
        row = session.scalars(
            select(job)
            .where(
                job.status.in_(("queued", "running")), func.coalesce(job.progress_at, job.requested_at) < now - after
            )
            .order_by(job.requested_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        row.status, row.progress_at, row.instances_checked, row.run_id = "running", now, 0, None
        return row.id


def _take(sessions: sessionmaker[Session], job_id: str, run: str, now: datetime) -> bool:
    """Make ``run`` the job's owner, if it has none (a new job, or one :func:`claim_abandoned` took over)
    and has not ended; False when another run owns it."""
    job = AuditVerification
    with unit_of_work(sessions) as session:
        taken = session.execute(
            update(job)
            .where(job.id == job_id, job.run_id.is_(None), job.status.in_(("queued", "running")))
            .values(run_id=run, status="running", started_at=now, progress_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(taken, "rowcount", 0))


def _set(sessions: sessionmaker[Session], job_id: str, run: str, **values: Any) -> None:
    """Write the job's progress or result, as its owner ``run``.

    Raises: VerificationTakenOver (the job is no longer this run's).
    """
    with unit_of_work(sessions) as session:
        changed = session.execute(
            update(AuditVerification)
            .where(AuditVerification.id == job_id, AuditVerification.run_id == run)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise VerificationTakenOver(f"verification {job_id!r} was taken over by another run")
