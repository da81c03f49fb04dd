"""The patient's wishes on the palliative route, for the care plan: the advance care plan, the carers
and their own needs, and for a child the family's support (pathways/shared/palliative_care*.bpmn).

They are the answers of the route's forms (``advance_care_plan``, ``carers``, ``palliative_family_support``
in the instance's accumulated data, and kept in its patient status record when the route's branch
ends), never rule facts or trail payloads: patient data, for the
Personalised Care Plan and the clinicians' care plan page only. Each code travels with its label in the
reader's language; a value that is not what the forms allow (an older form, or data set some other way)
is left out rather than shown raw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.documents.render import LANGUAGES, strings

__all__ = ["palliative_wishes"]

# Where the route keeps its answers when its branch ends (engine.careplan.patient_status's record).
_KEPT = "patient_status_record"
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TEXT_LIMIT = 1000  # the forms' maxLength
_LIST_LIMIT = 12
# field -> the locale's label group for its code(s)
_PLAN_CODES = {
    "conversation": "acp_conversation",
    "preferred_place_of_care": "place",
    "preferred_place_of_death": "place",
}
_PLAN_FLAGS = ("lasting_power_of_attorney", "respect_plan", "shared_with_gp")
_CARER_CODES = {"relationship": "carer_relationship", "carers_assessment": "carers_assessment"}
_SUPPORT_CODES = {"child": "support_offer", "parents_or_carers": "support_offer", "siblings": "support_offer"}

Label = Callable[[str, str], str]


def palliative_wishes(data: Mapping[str, Any], language: str) -> dict[str, Any] | None:
    """The advance care plan, the carers and the family's support recorded in ``data``, labelled in
    ``language`` (``en`` or ``sv``; anything else reads as English); ``None`` when none is recorded."""
    labels: dict[str, dict[str, str]] = strings(language if language in LANGUAGES else LANGUAGES[0])["labels"]

    def label(group: str, code: str) -> str:
        return labels.get(group, {}).get(code) or code.replace("_", " ").capitalize()

    kept = data.get(_KEPT)
    kept = kept if isinstance(kept, Mapping) else {}

    def answers(key: str) -> Any:
        # The route's running branch holds the newest answers; once the route has ended (care transferred,
        # or the patient died) only the copy kept in the patient status is left.
        value = data.get(key)
        return value if isinstance(value, Mapping) else kept.get(key)

    plan = _section(
        answers("advance_care_plan"),
        _PLAN_CODES,
        _PLAN_FLAGS,
        ("what_matters_most",),
        label,
        lists={"took_part": "took_part"},
    )
    carers = _section(
        answers("carers"), _CARER_CODES, ("has_carer",), ("support_arranged",), label, lists={"needs": "carer_need"}
    )
    support = _section(
        answers("palliative_family_support"), _SUPPORT_CODES, ("bereavement_support_explained",), (), label
    )
    if plan is None and carers is None and support is None:
        return None
    return {"advance_care_plan": plan, "carers": carers, "family_support": support}


def _section(
    value: Any,
    codes: Mapping[str, str],
    flags: tuple[str, ...],
    texts: tuple[str, ...],
    label: Label,
    lists: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    out: dict[str, Any] = {"recorded_on": value["recorded_on"] if _is_date(value.get("recorded_on")) else None}
    for name, group in codes.items():
        code = value.get(name)
        out[name] = {"code": code, "label": label(group, code)} if isinstance(code, str) and _is_code(code) else None
    for name in flags:
        out[name] = value[name] if isinstance(value.get(name), bool) else None
    for name in texts:
        text = value.get(name)
        out[name] = text.strip()[:_TEXT_LIMIT] if isinstance(text, str) and text.strip() else None
    for name, group in (lists or {}).items():
        found = value.get(name)
        entries = [c for c in found[:_LIST_LIMIT] if _is_code(c)] if isinstance(found, list) else []
        out[name] = [{"code": c, "label": label(group, c)} for c in entries]
    return out


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and bool(_CODE.match(value))


def _is_date(value: Any) -> bool:
    return isinstance(value, str) and bool(_DATE.match(value))
