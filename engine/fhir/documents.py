"""The End of Treatment Summary, and a man's active surveillance plan, as FHIR Compositions and document
Bundles.

The content comes from :func:`engine.documents.build.end_of_treatment_summary` and
:func:`engine.documents.build.active_surveillance_plan` (their JSON, docs/documents.md). Each top-level
key of that JSON becomes one section, read by key: the known ones in a fixed order with their titles,
then any key added later, titled from its name. Values are rendered as XHTML narrative by their shape
(text, lists, objects with a ``label`` or ``name``), so a field added to the document shows up in the
Composition without a change here. Care plan items that are referrals (objects with ``kind: referral``
and an ``id``, wherever they are) are also entries of their section, referencing their ServiceRequests.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

from engine.care_teams import COMPOSITION_PREFIX as CARE_TEAMS_COMPOSITION_PREFIX
from engine.care_teams import SURVEILLANCE_PLAN_PREFIX
from engine.fhir.careplans import instant

__all__ = [
    "COMPOSITION_PREFIX",
    "composition",
    "composition_id",
    "document_bundle",
    "parse_composition_id",
    "parse_surveillance_plan_id",
    "referral_ids",
]

# Composition id: eot-<instance id> for the summary of the first phase of care (the one summary an instance
# had before phases were kept), eot-<instance id>-<n> for phase n from 2 (the treatment of a recurrence):
# each summary keeps its id. Care teams find its owner by the instance id in it.
COMPOSITION_PREFIX = CARE_TEAMS_COMPOSITION_PREFIX
_UUID_LENGTH = 36


def composition_id(instance_id: str, phase: int | None) -> str:
    """The Composition id of the summary of ``phase`` (None or 1: the first)."""
    return f"{COMPOSITION_PREFIX}{instance_id}" + (f"-{phase}" if phase and phase > 1 else "")


def parse_composition_id(value: str) -> tuple[str, int] | None:
    """(instance id, phase number) a Composition id names, or None when it names none."""
    rest = value.removeprefix(COMPOSITION_PREFIX)
    if rest == value or len(rest) < _UUID_LENGTH:
        return None
    instance_id, suffix = rest[:_UUID_LENGTH], rest[_UUID_LENGTH:]
    if not suffix:
        return instance_id, 1
    number = suffix[1:]
    if suffix[0] != "-" or not number.isascii() or not number.isdigit() or len(number) > 3 or number[0] == "0":
        return None
    return (instance_id, int(number)) if int(number) > 1 else None


def parse_surveillance_plan_id(value: str) -> str | None:
    """The instance id an active surveillance plan's Composition id (``asp-<instance id>``) names, or None."""
    rest = value.removeprefix(SURVEILLANCE_PLAN_PREFIX)
    return rest if rest != value and len(rest) == _UUID_LENGTH else None


_DOCUMENT_TYPES = "https://carepath.dev/fhir/CodeSystem/document-type"
# By the document's document_type: its type code and display, its sections' code system, and who wrote it.
_KINDS = {
    "end_of_treatment_summary": (
        "end-of-treatment-summary",
        "End of Treatment Summary",
        "https://carepath.dev/fhir/CodeSystem/end-of-treatment-section",
        "from the summary the treating team wrote",
    ),
    "active_surveillance_plan": (
        "active-surveillance-plan",
        "Active surveillance plan",
        "https://carepath.dev/fhir/CodeSystem/active-surveillance-plan-section",
        "from the pathway's record of his active surveillance",
    ),
}
# The header fields of every document (engine/documents/build.py _Sources.header): not sections.
_HEADER = {
    "document_type",
    "schema_version",
    "generated_at",
    "language",
    "title",
    "instance_id",
    "pathway_id",
    "pathway_name",
    "pathway_version",
    "patient_ref",
    "instance_status",
    "directory",  # which service directory the numbers come from: about the document, not content
    "phases",
}  # the patient's other summaries: each is a Composition of its own
# Known sections, in reading order, with their titles; other keys follow in the document's order.
_TITLES: dict[str, dict[str, str]] = {
    "diagnosis": {"en": "Diagnosis", "sv": "Diagnos"},
    "treatments_received": {"en": "Treatment received", "sv": "Behandling"},
    "completed_on": {"en": "Treatment completed on", "sv": "Behandlingen avslutades"},
    "effects_to_watch_for": {"en": "Effects to watch for", "sv": "Att vara uppmärksam på"},
    "warning_signs": {"en": "Warning signs", "sv": "Varningstecken"},
    "who_to_call": {"en": "Who to call", "sv": "Vem du kontaktar"},
    "ongoing_support": {"en": "Ongoing support", "sv": "Fortsatt stöd"},
    "gp_actions": {"en": "For the GP", "sv": "Till vårdcentralen"},
    "follow_up": {"en": "Follow-up", "sv": "Uppföljning"},
    "phase": {"en": "Phase of care", "sv": "Vårdskede"},
    # The active surveillance plan's own sections.
    "plan": {"en": "About the plan", "sv": "Om planen"},
    "schedule": {"en": "Tests and reviews", "sv": "Prover och uppföljningar"},
    "first_year_reviewed_on": {"en": "First year reviewed on", "sv": "Första året följdes upp"},
    "support": {"en": "Support", "sv": "Stöd"},
}
_WORDS = {
    "en": {"none": "None recorded", "yes": "Yes", "no": "No"},
    "sv": {"none": "Inget registrerat", "yes": "Ja", "no": "Nej"},
}
# Keys whose value is shown through a sibling (``x_label`` for ``x``) or that only trace (ids).
_QUIET = {"id", "code", "why", "evaluation_id"}


def _words(language: str) -> dict[str, str]:
    return _WORDS.get(language, _WORDS["en"])


def _title(key: str, language: str) -> str:
    titles = _TITLES.get(key)
    if titles:
        return titles.get(language, titles["en"])
    return key.replace("_", " ").capitalize()


def _render(value: Any, language: str) -> str:
    """Any JSON value as escaped XHTML: text, a list, or an object shown by its label or name."""
    words = _words(language)
    if value is None or value == [] or value == {}:
        return escape(words["none"])
    if isinstance(value, bool):
        return words["yes"] if value else words["no"]
    if isinstance(value, str | int | float):
        return escape(str(value))
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_render(v, language)}</li>" for v in value) + "</ul>"
    if isinstance(value, dict):
        return _render_object(value, language)
    return escape(str(value))


def _render_object(value: dict[str, Any], language: str) -> str:
    head_key = next((k for k in ("label", "name", "title") if isinstance(value.get(k), str)), None)
    head = escape(value[head_key]) if head_key else ""
    details = []
    for key, inner in value.items():
        if key == head_key or key in _QUIET or f"{key}_label" in value or inner in (None, "", [], {}):
            continue
        label = key.removesuffix("_label")
        details.append(f"<li>{escape(label.replace('_', ' ').capitalize())}: {_render(inner, language)}</li>")
    if not details:
        return head or escape(_words(language)["none"])
    return f"{head}<ul>{''.join(details)}</ul>" if head else f"<ul>{''.join(details)}</ul>"


def _section(key: str, value: Any, language: str, system: str) -> dict[str, Any]:
    section: dict[str, Any] = {
        "title": _title(key, language),
        "code": {"coding": [{"system": system, "code": key}]},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{_render(value, language)}</div>',
        },
    }
    referrals = referral_ids(value)
    if referrals:
        section["entry"] = [{"reference": f"ServiceRequest/{r}"} for r in referrals]
    return section


def referral_ids(value: Any) -> list[str]:
    """The ids of the care plan referrals anywhere in a document value, in order, once each."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("kind") == "referral" and isinstance(value.get("id"), str):
            found.append(value["id"])
        for inner in value.values():
            found.extend(i for i in referral_ids(inner) if i not in found)
    elif isinstance(value, list):
        for inner in value:
            found.extend(i for i in referral_ids(inner) if i not in found)
    return found


def composition(summary: dict[str, Any], patient: dict[str, Any], software: str) -> dict[str, Any]:
    """An End of Treatment Summary (the JSON of ``end_of_treatment_summary``) or an active surveillance
    plan (``active_surveillance_plan``) as a Composition."""
    language = str(summary.get("language") or "en")
    code, display, sections, written = _KINDS[str(summary.get("document_type"))]
    if summary.get("document_type") == "active_surveillance_plan":
        identity = f"{SURVEILLANCE_PLAN_PREFIX}{summary['instance_id']}"
    else:
        identity = composition_id(summary["instance_id"], (summary.get("phase") or {}).get("number"))
    keys = [k for k in _TITLES if k in summary] + [k for k in summary if k not in _TITLES and k not in _HEADER]
    return {
        "resourceType": "Composition",
        "id": identity,
        "language": language,
        "status": "final",
        "type": {
            "coding": [{"system": _DOCUMENT_TYPES, "code": code, "display": display}],
            "text": str(summary.get("title") or ""),
        },
        "subject": patient,
        "date": instant(summary["generated_at"]),
        "author": [{"type": "Device", "display": f"{software}, {written}"}],
        "title": str(summary.get("title") or display),
        "section": [_section(key, summary[key], language, sections) for key in keys],
    }


def document_bundle(
    summary: dict[str, Any], resources: list[dict[str, Any]], patient: dict[str, Any], software: str, base_url: str
) -> dict[str, Any]:
    """The summary as a FHIR document: a Bundle of type ``document`` whose first entry is the Composition,
    followed by ``resources`` (the ServiceRequests its sections reference). ``base_url`` is the FHIR
    base the entries' full URLs are under. The identifier is the same for the same summary generated at
    the same time."""
    doc = composition(summary, patient, software)
    entries = [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r} for r in [doc, *resources]]
    identity = uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/Composition/{doc['id']}#{doc['date']}")
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{identity}"},
        "type": "document",
        "timestamp": doc["date"],
        "entry": entries,
    }
