"""Reading requests: JSON bodies checked against the OpenAPI schemas, headers, query parameters.

Every helper raises :class:`~api.errors.ApiError` naming the failing field, and never quotes the
submitted value (it may be patient data). A bad query parameter is always ``request-invalid``
(400) with the parameter named in ``errors[].field``: whether the HTTP layer finds it (a pattern, a
range, an unknown name) or the engine does (a cursor it did not issue, :func:`query_errors`).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

from flask import request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.datastructures import FileStorage

from engine.errors import InvalidInputError, Problem
from engine.pathways.bundle import TOO_LARGE, Bundle, read_bundle_zip

from .errors import ApiError
from .openapi import DOCUMENT

__all__ = [
    "MAX_JSON_DEPTH",
    "etag",
    "if_match",
    "json_body",
    "query_choice",
    "query_errors",
    "query_int",
    "query_str",
    "query_time",
    "reject_unknown_query",
    "route_template",
    "unstorable_values",
    "uploaded_files",
]

DOCUMENT_URI = "https://carepath.dev/openapi.json"
_IF_MATCH = re.compile(r'^"([0-9]{1,9})"$')
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
_UPLOAD_NAME = re.compile(rf"^(?:{_PART}/){{0,3}}{_PART}\.(?:bpmn|json|dmn)$")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
MAX_UPLOAD_FILES = 50
# Task data, start data and message payloads are free JSON; forms nest a few levels. Deeper is refused
# before it reaches the writers (orjson stops at 255 levels, the standard library's at its recursion limit).
MAX_JSON_DEPTH = 32
MAX_FILE_NAME = 300  # a pathway version's main_file column (engine.db.models.PathwayVersion)


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    schema = DOCUMENT["components"]["schemas"][schema_name]
    if "$ref" not in json.dumps(schema):
        # Self-contained (every request schema today): validated directly, which is three times
        # quicker than following a $ref into the whole document on every request.
        return Draft202012Validator(schema)
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#/components/schemas/{schema_name}"}, registry=registry)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """``raw`` parsed as UTF-8 JSON, ``NaN``, ``Infinity`` and ``-Infinity`` refused (Python's reader
    takes them, but they are not JSON, and NaN slips past every minimum and maximum). /v1 and the
    FHIR API read their bodies with it; :func:`unstorable_values` then finds what parses but cannot
    be kept (``1e400``, lone surrogates, deep nesting).

    Raises: ValueError (UnicodeDecodeError, JSONDecodeError, a constant), RecursionError.
    """
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def json_body(schema_name: str, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, valid against ``components.schemas[schema_name]``.

    An optional body may be absent (then ``{}``). Whatever the schema, JSON that CarePath could not
    store or digest faithfully is refused, each place named (:func:`unstorable_values`): text with
    a lone surrogate (``"\\ud800"``), nesting deeper than :data:`MAX_JSON_DEPTH`, numbers that
    overflow to infinity (``1e400``).

    Raises: ApiError 415 (not JSON), 400 (malformed or invalid), 413 (too large, from werkzeug).
    """
    raw = request.get_data(cache=True)
    if not raw and not required:
        return {}
    if not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    try:
        body = strict_json(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, "malformed-json", "the body is not valid UTF-8 JSON") from exc
    unstorable = unstorable_values(body)
    if unstorable:
        raise ApiError(400, "request-invalid", "the request body holds values CarePath cannot store", unstorable)
    problems = [
        Problem(_message(error), field=_pointer(error), code=str(error.validator))
        for error in _validator(schema_name).iter_errors(body)
    ]
    if problems:
        raise ApiError(400, "request-invalid", "the request body is not valid", sorted(problems, key=str))
    return dict(body)


def unstorable_values(body: Any, limit: int = 10) -> list[Problem]:
    """The places in parsed JSON that could not be stored or digested as sent (at most ``limit``).

    Python's JSON reader accepts what UTF-8 and the database cannot hold: ``"\\ud800"`` becomes a
    lone surrogate, which fails later when the value is encoded (a 500, or data that differs
    from what was sent); ``1e400`` becomes infinity, which is not JSON when written back; and deep
    nesting exhausts the recursion of every writer after it. Walked without recursion.
    """
    problems: list[Problem] = []
    pending: list[tuple[Any, str, int]] = [(body, "", 0)]
    while pending and len(problems) < limit:
        value, pointer, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                problems.append(
                    Problem(f"is nested deeper than {MAX_JSON_DEPTH} levels", field=pointer or "/", code="maxDepth")
                )
                continue
            entries = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in entries:
                name = str(key)
                if not _is_text(name):
                    problems.append(
                        Problem(
                            "a property name holds a lone surrogate (not text)",
                            field=f"{pointer}/{_printable(name)}",
                            code="surrogate",
                        )
                    )
                    continue
                pending.append((item, f"{pointer}/{name.replace('~', '~0').replace('/', '~1')}", depth + 1))
        elif isinstance(value, str) and not _is_text(value):
            problems.append(
                Problem("holds a lone surrogate (\\ud800-\\udfff): not text", field=pointer or "/", code="surrogate")
            )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(
                Problem(
                    "must be a finite number (this one is too large to represent)", field=pointer or "/", code="finite"
                )
            )
    return sorted(problems, key=str)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("utf-8")[:100]


def _pointer(error: ValidationError) -> str:
    path = "/" + "/".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return path.rstrip("/") + "/" + str(missing[0])
    return path


def _message(error: ValidationError) -> str:
    """jsonschema's own messages quote the submitted value; these do not."""
    keyword, expected = str(error.validator), error.validator_value
    if keyword == "required":
        return "is required"
    if keyword == "additionalProperties":
        return "has properties that are not allowed here"
    if keyword == "type":
        return f"must be of type {expected}"
    if keyword in ("enum", "const"):
        return f"must be one of {expected if isinstance(expected, list) else [expected]}"
    if keyword == "oneOf":
        return "must match exactly one of the allowed forms (for a message: patient_ref or instance_id)"
    if keyword == "$ref":
        return "is not valid"
    return f"fails {keyword} {expected!r}" if not isinstance(expected, dict | list) else f"fails {keyword}"


def uploaded_bundle() -> Bundle:
    """A pathway bundle: a zip archive sent as the body (``application/zip``), or the ``files``
    parts of a multipart upload (:func:`uploaded_files`).

    Raises: ApiError 415 (neither), 413 (an archive over the bundle's bounds: entries, bytes,
        compression), 400 (not a zip archive, an unsafe or symlink entry, a bad name).
    """
    if request.mimetype not in ZIP_TYPES:
        return Bundle(uploaded_files())
    try:
        bundle = read_bundle_zip(request.get_data(cache=True))
    except InvalidInputError as exc:
        if any(p.code == TOO_LARGE for p in exc.problems):
            raise ApiError(413, "body-too-large", exc.message, exc.problems) from exc
        raise ApiError(400, "request-invalid", exc.message, exc.problems) from exc
    bad = [name for name in bundle.files if not _UPLOAD_NAME.match(name) or len(name) > MAX_FILE_NAME]
    if bad:
        raise ApiError(
            400,
            "request-invalid",
            "bad file name in the archive",
            [
                Problem(
                    "must be a relative name such as pathway.bpmn or shared/sub.bpmn (.bpmn, .json or .dmn; letters, "
                    f"digits, '_', '.', '-'; at most 4 levels), at most {MAX_FILE_NAME} characters",
                    file=name,
                    code="file-name",
                )
                for name in bad[:10]
            ],
        )
    if not bundle.files:
        raise ApiError(
            400,
            "request-invalid",
            "the archive holds no pathway file",
            [Problem("at least one .bpmn file is required", code="not-found")],
        )
    return bundle


def uploaded_files() -> dict[str, bytes]:
    """The ``files`` parts of a multipart upload, by their (relative) file names.

    Raises: ApiError 415 (not multipart), 400 (no files, bad names, too many).
    """
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported-media-type",
            "upload diagrams as multipart/form-data in 'files' parts, or a zip archive as application/zip",
        )
    parts: list[FileStorage] = request.files.getlist("files")
    if not parts:
        raise ApiError(400, "request-invalid", "no files uploaded", [Problem("at least one file", field="/files")])
    if len(parts) > MAX_UPLOAD_FILES:
        raise ApiError(
            400, "request-invalid", "too many files", [Problem(f"at most {MAX_UPLOAD_FILES}", field="/files")]
        )
    files: dict[str, bytes] = {}
    for index, part in enumerate(parts):
        name = part.filename or ""
        if not _UPLOAD_NAME.match(name) or ".." in name or len(name) > MAX_FILE_NAME:
            raise ApiError(
                400,
                "request-invalid",
                "bad file name",
                [
                    Problem(
                        "must be a relative name such as pathway.bpmn or shared/sub.bpmn (.bpmn, .json or .dmn), "
                        f"at most {MAX_FILE_NAME} characters",
                        field=f"/files/{index}",
                    )
                ],
            )
        files[name] = part.read()
    return files


def if_match() -> int | None:
    """The instance version in ``If-Match: "3"``; None when absent or ``*``.

    Raises: ApiError 400 for any other form.
    """
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    match = _IF_MATCH.match(value.strip())
    if match is None:
        raise ApiError(
            400,
            "request-invalid",
            'If-Match must be one quoted instance version, like "3"',
            [Problem('must look like "3"', field="If-Match")],
        )
    return int(match.group(1))


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def query_str(name: str, pattern: str | None = None, max_length: int = 500) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if len(value) > max_length or (pattern is not None and not re.match(pattern, value)):
        raise ApiError(
            400,
            "request-invalid",
            f"query parameter {name} is not valid",
            [Problem(f"must match {pattern}" if pattern else f"at most {max_length} characters", field=name)],
        )
    return value


def query_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """Raises: ApiError 400 ``request-invalid`` when the value is not one of ``choices``."""
    value = request.args.get(name)
    if value is not None and value not in choices:
        raise ApiError(
            400,
            "request-invalid",
            f"query parameter {name} is not valid",
            [Problem(f"must be one of {', '.join(choices)}", field=name)],
        )
    return value


@contextlib.contextmanager
def query_errors() -> Iterator[None]:
    """Around an engine call made with query parameters: the engine's InvalidInputError about them (a
    cursor it did not issue, a limit) is answered like the HTTP layer's own, ``request-invalid``.

    Raises: ApiError 400.
    """
    try:
        yield
    except InvalidInputError as exc:
        if not exc.problems or not all(p.field in request.args for p in exc.problems):
            raise
        raise ApiError(
            400, "request-invalid", f"query parameter {exc.problems[0].field} is not valid", list(exc.problems)
        ) from exc


def query_int(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise ApiError(
            400,
            "request-invalid",
            f"query parameter {name} is not valid",
            [Problem(f"must be an integer from {low} to {high}", field=name)],
        )
    return int(value)


def query_time(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00")) if len(value) <= 40 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or math.isnan(when.timestamp()):
        raise ApiError(
            400,
            "request-invalid",
            f"query parameter {name} is not valid",
            [Problem("must be an RFC 3339 date-time with a zone, like 2026-01-15T09:00:00Z", field=name)],
        )
    return when


@cache
def _query_names(template: str, method: str) -> frozenset[str]:
    operation = DOCUMENT["paths"].get(template, {}).get(method, {})
    return frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")


def route_template(rule: str) -> str:
    """A Flask route's rule as the OpenAPI document writes its path: ``<uuid:instance_id>`` and
    ``<int(min=1, max=999):number>`` (a converter with arguments) become ``{instance_id}`` and ``{number}``."""
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule)


def reject_unknown_query() -> None:
    """Refuse query parameters an operation does not document (a misspelt filter must not list everything).

    Raises: ApiError 400 naming the unknown parameters.
    """
    if not request.args or request.url_rule is None:
        return
    template = route_template(request.url_rule.rule)
    if template not in DOCUMENT["paths"]:
        return  # the FHIR API's routes check their own search parameters (api/fhir.py)
    unknown = sorted(set(request.args) - _query_names(template, request.method.lower()))
    if unknown:
        raise ApiError(
            400,
            "request-invalid",
            "unknown query parameters",
            [Problem("is not a parameter of this operation", field=name[:50]) for name in unknown[:10]],
        )
