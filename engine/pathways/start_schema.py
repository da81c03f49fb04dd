"""A pathway's start contract: the JSON Schema of the data an instance is started with.

A pathway file ``<name>.bpmn`` declares its start data in ``<name>.start.schema.json`` beside it
(in the pathways folder, or in the same upload). The file is one of the files the pathway's version
is built from (so it is part of the version's hash) and is stored with the version; a start whose
data fails it is refused, naming every field (:mod:`engine.instances.forms`).

A pathway without the file accepts any start data object: the gate warns (``start-schema-missing``)
so that an author adds one, but an older or experimental pathway still deploys.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from engine.errors import ERROR, WARNING, Problem
from engine.pathways.bundle import MAX_BUNDLE_FILE_BYTES, bundle_name
from engine.pathways.diagrams import Diagram
from engine.spiff.form_keywords import keyword_mistakes

__all__ = ["START_SCHEMA_SUFFIX", "parse_start_schema", "start_schema_name", "start_schema_problems"]

START_SCHEMA_SUFFIX = ".start.schema.json"


def start_schema_name(main_file: str) -> str:
    """The start schema's name beside a pathway file: ``breast.bpmn`` -> ``breast.start.schema.json``."""
    stem = main_file[: -len(".bpmn")] if main_file.endswith(".bpmn") else main_file
    return stem + START_SCHEMA_SUFFIX


def parse_start_schema(content: bytes, file: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The schema in ``content``, or None with the problems that make it unusable: not UTF-8 JSON,
    not a valid JSON Schema (draft 2020-12), or not a schema of an object."""

    def problem(message: str) -> tuple[None, list[Problem]]:
        return None, [Problem(message, file=file, code="start-schema", severity=ERROR)]

    if len(content) > MAX_BUNDLE_FILE_BYTES:
        return problem("the start data schema is larger than 1 MiB")
    try:
        schema = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return problem(f"the start data schema is not JSON: {type(exc).__name__}")
    if not isinstance(schema, dict):
        return problem("the start data schema must be a JSON object (a JSON Schema)")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.absolute_path)
        return problem(
            f"the start data schema is not a valid JSON Schema (draft 2020-12) at {where}: '{exc.validator}' fails"
        )
    if schema.get("type") != "object":
        return problem('the start data schema must describe an object ("type": "object")')
    mistakes = keyword_mistakes(schema)
    if mistakes:
        return problem(f"the start data schema at {mistakes[0]}")
    return schema, []


def start_schema_problems(diagram: Diagram) -> list[Problem]:
    """What the gate says about a pathway file's start schema: a warning when it has none, an error
    when it has one that cannot be used."""
    name = bundle_name(diagram.location, start_schema_name(diagram.location.rsplit("/", 1)[-1]))
    content = diagram.files.read(name) if name is not None else None
    if content is None:
        return [
            Problem(
                f"no start data schema ({start_schema_name(diagram.name.rsplit('/', 1)[-1])} beside the "
                "diagram): any start data is accepted, and a start missing what the diagram reads "
                "fails later as an incident",
                file=diagram.name,
                code="start-schema-missing",
                severity=WARNING,
            )
        ]
    return parse_start_schema(content, start_schema_name(diagram.name))[1]
