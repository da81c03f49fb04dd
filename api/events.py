"""The event trail: one instance's events, and verification of the hash chains.

Verifying named instances (at most 100) is one request. Verifying every trail is a job: POST
/v1/audit/verifications answers 202 with its Location at once; GET there shows its progress and
then its result (:mod:`engine.verifications`).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, request, url_for

from engine.care_teams import reachable
from engine.db.session import read_only
from engine.errors import Problem
from engine.verifications import get_verification, request_verification, run_verification

from . import carepath, queries
from .auth import current_principal, requires
from .errors import ApiError
from .jobs import BackgroundJobs

bp = Blueprint("events", __name__, url_prefix="/v1")

_MAX_IDS = 100
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@bp.get("/instances/<uuid:instance_id>/events")
@requires("events.read")
def list_events(instance_id: Any) -> dict[str, Any]:
    return {"items": queries().events(str(instance_id))}


@bp.get("/audit/verify")
@requires("audit.verify")
def verify() -> dict[str, Any]:
    ids = request.args.getlist("instance_id")
    if len(ids) > _MAX_IDS:
        raise ApiError(
            400,
            "request-invalid",
            "too many instance ids",
            [Problem(f"at most {_MAX_IDS}; verify without ids to check every instance", field="instance_id")],
        )
    if not ids:
        raise ApiError(
            400,
            "request-invalid",
            "name the instances to verify",
            [Problem("verifying every trail is a job: POST /v1/audit/verifications", field="instance_id")],
        )
    if not all(_UUID.match(i) for i in ids):
        raise ApiError(
            400,
            "request-invalid",
            "instance_id must be an instance id",
            [Problem("must be a UUID", field="instance_id")],
        )
    principal = current_principal()
    if not principal.scope.everywhere:  # an auditor of one organisation: another's instance is as if missing
        with read_only(carepath().sessions) as session:
            ids = sorted(reachable(session, principal.scope, ids))
    problems = queries().verify(ids) if ids else []
    return {
        "verified": not problems,
        "problems": [{"instance_id": p.instance_id, "seq": p.seq, "message": p.message} for p in problems],
    }


@bp.post("/audit/verifications")
@requires("audit.verify")
def start_verification() -> tuple[dict[str, Any], int, dict[str, str]]:
    """A job over every trail; an auditor of one organisation's, over that organisation's trails only."""
    engine = carepath()
    principal = current_principal()
    job = request_verification(engine.sessions, principal.actor, engine.clock.now(), principal.scope.organisation)
    jobs: BackgroundJobs = current_app.extensions["carepath.jobs"]
    jobs.start(
        f"verification-{job.id}",
        lambda: run_verification(
            engine.sessions, job.id, engine.clock.now, engine.settings.checkpoint_dir, jobs=engine.settings.verify_jobs
        ),
    )
    return job.as_dict(), 202, {"Location": url_for(".get_verification_job", job_id=job.id)}


@bp.get("/audit/verifications/<uuid:job_id>")
@requires("audit.verify")
def get_verification_job(job_id: Any) -> dict[str, Any]:
    """The job; an auditor of one organisation reads only its organisation's jobs (another's: 404)."""
    return get_verification(
        carepath().sessions, str(job_id), organisation=current_principal().scope.organisation
    ).as_dict()
