"""Checking pathway diagrams: the one gate every diagram passes before it is deployed.

:func:`validate_paths` (``carepath validate``) reads diagram files (or every ``*.bpmn`` below a
folder); :func:`validate_upload` takes uploaded files. Both check the diagrams against SpiffWorkflow's
XSD, lint them, and finally build each executable process of each top-level file that has no error,
so whatever SpiffWorkflow's parser would still reject is reported too. Deploying runs the same
checks (:class:`~engine.pathways.versions.PathwayCatalog`: the pathways folder through
:func:`validate_paths`, an upload through :func:`validate_upload`), so what validates deploys and
what is refused at deploy was refused at validate, with the same messages.

Nothing is raised for a bad diagram: every finding is a :class:`~engine.errors.Problem` with the
author's file, line and element id, a stable ``code`` and a severity. Errors stop a deploy;
warnings (marked *w* below) are reported and the diagram is deployed.

=========================  ======================================================================
``xml-syntax``             not well-formed XML
``encoding``               not UTF-8 text (another declared encoding, UTF-16, or bytes that are not UTF-8)
``dtd``                    a document type declaration (it may declare entities that expand without bound)
``not-bpmn``               the root element is not ``bpmn:definitions``
``not-found``              a path given does not exist, or a folder holds no ``.bpmn`` file
``file-name``              an uploaded file name that is not a plain relative ``*.bpmn`` / ``*.json`` /
                           ``*.dmn`` name
``xsd``                    the XML breaks the BPMN 2.0 / spiffworkflow schema (layout attributes a
                           modeller adds to diagram-interchange elements are dropped first)
``no-executable-process``  a pathway file (top level) without a process SpiffWorkflow would run
``executable-implied``     *w* a process without ``isExecutable``: run as a pathway, as SpiffWorkflow does
``too-long``               an id or name longer than the database keeps (ids 200, process names 300)
``pathway-id``             an executable process id that cannot name a pathway (letters, digits, ``_ . -``)
``form-missing``           *w* a user task without a form CarePath can read (none, or a ``camunda:formKey``):
                           it runs as a confirmation step that accepts no data
``form-file``              a form's JSON Schema file is missing or is not a JSON object
``form-schema``            a form that is not a valid JSON Schema (draft 2020-12, as task data is checked), or
                           that requires a field it does not declare in ``properties`` (the task could never
                           be completed)
``form-field``             a ``camunda:formField`` without an id or with a non-numeric constraint; a form
                           field key (a form file's property, nested ones too, or a formField id) that is
                           not an identifier (letters, digits, ``_``, not starting with a digit, at most
                           64 characters): it names the field in the web form's HTML
``gateway-no-default``     an exclusive gateway with several outgoing flows and no default flow (*w* when
                           every flow has a condition: the author may have covered every case)
``condition-missing``      a non-default flow out of an exclusive gateway without a condition
``unsafe-expression``      a condition, script, timer, parameter, loop, correlation or payload expression
                           outside the safe expression language; a decision table's cell that is not a
                           FEEL unary test or expression CarePath translates (``docs/decisions.md``)
``expression-syntax``      one of those that is not valid syntax at all
``expression-too-large``   one of those with a part made of constants alone that the evaluator's size limits
                           refuse whenever it runs (``10**10**10``, ``'a' * 10**9``: an exponent over 1000, a
                           number over 10,000 bits, a result over 100,000 items or characters)
``script-format``          a script or condition in another language (``scriptFormat`` javascript, groovy...,
                           a condition's ``language``, Camunda 8's FEEL: ``=...``, ``zeebe:script``)
``script-empty``           a script task without a script
``timer-empty``            a timer without a value
``timer-invalid``          a timer value that is not a valid ISO-8601 date, duration or cycle, or a constant
                           that is not text (``28``: write ``"P28D"``)
``timer-cron``             a cron ``timeCycle`` (Quartz, as Camunda runs it)
``timer-bounds``           a timer out of bounds: a repeating period under a minute, repetitions without
                           end or over 1,000, a span over a hundred years, a date outside 1900-2199
``unresolved-call``        a call activity calling a process no diagram defines, or one that is not executable
``call-cycle``             a call activity that leads back to its own process (a pathway calling itself)
``unknown-reference``      a message, signal, error or escalation reference naming nothing defined; a sequence
                           flow's ``sourceRef`` / ``targetRef`` or a boundary event's ``attachedToRef`` naming no
                           element of its process or sub-process (a boundary event attached to nothing was
                           dropped silently); a ``default`` naming no flow that leaves its gateway
``unconnected``            *w* an element no sequence flow reaches (other than a start event, a boundary event
                           or an event sub-process), or that none leaves (other than an end event)
``unset-variable``         *w* a condition reading a name no form, start data schema, script, service result,
                           decision or data object of the pathway sets (not checked for a pathway without a
                           start data schema: its start data may hold anything)
``service-no-operator``    a service task without ``spiffworkflow:serviceTaskOperator`` (saying so when it
                           has a Java class, delegate or expression, an external topic or a connector)
``unknown-operator``       *w* a service operator this server does not provide (the built-in ones are
                           ``carepath.rules``, ``.careplan``, ``.referrals``...; a deployment may add its own)
``service-parameter``      a service parameter SpiffWorkflow's parser cannot read
``rule-set-missing``       a ``carepath.rules`` task without a ``ruleset`` parameter
``unknown-rule-set``       a ``ruleset`` that is not a name, or names no known rule set
``decision-missing``       a business rule task that names no decision, or one no ``.dmn`` file of the
                           bundle (or the pathways folder) defines
``decision-ambiguous``     a decision defined in several ``.dmn`` files, none of them beside the diagram
``decision-table``         a decision table CarePath does not run: a hit policy or aggregation outside
                           UNIQUE, FIRST, PRIORITY, ANY, COLLECT (SUM, MIN, MAX, COUNT), RULE ORDER, OUTPUT
                           ORDER; a decision that is not a table or requires others; more than one
                           decision in a file; an output without a variable name; a rule whose entries
                           do not fit the columns (located in the ``.dmn`` file, at the decision id)
``decision-result``        *w* ``camunda:resultVariable`` / ``mapDecisionResult`` on a business rule task: not
                           used (outputs are set by their column names)
``not-dmn``                a ``.dmn`` file that is not DMN 1.1, 1.2 or 1.3
``data-store``             a data store (CarePath keeps a pathway's data in its task data)
``listener``               a Camunda execution or task listener (Java or script code, or a Camunda 8 job,
                           run on an event, which would be skipped silently)
``io-mapping``             Camunda input/output mappings (``camunda:inputOutput``, ``zeebe:ioMapping``), which
                           would be skipped silently
``unsupported``            compensation, link events or complex gateways (SpiffWorkflow cannot run them)
``start-schema-missing``   *w* a pathway file without ``<name>.start.schema.json`` beside it: any start data
                           is accepted (engine.pathways.start_schema)
``start-schema``           a start data schema that is not JSON, not a valid JSON Schema or not of an object
``sequence-too-long``      a chain of elements too long for SpiffWorkflow's parser, which follows each flow
                           by calling itself (a chain of 600 tasks ran out of depth): located at the element
                           where it gave up
``compile``                anything else SpiffWorkflow's parser rejected while building the pathway, or a
                           part of it SpiffWorkflow cannot store (located at the element the parser was
                           reading or that cannot be stored, else at the process)
=========================  ======================================================================

A file given alone may call the diagrams in its folder tree, and the library's (``pathways_root``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from engine.decisions import decision_ids
from engine.errors import WARNING, CarePathError, DiagramError, Problem
from engine.files import MAX_YAML_BYTES, FileRefusedError, read_regular_file
from engine.pathways.bundle import BundleFiles, ChainedFiles, FolderFiles, MemoryFiles, bundle_name
from engine.pathways.diagrams import (
    CAMUNDA_NS,
    NSMAP,
    Diagram,
    business_rule_tasks,
    decision_display,
    decision_table,
    parse_diagram,
    read_diagram,
)
from engine.pathways.sources import CompiledPathway, compile_source, source_from_diagrams
from engine.pathways.start_schema import parse_start_schema, start_schema_name, start_schema_problems
from engine.pathways.validation.lint_elements import (
    KNOWN_OPERATORS,
    call_graph,
    defined_references,
    lint_call_activities,
    lint_call_cycles,
    lint_executable,
    lint_flow_references,
    lint_forms,
    lint_gateways,
    lint_identifiers,
    lint_references,
    lint_schema,
    lint_service_tasks,
    lint_unconnected,
    lint_unset_names,
    lint_unsupported,
    provided_names,
)
from engine.pathways.validation.lint_text import LintContext, lint_expressions, lint_timers
from engine.spiff import serializer

__all__ = [
    "KNOWN_OPERATORS",
    "errors_in",
    "format_problems",
    "rule_set_names",
    "upload_name_problems",
    "validate_paths",
    "validate_upload",
]

# Rule files are read at every deploy: the C parser when PyYAML has it (a tenth of the time).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Upload names: relative, no '..', a diagram or a form schema; main_file is a 300-character column.
MAX_FILE_NAME = 300


@dataclass(frozen=True)
class _Input:
    diagram: Diagram
    top_level: bool  # a pathway file, as opposed to a shared sub-pathway in a sub-folder


@dataclass(frozen=True)
class _Knowledge:
    """What the server knows besides the diagrams: rule set names (None: unknown, not checked) and
    the service operators it runs."""

    rule_sets: Collection[str] | None
    operators: Collection[str]


def validate_paths(
    paths: Sequence[Path],
    *,
    pathways_root: Path | None = None,
    known_rule_sets: Collection[str] | None = None,
    known_operators: Collection[str] = KNOWN_OPERATORS,
) -> list[Problem]:
    """Every problem in the diagrams at ``paths`` (files, or folders searched for ``*.bpmn``).

    ``pathways_root`` is the pathway library: call activities may call processes defined there.
    ``known_rule_sets``, when given, are the rule set names ``carepath.rules`` tasks may name;
    ``known_operators`` the service operators the server runs.
    Problems are grouped by file in input order, and by line within a file.

    Raises:
        Nothing for bad diagrams (they are reported as problems); OSError only if a folder cannot
        be listed.
    """
    problems: list[Problem] = []
    order: dict[str, int] = {}  # file -> position among the inputs, to report file by file
    library_files = FolderFiles(pathways_root) if pathways_root is not None and pathways_root.is_dir() else None
    inputs = _read_inputs(paths, problems, order, library_files)
    exclude = {d.diagram.path.resolve() for d in inputs if d.diagram.path}
    library = [
        d for d in library_diagrams(library_files, display=_shown) if d.path is None or d.path.resolve() not in exclude
    ]
    exclude |= {d.path.resolve() for d in library if d.path}  # a library file is the library's, not a neighbour
    # A file given alone may call the diagrams beside it and below (its folder tree), as its pathway would.
    neighbours: list[Diagram] = []
    for folder in dict.fromkeys(path.parent.resolve() for path in paths if path.is_file()):
        for diagram in library_diagrams(FolderFiles(folder), display=_shown):
            if diagram.path is not None and diagram.path.resolve() not in exclude:
                exclude.add(diagram.path.resolve())
                neighbours.append(diagram)
    problems += _check(inputs, library, _Knowledge(known_rule_sets, known_operators), neighbours)
    return _in_order(problems, order)


def validate_upload(
    files: Mapping[str, bytes],
    *,
    pathways_root: Path | None = None,
    known_rule_sets: Collection[str] | None = None,
    known_operators: Collection[str] = KNOWN_OPERATORS,
) -> list[Problem]:
    """Every problem in uploaded files (name -> content), as :func:`validate_paths` finds them.

    The files the diagrams name resolve inside the upload, then in the library at ``pathways_root``;
    call activities may call the library's processes (an uploaded file replaces the library's file
    of the same name). Top-level names (no ``/``) are pathway files.

    Raises:
        Nothing: bad names and bad diagrams are reported as problems.
    """
    problems = upload_name_problems(files)
    order = {name: index for index, name in enumerate(files)}
    if problems:
        return _in_order(problems, order)
    library_files = FolderFiles(pathways_root) if pathways_root is not None and pathways_root.is_dir() else None
    bundle: BundleFiles = (
        MemoryFiles(files) if library_files is None else ChainedFiles(MemoryFiles(files), library_files)
    )
    inputs = []
    for name, content in files.items():
        if name.endswith(".bpmn"):
            try:
                inputs.append(_Input(parse_diagram(content, name, bundle), "/" not in name))
            except DiagramError as exc:
                problems += exc.problems
    library = [d for d in library_diagrams(library_files) if d.name not in files]
    problems += _check(inputs, library, _Knowledge(known_rule_sets, known_operators))
    return _in_order(problems, order)


def upload_name_problems(files: Mapping[str, bytes]) -> list[Problem]:
    """Problems with the names of uploaded files: none at all, no diagram, or an unsafe name."""
    if not any(name.endswith(".bpmn") for name in files):
        return [Problem("an upload needs at least one .bpmn diagram", file=next(iter(files), None), code="not-found")]
    problems = []
    for name in files:
        if (
            not name.endswith((".bpmn", ".json", ".dmn"))
            or ".." in name.split("/")
            or name.startswith("/")
            or "\\" in name
            or len(name) > MAX_FILE_NAME
        ):
            problems.append(
                Problem(
                    f"must be a relative .bpmn, .json or .dmn name of at most {MAX_FILE_NAME} "
                    "characters (no '..', no absolute path)",
                    file=name,
                    code="file-name",
                )
            )
    return problems


def errors_in(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that refuse a diagram (not the warnings)."""
    return [p for p in problems if p.is_error]


def format_problems(problems: Iterable[Problem]) -> str:
    """One ``file:line: element-id: message`` line per problem (``warning: `` before a warning's
    message; no trailing newline)."""
    return "\n".join(str(dataclasses.replace(p, column=None)) for p in problems)


def rule_set_names(rules_dir: Path) -> set[str] | None:
    """The rule set names declared in ``rules_dir/*.yaml`` (each file's ``ruleset:``), which
    ``carepath.rules`` tasks may name. A file with mistakes still names its rule set (its mistakes
    are the rule checks' to report); None when the folder does not exist ("unknown: not checked")."""
    if not rules_dir.is_dir():
        return None
    names: set[str] = set()
    for path in sorted(rules_dir.glob("*.yaml")):
        name = _declared_rule_set(path)
        if name is not None:
            names.add(name)
    return names


# Rule file -> (its stat signature, the rule set it declares): every deploy asks, few files change.
_DECLARED: dict[Path, tuple[tuple[int, int], str | None]] = {}


def _declared_rule_set(path: Path) -> str | None:
    try:
        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        known = _DECLARED.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        data = yaml.load(read_regular_file(path, MAX_YAML_BYTES).decode("utf-8"), Loader=_YAML_LOADER)
    except (OSError, FileRefusedError, UnicodeDecodeError, yaml.YAMLError, ValueError, OverflowError):
        # ValueError / OverflowError: a value PyYAML cannot build (2026-02-30); the rule checks report it.
        return None
    name = data["ruleset"] if isinstance(data, dict) and isinstance(data.get("ruleset"), str) else None
    _DECLARED[path] = (signature, name)
    return name


def library_diagrams(library: FolderFiles | None, display: Any = None) -> list[Diagram]:
    """The library's readable diagrams, for resolving call activities (a broken library file is
    reported when it is itself validated). ``display`` turns a file's path into the name shown."""
    if library is None:
        return []
    diagrams = []
    for name in library.names("*.bpmn"):
        try:
            shown = display(library.root / name) if display is not None else None
            diagrams.append(read_diagram(library, name, shown))
        except (DiagramError, OSError):
            continue
    return diagrams


def _in_order(problems: list[Problem], order: dict[str, int]) -> list[Problem]:
    return sorted(problems, key=lambda p: (order.get(p.file or "", len(order)), p.line or 0))


def _read_inputs(
    paths: Sequence[Path], problems: list[Problem], order: dict[str, int], library_files: FolderFiles | None
) -> list[_Input]:
    """The diagrams at ``paths``. A folder is a bundle: the files its diagrams name resolve inside it
    (then in the library), as at deploy; a single file's bundle is its own folder."""
    inputs: list[_Input] = []
    seen: set[Path] = set()
    for path in paths:
        order.setdefault(str(path), len(order))
        if path.is_dir():
            folder = FolderFiles(path)
            names = list(folder.names("*.bpmn"))
            if not names:
                problems.append(Problem("no .bpmn diagrams in this folder", file=str(path), code="not-found"))
            candidates = [(folder, name, "/" not in name) for name in names]
        elif path.is_file():
            candidates = [(FolderFiles(path.parent), path.name, True)]
        else:
            problems.append(Problem("no such file or folder", file=str(path), code="not-found"))
            continue
        for folder, name, top_level in candidates:
            file = folder.root / name
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            order[str(file)] = len(order)
            files: BundleFiles = folder if library_files is None else ChainedFiles(folder, library_files)
            try:
                inputs.append(_Input(read_diagram(folder, name, str(file), files), top_level))
            except DiagramError as exc:
                problems += exc.problems
            except OSError as exc:
                problems.append(Problem(f"cannot read: {exc.strerror}", file=str(file), code="not-found"))
    return inputs


def _shown(path: Path) -> str:
    """A path as authors read it: relative to the working folder when below it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _check(
    inputs: list[_Input], library: list[Diagram], knowledge: _Knowledge, neighbours: Sequence[Diagram] = ()
) -> list[Problem]:
    """Lint every input, then build the pathways of the top-level inputs without errors.

    ``library`` and ``neighbours`` (the diagrams beside a file given alone) may be called; the
    library's messages, signals... may also be named (SpiffWorkflow's parser shares them across every
    file it is given), a neighbour's not: it belongs to the pathway only if it is called.
    """
    everything = [*library, *neighbours, *(i.diagram for i in inputs)]
    processes = {pid for d in everything for pid in d.process_ids}
    executable = {pid for d in everything for pid in d.executable_process_ids}
    calls = call_graph(everything)
    # The neighbours a pathway calls are part of it (deploying its bundle checks them): check them too.
    called = [_Input(d, False) for d in _called_neighbours([i.diagram for i in inputs], neighbours, calls)]
    references: dict[str, set[str]] = {}
    for diagram in [*library, *(i.diagram for i in [*inputs, *called])]:
        for kind, ids in defined_references(diagram.tree.getroot()).items():
            references.setdefault(kind, set()).update(ids)
    called_ids = {pid for d in everything for pid in d.called_elements.values()}
    # Names a condition may read: set anywhere in the pathways involved (called ones share their data).
    provided = {name for d in [*everything, *(i.diagram for i in called)] for name in provided_names(d)}
    start_fields = {d.name: _start_fields(d) for d in [*everything, *(i.diagram for i in called)]}
    provided |= {name for fields in start_fields.values() for name in fields or ()}
    problems: list[Problem] = []
    failed: set[str] = set()
    for item in [*inputs, *called]:
        ctx = LintContext(item.diagram.name, item.diagram.tree.getroot())
        found = [
            *lint_schema(ctx, item.diagram.tree),
            *lint_unsupported(ctx),
            *lint_identifiers(ctx),
            *lint_executable(ctx, item.top_level),
            *lint_forms(ctx, item.diagram),
            *lint_gateways(ctx),
            *lint_expressions(ctx),
            *lint_timers(ctx),
            *lint_call_activities(ctx, processes, executable),
            *lint_call_cycles(ctx, calls),
            *lint_references(ctx, references),
            *lint_flow_references(ctx),
            *lint_unconnected(ctx),
            *lint_service_tasks(ctx, knowledge.rule_sets, knowledge.operators),
            *(
                start_schema_problems(item.diagram)
                if item.top_level and _started_alone(item.diagram, called_ids)
                else []
            ),
            *_lint_decisions(item.diagram),
            # A pathway without a start data schema accepts any start data: any name may be set.
            *(lint_unset_names(ctx, provided) if not item.top_level or start_fields[item.diagram.name] else []),
        ]
        if errors_in(found):
            failed.add(item.diagram.name)
        problems += found
    for item in inputs:
        if item.top_level and item.diagram.name not in failed:
            problems += _compile_problems(item.diagram, [i.diagram for i in inputs], [*library, *neighbours], failed)
    return problems


def _start_fields(diagram: Diagram) -> set[str] | None:
    """The fields of a diagram's start data schema (beside it), or None when it has no usable one."""
    name = bundle_name(diagram.location, start_schema_name(diagram.location.rsplit("/", 1)[-1]))
    content = diagram.files.read(name) if name is not None else None
    if content is None:
        return None
    schema, _ = parse_start_schema(content, name or "")
    properties = schema.get("properties") if schema else None
    return {str(key) for key in properties} if isinstance(properties, dict) else None


def _started_alone(diagram: Diagram, called: set[str]) -> bool:
    """The diagram has a pathway that is started by itself, not only called by another (a shared
    sub-pathway gets its data from its caller, so it needs no start data schema)."""
    return any(pid not in called for pid in diagram.executable_process_ids)


def _lint_decisions(diagram: Diagram) -> list[Problem]:
    """Each business rule task's decision: named, in one .dmn file of the bundle, and every cell of
    its table translatable to the safe language (problems located in the .dmn file)."""
    problems: dict[str, Problem] = {}
    for task in business_rule_tasks(diagram):
        mapped = [name for name in ("resultVariable", "mapDecisionResult") if task.get(f"{{{CAMUNDA_NS}}}{name}")]
        if mapped:
            warning = Problem(
                f"camunda:{mapped[0]} is not used: the outputs are set in the task data by their column names",
                file=diagram.name,
                line=task.sourceline,
                element=task.get("id"),
                code="decision-result",
                severity=WARNING,
            )
            problems[str(warning)] = warning
        try:
            decision_table(task, diagram)
        except DiagramError as exc:
            problems.update((str(p), p) for p in exc.problems)
    return list(problems.values())


def _called_neighbours(
    inputs: Sequence[Diagram], neighbours: Sequence[Diagram], calls: Mapping[str, Collection[str]]
) -> list[Diagram]:
    """The neighbours defining a process the inputs call, directly or through one another (a process
    an input defines is the input's, not a neighbour's), in the neighbours' order."""
    own = {pid for diagram in inputs for pid in diagram.process_ids}
    defines = {pid: diagram for diagram in neighbours for pid in diagram.process_ids}
    wanted, seen = sorted(own), set(own)
    chosen: set[int] = set()
    while wanted:
        for callee in calls.get(wanted.pop(), ()):
            if callee in seen:
                continue
            seen.add(callee)
            wanted.append(callee)
            if callee in defines:
                chosen.add(id(defines[callee]))
    return [diagram for diagram in neighbours if id(diagram) in chosen]


def _compile_problems(main: Diagram, inputs: list[Diagram], library: list[Diagram], failed: set[str]) -> list[Problem]:
    """Build every executable process of ``main`` the way deployment does, and report what fails.

    source_from_diagrams treats names without a '/' as top-level pathway files, and compile_source
    writes each file under its name: so the file being checked is named by its base name and every
    other diagram gets a unique folder. Inputs come last so that they win over a library copy of the
    same process (an author editing a library pathway outside the library).
    """
    shown: dict[str, Diagram] = {}
    renamed: list[Diagram] = []
    for index, diagram in enumerate([*library, *inputs]):
        base = diagram.location.rsplit("/", 1)[-1]
        name = base if diagram is main else f"{index}/{base}"
        shown[name] = diagram
        renamed.append(parse_diagram(diagram.content, name, diagram.files, location=diagram.location))
    problems: list[Problem] = []
    for pathway_id in main.executable_process_ids:
        try:
            source = source_from_diagrams(pathway_id, renamed)
            if any(name in shown and shown[name].name in failed for name in source.files):
                continue  # a diagram it calls has problems of its own, already reported
            problems += _storage_problems(compile_source(source), shown, main, pathway_id)
        except CarePathError as exc:
            found = exc.problems or [Problem(exc.message)]
            if _caused_by(exc, RecursionError):
                found = [dataclasses.replace(found[0], message=_TOO_LONG, code="sequence-too-long")]
            else:
                found = [dataclasses.replace(p, message=_plain(p.message)) for p in found]
            where = _parser_location(exc)
            problems += [_located(p, shown, main, pathway_id, where) for p in found]
        except RecursionError as exc:
            problem = Problem(_TOO_LONG, code="sequence-too-long")
            problems.append(_located(problem, shown, main, pathway_id, _parser_location(exc)))
        except Exception as exc:  # noqa: BLE001 - SpiffWorkflow's parser raises KeyError, AttributeError...
            message = f"SpiffWorkflow cannot build pathway {pathway_id}: {type(exc).__name__}: {exc}"
            problems.append(_located(Problem(message), shown, main, pathway_id, _parser_location(exc)))
    return problems


# SpiffWorkflow's parser follows each sequence flow by calling itself, so a long enough chain of
# elements exhausts Python's recursion limit (a chain of 600 tasks did; 300 did not).
_TOO_LONG = (
    "too many elements in sequence: SpiffWorkflow reads a chain of elements one inside another and "
    "ran out of depth at this element (several hundred in a row); split the pathway into "
    "sub-pathways (call activities) or loop back instead of repeating steps"
)
# The parser reports an unexpected exception as its repr: KeyError('type').
_REPR = re.compile(r"([A-Za-z]+(?:Error|Exception))\((.*)\)\.?", re.DOTALL)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _plain(message: str) -> str:
    """SpiffWorkflow's repr of an exception it did not expect (``KeyError('type').``) as a sentence."""
    match = _REPR.fullmatch(message.strip())
    if match is None:
        return message
    detail = match.group(2).strip().strip("'\"")
    return f"SpiffWorkflow's parser failed at this element ({match.group(1)}{': ' + detail if detail else ''})"


def _storage_problems(
    compiled: CompiledPathway, shown: dict[str, Diagram], main: Diagram, pathway_id: str
) -> list[Problem]:
    """Deploying stores the built specs as JSON (engine.spiff.serializer); a part SpiffWorkflow
    cannot store (found by the third-party census: an ad-hoc subprocess's data objects) failed there
    with an unmapped TypeError after this gate had passed it. Store each part here, and report the
    first that fails at its element (a subprocess spec is named by its element's id)."""
    for name, spec in {pathway_id: compiled.spec, **compiled.subprocess_specs}.items():
        try:
            serializer.serialize_specs(spec, {})
        except (TypeError, ValueError) as exc:
            message = f"SpiffWorkflow cannot store this part of pathway {pathway_id} ({type(exc).__name__}: {exc})"
            return [_located(Problem(message, element=name, code="compile"), shown, main, pathway_id, (None, None))]
    return []


def _parser_location(exc: BaseException) -> tuple[str | None, Any]:
    """(file, XML node) of the element SpiffWorkflow's parser was reading when it failed: the
    innermost parser frame (its ``self`` has the ``node`` and ``filename`` being parsed)."""
    found: tuple[str | None, Any] = (None, None)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame: TracebackType | None = current.__traceback__
        while frame is not None:
            owner = frame.tb_frame.f_locals.get("self")
            node = getattr(owner, "node", None)
            if node is not None and hasattr(node, "sourceline") and hasattr(owner, "filename"):
                found = (getattr(owner, "filename", None), node)
            frame = frame.tb_next
        current = current.__cause__ or current.__context__
    return found


def _located(
    problem: Problem, shown: dict[str, Diagram], main: Diagram, pathway_id: str, where: tuple[str | None, Any]
) -> Problem:
    """A compile problem with the author's file name, and a line and element when SpiffWorkflow gave
    none: the element it names, else the element its parser was reading, else the pathway's process."""
    file, node = where
    if (problem.file or "").endswith(".dmn"):  # the DMN schema, checked by SpiffWorkflow's parser
        content = main.files.read(str(problem.file))
        decisions = decision_ids(content) if content is not None else []
        return dataclasses.replace(
            problem,
            file=decision_display(main, str(problem.file)),
            element=problem.element or (decisions[0] if decisions else None),
            code=problem.code or "compile",
        )
    origin = shown.get(problem.file or "") or (shown.get(file or "") if node is not None else None) or main
    line, element = problem.line, problem.element
    if line is None and element:
        # ValidationException reads node.line_number, which lxml elements do not have (they have
        # sourceline), so the parser's problems come without a line: look the element up.
        nodes = origin.tree.xpath("//*[@id=$id]", id=element)
        line = nodes[0].sourceline if nodes else None
    if line is None and node is not None and origin is shown.get(file or ""):
        line = node.sourceline  # the prepared copy keeps the author's lines
        element = element or _owner_id(node)
    if line is None:
        root = origin.tree.getroot()
        process = next((p for p in root.iterfind("bpmn:process", NSMAP) if p.get("id") == pathway_id), root)
        line, element = process.sourceline, element or process.get("id")
    return dataclasses.replace(problem, file=origin.name, line=line, element=element, code=problem.code or "compile")


def _owner_id(node: Any) -> str | None:
    while node is not None:
        if node.get("id"):
            return str(node.get("id"))
        node = node.getparent()
    return None
