"""/v1/sandbox/clock: move a sandbox deployment's clock forward (engine.sandbox); 404 outside one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from engine.errors import NotFoundError

from . import carepath
from .auth import requires
from .parsing import json_body

bp = Blueprint("sandbox", __name__, url_prefix="/v1/sandbox")


@bp.post("/clock")
@requires("sandbox.clock")
def advance() -> dict[str, Any]:
    sandbox = carepath().sandbox
    if sandbox is None:
        raise NotFoundError("not a sandbox: the clock is the real one (CAREPATH_SANDBOX is not set)")
    now = sandbox.advance(json_body("SandboxAdvance")["advance"])
    return {"now": now.isoformat(), "offset_seconds": sandbox.offset.total_seconds()}


def mark_response(response: Response) -> Response:
    """Every answer of a sandbox says so, with its clock: no one mistakes it for real care."""
    sandbox = carepath().sandbox
    if sandbox is not None:
        response.headers["CarePath-Sandbox"] = f"clock={sandbox.now().isoformat()}"
    return response
