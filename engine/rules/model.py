"""The rule model: what a rule file says, what an assessment is, and what an evaluation yields.

Specifications (``RuleFile``, ``Rule``, conditions, outcome specs) are separate from what
happens to one patient (``Assessment``, ``Firing``, ``Outcomes``). Everything is immutable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from engine.errors import InvalidInputError, Problem

__all__ = [
    "CONTEXT_FIELDS",
    "PRIORITIES",
    "SCORE_OPERATORS",
    "TREATMENT_PHASES",
    "URGENCIES",
    "WORK_STATUSES",
    "AllOf",
    "AnyOf",
    "Assessment",
    "Condition",
    "ConcernCondition",
    "ContextCondition",
    "ContextField",
    "Firing",
    "Guidance",
    "Loc",
    "NoneOf",
    "NotRecommendedSpec",
    "Outcomes",
    "PatientContext",
    "ReferralSpec",
    "ResolvedItem",
    "ResolvedReferral",
    "Rule",
    "RuleFile",
    "RuleOutcomeSpec",
]

Urgency = Literal["routine", "soon", "urgent"]
URGENCIES: tuple[str, ...] = ("routine", "soon", "urgent")  # least to most urgent
PRIORITIES: tuple[str, ...] = ("low", "medium", "high")  # least to most important

# Comparison words clinicians write, and durable-rules' operator for each.
SCORE_OPERATORS: dict[str, str] = {
    "at_least": "$gte",
    "at_most": "$lte",
    "more_than": "$gt",
    "less_than": "$lt",
    "equals": "$eq",
}

TREATMENT_PHASES: tuple[str, ...] = (
    "diagnosis",
    "prehabilitation",
    "treatment",
    "end_of_treatment",
    "follow_up",
    "palliative",
)
WORK_STATUSES: tuple[str, ...] = (
    "employed",
    "self_employed",
    "student",
    "unemployed",
    "retired",
    "unable_to_work",
)


@dataclass(frozen=True)
class ContextField:
    """One field of the patient context: its kind and, for choices, the allowed values."""

    name: str
    kind: Literal["number", "text", "choice", "boolean"]
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


CONTEXT_FIELDS: dict[str, ContextField] = {
    f.name: f
    for f in (
        ContextField("age", "number", "age in whole years", minimum=0, maximum=130),
        ContextField("diagnosis", "text", "cancer site or type, e.g. breast, lung, lymphoma"),
        ContextField("treatment_phase", "choice", "where the patient is on the pathway", TREATMENT_PHASES),
        ContextField("work_status", "choice", "work or study situation", WORK_STATUSES),
        ContextField("wants_to_return_to_work", "boolean", "the patient wants to return to work or study"),
        ContextField("caring_duties", "boolean", "the patient cares for children or another adult"),
        ContextField("lives_alone", "boolean", "the patient lives alone"),
        ContextField(
            "travel_minutes", "number", "one-way travel time to the treatment centre", minimum=0, maximum=2880
        ),
        ContextField("travel_km", "number", "one-way distance to the treatment centre", minimum=0, maximum=5000),
    )
}


@dataclass(frozen=True)
class Loc:
    """Where something was written: file, 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Guidance:
    """The evidence or guidance a rule or catalogue entry follows."""

    source: str
    title: str
    year: int | None = None
    section: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        year = f" ({self.year})" if self.year else ""
        section = f", {self.section}" if self.section else ""
        return f"{self.source}: {self.title}{year}{section}"


# --- conditions -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConcernCondition:
    """A concern from the assessment (by code, or any concern in a domain) with score tests.

    Several concern conditions in one ``all`` are met by *different* concerns (a join).
    """

    code: str | None
    domain: str | None
    score: tuple[tuple[str, float], ...]  # (operator word, threshold), all must hold
    loc: Loc

    def describe(self) -> str:
        what = self.code if self.code else f"any {self.domain} concern"
        tests = " and ".join(f"{op.replace('_', ' ')} {_num(v)}" for op, v in self.score)
        return f"{what} scored {tests}"


@dataclass(frozen=True)
class ContextCondition:
    """One test on the patient context: ``op`` is a score operator word, ``is`` or ``in``."""

    field: str
    op: str
    value: Any
    loc: Loc

    def describe(self) -> str:
        if self.op == "is":
            return f"{self.field} is {_show(self.value)}"
        if self.op == "in":
            return f"{self.field} is one of {', '.join(map(str, self.value))}"
        return f"{self.field} {self.op.replace('_', ' ')} {_show(self.value)}"


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]
    loc: Loc


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]
    loc: Loc


@dataclass(frozen=True)
class NoneOf:
    children: tuple[Condition, ...]
    loc: Loc


Condition = ConcernCondition | ContextCondition | AllOf | AnyOf | NoneOf

# --- outcomes (as written) --------------------------------------------------------------


@dataclass(frozen=True)
class ReferralSpec:
    intervention: str
    service: str
    urgency: str
    loc: Loc


@dataclass(frozen=True)
class NotRecommendedSpec:
    intervention: str
    reason: str
    loc: Loc


@dataclass(frozen=True)
class RuleOutcomeSpec:
    """The ``then`` of a rule: referrals, interventions offered, information, what not to offer."""

    refer: tuple[ReferralSpec, ...] = ()
    offer: tuple[str, ...] = ()
    inform: tuple[str, ...] = ()
    not_recommended: tuple[NotRecommendedSpec, ...] = ()

    def codes(self) -> set[str]:
        """Every catalogue code the outcomes name (recommended or not)."""
        return (
            {r.intervention for r in self.refer}
            | set(self.offer)
            | set(self.inform)
            | {n.intervention for n in self.not_recommended}
        )

    def recommended_codes(self) -> set[str]:
        return {r.intervention for r in self.refer} | set(self.offer) | set(self.inform)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    description: str
    guidance: tuple[Guidance, ...]
    when: Condition
    then: RuleOutcomeSpec
    priority: str
    loc: Loc


@dataclass(frozen=True)
class RuleFile:
    """A loaded, validated rule file. ``version`` is the sha256 of its exact bytes."""

    name: str
    title: str
    path: str
    version: str
    source: str
    rules: tuple[Rule, ...]
    catalogue_version: str

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


# --- one patient ------------------------------------------------------------------------


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

    def as_fact_fields(self) -> dict[str, Any]:
        return {k: v for k in CONTEXT_FIELDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class Assessment:
    """A holistic needs assessment: concern code -> score 0-10, and the patient context."""

    concerns: Mapping[str, int]
    context: PatientContext = field(default_factory=PatientContext)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Build from ``{"concerns": {code: score}, "context": {...}}`` (e.g. task data).

        Raises:
            InvalidInputError: naming every bad field (unknown context field, wrong type).
        """
        problems: list[Problem] = []
        concerns_in = data.get("concerns") or {}
        if not isinstance(concerns_in, Mapping):
            raise InvalidInputError("assessment is invalid", [Problem("expected a mapping", field="/concerns")])
        concerns: dict[str, int] = {}
        for code, score in concerns_in.items():
            if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
                problems.append(Problem("expected a whole number from 0 to 10", field=f"/concerns/{code}"))
            else:
                concerns[str(code)] = score
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
        return cls(concerns=concerns, context=PatientContext(**context))

    def as_dict(self) -> dict[str, Any]:
        return {"concerns": dict(self.concerns), "context": self.context.as_fact_fields()}


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
    return isinstance(value, str)


def _expected(spec: ContextField) -> str:
    if spec.kind == "choice":
        return "one of " + ", ".join(spec.choices)
    return {"boolean": "true or false", "number": "a number", "text": "text"}[spec.kind]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _num(value)
    return str(value)
