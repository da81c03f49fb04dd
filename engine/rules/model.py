"""The rule model: what a rule file says (``RuleFile``, ``Rule``, conditions, outcome specs) and
the patient context fields rules may read. What happens to one patient (``Assessment``,
``Firing``, ``Outcomes``) is in :mod:`engine.rules.assessment`. Everything is immutable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CONTEXT_FIELDS",
    "PRIORITIES",
    "SCORE_OPERATORS",
    "SMOKING_STATUSES",
    "TREATMENT_PHASES",
    "URGENCIES",
    "WORK_STATUSES",
    "AllOf",
    "AnyOf",
    "Condition",
    "ConcernCondition",
    "ContextCondition",
    "ContextField",
    "Guidance",
    "Loc",
    "NoneOf",
    "NotRecommendedSpec",
    "ReferralSpec",
    "Rule",
    "RuleFile",
    "RuleOutcomeSpec",
    "normalised_text",
]

Urgency = Literal["routine", "soon", "urgent", "emergency"]
# Least to most urgent. ``emergency`` is "now, whatever the time of day": such a referral is made the
# moment it is proposed, without waiting for the care plan to be agreed (engine/careplan/service.py).
URGENCIES: tuple[str, ...] = ("routine", "soon", "urgent", "emergency")
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
SMOKING_STATUSES: tuple[str, ...] = ("current", "former", "never")
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
    kind: Literal["number", "text", "choice", "boolean", "date"]
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


_SEPARATORS = re.compile(r"[\s_-]+")
_CANCER = "_cancer"


def normalised_text(value: str) -> str:
    """A text context value as rules compare it: lower case, with each run of spaces, hyphens and
    underscores as one ``_`` and none at either end (``" Breast "`` -> ``breast``, ``"Hodgkin lymphoma"``
    -> ``hodgkin_lymphoma``). Diagnoses arrive as the pathway's start data or an EHR wrote them; a rule
    naming ``breast`` must not miss ``Breast`` (a missed match can hide an emergency: clinical safety
    review, spinal cord compression). A site written with the word cancer after it is the site (``"Breast
    cancer"`` -> ``breast``): an EHR or a person writes it so, and ``breast_cancer`` would miss every rule that
    names ``breast`` (mscc-back-pain's threshold, 5 in breast cancer, would become 8). The loader refuses a rule
    value that is not already in this form."""
    text = _SEPARATORS.sub("_", value.strip().lower()).strip("_")
    site = text.removesuffix(_CANCER)
    return site if site and site != text else text


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
        ContextField(
            "on_sact",
            "boolean",
            "on systemic anticancer therapy (chemotherapy, targeted therapy or immunotherapy) now, "
            "or its last dose was within the last 6 weeks",
        ),
        ContextField(
            "on_immunotherapy",
            "boolean",
            "on immunotherapy (a checkpoint inhibitor) now, or its last dose was within the last 12 months",
        ),
        # Recorded with the evaluation (what on_sact was worked out from); rules test on_sact, not the date.
        ContextField("last_sact_date", "date", "date of the last dose of systemic anticancer therapy (YYYY-MM-DD)"),
        ContextField("smoking_status", "choice", "smokes now, used to smoke, or never smoked", SMOKING_STATUSES),
        ContextField(
            "emotional_concern_persists",
            "boolean",
            "worry, low mood or hopelessness was also scored 5 or more at the previous HNA",
        ),
        # Set by the needs assessments of the palliative route (pathways/shared/palliative_care*.bpmn) only.
        ContextField(
            "on_palliative_route",
            "boolean",
            "on the palliative and living-with-cancer route (the pathway's palliative care sub-pathway)",
        ),
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
    """A concern from the assessment (by code, any concern in a domain, or any concern at all) with
    tests on its score and on its change since the patient's previous assessment.

    Several concern conditions in one ``all`` are met by *different* concerns (a join). ``change``
    tests hold only when there was a previous assessment (the fact then carries ``change``).
    """

    code: str | None
    domain: str | None
    score: tuple[tuple[str, float], ...]  # (operator word, threshold), all must hold
    loc: Loc
    change: tuple[tuple[str, float], ...] = ()  # the score now minus at the previous assessment

    def describe(self) -> str:
        what = self.code if self.code else f"any {self.domain} concern" if self.domain else "any concern"
        parts = []
        if self.score:
            parts.append("scored " + " and ".join(f"{op.replace('_', ' ')} {_num(v)}" for op, v in self.score))
        if self.change:
            parts.append(
                "changed since the last assessment by "
                + " and ".join(f"{op.replace('_', ' ')} {_num(v)}" for op, v in self.change)
            )
        return f"{what} {' and '.join(parts)}"


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


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _num(value)
    return str(value)
