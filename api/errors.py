"""Errors as RFC 9457 problem details, request ids, and keeping patient data out of logs.

One error type (:class:`ApiError`) for what the HTTP layer itself refuses, and one handler that
turns every exception into ``application/problem+json`` with a stable ``type``. Every engine error
class has its own row in :data:`ENGINE_ERRORS`, most specific first (the first match wins), and
here (a test holds the two, and the classes of :mod:`engine.errors`, together):

====================================  ======  ==============================
engine / HTTP error                   status  type (under carepath.dev/problems/)
====================================  ======  ==============================
ApiError (bad parameter, header...)   4xx     request-invalid, malformed-json, ...
unknown route / method                404     not-found / method-not-allowed (405)
InvalidTokenError                     401     unauthenticated
FourEyesError                         403     four-eyes (a second author must approve)
PermissionDeniedError                 403     forbidden
TaskDataError                         422     task-data-invalid
StartDataError                        422     start-data-invalid
DiagramError                          422     diagram-invalid
RuleFileError                         422     rule-file-invalid
UnsafeExpressionError                 422     unsafe-expression
IdempotencyKeyReusedError             422     idempotency-key-reused
InvalidInputError                     400     input-invalid
NotFoundError                         404     not-found
StaleVersionError                     409     instance-changed (no If-Match: a concurrent request won)
StaleVersionError with If-Match       412     stale-version
TaskNotReadyError                     409     task-not-ready
InstanceExistsError                   409     instance-exists (Location: the running instance, if in scope)
PatientDeceasedError                  409     patient-deceased
IdempotencyKeyInUseError              409     idempotency-key-in-use
VersionStateError                     409     version-state-conflict
ConflictError                         409     instance-state-conflict
MessageNotDeliverableError            409     message-not-deliverable (the target's state)
ExpressionError                       500     internal-error (escaped a step: logged, no detail)
WorkflowError                         500     internal-error (escaped a step: logged, no detail)
RuleEvaluationError                   500     internal-error (logged, no detail)
CarePathError                         500     internal-error (logged, no detail)
database unreachable                  503     database-unavailable (Retry-After; logged by type)
anything else                         500     internal-error (logged, no detail)
====================================  ======  ==============================

"Database unreachable" is any exception that :func:`engine.db.session.database_unavailable`
recognises -- SQLAlchemy's ``OperationalError`` and lost connections, the driver's own, a pool
with no free connection -- raised directly or as the cause of what was raised: the request may
succeed once the database is back, so the client is told when to try again, not that the server
failed. SQLAlchemy replaces lost connections, so nothing needs restarting afterwards.

Inside a step, expression, workflow and rules failures become incidents on the instance; one that
reaches the API is the server's fault, so it is logged and answered like any other internal error,
without its message (which may quote a library's).

Details come from the engine's messages, which never quote submitted values or patient references.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, json, request, url_for
from flask.logging import default_handler
from werkzeug.exceptions import HTTPException, SecurityError

from engine.db.session import database_unavailable
from engine.errors import (
    CarePathError,
    ConflictError,
    DiagramError,
    ExpressionError,
    FourEyesError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    InstanceExistsError,
    InvalidInputError,
    InvalidTokenError,
    MessageNotDeliverableError,
    NotFoundError,
    PatientDeceasedError,
    PermissionDeniedError,
    Problem,
    RuleEvaluationError,
    RuleFileError,
    StaleVersionError,
    StartDataError,
    TaskDataError,
    TaskNotReadyError,
    UnsafeExpressionError,
    VersionStateError,
    WorkflowError,
)

from .openapi import PROBLEM_BASE, PROBLEM_TYPES

__all__ = ["ENGINE_ERRORS", "ApiError", "PatientDataFilter", "init_app"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
PROBLEM_JSON = "application/problem+json"

# (engine error class, status, type slug), most specific first: the first match wins. Every class
# of engine.errors has its own row, so none is answered by its parent's row by accident.
ENGINE_ERRORS: tuple[tuple[type[CarePathError], int, str], ...] = (
    (InvalidTokenError, 401, "unauthenticated"),
    (FourEyesError, 403, "four-eyes"),
    (PermissionDeniedError, 403, "forbidden"),
    (TaskDataError, 422, "task-data-invalid"),
    (StartDataError, 422, "start-data-invalid"),
    (DiagramError, 422, "diagram-invalid"),
    (RuleFileError, 422, "rule-file-invalid"),
    (UnsafeExpressionError, 422, "unsafe-expression"),
    (IdempotencyKeyReusedError, 422, "idempotency-key-reused"),
    (InvalidInputError, 400, "input-invalid"),
    (NotFoundError, 404, "not-found"),
    (StaleVersionError, 409, "instance-changed"),  # 412 stale-version when the request sent If-Match
    (TaskNotReadyError, 409, "task-not-ready"),
    (InstanceExistsError, 409, "instance-exists"),
    (PatientDeceasedError, 409, "patient-deceased"),
    (IdempotencyKeyInUseError, 409, "idempotency-key-in-use"),
    (VersionStateError, 409, "version-state-conflict"),
    (ConflictError, 409, "instance-state-conflict"),
    (MessageNotDeliverableError, 409, "message-not-deliverable"),
    (ExpressionError, 500, "internal-error"),
    (WorkflowError, 500, "internal-error"),
    (RuleEvaluationError, 500, "internal-error"),
    (CarePathError, 500, "internal-error"),
)
_HTTP_ERRORS = {
    400: "request-invalid",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "unsupported-media-type",
}


@dataclass
class ApiError(Exception):
    """Raised by the HTTP layer for requests it refuses before (or instead of) calling the engine."""

    status: int
    type: str  # a slug of PROBLEM_TYPES
    detail: str
    problems: list[Problem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    members: dict[str, Any] = field(default_factory=dict)  # extension members of the problem (RFC 9457)

    def __post_init__(self) -> None:
        if self.type not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {self.type!r}")
        super().__init__(self.detail)


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    problems: list[Problem] | None = None,
    headers: dict[str, str] | None = None,
    members: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        **(members or {}),
        "type": PROBLEM_BASE + slug,
        "title": PROBLEM_TYPES[slug],
        "status": status,
        "request_id": g.get("request_id", ""),
    }
    if detail:
        body["detail"] = detail
    if problems:
        body["errors"] = [_located(p) for p in problems]
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def _located(problem: Problem) -> dict[str, Any]:
    return {
        k: v
        for k, v in problem.as_dict().items()
        if k in ("message", "field", "element", "file", "line", "column", "code", "severity")
    }


RETRY_AFTER_SECONDS = 5


def to_problem(exc: Exception) -> Response:
    """Any exception as the API's problem+json response (a 500 logged without patient data)."""
    if _database_unavailable(exc):
        return _unavailable(exc)
    if isinstance(exc, ApiError):
        return problem_response(exc.status, exc.type, exc.detail, exc.problems, exc.headers, exc.members)
    if isinstance(exc, CarePathError):
        status, slug = next((status, slug) for cls, status, slug in ENGINE_ERRORS if isinstance(exc, cls))
        if status >= 500:
            return _internal_error(exc)
        if isinstance(exc, StaleVersionError) and "If-Match" in request.headers:
            status, slug = 412, "stale-version"  # the caller's precondition failed, not a race it lost
        headers = {"WWW-Authenticate": 'Bearer realm="carepath"'} if status == 401 else None
        if isinstance(exc, InstanceExistsError) and exc.instance_id:  # the running instance (api.instances: in scope)
            headers = {"Location": url_for("instances.get", instance_id=exc.instance_id)}
        return problem_response(status, slug, exc.message, exc.problems, headers)
    if isinstance(exc, SecurityError):  # a Host outside TRUSTED_HOSTS: not echoed (the caller wrote it)
        return problem_response(400, "host-not-trusted", "this server does not answer for the host the request names")
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
        slug = _HTTP_ERRORS.get(exc.code, "request-invalid")
        headers = dict(h for h in exc.get_headers() if h[0] == "Allow") if exc.code == 405 else None
        return problem_response(exc.code, slug, exc.description, headers=headers)
    return _internal_error(exc)


def _database_unavailable(exc: BaseException) -> bool:
    """The exception, or one it was raised from or while handling, says the database is unreachable."""
    current: BaseException | None = exc
    for _ in range(5):
        if current is None or isinstance(current, ApiError | HTTPException):
            return False
        if database_unavailable(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable(exc: Exception) -> Response:
    # The type alone: a driver's message may quote the statement's parameters (patient data).
    current_app.logger.warning(
        "database unavailable (%s) on %s %s (request %s)",
        type(exc).__name__,
        request.method,
        request.url_rule.rule if request.url_rule else "?",
        g.get("request_id"),
    )
    return problem_response(
        503,
        "database-unavailable",
        "the database cannot be reached; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _internal_error(exc: Exception) -> Response:
    current_app.logger.error(
        "unhandled %s on %s %s (request %s)",
        type(exc).__name__,
        request.method,
        request.url_rule.rule if request.url_rule else "?",
        g.get("request_id"),
        exc_info=exc,
    )
    return problem_response(500, "internal-error")


def _assign_request_id() -> None:
    offered = request.headers.get("X-Request-ID", "")
    g.request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


class PatientDataFilter(logging.Filter):
    """Keeps patient data out of log records.

    Query strings (``?patient_ref=...``) are cut from messages, and tracebacks keep their frames
    and exception types but lose the exception messages, which may quote values (a database
    error quotes its parameters, a validation error the submitted value).
    """

    _QUERY = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self._QUERY.sub("?[query redacted]", message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _scrubbed_traceback(record.exc_info[1])
            record.exc_info = None
        return True


def _scrubbed_traceback(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(
            f"Traceback (most recent call last):\n{frames}{type(current).__module__}."
            f"{type(current).__qualname__}: [message redacted]"
        )
        current = current.__cause__ or current.__context__
    return "\n\nwhich was raised while handling:\n".join(parts)


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    app.register_error_handler(Exception, to_problem)
    log_filter = PatientDataFilter()
    # On the loggers whose records the app emits itself, and on the handlers every other record of the
    # process reaches: a logger's filter does not apply to its children's records (api.web.session,
    # carepath.worker, engine.db.replica), which propagate to the handlers of "api" (Flask's default
    # handler) or of the root logger (an operator's configuration, else Python's last resort).
    targets: list[logging.Filterer] = [app.logger, logging.getLogger("werkzeug"), default_handler]
    targets += logging.getLogger().handlers
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    for target in targets:
        if not any(isinstance(f, PatientDataFilter) for f in target.filters):
            target.addFilter(log_filter)
