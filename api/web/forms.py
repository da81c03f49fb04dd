"""A task's JSON Schema form as NHS.UK form fields, and the submitted fields back as the task's data.

Rendered: strings (a text input, or a text area past 200 characters), dates (``format: date``),
integers, numbers, booleans (yes / no), enums or ``oneOf`` consts with titles (radios, or a select past 8
options; a const's title is its words), arrays of enums
(checkboxes), arrays of strings (one per line), objects with properties (a fieldset, nested), objects
whose every value is one of some options keyed by care plan item (the care plan operator's
``decisions``: a choice per item awaiting a decision, :func:`expand_maps`), and anything else as JSON
in a text area, so every schema can be completed.

A ``readOnly`` field (the reported warning sign on a triage, the rules that made an emergency) is not an input:
the page shows the value the task holds (the engine gives it as the field's ``default``) and parsing leaves it
out, so the person completing the task reads what was reported and cannot change it.

Parsing turns the fields into typed data; a value that cannot be read (``abc`` for an integer) is a
problem for that field. Whether the data passes the form is the engine's call
(:class:`~engine.errors.TaskDataError` names every failing field), so the schema is checked once, in one
place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from werkzeug.datastructures import MultiDict

from engine.errors import Problem, TaskDataError
from engine.instances.forms import check_form_data
from engine.spiff.form_keywords import CHOICES, NOT_AFTER

__all__ = ["FormField", "expand_maps", "fields_of", "other_problems", "parse_fields", "problem_messages", "revision_of"]

_LIMITS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
_INTEGER = re.compile(r"^-?[0-9]{1,15}$")
_NUMBER = re.compile(r"^-?[0-9]{1,15}([.,][0-9]{1,10})?$")
MAX_DEPTH = 4


@dataclass
class FormField:
    """One field of a form: ``name`` is the HTML name (dotted for nested fields), ``pointer`` the JSON
    pointer the engine names in its problems."""

    name: str
    pointer: str
    label: str
    kind: str
    required: bool = False
    hint: str | None = None
    options: list[tuple[str, Any]] = field(default_factory=list)  # (shown and sent as, value)
    children: list[FormField] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)  # minimum, maximum, minItems, maxLength...
    read_only: bool = False  # shown, never an input: ``value`` is what the task holds (None: not given)
    value: Any = None
    choices: str | None = None  # the form's x-carepath-choices: a list the page fills (engine.spiff.form_keywords)
    option_labels: dict[str, str] = field(default_factory=dict)  # an option's words, where not its value

    @property
    def html_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


def _label(key: str, schema: dict[str, Any]) -> str:
    title = schema.get("title")
    return str(title) if isinstance(title, str) and title else key.replace("_", " ").capitalize()


def _option(value: Any) -> tuple[str, Any]:
    shown = value if isinstance(value, str) else json.dumps(value)
    return shown, value


def _choices(schema: Any) -> list[tuple[Any, str | None]] | None:
    """A field's choices and their words: an ``enum`` (no words: the value is shown readable), or a
    ``oneOf`` whose every branch is a ``const`` with its ``title`` (JSON Schema's way of naming choices:
    ``{"const": "amber", "title": "Amber: a review within 24 hours"}``). None: not a choice."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("enum"), list):
        return [(value, None) for value in schema["enum"]]
    branches = schema.get("oneOf")
    if isinstance(branches, list) and branches and all(isinstance(b, dict) and "const" in b for b in branches):
        return [(b["const"], b["title"] if isinstance(b.get("title"), str) else None) for b in branches]
    return None


def _kind(schema: dict[str, Any], depth: int) -> str:
    kind = schema.get("type")
    choices = _choices(schema)
    if choices is not None:
        return "radios" if len(choices) <= 8 else "select"
    if kind == "string":
        if schema.get("format") == "date":
            return "date"
        return "textarea" if int(schema.get("maxLength", 0) or 0) > 200 else "text"
    if kind in ("integer", "number", "boolean"):
        return str(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if _choices(items) is not None:
            return "checkboxes"
        if items.get("type") == "string":
            return "lines"
    if kind == "object" and isinstance(schema.get("properties"), dict) and depth < MAX_DEPTH:
        return "group"
    values = schema.get("additionalProperties")
    if kind == "object" and not schema.get("properties") and isinstance(values, dict) and "enum" in values:
        return "map"
    return "json"


def fields_of(
    schema: dict[str, Any] | None, prefix: str = "", depth: int = 0, held: dict[str, Any] | None = None
) -> list[FormField]:
    """The fields of an object schema, in the schema's order. ``held``: the values of a read-only
    group's fields (its own value), which they show."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    required = set(schema.get("required") or [])
    found = []
    for key, sub in schema["properties"].items():
        if not isinstance(sub, dict):
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        kind = _kind(sub, depth)
        read_only = held is not None or sub.get("readOnly") is True
        item = FormField(
            name=name,
            pointer="/" + name.replace(".", "/"),
            label=_label(str(key), sub),
            kind=kind,
            required=key in required,
            hint=sub.get("description") if isinstance(sub.get("description"), str) else None,
            read_only=read_only,
            value=(held.get(key) if held is not None else sub.get("default")) if read_only else None,
            choices=sub[CHOICES] if isinstance(sub.get(CHOICES), str) and not read_only else None,
        )
        item.limits = {k: sub[k] for k in _LIMITS if isinstance(sub.get(k), int | float)}
        choices = (
            _choices(sub) if kind in ("radios", "select") else _choices(sub["items"]) if kind == "checkboxes" else None
        )
        if choices is not None:
            item.options = [_option(value) for value, _words in choices]
            item.option_labels = {_option(value)[0]: words for value, words in choices if words}
        elif kind == "map":
            item.options = [_option(v) for v in sub["additionalProperties"]["enum"]]
        elif kind == "group":
            shown = (item.value if isinstance(item.value, dict) else {}) if read_only else None
            item.children = fields_of(sub, name, depth + 1, shown)
        found.append(item)
    return found


def choice_lists(fields: list[FormField]) -> set[str]:
    """The lists the fields ask the page to fill (their ``choices``), nested fields included."""
    return {item.choices for item in _flat(fields) if item.choices}


def offer_choices(fields: list[FormField], lists: dict[str, list[tuple[str, str]]]) -> list[FormField]:
    """``fields`` with each field that names a list (``choices``) made a select of it: ``lists`` maps the
    list's name to its ``(value, words)`` (the patient's warning signs, by name). A value outside the list
    is refused on the page, as any select's."""
    for item in _flat(fields):
        offered = lists.get(item.choices or "")
        if offered is not None:
            item.kind = "select"
            item.options = [(value, value) for value, _words in offered]
            item.option_labels = dict(offered)
    return fields


def expand_maps(fields: list[FormField], keys: list[tuple[str, str]]) -> list[FormField]:
    """``fields`` with each ``map`` field given one choice per key (``(key, label)``: the care plan
    items awaiting a decision), as radios named ``<map>.<key>``. A choice left out is no decision (the
    item stays proposed), as the form's schema has it."""
    for item in fields:
        if item.kind == "map":
            item.children = [
                FormField(
                    name=f"{item.name}.{key}",
                    pointer=f"{item.pointer}/{key}",
                    label=label,
                    kind="radios",
                    options=list(item.options),
                )
                for key, label in keys
            ]
        elif item.children:
            expand_maps(item.children, keys)
    return fields


def parse_fields(fields: list[FormField], form: MultiDict[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """The task data the submitted ``form`` holds, and a problem per field that could not be read.

    Empty fields are left out, so the engine reports a required one as missing.
    """
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in fields:
        if item.read_only:
            continue  # what the task holds, not an answer: never read from the form
        if item.kind in ("group", "map"):
            inner, inner_problems = parse_fields(item.children, form)
            problems += inner_problems
            if inner or item.kind == "map":  # a map with no choice to make is still an answer: {}
                data[item.name.rsplit(".", 1)[-1]] = inner
            continue
        try:
            value = _value(item, form)
        except ValueError as exc:
            problems.append(Problem(f"cannot be read as {exc}", field=item.pointer, code=f"unreadable.{exc}"))
            continue
        if value is not None:
            data[item.name.rsplit(".", 1)[-1]] = value
    return data, problems


def revision_of(sent: str) -> int:
    """The instance version a form sent back; one no instance has (-1) when it is not a plain number."""
    return int(sent) if re.fullmatch(r"[0-9]{1,9}", sent) else -1


def other_problems(schema: dict[str, Any] | None, data: dict[str, Any], unreadable: list[Problem]) -> list[Problem]:
    """What the engine's check of the form finds in ``data`` besides the fields that could not be read,
    so one round shows every problem (the task is not completed while any field is unreadable). A task
    without a form (``schema`` None) declares no fields, as the engine has it."""
    try:
        check_form_data(schema, data)
    except TaskDataError as exc:
        skipped = [p.field or "/" for p in unreadable]
        return [p for p in exc.problems if not any((p.field or "/").startswith(s) for s in skipped)]
    return []


def _value(item: FormField, form: MultiDict[str, str]) -> Any:
    """Raises: ValueError with what was expected (options, integer, number, boolean, date, json), never the value."""
    if item.kind == "checkboxes":
        chosen = form.getlist(item.name)
        by_shown = dict(item.options)
        if any(c not in by_shown for c in chosen):
            raise ValueError("options")
        return [by_shown[c] for c in chosen] if chosen or item.required else None
    raw = form.get(item.name, "").strip()
    if raw == "":
        return None
    if item.kind in ("radios", "select"):
        by_shown = dict(item.options)
        if raw not in by_shown:
            raise ValueError("options")
        return by_shown[raw]
    return _READERS.get(item.kind, str)(raw)


def _integer(raw: str) -> int:
    if not _INTEGER.match(raw):
        raise ValueError("integer")
    return int(raw)


def _number(raw: str) -> float:
    if not _NUMBER.match(raw):
        raise ValueError("number")
    return float(raw.replace(",", "."))


def _boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError("boolean")
    return raw == "true"


def _date(raw: str) -> str:
    try:
        date.fromisoformat(raw)
    except ValueError:
        raise ValueError("date") from None
    return raw


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("json") from None


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.splitlines() if line.strip()]


_READERS: dict[str, Callable[[str], Any]] = {
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "date": _date,
    "json": _json,
    "lines": _lines,
}

_MESSAGES = {
    "required": "required",
    "type": "type",
    "enum": "enum",
    "format": "format",
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
    "maxLength": "length",
    "minLength": "length",
    "minItems": "items",
    "maxItems": "items",
    "uniqueItems": "items",
    NOT_AFTER: "not_after",
}


def _flat(fields: list[FormField]) -> list[FormField]:
    return [f for item in fields for f in ([item, *_flat(item.children)] if item.children else [item])]


def problem_messages(
    fields: list[FormField], problems: list[Problem], translate: Callable[..., str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Each problem in the page's language: per field (by HTML name) and for the error summary
    (the id to link to, the words). A problem the engine names below a field (an item of a list,
    a key of an object) is shown on that field; one naming no field links to the form."""
    by_pointer = {f.pointer: f for f in _flat(fields)}
    per_field: dict[str, str] = {}
    summary: list[tuple[str, str]] = []
    for problem in problems:
        pointer = problem.field or "/"
        target = None
        while pointer and target is None:
            target = by_pointer.get(pointer)
            pointer = pointer.rsplit("/", 1)[0]
        label = target.label if target is not None else translate("task.the_form")
        code = problem.code or ""
        limits = target.limits if target is not None else {}
        kind = code if code.startswith("unreadable.") else _MESSAGES.get(code, "other")
        if kind == "range" and {"minimum", "maximum"} <= set(limits):
            kind = "between"
        elif code in ("minItems", "maxLength") and code in limits:
            kind = code
        words = translate(f"errors.field.{kind}", label=label, detail=problem.message, **limits)
        if target is not None:
            per_field.setdefault(target.name, words)
        summary.append((target.html_id if target is not None else "task-form", words))
    return per_field, summary
