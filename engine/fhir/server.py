"""What the FHIR API says about itself and around its resources: the CapabilityStatement, search Bundles
and OperationOutcomes (plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import Problem
from engine.fhir.careplans import instant

__all__ = [
    "RESOURCES",
    "SearchParameter",
    "SupportedResource",
    "capability_statement",
    "operation_outcome",
    "searchset",
]


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str  # FHIR search parameter type: reference, token, uri
    documentation: str


_PATIENT = SearchParameter(
    "patient",
    "reference",
    "The patient: its reference (its id here), Patient/<reference>, or with the :identifier "
    "modifier <system>|<value> in the deployment's system. Required.",
)


@dataclass(frozen=True)
class SupportedResource:
    """One resource type of the API: its interactions, search parameters, the permission it needs
    (:data:`engine.access.PERMISSIONS`) and what it is in CarePath's words."""

    type: str
    interactions: tuple[str, ...]
    permission: str
    documentation: str
    search: tuple[SearchParameter, ...] = field(default=(_PATIENT,))
    operations: tuple[str, ...] = ()


RESOURCES: tuple[SupportedResource, ...] = (
    SupportedResource(
        "CarePlan",
        ("read", "search-type"),
        "documents.read",
        "A patient's personalised care and support plan: one per pathway instance; its activities "
        "are the care plan items (referrals by reference to their ServiceRequests).",
    ),
    SupportedResource(
        "ServiceRequest",
        ("read", "search-type"),
        "documents.read",
        "A referral of the care plan, with its status (docs/fhir.md maps CarePath's onto FHIR's).",
    ),
    SupportedResource(
        "QuestionnaireResponse",
        ("read", "search-type", "create"),
        "documents.read",
        "A holistic needs assessment as the rules read it. Create (a patient app's completed "
        "checklist) completes the patient's waiting needs assessment; it needs tasks.complete.",
    ),
    SupportedResource(
        "Questionnaire",
        ("read", "search-type"),
        "pathways.read",
        "The concerns checklist, generated from the concern catalogue; version = the catalogue's.",
        (SearchParameter("url", "uri", "The checklist's canonical URL."),),
    ),
    SupportedResource(
        "Task",
        ("search-type",),
        "tasks.read",
        "The patient's ready tasks (status ready), across their running pathway instances.",
    ),
    SupportedResource(
        "Composition",
        ("read", "search-type"),
        "documents.read",
        "The End of Treatment Summary of each phase of care, once written (eot-<instance id>), and a man's "
        "active surveillance plan while he is on it (asp-<instance id>); $document gives either as a "
        "document Bundle.",
        operations=("document",),
    ),
)


def capability_statement(
    software: str, version: str, base_url: str, patient_system: str, published: datetime
) -> dict[str, Any]:
    """The server's CapabilityStatement (``GET /metadata``)."""
    resources = []
    for r in RESOURCES:
        entry: dict[str, Any] = {
            "type": r.type,
            "documentation": f"{r.documentation} Roles: permission {r.permission}.",
            "interaction": [{"code": code} for code in r.interactions],
            "searchParam": [{"name": p.name, "type": p.type, "documentation": p.documentation} for p in r.search],
        }
        if r.operations:
            entry["operation"] = [
                {"name": name, "definition": f"http://hl7.org/fhir/OperationDefinition/{r.type}-{name}"}
                for name in r.operations
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(published),
        "publisher": "CarePath",
        "kind": "instance",
        "software": {"name": software, "version": version},
        "implementation": {
            "description": "CarePath's FHIR R4 API: care plans, referrals, needs assessments, "
            "ready tasks and End of Treatment Summaries",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": f"Patients are named by {patient_system} (the deployment's system) or by CarePath's "
                "patient reference system; CarePath serves no Patient resource. Unknown search "
                "parameters are refused (400), as with Prefer: handling=strict.",
                "security": {
                    "cors": False,
                    "description": "Authorization: Bearer <token> with a CarePath API token "
                    "(carepath token create), checked against the same roles "
                    "and permissions as /v1. This statement needs none.",
                },
                "resource": resources,
            }
        ],
    }


def searchset(resources: list[dict[str, Any]], base_url: str, self_url: str) -> dict[str, Any]:
    """Search results: a Bundle of type ``searchset`` (every match on one page)."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def operation_outcome(
    code: str, message: str, problems: list[Problem] | None = None, severity: str = "error", request_id: str = ""
) -> dict[str, Any]:
    """An OperationOutcome: one issue per located problem (or one for the message). ``code`` is FHIR's
    IssueType (invalid, not-found, business-rule...). Messages never quote submitted values."""
    where = f" (request {request_id})" if request_id else ""
    issues = [
        {
            "severity": severity,
            "code": code,
            "details": {"text": f"{p.field}: {p.message}" if p.field else p.message},
            "diagnostics": message + where,
        }
        for p in problems or []
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": issues or [{"severity": severity, "code": code, "diagnostics": message + where}],
    }
