"""/v1/pathways: deployed pathways, their versions and diagrams; validating and deploying uploads;
migrating running instances to a pathway's newest version."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response
from sqlalchemy import select

from engine.db.models import PathwayInstance
from engine.db.session import read_only
from engine.errors import DiagramError, NotFoundError
from engine.instances.migration import migrate_pathway
from engine.instances.migration_requests import (
    approve_migration,
    list_migration_requests,
    request_migration,
    without_patients,
)
from engine.pathways.validation import errors_in
from engine.pathways.validation import validate_upload as check_upload

from . import carepath
from .auth import current_principal, requires
from .errors import ApiError
from .parsing import json_body, query_str, uploaded_bundle

bp = Blueprint("pathways", __name__, url_prefix="/v1/pathways")

_PATHWAY_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_VERSION = re.compile(r"^(latest|[0-9a-f]{4,64})$")


def _pathway_id(value: str) -> str:
    """Raises: NotFoundError for ids no pathway can have."""
    if not _PATHWAY_ID.match(value):
        raise NotFoundError("no such pathway")
    return value


@bp.get("")
@requires("pathways.read")
def list_pathways() -> dict[str, Any]:
    return {"items": [info.as_dict() for info in carepath().catalog.pathways()]}


@bp.get("/<pathway_id>")
@requires("pathways.read")
def get_pathway(pathway_id: str) -> dict[str, Any]:
    catalog = carepath().catalog
    info = catalog.current(_pathway_id(pathway_id))
    return {**info.as_dict(), "start_schema": catalog.start_schema(pathway_id, info.version)}


@bp.get("/<pathway_id>/versions")
@requires("pathways.read")
def list_versions(pathway_id: str) -> dict[str, Any]:
    return {"items": [info.as_dict() for info in carepath().catalog.versions(_pathway_id(pathway_id))]}


@bp.post("/<pathway_id>/versions/<version>/activation")
@requires("pathways.activate")
def activate_version(pathway_id: str, version: str) -> dict[str, Any]:
    """Four eyes: a second author makes a pending version the one new instances start on."""
    if not _VERSION.match(version) or version == "latest":
        raise NotFoundError("no such version")
    json_body("Activation", required=False)
    return carepath().catalog.activate(_pathway_id(pathway_id), version, current_principal().actor).as_dict()


@bp.get("/<pathway_id>/versions/<version>/diagram")
@requires("pathways.read")
def get_diagram(pathway_id: str, version: str) -> Response:
    if not _VERSION.match(version):
        raise NotFoundError("no such version")
    file_name = query_str("file", r"^[A-Za-z0-9_./-]{1,300}$")
    xml = carepath().catalog.diagram(_pathway_id(pathway_id), None if version == "latest" else version, file_name)
    return Response(xml, mimetype="application/xml")


@bp.post("/validate")
@requires("pathways.validate")
def validate_upload() -> dict[str, Any]:
    """The checks a deploy of the same upload runs (valid: it would deploy; warnings do not stop it),
    and what the bundle holds and lacks, by name."""
    catalog = carepath().catalog
    bundle = uploaded_bundle()
    problems = check_upload(
        bundle.files,
        pathways_root=catalog.library.root,
        known_rule_sets=catalog.known_rule_sets(),
        known_operators=catalog.known_operators(),
    )
    return {
        "valid": not errors_in(problems),
        "problems": [p.as_dict() for p in problems],
        "bundle": catalog.survey(bundle.files, bundle.ignored).as_dict(),
    }


@bp.post("")
@requires("pathways.deploy")
def deploy_upload() -> tuple[dict[str, Any], int]:
    catalog, bundle = carepath().catalog, uploaded_bundle()
    try:
        deployment = catalog.deploy_bundle(bundle, actor=current_principal().actor)
    except DiagramError as exc:  # refused: say what the bundle held and lacked, beside the located problems
        raise ApiError(
            422,
            "diagram-invalid",
            exc.message,
            exc.problems,
            members={"bundle": catalog.survey(bundle.files, bundle.ignored).as_dict()},
        ) from exc
    body: dict[str, Any] = {"items": [info.as_dict() for info in deployment]}
    if deployment.bundle is not None:
        body["bundle"] = deployment.bundle.as_dict()
    if deployment.warnings:
        body["warnings"] = [p.as_dict() for p in deployment.warnings]
    return body, 201


@bp.post("/<pathway_id>/migrate")
@requires("pathways.migrate")
def migrate(pathway_id: str) -> dict[str, Any]:
    dry_run = json_body("MigrateRequest")["dry_run"]
    report = migrate_pathway(carepath().instances, _pathway_id(pathway_id), current_principal().actor, dry_run=dry_run)
    return without_patients(report)  # authors may not read instances: named by id, not by patient


_REQUEST_ID = re.compile(r"^[0-9a-f-]{36}$")


@bp.post("/<pathway_id>/migration-requests")
@requires("pathways.migrate")
def ask_for_migration(pathway_id: str) -> tuple[dict[str, Any], int]:
    """Four eyes: ask for the pathway's instances to move to its active version; the dry run is kept."""
    json_body("Activation", required=False)
    asked, _ = request_migration(carepath().instances, _pathway_id(pathway_id), current_principal().actor)
    return asked.as_dict(), 201


@bp.get("/<pathway_id>/migration-requests")
@requires("migrations.read")
def migration_requests(pathway_id: str) -> dict[str, Any]:
    """Migration requests with their reports; a caller scoped to an organisation (an auditor of one trust)
    sees in each report only the instances it reaches: the others are another organisation's records."""
    items = [info.as_dict() for info in list_migration_requests(carepath().instances, _pathway_id(pathway_id))]
    scope = current_principal().scope
    if scope.everywhere:
        return {"items": items}
    listed = {
        str(entry.get("instance_id"))
        for item in items
        for report in (item["report"], item["result"] or {})
        for entry in report.get("instances", [])
    }
    with read_only(carepath().sessions) as session:
        reached = set(
            session.scalars(select(PathwayInstance.id).where(PathwayInstance.id.in_(sorted(listed)), scope.condition()))
        )
    for item in items:
        for key in ("report", "result"):
            if item[key] is not None:
                item[key] = {
                    **item[key],
                    "instances": [e for e in item[key].get("instances", []) if e.get("instance_id") in reached],
                }
    return {"items": items}


@bp.post("/<pathway_id>/migration-requests/<request_id>/approval")
@requires("pathways.migrate")
def approve(pathway_id: str, request_id: str) -> dict[str, Any]:
    """Four eyes: a second author approves a migration request, which runs it."""
    if not _REQUEST_ID.match(request_id):
        raise NotFoundError("no such migration request")
    json_body("Activation", required=False)
    info, _ = approve_migration(
        carepath().instances, request_id, current_principal().actor, pathway_id=_pathway_id(pathway_id)
    )
    return info.as_dict()
