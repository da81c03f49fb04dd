"""The OpenAPI 3.1 document, as one Python dict built at import time.

It is the contract in three places: served at ``/v1/openapi.json``; the source of the request-body
schemas the views validate against (:mod:`api.parsing`); and the schema every response of the test
suite is checked against. Each operation names the permission it needs (``x-permission``, from
:data:`engine.access.PERMISSIONS`), which the role x endpoint test walks.
"""

from __future__ import annotations

from typing import Any

from engine.access import PERMISSIONS
from engine.queries import MAX_LIMIT, STATUSES

__all__ = ["DOCUMENT", "PROBLEM_TYPES", "operation_for", "schema_ref"]

PROBLEM_BASE = "https://carepath.dev/problems/"
# Stable problem types: slug -> title. Clients may switch on the type URI; titles may be reworded.
PROBLEM_TYPES: dict[str, str] = {
    "request-invalid": "The request is not valid",
    "malformed-json": "The request body is not valid JSON",
    "unsupported-media-type": "The request body has the wrong content type",
    "body-too-large": "The request body is too large",
    "input-invalid": "The input is not valid",
    "task-data-invalid": "The task data does not match the task's form",
    "diagram-invalid": "The diagram is not valid",
    "rule-file-invalid": "The rule file is not valid",
    "unsafe-expression": "An expression is outside the safe language",
    "idempotency-key-reused": "The Idempotency-Key was used for a different request",
    "idempotency-key-in-use": "A request with this Idempotency-Key is still running",
    "unauthenticated": "A valid bearer token is required",
    "forbidden": "The token's role may not do this",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "stale-version": "The instance version in If-Match is not the current one",
    "instance-changed": "The instance was changed by another request",
    "task-not-ready": "The task is not ready",
    "instance-state-conflict": "The instance is not in a state for this",
    "message-not-deliverable": "No instance is waiting for this message",
    "not-ready": "The service is not ready",
    "internal-error": "Internal error",
}

_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_NAME = "^[A-Za-z_][A-Za-z0-9_.-]{0,199}$"  # BPMN ids (XML NCName subset)
_PATIENT_REF = "^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"  # engine.service.validate_patient_ref
_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_DATE_TIME = {"type": "string", "format": "date-time"}


def schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], properties: dict[str, Any], extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": extra}


_TASK_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "element": {"type": "string"}, "name": {"type": "string"},
    "process": {"type": "string"}, "kind": {"type": "string"}, "state": {"type": "string"},
    "lane": _NULLABLE_STRING,
    "form": {"type": ["object", "null"], "description": "The task's form as a JSON Schema (2020-12)"},
}
_SUMMARY_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": _UUID}, "pathway_id": {"type": "string"},
    "pathway_version": {"type": "string"}, "patient_ref": {"type": "string"},
    "status": {"enum": list(STATUSES)},
    "version": {"type": "integer", "description": "Send back in If-Match (also the ETag)"},
    "next_due_at": {"type": ["string", "null"], "format": "date-time"},
    "incident": {"type": ["object", "null"]},
    "created_at": _DATE_TIME, "updated_at": _DATE_TIME,
}
_LOCATED_PROBLEM = {
    "type": "object", "required": ["message"], "additionalProperties": False,
    "properties": {"message": {"type": "string"}, "field": {"type": "string"}, "element": {"type": "string"},
                   "file": {"type": "string"}, "line": {"type": "integer"}, "column": {"type": "integer"},
                   "code": {"type": "string"}},
}

_CODE_LABEL = _obj(["code", "label"], {"code": {"type": "string"}, "label": {"type": "string"}})
_NULLABLE_OBJECT: dict[str, Any] = {"type": ["object", "null"]}
_OBJECTS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_DOCUMENT_HEADER: dict[str, Any] = {
    "document_type": {"type": "string"}, "schema_version": {"type": "string"}, "generated_at": _DATE_TIME,
    "language": {"enum": ["en", "sv"], "description": "Also sent as Content-Language"}, "title": {"type": "string"},
    "instance_id": {"type": "string", "pattern": _UUID}, "pathway_id": {"type": "string"},
    "pathway_name": {"type": "string"}, "pathway_version": {"type": "string"}, "patient_ref": {"type": "string"},
    "instance_status": _CODE_LABEL,
}
_ITEM_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": _UUID}, "kind": {"enum": ["referral", "intervention", "information"]},
    "kind_label": {"type": "string"}, "code": {"type": "string"}, "name": {"type": "string"},
    "description": _NULLABLE_STRING,
    "service": {"oneOf": [_obj(["code", "name"], {"code": {"type": "string"}, "name": {"type": "string"}}),
                          {"type": "null"}]},
    "urgency": _NULLABLE_STRING, "urgency_label": _NULLABLE_STRING, "status": {"type": "string"},
    "status_label": {"type": "string"}, "updated_at": _DATE_TIME,
    "why": _obj(["evaluation_id", "assessed_at", "ruleset", "ruleset_version", "catalogue_version", "rules"], {
        "evaluation_id": {"type": "string", "description": "GET /v1/evaluations/{evaluation_id}"},
        "assessed_at": {"type": ["string", "null"], "format": "date-time"}, "ruleset": _NULLABLE_STRING,
        "ruleset_version": _NULLABLE_STRING, "catalogue_version": _NULLABLE_STRING,
        "rules": {"type": "array", "items": _obj(["id", "title"], {"id": {"type": "string"},
                                                                  "title": _NULLABLE_STRING})}}),
}
_ITEMS: dict[str, Any] = {"type": "array", "items": schema_ref("CarePlanItem")}
_DIAGNOSIS = _obj(["code", "label", "diagnosis_date", "age", "treatment_intent"], {
    "code": {"type": ["string", "null"]}, "label": {"type": "string"}, "diagnosis_date": _NULLABLE_STRING,
    "age": {"type": ["integer", "null"]}, "treatment_intent": {"oneOf": [_CODE_LABEL, {"type": "null"}]}})
_CARE_PLAN_PROPS: dict[str, Any] = {
    "diagnosis": _DIAGNOSIS, "what_matters": _NULLABLE_STRING, "named_contact": _NULLABLE_OBJECT,
    "needs": _OBJECTS, "assessments": _OBJECTS, "agreed": _ITEMS, "declined": _ITEMS, "awaiting_decision": _ITEMS,
    "next_steps": _obj(["ready_tasks", "next_due_at", "upcoming"], {
        "ready_tasks": _OBJECTS, "next_due_at": {"type": ["string", "null"], "format": "date-time"},
        "upcoming": _OBJECTS}),
}
_SUMMARY_DOCUMENT_PROPS: dict[str, Any] = {
    "diagnosis": _DIAGNOSIS, "treatments_received": _OBJECTS, "completed_on": _NULLABLE_STRING,
    "effects_to_watch_for": _STRINGS,
    "warning_signs": _obj(["explained", "diagnosis", "catalogue_version", "signs"], {
        "explained": {"type": "boolean"}, "diagnosis": {"type": "string"}, "catalogue_version": {"type": "string"},
        "signs": _OBJECTS}),
    "who_to_call": _obj(["named_contact", "services"], {"named_contact": _NULLABLE_OBJECT, "services": _OBJECTS}),
    "ongoing_support": _obj(["care_plan", "other"], {"care_plan": _ITEMS, "other": _STRINGS}),
    "gp_actions": _STRINGS, "follow_up": {"oneOf": [_obj(["model", "label"], {
        "model": {"type": "string"}, "label": {"type": "string"}}), {"type": "null"}]},
}
_ITEM_RECORD_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "kind": {"type": "string"}, "code": {"type": "string"}, "service": _NULLABLE_STRING,
    "urgency": _NULLABLE_STRING, "rules": _STRINGS, "status": {"type": "string"},
    "evaluation_id": {"type": "string"}, "task_id": {"type": "string"}, "created_at": _DATE_TIME,
    "updated_at": _DATE_TIME, "updated_by": {"type": "string"},
}
_EVALUATION_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "ruleset": {"type": "string"},
    "ruleset_version": {"type": "string", "description": "SHA-256 of the rule file's text"},
    "catalogue_version": {"type": "string"}, "created_at": _DATE_TIME, "instance_id": _NULLABLE_STRING,
    "task_id": _NULLABLE_STRING,
    "firings": {"type": "array", "description": "Rules that fired, in order, with the ids of the facts matched",
                "items": _obj(["rule", "matched"], {"rule": {"type": "string"}, "matched": _STRINGS})},
    "outcomes": {"type": "object", "description": "Referrals, interventions, information, not recommended"},
}
_LOC = _obj(["file", "line", "column"], {"file": {"type": "string"}, "line": {"type": "integer"},
                                         "column": {"type": "integer"}})
_GUIDANCE: dict[str, Any] = {"type": "array", "items": _obj(["source", "title", "year", "section", "url"], {
    "source": {"type": "string"}, "title": {"type": "string"}, "year": {"type": ["integer", "null"]},
    "section": _NULLABLE_STRING, "url": _NULLABLE_STRING})}
_EXPLANATION_PROPS: dict[str, Any] = {
    "kind": {"enum": ["why", "why_not"]}, "evaluation_id": {"type": "string"}, "ruleset": {"type": "string"},
    "version": {"type": "string"}, "code": {"type": "string"},
    "made": {"type": "boolean", "description": "Whether the evaluation proposed the code"},
    "text": {"type": "string", "description": "The same explanation as plain text"},
}
_MIGRATION_PROPS: dict[str, Any] = {
    "instance_id": {"type": "string"}, "status": {"type": "string"}, "from_version": {"type": "string"},
    "to_version": {"type": "string"}, "migrated": {"type": "boolean"},
    "refused": {"type": ["string", "null"], "description": "Why the instance cannot be moved (nothing changed)"},
    "tasks_added": _STRINGS, "tasks_removed": _STRINGS,
    "timers_moved": {"type": "array", "items": _obj(["element", "from", "to"], {
        "element": {"type": "string"}, "from": _NULLABLE_STRING, "to": _NULLABLE_STRING})},
}

SCHEMAS: dict[str, Any] = {
    "Problem": _obj(["type", "title", "status", "request_id"], {
        "type": {"type": "string", "enum": [PROBLEM_BASE + slug for slug in PROBLEM_TYPES]},
        "title": {"type": "string"}, "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"}, "request_id": {"type": "string"},
        "errors": {"type": "array", "items": schema_ref("LocatedProblem")},
    }),
    "LocatedProblem": _LOCATED_PROBLEM,
    "PathwayVersion": _obj(["pathway_id", "version", "title", "main_file", "deployed_at", "deployed_by", "latest"], {
        "pathway_id": {"type": "string"}, "version": {"type": "string"}, "title": {"type": "string"},
        "main_file": {"type": "string"}, "deployed_at": _DATE_TIME, "deployed_by": {"type": "string"},
        "latest": {"type": "boolean"},
    }),
    "PathwayVersionList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("PathwayVersion")}}),
    "ValidationReport": _obj(["valid", "problems"], {
        "valid": {"type": "boolean"}, "problems": {"type": "array", "items": schema_ref("LocatedProblem")}}),
    "Task": _obj(list(_TASK_PROPS), _TASK_PROPS),
    "TaskInInstance": _obj([*_TASK_PROPS, "instance_id", "instance_version", "pathway_id", "patient_ref"], {
        **_TASK_PROPS, "instance_id": {"type": "string"}, "instance_version": {"type": "integer"},
        "pathway_id": {"type": "string"}, "patient_ref": {"type": "string"}}),
    "TaskPage": _obj(["items", "next_cursor"], {
        "items": {"type": "array", "items": schema_ref("TaskInInstance")}, "next_cursor": _NULLABLE_STRING}),
    "InstanceSummary": _obj(list(_SUMMARY_PROPS), _SUMMARY_PROPS),
    "Instance": _obj([*_SUMMARY_PROPS, "ready_tasks"], {
        **_SUMMARY_PROPS, "ready_tasks": {"type": "array", "items": schema_ref("Task")}}),
    "InstancePage": _obj(["items", "next_cursor"], {
        "items": {"type": "array", "items": schema_ref("InstanceSummary")}, "next_cursor": _NULLABLE_STRING}),
    "Delivery": _obj(["delivered"], {"delivered": {"type": "array", "items": schema_ref("Instance")}}),
    "Event": _obj(["seq", "type", "at", "actor", "pathway_version", "element", "task_id", "payload",
                   "prev_hash", "hash"], {
        "seq": {"type": "integer"}, "type": {"type": "string"}, "at": _DATE_TIME, "actor": {"type": "string"},
        "pathway_version": {"type": "string"}, "element": _NULLABLE_STRING, "task_id": _NULLABLE_STRING,
        "payload": {"type": "object"}, "prev_hash": {"type": "string"}, "hash": {"type": "string"}}),
    "EventList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("Event")}}),
    "TrailReport": _obj(["verified", "problems"], {
        "verified": {"type": "boolean"},
        "problems": {"type": "array", "items": _obj(["instance_id", "seq", "message"], {
            "instance_id": {"type": "string"}, "seq": {"type": ["integer", "null"]}, "message": {"type": "string"}})},
    }),
    "Health": _obj(["status"], {"status": {"const": "ok"}}),
    # Documents (docs/documents.md): codes travel with labels in the document's language.
    "CarePlanItem": _obj(list(_ITEM_PROPS), _ITEM_PROPS),
    "CarePlanDocument": _obj([*_DOCUMENT_HEADER, *_CARE_PLAN_PROPS], {
        **_DOCUMENT_HEADER, "document_type": {"const": "personalised_care_plan"}, **_CARE_PLAN_PROPS}),
    "EndOfTreatmentSummary": _obj([*_DOCUMENT_HEADER, *_SUMMARY_DOCUMENT_PROPS], {
        **_DOCUMENT_HEADER, "document_type": {"const": "end_of_treatment_summary"}, **_SUMMARY_DOCUMENT_PROPS}),
    "CarePlanItemRecord": _obj(list(_ITEM_RECORD_PROPS), _ITEM_RECORD_PROPS),
    # Rule evaluations and their explanations.
    "EvaluationSummary": _obj(list(_EVALUATION_PROPS), _EVALUATION_PROPS),
    "EvaluationList": _obj(["items"], {"items": {"type": "array", "items": schema_ref("EvaluationSummary")}}),
    "Evaluation": _obj([*_EVALUATION_PROPS, "facts", "rule_file", "rule_text", "catalogue_texts"], {
        **_EVALUATION_PROPS,
        "facts": {"type": "array", "items": {"type": "object"},
                  "description": "The facts evaluated: the context and each assessed concern"},
        "rule_file": {"type": "string"}, "rule_text": {"type": "string", "description": "The exact rule file used"},
        "catalogue_texts": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "The exact catalogue files used, by file name"}}),
    "Explanation": {"oneOf": [schema_ref("WhyExplanation"), schema_ref("WhyNotExplanation")]},
    "WhyExplanation": _obj([*_EXPLANATION_PROPS, "reasons"], {
        **_EXPLANATION_PROPS, "kind": {"const": "why"},
        "reasons": {"type": "array", "items": _obj(["rule_id", "title", "guidance", "matched", "proposes", "loc"], {
            "rule_id": {"type": "string"}, "title": {"type": "string"}, "guidance": _GUIDANCE,
            "matched": {"type": "array", "items": {"type": "object"}}, "proposes": {"type": "string"},
            "loc": _LOC})}}),
    "WhyNotExplanation": _obj([*_EXPLANATION_PROPS, "nearest", "others", "note"], {
        **_EXPLANATION_PROPS, "kind": {"const": "why_not"},
        "nearest": {"oneOf": [schema_ref("NearMiss"), {"type": "null"}]},
        "others": {"type": "array", "items": schema_ref("NearMiss")}, "note": _NULLABLE_STRING}),
    "NearMiss": _obj(["rule_id", "title", "guidance", "failed", "loc"], {
        "rule_id": {"type": "string"}, "title": {"type": "string"}, "guidance": _GUIDANCE, "loc": _LOC,
        "failed": {"type": "array", "items": _obj(["condition", "actual", "loc", "gap"], {
            "condition": {"type": "string"}, "actual": {"type": "string"}, "loc": _LOC,
            "gap": {"type": "number", "description": "How far the actual value is from passing"}})}}),
    # Migration.
    "MigrationReport": _obj(["pathway_id", "to_version", "dry_run", "instances"], {
        "pathway_id": {"type": "string"}, "to_version": {"type": "string"}, "dry_run": {"type": "boolean"},
        "instances": {"type": "array", "items": _obj(list(_MIGRATION_PROPS), _MIGRATION_PROPS)}}),
    "Ready": _obj(["status", "schema_revision"], {"status": {"const": "ready"}, "schema_revision": {"type": "string"}}),
    # Request bodies.
    "StartRequest": _obj(["pathway_id", "patient_ref"], {
        "pathway_id": {"type": "string", "pattern": _NAME},
        "patient_ref": {"type": "string", "pattern": _PATIENT_REF,
                        "description": "An external patient identifier (MRN, system id), never a name"},
        "data": {"type": "object", "description": "Initial pathway data"}}),
    "CompleteRequest": _obj(["data"], {"data": {"type": "object", "description": "Must pass the task's form"}}),
    "LifecycleRequest": _obj([], {"reason": {"type": "string", "maxLength": 500}}),
    "CarePlanItemUpdate": _obj(["status"], {"status": {"enum": ["agreed", "referred", "completed", "declined"]}}),
    "MigrateRequest": _obj(["dry_run"], {
        "dry_run": {"type": "boolean", "description": "true: report what would change, write nothing"}}),
    "MessageRequest": {
        **_obj(["name"], {
            "name": {"type": "string", "pattern": _NAME},
            "patient_ref": {"type": "string", "pattern": _PATIENT_REF},
            "instance_id": {"type": "string", "pattern": _UUID},
            "payload": {"type": "object"}}),
        "oneOf": [{"required": ["patient_ref"]}, {"required": ["instance_id"]}],
    },
    "Upload": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "minItems": 1, "items": {"type": "string", "contentMediaType": "application/xml"}},
    }},
}


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


def _response(description: str, schema: str | dict[str, Any] | None, media: str = "application/json",
              headers: tuple[str, ...] = ()) -> dict[str, Any]:
    found: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    for name in headers:
        found[name] = {"$ref": f"#/components/headers/{name}"}
    response: dict[str, Any] = {"description": description, "headers": found}
    if schema is not None:
        response["content"] = {media: {"schema": schema_ref(schema) if isinstance(schema, str) else schema}}
    return response


_ERROR_DESCRIPTIONS = {
    400: "Bad request: a parameter, header or the body is invalid (every failing field is named)",
    401: "No valid bearer token", 403: "The token's role may not do this", 404: "Not found",
    409: "Conflict with the instance's current state", 412: "If-Match does not name the current version",
    413: "Body too large", 415: "Wrong content type", 422: "Well-formed but invalid input",
    500: "Internal error (no details are given)", 503: "Not ready",
}


def _op(op_id: str, summary: str, permission: str | None, ok: dict[int, dict[str, Any]],
        errors: tuple[int, ...] = (), parameters: list[dict[str, Any]] | None = None,
        body: str | None = None, body_media: str = "application/json", body_required: bool = True,
        tag: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {str(code): response for code, response in ok.items()}
    codes = set(errors) | {400, 500}  # 400: unknown query parameters are refused everywhere
    if permission is not None:
        codes |= {401, 403}
    if body is not None:
        codes |= {400, 413, 415}
    for code in sorted(codes):
        responses[str(code)] = _response(_ERROR_DESCRIPTIONS[code], "Problem", "application/problem+json")
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if permission is None:
        operation["security"] = []
    else:
        operation["x-permission"] = permission
        operation["description"] = "Roles: " + ", ".join(sorted(PERMISSIONS[permission]))
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {body_media: {"schema": schema_ref(body)}}}
    return operation


def _path(name: str, pattern: str = _NAME) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_INSTANCE_ID = _path("instance_id", _UUID)
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": 'The instance version the caller saw, quoted: "3". Stale -> 412.',
             "schema": {"type": "string", "pattern": '^"[0-9]{1,9}"$'}}
_IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "Retrying with the same key returns the first success; changes nothing twice.",
                    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}
_PAGING = [_query("cursor", {"type": "string", "maxLength": 500}, "next_cursor of the previous page"),
           _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})]
_FILTERS = [_query("patient_ref", {"type": "string", "pattern": _PATIENT_REF}),
            _query("pathway_id", {"type": "string", "pattern": _NAME})]
_INSTANCE = {200: _response("The instance; ETag is its version", "Instance", headers=("ETag",))}


_ACCEPT_LANGUAGE = {"name": "Accept-Language", "in": "header", "required": False,
                    "description": "sv or en (sv-SE, en-GB... count by their language); anything else: en",
                    "schema": {"type": "string"}}
_WHY_CODE = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"}
_EVALUATION_ID = _path("evaluation_id", _UUID)


def _document(op_id: str, summary: str, schema: str, errors: tuple[int, ...]) -> dict[str, Any]:
    """A document as JSON, or as a printable HTML page with ``Accept: text/html``."""
    ok = _response("The document in the language asked for (Content-Language); HTML with Accept: text/html",
                   schema, headers=("Content-Language", "Vary"))
    ok["content"]["text/html"] = {"schema": {"type": "string", "description": "A self-contained HTML page"}}
    return {"get": _op(op_id, summary, "documents.read", {200: ok}, errors, [_INSTANCE_ID, _ACCEPT_LANGUAGE],
                       tag="documents")}


def _lifecycle(op_id: str, verb: str) -> dict[str, Any]:
    return {"post": _op(op_id, f"{verb} an instance", "instances.manage", _INSTANCE, (404, 409, 412),
                        [_INSTANCE_ID, _IF_MATCH], body="LifecycleRequest", body_required=False,
                        tag="instances")}


PATHS: dict[str, Any] = {
    "/v1/health": {"get": _op("health", "Liveness (no authentication)", None,
                              {200: _response("Alive", "Health")}, tag="health")},
    "/v1/ready": {"get": _op("ready", "Readiness: database reachable and schema at head (no authentication)",
                             None, {200: _response("Ready", "Ready")}, (503,), tag="health")},
    "/v1/openapi.json": {"get": _op("openapi", "This document", "api.describe",
                                    {200: _response("OpenAPI 3.1 document", {"type": "object"})}, tag="health")},
    "/v1/pathways": {
        "get": _op("listPathways", "Latest version of every deployed pathway", "pathways.read",
                   {200: _response("Pathways", "PathwayVersionList")}, tag="pathways"),
        "post": _op("deployPathway", "Deploy the pathways in uploaded diagram files", "pathways.deploy",
                    {201: _response("Versions deployed (existing versions are kept)", "PathwayVersionList")},
                    (422,), body="Upload", body_media="multipart/form-data", tag="pathways"),
    },
    "/v1/pathways/validate": {
        "post": _op("validatePathway", "Check uploaded diagrams without deploying them", "pathways.validate",
                    {200: _response("Every problem found (valid when none)", "ValidationReport")},
                    body="Upload", body_media="multipart/form-data", tag="pathways"),
    },
    "/v1/pathways/{pathway_id}/versions": {
        "get": _op("listPathwayVersions", "Versions of a pathway, newest first", "pathways.read",
                   {200: _response("Versions", "PathwayVersionList")}, (404,), [_path("pathway_id")],
                   tag="pathways"),
    },
    "/v1/pathways/{pathway_id}/versions/{version}/diagram": {
        "get": _op("getPathwayDiagram", "Diagram XML of a version ('latest' or a version prefix)", "pathways.read",
                   {200: _response("BPMN XML", {"type": "string"}, "application/xml")}, (400, 404),
                   [_path("pathway_id"), _path("version", "^(latest|[0-9a-f]{4,64})$"),
                    _query("file", {"type": "string", "pattern": "^[A-Za-z0-9_./-]{1,300}$"},
                           "A file of the version other than the main diagram")], tag="pathways"),
    },
    "/v1/instances": {
        "post": _op("startInstance", "Start the latest version of a pathway for a patient", "instances.start",
                    {201: _response("Started", "Instance", headers=("ETag", "Location"))}, (404, 409, 422),
                    [_IDEMPOTENCY_KEY], body="StartRequest", tag="instances"),
        "get": _op("listInstances", "Instances, oldest first, with cursor pagination", "instances.read",
                   {200: _response("A page of instances", "InstancePage")}, (400,),
                   [*_FILTERS, _query("status", {"enum": list(STATUSES)}),
                    _query("due_before", {"type": "string", "format": "date-time"},
                           "Only instances with a timer due before this time"), *_PAGING], tag="instances"),
    },
    "/v1/instances/{instance_id}": {
        "get": _op("getInstance", "An instance with its ready tasks", "instances.read", _INSTANCE, (404,),
                   [_INSTANCE_ID], tag="instances"),
    },
    "/v1/instances/{instance_id}/suspend": _lifecycle("suspendInstance", "Suspend"),
    "/v1/instances/{instance_id}/resume": _lifecycle("resumeInstance", "Resume"),
    "/v1/instances/{instance_id}/cancel": _lifecycle("cancelInstance", "Cancel"),
    "/v1/tasks": {
        "get": _op("listReadyTasks", "Ready tasks across running instances (pages count instances)", "tasks.read",
                   {200: _response("A page of ready tasks", "TaskPage")}, (400,),
                   [*_FILTERS, _query("element", {"type": "string", "pattern": _NAME}), *_PAGING], tag="tasks"),
    },
    "/v1/instances/{instance_id}/tasks/{task_id}": {
        "get": _op("getTask", "A ready task with its form (JSON Schema)", "tasks.read",
                   {200: _response("The task; ETag is the instance version", "TaskInInstance", headers=("ETag",))},
                   (404,), [_INSTANCE_ID, _path("task_id", _UUID)], tag="tasks"),
    },
    "/v1/instances/{instance_id}/tasks/{task_id}/complete": {
        "post": _op("completeTask", "Complete a ready task with data that passes its form", "tasks.complete",
                    _INSTANCE, (404, 409, 412, 422), [_INSTANCE_ID, _path("task_id", _UUID), _IF_MATCH,
                                                      _IDEMPOTENCY_KEY], body="CompleteRequest", tag="tasks"),
    },
    "/v1/messages": {
        "post": _op("sendMessage", "Deliver a message to one patient's (or one instance's) waiting instances",
                    "messages.send", {200: _response("The instances it was delivered to", "Delivery")},
                    (409, 412), body="MessageRequest", tag="messages"),
    },
    "/v1/instances/{instance_id}/events": {
        "get": _op("listEvents", "The hash-chained event trail of an instance", "events.read",
                   {200: _response("Events, oldest first", "EventList")}, (404,), [_INSTANCE_ID], tag="audit"),
    },
    "/v1/audit/verify": {
        "get": _op("verifyTrail", "Verify the event trail of every instance (or those named)", "audit.verify",
                   {200: _response("Verification result", "TrailReport")}, (400,),
                   [{"name": "instance_id", "in": "query", "required": False, "style": "form", "explode": True,
                     "schema": {"type": "array", "maxItems": 100, "items": {"type": "string", "pattern": _UUID}}}],
                   tag="audit"),
    },
    "/v1/instances/{instance_id}/retry": {
        "post": _op("retryInstance", "Run the failed step of an instance in error again", "instances.manage",
                    _INSTANCE, (404, 409, 412), [_INSTANCE_ID, _IF_MATCH], tag="instances"),
    },
    "/v1/pathways/{pathway_id}/migrate": {
        "post": _op("migratePathway", "Move running and suspended instances to the pathway's newest version",
                    "pathways.migrate", {200: _response(
                        "Per instance: migrated, refused (with the reason) or, in a dry run, what would change",
                        "MigrationReport")}, (404,), [_path("pathway_id")], body="MigrateRequest", tag="pathways"),
    },
    "/v1/instances/{instance_id}/care-plan": _document(
        "getCarePlan", "The Personalised Care Plan of an instance", "CarePlanDocument", (404,)),
    "/v1/instances/{instance_id}/care-plan/items/{item_id}": {
        "patch": _op("updateCarePlanItem", "Move a care plan item on (referred, completed, declined, agreed)",
                     "care_plans.update", {200: _response("The item", "CarePlanItemRecord")}, (404, 409),
                     [_INSTANCE_ID, _path("item_id", _UUID)], body="CarePlanItemUpdate", tag="documents"),
    },
    "/v1/instances/{instance_id}/end-of-treatment-summary": _document(
        "getEndOfTreatmentSummary", "The End of Treatment Summary of an instance (409 until it is written)",
        "EndOfTreatmentSummary", (404, 409)),
    "/v1/instances/{instance_id}/evaluations": {
        "get": _op("listEvaluations", "The rule evaluations made for an instance, oldest first",
                   "evaluations.read", {200: _response("Evaluations", "EvaluationList")}, (404,), [_INSTANCE_ID],
                   tag="rules"),
    },
    "/v1/evaluations/{evaluation_id}": {
        "get": _op("getEvaluation", "A stored evaluation: facts, firings, outcomes and the exact rule texts used",
                   "evaluations.read", {200: _response("The evaluation", "Evaluation")}, (404,), [_EVALUATION_ID],
                   tag="rules"),
    },
    "/v1/evaluations/{evaluation_id}/explanation": {
        "get": _op("explainEvaluation", "Why an evaluation proposed a code (why=), or why not (why_not=)",
                   "evaluations.read", {200: _response("The explanation, structured and as text", "Explanation")},
                   (404, 422), [_EVALUATION_ID, _query("why", _WHY_CODE, "A code the evaluation proposed"),
                                _query("why_not", _WHY_CODE, "A code it did not propose (exactly one of the two)")],
                   tag="rules"),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
    "info": {"title": "CarePath API", "version": "1.0.0",
             "description": "Care pathway instances, tasks, messages and the audit trail. Errors are RFC 9457 "
                            "problem details (application/problem+json) with a stable `type`."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "An API token from `carepath token create --role ROLE`"}},
        "headers": {
            "X-Request-ID": _header("The request id (the client's when well-formed, else generated)"),
            "ETag": _header('The instance version, quoted: "3"'),
            "Location": _header("URL of the created instance"),
            "Content-Language": _header("The document's language: en or sv", {"enum": ["en", "sv"]}),
            "Vary": _header("Accept, Accept-Language"),
        },
    },
}


def operation_for(path_template: str, method: str) -> dict[str, Any]:
    """Raises: KeyError for an undocumented operation (a programming error)."""
    return dict(PATHS[path_template][method.lower()])
