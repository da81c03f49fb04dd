"""The OpenAPI 3.1 document, as one Python dict built at import time.

It is the contract in three places: served at ``/v1/openapi.json``; the source of the request-body
schemas the views validate against (:mod:`api.parsing`); and the schema every response of the test
suite is checked against. Each operation names the permission it needs (``x-permission``, from
:data:`engine.access.PERMISSIONS`), which the role x endpoint test walks.
"""

from __future__ import annotations

from typing import Any

from engine.access import BREAK_GLASS_ROLES, PERMISSIONS
from engine.care_teams import BREAK_GLASS_REASONS, MAX_BREAK_GLASS_NOTE
from engine.instances.queries import MAX_LIMIT, STATUSES

from . import __version__
from .openapi_schemas import (  # noqa: F401  (re-exported: part of this module's surface)
    NAME_PATTERN,
    PATIENT_REF,
    PROBLEM_BASE,
    PROBLEM_TYPES,
    SCHEMAS,
    UUID_PATTERN,
    schema_ref,
)

__all__ = [
    "BREAK_GLASS_PARAMETERS",
    "DOCUMENT",
    "FHIR_BASE",
    "INDEX",
    "PROBLEM_TYPES",
    "document_with_start_schemas",
    "operation_for",
    "schema_ref",
]

# The FHIR R4 API (api/fhir.py) is not in this document: FHIR clients read its CapabilityStatement at
# FHIR_BASE/metadata, and its resources are FHIR's (docs/fhir.md). Tests check /v1 against this
# document and FHIR_BASE against the FHIR R4 models, and every route is one or the other.
FHIR_BASE = "/fhir/R4"


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


def _response(
    description: str,
    schema: str | dict[str, Any] | None,
    media: str = "application/json",
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    found: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    for name in headers:
        found[name] = {"$ref": f"#/components/headers/{name}"}
    response: dict[str, Any] = {"description": description, "headers": found}
    if schema is not None:
        response["content"] = {media: {"schema": schema_ref(schema) if isinstance(schema, str) else schema}}
    return response


_ERROR_DESCRIPTIONS = {
    400: "Bad request: a parameter, header or the body is invalid (every failing field is named)",
    401: "No valid bearer token",
    403: "The token's role may not do this",
    404: "Not found",
    409: "Conflict with the instance's current state",
    412: "If-Match does not name the current version",
    413: "Body too large",
    415: "Wrong content type",
    422: "Well-formed but invalid input",
    500: "Internal error (no details are given)",
    503: "The database cannot be reached: try again after Retry-After seconds (/v1/ready: not ready)",
}


def _op(
    op_id: str,
    summary: str,
    permission: str | None,
    ok: dict[int, dict[str, Any]],
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_media: str = "application/json",
    body_required: bool = True,
    tag: str = "",
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(code): response for code, response in ok.items()}
    # 400: unknown query parameters are refused everywhere; 503: any request during a database outage.
    codes = set(errors) | {400, 500, 503}
    if permission is not None:
        codes |= {401, 403}
    if body is not None:
        codes |= {400, 413, 415}
    if parameters and _IDEMPOTENCY_KEY in parameters:  # the key reused for another request
        codes.add(422)
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


def _with_zip_body(operation: dict[str, Any]) -> dict[str, Any]:
    """An upload operation that also takes one zip archive as the body (a pathway bundle)."""
    operation["requestBody"]["content"]["application/zip"] = {
        "schema": {"type": "string", "contentMediaType": "application/zip"}
    }
    return operation


def _with_csv(operation: dict[str, Any]) -> dict[str, Any]:
    """A report that also answers as CSV (``format=csv``): a header row, then one row per line."""
    operation["responses"]["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return operation


def _path(name: str, pattern: str = NAME_PATTERN) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_INSTANCE_ID = _path("instance_id", UUID_PATTERN)
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The instance version the caller saw, quoted: "3". Stale -> 412.',
    "schema": {"type": "string", "pattern": '^"[0-9]{1,9}"$'},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key returns the first success; changes nothing twice.",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}
_PAGING = [
    _query("cursor", {"type": "string", "maxLength": 500}, "next_cursor of the previous page"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
]
_FILTERS = [
    _query("patient_ref", {"type": "string", "pattern": PATIENT_REF}),
    _query("pathway_id", {"type": "string", "pattern": NAME_PATTERN}),
    _query(
        "pathway_check",
        {"enum": ["pending"]},
        "Only instances that have not ended whose diagnosis names another cancer site than their pathway's, "
        "waiting for a clinician to check the pathway (their warnings: POST /v1/instances/{id}/pathway-check)",
    ),
]
_INSTANCE = {200: _response("The instance; ETag is its version", "Instance", headers=("ETag",))}
_REPORT_QUERY = [
    _query("from", {"type": "string", "format": "date-time"}, "period start (default: a year before to)"),
    _query("to", {"type": "string", "format": "date-time"}, "period end, excluded (default: now)"),
    _query("pathway", {"type": "string", "pattern": NAME_PATTERN}, "one pathway (default: every one)"),
    _query(
        "team",
        {"type": "string", "maxLength": 200},
        "one care team of the caller's organisation (default: every team)",
    ),
    _query("format", {"enum": ["json", "csv"]}, "csv: text/csv instead of JSON"),
]


_ACCEPT_LANGUAGE = {
    "name": "Accept-Language",
    "in": "header",
    "required": False,
    "description": "sv or en (sv-SE, en-GB... count by their language); anything else: en",
    "schema": {"type": "string"},
}
_WHY_CODE = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"}
_EVALUATION_ID = _path("evaluation_id", UUID_PATTERN)


def _document(
    op_id: str,
    summary: str,
    schema: str,
    errors: tuple[int, ...],
    permission: str = "documents.read",
    tag: str = "documents",
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A document as JSON, as a printable HTML page (``Accept: text/html``) or as a PDF for the GP
    practice (``Accept: application/pdf``)."""
    ok = _response(
        "The document in the language asked for (Content-Language); HTML with Accept: text/html, "
        "a PDF with Accept: application/pdf",
        schema,
        headers=("Content-Language", "Vary"),
    )
    ok["content"]["text/html"] = {"schema": {"type": "string", "description": "A self-contained HTML page"}}
    ok["content"]["application/pdf"] = {
        "schema": {"type": "string", "contentMediaType": "application/pdf", "description": "The same page as an A4 PDF"}
    }
    return {
        "get": _op(
            op_id,
            summary,
            permission,
            {200: ok},
            (*errors, 422),  # 422 document-too-large, document-unprintable: not printable as a PDF
            [_INSTANCE_ID, *(extra or []), _ACCEPT_LANGUAGE],
            tag=tag,
        )
    }


def _lifecycle(op_id: str, verb: str) -> dict[str, Any]:
    return {
        "post": _op(
            op_id,
            f"{verb} an instance",
            "instances.manage",
            _INSTANCE,
            (404, 409, 412),
            [_INSTANCE_ID, _IF_MATCH],
            body="LifecycleRequest",
            body_required=False,
            tag="instances",
        )
    }


PATHS: dict[str, Any] = {
    "/v1/health": {
        "get": _op("health", "Liveness (no authentication)", None, {200: _response("Alive", "Health")}, tag="health")
    },
    "/v1/ready": {
        "get": _op(
            "ready",
            "Readiness: database reachable and schema at head (no authentication)",
            None,
            {200: _response("Ready", "Ready")},
            (503,),
            tag="health",
        )
    },
    "/v1/": {
        "get": _op(
            "index",
            "Links to the collections and to what describes the API (no authentication)",
            None,
            {200: _response("Links", "Index")},
            tag="health",
        )
    },
    "/v1/openapi.json": {
        "get": _op(
            "openapi",
            "This document (no authentication)",
            None,
            {200: _response("OpenAPI 3.1 document", {"type": "object"})},
            tag="health",
        )
    },
    "/v1/pathways": {
        "get": _op(
            "listPathways",
            "The current version of every deployed pathway (the active one)",
            "pathways.read",
            {200: _response("Pathways", "PathwayVersionList")},
            tag="pathways",
        ),
        "post": _with_zip_body(
            _op(
                "deployPathway",
                "Deploy a pathway bundle: diagram files, or a zip archive",
                "pathways.deploy",
                {
                    201: _response(
                        "Versions deployed (existing versions are kept), and what the bundle held", "PathwayVersionList"
                    )
                },
                (422,),
                body="Upload",
                body_media="multipart/form-data",
                tag="pathways",
            )
        ),
    },
    "/v1/pathways/validate": {
        "post": _with_zip_body(
            _op(
                "validatePathway",
                "Check a pathway bundle without deploying it",
                "pathways.validate",
                {200: _response("Every problem found (valid when none), and what the bundle held", "ValidationReport")},
                body="Upload",
                body_media="multipart/form-data",
                tag="pathways",
            )
        ),
    },
    "/v1/pathways/{pathway_id}": {
        "get": _op(
            "getPathway",
            "The active version of a pathway, with its start data schema",
            "pathways.read",
            {200: _response("The pathway", "Pathway")},
            (404,),
            [_path("pathway_id")],
            tag="pathways",
        ),
    },
    "/v1/pathways/{pathway_id}/versions": {
        "get": _op(
            "listPathwayVersions",
            "Versions of a pathway, newest first",
            "pathways.read",
            {200: _response("Versions", "PathwayVersionList")},
            (404,),
            [_path("pathway_id")],
            tag="pathways",
        ),
    },
    "/v1/pathways/{pathway_id}/versions/{version}/activation": {
        "post": _op(
            "activatePathwayVersion",
            "Activate a pending version: new instances start on it. Four eyes: a second author, never "
            "the person who deployed it (403 four-eyes)",
            "pathways.activate",
            {200: _response("The version, active, with who deployed and who activated it", "PathwayVersion")},
            (403, 404, 409),
            [_path("pathway_id"), _path("version", "^[0-9a-f]{4,64}$")],
            body="Activation",
            body_required=False,
            tag="pathways",
        ),
    },
    "/v1/pathways/{pathway_id}/versions/{version}/diagram": {
        "get": _op(
            "getPathwayDiagram",
            "Diagram XML of a version ('latest' or a version prefix)",
            "pathways.read",
            {200: _response("BPMN XML", {"type": "string"}, "application/xml")},
            (400, 404),
            [
                _path("pathway_id"),
                _path("version", "^(latest|[0-9a-f]{4,64})$"),
                _query(
                    "file",
                    {"type": "string", "pattern": "^[A-Za-z0-9_./-]{1,300}$"},
                    "A file of the version other than the main diagram",
                ),
            ],
            tag="pathways",
        ),
    },
    "/v1/instances": {
        "post": _op(
            "startInstance",
            "Start the active version of a pathway for a patient",
            "instances.start",
            {201: _response("Started", "Instance", headers=("ETag", "Location"))},
            (404, 409, 422),
            [_IDEMPOTENCY_KEY],
            body="StartRequest",
            tag="instances",
        ),
        "get": _op(
            "listInstances",
            "Instances, oldest first, with cursor pagination",
            "instances.read",
            {200: _response("A page of instances", "InstancePage")},
            (400,),
            [
                *_FILTERS,
                _query("status", {"enum": list(STATUSES)}),
                _query(
                    "due_before",
                    {"type": "string", "format": "date-time"},
                    "Only instances with a timer due before this time; the page is then soonest due first",
                ),
                *_PAGING,
            ],
            tag="instances",
        ),
    },
    "/v1/instances/{instance_id}": {
        "get": _op(
            "getInstance",
            "An instance with its ready tasks",
            "instances.read",
            _INSTANCE,
            (404,),
            [_INSTANCE_ID],
            tag="instances",
        ),
    },
    "/v1/instances/{instance_id}/suspend": _lifecycle("suspendInstance", "Suspend"),
    "/v1/instances/{instance_id}/resume": _lifecycle("resumeInstance", "Resume"),
    "/v1/instances/{instance_id}/cancel": _lifecycle("cancelInstance", "Cancel"),
    "/v1/tasks": {
        "get": _op(
            "listReadyTasks",
            "Ready tasks across running instances (pages count instances)",
            "tasks.read",
            {200: _response("A page of ready tasks", "TaskPage")},
            (400,),
            [*_FILTERS, _query("element", {"type": "string", "pattern": NAME_PATTERN}), *_PAGING],
            tag="tasks",
        ),
    },
    "/v1/instances/{instance_id}/tasks/{task_id}": {
        "get": _op(
            "getTask",
            "A ready task with its form (JSON Schema)",
            "tasks.read",
            {200: _response("The task; ETag is the instance version", "TaskInInstance", headers=("ETag",))},
            (404,),
            [_INSTANCE_ID, _path("task_id", UUID_PATTERN)],
            tag="tasks",
        ),
    },
    "/v1/instances/{instance_id}/tasks/{task_id}/complete": {
        "post": _op(
            "completeTask",
            "Complete a ready task with data that passes its form",
            "tasks.complete",
            _INSTANCE,
            (404, 409, 412, 422),
            [_INSTANCE_ID, _path("task_id", UUID_PATTERN), _IF_MATCH, _IDEMPOTENCY_KEY],
            body="CompleteRequest",
            tag="tasks",
        ),
    },
    "/v1/referral-escalations/{escalation_id}/complete": {
        "post": _op(
            "completeReferralEscalation",
            "Complete an escalation of a referral not accepted in time, with an outcome code",
            "tasks.complete",
            {200: _response("The escalation, completed", "ReferralEscalation")},
            (404, 409, 422),
            [_path("escalation_id", UUID_PATTERN), _IDEMPOTENCY_KEY],
            body="EscalationCompletion",
            tag="tasks",
        ),
    },
    "/v1/messages": {
        "post": _op(
            "sendMessage",
            "Deliver a message to one patient's (or one instance's) waiting instances",
            "messages.send",
            {
                200: _response(
                    "The instances it was delivered to (for patient_died, also "
                    "every other instance of the patient it ended)",
                    "Delivery",
                )
            },
            (409, 412, 422),
            body="MessageRequest",
            tag="messages",
        ),
    },
    "/v1/instances/{instance_id}/events": {
        "get": _op(
            "listEvents",
            "The hash-chained event trail of an instance",
            "events.read",
            {200: _response("Events, oldest first", "EventList")},
            (404,),
            [_INSTANCE_ID],
            tag="audit",
        ),
    },
    "/v1/audit/verify": {
        "get": _op(
            "verifyTrail",
            "Verify the event trails of the instances named (every trail: a verification job)",
            "audit.verify",
            {200: _response("Verification result", "TrailReport")},
            (400,),
            [
                {
                    "name": "instance_id",
                    "in": "query",
                    "required": True,
                    "style": "form",
                    "explode": True,
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {"type": "string", "pattern": UUID_PATTERN},
                    },
                }
            ],
            tag="audit",
        ),
    },
    "/v1/access-log": {
        "get": _op(
            "listAccessLog",
            "Who looked at which patient's records, newest first",
            "access_log.read",
            {200: _response("Access records (identifiers only, never what was shown)", "AccessLogPage")},
            (400,),
            [
                _query("patient_ref", {"type": "string", "pattern": PATIENT_REF}),
                _query("instance_id", {"type": "string", "pattern": UUID_PATTERN}),
                _query("actor", {"type": "string", "maxLength": 200}, "e.g. clinician:tok_0123456789abcdef"),
                _query("from", {"type": "string", "format": "date-time"}, "at or after (with a zone offset)"),
                _query("to", {"type": "string", "format": "date-time"}, "before (with a zone offset)"),
                _query("break_glass", {"enum": ["true", "false"]}, "only break-glass reads (true) or none"),
                _query("cursor", {"type": "string", "maxLength": 500}, "next_cursor of the previous page"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
            ],
            tag="audit",
        ),
    },
    "/v1/reports/measures": {
        "get": _with_csv(
            _op(
                "getMeasures",
                "Personalised care measures of a period: aggregated, small counts suppressed",
                "reports.read",
                {200: _response("The measures (docs/measures.md); CSV with format=csv", "MeasuresReport")},
                (400,),
                _REPORT_QUERY,
                tag="reports",
            )
        ),
    },
    "/v1/reports/cosd": {
        "get": _with_csv(
            _op(
                "getCosdExport",
                "The personalised care fields in COSD's shape: one row per patient and care "
                "plan item, with dates (patient data: every patient exported is in the access log)",
                "reports.export",
                {200: _response("The rows; CSV with format=csv", "CosdExport")},
                (400,),
                _REPORT_QUERY[:3] + _REPORT_QUERY[4:],
                tag="reports",
            )
        ),
    },
    "/v1/instances/{instance_id}/data": {
        "patch": _op(
            "correctInstanceData",
            "Correct an instance's data, with a reason (then retry its incident)",
            "instances.correct",
            _INSTANCE,
            (404, 409, 412, 422),
            [_INSTANCE_ID, _IF_MATCH],
            body="DataCorrection",
            tag="instances",
        ),
    },
    "/v1/instances/{instance_id}/pathway-check": {
        "post": _op(
            "checkInstancePathway",
            "Confirm the pathway of an instance whose diagnosis names another cancer site (its warning)",
            "instances.correct",
            _INSTANCE,
            (404, 409, 412),
            [_INSTANCE_ID, _IF_MATCH],
            body="PathwayCheck",
            tag="instances",
        ),
    },
    "/v1/instances/{instance_id}/care-team": {
        "put": _op(
            "changeCareTeam",
            "Move an instance to another care team of its organisation, with a reason",
            "instances.transfer",
            _INSTANCE,
            (404, 409, 412),
            [_INSTANCE_ID, _IF_MATCH],
            body="CareTeamChange",
            tag="instances",
        ),
    },
    "/v1/audit/verifications": {
        "post": _op(
            "startVerification",
            "Verify every event trail in the background; GET the Location for progress and result",
            "audit.verify",
            {202: _response("Accepted: the job, queued", "VerificationJob", headers=("Location",))},
            body_required=False,
            tag="audit",
        ),
    },
    "/v1/audit/verifications/{job_id}": {
        "get": _op(
            "getVerification",
            "A verification job: its progress, then its result",
            "audit.verify",
            {200: _response("The job", "VerificationJob")},
            (404,),
            [_path("job_id", UUID_PATTERN)],
            tag="audit",
        ),
    },
    "/v1/instances/{instance_id}/retry": {
        "post": _op(
            "retryInstance",
            "Run the failed step of an instance in error again",
            "instances.manage",
            _INSTANCE,
            (404, 409, 412),
            [_INSTANCE_ID, _IF_MATCH],
            tag="instances",
        ),
    },
    "/v1/sandbox/clock": {
        "post": _op(
            "advanceSandboxClock",
            "Move a sandbox deployment's clock forward (404 outside a sandbox)",
            "sandbox.clock",
            {200: _response("The clock after the move", "SandboxClock")},
            (404,),
            body="SandboxAdvance",
            tag="sandbox",
        ),
    },
    "/v1/pathways/{pathway_id}/migration-requests": {
        "post": _op(
            "requestMigration",
            "Ask for the running instances to move to the active version: a dry run, kept as a request "
            "a second author approves",
            "pathways.migrate",
            {201: _response("The request, with its dry run's report", "MigrationRequestRecord")},
            (403, 404),
            [_path("pathway_id")],
            body="Activation",
            body_required=False,
            tag="pathways",
        ),
        "get": _op(
            "listMigrationRequests",
            "Migration requests, newest first: who asked, who approved, the reports",
            "migrations.read",
            {200: _response("Requests", "MigrationRequestList")},
            (404,),
            [_path("pathway_id")],
            tag="pathways",
        ),
    },
    "/v1/pathways/{pathway_id}/migration-requests/{request_id}/approval": {
        "post": _op(
            "approveMigration",
            "Approve a migration request and run it. Four eyes: never the author who asked (403 four-eyes); "
            "409 when executed already or the active version changed since",
            "pathways.migrate",
            {200: _response("The request, executed, with the run's report", "MigrationRequestRecord")},
            (403, 404, 409),
            [_path("pathway_id"), _path("request_id", UUID_PATTERN)],
            body="Activation",
            body_required=False,
            tag="pathways",
        ),
    },
    "/v1/rule-sets": {
        "post": _op(
            "deployRuleSets",
            "Record the rules folder's current text of every rule set: a changed one "
            "is a pending version until a second author activates it",
            "rule_sets.deploy",
            {201: _response("Every rule set's current version", "RuleSetVersionList")},
            (422,),
            body="Activation",
            body_required=False,
            tag="rules",
        ),
    },
    "/v1/rule-sets/{ruleset}/versions": {
        "get": _op(
            "listRuleSetVersions",
            "Versions of a rule set, newest first: who deployed, who activated",
            "pathways.read",
            {200: _response("Versions", "RuleSetVersionList")},
            (404,),
            [_path("ruleset")],
            tag="rules",
        ),
    },
    "/v1/rule-sets/{ruleset}/versions/{version}/activation": {
        "post": _op(
            "activateRuleSetVersion",
            "Activate a pending rule-set version: evaluations in pathways use it. Four eyes: a second "
            "author, never the one who deployed it (403 four-eyes)",
            "rule_sets.activate",
            {200: _response("The version, active", "RuleSetVersion")},
            (403, 404, 409),
            [_path("ruleset"), _path("version", "^[0-9a-f]{4,64}$")],
            body="Activation",
            body_required=False,
            tag="rules",
        ),
    },
    "/v1/pathways/{pathway_id}/migrate": {
        "post": _op(
            "migratePathway",
            "A dry run of moving running and suspended instances to the pathway's active "
            "version; with four eyes off, the move itself (on: 403 four-eyes, ask for a migration request)",
            "pathways.migrate",
            {
                200: _response(
                    "Per instance: migrated, refused (with the reason) or, in a dry run, what would change",
                    "MigrationReport",
                )
            },
            (404,),
            [_path("pathway_id")],
            body="MigrateRequest",
            tag="pathways",
        ),
    },
    "/v1/instances/{instance_id}/care-plan": _document(
        "getCarePlan", "The Personalised Care Plan of an instance", "CarePlanDocument", (404,)
    ),
    "/v1/instances/{instance_id}/care-plan/items/{item_id}": {
        "patch": _op(
            "updateCarePlanItem",
            "Move a care plan item on (the moves allowed: CarePlanItemUpdate)",
            "care_plans.update",
            {200: _response("The item", "CarePlanItemRecord")},
            (404, 409),
            [_INSTANCE_ID, _path("item_id", UUID_PATTERN)],
            body="CarePlanItemUpdate",
            tag="documents",
        ),
    },
    "/v1/instances/{instance_id}/end-of-treatment-summary": _document(
        "getEndOfTreatmentSummary",
        "The End of Treatment Summary of an instance (409 until it is written)",
        "EndOfTreatmentSummary",
        (404, 409),
    ),
    "/v1/instances/{instance_id}/active-surveillance-plan": _document(
        "getActiveSurveillancePlan",
        "The active surveillance plan of a man with prostate cancer (409 when the MDT has not chosen "
        "active surveillance, or the 12-month review ended it)",
        "ActiveSurveillancePlan",
        (404, 409),
    ),
    "/v1/instances/{instance_id}/end-of-treatment-summaries": {
        "get": _op(
            "listEndOfTreatmentSummaries",
            "The phases of care of an instance (each course of treatment that "
            "ended) and the state of each one's End of Treatment Summary",
            "documents.read",
            {
                200: _response(
                    "The phases, first first", "EndOfTreatmentSummaryPhases", headers=("Content-Language", "Vary")
                )
            },
            (404,),
            [_INSTANCE_ID, _ACCEPT_LANGUAGE],
            tag="documents",
        ),
    },
    "/v1/instances/{instance_id}/end-of-treatment-summaries/{number}": _document(
        "getEndOfTreatmentSummaryOfPhase",
        "The End of Treatment Summary of one phase of care (404: no such phase; 409 until it is written)",
        "EndOfTreatmentSummary",
        (404, 409),
        extra=[
            {
                "name": "number",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 999},
            }
        ],
    ),
    "/v1/instances/{instance_id}/evaluations": {
        "get": _op(
            "listEvaluations",
            "The rule evaluations made for an instance, oldest first",
            "evaluations.read",
            {200: _response("Evaluations", "EvaluationList")},
            (404,),
            [_INSTANCE_ID],
            tag="rules",
        ),
    },
    "/v1/instances/{instance_id}/concerns": {
        "get": _op(
            "getConcernTrends",
            "Each concern's scores over the instance's needs assessments, oldest first, "
            "and the concerns that deteriorated at the latest one",
            "evaluations.read",
            {200: _response("Concern trends", "ConcernTrends")},
            (404,),
            [_INSTANCE_ID],
            tag="rules",
        ),
    },
    "/v1/instances/{instance_id}/decision-evaluations": {
        "get": _op(
            "listDecisionEvaluations",
            "The decision table evaluations made for an instance, oldest first",
            "evaluations.read",
            {200: _response("Decision evaluations", "DecisionEvaluationList")},
            (404,),
            [_INSTANCE_ID],
            tag="rules",
        ),
    },
    "/v1/decision-evaluations/{evaluation_id}": {
        "get": _op(
            "getDecisionEvaluation",
            "A decision table evaluation: inputs, matched rules, outputs, table version, and why rule by rule",
            "evaluations.read",
            {200: _response("The evaluation, explained", "DecisionEvaluation")},
            (404,),
            [_EVALUATION_ID],
            tag="rules",
        ),
    },
    "/v1/evaluations/{evaluation_id}": {
        "get": _op(
            "getEvaluation",
            "A stored evaluation: facts, firings, outcomes and the exact rule texts used",
            "evaluations.read",
            {200: _response("The evaluation", "Evaluation")},
            (404,),
            [_EVALUATION_ID],
            tag="rules",
        ),
    },
    "/v1/evaluations/{evaluation_id}/explanation": {
        "get": _op(
            "explainEvaluation",
            "Why an evaluation proposed a code (why=), or why not (why_not=)",
            "evaluations.read",
            {200: _response("The explanation, structured and as text", "Explanation")},
            (404, 422),
            [
                _EVALUATION_ID,
                _query("why", _WHY_CODE, "A code the evaluation proposed"),
                _query("why_not", _WHY_CODE, "A code it did not propose (exactly one of the two)"),
            ],
            tag="rules",
        ),
    },
    "/v1/webhooks/subscriptions": {
        "get": _op(
            "listWebhookSubscriptions",
            "Webhook subscriptions (never their secrets)",
            "webhooks.manage",
            {200: _response("Subscriptions, oldest first", "WebhookSubscriptionList")},
            tag="webhooks",
        ),
        "post": _op(
            "addWebhookSubscription",
            "Subscribe a URL to webhook events; the signing secret is in this answer only",
            "webhooks.manage",
            {201: _response("The subscription and its secret", "NewWebhookSubscription", headers=("Location",))},
            (400,),
            body="WebhookSubscriptionRequest",
            tag="webhooks",
        ),
    },
    "/v1/webhooks/subscriptions/{subscription_id}": {
        "delete": _op(
            "removeWebhookSubscription",
            "Stop a subscription; its pending deliveries are cancelled",
            "webhooks.manage",
            {200: _response("Removed", "WebhookSubscriptionRemoved")},
            (404,),
            [_path("subscription_id", "^[A-Za-z0-9_]{1,40}$")],
            tag="webhooks",
        ),
    },
    "/v1/webhooks/dead-letters": {
        "get": _op(
            "listWebhookDeadLetters",
            "Deliveries that failed every attempt, oldest first",
            "webhooks.manage",
            {200: _response("Dead letters", "WebhookDeliveryList")},
            (400, 404),
            [_query("subscription_id", {"type": "string", "pattern": "^whsub_[0-9a-f]{16}$"})],
            tag="webhooks",
        ),
    },
    # A patient's own records (engine.patients): another patient's instance is not found (404).
    "/v1/me": {
        "get": _op(
            "getMyRecords",
            "The signed-in patient's pathways and their own ready forms",
            "patient.read",
            {200: _response("The patient's records", "PatientRecords", headers=("Vary",))},
            parameters=[_ACCEPT_LANGUAGE],
            tag="patients",
        ),
    },
    "/v1/me/instances/{instance_id}/care-plan": _document(
        "getMyCarePlan",
        "The patient's own Personalised Care Plan",
        "CarePlanDocument",
        (404,),
        "patient.read",
        "patients",
    ),
    "/v1/me/instances/{instance_id}/end-of-treatment-summary": _document(
        "getMyEndOfTreatmentSummary",
        "The patient's own End of Treatment Summary (409 until it is written)",
        "EndOfTreatmentSummary",
        (404, 409),
        "patient.read",
        "patients",
    ),
    "/v1/me/instances/{instance_id}/active-surveillance-plan": _document(
        "getMyActiveSurveillancePlan",
        "The patient's own active surveillance plan (409 when he is not on active surveillance)",
        "ActiveSurveillancePlan",
        (404, 409),
        "patient.read",
        "patients",
    ),
    "/v1/me/instances/{instance_id}/end-of-treatment-summaries/{number}": _document(
        "getMyEndOfTreatmentSummaryOfPhase",
        "The patient's own End of Treatment Summary of one phase of care (404: no such phase; 409 until it is written)",
        "EndOfTreatmentSummary",
        (404, 409),
        "patient.read",
        "patients",
        extra=[
            {
                "name": "number",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 999},
            }
        ],
    ),
    "/v1/me/instances/{instance_id}/forms/{task_id}": {
        "post": _op(
            "submitMyForm",
            "Submit one of the patient's own forms (needs checklist, feedback, survey)",
            "patient.submit",
            {200: _response("The instance's remaining forms", "PatientInstance", headers=("ETag",))},
            (404, 409, 412, 422),
            [_INSTANCE_ID, _path("task_id", UUID_PATTERN), _IF_MATCH, _IDEMPOTENCY_KEY],
            body="CompleteRequest",
            tag="patients",
        ),
    },
    "/v1/me/instances/{instance_id}/assessment-requests": {
        "post": _op(
            "askForAssessment",
            "Ask for a holistic needs assessment now, outside the planned ones (the patient's own pathway)",
            "patient.ask",
            {
                202: _response(
                    "Asked: the care team arranges it, and the checklist follows among the patient's forms",
                    "PatientInstance",
                    headers=("ETag",),
                )
            },
            (404, 409),
            [_INSTANCE_ID, _IDEMPOTENCY_KEY],
            body="AssessmentRequest",
            body_required=False,
            tag="patients",
        ),
    },
    "/v1/me/warning-signs": {
        "post": _op(
            "reportWarningSign",
            "Report a warning sign to the patient's care team (call the 24-hour line first when unwell); the "
            "answer's advice is what to tell the patient to do now, by the sign's urgency, in Accept-Language",
            "patient.report",
            {202: _response("Reported: each pathway waiting for reports starts a triage", "WarningSignReceipt")},
            (409,),
            [_IDEMPOTENCY_KEY],
            body="WarningSignReport",
            tag="patients",
        ),
    },
    "/v1/patient-identities": {
        "post": _op(
            "linkPatientIdentity",
            "Link an OpenID Connect identity to a patient reference",
            "patients.link",
            {201: _response("Linked (or already linked to this patient)", "PatientIdentity")},
            (404, 409),
            body="PatientIdentityRequest",
            tag="patients",
        ),
        "get": _op(
            "listPatientIdentities",
            "Linked identities, oldest first (of one patient when given)",
            "patients.link",
            {200: _response("Links", "PatientIdentityList")},
            (400,),
            [_query("patient_ref", {"type": "string", "pattern": PATIENT_REF})],
            tag="patients",
        ),
    },
    "/v1/patient-identities/unlink": {
        "post": _op(
            "unlinkPatientIdentity",
            "Remove a link: the person no longer reads that patient's records",
            "patients.link",
            {200: _response("The link removed", "PatientIdentity")},
            (404,),
            body="PatientIdentityRef",
            tag="patients",
        ),
    },
    "/v1/webhooks/replay": {
        "post": _op(
            "replayWebhooks",
            "Deliver again (same webhook-id): dead letters, or a subscription's range",
            "webhooks.manage",
            {200: _response("The deliveries due again", "WebhookDeliveryList")},
            (400, 404),
            body="WebhookReplayRequest",
            tag="webhooks",
        ),
    },
}

# Break-glass (docs/access.md, api.scope): a clinician's read of a patient of another team of their
# organisation. The request headers are honoured by every read that names a patient's record (the URL's
# record is checked against the caller's care teams) and by the lists that name one patient; elsewhere they
# are refused (400 on a change, 403 for another role), so they are declared on those reads only.
BREAK_GLASS_PARAMETERS = [
    {
        "name": "CarePath-Break-Glass",
        "in": "header",
        "required": False,
        "description": "A clinician's reason for reading a patient of another care team of their organisation "
        "(never another organisation): recorded in the access log. Reads only; clinicians only (403); "
        "a list must name the patient (patient_ref)",
        "schema": {"enum": list(BREAK_GLASS_REASONS)},
    },
    {
        "name": "CarePath-Break-Glass-Note",
        "in": "header",
        "required": False,
        "description": "With CarePath-Break-Glass: the clinician's words, kept in the access log only (never a log "
        "line, an error or the event trail)",
        "schema": {"type": "string", "maxLength": MAX_BREAK_GLASS_NOTE, "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
    },
]
# The record a URL names (api.scope.KINDS' variables), and the lists scoped by api.scope.list_scope.
_RECORD_VARIABLES = ("{instance_id}", "{evaluation_id}", "{escalation_id}")
_BREAK_GLASS_LISTS = ("/v1/instances", "/v1/tasks")


def _declare_break_glass(paths: dict[str, Any]) -> None:
    """Add the break-glass headers to every read that honours them: a GET a clinician may make that names
    a patient's record in its URL, or a list that names one patient."""
    for template, item in paths.items():
        operation = item.get("get")
        permission = operation.get("x-permission") if operation else None
        if permission is None or not PERMISSIONS[permission] & BREAK_GLASS_ROLES:
            continue
        if template in _BREAK_GLASS_LISTS or any(variable in template for variable in _RECORD_VARIABLES):
            operation["parameters"] = [*operation.get("parameters", []), *BREAK_GLASS_PARAMETERS]


_declare_break_glass(PATHS)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
    "info": {
        "title": "CarePath API",
        "version": __version__,
        "description": "Care pathway instances, tasks, messages and the audit trail. Errors are RFC 9457 "
        "problem details (application/problem+json) with a stable `type`. The FHIR R4 "
        f"API under {FHIR_BASE} is not described here: read its CapabilityStatement at "
        f"{FHIR_BASE}/metadata.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token from `carepath token create --role ROLE` "
                "(systems), or a person's access token (a JWT) from the "
                "configured OpenID Connect provider (docs/identity.md)",
            }
        },
        "headers": {
            "X-Request-ID": _header("The request id (the client's when well-formed, else generated)"),
            "ETag": _header('The instance version, quoted: "3"'),
            "Location": _header("URL of the created resource"),
            "Content-Language": _header("The document's language: en or sv", {"enum": ["en", "sv"]}),
            "Vary": _header("Accept, Accept-Language"),
        },
    },
}


def _links() -> dict[str, dict[str, Any]]:
    """Every path without parameters, named by its part after /v1/, and the FHIR API's statement."""
    links: dict[str, dict[str, Any]] = {}
    for template, item in PATHS.items():
        if "{" in template or template == "/v1/":
            continue
        first = item.get("get") or next(iter(item.values()))
        links[template.removeprefix("/v1/")] = {
            "href": template,
            "title": first["summary"],
            "methods": [method.upper() for method in item],
        }
    links["fhir"] = {
        "href": f"{FHIR_BASE}/metadata",
        "title": "The FHIR R4 API's CapabilityStatement (docs/fhir.md)",
        "methods": ["GET"],
    }
    return links


# GET /v1/: where a new user starts.
INDEX: dict[str, Any] = {"name": "CarePath API", "version": __version__, "links": _links()}


def document_with_start_schemas(start_schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The document as served: :data:`DOCUMENT` with each deployed pathway's start data schema
    (``StartData.<pathway_id>``), which ``StartRequest`` applies to ``data`` when ``pathway_id``
    names that pathway."""
    if not start_schemas:
        return DOCUMENT
    schemas = dict(SCHEMAS)
    conditions = []
    for pathway_id, schema in sorted(start_schemas.items()):
        name = f"StartData.{pathway_id}"
        schemas[name] = {key: value for key, value in schema.items() if key != "$schema"}
        conditions.append(
            {
                "if": {"properties": {"pathway_id": {"const": pathway_id}}, "required": ["pathway_id"]},
                "then": {"properties": {"data": schema_ref(name)}, "required": ["data"]},
            }
        )
    schemas["StartRequest"] = {**SCHEMAS["StartRequest"], "allOf": conditions}
    return {**DOCUMENT, "components": {**DOCUMENT["components"], "schemas": schemas}}


def operation_for(path_template: str, method: str) -> dict[str, Any]:
    """Raises: KeyError for an undocumented operation (a programming error)."""
    return dict(PATHS[path_template][method.lower()])
