"""/v1/pathways: deployed pathways, their versions and diagrams; validating and deploying uploads;
migrating running instances to a pathway's newest version."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response

from engine.errors import NotFoundError
from engine.instances.migration import migrate_pathway
from engine.pathways.validation import validate_paths

from . import carepath
from .auth import current_principal, requires
from .parsing import json_body, query_str, uploaded_files

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


@bp.get("/<pathway_id>/versions")
@requires("pathways.read")
def list_versions(pathway_id: str) -> dict[str, Any]:
    return {"items": [info.as_dict() for info in carepath().catalog.versions(_pathway_id(pathway_id))]}


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
    files = uploaded_files()
    settings = carepath().settings
    with tempfile.TemporaryDirectory(prefix="carepath-upload-") as folder:
        root = Path(folder)
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        problems = validate_paths([root], pathways_root=settings.pathways_dir)
    # Report files by their uploaded names, not the server's temporary folder.
    prefix = str(root) + "/"
    found = [{k: (v.removeprefix(prefix) if k == "file" and isinstance(v, str) else v)
              for k, v in p.as_dict().items()} for p in problems]
    return {"valid": not found, "problems": found}


@bp.post("")
@requires("pathways.deploy")
def deploy_upload() -> tuple[dict[str, Any], int]:
    infos = carepath().catalog.deploy_upload(uploaded_files(), actor=current_principal().actor)
    return {"items": [info.as_dict() for info in infos]}, 201


@bp.post("/<pathway_id>/migrate")
@requires("pathways.migrate")
def migrate(pathway_id: str) -> dict[str, Any]:
    dry_run = json_body("MigrateRequest")["dry_run"]
    report = migrate_pathway(carepath().instances, _pathway_id(pathway_id), current_principal().actor,
                             dry_run=dry_run)
    # Authors may not read instances: the report names them by id, not by patient.
    body = report.as_dict()
    body["instances"] = [{k: v for k, v in item.items() if k != "patient_ref"} for item in body["instances"]]
    return body
