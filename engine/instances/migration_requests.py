"""Four eyes for migrations: one author asks for a migration of a pathway's running instances (its
dry run's report is kept), and a second author approves it, which runs it.

A request pins the version its dry run moved to: if another version is activated in between, the
approval is refused (:class:`~engine.errors.VersionStateError`) and a new request is needed, since
the report the approver read no longer says what would happen. The report names instances by id
and elements, never by patient (authors do not read instances). An approved request that did not
finish (the process was stopped, or it ran in ``part``s) runs again when approved again, and moves
only the instances not yet moved (:func:`engine.instances.migration.migrate_pathway`); it is
``executed`` once a run over the whole caseload ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from engine.db.models import MigrationRequest
from engine.db.session import read_only, unit_of_work
from engine.errors import NotFoundError, VersionStateError
from engine.four_eyes import content_digest, record_deployment, require_second_person
from engine.instances.migration import MigrationProgress, MigrationReport, migrate_pathway
from engine.instances.service import PathwayService

__all__ = ["MigrationRequestInfo", "approve_migration", "list_migration_requests", "request_migration"]

REQUESTED, APPROVED, EXECUTED = "requested", "approved", "executed"


@dataclass(frozen=True)
class MigrationRequestInfo:
    """A migration request: who asked and what their dry run reported; who approved it, and what the run did."""

    id: str
    pathway_id: str
    target_version: str
    status: str  # requested | approved | executed
    requested_by: str
    requested_at: str
    report: dict[str, Any]
    approved_by: str | None
    approved_at: str | None
    result: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def without_patients(report: MigrationReport) -> dict[str, Any]:
    """A report as authors and the request record see it: instances by id, never by patient."""
    body = report.as_dict()
    body["instances"] = [{k: v for k, v in item.items() if k != "patient_ref"} for item in body["instances"]]
    return body


def request_migration(
    service: PathwayService, pathway_id: str, actor: str
) -> tuple[MigrationRequestInfo, MigrationReport]:
    """Run a dry run of moving the pathway's instances to its active version and keep it as a request;
    returns the request and the dry run's report.

    Raises: NotFoundError (no active version of the pathway).
    """
    report = migrate_pathway(service, pathway_id, actor, dry_run=True)
    row = MigrationRequest(
        id=str(uuid.uuid4()),
        pathway_id=pathway_id,
        target_version=report.to_version,
        status=REQUESTED,
        requested_by=actor,
        requested_at=service.clock.now(),
        report=json.dumps(without_patients(report)),
    )
    with unit_of_work(service.sessions) as session:
        session.add(row)
        session.flush()
        record_deployment(
            session,
            "migration_requested",
            at=row.requested_at,
            actor=actor,
            kind="migration",
            subject=row.id,
            version=row.target_version,
            content=content_digest(pathway_id, row.report),
        )
        return _info(row), report


def approve_migration(
    service: PathwayService,
    request_id: str,
    actor: str,
    *,
    pathway_id: str | None = None,
    progress: Callable[[MigrationProgress], None] | None = None,
    part: tuple[int, int] = (1, 1),
) -> tuple[MigrationRequestInfo, MigrationReport]:
    """Approve a request as a second author and run it (``part`` and ``progress`` as
    :func:`~engine.instances.migration.migrate_pathway`); returns the request and the run's report.

    Raises:
        NotFoundError: no such request (of ``pathway_id``, when given).
        FourEyesError: ``actor`` asked for it (as the same person) or names no person (four eyes on).
        VersionStateError: it was executed already, or the pathway's active version changed since.
    """
    with unit_of_work(service.sessions) as session:
        row = _row(session, request_id)
        if pathway_id is not None and row.pathway_id != pathway_id:
            raise NotFoundError(f"no migration request {request_id!r} of pathway {pathway_id!r}")
        if row.status == EXECUTED:
            raise VersionStateError(
                f"migration request {request_id} was executed at {_iso(row.approved_at)} by {row.approved_by}"
            )
        if service.settings.four_eyes:
            require_second_person(row.requested_by, actor, f"approving migration request {request_id}")
        if row.status == REQUESTED:  # guarded: of two approvals at once, one records itself (both run: see above)
            now = service.clock.now()
            approved = session.execute(
                update(MigrationRequest)
                .where(MigrationRequest.id == row.id, MigrationRequest.status == REQUESTED)
                .values(status=APPROVED, approved_by=actor, approved_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(approved, "rowcount", 0) == 1:
                record_deployment(
                    session,
                    "migration_approved",
                    at=now,
                    actor=actor,
                    kind="migration",
                    subject=row.id,
                    version=row.target_version,
                )
        pathway, target = row.pathway_id, row.target_version
    report = migrate_pathway(
        service, pathway, actor, dry_run=False, progress=progress, part=part, approved_target=target
    )
    with unit_of_work(service.sessions) as session:
        row = _row(session, request_id)
        row.result = json.dumps(without_patients(report))
        if part == (1, 1):
            row.status = EXECUTED
        session.flush()
        return _info(row), report


def list_migration_requests(service: PathwayService, pathway_id: str | None = None) -> list[MigrationRequestInfo]:
    """Migration requests, newest first (of one pathway when given)."""
    query = select(MigrationRequest).order_by(MigrationRequest.requested_at.desc(), MigrationRequest.id)
    if pathway_id is not None:
        query = query.where(MigrationRequest.pathway_id == pathway_id)
    with read_only(service.sessions) as session:
        return [_info(row) for row in session.scalars(query.limit(500))]


def _row(session: Any, request_id: str) -> MigrationRequest:
    row = session.get(MigrationRequest, request_id) if len(request_id) <= 36 else None
    if row is None:
        raise NotFoundError(f"no migration request {request_id!r}")
    return row


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _info(row: MigrationRequest) -> MigrationRequestInfo:
    return MigrationRequestInfo(
        row.id,
        row.pathway_id,
        row.target_version,
        row.status,
        row.requested_by,
        _iso(row.requested_at) or "",
        json.loads(row.report),
        row.approved_by,
        _iso(row.approved_at),
        None if row.result is None else json.loads(row.result),
    )
