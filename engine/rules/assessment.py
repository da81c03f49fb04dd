"""What happens to one patient: the assessment rules read, the rules that fired, and the outcomes.

The rule files' side (``RuleFile``, ``Rule``, conditions, context fields) is in
:mod:`engine.rules.model`. Everything is immutable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from engine.errors import InvalidInputError, Problem
from engine.rules.model import CONTEXT_FIELDS, ContextField, normalised_text

__all__ = [
    "Assessment",
    "Firing",
    "Outcomes",
    "PatientContext",
    "ResolvedItem",
    "ResolvedReferral",
    "is_iso_date",
]


@dataclass(frozen=True)
class PatientContext:
    """What is known about the patient besides the concerns. ``None`` means not known."""

    age: int | None = None
    diagnosis: str | None = None
    treatment_phase: str | None = None
    work_status: str | None = None
    wants_to_return_to_work: bool | None = None
    caring_duties: bool | None = None
    lives_alone: bool | None = None
    travel_minutes: float | None = None
    travel_km: float | None = None
    on_sact: bool | None = None
    on_immunotherapy: bool | None = None
    last_sact_date: str | None = None
    smoking_status: str | None = None
    emotional_concern_persists: bool | None = None
    on_palliative_route: bool | None = None

    def as_fact_fields(self) -> dict[str, Any]:
        """The context fact's fields: those known, a text (the diagnosis) as :func:`normalised_text`."""
        fields = {k: v for k in CONTEXT_FIELDS if (v := getattr(self, k)) is not None}
        for name in _TEXT_FIELDS:
            if isinstance(fields.get(name), str):
                fields[name] = normalised_text(fields[name])
        return fields


_TEXT_FIELDS = tuple(name for name, spec in CONTEXT_FIELDS.items() if spec.kind == "text")


@dataclass(frozen=True)
class Assessment:
    """A holistic needs assessment: concern code -> score 0-10, and the patient context.

    ``previous`` holds the scores of the patient's previous assessment (``None``: this is the first),
    so each concern fact carries its change since then (a concern not scored then counts as 0).
    """

    concerns: Mapping[str, int]
    context: PatientContext = field(default_factory=PatientContext)
    previous: Mapping[str, int] | None = None
    # The site of the patient's own pathway (``breast`` on ``breast_cancer``), for a diagnosis that names
    # no site of its own (engine.rules.diagnoses); not a fact itself.
    pathway_site: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Build from ``{"concerns": {code: score}, "context": {...}, "previous": {code: score}}``
        (e.g. task data; ``previous`` is optional).

        Raises:
            InvalidInputError: naming every bad field (unknown context field, wrong type).
        """
        problems: list[Problem] = []
        concerns = _scores(data.get("concerns") or {}, "/concerns", problems)
        previous = None if data.get("previous") is None else _scores(data["previous"], "/previous", problems)
        context_in = data.get("context") or {}
        context: dict[str, Any] = {}
        for name, value in dict(context_in).items():
            spec = CONTEXT_FIELDS.get(name)
            if spec is None:
                problems.append(Problem("unknown context field", field=f"/context/{name}"))
            elif value is not None and not _fits(spec, value):
                problems.append(Problem(f"expected {_expected(spec)}", field=f"/context/{name}"))
            else:
                context[name] = value
        if problems:
            raise InvalidInputError("assessment is invalid", problems)
        return cls(concerns=concerns, context=PatientContext(**context), previous=previous)

    def as_dict(self) -> dict[str, Any]:
        out = {"concerns": dict(self.concerns), "context": self.context.as_fact_fields()}
        if self.previous is not None:
            out["previous"] = dict(self.previous)
        return out


def _scores(given: Any, where: str, problems: list[Problem]) -> dict[str, int]:
    """Concern code -> a whole number 0-10; each bad entry is added to ``problems``."""
    if not isinstance(given, Mapping):
        raise InvalidInputError("assessment is invalid", [Problem("expected a mapping", field=where)])
    scores: dict[str, int] = {}
    for code, score in given.items():
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
            problems.append(Problem("expected a whole number from 0 to 10", field=f"{where}/{code}"))
        else:
            scores[str(code)] = score
    return scores


@dataclass(frozen=True)
class Firing:
    """One rule firing: which rule, and the ids of the facts that matched it."""

    rule_id: str
    matched: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule_id, "matched": list(self.matched)}


@dataclass(frozen=True)
class ResolvedReferral:
    intervention: str
    service: str
    urgency: str
    rules: tuple[str, ...]
    needs_review: bool = False


@dataclass(frozen=True)
class ResolvedItem:
    """An intervention offered, information given or an intervention not recommended."""

    code: str
    rules: tuple[str, ...]
    reason: str | None = None
    needs_review: bool = False


@dataclass(frozen=True)
class Outcomes:
    """What the fired rules propose, merged: one entry per code, the most urgent urgency.

    ``needs_review`` marks a code that one fired rule recommends and another advises against.
    """

    referrals: tuple[ResolvedReferral, ...] = ()
    interventions: tuple[ResolvedItem, ...] = ()
    information: tuple[ResolvedItem, ...] = ()
    not_recommended: tuple[ResolvedItem, ...] = ()
    priority: str | None = None

    def as_dict(self) -> dict[str, Any]:
        def item(i: ResolvedItem) -> dict[str, Any]:
            out: dict[str, Any] = {"code": i.code, "rules": list(i.rules)}
            if i.reason:
                out["reason"] = i.reason
            if i.needs_review:
                out["needs_review"] = True
            return out

        return {
            "referrals": [
                {
                    "intervention": r.intervention,
                    "service": r.service,
                    "urgency": r.urgency,
                    "rules": list(r.rules),
                    **({"needs_review": True} if r.needs_review else {}),
                }
                for r in self.referrals
            ],
            "interventions": [item(i) for i in self.interventions],
            "information": [item(i) for i in self.information],
            "not_recommended": [item(i) for i in self.not_recommended],
            "priority": self.priority,
        }

    @cached_property
    def json_text(self) -> str:
        """``as_dict()`` as JSON text, encoded once per object: :func:`.evaluator.resolve_outcomes`
        hands the same object to every evaluation that fired the same rules, so storing outcomes
        costs one encoding per distinct set of fired rules, not one per evaluation."""
        return json.dumps(self.as_dict())

    def codes(self) -> set[str]:
        return (
            {r.intervention for r in self.referrals}
            | {i.code for i in self.interventions}
            | {i.code for i in self.information}
        )


def _fits(spec: ContextField, value: Any) -> bool:
    if spec.kind == "boolean":
        return isinstance(value, bool)
    if spec.kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if spec.kind == "choice":
        return value in spec.choices
    if spec.kind == "date":
        return isinstance(value, str) and is_iso_date(value)
    return isinstance(value, str)


def is_iso_date(value: str) -> bool:
    """``YYYY-MM-DD`` and a real date (2026-02-30 is not)."""
    if len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _expected(spec: ContextField) -> str:
    if spec.kind == "choice":
        return "one of " + ", ".join(spec.choices)
    return {"boolean": "true or false", "number": "a number", "text": "text", "date": "a date YYYY-MM-DD"}[spec.kind]
