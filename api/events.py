"""The event trail: one instance's events, and verification of the hash chains."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request

from engine.errors import Problem

from . import queries
from .auth import requires
from .errors import ApiError

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
        raise ApiError(400, "request-invalid", "too many instance ids",
                       [Problem(f"at most {_MAX_IDS}; verify without ids to check every instance",
                                field="instance_id")])
    if not all(_UUID.match(i) for i in ids):
        raise ApiError(400, "request-invalid", "instance_id must be an instance id",
                       [Problem("must be a UUID", field="instance_id")])
    problems = queries().verify(ids or None)
    return {"verified": not problems,
            "problems": [{"instance_id": p.instance_id, "seq": p.seq, "message": p.message} for p in problems]}
