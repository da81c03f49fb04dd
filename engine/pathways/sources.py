"""Pathway sources, versions and compiled specs.

A *pathway* is an executable BPMN process in a top-level file of the pathways folder (one per
diagnosis); shared sub-pathways live in sub-folders and are reached through call activities.
A pathway's *version* is the SHA-256 of every file it is built from: its own diagram, each diagram
it calls (transitively), the form schema files and decision tables (.dmn) they name, and its start
data schema (``<name>.start.schema.json`` beside its file, :mod:`engine.pathways.start_schema`).
Changing a shared sub-pathway therefore gives every pathway that calls it a new version, and a running
instance keeps the exact diagrams it started on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from engine.errors import DiagramError, NotFoundError, Problem, translate_workflow_errors
from engine.pathways.bundle import FolderFiles, MemoryFiles, bundle_name
from engine.pathways.diagrams import (
    NSMAP,
    Diagram,
    business_rule_tasks,
    decision_file,
    decision_ref,
    form_file_names,
    parse_diagram,
    prepare_for_engine,
    read_diagram,
    read_form_file,
)
from engine.pathways.start_schema import start_schema_name

# SpiffWorkflow's XSD validator is one process-wide lxml schema whose error log is shared state.
XSD_LOCK = threading.Lock()

__all__ = [
    "XSD_LOCK",
    "BundleSurvey",
    "CompiledPathway",
    "PathwayLibrary",
    "PathwaySource",
    "compile_source",
    "survey_bundle",
    "version_of",
]


@dataclass(frozen=True)
class PathwaySource:
    """Everything a pathway version is built from."""

    pathway_id: str
    main_file: str
    files: dict[str, bytes]  # name relative to the pathways folder -> content

    @property
    def version(self) -> str:
        return version_of(self.files)

    @property
    def start_schema(self) -> str | None:
        """The text of the pathway's start data schema (``<name>.start.schema.json``), if it has one."""
        content = self.files.get(start_schema_name(self.main_file))
        return content.decode("utf-8") if content is not None else None

    @property
    def title(self) -> str:
        diagram = parse_diagram(self.files[self.main_file], self.main_file)
        for process in diagram.tree.getroot().iterfind("bpmn:process", NSMAP):
            if process.get("id") == self.pathway_id:
                return str(process.get("name") or self.pathway_id)
        return self.pathway_id


@dataclass(frozen=True)
class CompiledPathway:
    """A parsed pathway version, ready to start instances (cached per version)."""

    pathway_id: str
    version: str
    spec: Any
    subprocess_specs: dict[str, Any]


def version_of(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


class PathwayLibrary:
    """The diagrams in a pathways folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = FolderFiles(root)

    def diagrams(self) -> list[Diagram]:
        """Read every diagram.

        Raises:
            DiagramError: listing every unreadable file.
        """
        diagrams, problems = [], []
        for name in self.files.names("*.bpmn"):
            try:
                diagrams.append(read_diagram(self.files, name))
            except DiagramError as exc:
                problems.extend(exc.problems)
        if problems:
            raise DiagramError("some diagrams cannot be read", problems)
        return diagrams

    def pathway_ids(self) -> list[str]:
        return sorted(pid for d in self.diagrams() if "/" not in d.name for pid in d.executable_process_ids)

    def source(self, pathway_id: str) -> PathwaySource:
        """Collect the files a pathway is built from.

        Raises:
            NotFoundError: if no top-level diagram defines the pathway.
            DiagramError: if a call activity names a process no diagram defines.
        """
        diagrams = self.diagrams()
        return source_from_diagrams(pathway_id, diagrams)


def source_from_diagrams(pathway_id: str, diagrams: list[Diagram]) -> PathwaySource:
    """The files a pathway needs, from a set of diagrams (a folder, or an upload plus the library).

    Raises:
        NotFoundError: if no top-level diagram defines the pathway.
        DiagramError: if a call activity names a process no diagram defines.
    """
    by_process = {pid: d for d in diagrams for pid in d.process_ids}
    main = next((d for d in diagrams if pathway_id in d.executable_process_ids and "/" not in d.name), None)
    if main is None:
        raise NotFoundError(f"no pathway {pathway_id!r}")
    files: dict[str, bytes] = {}
    # The start contract beside the pathway file is part of its version (engine.pathways.start_schema).
    schema_name = bundle_name(main.location, start_schema_name(main.location.rsplit("/", 1)[-1]))
    schema = main.files.read(schema_name) if schema_name is not None else None
    if schema is not None:
        files[start_schema_name(main.name)] = schema
    pending, problems = [main], []
    while pending:
        diagram = pending.pop()
        if diagram.name in files:
            continue
        files[diagram.name] = diagram.content
        for task, form_file in form_file_names(diagram):
            try:
                content = read_form_file(task, diagram, form_file)
            except DiagramError as exc:
                problems += exc.problems
                continue
            files[str(bundle_name(diagram.name, form_file))] = content
        for task in business_rule_tasks(diagram):
            try:
                dmn_name, dmn_content = decision_file(task, diagram)
            except DiagramError as exc:
                problems += exc.problems
                continue
            files[dmn_name] = dmn_content
        for call_id, called in diagram.called_elements.items():
            target = by_process.get(called)
            if target is None:
                element = diagram.tree.getroot().find(f".//bpmn:callActivity[@id='{call_id}']", NSMAP)
                problems.append(
                    Problem(
                        f"call activity calls {called!r}, which no diagram defines",
                        file=diagram.name,
                        line=element.sourceline if element is not None else None,
                        element=call_id,
                        code="unresolved-call",
                    )
                )
            else:
                pending.append(target)
    if problems:
        raise DiagramError(f"pathway {pathway_id} names diagrams or files it does not contain", problems)
    return PathwaySource(pathway_id=pathway_id, main_file=main.name, files=files)


@dataclass(frozen=True)
class BundleSurvey:
    """What a deployed bundle held and what its diagrams name, by name.

    ``contained``: the bundle's pathway files; ``from_pathways_folder``: files it did not hold that
    its diagrams name and the pathways folder supplied (shared sub-pathways, forms, decision tables);
    ``missing``: what its diagrams name that neither holds (a form file, ``process <id>``,
    ``decision <id>``); ``ignored``: other
    files in the bundle (never read).
    """

    contained: list[str]
    from_pathways_folder: list[str]
    missing: list[str]
    ignored: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return dict(self.__dict__)


def survey_bundle(
    bundle: list[Diagram], files: Collection[str], library: list[Diagram], ignored: Collection[str] = ()
) -> BundleSurvey:
    """Which names the ``bundle``'s diagrams use come from the bundle (``files``), from the
    ``library`` diagrams (or the library folder, through each diagram's own bundle), or nowhere."""
    from_library: set[str] = set()
    missing: set[str] = set()
    defined = {pid for d in bundle for pid in d.process_ids}
    library_by_process = {pid: d for d in library for pid in d.process_ids}
    pending = list(bundle)
    seen: set[str] = set()
    while pending:
        diagram = pending.pop()
        if diagram.name in seen:
            continue
        seen.add(diagram.name)
        for _task, form_file in form_file_names(diagram):
            name = bundle_name(diagram.location, form_file)
            if name is None or diagram.files.read(name) is None:
                missing.add(form_file if name is None else name)
            elif name not in files:
                from_library.add(name)
        for task in business_rule_tasks(diagram):
            try:
                dmn_name, _ = decision_file(task, diagram)
            except DiagramError:
                missing.add(f"decision {decision_ref(task)}")
                continue
            if dmn_name not in files:
                from_library.add(dmn_name)
        for called in diagram.called_elements.values():
            if called in defined:
                continue
            target = library_by_process.get(called)
            if target is None:
                missing.add(f"process {called}")
            else:
                from_library.add(target.name)
                pending.append(target)
    return BundleSurvey(sorted(files), sorted(from_library), sorted(missing), sorted(ignored))


def compile_source(source: PathwaySource) -> CompiledPathway:
    """Parse a pathway's diagrams with XSD validation and build its specs.

    Everything is read from the source's own files (never the disk).

    Raises:
        DiagramError: naming the file, line and element that failed.
    """
    from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS
    from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

    # SpiffWorkflow's DMN 1.2 schema does not load (its DMNDI import does not resolve), which failed
    # every DMN 1.2 file; those are checked by engine.decisions' reader alone.
    dmn_schemas = {namespace: path for namespace, path in SCHEMAS.items() if "/20180521/" not in namespace}
    parser = SpiffBpmnParser(validator=VALIDATOR, dmn_schemas=dmn_schemas)
    bundle = MemoryFiles(source.files)
    for name, content in source.files.items():
        if name.endswith(".dmn"):
            # SpiffWorkflow's parser needs the decision to build the task (and validates it against the
            # DMN schema); its eval-based engine never runs it (engine.spiff.patches).
            with XSD_LOCK, translate_workflow_errors():
                parser.add_dmn_xml(parse_dmn(content, name), filename=name)
        if not name.endswith(".bpmn"):
            continue
        tree = prepare_for_engine(parse_diagram(content, name, bundle))
        with XSD_LOCK, translate_workflow_errors():
            parser.add_bpmn_xml(tree.getroot(), filename=name)
    with translate_workflow_errors():
        spec = parser.get_spec(source.pathway_id)
        subprocess_specs = parser.get_subprocess_specs(source.pathway_id)
    return CompiledPathway(source.pathway_id, source.version, spec, subprocess_specs)


def parse_dmn(content: bytes, name: str) -> Any:
    """A .dmn file's root element, parsed without entities or network access.

    Raises: DiagramError when it is not well-formed XML.
    """
    try:
        return etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise DiagramError(
            f"{name} is not well-formed XML",
            [Problem(f"not well-formed XML: {exc.msg}", file=name, line=exc.lineno or None, code="xml-syntax")],
        ) from exc


def files_to_json(files: dict[str, bytes]) -> str:
    return json.dumps({name: content.decode("utf-8") for name, content in sorted(files.items())})


def files_from_json(text: str) -> dict[str, bytes]:
    return {name: content.encode("utf-8") for name, content in json.loads(text).items()}
