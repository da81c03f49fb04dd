"""Component schemas of the OpenAPI document (api.openapi): the shapes of requests and responses."""

from __future__ import annotations

from typing import Any

from engine.audit import REASON_PATTERN
from engine.care_teams import BREAK_GLASS_REASONS, TEAM_CHANGE_REASONS
from engine.care_teams import NAME_PATTERN as CARE_NAME_PATTERN
from engine.careplan.service import STATUSES as ITEM_STATUSES
from engine.careplan.service import next_statuses
from engine.instances.queries import STATUSES
from engine.instances.view import PATIENT_REF_PATTERN
from engine.reports import COSD_COLUMNS
from engine.webhooks import MAX_REPLAY_IDS, WEBHOOK_EVENT_TYPES

PROBLEM_BASE = "https://carepath.dev/problems/"
# Stable problem types: slug -> title. Clients may switch on the type URI; titles may be reworded.
PROBLEM_TYPES: dict[str, str] = {
    "request-invalid": "The request is not valid",
    "malformed-json": "The request body is not valid JSON",
    "unsupported-media-type": "The request body has the wrong content type",
    "body-too-large": "The request body is too large",
    "input-invalid": "The input is not valid",
    "task-data-invalid": "The task data does not match the task's form",
    "start-data-invalid": "The data does not match the pathway's start data schema",
    "diagram-invalid": "The diagram is not valid",
    "rule-file-invalid": "The rule file is not valid",
    "unsafe-expression": "An expression is outside the safe language",
    "idempotency-key-reused": "The Idempotency-Key was used for a different request",
    "idempotency-key-in-use": "A request with this Idempotency-Key is still running",
    "host-not-trusted": "The Host header names a host outside CAREPATH_TRUSTED_HOSTS",
    "unauthenticated": "A valid bearer token is required",
    "forbidden": "The token's role may not do this",
    "four-eyes": "A second author must do this: the person who deployed or asked for it may not approve it",
    "version-state-conflict": "The version or migration request is not in a state for this (already active...)",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "stale-version": "The instance version in If-Match is not the current one",
    "instance-changed": "The instance was changed by another request",
    "task-not-ready": "The task is not ready",
    "instance-exists": "The patient already has a running instance of this pathway (Location, if in scope)",
    "patient-deceased": "The patient's death is recorded: no pathway can be started for them",
    "instance-state-conflict": "The instance is not in a state for this",
    "message-not-deliverable": "No instance is waiting for this message",
    "not-ready": "The service is not ready",
    "database-unavailable": "The database cannot be reached; retry after the time given",
    "document-too-large": "The document is too large to print as a PDF; ask for JSON or HTML",
    "document-unprintable": "The PDF renderer stopped on this document (time or memory limit); ask for JSON or HTML",
    "pdf-unavailable": "This server cannot make PDFs (WeasyPrint's system libraries are missing); ask for HTML",
    "pdf-busy": "Every PDF rendering of this server process is taken; retry after the time given, or ask for HTML",
    "internal-error": "Internal error",
}


UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_.-]{0,199}$"  # BPMN ids (XML NCName subset)
PATIENT_REF = PATIENT_REF_PATTERN  # the one rule: engine.instances.view.validate_patient_ref
_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_DATE_TIME = {"type": "string", "format": "date-time"}


def schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_NAMES = {"type": "array", "items": {"type": "string"}}
_DECISION_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "decision_id": {"type": "string"},
    "table_version": {"type": "string"},
    "file": {"type": "string"},
    "hit_policy": {"type": "string"},
    "pathway_id": {"type": "string"},
    "pathway_version": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"},
    "instance_id": {"type": "string"},
    "task_id": {"type": "string"},
    "element": {"type": "string"},
    "inputs": {"type": "array", "items": {"type": "object"}},
    "matched": _NAMES,
    "outputs": {"type": "object"},
    "misses": {"type": "object", "additionalProperties": {"type": "integer"}},
}


def _obj(required: list[str], properties: dict[str, Any], extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": extra}


# A pathway version, and who deployed and activated it (four eyes: engine/four_eyes.py).
_VERSION_REQUIRED = [
    "pathway_id",
    "version",
    "title",
    "main_file",
    "deployed_at",
    "deployed_by",
    "latest",
    "active",
    "activated_at",
    "activated_by",
]
_VERSION_PROPS: dict[str, Any] = {
    "pathway_id": {"type": "string"},
    "version": {"type": "string"},
    "title": {"type": "string"},
    "main_file": {"type": "string"},
    "deployed_at": {"type": "string", "format": "date-time"},
    "deployed_by": {"type": "string"},
    "latest": {"type": "boolean", "description": "The newest deployed version (it may still be pending)"},
    "active": {"type": "boolean", "description": "The version new instances start on (the one activated last)"},
    "activated_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "null: pending, waiting for a second author to activate it",
    },
    "activated_by": {"type": ["string", "null"], "description": "Who activated it: never who deployed it"},
}


_TASK_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "element": {"type": "string"},
    "name": {"type": "string"},
    "process": {"type": "string"},
    "kind": {"type": "string"},
    "state": {"type": "string"},
    "lane": _NULLABLE_STRING,
    "form": {
        "type": ["object", "null"],
        "description": (
            "The task's form as a JSON Schema (2020-12). A form that declares x-carepath-safety-notice (the needs "
            "checklists) comes with it filled from the service directory in the Accept-Language (en or sv): "
            "x-carepath-safety-notice-text {kind, language, title, text, phone, line, hours_label, example, "
            "emergency}, "
            "and a description that starts with the text"
        ),
    },
}
_SUMMARY_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": UUID_PATTERN},
    "pathway_id": {"type": "string"},
    "pathway_version": {"type": "string"},
    "patient_ref": {"type": "string"},
    "status": {"enum": list(STATUSES)},
    "version": {"type": "integer", "description": "Send back in If-Match (also the ETag)"},
    "next_due_at": {"type": ["string", "null"], "format": "date-time"},
    "incident": {"type": ["object", "null"]},
    "created_at": _DATE_TIME,
    "updated_at": _DATE_TIME,
    "organisation": {"type": "string", "description": "The organisation whose patient this is (docs/access.md)"},
    "care_team": {
        "type": "string",
        "description": "The care team looking after the patient; its clinicians see the instance",
    },
}
_LOCATED_PROBLEM = {
    "type": "object",
    "required": ["message"],
    "additionalProperties": False,
    "properties": {
        "message": {"type": "string"},
        "field": {"type": "string"},
        "element": {"type": "string"},
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "code": {"type": "string"},
        "severity": {
            "type": "string",
            "enum": ["error", "warning"],
            "description": "warning: deployed, but worth a look; absent: an error (refused)",
        },
    },
}

_CODE_LABEL = _obj(["code", "label"], {"code": {"type": "string"}, "label": {"type": "string"}})
_NULLABLE_OBJECT: dict[str, Any] = {"type": ["object", "null"]}
_OBJECTS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_DOCUMENT_HEADER: dict[str, Any] = {
    "document_type": {"type": "string"},
    "schema_version": {"type": "string"},
    "generated_at": _DATE_TIME,
    "language": {"enum": ["en", "sv"], "description": "Also sent as Content-Language"},
    "title": {"type": "string"},
    "instance_id": {"type": "string", "pattern": UUID_PATTERN},
    "pathway_id": {"type": "string"},
    "pathway_name": {"type": "string"},
    "pathway_version": {"type": "string"},
    "patient_ref": {"type": "string"},
    "instance_status": _CODE_LABEL,
    "directory": _obj(
        ["example", "health_system", "version"],
        {
            "example": {"type": "boolean", "description": "true: every name and number is example data"},
            "health_system": {"enum": ["england", "sweden"]},
            "version": {"type": "string"},
        },
    ),
}
# A person or service to contact, from the deployment's service directory (docs/documents.md).
_CONTACT: dict[str, Any] = {
    "type": "object",
    "required": ["role", "role_label", "name", "phone", "hours_label", "example"],
}
_NULLABLE_CONTACT: dict[str, Any] = {"oneOf": [_CONTACT, {"type": "null"}]}
_CONTACT_FIELDS: dict[str, Any] = {
    "named_contact": _NULLABLE_CONTACT,
    "team": {"type": "array", "items": _CONTACT},
    "twenty_four_hour_line": _CONTACT,
    "gp_practice": _NULLABLE_CONTACT,
    "hospitals": {"type": "array", "items": _CONTACT},
    "emergency_number": {"type": "string"},
    "urgent_advice": _NULLABLE_CONTACT,
}
_CONTACTS = _obj(list(_CONTACT_FIELDS), _CONTACT_FIELDS)
# The care plan's contacts also name the organisations the patient was put in touch with (connected_to).
_CARE_PLAN_CONTACTS = _obj(
    [*_CONTACT_FIELDS, "organisations"], {**_CONTACT_FIELDS, "organisations": {"type": "array", "items": _CONTACT}}
)
_SAFETY = _obj(
    ["kind", "title", "text", "phone", "line", "example", "emergency"],
    {
        "kind": {"enum": ["during_treatment", "after_treatment"]},
        "title": {"type": "string"},
        "text": {"type": "string", "description": "Call the 24-hour line now, with its number"},
        "phone": {"type": "string"},
        "line": {"type": "string"},
        "example": {"type": "boolean"},
        "emergency": {"type": "string"},
    },
)
_HISTORY: dict[str, Any] = {
    "type": "array",
    "description": "Every change to the item, oldest first: who and when",
    "items": _obj(
        [
            "change",
            "from_status",
            "to_status",
            "from_urgency",
            "to_urgency",
            "reason",
            "evaluation_id",
            "rules",
            "at",
            "actor",
        ],
        {
            "change": {"enum": ["created", "status", "proposed_again"]},
            "from_status": _NULLABLE_STRING,
            "to_status": {"type": "string"},
            "from_urgency": _NULLABLE_STRING,
            "to_urgency": _NULLABLE_STRING,
            "reason": _NULLABLE_STRING,
            "evaluation_id": _NULLABLE_STRING,
            "rules": {"type": ["array", "null"], "items": {"type": "string"}},
            "at": _DATE_TIME,
            "actor": {"type": "string"},
        },
    ),
}
_ITEM_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": UUID_PATTERN},
    "kind": {"enum": ["referral", "intervention", "information"]},
    "kind_label": {"type": "string"},
    "code": {"type": "string"},
    "name": {"type": "string"},
    "description": _NULLABLE_STRING,
    "service": {
        "oneOf": [_obj(["code", "name"], {"code": {"type": "string"}, "name": {"type": "string"}}), {"type": "null"}]
    },
    "urgency": _NULLABLE_STRING,
    "urgency_label": _NULLABLE_STRING,
    "status": {"type": "string"},
    "status_label": {"type": "string"},
    "updated_at": _DATE_TIME,
    "accept_by": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "A referral sent: by when the service must accept it",
    },
    "history": _HISTORY,
    "provider": _NULLABLE_CONTACT,
    "section": {"enum": ["rehabilitation", "self_care", "practical"]},
    "reasons": {
        "type": "array",
        "description": "Why, in the reader's words",
        "items": _obj(
            ["kind", "text"],
            {
                "kind": {"enum": ["concern", "context"]},
                "text": {"type": "string"},
                "code": {"type": "string"},
                "score": {"type": ["integer", "null"]},
                "field": {"type": "string"},
                "value": {},
            },
        ),
    },
    "why": _obj(
        ["evaluation_id", "assessed_at", "ruleset", "ruleset_version", "catalogue_version", "rules"],
        {
            "evaluation_id": {"type": "string", "description": "GET /v1/evaluations/{evaluation_id}"},
            "assessed_at": {"type": ["string", "null"], "format": "date-time"},
            "ruleset": _NULLABLE_STRING,
            "ruleset_version": _NULLABLE_STRING,
            "catalogue_version": _NULLABLE_STRING,
            "rules": {
                "type": "array",
                "items": _obj(["id", "title"], {"id": {"type": "string"}, "title": _NULLABLE_STRING}),
            },
        },
    ),
}
_ITEMS: dict[str, Any] = {"type": "array", "items": schema_ref("CarePlanItem")}
_DIAGNOSIS = _obj(
    ["code", "label", "diagnosis_date", "age", "stage", "treatment_intent"],
    {
        "code": {"type": ["string", "null"]},
        "label": {"type": "string"},
        "diagnosis_date": _NULLABLE_STRING,
        "age": {"type": ["integer", "null"]},
        "stage": _NULLABLE_STRING,
        "treatment_intent": {"oneOf": [_CODE_LABEL, {"type": "null"}]},
    },
)
_NULLABLE_CODE_LABEL: dict[str, Any] = {"oneOf": [_CODE_LABEL, {"type": "null"}]}
_NULLABLE_BOOLEAN: dict[str, Any] = {"type": ["boolean", "null"]}
_CODE_LABELS: dict[str, Any] = {"type": "array", "items": _CODE_LABEL}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


# The palliative route's answers (engine/documents/wishes.py); each part null until recorded.
_WISHES = _nullable(
    _obj(
        ["advance_care_plan", "carers", "family_support"],
        {
            "advance_care_plan": _nullable(
                _obj(
                    [
                        "recorded_on",
                        "conversation",
                        "preferred_place_of_care",
                        "preferred_place_of_death",
                        "lasting_power_of_attorney",
                        "respect_plan",
                        "shared_with_gp",
                        "what_matters_most",
                        "took_part",
                    ],
                    {
                        "recorded_on": _NULLABLE_STRING,
                        "conversation": _NULLABLE_CODE_LABEL,
                        "preferred_place_of_care": _NULLABLE_CODE_LABEL,
                        "preferred_place_of_death": _NULLABLE_CODE_LABEL,
                        "lasting_power_of_attorney": _NULLABLE_BOOLEAN,
                        "respect_plan": _NULLABLE_BOOLEAN,
                        "shared_with_gp": _NULLABLE_BOOLEAN,
                        "what_matters_most": _NULLABLE_STRING,
                        "took_part": _CODE_LABELS,
                    },
                )
            ),
            "carers": _nullable(
                _obj(
                    ["recorded_on", "relationship", "carers_assessment", "has_carer", "support_arranged", "needs"],
                    {
                        "recorded_on": _NULLABLE_STRING,
                        "relationship": _NULLABLE_CODE_LABEL,
                        "carers_assessment": _NULLABLE_CODE_LABEL,
                        "has_carer": _NULLABLE_BOOLEAN,
                        "support_arranged": _NULLABLE_STRING,
                        "needs": _CODE_LABELS,
                    },
                )
            ),
            "family_support": _nullable(
                _obj(
                    ["recorded_on", "child", "parents_or_carers", "siblings", "bereavement_support_explained"],
                    {
                        "recorded_on": _NULLABLE_STRING,
                        "child": _NULLABLE_CODE_LABEL,
                        "parents_or_carers": _NULLABLE_CODE_LABEL,
                        "siblings": _NULLABLE_CODE_LABEL,
                        "bereavement_support_explained": _NULLABLE_BOOLEAN,
                    },
                )
            ),
        },
    )
)
_CARE_PLAN_PROPS: dict[str, Any] = {
    "safety": _SAFETY,
    "contacts": _CARE_PLAN_CONTACTS,
    "diagnosis": _DIAGNOSIS,
    "what_matters": _NULLABLE_STRING,
    "wishes": _WISHES,
    "needs": _OBJECTS,
    "assessments": _OBJECTS,
    "act_now": _ITEMS,
    "agreed": _ITEMS,
    "declined": _ITEMS,
    "awaiting_decision": _ITEMS,
    "rights": _OBJECTS,
    "next_steps": _obj(
        ["now", "ready_tasks", "next_due_at", "upcoming"],
        {
            "now": _OBJECTS,
            "ready_tasks": _OBJECTS,
            "next_due_at": {"type": ["string", "null"], "format": "date-time"},
            "upcoming": _OBJECTS,
        },
    ),
}
_PHASE: dict[str, Any] = _obj(
    ["number", "code", "label", "ended_on", "due_by", "status", "status_label", "written_on", "overdue"],
    {
        "number": {"type": "integer", "minimum": 1, "description": "The phase's number in the instance: 1, 2, ..."},
        "code": {"type": "string", "enum": ["first_line", "recurrence", "end_of_protocol"]},
        "label": {"type": "string"},
        "ended_on": {
            "type": ["string", "null"],
            "format": "date",
            "description": "null: a summary written before phases were kept, with no course end recorded",
        },
        "due_by": {"type": ["string", "null"], "format": "date", "description": "6 weeks after the course ended"},
        "status": {"type": "string", "enum": ["due", "written", "closed"]},
        "status_label": {"type": "string"},
        "written_on": _NULLABLE_STRING,
        "overdue": {"type": "boolean", "description": "An 'End of treatment summary overdue' task is open"},
    },
)
_SUMMARY_DOCUMENT_PROPS: dict[str, Any] = {
    "safety": _SAFETY,
    "phase": {
        "oneOf": [_PHASE, {"type": "null"}],
        "description": "The phase of care this summary is about (null: written before phases were kept)",
    },
    "phases": {"type": "array", "items": _PHASE, "description": "Every phase of care of the instance"},
    "summary": _obj(
        ["written_on", "written_by", "recorded_by", "recorded_for", "course_completed_on", "due_by", "on_time"],
        {
            "written_on": _NULLABLE_STRING,
            "written_by": _NULLABLE_OBJECT,
            "recorded_by": _NULLABLE_STRING,
            "recorded_for": {**_NULLABLE_STRING, "description": "The staff id the recording system token acted for"},
            "course_completed_on": _NULLABLE_STRING,
            "due_by": _NULLABLE_STRING,
            "on_time": {"type": ["boolean", "null"]},
        },
    ),
    "diagnosis": _DIAGNOSIS,
    "treatments_received": _OBJECTS,
    "completed_on": _NULLABLE_STRING,
    "ongoing_treatment": _OBJECTS,
    "effects_to_watch_for": _STRINGS,
    "warning_signs": _obj(
        [
            "explained",
            "diagnosis",
            "catalogue_version",
            "during_treatment_apply",
            "sact_ended_on",
            "during_treatment_until",
            "note",
            "signs",
        ],
        {
            "explained": {"type": "boolean"},
            "diagnosis": {"type": "string"},
            "diagnoses": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Whose signs are listed: the pathway's site, and the site its diagnosis names when "
                "that is another (the pathway check); diagnosis is the first",
            },
            "catalogue_version": {"type": "string"},
            "during_treatment_apply": {"type": "boolean"},
            "sact_ended_on": _NULLABLE_STRING,
            "during_treatment_until": _NULLABLE_STRING,
            "note": _NULLABLE_STRING,
            "signs": _OBJECTS,
        },
    ),
    "who_to_call": _CONTACTS,
    "surveillance": _OBJECTS,
    "referrals_made": _obj(["care_plan", "organisations"], {"care_plan": _ITEMS, "organisations": _OBJECTS}),
    "prognosis": _obj(["discussed"], {"discussed": _NULLABLE_STRING}),
    "benefits_form": _NULLABLE_OBJECT,
    "ongoing_support": _obj(["care_plan", "other"], {"care_plan": _ITEMS, "other": _STRINGS}),
    "gp_practice": _NULLABLE_CONTACT,
    "gp_actions": _STRINGS,
    "follow_up": {
        "oneOf": [
            _obj(["model", "label"], {"model": {"type": "string"}, "label": {"type": "string"}}),
            {"type": "null"},
        ]
    },
}
# The active surveillance plan of a man with prostate cancer (docs/documents.md).
_SURVEILLANCE_PLAN_PROPS: dict[str, Any] = {
    "safety": _SAFETY,
    "diagnosis": _DIAGNOSIS,
    "plan": _obj(
        ["started_on", "given_on", "given_via", "shared_with_gp"],
        {
            "started_on": {"type": "string", "format": "date", "description": "The MDT chose active surveillance"},
            "given_on": {**_NULLABLE_STRING, "description": "null: the plan has not been given to him yet"},
            "given_via": {"type": "array", "items": _CODE_LABEL},
            "shared_with_gp": {"type": ["boolean", "null"]},
        },
    ),
    "schedule": {
        "type": "array",
        "description": "The first year's PSA tests and the 12-month review, with the dates the pathway set",
        "items": _obj(
            ["code", "what", "due_on"],
            {"code": {"enum": ["psa", "review"]}, "what": {"type": "string"}, "due_on": {"type": "string"}},
        ),
    },
    "first_year_reviewed_on": {**_NULLABLE_STRING, "description": "The review that continued surveillance"},
    "warning_signs": _SUMMARY_DOCUMENT_PROPS["warning_signs"],
    "who_to_call": _CONTACTS,
    "support": _obj(
        ["organisations", "care_plan", "other"], {"organisations": _OBJECTS, "care_plan": _ITEMS, "other": _STRINGS}
    ),
    "gp_practice": _NULLABLE_CONTACT,
}
_ITEM_RECORD_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "kind": {"type": "string"},
    "code": {"type": "string"},
    "service": _NULLABLE_STRING,
    "urgency": _NULLABLE_STRING,
    "rules": _STRINGS,
    "status": {"type": "string"},
    "evaluation_id": {"type": "string"},
    "task_id": {"type": "string"},
    "created_at": _DATE_TIME,
    "updated_at": _DATE_TIME,
    "updated_by": {"type": "string"},
    "accept_by": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "A referral sent to its service: by when the service must accept it (its urgency's timeframe)",
    },
    "escalated_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "When an escalation was opened because it was not accepted in time",
    },
    "next_statuses": {**_STRINGS, "description": "The moves this item may make now"},
    "history": _HISTORY,
}
_ESCALATION_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "instance_id": {"type": "string"},
    "care_plan_item_id": {"type": "string"},
    "status": {"enum": ["open", "completed"]},
    "assignee": _NULLABLE_STRING,
    "accept_by": _DATE_TIME,
    "opened_at": _DATE_TIME,
    "completed_at": {"type": ["string", "null"], "format": "date-time"},
    "completed_by": _NULLABLE_STRING,
    "outcome": _NULLABLE_STRING,
}
_EVALUATION_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "ruleset": {"type": "string"},
    "ruleset_version": {"type": "string", "description": "SHA-256 of the rule file's text"},
    "catalogue_version": {"type": "string"},
    "created_at": _DATE_TIME,
    "instance_id": _NULLABLE_STRING,
    "task_id": _NULLABLE_STRING,
    "firings": {
        "type": "array",
        "description": "Rules that fired, in order, with the ids of the facts matched",
        "items": _obj(["rule", "matched"], {"rule": {"type": "string"}, "matched": _STRINGS}),
    },
    "outcomes": {"type": "object", "description": "Referrals, interventions, information, not recommended"},
}
_LOC = _obj(
    ["file", "line", "column"], {"file": {"type": "string"}, "line": {"type": "integer"}, "column": {"type": "integer"}}
)
_GUIDANCE: dict[str, Any] = {
    "type": "array",
    "items": _obj(
        ["source", "title", "year", "section", "url"],
        {
            "source": {"type": "string"},
            "title": {"type": "string"},
            "year": {"type": ["integer", "null"]},
            "section": _NULLABLE_STRING,
            "url": _NULLABLE_STRING,
        },
    ),
}
_EXPLANATION_PROPS: dict[str, Any] = {
    "kind": {"enum": ["why", "why_not"]},
    "evaluation_id": {"type": "string"},
    "ruleset": {"type": "string"},
    "version": {"type": "string"},
    "code": {"type": "string"},
    "made": {"type": "boolean", "description": "Whether the evaluation proposed the code"},
    "text": {"type": "string", "description": "The same explanation as plain text"},
}
_MIGRATION_PROPS: dict[str, Any] = {
    "instance_id": {"type": "string"},
    "status": {"type": "string"},
    "from_version": {"type": "string"},
    "to_version": {"type": "string"},
    "migrated": {"type": "boolean"},
    "refused": {"type": ["string", "null"], "description": "Why the instance cannot be moved (nothing changed)"},
    "tasks_added": _STRINGS,
    "tasks_removed": _STRINGS,
    "timers_moved": {
        "type": "array",
        "items": _obj(
            ["element", "from", "to"], {"element": {"type": "string"}, "from": _NULLABLE_STRING, "to": _NULLABLE_STRING}
        ),
    },
}

_WEBHOOK_SUBSCRIPTION_PROPS: dict[str, Any] = {
    "id": {"type": "string"},
    "url": {"type": "string"},
    "event_types": {"type": "array", "items": {"enum": list(WEBHOOK_EVENT_TYPES)}},
    "description": {"type": "string"},
    "organisation": {
        **_NULLABLE_STRING,
        "description": "Whose: it receives that organisation's instances' events only, and only its admins see it;"
        " null is the deployment's (every organisation's events; admins of every organisation)",
    },
    "created_at": _DATE_TIME,
    "removed_at": {"type": ["string", "null"], "format": "date-time"},
}
_WEBHOOK_DELIVERY_PROPS: dict[str, Any] = {
    "id": {"type": "integer"},
    "message_id": {"type": "string", "description": "The webhook-id header"},
    "subscription_id": {"type": "string"},
    "instance_id": {"type": "string"},
    "event_type": {"enum": list(WEBHOOK_EVENT_TYPES)},
    "status": {"enum": ["pending", "delivered", "dead", "cancelled"]},
    "attempts": {"type": "integer"},
    "last_error": {**_NULLABLE_STRING, "description": "An HTTP status or an error's type, never a body"},
    "created_at": _DATE_TIME,
    "next_attempt_at": _DATE_TIME,
    "delivered_at": {"type": ["string", "null"], "format": "date-time"},
}
_WEBHOOK_SCHEMAS: dict[str, Any] = {
    "WebhookSubscriptionRequest": _obj(
        ["url", "event_types"],
        {
            "url": {"type": "string", "maxLength": 2000, "description": "http:// or https://, no user or password"},
            "event_types": {
                "type": "array",
                "minItems": 1,
                "maxItems": len(WEBHOOK_EVENT_TYPES),
                "items": {"enum": list(WEBHOOK_EVENT_TYPES)},
            },
            "description": {"type": "string", "maxLength": 200},
        },
    ),
    "WebhookSubscription": _obj(list(_WEBHOOK_SUBSCRIPTION_PROPS), _WEBHOOK_SUBSCRIPTION_PROPS),
    "NewWebhookSubscription": _obj(
        [*_WEBHOOK_SUBSCRIPTION_PROPS, "secret"],
        {
            **_WEBHOOK_SUBSCRIPTION_PROPS,
            "secret": {
                "type": "string",
                "pattern": "^whsec_",
                "description": "The Standard Webhooks signing secret: shown only in this answer",
            },
        },
    ),
    "WebhookSubscriptionList": _obj(
        ["items"], {"items": {"type": "array", "items": schema_ref("WebhookSubscription")}}
    ),
    "WebhookSubscriptionRemoved": _obj(
        ["id", "cancelled_deliveries"], {"id": {"type": "string"}, "cancelled_deliveries": {"type": "integer"}}
    ),
    "WebhookDelivery": _obj(list(_WEBHOOK_DELIVERY_PROPS), _WEBHOOK_DELIVERY_PROPS),
    "WebhookDeliveryList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("WebhookDelivery")}}),
    "WebhookReplayRequest": {
        "description": "Dead letters by id, or a subscription's dead and delivered deliveries made in [since, until)",
        "oneOf": [
            _obj(
                ["delivery_ids"],
                {
                    "delivery_ids": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_REPLAY_IDS,
                        "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                    }
                },
            ),
            _obj(
                ["subscription_id"],
                {
                    "subscription_id": {"type": "string", "pattern": "^whsub_[0-9a-f]{16}$"},
                    "since": {**_DATE_TIME, "maxLength": 40},
                    "until": {**_DATE_TIME, "maxLength": 40},
                },
            ),
        ],
    },
}


_PATIENT_FORM_KINDS = ["needs_assessment", "feedback", "survey"]  # engine.patients.PATIENT_FORMS' kinds
_ISSUER = {"type": "string", "minLength": 1, "maxLength": 500, "description": "The provider's issuer (https://...)"}
_SUBJECT = {"type": "string", "minLength": 1, "maxLength": 255, "description": "The provider's subject id (sub)"}
_PATIENT_SCHEMAS: dict[str, Any] = {
    "PatientForm": _obj(
        ["id", "element", "kind", "name", "form"],
        {
            "id": {"type": "string", "pattern": UUID_PATTERN},
            "element": {"type": "string"},
            "kind": {"enum": _PATIENT_FORM_KINDS},
            "name": {"type": "string"},
            "form": {
                "type": ["object", "null"],
                "description": "JSON Schema; its safety notice filled in the "
                "Accept-Language (the needs checklist's 24-hour line)",
            },
        },
        extra=True,
    ),
    "PatientInstance": _obj(
        ["id", "pathway_id", "status", "version", "next_due_at", "forms"],
        {
            "id": {"type": "string", "pattern": UUID_PATTERN},
            "pathway_id": {"type": "string"},
            "status": {"enum": list(STATUSES)},
            "version": {"type": "integer"},
            "next_due_at": {"type": ["string", "null"], "format": "date-time"},
            "forms": {
                "type": "array",
                "items": schema_ref("PatientForm"),
                "description": "The patient's own ready forms; no other task is shown",
            },
        },
    ),
    "PatientRecords": _obj(
        ["patient_ref", "instances"],
        {"patient_ref": {"type": "string"}, "instances": {"type": "array", "items": schema_ref("PatientInstance")}},
    ),
    "WarningSignReport": _obj(
        ["warning_sign"],
        {
            "warning_sign": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]{0,79}$",
                "description": "A code of the warning-sign catalogue; other (or an unknown code) is "
                "triaged as the most urgent",
            },
            "description": {"type": "string", "maxLength": 1000, "description": "In the patient's own words"},
        },
    ),
    "WarningSignReceipt": _obj(
        ["instances", "advice"],
        {
            "instances": {
                "type": "array",
                "items": {"type": "string", "pattern": UUID_PATTERN},
                "description": "The patient's pathways the report went to (each starts a triage)",
            },
            "advice": schema_ref("ReportedSignAdvice"),
        },
    ),
    "ReportedSignAdvice": _obj(
        ["warning_sign", "name", "urgency", "urgency_label", "action", "level", "title", "told", "notice"],
        {
            "warning_sign": {"type": "string"},
            "name": {"type": ["string", "null"], "description": "null: other, or a code not in the catalogue"},
            "urgency": {"enum": ["emergency", "urgent", "soon", None]},
            "urgency_label": {"type": ["string", "null"]},
            "action": {"type": ["string", "null"], "description": "The catalogue's action for the sign"},
            "level": {
                "enum": ["emergency", "urgent", "soon", "unknown"],
                "description": "emergency and urgent: act now, do not wait for the care team; soon: the team "
                "will contact the patient; unknown (other): call now if unwell",
            },
            "title": {"type": "string"},
            "told": {"type": "string"},
            "notice": {
                "type": "object",
                "description": "The patient's own 24-hour line: kind, language, title, text, phone, line, "
                "hours_label, emergency, example (the number is example data)",
                "required": ["language", "title", "text", "phone", "line", "emergency", "example"],
            },
        },
    ),
    "PatientIdentityRequest": _obj(
        ["issuer", "subject", "patient_ref"],
        {"issuer": _ISSUER, "subject": _SUBJECT, "patient_ref": {"type": "string", "pattern": PATIENT_REF}},
    ),
    "PatientIdentityRef": _obj(["issuer", "subject"], {"issuer": _ISSUER, "subject": _SUBJECT}),
    "PatientIdentity": _obj(
        ["id", "issuer", "subject", "patient_ref", "linked_at", "linked_by"],
        {
            "id": {"type": "integer"},
            "issuer": {"type": "string"},
            "subject": {"type": "string"},
            "patient_ref": {"type": "string"},
            "linked_at": _DATE_TIME,
            "linked_by": {"type": "string"},
        },
    ),
    "PatientIdentityList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("PatientIdentity")}}),
}


_COUNT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0, "description": "null: suppressed (small)"}
_FIGURE: dict[str, Any] = {"type": ["number", "null"], "description": "null: none, or suppressed"}
_SUPPRESSED: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "description": "The values of this row blanked so that no patient can be singled out",
}


def _report_row(counts: tuple[str, ...], figures: tuple[str, ...], codes: tuple[str, ...]) -> dict[str, Any]:
    properties = {
        **{name: {"type": "string"} for name in codes},
        **{name: _COUNT for name in counts},
        **{name: _FIGURE for name in figures},
        "suppressed": _SUPPRESSED,
    }
    return {"type": "array", "items": _obj(list(properties), properties)}


_REPORT_SCHEMAS: dict[str, Any] = {
    "MeasuresReport": {
        **_obj(
            [
                "from",
                "to",
                "pathway",
                "team",
                "as_of",
                "suppression_threshold",
                "measures",
                "referrals",
                "declined",
                "warning_signs",
                "stale_instances",
            ],
            {
                "from": _DATE_TIME,
                "to": _DATE_TIME,
                "pathway": _NULLABLE_STRING,
                "team": _NULLABLE_STRING,
                "as_of": _DATE_TIME,
                "suppression_threshold": {"type": "integer", "minimum": 2},
                "measures": _report_row(("numerator", "denominator", "pending"), ("rate",), ("id", "title")),
                "referrals": _report_row(
                    ("referred", "accepted", "first_contact", "overdue"),
                    ("median_days_to_acceptance", "median_days_to_first_contact", "overdue_share"),
                    ("service", "urgency"),
                ),
                "declined": _report_row(("count",), (), ("kind", "reason")),
                "warning_signs": _report_row(("reports", "triaged"), ("median_hours_to_triage",), ("colour",)),
                "stale_instances": {
                    "type": "integer",
                    "minimum": 0,
                    "description": (
                        "Instances of the report's organisation and team changed since the worker last "
                        "refreshed the summary the report reads"
                    ),
                },
            },
        ),
        "description": "Aggregated personalised care measures (docs/measures.md)",
    },
    "CosdExport": _obj(
        ["columns", "rows"],
        {
            "columns": {"type": "array", "items": {"enum": list(COSD_COLUMNS)}},
            "rows": {
                "type": "array",
                "items": _obj(list(COSD_COLUMNS), {name: {"type": "string"} for name in COSD_COLUMNS}),
            },
        },
    ),
}

SCHEMAS: dict[str, Any] = {
    **_REPORT_SCHEMAS,
    **_WEBHOOK_SCHEMAS,
    "Problem": _obj(
        ["type", "title", "status", "request_id"],
        {
            "type": {"type": "string", "enum": [PROBLEM_BASE + slug for slug in PROBLEM_TYPES]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {"type": "array", "items": schema_ref("LocatedProblem")},
            "bundle": {**schema_ref("BundleSurvey"), "description": "A refused bundle deploy: what it held and lacked"},
        },
    ),
    "LocatedProblem": _LOCATED_PROBLEM,
    "PathwayVersion": _obj(_VERSION_REQUIRED, _VERSION_PROPS),
    "Pathway": _obj(
        [*_VERSION_REQUIRED, "start_schema"],
        {
            **_VERSION_PROPS,
            "start_schema": {
                "type": ["object", "null"],
                "description": "The JSON Schema the start data must pass (null: the pathway declares "
                "none, and any object is accepted); also in this document as "
                "StartData.<pathway_id>",
            },
        },
    ),
    "PathwayVersionList": _obj(
        ["items"],
        {
            "items": {"type": "array", "items": schema_ref("PathwayVersion")},
            "warnings": {
                "type": "array",
                "items": schema_ref("LocatedProblem"),
                "description": "Deploy only: what the diagrams were deployed with (problems that do not stop a deploy)",
            },
            "bundle": schema_ref("BundleSurvey"),
        },
    ),
    "BundleSurvey": _obj(
        ["contained", "from_pathways_folder", "missing", "ignored"],
        {"contained": _NAMES, "from_pathways_folder": _NAMES, "missing": _NAMES, "ignored": _NAMES},
    ),
    "ValidationReport": _obj(
        ["valid", "problems"],
        {
            "valid": {"type": "boolean"},
            "problems": {"type": "array", "items": schema_ref("LocatedProblem")},
            "bundle": schema_ref("BundleSurvey"),
        },
    ),
    "Task": _obj(list(_TASK_PROPS), _TASK_PROPS),
    "TaskInInstance": _obj(
        [*_TASK_PROPS, "instance_id", "instance_version", "pathway_id", "patient_ref"],
        {
            **_TASK_PROPS,
            "instance_id": {"type": "string"},
            "instance_version": {"type": "integer"},
            "pathway_id": {"type": "string"},
            "patient_ref": {"type": "string"},
        },
    ),
    "TaskPage": _obj(
        ["items", "next_cursor", "escalations", "summaries_overdue"],
        {
            "summaries_overdue": {
                "type": "array",
                "items": schema_ref("SummaryOverdue"),
                "description": (
                    "End of treatment summaries not written within 6 weeks of their phase's end: an 'End of treatment "
                    "summary overdue' task each for the patient's named contact (assignee: their staff identifier, "
                    "null "
                    "for the team), oldest first, closed when the summary is written; on the first page, at most 200"
                ),
            },
            "items": {"type": "array", "items": schema_ref("TaskInInstance")},
            "next_cursor": _NULLABLE_STRING,
            "escalations": {
                "type": "array",
                "items": schema_ref("OpenReferralEscalation"),
                "description": (
                    "Referrals not accepted in their urgency's timeframe, a task each for the patient's named contact "
                    "(assignee: their staff identifier, null for the team), oldest first; on the first page (no "
                    "cursor, "
                    "no element filter), at most 200"
                ),
            },
        },
    ),
    "SummaryOverdue": _obj(
        [
            "id",
            "kind",
            "instance_id",
            "number",
            "phase",
            "ended_on",
            "due_by",
            "status",
            "written_at",
            "written_by",
            "overdue_at",
            "assignee",
            "closed_at",
            "pathway_id",
            "patient_ref",
            "task_id",
        ],
        {
            "id": {"type": "string"},
            "kind": {"const": "summary_overdue"},
            "instance_id": {"type": "string"},
            "task_id": {
                "type": ["string", "null"],
                "description": (
                    "The waiting 'Write the end of treatment summary' task this summary is written by (an instance can "
                    "wait for two); null for one noted before the engine kept it"
                ),
            },
            "number": {"type": "integer", "description": "The phase of care's number in the instance"},
            "phase": {"type": "string", "enum": ["first_line", "recurrence", "end_of_protocol"]},
            "ended_on": {"type": "string", "format": "date"},
            "due_by": {"type": "string", "format": "date"},
            "status": {"type": "string"},
            "written_at": _NULLABLE_STRING,
            "written_by": _NULLABLE_STRING,
            "overdue_at": _DATE_TIME,
            "assignee": _NULLABLE_STRING,
            "closed_at": _NULLABLE_STRING,
            "pathway_id": {"type": "string"},
            "patient_ref": {"type": "string"},
        },
    ),
    "ReferralEscalation": _obj(list(_ESCALATION_PROPS), _ESCALATION_PROPS),
    "OpenReferralEscalation": _obj(
        [*_ESCALATION_PROPS, "kind", "code", "service", "urgency", "pathway_id", "patient_ref"],
        {
            **_ESCALATION_PROPS,
            "kind": {"const": "referral_escalation"},
            "code": {"type": "string"},
            "service": _NULLABLE_STRING,
            "urgency": _NULLABLE_STRING,
            "pathway_id": {"type": "string"},
            "patient_ref": {"type": "string"},
        },
    ),
    "EscalationCompletion": _obj(
        ["outcome"],
        {
            "outcome": {
                "type": "string",
                "pattern": REASON_PATTERN.pattern,
                "description": "What was done, as a code (e.g. chased_service, re_referred); never free text",
            }
        },
    ),
    "InstanceSummary": _obj(list(_SUMMARY_PROPS), _SUMMARY_PROPS),
    "Instance": _obj(
        [*_SUMMARY_PROPS, "ready_tasks"],
        {
            **_SUMMARY_PROPS,
            "ready_tasks": {"type": "array", "items": schema_ref("Task")},
            "warnings": {
                "type": "array",
                "items": schema_ref("InstanceWarning"),
                "description": "What a clinician should check (a start, GET and the pathway check answer it): a "
                "diagnosis naming another cancer site than the pathway's, until confirmed "
                "(POST /v1/instances/{id}/pathway-check) or corrected",
            },
        },
    ),
    "InstanceWarning": _obj(
        ["code", "field", "site", "pathway_site", "detail"],
        {
            "code": {"enum": ["diagnosis-names-other-site"]},
            "field": {"type": "string", "description": "A JSON pointer into the start request"},
            "site": {"type": "string", "description": "The site the diagnosis names (rules/catalogues/diagnoses.yaml)"},
            "pathway_site": {"type": "string", "description": "The site the pathway is written for"},
            "detail": {"type": "string"},
        },
    ),
    "InstancePage": _obj(
        ["items", "next_cursor"],
        {"items": {"type": "array", "items": schema_ref("InstanceSummary")}, "next_cursor": _NULLABLE_STRING},
    ),
    "Delivery": _obj(["delivered"], {"delivered": {"type": "array", "items": schema_ref("Instance")}}),
    "Event": _obj(
        [
            "seq",
            "type",
            "at",
            "actor",
            "on_behalf_of",
            "pathway_version",
            "element",
            "task_id",
            "payload",
            "prev_hash",
            "hash",
        ],
        {
            "seq": {"type": "integer"},
            "type": {"type": "string"},
            "at": _DATE_TIME,
            "actor": {"type": "string", "description": "The token that acted: <role>:<token id>, or engine"},
            "on_behalf_of": {
                **_NULLABLE_STRING,
                "description": "The staff id a system token acted for (X-On-Behalf-Of), covered by the event's hash",
            },
            "pathway_version": {"type": "string"},
            "element": _NULLABLE_STRING,
            "task_id": _NULLABLE_STRING,
            "payload": {"type": "object"},
            "prev_hash": {"type": "string"},
            "hash": {"type": "string"},
        },
    ),
    "EventList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("Event")}}),
    "TrailReport": _obj(
        ["verified", "problems"],
        {
            "verified": {"type": "boolean"},
            "problems": {
                "type": "array",
                "items": _obj(
                    ["instance_id", "seq", "message"],
                    {
                        "instance_id": {"type": "string"},
                        "seq": {"type": ["integer", "null"]},
                        "message": {"type": "string"},
                    },
                ),
            },
        },
    ),
    "AccessLogPage": _obj(
        ["items", "next_cursor"],
        {
            "items": {
                "type": "array",
                "items": _obj(
                    [
                        "at",
                        "actor",
                        "on_behalf_of",
                        "action",
                        "route",
                        "status",
                        "instance_id",
                        "patient_ref",
                        "request_id",
                        "organisation",
                        "break_glass",
                        "break_glass_reason",
                        "break_glass_note",
                    ],
                    {
                        "at": _DATE_TIME,
                        "actor": {"type": "string"},
                        "on_behalf_of": _NULLABLE_STRING,
                        "action": {
                            "type": "string",
                            "description": "The permission the route needs, e.g. documents.read",
                        },
                        "route": {
                            "type": "string",
                            "description": "Method and route template, e.g. GET /v1/instances/<uuid:instance_id>",
                        },
                        "status": {"type": "integer"},
                        "instance_id": _NULLABLE_STRING,
                        "patient_ref": _NULLABLE_STRING,
                        "request_id": {"type": "string"},
                        "organisation": _NULLABLE_STRING,
                        "break_glass": {
                            "type": "boolean",
                            "description": "A clinician's read outside their care teams",
                        },
                        "break_glass_reason": {"type": ["string", "null"], "enum": [*BREAK_GLASS_REASONS, None]},
                        "break_glass_note": {
                            "type": ["string", "null"],
                            "description": "The clinician's own words, kept only here",
                        },
                    },
                ),
            },
            "next_cursor": _NULLABLE_STRING,
        },
    ),
    "VerificationJob": _obj(
        [
            "id",
            "status",
            "requested_by",
            "requested_at",
            "started_at",
            "progress_at",
            "finished_at",
            "instances_total",
            "instances_checked",
            "verified",
            "problem_count",
            "problems",
            "failure",
            "organisation",
        ],
        {
            "id": {"type": "string"},
            "status": {"enum": ["queued", "running", "verified", "problems", "failed"]},
            "requested_by": {"type": "string"},
            "requested_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"]},
            "progress_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
            "instances_total": {"type": ["integer", "null"]},
            "instances_checked": {"type": "integer"},
            "verified": {"type": ["boolean", "null"]},
            "problem_count": {"type": "integer"},
            "problems": {
                "type": "array",
                "description": "The first 1,000 problems found",
                "items": _obj(
                    ["instance_id", "seq", "message"],
                    {
                        "instance_id": {"type": "string"},
                        "seq": {"type": ["integer", "null"]},
                        "message": {"type": "string"},
                    },
                ),
            },
            "failure": {"type": ["string", "null"], "description": "The error's type, when the job failed"},
            "organisation": {
                "type": ["string", "null"],
                "description": "The organisation whose trails it verifies "
                "(an auditor of one organisation starts and reads only those); null: every trail",
            },
        },
    ),
    "Health": _obj(["status", "version"], {"status": {"const": "ok"}, "version": {"type": "string"}}),
    "Index": _obj(
        ["name", "version", "links"],
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "links": {
                "type": "object",
                "description": "By name: the collections, and what describes the API",
                "additionalProperties": _obj(
                    ["href", "title"],
                    {
                        "href": {"type": "string"},
                        "title": {"type": "string"},
                        "methods": {"type": "array", "items": {"enum": ["GET", "POST", "PATCH"]}},
                    },
                ),
            },
        },
    ),
    # Documents (docs/documents.md): codes travel with labels in the document's language.
    "CarePlanItem": _obj(list(_ITEM_PROPS), _ITEM_PROPS),
    "CarePlanDocument": _obj(
        [*_DOCUMENT_HEADER, *_CARE_PLAN_PROPS],
        {**_DOCUMENT_HEADER, "document_type": {"const": "personalised_care_plan"}, **_CARE_PLAN_PROPS},
    ),
    "EndOfTreatmentSummaryPhases": _obj(
        ["instance_id", "patient_ref", "language", "phases"],
        {
            "instance_id": {"type": "string"},
            "patient_ref": {"type": "string"},
            "language": {"type": "string"},
            "phases": {"type": "array", "items": _PHASE},
        },
    ),
    "EndOfTreatmentSummary": _obj(
        [*_DOCUMENT_HEADER, *_SUMMARY_DOCUMENT_PROPS],
        {**_DOCUMENT_HEADER, "document_type": {"const": "end_of_treatment_summary"}, **_SUMMARY_DOCUMENT_PROPS},
    ),
    "ActiveSurveillancePlan": _obj(
        [*_DOCUMENT_HEADER, *_SURVEILLANCE_PLAN_PROPS],
        {**_DOCUMENT_HEADER, "document_type": {"const": "active_surveillance_plan"}, **_SURVEILLANCE_PLAN_PROPS},
    ),
    "CarePlanItemRecord": _obj(list(_ITEM_RECORD_PROPS), _ITEM_RECORD_PROPS),
    # Rule evaluations and their explanations.
    "EvaluationSummary": _obj(list(_EVALUATION_PROPS), _EVALUATION_PROPS),
    "DecisionEvaluationSummary": _obj(list(_DECISION_PROPS), _DECISION_PROPS),
    "DecisionEvaluationList": _obj(
        ["items"], {"items": {"type": "array", "items": schema_ref("DecisionEvaluationSummary")}}
    ),
    "DecisionEvaluation": _obj(
        [*_DECISION_PROPS, "explanation"],
        {
            **_DECISION_PROPS,
            "explanation": _obj(
                ["decision", "hit_policy", "table_version", "file", "rules", "text"],
                {
                    "decision": {"type": "string"},
                    "hit_policy": {"type": "string"},
                    "table_version": {"type": "string"},
                    "file": {"type": "string"},
                    "text": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "items": _obj(
                            ["rule", "row", "verdict", "entries", "failed_input", "outputs"],
                            {
                                "rule": {"type": "string"},
                                "row": {"type": "integer"},
                                "verdict": {"type": "string", "enum": ["matched", "not matched", "not evaluated"]},
                                "entries": _NAMES,
                                "failed_input": {"type": ["string", "null"]},
                                "outputs": _NAMES,
                            },
                        ),
                    },
                },
            ),
        },
    ),
    "EvaluationList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("EvaluationSummary")}}),
    "ConcernTrends": _obj(
        ["instance_id", "assessments", "concerns", "deteriorated"],
        {
            "instance_id": {"type": "string", "format": "uuid"},
            "assessments": {
                "type": "array",
                "description": "The assessments (rule evaluations), oldest first",
                "items": _obj(
                    ["evaluation_id", "at"],
                    {"evaluation_id": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
                ),
            },
            "concerns": {
                "type": "array",
                "description": "One series per concern scored at any assessment, by code",
                "items": _obj(
                    ["code", "points"],
                    {
                        "code": {"type": "string"},
                        "points": {
                            "type": "array",
                            "description": "One point per assessment; not scored counts as 0",
                            "items": _obj(
                                ["evaluation_id", "at", "score", "change"],
                                {
                                    "evaluation_id": {"type": "string"},
                                    "at": {"type": "string", "format": "date-time"},
                                    "score": {"type": "integer", "minimum": 0, "maximum": 10},
                                    "change": {
                                        "type": ["integer", "null"],
                                        "description": "Since the previous assessment (null at the first)",
                                    },
                                },
                            ),
                        },
                    },
                ),
            },
            "deteriorated": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Concerns that rose by 3 or more, or reached 8, at the latest assessment",
            },
        },
    ),
    "Evaluation": _obj(
        [*_EVALUATION_PROPS, "facts", "rule_file", "rule_text", "catalogue_texts", "trail_event"],
        {
            **_EVALUATION_PROPS,
            "facts": {
                "type": "array",
                "items": {"type": "object"},
                "description": "The facts evaluated: the context and each assessed concern",
            },
            "rule_file": {"type": "string"},
            "rule_text": {"type": "string", "description": "The exact rule file used"},
            "catalogue_texts": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The exact catalogue files used, by file name",
            },
            "trail_event": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        ["seq", "at", "pathway_id", "pathway_version"],
                        {
                            "seq": {"type": "integer"},
                            "at": _DATE_TIME,
                            "pathway_id": {"type": ["string", "null"]},
                            "pathway_version": {"type": "string"},
                        },
                    ),
                ],
                "description": "The rules_evaluated event of the instance's trail that records this evaluation, "
                "and the pathway version the instance was on (null: no instance, or deleted since)",
            },
        },
    ),
    "Explanation": {"oneOf": [schema_ref("WhyExplanation"), schema_ref("WhyNotExplanation")]},
    "WhyExplanation": _obj(
        [*_EXPLANATION_PROPS, "reasons"],
        {
            **_EXPLANATION_PROPS,
            "kind": {"const": "why"},
            "reasons": {
                "type": "array",
                "items": _obj(
                    ["rule_id", "title", "guidance", "matched", "proposes", "loc"],
                    {
                        "rule_id": {"type": "string"},
                        "title": {"type": "string"},
                        "guidance": _GUIDANCE,
                        "matched": {"type": "array", "items": {"type": "object"}},
                        "proposes": {"type": "string"},
                        "loc": _LOC,
                    },
                ),
            },
        },
    ),
    "WhyNotExplanation": _obj(
        [*_EXPLANATION_PROPS, "nearest", "others", "note"],
        {
            **_EXPLANATION_PROPS,
            "kind": {"const": "why_not"},
            "nearest": {"oneOf": [schema_ref("NearMiss"), {"type": "null"}]},
            "others": {"type": "array", "items": schema_ref("NearMiss")},
            "note": _NULLABLE_STRING,
        },
    ),
    "NearMiss": _obj(
        ["rule_id", "title", "guidance", "failed", "loc"],
        {
            "rule_id": {"type": "string"},
            "title": {"type": "string"},
            "guidance": _GUIDANCE,
            "loc": _LOC,
            "failed": {
                "type": "array",
                "items": _obj(
                    ["condition", "actual", "loc", "gap"],
                    {
                        "condition": {"type": "string"},
                        "actual": {"type": "string"},
                        "loc": _LOC,
                        "gap": {"type": "number", "description": "How far the actual value is from passing"},
                    },
                ),
            },
        },
    ),
    # Migration.
    "MigrationReport": _obj(
        ["pathway_id", "to_version", "dry_run", "instances"],
        {
            "pathway_id": {"type": "string"},
            "to_version": {"type": "string"},
            "dry_run": {"type": "boolean"},
            # Not required: reports kept with migration requests from before the fast path lack it.
            "fast_path": {
                "type": "integer",
                "description": "How many instances took (or would take) the fast "
                "path: their stored state needed no restore (engine/instances/migration_fast.py)",
            },
            "instances": {
                "type": "array",
                "items": _obj(list(_MIGRATION_PROPS), {**_MIGRATION_PROPS, "fast_path": {"type": "boolean"}}),
            },
        },
    ),
    "MigrationRequestRecord": _obj(
        [
            "id",
            "pathway_id",
            "target_version",
            "status",
            "requested_by",
            "requested_at",
            "report",
            "approved_by",
            "approved_at",
            "result",
        ],
        {
            "id": {"type": "string", "pattern": UUID_PATTERN},
            "pathway_id": {"type": "string"},
            "target_version": {
                "type": "string",
                "description": "The version the dry run moved to; approval runs only "
                "while it is still the active version",
            },
            "status": {"enum": ["requested", "approved", "executed"]},
            "requested_by": {"type": "string"},
            "requested_at": {"type": "string", "format": "date-time"},
            "report": {**schema_ref("MigrationReport"), "description": "The requester's dry run"},
            "approved_by": {"type": ["string", "null"], "description": "A second author: never who asked"},
            "approved_at": {"type": ["string", "null"], "format": "date-time"},
            "result": {
                "oneOf": [schema_ref("MigrationReport"), {"type": "null"}],
                "description": "What the approved run did",
            },
        },
    ),
    "RuleSetVersion": _obj(
        ["name", "version", "deployed_at", "deployed_by", "active", "activated_at", "activated_by"],
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "deployed_at": {"type": "string", "format": "date-time"},
            "deployed_by": {"type": "string"},
            "active": {"type": "boolean", "description": "The version evaluations in pathways use"},
            "activated_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "null: pending, waiting for a second author",
            },
            "activated_by": {"type": ["string", "null"]},
            "rules_version": {"type": "string", "description": "The rule text's own version (evaluations record it)"},
            "catalogue_version": {
                "type": ["string", "null"],
                "description": "The concern and intervention catalogue "
                "it is evaluated with, part of version (null: recorded before catalogues were; "
                "the folder's is used)",
            },
        },
    ),
    "RuleSetVersionList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("RuleSetVersion")}}),
    "MigrationRequestList": _obj(
        ["items"], {"items": {"type": "array", "items": schema_ref("MigrationRequestRecord")}}
    ),
    "Ready": _obj(["status", "schema_revision"], {"status": {"const": "ready"}, "schema_revision": {"type": "string"}}),
    # Request bodies.
    "StartRequest": _obj(
        ["pathway_id", "patient_ref"],
        {
            "pathway_id": {"type": "string", "pattern": NAME_PATTERN},
            "patient_ref": {
                "type": "string",
                "pattern": PATIENT_REF,
                "description": "An external patient identifier (MRN, system id), never a name",
            },
            "data": {
                "type": "object",
                "description": "Initial pathway data: must pass the pathway's start data "
                "schema (GET /v1/pathways/{pathway_id}; in the served "
                "document, StartData.<pathway_id>), else 422 "
                "start-data-invalid naming every field",
            },
            "organisation": {
                "type": "string",
                "pattern": CARE_NAME_PATTERN,
                "description": "The organisation whose patient this is (default: the token's, else the deployment's)",
            },
            "care_team": {
                "type": "string",
                "pattern": CARE_NAME_PATTERN,
                "description": "The care team looking after the patient (default: the token's one team, else "
                "the deployment's); a token of other teams gets 403",
            },
            "confirm_other_site": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "description": "The site a diagnosis names that is not the pathway's (lung on breast_cancer), "
                "confirming that this is the pathway meant: the start records the check and answers with no "
                "warning. Another site, or a diagnosis naming none, is refused (400 on this field)",
            },
        },
    ),
    "PathwayCheck": _obj(
        ["site"],
        {
            "site": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "description": "The site the instance's diagnosis names (its warning's site); another, or an "
                "instance with nothing to confirm, is refused (400 on this field)",
            }
        },
    ),
    "CareTeamChange": {
        **_obj(
            ["care_team", "reason"],
            {
                "care_team": {
                    "type": "string",
                    "pattern": CARE_NAME_PATTERN,
                    "description": "The team of the instance's organisation that looks after the patient from now",
                },
                "reason": {"enum": list(TEAM_CHANGE_REASONS), "description": "Why (recorded in the event trail)"},
            },
        ),
        "description": "Move an instance to another care team of its organisation; its clinicians see it from now "
        "on, the old team's no longer do. The care_team_changed event records actor, old and new "
        "team and the reason code.",
    },
    "CompleteRequest": _obj(
        ["data"],
        {
            "data": {
                "type": "object",
                "description": (
                    "Must pass the task's form and hold only the fields it declares (any other is refused as "
                    "undeclared); "
                    "a readOnly field may be sent back only unchanged (else readOnly); "
                    "a task without a form declares none: {}"
                ),
            }
        },
    ),
    **_PATIENT_SCHEMAS,
    # The patient asks for a needs assessment: nothing to say but that (who asks is the token's patient).
    "AssessmentRequest": _obj([], {}),
    "LifecycleRequest": _obj(
        [],
        {
            "reason": {
                "type": "string",
                "pattern": REASON_PATTERN.pattern,
                "examples": ["admitted", "patient_request", "transferred", "entered_in_error"],
                "description": "Why (suspend, cancel), as a code: never free text, because it is recorded in the "
                "event trail, which holds no patient data; resume records none",
            }
        },
    ),
    "SandboxAdvance": _obj(
        ["advance"],
        {
            "advance": {
                "type": "string",
                "maxLength": 40,
                "examples": ["P3M", "P2W", "P1DT12H"],
                "description": "A positive ISO 8601 duration (months and years by the calendar); at most 1,830 days "
                "at a "
                "time, and the clock at most 36,600 days ahead of the real time",
            }
        },
    ),
    "SandboxClock": _obj(
        ["now", "offset_seconds"],
        {"now": _DATE_TIME, "offset_seconds": {"type": "number", "description": "How far ahead of the real time"}},
    ),
    "DataCorrection": {
        **_obj(
            ["data", "reason"],
            {
                "data": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 50,
                    "description": "The fields to set (with a start data schema: only its fields; the instance's "
                    "values, corrected, must pass it)",
                },
                "reason": {
                    "type": "string",
                    "pattern": REASON_PATTERN.pattern,
                    "examples": ["entered_in_error", "transcription_error", "clinical_review"],
                    "description": "Why, as a code: never free text, because it is recorded in the event trail "
                    "with the fields' names and a digest of the change (never the values)",
                },
            },
        ),
        "description": "A clinician's correction of an instance's data. Nothing runs; retry an incident after it.",
    },
    "CarePlanItemUpdate": {
        **_obj(
            ["status"],
            {
                "status": {
                    "enum": sorted(
                        {
                            s
                            for status in ITEM_STATUSES
                            for kind in ("referral", "intervention")
                            for s in next_statuses(status, kind)
                        },
                        key=ITEM_STATUSES.index,
                    ),
                    "description": "The status to move the item to",
                },
                "reason": {
                    "type": "string",
                    "pattern": REASON_PATTERN.pattern,
                    "description": "Why, as a code (never free text: it is recorded in the event trail); needed to "
                    "reconsider a declined item (declined -> agreed)",
                },
            },
        ),
        "description": "A referral's status moves: "
        + "; ".join(f"{status} -> {' | '.join(next_statuses(status)) or '(final)'}" for status in ITEM_STATUSES)
        + ". Interventions and information: "
        + "; ".join(
            f"{status} -> {' | '.join(next_statuses(status, 'intervention'))}"
            for status in ITEM_STATUSES
            if next_statuses(status, "intervention")
        )
        + ". Any other move is 409 instance-state-conflict.",
        "x-transitions": {status: list(next_statuses(status)) for status in ITEM_STATUSES},
        "x-transitions-other-items": {status: list(next_statuses(status, "intervention")) for status in ITEM_STATUSES},
    },
    "Activation": _obj([], {}),
    "MigrateRequest": _obj(
        ["dry_run"], {"dry_run": {"type": "boolean", "description": "true: report what would change, write nothing"}}
    ),
    "MessageRequest": {
        **_obj(
            ["name"],
            {
                "name": {"type": "string", "pattern": NAME_PATTERN},
                "patient_ref": {"type": "string", "pattern": PATIENT_REF},
                "instance_id": {"type": "string", "pattern": UUID_PATTERN},
                "payload": {"type": "object"},
            },
        ),
        "oneOf": [{"required": ["patient_ref"]}, {"required": ["instance_id"]}],
    },
    "Upload": {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "contentMediaType": "application/xml"},
            },
        },
    },
}
