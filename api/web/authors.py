"""Authors' pages: the pathway library with its versions, a version's diagram with its validation
problems as markers on the elements they name, checking a diagram file before deploying it, and the
migration: its dry run as a report, asked for by one author and approved (and run) by a second."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.errors import DiagramError, FourEyesError, NotFoundError, Problem, VersionStateError
from engine.instances.migration import migrate_pathway
from engine.instances.migration_requests import approve_migration, list_migration_requests, request_migration
from engine.pathways.diagrams import parse_diagram
from engine.pathways.outline import MAX_STEPS, ProcessOutline, outline
from engine.pathways.validation import validate_paths

from .. import carepath
from ..headers import EDITOR_POLICY
from .auth import actor, can, page
from .downloads import diagram_download

bp = Blueprint("authors", __name__, url_prefix="/pathways")

_PATHWAY_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_VERSION = re.compile(r"^[0-9a-f]{4,64}$")
_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.bpmn$")
MAX_DIAGRAM_BYTES = 1024 * 1024


def in_words(xml: bytes, name: str) -> list[ProcessOutline] | None:
    """The diagram in words (engine.pathways.outline), or None for a file that is not a BPMN diagram (its
    problems say why)."""
    try:
        return outline(parse_diagram(xml, name))
    except DiagramError:
        return None


def _checked(pathway_id: str, version: str | None = None) -> None:
    """Raises: NotFound (404) for ids no pathway or version can have."""
    if not _PATHWAY_ID.match(pathway_id) or (version is not None and not _VERSION.match(version)):
        abort(404)


def validate_diagram(name: str, xml: bytes) -> list[dict[str, Any]]:
    """The problems of one diagram, as ``carepath validate`` finds them against this server's library,
    each with the element it names (None when it names none) and the file by its own name."""
    with tempfile.TemporaryDirectory(prefix="carepath-check-") as folder:
        path = Path(folder) / name
        path.write_bytes(xml)
        problems: list[Problem] = validate_paths([path], pathways_root=carepath().settings.pathways_dir)
        prefix = folder + "/"
    return [{**p.as_dict(), "file": (p.file or "").removeprefix(prefix), "text": p.message} for p in problems]


@bp.get("")
@page("pathways.read")
def library() -> str:
    return render_template("web/library.html", pathways=carepath().catalog.pathways())


@bp.get("/<pathway_id>")
@page("pathways.read")
def versions(pathway_id: str) -> str:
    _checked(pathway_id)
    return render_template(
        "web/versions.html", pathway_id=pathway_id, versions=carepath().catalog.versions(pathway_id), refusal=None
    )


@bp.post("/<pathway_id>/versions/<version>/activation")
@page("pathways.activate")
def activate(pathway_id: str, version: str) -> WerkzeugResponse | tuple[str, int]:
    """Four eyes: a second author activates a pending version (new instances start on it). Refused,
    with the reason on the versions page, for the author who deployed it."""
    _checked(pathway_id, version)
    found = _version(pathway_id, version)
    try:
        carepath().catalog.activate(pathway_id, found.version, actor())
    except (FourEyesError, VersionStateError) as exc:
        status = 403 if isinstance(exc, FourEyesError) else 409
        return render_template(
            "web/versions.html",
            pathway_id=pathway_id,
            refusal=exc.message,
            versions=carepath().catalog.versions(pathway_id),
        ), status
    return redirect(url_for(".versions", pathway_id=pathway_id), code=303)


@bp.get("/<pathway_id>/versions/<version>")
@page("pathways.read")
def version(pathway_id: str, version: str) -> str:
    """The version's diagram; authors also see its validation problems, marked on the diagram."""
    _checked(pathway_id, version)
    found = _version(pathway_id, version)
    xml = carepath().catalog.diagram(pathway_id, found.version)
    problems = validate_diagram(Path(found.main_file).name, xml) if can("pathways.validate") else None
    return render_template(
        "web/diagram.html",
        info=found,
        xml=xml.decode("utf-8", "replace"),
        problems=problems,
        name=found.main_file,
        outline=in_words(xml, found.main_file),
        max_steps=MAX_STEPS,
    )


@bp.get("/<pathway_id>/diff")
@page("pathways.read")
def diff(pathway_id: str) -> str:
    """Two versions' diagrams side by side; what was added, removed or changed is marked on them."""
    _checked(pathway_id)
    older, newer = request.args.get("from", ""), request.args.get("to", "")
    if not (_VERSION.match(older) and _VERSION.match(newer)):
        abort(404)
    catalog = carepath().catalog
    return render_template(
        "web/diff.html",
        pathway_id=pathway_id,
        older=older,
        newer=newer,
        older_xml=catalog.diagram(pathway_id, older).decode("utf-8", "replace"),
        newer_xml=catalog.diagram(pathway_id, newer).decode("utf-8", "replace"),
    )


@bp.get("/<pathway_id>/versions/<version>/edit")
@page("pathways.deploy")
def edit(pathway_id: str, version: str) -> Response:
    """The version's diagram in the bpmn-js modeler; saving deploys it as a new version."""
    _checked(pathway_id, version)
    found = _version(pathway_id, version)
    xml = carepath().catalog.diagram(pathway_id, found.version).decode("utf-8", "replace")
    return _editor(render_template("web/edit.html", info=found, xml=xml, problems=None))


def _editor(html: str, status: int = 200) -> Response:
    """The modeler's page, under the pages' policy with inline style attributes (api.headers)."""
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = EDITOR_POLICY
    return response


@bp.post("/<pathway_id>/versions/<version>/edit")
@page("pathways.deploy")
def save(pathway_id: str, version: str) -> WerkzeugResponse:
    """Deploy the edited diagram as a new version, through the same gate as ``carepath pathways deploy``
    and ``POST /v1/pathways``: refused with every problem, marked on the diagram, when it does not pass."""
    _checked(pathway_id, version)
    found = _version(pathway_id, version)
    xml = request.form.get("diagram", "")
    if not xml.strip() or len(xml.encode()) > MAX_DIAGRAM_BYTES:
        return _editor(render_template("web/edit.html", info=found, xml=xml, problems=[], error="check.choose"), 400)
    try:
        deployed = carepath().catalog.deploy_upload({Path(found.main_file).name: xml.encode()}, actor=actor())
    except DiagramError as exc:
        problems = [{**p.as_dict(), "text": p.message} for p in exc.problems] or [{"text": exc.message}]
        return _editor(render_template("web/edit.html", info=found, xml=xml, problems=problems), 422)
    saved = next((v for v in deployed if v.pathway_id == pathway_id), deployed[0])
    return redirect(url_for(".version", pathway_id=saved.pathway_id, version=saved.version[:12]), code=303)


def _version(pathway_id: str, version: str) -> Any:
    """Raises: NotFound (404) when no version, or more than one, of the pathway starts with ``version``."""
    try:
        return carepath().catalog.version(pathway_id, version)
    except NotFoundError:
        abort(404)


@bp.get("/<pathway_id>/versions/<version>/diagram.bpmn")
@page("pathways.read")
def diagram(pathway_id: str, version: str) -> Response:
    _checked(pathway_id, version)
    return diagram_download(carepath().catalog.diagram(pathway_id, version), f"{pathway_id}-{version}.bpmn")


@bp.route("/check", methods=["GET", "POST"])
@page("pathways.validate")
def check() -> str | tuple[str, int]:
    """Check a diagram file as ``carepath validate`` would, and show its problems on the diagram."""
    if request.method == "GET":
        return render_template("web/check.html", problems=None, xml=None, name=None, error=None)
    upload = request.files.get("diagram")
    name = Path(upload.filename or "").name if upload is not None else ""
    xml = upload.read(MAX_DIAGRAM_BYTES + 1) if upload is not None else b""
    error = (
        "check.choose"
        if not xml
        else "check.name"
        if not _FILE_NAME.match(name)
        else "check.too_large"
        if len(xml) > MAX_DIAGRAM_BYTES
        else None
    )
    if error is not None:
        return render_template("web/check.html", problems=None, xml=None, name=None, error=error), 400
    return render_template(
        "web/check.html",
        problems=validate_diagram(name, xml),
        error=None,
        name=name,
        xml=xml.decode("utf-8", "replace"),
        outline=in_words(xml, name),
        max_steps=MAX_STEPS,
    )


@bp.get("/<pathway_id>/migration")
@page("pathways.migrate")
def migration(pathway_id: str) -> str:
    """What moving the running instances to the active version would do, per instance (writes nothing),
    and the pathway's migration requests: asked for by one author, approved -- and run -- by a second.

    Instances are named by id only: authors may not read instances (as in the API's report).
    """
    _checked(pathway_id)
    return _migration_page(pathway_id)


@bp.post("/<pathway_id>/migration-requests")
@page("pathways.migrate")
def ask_for_migration(pathway_id: str) -> WerkzeugResponse:
    """Four eyes: ask for the migration the dry run shows; a second author approves it on this page."""
    _checked(pathway_id)
    asked, _report = request_migration(carepath().instances, pathway_id, actor())
    return redirect(url_for(".migration", pathway_id=pathway_id, _anchor=f"request-{asked.id}"), code=303)


@bp.post("/<pathway_id>/migration-requests/<request_id>/approval")
@page("pathways.migrate")
def approve(pathway_id: str, request_id: str) -> WerkzeugResponse | tuple[str, int]:
    """Four eyes: a second author approves a request, which moves the instances. Refused, with the reason
    on the page, for the author who asked (403), or when it was run already or the active version moved
    on since (409)."""
    _checked(pathway_id)
    if not _REQUEST_ID.match(request_id):
        abort(404)
    try:
        approve_migration(carepath().instances, request_id, actor(), pathway_id=pathway_id)
    except NotFoundError:
        abort(404)
    except (FourEyesError, VersionStateError) as exc:
        status = 403 if isinstance(exc, FourEyesError) else 409
        return _migration_page(pathway_id, refusal=exc.message), status
    return redirect(url_for(".migration", pathway_id=pathway_id, _anchor=f"request-{request_id}"), code=303)


def _migration_page(pathway_id: str, refusal: str | None = None) -> str:
    report = migrate_pathway(carepath().instances, pathway_id, actor(), dry_run=True)
    requests = list_migration_requests(carepath().instances, pathway_id)
    return render_template(
        "web/migration.html", report=report, pathway_id=pathway_id, requests=requests, refusal=refusal
    )
