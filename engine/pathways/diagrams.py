"""Reading BPMN diagrams as clinical authors save them, and preparing them for the engine.

Diagrams come from bpmn.io / bpmn-js, Camunda Modeler 5 and SpiffArena's modeler. They differ in
three ways that matter here, and :func:`prepare_for_engine` evens them out on a copy of the XML
(the author's file, and its line numbers for error messages, are untouched):

* Forms. Camunda writes ``camunda:formData`` / ``camunda:formField``; SpiffWorkflow diagrams name a
  JSON Schema file with the ``formJsonSchemaFilename`` property. Both become one JSON Schema kept in
  the task spec's ``spiffworkflow:properties`` under :data:`FORM_PROPERTY`, so the schema is part of
  the pathway version that is stored once per version.
* Timer values. Modelers write ``P18M`` unquoted; SpiffWorkflow evaluates timer values as
  expressions and would fail only when the timer is reached (LIBRARY_NOTES). Bare ISO-8601
  durations, dates and cycles are quoted.
* Condition expressions. Camunda wraps conditions in ``${...}`` or ``#{...}`` (JUEL): the wrapper is
  removed and JUEL's operators become Python's (:func:`juel_to_python`: ``&&``, ``||``, ``!``,
  ``eq``, ``ne``, ``lt``...). What is left must be in the safe expression language.

* Decision tables. A business rule task names a DMN decision (Camunda's ``camunda:decisionRef`` or
  SpiffWorkflow's ``spiffworkflow:calledDecisionId``) in a ``.dmn`` file of the bundle; the table,
  translated to the safe language (:mod:`engine.decisions`), is kept in the task spec's properties
  under :data:`~engine.decisions.DECISION_PROPERTY`, and the reference is written the way
  SpiffWorkflow's parser reads it.

Two more even out what modellers write and CarePath reads: a user task without a form CarePath can
read (none, or a ``camunda:formKey``) is a *confirmation step* whose form accepts no data
(:data:`CONFIRMATION_FORM`); and layout attributes a modeller writes on diagram-interchange elements
that the BPMN schema lacks (``BPMNPlane@label``) are dropped (:func:`drop_layout_extras`), as they
change nothing that runs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from engine.decisions import DECISION_PROPERTY, DecisionTable, decision_ids, read_decisions
from engine.errors import DiagramError, Problem
from engine.files import TOO_LARGE as OVER_LIMIT
from engine.files import FileRefusedError, read_regular_file
from engine.pathways.bundle import (
    MAX_BUNDLE_FILE_BYTES,
    TOO_LARGE,
    BundleFiles,
    FolderFiles,
    MemoryFiles,
    bundle_name,
)
from engine.spiff.workflows import FORM_PROPERTY

__all__ = [
    "ACTIVITIES",
    "BPMN_NS",
    "CAMUNDA_NS",
    "CONFIRMATION_FORM",
    "FORM_PROPERTY",
    "NSMAP",
    "SPIFF_NS",
    "FLOW_NODES",
    "SCOPES",
    "Diagram",
    "business_rule_tasks",
    "decision_display",
    "decision_file",
    "decision_ref",
    "decision_table",
    "drop_layout_extras",
    "form_file_names",
    "form_schema",
    "parse_diagram",
    "process_is_executable",
    "read_form_file",
    "prepare_for_engine",
    "read_diagram",
    "juel_to_python",
    "timer_literal",
]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NSMAP = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS}
FORM_FILE_PROPERTY = "formJsonSchemaFilename"


def _tag(name: str) -> str:
    return f"{{{BPMN_NS}}}{name}"


# The elements a sequence flow connects, and those a boundary event may be attached to (activities).
ACTIVITIES = frozenset(
    _tag(tag)
    for tag in (
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
    )
)
FLOW_NODES = ACTIVITIES | frozenset(
    _tag(tag)
    for tag in (
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    )
)
# What holds flow nodes: a process, and each sub-process inside it (a flow stays inside its own).
SCOPES = (_tag("process"), _tag("subProcess"), _tag("transaction"), _tag("adHocSubProcess"))

# ISO-8601 durations (P18M, P1Y2M, PT12H, P2W), dates/datetimes, and repeating intervals (R3/P1M).
_ISO_DURATION = r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?"
_ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
_TIMER_LITERAL = re.compile(
    rf"^(?:{_ISO_DURATION}|{_ISO_DATETIME}|R\d*/(?:{_ISO_DATETIME}/)?{_ISO_DURATION}(?:/{_ISO_DATETIME})?)$"
)
_JUEL = re.compile(r"^(\s*)[$#]\{(.*)\}\s*$", re.DOTALL)
# JUEL tokens outside text literals -> Python; '!' but not '!='.
_JUEL_TOKENS = re.compile(
    r"""(?P<text>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>&&|\|\||!(?!=))|"""
    r"\b(?P<word>eq|ne|lt|gt|le|ge|null|true|false)\b"
)
_JUEL_WORDS = {
    "&&": " and ",
    "||": " or ",
    "!": " not ",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "null": "None",
    "true": "True",
    "false": "False",
}
# A user task CarePath shows no form for: confirming it is all a clinician does (no data accepted).
CONFIRMATION_FORM: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_LAYOUT_NAMESPACES = (
    "http://www.omg.org/spec/BPMN/20100524/DI",
    "http://www.omg.org/spec/DD/20100524/DC",
    "http://www.omg.org/spec/DD/20100524/DI",
)
# Every plain attribute the diagram-interchange schema has (BPMNDiagram, BPMNPlane, BPMNShape, BPMNEdge,
# BPMNLabel, BPMNLabelStyle, Bounds, Font, waypoint); any other plain one is a modeller's own.
_LAYOUT_ATTRIBUTES = frozenset(
    {
        "id",
        "name",
        "documentation",
        "resolution",
        "bpmnElement",
        "isHorizontal",
        "isExpanded",
        "isMarkerVisible",
        "isMessageVisible",
        "participantBandKind",
        "choreographyActivityShape",
        "sourceElement",
        "targetElement",
        "messageVisibleKind",
        "labelStyle",
        "x",
        "y",
        "width",
        "height",
        "size",
        "isBold",
        "isItalic",
        "isUnderline",
        "isStrikeThrough",
    }
)

_DECLARED_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)


@dataclass
class Diagram:
    """One diagram file as the author saved it."""

    name: str  # the name shown to authors (relative to the pathways folder, or the path given)
    content: bytes
    tree: Any  # lxml ElementTree; keeps source line numbers
    files: BundleFiles  # where the files it names (form schemas) are read: its bundle, nowhere else
    location: str  # its own name inside ``files``; the names it uses are relative to this
    path: Path | None = None  # the file on disk, when it was read from one
    process_ids: list[str] = field(default_factory=list)
    executable_process_ids: list[str] = field(default_factory=list)
    called_elements: dict[str, str] = field(default_factory=dict)  # call activity id -> process id

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def read_diagram(
    folder: FolderFiles, name: str, display: str | None = None, files: BundleFiles | None = None
) -> Diagram:
    """Read the diagram ``name`` of a folder, keeping line numbers.

    The files it names are read from ``files`` (by default the folder itself).

    Raises:
        DiagramError: if the file is not inside the folder, cannot be read, is over :data:`MAX_BUNDLE_FILE_BYTES`
            (code ``bundle-too-large``), is not well-formed XML or holds no BPMN process.
    """
    path = folder.path_of(name)
    if path is None:
        raise DiagramError(
            f"{display or name} is not a file inside {folder.root}",
            [
                Problem(
                    "not a file inside the folder (a symlink may not lead out of it)",
                    file=display or name,
                    code="not-found",
                )
            ],
        )
    try:  # bounded, as a bundle's files are
        data = read_regular_file(path, MAX_BUNDLE_FILE_BYTES)
    except FileRefusedError as exc:
        large = exc.reason == OVER_LIMIT
        message = f"{exc}, more than any pathway needs".replace("the file", "the diagram") if large else str(exc)
        problem = Problem(message, file=display or name, code=TOO_LARGE if large else "not-found")
        raise DiagramError(f"{display or name}: {message}", [problem]) from exc
    diagram = parse_diagram(data, display or name, files or folder, location=name)
    diagram.path = path
    return diagram


def parse_diagram(
    content: bytes, display: str, files: BundleFiles | None = None, location: str | None = None
) -> Diagram:
    """Parse diagram content. The files it names are read from ``files`` only (by default: none),
    by names relative to ``location`` (by default ``display``).

    Raises:
        DiagramError: if the content is not UTF-8 text, has a document type declaration (DTD),
            is not well-formed XML or is not a BPMN diagram.
    """
    _check_text(content, display)
    try:
        tree = etree.ElementTree(etree.fromstring(content, _PARSER))
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        raise DiagramError(
            f"{display} is not well-formed XML",
            [Problem(f"not well-formed XML: {exc.msg}", file=display, line=line, code="xml-syntax")],
        ) from exc
    root = tree.getroot()
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise DiagramError(
            f"{display} is not a BPMN 2.0 diagram",
            [
                Problem(
                    f"root element is {root.tag!r}, expected bpmn:definitions",
                    file=display,
                    line=root.sourceline,
                    code="not-bpmn",
                )
            ],
        )
    diagram = Diagram(
        name=display, content=content, tree=tree, files=files or MemoryFiles({}), location=location or display
    )
    for process in root.iterfind("bpmn:process", NSMAP):
        pid = process.get("id")
        diagram.process_ids.append(pid)
        if process_is_executable(process):
            diagram.executable_process_ids.append(pid)
    for call in root.iterfind(".//bpmn:callActivity", NSMAP):
        called = call.get("calledElement")
        if called:
            diagram.called_elements[call.get("id")] = called
    return diagram


def process_is_executable(process: Any) -> bool:
    """Whether SpiffWorkflow runs the process: ``isExecutable="true"``, or no isExecutable at all
    (SpiffWorkflow's default; bpmn.io writes ``"false"``, which it refuses to run)."""
    return process.get("isExecutable", "true") == "true"


def _check_text(content: bytes, display: str) -> None:
    """Refuse what lxml would accept but CarePath cannot store or should not expand.

    Pathway files are stored as UTF-8 text, so another encoding is refused before it is stored
    (it failed at deploy with a traceback). A DTD can declare entities that expand into huge text
    (or read files): modellers never write one, so any document type declaration is refused before
    the XML is parsed.

    Raises:
        DiagramError: naming the line.
    """

    def refuse(code: str, message: str, offset: int) -> DiagramError:
        line = content.count(b"\n", 0, offset) + 1
        return DiagramError(f"{display} cannot be read", [Problem(message, file=display, line=line, code=code)])

    if content.startswith((b"\xff\xfe", b"\xfe\xff")) or content[:4] in (b"\x00<\x00?", b"<\x00?\x00"):
        raise refuse("encoding", "the diagram is UTF-16 text: save it as UTF-8", 0)
    declared = _DECLARED_ENCODING.match(content)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        name = declared.group(1).decode("ascii")
        raise refuse("encoding", f"the diagram declares encoding {name}: save it as UTF-8", 0)
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            "encoding",
            f"the diagram is not UTF-8 text (byte {exc.start + 1} is not UTF-8): save it as UTF-8",
            exc.start,
        ) from None
    root = _FIRST_ELEMENT.search(content)
    doctype = content.find(b"<!DOCTYPE", 0, root.start() if root else len(content))
    if doctype >= 0:
        raise refuse(
            "dtd",
            "the diagram has a document type declaration (<!DOCTYPE ...>), which may declare "
            "entities: remove it (no modeller writes one)",
            doctype,
        )


def timer_literal(text: str) -> bool:
    """True when ``text`` is a bare ISO-8601 timer value such as ``P18M`` or ``R/P3M``."""
    return bool(_TIMER_LITERAL.match(text.strip()))


def prepare_for_engine(diagram: Diagram) -> Any:
    """Return a copy of the diagram's XML with forms, timers and conditions normalised.

    Raises:
        DiagramError: if a form cannot be built (for example a missing JSON Schema file).
    """
    tree = copy.deepcopy(diagram.tree)
    root = tree.getroot()
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for element in root.iter(f"{{{BPMN_NS}}}{tag}"):
            value = (element.text or "").strip()
            if timer_literal(value):
                element.text = json.dumps(value)
    for element in root.iter(f"{{{BPMN_NS}}}conditionExpression"):
        converted = juel_to_python(element.text or "")
        if converted is not None:
            element.text = converted.strip()
    for task in root.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        _, table = decision_table(task, diagram)
        _set_spiff_property(task, DECISION_PROPERTY, table.to_json())
        _set_called_decision(task, table.decision_id)
    for task in root.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
        schema = form_schema(task, diagram)
        if schema is None and task.tag == f"{{{BPMN_NS}}}userTask":
            schema = CONFIRMATION_FORM
        if schema is not None:
            # In the author's order: the pages show the fields as the form lists them.
            _set_spiff_property(task, FORM_PROPERTY, json.dumps(schema))
    drop_layout_extras(tree)
    return tree


def juel_to_python(text: str) -> str | None:
    """A Camunda condition ``${...}`` / ``#{...}`` as Python (None when ``text`` is not one).

    Outside text literals, ``&&`` ``||`` ``!`` become ``and`` ``or`` ``not``; ``eq ne lt gt le ge``
    become ``== != < > <= >=``; ``null true false`` become ``None True False``; ``and or not`` and
    ``== !=`` are already Python. Leading line breaks are kept, so lines still match the author's.
    """
    match = _JUEL.match(text)
    if not match:
        return None

    def convert(token: re.Match[str]) -> str:
        if token.group("text"):
            return token.group("text")
        return _JUEL_WORDS[token.group("op") or token.group("word")]

    return match.group(1) + _JUEL_TOKENS.sub(convert, match.group(2))


def drop_layout_extras(tree: Any) -> None:
    """Remove the plain attributes modellers add to diagram-interchange (layout) elements that the
    BPMN schema does not have (``BPMNPlane@label``): they only draw, and the schema would refuse them."""
    for element in tree.getroot().iter():
        if isinstance(element.tag, str) and element.tag.startswith(tuple(f"{{{ns}}}" for ns in _LAYOUT_NAMESPACES)):
            for name in [n for n in element.attrib if not n.startswith("{") and n not in _LAYOUT_ATTRIBUTES]:
                del element.attrib[name]


def _set_spiff_property(task: Any, name: str, value: str) -> None:
    extensions = task.find("bpmn:extensionElements", NSMAP)
    if extensions is None:
        extensions = etree.Element(f"{{{BPMN_NS}}}extensionElements")
        task.insert(0, extensions)
    properties = extensions.find("spiffworkflow:properties", NSMAP)
    if properties is None:
        properties = etree.SubElement(extensions, f"{{{SPIFF_NS}}}properties")
    for prop in properties.findall("spiffworkflow:property", NSMAP):
        if prop.get("name") == name:
            properties.remove(prop)
    etree.SubElement(properties, f"{{{SPIFF_NS}}}property", name=name, value=value)


def _set_called_decision(task: Any, decision_id: str) -> None:
    extensions = task.find("bpmn:extensionElements", NSMAP)
    if extensions is None:
        extensions = etree.Element(f"{{{BPMN_NS}}}extensionElements")
        task.insert(0, extensions)
    for called in extensions.findall("spiffworkflow:calledDecisionId", NSMAP):
        extensions.remove(called)
    etree.SubElement(extensions, f"{{{SPIFF_NS}}}calledDecisionId").text = decision_id


def business_rule_tasks(diagram: Diagram) -> list[Any]:
    return list(diagram.tree.getroot().iter(f"{{{BPMN_NS}}}businessRuleTask"))


def decision_ref(task: Any) -> str | None:
    """The decision a business rule task names: ``camunda:decisionRef`` or ``spiffworkflow:calledDecisionId``."""
    ref = task.get(f"{{{CAMUNDA_NS}}}decisionRef")
    if not ref:
        called = task.find("bpmn:extensionElements/spiffworkflow:calledDecisionId", NSMAP)
        ref = (called.text or "").strip() if called is not None else None
    return ref or None


def _decision_problem(task: Any, diagram: Diagram, message: str, code: str) -> DiagramError:
    return DiagramError(
        "unusable decision table",
        [Problem(message, file=diagram.name, line=task.sourceline, element=task.get("id"), code=code)],
    )


def decision_file(task: Any, diagram: Diagram) -> tuple[str, bytes]:
    """The bundle name and content of the ``.dmn`` file defining the task's decision: among the
    bundle's ``.dmn`` files, the one beside the diagram when several define it.

    Raises:
        DiagramError: located at the task when it names no decision, or no single file defines it.
    """
    ref = decision_ref(task)
    if ref is None:
        raise _decision_problem(
            task,
            diagram,
            "the business rule task names no decision (set the decision id, camunda:decisionRef)",
            "decision-missing",
        )
    found = []
    for name in diagram.files.names("*.dmn"):
        content = diagram.files.read(name)
        if content is not None and ref in decision_ids(content):
            found.append((name, content))
    beside = [item for item in found if posixpath.dirname(item[0]) == posixpath.dirname(diagram.location)]
    if len(found) > 1 and len(beside) == 1:
        found = beside
    if not found:
        raise _decision_problem(
            task,
            diagram,
            f"decision {ref!r} is in no .dmn file of the pathway: put its .dmn "
            "file beside the diagram (or in the upload)",
            "decision-missing",
        )
    if len(found) > 1:
        raise _decision_problem(
            task,
            diagram,
            f"decision {ref!r} is defined in several .dmn files: {', '.join(name for name, _ in found)}",
            "decision-ambiguous",
        )
    return found[0]


def decision_display(diagram: Diagram, name: str) -> str:
    """A bundle name as authors read it, beside the diagram's displayed name."""
    if diagram.name.endswith(diagram.location):
        return diagram.name[: len(diagram.name) - len(diagram.location)] + name
    return name


def decision_table(task: Any, diagram: Diagram) -> tuple[str, DecisionTable]:
    """The bundle name of the task's ``.dmn`` file and its decision table, translated.

    Raises:
        DiagramError: the task's problems (:func:`decision_file`), or every problem of the
            ``.dmn`` file, located ``file:line: decision-id``.
    """
    name, content = decision_file(task, diagram)
    tables, problems = read_decisions(content, decision_display(diagram, name))
    ref = str(decision_ref(task))
    if problems or ref not in tables:
        raise DiagramError(
            f"decision table {ref} cannot be used",
            problems
            or [
                Problem(
                    f"decision {ref!r} cannot be read",
                    file=diagram.name,
                    line=task.sourceline,
                    element=task.get("id"),
                    code="decision-table",
                )
            ],
        )
    return name, dataclasses.replace(tables[ref], file=name)


def _spiff_property(task: Any, name: str) -> str | None:
    for prop in task.iterfind("bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NSMAP):
        if prop.get("name") == name:
            return str(prop.get("value"))
    return None


# Camunda form field types -> JSON Schema.
_CAMUNDA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "long": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "enum": {"type": "string"},
}
_CAMUNDA_CONSTRAINTS = {"min": "minimum", "max": "maximum", "minlength": "minLength", "maxlength": "maxLength"}


def form_schema(task: Any, diagram: Diagram) -> dict[str, Any] | None:
    """The JSON Schema of a user task's form, or None when the task has no form.

    Raises:
        DiagramError: naming the file, line and task when the form is unusable.
    """
    file_name = _spiff_property(task, FORM_FILE_PROPERTY)
    if file_name:
        return _schema_from_file(task, diagram, file_name)
    form_data = task.find("bpmn:extensionElements/camunda:formData", NSMAP)
    if form_data is not None:
        return _schema_from_camunda(task, diagram, form_data)
    return None


def form_file_names(diagram: Diagram) -> list[tuple[Any, str]]:
    """Each (task, file name) where a task names a form schema file."""
    xpath = f"bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property[@name='{FORM_FILE_PROPERTY}']"
    found = []
    for task in diagram.tree.getroot().iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
        found += [(task, str(p.get("value"))) for p in task.iterfind(xpath, NSMAP) if p.get("value")]
    return found


def read_form_file(task: Any, diagram: Diagram, file_name: str) -> bytes:
    """The content of a form schema file the task names, from the diagram's bundle only.

    Raises:
        DiagramError: naming file, line and task when the name is unsafe or the bundle lacks it.
            A name outside the bundle reads as missing, whatever exists there.
    """
    name = bundle_name(diagram.location, file_name)
    if name is None:
        problem = (
            f"form schema file {file_name!r} must be a relative name inside the pathway (no absolute paths, no '..')"
        )
    else:
        content = diagram.files.read(name)
        if content is not None:
            return content
        problem = (
            f"form schema file {file_name!r} is not part of the pathway: upload it with the diagram, "
            "or keep it beside the diagram in the pathways folder"
        )
    raise DiagramError(
        "unusable form",
        [Problem(problem, file=diagram.name, line=task.sourceline, element=task.get("id"), code="form-file")],
    )


def _schema_from_file(task: Any, diagram: Diagram, file_name: str) -> dict[str, Any]:
    content = read_form_file(task, diagram, file_name)
    problem = None
    try:
        schema = json.loads(content.decode("utf-8"))
        if not isinstance(schema, dict):
            problem = f"form schema {file_name} is not a JSON object"
    except UnicodeDecodeError:
        problem = f"form schema {file_name} is not UTF-8 text"
    except json.JSONDecodeError as exc:
        problem = f"form schema {file_name} is not valid JSON: {exc.msg} (line {exc.lineno})"
    except RecursionError:
        problem = f"form schema {file_name} nests too deeply"
    if problem:
        raise DiagramError(
            "unusable form",
            [Problem(problem, file=diagram.name, line=task.sourceline, element=task.get("id"), code="form-file")],
        )
    return dict(schema)


def _number(config: str, task: Any, constraint: Any, diagram: Diagram) -> int | float:
    try:
        return float(config) if "." in config else int(config)
    except ValueError:
        raise DiagramError(
            "unusable form",
            [
                Problem(
                    f"constraint {constraint.get('name')!r} needs a number, not {config!r}",
                    file=diagram.name,
                    line=constraint.sourceline,
                    element=task.get("id"),
                    code="form-field",
                )
            ],
        ) from None


def _schema_from_camunda(task: Any, diagram: Diagram, form_data: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for form_field in form_data.iterfind("camunda:formField", NSMAP):
        field_id = form_field.get("id")
        if not field_id:
            raise DiagramError(
                "unusable form",
                [
                    Problem(
                        "form field without an id",
                        file=diagram.name,
                        line=form_field.sourceline,
                        element=task.get("id"),
                        code="form-field",
                    )
                ],
            )
        kind = form_field.get("type", "string")
        prop = dict(_CAMUNDA_TYPES.get(kind, {"type": "string"}))
        if form_field.get("label"):
            prop["title"] = form_field.get("label")
        if kind == "enum":
            prop["enum"] = [v.get("id") for v in form_field.iterfind("camunda:value", NSMAP)]
        for constraint in form_field.iterfind("camunda:validation/camunda:constraint", NSMAP):
            name, config = constraint.get("name"), constraint.get("config")
            if name == "required":
                required.append(field_id)
            elif name in _CAMUNDA_CONSTRAINTS and config is not None:
                prop[_CAMUNDA_CONSTRAINTS[name]] = _number(config, task, constraint, diagram)
        properties[field_id] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema
