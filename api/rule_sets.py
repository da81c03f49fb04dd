"""/v1/rule-sets: four eyes for rule sets. An author records the rules folder's current texts (a
changed file becomes a pending version); a second author activates one; evaluations in pathways use
the active version (engine/rules/activation.py)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint

from engine.errors import NotFoundError

from . import carepath
from .auth import current_principal, requires
from .parsing import json_body

bp = Blueprint("rule_sets", __name__, url_prefix="/v1/rule-sets")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_VERSION = re.compile(r"^[0-9a-f]{4,64}$")


def _name(value: str) -> str:
    """Raises: NotFoundError for names no rule set can have."""
    if not _NAME.match(value):
        raise NotFoundError("no such rule set")
    return value


@bp.post("")
@requires("rule_sets.deploy")
def deploy() -> tuple[dict[str, Any], int]:
    """Record the rules folder's current version of every rule set: a changed text is pending."""
    json_body("Activation", required=False)
    versions = carepath().rule_sets.sync(actor=current_principal().actor)
    return {"items": [info.as_dict() for info in versions]}, 201


@bp.get("/<ruleset>/versions")
@requires("pathways.read")
def versions(ruleset: str) -> dict[str, Any]:
    return {"items": [info.as_dict() for info in carepath().rule_sets.versions(_name(ruleset))]}


@bp.post("/<ruleset>/versions/<version>/activation")
@requires("rule_sets.activate")
def activate(ruleset: str, version: str) -> dict[str, Any]:
    """Four eyes: a second author makes a pending rule-set version the one evaluations use."""
    if not _VERSION.match(version):
        raise NotFoundError("no such version")
    json_body("Activation", required=False)
    return carepath().rule_sets.activate(_name(ruleset), version, current_principal().actor).as_dict()
