"""Checking pathway diagrams before they are deployed (``carepath validate``).

:func:`validate_paths` reads diagram files (or every ``*.bpmn`` below a folder), checks them against
SpiffWorkflow's XSD, lints them, and finally builds each executable process of each top-level file
that passed, so whatever SpiffWorkflow's parser would still reject is reported too. Nothing is
raised for a bad diagram: every finding is a :class:`~engine.errors.Problem` with the author's file,
line and element id, and a stable ``code``:

=====================  ==========================================================================
``xml-syntax``         not well-formed XML
``not-bpmn``           the root element is not ``bpmn:definitions``
``not-found``          a path given does not exist, or a folder holds no ``.bpmn`` file
``xsd``                the XML breaks the BPMN 2.0 / spiffworkflow schema
``form-missing``       a user task without a form (or with a ``camunda:formKey`` form CarePath cannot read)
``form-file``          a form's JSON Schema file is missing or is not a JSON object
``form-field``         a ``camunda:formField`` without an id or with a non-numeric constraint
``gateway-no-default`` an exclusive gateway with several outgoing flows and no default flow
``condition-missing``  a non-default flow out of an exclusive gateway without a condition
``unsafe-expression``  a condition, script, timer or parameter outside the safe expression language
``expression-syntax``  a condition, script, timer or parameter that is not valid syntax at all
``timer-empty``        a timer without a value
``timer-invalid``      a timer value that is not a valid ISO-8601 date, duration or cycle
``unresolved-call``    a call activity calling a process no diagram defines
``unknown-reference``  a message, signal, error or escalation reference naming nothing defined
``service-no-operator`` a service task without ``spiffworkflow:serviceTaskOperator``
``unknown-operator``   a service operator CarePath does not provide (``carepath.rules``, ``.careplan``, ``.referrals``)
``service-parameter``  a service parameter SpiffWorkflow's parser cannot read
``rule-set-missing``   a ``carepath.rules`` task without a ``ruleset`` parameter
``unknown-rule-set``   a ``ruleset`` that is not a name, or names no known rule set
``unsupported``        compensation, link events or complex gateways (SpiffWorkflow cannot run them)
``compile``            anything else SpiffWorkflow's parser rejected while building the pathway
=====================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CarePathError, DiagramError, Problem
from engine.pathways.bundle import BundleFiles, ChainedFiles, FolderFiles
from engine.pathways.diagrams import Diagram, parse_diagram, read_diagram
from engine.pathways.sources import compile_source, source_from_diagrams
from engine.pathways.validation.lint_elements import (
    defined_references,
    lint_call_activities,
    lint_forms,
    lint_gateways,
    lint_references,
    lint_schema,
    lint_service_tasks,
    lint_unsupported,
)
from engine.pathways.validation.lint_text import LintContext, lint_expressions, lint_timers

__all__ = ["format_problems", "validate_paths"]


@dataclass(frozen=True)
class _Input:
    diagram: Diagram
    top_level: bool  # a pathway file, as opposed to a shared sub-pathway in a sub-folder


def validate_paths(
    paths: Sequence[Path],
    *,
    pathways_root: Path | None = None,
    known_rule_sets: Collection[str] | None = None,
) -> list[Problem]:
    """Every problem in the diagrams at ``paths`` (files, or folders searched for ``*.bpmn``).

    ``pathways_root`` is the pathway library: call activities may call processes defined there.
    ``known_rule_sets``, when given, are the rule set names ``carepath.rules`` tasks may name.
    Problems are grouped by file in input order, and by line within a file.

    Raises:
        Nothing for bad diagrams (they are reported as problems); OSError only if a folder cannot
        be listed.
    """
    problems: list[Problem] = []
    order: dict[str, int] = {}  # file -> position among the inputs, to report file by file
    library_files = FolderFiles(pathways_root) if pathways_root is not None and pathways_root.is_dir() else None
    inputs = _read_inputs(paths, problems, order, library_files)
    library = _library_diagrams(library_files, {d.diagram.path.resolve() for d in inputs if d.diagram.path})
    everything = [*library, *(i.diagram for i in inputs)]
    known_processes = {pid for d in everything for pid in d.process_ids}
    # SpiffWorkflow's parser shares messages, signals... across all files of a pathway.
    known_references: dict[str, set[str]] = {}
    for diagram in everything:
        for kind, ids in defined_references(diagram.tree.getroot()).items():
            known_references.setdefault(kind, set()).update(ids)
    failed: set[str] = set()
    for item in inputs:
        found = _lint(item.diagram, known_processes, known_references, known_rule_sets)
        if found:
            failed.add(item.diagram.name)
        problems += found
    for item in inputs:
        if item.top_level and item.diagram.name not in failed:
            problems += _compile_problems(item.diagram, [i.diagram for i in inputs], library, failed)
    return sorted(problems, key=lambda p: (order.get(p.file or "", len(order)), p.line or 0))


def format_problems(problems: Iterable[Problem]) -> str:
    """One ``file:line: element-id: message`` line per problem (no trailing newline)."""
    return "\n".join(str(dataclasses.replace(p, column=None)) for p in problems)


def _read_inputs(paths: Sequence[Path], problems: list[Problem], order: dict[str, int],
                 library_files: FolderFiles | None) -> list[_Input]:
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


def _library_diagrams(library: FolderFiles | None, exclude: set[Path]) -> list[Diagram]:
    """The library's readable diagrams, for resolving call activities (they are not linted here)."""
    if library is None:
        return []
    diagrams = []
    for name in library.names("*.bpmn"):
        if (library.root / name).resolve() in exclude:
            continue
        try:
            diagrams.append(read_diagram(library, name, _shown(library.root / name)))
        except (DiagramError, OSError):
            continue  # a broken library file is reported when it is itself validated
    return diagrams


def _shown(path: Path) -> str:
    """A path as authors read it: relative to the working folder when below it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _lint(
    diagram: Diagram,
    known_processes: Collection[str],
    known_references: dict[str, set[str]],
    known_rule_sets: Collection[str] | None,
) -> list[Problem]:
    ctx = LintContext(diagram.name, diagram.tree.getroot())
    problems = [
        *lint_schema(ctx, diagram.tree),
        *lint_unsupported(ctx),
        *lint_forms(ctx, diagram),
        *lint_gateways(ctx),
        *lint_expressions(ctx),
        *lint_timers(ctx),
        *lint_call_activities(ctx, known_processes),
        *lint_references(ctx, known_references),
        *lint_service_tasks(ctx, known_rule_sets),
    ]
    return problems


def _compile_problems(
    main: Diagram, inputs: list[Diagram], library: list[Diagram], failed: set[str]
) -> list[Problem]:
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
            compile_source(source)
        except CarePathError as exc:
            found = exc.problems or [Problem(exc.message)]
            problems += [_located(p, shown, main) for p in found]
        except Exception as exc:  # noqa: BLE001 - SpiffWorkflow's parser raises KeyError, AttributeError...
            message = f"SpiffWorkflow cannot build pathway {pathway_id}: {type(exc).__name__}: {exc}"
            problems.append(Problem(message, file=main.name, code="compile"))
    return problems


def _located(problem: Problem, shown: dict[str, Diagram], main: Diagram) -> Problem:
    """A compile problem with the author's file name, and a line when SpiffWorkflow gave none."""
    origin = shown.get(problem.file or "", main)
    line = problem.line
    if line is None and problem.element:
        # ValidationException reads node.line_number, which lxml elements do not have (they have
        # sourceline), so the parser's problems come without a line: look the element up.
        nodes = origin.tree.xpath("//*[@id=$id]", id=problem.element)
        line = nodes[0].sourceline if nodes else None
    return dataclasses.replace(problem, file=origin.name, line=line, code=problem.code or "compile")
