"""Auditors' pages: a patient's rule evaluations, one evaluation with its facts, fired rules, outcomes,
exact rule text and version and why (or why not) any code, and the event trail's verification."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Blueprint, render_template, request

from engine.errors import RuleFileError
from engine.instances.queries import InstanceFilter

from .. import carepath, queries
from ..access_log import shows_patients
from .auth import page, scope

bp = Blueprint("auditors", __name__)

_CODE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


@bp.get("/patients/<uuid:instance_id>/evaluations")
@page("evaluations.read")
def evaluations(instance_id: Any) -> str:
    return render_template(
        "web/evaluations.html", instance_id=str(instance_id), evaluations=queries().evaluations(str(instance_id))
    )


@bp.get("/evaluations/<uuid:evaluation_id>")
@page("evaluations.read", named="evaluation")
def evaluation(evaluation_id: Any) -> str | tuple[str, int]:
    """One evaluation; ``?why=CODE`` or ``?why_not=CODE`` adds the explanation."""
    stored = queries().evaluation(str(evaluation_id))
    asked = {k: v for k in ("why", "why_not") if _CODE.match(v := request.args.get(k, "").strip())}
    code, ask = request.args.get("code", "").strip(), request.args.get("ask", "")
    if ask in ("why", "why_not") and _CODE.match(code):  # the form: a code and which question
        asked = {ask: code}
    explanation, failed = None, False
    if len(asked) == 1:
        try:
            found = queries().explanation(carepath().rules, stored.id, **asked)
        except RuleFileError:
            failed = True
        else:
            explanation = found.text().replace(str(Path(stored.rule_path).parent) + "/", "")
    return render_template(
        "web/evaluation.html",
        stored=stored,
        rule_file=Path(stored.rule_path).name,
        asked=asked,
        explanation=explanation,
        failed=failed,
        codes=_codes(stored.outcomes),
        proposed=_proposed(stored.outcomes),
        assessed=_assessed(stored.facts),
        trail_event=queries().evaluation_event(stored.id, stored.instance_id),
    )


# The outcomes an evaluation records, in the order the care plan offers them: (key, kind, the item's code key).
_PROPOSED = (
    ("referrals", "referral", "intervention"),
    ("interventions", "intervention", "code"),
    ("information", "information", "code"),
)


def _proposed(outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    """What an evaluation proposed, one row each: its code, kind, service and urgency (a referral's) and
    the rules that proposed it, for the page's table (the recorded JSON stays beside it)."""
    rows = []
    for key, kind, code_key in _PROPOSED:
        for item in outcomes.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get(code_key), str):
                rules = item.get("rules")
                rows.append(
                    {
                        "code": item[code_key],
                        "kind": kind,
                        "service": item.get("service") if isinstance(item.get("service"), str) else None,
                        "urgency": item.get("urgency") if isinstance(item.get("urgency"), str) else None,
                        "rules": [r for r in rules if isinstance(r, str)] if isinstance(rules, list) else [],
                    }
                )
    return rows


def _assessed(facts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The concerns scored (highest first) and the context an evaluation read, for the page's tables."""

    def order(fact: dict[str, Any]) -> tuple[float, str]:
        score = fact.get("score")
        return (-score if isinstance(score, int | float) else 0.0, str(fact["code"]))

    concerns = sorted(
        (f for f in facts if isinstance(f, dict) and f.get("t") == "concern" and isinstance(f.get("code"), str)),
        key=order,
    )
    context = next((f for f in facts if isinstance(f, dict) and f.get("t") == "context"), {})
    return concerns, {k: v for k, v in context.items() if k not in ("id", "t")}


def _codes(outcomes: dict[str, Any]) -> list[str]:
    """Every code an evaluation's outcomes name (referrals by intervention, interventions, information)."""
    found: list[str] = []
    for value in outcomes.values():
        for item in value if isinstance(value, list) else []:
            code = item.get("intervention") or item.get("code") if isinstance(item, dict) else item
            if isinstance(code, str) and code not in found:
                found.append(code)
    return found


@bp.get("/audit/trail")
@shows_patients  # it lists patients: a look, recorded (the API's audit.verify routes show no patient)
@page("audit.verify")
def trail() -> str:
    """Each instance's event trail verified (50 a page), with its result: intact, or what is wrong."""
    cursor = request.args.get("cursor", "")
    found = queries().find(InstanceFilter(scope=scope()), cursor if _CURSOR.match(cursor) else None, 50)
    problems = queries().verify([item["id"] for item in found.items]) if found.items else []
    by_instance: dict[str, list[Any]] = {}
    for problem in problems:
        by_instance.setdefault(problem.instance_id, []).append(problem)
    return render_template("web/trail.html", found=found, by_instance=by_instance)
