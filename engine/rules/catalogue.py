"""The catalogues rules are checked against: concerns, interventions and services (and the diagnoses).

Three YAML files in ``rules/catalogues/``:

- ``concerns.yaml``: the holistic needs assessment concerns checklist, by domain (scores 0-10);
- ``interventions.yaml``: what a rule can propose (referrals, interventions, information);
- ``services.yaml``: service types, and an example directory of organisations that
  deployments replace with their own.

Beside them, governed with them: ``warning_signs.yaml`` and ``diagnoses.yaml`` (the sites rules name,
with their words and ICD-10 categories: :mod:`engine.rules.diagnoses`).

The catalogue's version is the sha256 over the files' bytes; evaluations record it next
to the rule file's version because an intervention's default service comes from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node

from engine.errors import Problem, RuleFileError
from engine.rules.diagnoses import DIAGNOSES_FILE, DiagnosisVocabulary, read_diagnoses
from engine.rules.model import Guidance
from engine.rules.yaml_source import YamlReader, read_yaml_file

__all__ = [
    "CATALOGUE_FILES",
    "INTERVENTION_KINDS",
    "Catalogue",
    "Concern",
    "Domain",
    "Intervention",
    "ServiceEntry",
    "ServiceType",
    "GOVERNED_FILES",
    "WARNING_SIGNS_FILE",
    "load_catalogue",
    "read_guidance",
]

CATALOGUE_FILES = ("concerns.yaml", "interventions.yaml", "services.yaml")
# Files kept and versioned with the catalogue (so under four eyes a change is a pending version a second author
# activates), parsed where they are used: the warning signs a patient reports and their triage's urgency and
# escalation (engine.rules.warning_signs). A catalogue stored before they were has none (its version is then
# that of the three files alone, as it was).
# The diagnoses' vocabulary (engine.rules.diagnoses) is governed the same way, and parsed with the catalogue:
# the facts of an evaluation are built with it. A catalogue without it compares diagnoses as written.
GOVERNED_FILES = ("warning_signs.yaml", DIAGNOSES_FILE)
WARNING_SIGNS_FILE = "warning_signs.yaml"
INTERVENTION_KINDS = ("referral", "intervention", "information")
_GUIDANCE_FIELDS = ("source", "title", "year", "section", "url")


@dataclass(frozen=True)
class Domain:
    code: str
    name_en: str
    name_sv: str | None


@dataclass(frozen=True)
class Concern:
    code: str
    domain: str
    name_en: str
    name_sv: str | None


@dataclass(frozen=True)
class Intervention:
    code: str
    kind: str
    service: str
    name_en: str
    name_sv: str
    description: str
    guidance: tuple[Guidance, ...]


@dataclass(frozen=True)
class ServiceType:
    code: str
    name_en: str
    name_sv: str | None
    description: str


@dataclass(frozen=True)
class ServiceEntry:
    """An organisation or service in the directory. Bundled entries are examples only."""

    name: str
    types: tuple[str, ...]
    region: str
    url: str | None
    example: bool
    description: str | None


@dataclass(frozen=True)
class Catalogue:
    domains: dict[str, Domain]
    concerns: dict[str, Concern]
    interventions: dict[str, Intervention]
    service_types: dict[str, ServiceType]
    directory: tuple[ServiceEntry, ...]
    version: str
    sources: dict[str, str]  # file name -> text, so the exact catalogue can be stored
    diagnoses: DiagnosisVocabulary = field(default_factory=DiagnosisVocabulary)

    def services_for(self, service_type: str, region: str | None = None) -> list[ServiceEntry]:
        return [e for e in self.directory if service_type in e.types and (region is None or e.region == region)]


def catalogue_version(texts: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in (*CATALOGUE_FILES, *(n for n in GOVERNED_FILES if n in texts)):
        digest.update(name.encode() + b"\0" + hashlib.sha256(texts[name].encode()).digest())
    return digest.hexdigest()


def load_catalogue(directory: Path | str) -> Catalogue:
    """Load and check the three catalogue files in ``directory``, with the governed files beside them
    (:data:`GOVERNED_FILES`, kept as text: their own modules parse them).

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    directory = Path(directory)
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for name in (*CATALOGUE_FILES, *GOVERNED_FILES):
        path = directory / name
        if name in GOVERNED_FILES and not path.exists():
            continue  # without warning signs documents and triage say so; without diagnoses: compared as written
        try:
            texts[name] = read_yaml_file(path)
        except RuleFileError as exc:  # unreadable, not a regular file, too large, not UTF-8 (line and column)
            problems.extend(exc.problems)
    if problems:
        raise RuleFileError("the catalogue cannot be loaded", problems)
    return parse_catalogue(texts, directory)


def parse_catalogue(texts: dict[str, str], directory: Path | str = "catalogues") -> Catalogue:
    """Parse catalogue texts (as read from files, or as stored with an evaluation).

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    directory = Path(directory)
    readers = {name: YamlReader(str(directory / name)) for name in CATALOGUE_FILES}
    domains, concerns = _read_concerns(readers["concerns.yaml"], texts["concerns.yaml"])
    service_types, directory_entries = _read_services(readers["services.yaml"], texts["services.yaml"])
    interventions = _read_interventions(readers["interventions.yaml"], texts["interventions.yaml"], set(service_types))
    diagnoses = DiagnosisVocabulary()
    if DIAGNOSES_FILE in texts:
        readers[DIAGNOSES_FILE] = YamlReader(str(directory / DIAGNOSES_FILE))
        diagnoses = read_diagnoses(readers[DIAGNOSES_FILE], texts[DIAGNOSES_FILE], read_guidance)
    problems = [p for r in readers.values() for p in r.problems]
    if problems:
        raise RuleFileError("the catalogue is not valid", problems)
    return Catalogue(
        domains=domains,
        concerns=concerns,
        interventions=interventions,
        service_types=service_types,
        directory=tuple(directory_entries),
        version=catalogue_version(texts),
        sources=dict(texts),
        diagnoses=diagnoses,
    )


def read_guidance(reader: YamlReader, node: Node) -> tuple[Guidance, ...]:
    """A list of citations: ``{source, title, year?, section?, url?}``; at least one."""
    items = reader.sequence(node, "guidance")
    if items is None:
        return ()
    if not items:
        reader.problem(node, "guidance needs at least one source")
    out: list[Guidance] = []
    for item in items:
        entries = reader.mapping(item, "a guidance entry", ("source", "title"), ("year", "section", "url"))
        if entries is None or "source" not in entries or "title" not in entries:
            continue
        source = reader.text(entries["source"][1], "source")
        title = reader.text(entries["title"][1], "title")
        year = reader.integer(entries["year"][1], "year") if "year" in entries else None
        section = reader.text(entries["section"][1], "section") if "section" in entries else None
        url = reader.text(entries["url"][1], "url") if "url" in entries else None
        if source and title:
            out.append(Guidance(source, title, year, section, url))
    return tuple(out)


def _read_concerns(reader: YamlReader, text: str) -> tuple[dict[str, Domain], dict[str, Concern]]:
    domains: dict[str, Domain] = {}
    concerns: dict[str, Concern] = {}
    root = reader.compose(text)
    top = reader.mapping(root, "the concerns catalogue", ("domains",), ("source", "scale")) if root else None
    if top is None or "domains" not in top:
        return domains, concerns
    if "source" in top:
        read_guidance(reader, top["source"][1])
    for code, _key_node, value in reader.free_mapping(top["domains"][1], "domains") or []:
        entries = reader.mapping(value, f"domain '{code}'", ("name_en", "concerns"), ("name_sv",))
        if entries is None or "concerns" not in entries:
            continue
        domains[code] = Domain(
            code,
            reader.text(entries["name_en"][1], "name_en") or code if "name_en" in entries else code,
            reader.text(entries["name_sv"][1], "name_sv") if "name_sv" in entries else None,
        )
        for c_code, c_key, c_value in reader.free_mapping(entries["concerns"][1], "concerns") or []:
            if c_code in concerns:
                reader.problem(c_key, f"concern '{c_code}' is already in domain '{concerns[c_code].domain}'")
                continue
            c_entries = reader.mapping(c_value, f"concern '{c_code}'", ("name_en",), ("name_sv",))
            if c_entries is None or "name_en" not in c_entries:
                continue
            concerns[c_code] = Concern(
                c_code,
                code,
                reader.text(c_entries["name_en"][1], "name_en") or c_code,
                reader.text(c_entries["name_sv"][1], "name_sv") if "name_sv" in c_entries else None,
            )
    return domains, concerns


def _read_services(reader: YamlReader, text: str) -> tuple[dict[str, ServiceType], list[ServiceEntry]]:
    types: dict[str, ServiceType] = {}
    entries_out: list[ServiceEntry] = []
    root = reader.compose(text)
    top = reader.mapping(root, "the services catalogue", ("service_types",), ("directory",)) if root else None
    if top is None or "service_types" not in top:
        return types, entries_out
    for code, _key, value in reader.free_mapping(top["service_types"][1], "service_types") or []:
        e = reader.mapping(value, f"service type '{code}'", ("name_en", "description"), ("name_sv",))
        if e is None or "name_en" not in e or "description" not in e:
            continue
        types[code] = ServiceType(
            code,
            reader.text(e["name_en"][1], "name_en") or code,
            reader.text(e["name_sv"][1], "name_sv") if "name_sv" in e else None,
            reader.text(e["description"][1], "description") or "",
        )
    for item in reader.sequence(top["directory"][1], "directory") or [] if "directory" in top else []:
        e = reader.mapping(item, "a directory entry", ("name", "types", "region", "example"), ("url", "description"))
        if e is None or any(k not in e for k in ("name", "types", "region", "example")):
            continue
        type_codes: list[str] = []
        for t in reader.sequence(e["types"][1], "types") or []:
            type_code = reader.choice(t, "service type", tuple(types))
            if type_code:
                type_codes.append(type_code)
        example = reader.boolean(e["example"][1], "example")
        entries_out.append(
            ServiceEntry(
                name=reader.text(e["name"][1], "name") or "",
                types=tuple(type_codes),
                region=reader.text(e["region"][1], "region") or "",
                url=reader.text(e["url"][1], "url") if "url" in e else None,
                example=bool(example),
                description=reader.text(e["description"][1], "description") if "description" in e else None,
            )
        )
    return types, entries_out


def _read_interventions(reader: YamlReader, text: str, service_types: set[str]) -> dict[str, Intervention]:
    out: dict[str, Intervention] = {}
    root = reader.compose(text)
    top = reader.mapping(root, "the interventions catalogue", ("interventions",)) if root else None
    if top is None or "interventions" not in top:
        return out
    required = ("kind", "service", "name_en", "name_sv", "description", "guidance")
    for code, _key, value in reader.free_mapping(top["interventions"][1], "interventions") or []:
        e = reader.mapping(value, f"intervention '{code}'", required)
        if e is None or any(k not in e for k in required):
            continue
        kind = reader.choice(e["kind"][1], "kind", INTERVENTION_KINDS)
        service = reader.choice(e["service"][1], "service type", tuple(sorted(service_types)))
        guidance = read_guidance(reader, e["guidance"][1])
        name_en = reader.text(e["name_en"][1], "name_en")
        name_sv = reader.text(e["name_sv"][1], "name_sv")
        description = reader.text(e["description"][1], "description")
        if kind and service and name_en and name_sv and description:
            out[code] = Intervention(code, kind, service, name_en, name_sv, description, guidance)
    return out
