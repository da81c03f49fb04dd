"""Checking task data against the task's form (JSON Schema, draft 2020-12).

Every failing field is named; the submitted values are not echoed (they are patient data). A task
without a form (a manual task, a plain task, a version deployed before forms-less user tasks became
confirmation steps) declares no fields: whatever it is sent is refused, field by field.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import date
from typing import Any

import jsonschema

from engine.errors import Problem, StartDataError, TaskDataError
from engine.settings import HEALTH_SYSTEMS
from engine.spiff.form_keywords import CHOICES, NOT_AFTER
from engine.spiff.workflows import CONTACT_KEYS, NOTICE_KEY  # what a form's safety notice is filled from

__all__ = [
    "CONTACT_KEYS",
    "NOTICE_KEY",
    "NOT_AFTER",
    "check_form_data",
    "check_read_only",
    "check_start_data",
]

_TODAY: ContextVar[date | None] = ContextVar("carepath_form_today", default=None)


def _not_after(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    today = _TODAY.get()
    if value != "today" or today is None or not isinstance(instance, str):
        return
    try:
        given = date.fromisoformat(instance)
    except ValueError:
        return  # not a date: ``format`` names it
    if given > today:
        yield jsonschema.ValidationError("cannot be after today")


# The codes each list of CHOICES may hold, for the check running in this context (None: not checked).
_CHOICE_CODES: ContextVar[Mapping[str, frozenset[str]] | None] = ContextVar("carepath_form_choices", default=None)
_CHOICE_WORDS = {"warning_signs": "is not a warning sign of the catalogue in use"}


def _choices(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    codes = (_CHOICE_CODES.get() or {}).get(value)
    if codes is not None and isinstance(instance, str) and instance not in codes:
        yield jsonschema.ValidationError(_CHOICE_WORDS.get(value, f"is not one of the {value}"))


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {NOT_AFTER: _not_after, CHOICES: _choices})


@functools.lru_cache(maxsize=512)
def _form_validator(schema_json: str) -> Any:
    return _Validator(json.loads(schema_json), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@contextlib.contextmanager
def _today(today: date | None, choices: Mapping[str, frozenset[str]] | None = None) -> Iterator[None]:
    token, chosen = _TODAY.set(today), _CHOICE_CODES.set(choices)
    try:
        yield
    finally:
        _TODAY.reset(token)
        _CHOICE_CODES.reset(chosen)


# The form of a task that has none: it declares no fields, so each field sent is ``undeclared``.
_NO_FIELDS = '{"properties": {}, "type": "object"}'


def check_form_data(
    schema: str | dict[str, Any] | None,
    data: dict[str, Any],
    today: date | None = None,
    choices: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """Check ``data`` against a form, given as its JSON Schema or the schema's JSON text; None is a
    task without a form, which declares no fields (only ``{}`` passes). With ``today``
    (:func:`engine.calendar.latest_today`), a field marked :data:`NOT_AFTER` may not hold a later date.
    With ``choices`` (a list's name to its codes), a field marked :data:`CHOICES` must hold one of its
    list's codes (code ``enum``, the value not quoted).

    Raises: TaskDataError naming every field that fails the form.
    """
    with _today(today, choices):
        problems = _problems(_NO_FIELDS if schema is None else schema, data, "")
    if problems:
        raise TaskDataError("the data does not match the task's form", problems)


def check_read_only(schema: str | None, data: dict[str, Any], held: dict[str, Any]) -> None:
    """Refuse a change to a form's ``readOnly`` field: it shows the person completing the task what the
    task holds (the warning sign the patient reported, the rules that made a case an emergency), and
    the answer must not rewrite it. Sending it back unchanged (a client echoing the form) is accepted.

    Raises: TaskDataError naming each such field (never its value).
    """
    if schema is None:
        return
    problems = [
        Problem("is read-only: it shows what the task holds and cannot be changed", field=f"/{name}", code="readOnly")
        for name in _read_only_fields(schema)
        if name in data and data[name] != held.get(name)
    ]
    if problems:
        raise TaskDataError("the data does not match the task's form", problems)


@functools.lru_cache(maxsize=512)
def _read_only_fields(schema: str) -> tuple[str, ...]:
    """The form's top-level ``readOnly`` fields (read once per form text, as its validator is)."""
    loaded = json.loads(schema)
    properties = loaded.get("properties") if isinstance(loaded, dict) else None
    if not isinstance(properties, dict):
        return ()
    return tuple(n for n, f in properties.items() if isinstance(f, dict) and f.get("readOnly") is True)


def check_start_data(
    schema: str | None, data: dict[str, Any], prefix: str = "/data", today: date | None = None
) -> None:
    """Check start data (or a correction of an instance's data) against the pathway's start schema
    (its JSON text, as stored with the version; None: a pathway without one), and its ``health_system``,
    whatever the schema says: one of :data:`~engine.settings.HEALTH_SYSTEMS` when given, since the
    patient's numbers come from that service directory section (engine.directory) and an
    unknown one would be silently passed over for the deployment's. Fields are named below ``prefix``.
    With ``today``, a field marked :data:`NOT_AFTER` (the date of diagnosis) may not hold a later date.

    Raises: StartDataError naming every field that fails (never quoting a value).
    """
    problems = _health_system_problems(data, prefix)
    named = {problem.field for problem in problems}
    # A schema that declares health_system (the bundled ones do) refuses the same value: named once.
    with _today(today):
        checked = _problems(schema, data, prefix) if schema is not None else []
    problems += [p for p in checked if p.field not in named]
    if problems:
        raise StartDataError("the data does not match the pathway's start data schema", problems)


def with_health_system(schema: str | None, data: dict[str, Any], resolve: Callable[[], str | None]) -> dict[str, Any]:
    """``data`` with the patient's health system recorded when it omits one and the pathway's start
    schema declares the field (the bundled ones do): ``resolve()``, the section the documents would
    take for this data (the facade resolves it: ``engine.directory.health_system_resolver``;
    called only then, on data the schema has passed),
    else the first of :data:`~engine.settings.HEALTH_SYSTEMS` (``england``). The pathway's gateways read
    it (through ``carepath.health_system``: a diagram cannot read the settings) and the documents read
    the instance's own first (engine.directory ``for_patient``), so both follow the one
    recorded value, which a correction may change. A value the schema's ``enum`` refuses is not
    recorded. ``data`` is not changed.
    """
    if "health_system" in data or schema is None:
        return data
    declared = json.loads(schema).get("properties", {}).get("health_system")
    if not isinstance(declared, dict):
        return data
    value = resolve() or HEALTH_SYSTEMS[0]
    if value not in declared.get("enum", [value]):
        return data
    return {**data, "health_system": value}


def _health_system_problems(data: dict[str, Any], prefix: str) -> list[Problem]:
    if "health_system" not in data or data["health_system"] in HEALTH_SYSTEMS:
        return []
    return [Problem(f"must be one of: {', '.join(HEALTH_SYSTEMS)}", field=f"{prefix}/health_system", code="enum")]


def _problems(schema: str | dict[str, Any], data: dict[str, Any], prefix: str) -> list[Problem]:
    validator = _form_validator(schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True))
    problems = (
        [
            Problem("is not a field of this form", field=f"/{key}", code="undeclared")
            for key in _undeclared(validator.schema, data)
        ]
        if not prefix
        else []
    )
    problems += [
        Problem("must be a finite number", field=(prefix + path) or "/", code="finite") for path in _non_finite(data)
    ]
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        if (
            error.validator == "additionalProperties"
            and not error.absolute_path
            and not prefix
            and _declares_nothing(validator.schema)
        ):
            continue  # each field is named above, as for a task without a form
        path = "/" + "/".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties" and error.validator_value is False:
            # Name each key the form does not declare (a misspelt concern: fatige), never its value.
            problems += _extra_keys(error, prefix + path.rstrip("/"), "start data schema" if prefix else "form")
            continue
        code = str(error.validator)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = path.rstrip("/") + "/" + missing
            message = "is required"
        elif (consts := _named_choices(error)) is not None:
            # A oneOf of consts with titles is a choice, named as an enum's is (the web's words for it).
            message, code = f"must be one of {consts}", "enum"
        elif error.validator == CHOICES:
            message, code = error.message, "enum"  # a choice from a list the engine holds
        else:
            # jsonschema's messages quote the submitted value; keep patient data out of errors.
            message = (
                error.message
                if error.validator == NOT_AFTER
                else f"fails '{error.validator}' (expected {error.validator_value!r})"
                if error.validator not in ("type", "enum", "format")
                else _type_message(error)
            )
        problems.append(Problem(message, field=(prefix + path).rstrip("/") or "/", code=code))
    return problems


def _non_finite(data: Any) -> list[str]:
    """Where ``data`` holds NaN or an infinity (pointers). No form may take one: NaN passes every
    ``minimum`` and ``maximum`` (each comparison is false), and neither is JSON, so the instance's
    data could not be stored and the step after the task would fail. Walked without recursion."""
    found: list[str] = []
    pending: list[tuple[Any, str]] = [(data, "")]
    while pending:
        value, pointer = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append(pointer)
        elif isinstance(value, dict):
            pending += [(v, f"{pointer}/{str(k).replace('~', '~0').replace('/', '~1')}") for k, v in value.items()]
        elif isinstance(value, list | tuple):
            pending += [(v, f"{pointer}/{n}") for n, v in enumerate(value)]
    return sorted(found)


def _extra_keys(error: Any, where: str, whose: str) -> list[Problem]:
    """A problem per key of the object at ``where`` that its schema neither declares nor matches by
    pattern, with the closest declared name. Keys are the client's names (shown shortened, without
    control characters); the values are patient data and are not shown."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    properties = schema.get("properties")
    declared: dict[str, Any] = properties if isinstance(properties, dict) else {}
    by_pattern = schema.get("patternProperties")
    patterns = [str(p) for p in by_pattern] if isinstance(by_pattern, dict) else []
    instance = error.instance if isinstance(error.instance, dict) else {}
    parent = str(error.absolute_path[-1]) if error.absolute_path else ""
    what = (
        f"one of the {_shown(parent)} of this {whose}"
        if parent and not parent.isdigit()
        else f"a field of this {whose}"
    )
    problems = []
    for key in sorted(str(k) for k in instance):
        if key in declared or any(re.search(pattern, key) for pattern in patterns):
            continue
        close = difflib.get_close_matches(key, [str(name) for name in declared], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        pointer = key.replace("~", "~0").replace("/", "~1")
        problems.append(
            Problem(f"is not {what}{hint}", field=f"{where}/{_shown(pointer)}", code="additionalProperties")
        )
    return problems


def _shown(key: str) -> str:
    short = key if len(key) <= 64 else key[:64] + "..."
    return short if short.isprintable() else repr(short)[1:-1]


_OWN_RULE = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def _undeclared(schema: Any, data: dict[str, Any]) -> list[str]:
    """The fields of ``data`` that a form does not declare, when the form has no rule of its own for
    them. What a task's data holds becomes the instance's data, which decides the pathway's flow: a
    field no form declares (a typo, or a client setting ``palliative_route`` through the form of an
    unrelated task) would change what happens to the patient without anyone having asked it. A
    correction of the instance's data is the audited way to change such a value (``correct_data``)."""
    if not isinstance(schema, dict) or (any(rule in schema for rule in _OWN_RULE) and not _declares_nothing(schema)):
        return []
    declared = schema.get("properties") or {}
    return sorted(key for key in data if key not in declared)


def _declares_nothing(schema: Any) -> bool:
    """A confirmation step's form (a user task drawn without one): no fields, and no others allowed
    (``additionalProperties: false``). Its extra fields are named one by one as ``undeclared``, as for a
    task without any form, rather than as one failure of the whole object."""
    return (
        isinstance(schema, dict)
        and not schema.get("properties")
        and schema.get("additionalProperties") is False
        and "patternProperties" not in schema
        and "unevaluatedProperties" not in schema
    )


def _named_choices(error: Any) -> list[Any] | None:
    """The values of a ``oneOf`` whose every branch is a ``const`` (choices with titles), else None."""
    branches = error.validator_value if error.validator == "oneOf" else None
    if isinstance(branches, list) and branches and all(isinstance(b, dict) and "const" in b for b in branches):
        return [b["const"] for b in branches]
    return None


def _type_message(error: Any) -> str:
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    if error.validator == "enum":
        return f"must be one of {error.validator_value}"
    return f"must be a valid {error.validator_value}"
