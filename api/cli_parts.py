"""``carepath migrate --jobs N``: a migration in N processes, each moving one share of the instances.

A migration's cost is per instance: tens of milliseconds of one core on the full path (restore,
diff, run, serialise), about a millisecond on the fast path (engine.instances.migration_fast) plus the
database's round trip: a caseload of 100,000 moves about N times faster in N processes, one per core.
The shares are those of ``--part K/N`` (:func:`engine.instances.migration.migrate_pathway`), so
each process is exactly what ``carepath migrate --part K/N`` would run, each instance still its
own unit of work, and a killed run resumes as a single one does. The processes are started afresh
(``spawn``, engine.processes: no connection or thread of this one is inherited); each reports its
progress to this one, which prints the sum, and its report, which is put together here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import CarePath
from engine.errors import CarePathError
from engine.instances.migration import MigrationProgress, MigrationReport, migrate_pathway
from engine.instances.migration_requests import approve_migration
from engine.processes import ShareFailed, run_shares
from engine.settings import Settings

__all__ = ["PartFailed", "migrate_in_parts"]


class PartFailed(Exception):
    """A process moving one share failed (its error's message when it is CarePath's own, else its type)
    or died."""


def migrate_in_parts(
    settings: Settings,
    jobs: int,
    *,
    pathway: str | None,
    request_id: str | None,
    actor: str,
    dry_run: bool,
    progress: Callable[[MigrationProgress], None],
) -> MigrationReport:
    """Run the migration of ``pathway`` (or the approved request ``request_id``) in ``jobs`` processes,
    the k-th moving share k of ``jobs``; returns the reports put together.

    Raises:
        PartFailed: a process failed or died; the others are stopped (what they committed stays:
            running the command again resumes).
    """

    def summed(latest: dict[int, MigrationProgress]) -> None:
        parts = latest.values()
        progress(
            MigrationProgress(
                sum(p.done for p in parts),
                sum(p.total for p in parts),
                sum(p.refused for p in parts),
                sum(p.fast for p in parts),
            )
        )

    try:
        reports = run_shares(
            _run_part,
            [(settings, pathway, request_id, actor, dry_run, (k, jobs)) for k in range(1, jobs + 1)],
            name="carepath-migrate",
            progress=summed,
        )
    except ShareFailed as failed:
        if failed.reason is None:
            raise PartFailed(
                f"the process moving share {failed.share + 1}/{jobs} died (exit code {failed.exitcode})"
            ) from None
        raise PartFailed(f"share {failed.share + 1}/{jobs}: {failed.reason}") from None
    first = reports[0]
    return MigrationReport(
        first.pathway_id, first.to_version, first.dry_run, [item for k in range(jobs) for item in reports[k].instances]
    )


def _run_part(
    settings: Settings,
    pathway: str | None,
    request_id: str | None,
    actor: str,
    dry_run: bool,
    part: tuple[int, int],
    messages: Any,
) -> None:
    """A spawned process's work: one share, its progress and then its report (or its failure) on ``messages``
    (engine.processes: the share's index counts from 0)."""
    share = part[0] - 1

    def progress(step: MigrationProgress) -> None:
        messages.put(("progress", share, step))

    try:
        carepath = CarePath(settings)
        try:
            if request_id is not None:
                _request, report = approve_migration(
                    carepath.instances, request_id, actor, progress=progress, part=part
                )
            else:
                assert pathway is not None
                report = migrate_pathway(
                    carepath.instances,
                    pathway,
                    actor=actor,
                    dry_run=dry_run,
                    progress=progress,
                    part=part,
                    progress_every=100,
                )
        finally:
            carepath.close()
        messages.put(("done", share, report))
    except CarePathError as exc:  # CarePath's messages carry no patient data
        messages.put(("failed", share, exc.message))
    except Exception as exc:  # noqa: BLE001 - reported by its type: its text may quote values
        messages.put(("failed", share, type(exc).__name__))
