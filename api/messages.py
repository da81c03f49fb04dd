"""/v1/messages: deliver a message to one patient's (or one instance's) waiting instances."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from . import carepath
from .auth import current_principal, requires
from .parsing import json_body
from .safety import instance_body

bp = Blueprint("messages", __name__, url_prefix="/v1/messages")


@bp.post("")
@requires("messages.send")
def send() -> dict[str, Any]:
    body = json_body("MessageRequest")
    principal = current_principal()
    views = carepath().instances.send_message(
        body["name"],
        principal.actor,
        patient_ref=body.get("patient_ref"),
        instance_id=body.get("instance_id"),
        payload=body.get("payload"),
        scope=principal.scope,
    )
    return {"delivered": [instance_body(view) for view in views]}
