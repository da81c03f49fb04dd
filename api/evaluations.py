"""Rule evaluations: those of an instance, one with the exact rule texts it used, and why (or why
not) it proposed a code. Decision table evaluations (business rule tasks): those of an instance, and
one explained rule by rule.

Rule files are named by their file name, not where the server keeps them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Blueprint

from engine.errors import Problem
from engine.rules import WhyExplanation, WhyNotExplanation

from . import carepath, queries
from .auth import requires
from .errors import ApiError
from .openapi import DOCUMENT
from .parsing import query_str

bp = Blueprint("evaluations", __name__, url_prefix="/v1")

_CODE = next(
    p["schema"]["pattern"]
    for p in DOCUMENT["paths"]["/v1/evaluations/{evaluation_id}/explanation"]["get"]["parameters"]
    if p["name"] == "why"
)


@bp.get("/instances/<uuid:instance_id>/evaluations")
@requires("evaluations.read")
def list_evaluations(instance_id: Any) -> dict[str, Any]:
    return {"items": queries().evaluations(str(instance_id))}


@bp.get("/evaluations/<uuid:evaluation_id>")
@requires("evaluations.read", named="evaluation")
def get_evaluation(evaluation_id: Any) -> dict[str, Any]:
    stored = queries().evaluation(str(evaluation_id))
    return {
        "id": stored.id,
        "ruleset": stored.ruleset_name,
        "ruleset_version": stored.ruleset_version,
        "catalogue_version": stored.catalogue_version,
        "created_at": stored.created_at.isoformat(),
        "instance_id": stored.instance_id,
        "task_id": stored.task_id,
        "firings": [f.as_dict() for f in stored.firings],
        "outcomes": stored.outcomes,
        "facts": stored.facts,
        "rule_file": Path(stored.rule_path).name,
        "rule_text": stored.rule_source,
        "catalogue_texts": stored.catalogue_sources,
        "trail_event": queries().evaluation_event(stored.id, stored.instance_id),
    }


@bp.get("/evaluations/<uuid:evaluation_id>/explanation")
@requires("evaluations.read", named="evaluation")
def explain(evaluation_id: Any) -> dict[str, Any]:
    why, why_not = query_str("why", _CODE), query_str("why_not", _CODE)
    if (why is None) == (why_not is None):
        raise ApiError(
            400,
            "request-invalid",
            "ask about one code: why=CODE or why_not=CODE",
            [Problem("give exactly one of why and why_not", field="why")],
        )
    explanation = queries().explanation(carepath().rules, str(evaluation_id), why=why, why_not=why_not)
    return _explained(explanation)


@bp.get("/instances/<uuid:instance_id>/concerns")
@requires("evaluations.read")
def concern_trends(instance_id: Any) -> dict[str, Any]:
    """Per concern, its scores over the instance's assessments (a concern not scored counts as 0)."""
    return queries().concern_trends(str(instance_id))


@bp.get("/instances/<uuid:instance_id>/decision-evaluations")
@requires("evaluations.read")
def list_decision_evaluations(instance_id: Any) -> dict[str, Any]:
    return {"items": queries().decision_evaluations(str(instance_id))}


@bp.get("/decision-evaluations/<uuid:evaluation_id>")
@requires("evaluations.read", named="decision_evaluation")
def get_decision_evaluation(evaluation_id: Any) -> dict[str, Any]:
    """A decision table evaluation: inputs, matched rules, outputs, table version, and why, rule by rule."""
    stored, explanation = queries().decision_evaluation(str(evaluation_id))
    return {**stored.as_dict(), "explanation": asdict(explanation)}


def _explained(explanation: WhyExplanation | WhyNotExplanation) -> dict[str, Any]:
    """The explanation as JSON and as text, with rule files named by their file name only."""
    files: set[str] = set()
    body = _without_folders(asdict(explanation), files)
    text = explanation.text()
    for file in sorted(files, key=len, reverse=True):
        text = text.replace(file, Path(file).name)
    return {"kind": "why" if isinstance(explanation, WhyExplanation) else "why_not", **body, "text": text}


def _without_folders(value: Any, files: set[str]) -> Any:
    """``value`` with every location's file cut to its name (the files seen are added to ``files``)."""
    if isinstance(value, dict):
        if set(value) == {"file", "line", "column"}:
            files.add(str(value["file"]))
            return {**value, "file": Path(value["file"]).name}
        return {k: _without_folders(v, files) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_folders(v, files) for v in value]
    return value
