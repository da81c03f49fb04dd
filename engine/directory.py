"""A deployment's service directory: the names, phone numbers and opening hours a patient's documents print.

The documents never invent a number: the named contact's direct line, the 24-hour line, the GP
practice, the team's other contacts (doctor, kurator, rehabilitation coordinator) and the provider of
each referral come from one YAML file (``Settings.service_directory``; format in docs/documents.md and
the bundled example, ``directory/service_directory.yaml``). It has a section per health system
(``england``, ``sweden``): a document uses its patient's health system (the instance's
``health_system``, else the deployment's ``CAREPATH_HEALTH_SYSTEM``, else the file's only section, else
the section that knows the instance's recorded contacts, else the first), never the reader's
language, and what is UK-only (the GP cancer care review, NHS benefit forms) shows only with ``england``.

The file is checked as it is loaded: every problem at once, each with file, line and column (a
:class:`~engine.errors.RuleFileError`, as the rule and catalogue files are). A phone number must look
like one (digits, spaces, ``+ - ( )``; never ``TBC``, ``xxxx`` or ``0000``). Example data says so:
``example: true`` on the file and on every entry, and numbers in the ranges Ofcom and PTS reserve for
drama and fiction are refused in a file that is not example data. A server in production mode refuses
example data at start (:func:`require_service_directory`) unless told otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from engine.errors import Problem, RuleFileError
from engine.rules.yaml_source import YamlReader, did_you_mean, read_yaml_file
from engine.settings import HEALTH_SYSTEMS, Settings

__all__ = [
    "HEALTH_SYSTEMS",
    "health_system_resolver",
    "HOSPITAL_KINDS",
    "STAFF_ROLES",
    "TEAM_ROLES",
    "DirectoryEntry",
    "ExampleDirectoryError",
    "HealthSystem",
    "Hours",
    "ServiceDirectory",
    "load_service_directory",
    "parse_service_directory",
    "phone_problem",
    "require_service_directory",
    "service_directory",
]

# The named contact form's roles (pathways/shared/forms/named_contact.json).
STAFF_ROLES = (
    "clinical_nurse_specialist",
    "key_worker",
    "cancer_support_worker",
    "care_coordinator",
    "neighbourhood_care_lead",
)
# A team's other contacts: Min vårdplan lists kontaktsjuksköterska, läkare and kurator.
TEAM_ROLES = (
    "doctor",
    "social_worker",
    "rehabilitation_coordinator",
    "psychologist",
    "dietitian",
    "physiotherapist",
    "ward",
)
HOSPITAL_KINDS = ("cancer_centre", "local_hospital", "childrens_cancer_centre")
_DAYS = ("weekdays", "every_day")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PHONE = re.compile(r"^\+?\(?[0-9][0-9 ()-]*[0-9]$")
# Ranges reserved for drama and fiction, as national digits (+44 / +46 read as a leading 0).
# Ofcom: 01632 960xxx, 020 7946 0xxx, 01xx 496 0xxx (and 0191 498 0xxx), 07700 900xxx, 08081 570xxx,
# 0909 879 0xxx, 03069 990xxx. PTS: 08-465 004 xx, 031-390 06 xx, 040-628 04 xx, 0980-319 2xx, 070-174 06 xx.
_FICTIONAL = (
    "01632960",
    "02079460",
    "01134960",
    "01144960",
    "01154960",
    "01164960",
    "01174960",
    "01184960",
    "01214960",
    "01314960",
    "01414960",
    "01514960",
    "01614960",
    "01914980",
    "07700900",
    "08081570",
    "09098790",
    "03069990",
    "08465004",
    "03139006",
    "04062804",
    "09803192",
    "07017406",
)


class ExampleDirectoryError(ValueError):
    """Raised at start when a server in production mode would print example data in patients' documents.

    A configuration error, like :class:`engine.library.EmptyLibraryError`: no request can cause it.
    """


@dataclass(frozen=True)
class Hours:
    """When a number is answered: always, or on some days between two times (``HH:MM``)."""

    always: bool
    days: str | None = None  # weekdays | every_day
    opens: str | None = None
    closes: str | None = None

    def as_dict(self) -> dict[str, object]:
        if self.always:
            return {"always": True}
        return {"always": False, "days": self.days, "from": self.opens, "to": self.closes}


@dataclass(frozen=True)
class DirectoryEntry:
    """One thing to contact: a line, hospital, team, team contact, staff member, practice, service or
    organisation. ``code`` is its key in the file (a staff reference for staff); fields a kind does
    not have are None."""

    code: str
    name_en: str
    name_sv: str
    phone: str | None
    hours: Hours | None
    example: bool
    url: str | None = None
    role: str | None = None  # staff and team contacts
    team: str | None = None  # staff: a key of the section's teams
    hospital: str | None = None  # teams: a key of the section's hospitals
    kind: str | None = None  # hospitals
    contacts: tuple[DirectoryEntry, ...] = ()  # teams

    def name(self, language: str) -> str:
        return self.name_sv if language == "sv" else self.name_en


@dataclass(frozen=True)
class HealthSystem:
    """One health system's section of the directory."""

    key: str  # england | sweden
    emergency_number: str
    twenty_four_hour_line: DirectoryEntry
    urgent_advice: DirectoryEntry | None = None
    hospitals: dict[str, DirectoryEntry] = field(default_factory=dict)
    teams: dict[str, DirectoryEntry] = field(default_factory=dict)
    staff: dict[str, DirectoryEntry] = field(default_factory=dict)
    gp_practices: dict[str, DirectoryEntry] = field(default_factory=dict)
    services: dict[str, DirectoryEntry] = field(default_factory=dict)
    organisations: dict[str, DirectoryEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceDirectory:
    example: bool
    systems: dict[str, HealthSystem]
    version: str  # sha256 of the file
    path: str

    def for_deployment(self, preferred: str | None = None) -> HealthSystem:
        """The section of a page or form with no patient: the deployment's (``preferred``,
        ``CAREPATH_HEALTH_SYSTEM``) when the file has it, else the file's only or first section.
        Never the reader's language: a Swedish reader of an English service still calls its numbers."""
        return self.systems.get(preferred or "") or next(iter(self.systems.values()))

    def for_patient(self, data: dict[str, Any], preferred: str | None = None) -> HealthSystem:
        """The section of the patient of an instance whose data is ``data``: the instance's own
        ``health_system`` (start data or a correction), else the deployment's (``preferred``), else
        the file's only section, else the one section that knows the instance's recorded named
        contact, GP practice or local hospital, else the file's first. Never the reader's language."""
        own = data.get("health_system")
        if isinstance(own, str) and own in self.systems:
            return self.systems[own]
        if (preferred and preferred in self.systems) or len(self.systems) == 1:
            return self.for_deployment(preferred)
        recorded = data.get("named_contact")
        # Only text can name an entry: a pathway without a start schema takes any data.
        staff_ref = _text(recorded.get("staff_ref")) if isinstance(recorded, dict) else None
        practice, hospital = _text(data.get("gp_practice")), _text(data.get("local_hospital"))
        knowing = [
            system
            for system in self.systems.values()
            if (staff_ref and staff_ref in system.staff)
            or (practice is not None and practice in system.gp_practices)
            or (hospital is not None and hospital in system.hospitals)
        ]
        return knowing[0] if len(knowing) == 1 else self.for_deployment()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- loading -------------------------------------------------------------------------------------------


def health_system_resolver(settings: Settings) -> Callable[[dict[str, Any]], str]:
    """For an instance's data, the key of the section its documents take (:meth:`ServiceDirectory.
    for_patient` with the deployment's ``health_system``): the pathway records and reads the same one
    (``engine.careplan.health_system``, the start's ``engine.instances.forms.with_health_system``).

    A directory that cannot be read does not stop a patient's pathway: the deployment's setting, else
    the first health system, stands in (the documents report the directory's problem themselves).
    """

    def resolve(data: dict[str, Any]) -> str:
        try:
            return service_directory(settings).for_patient(data, settings.health_system).key
        except RuleFileError:
            return settings.health_system or HEALTH_SYSTEMS[0]

    return resolve


def service_directory(settings: Settings) -> ServiceDirectory:
    """The directory the settings name, read again only when the file changes.

    Raises:
        RuleFileError: the file cannot be read, or naming file, line and column of every problem.
    """
    path = Path(settings.service_directory)
    try:
        stat = path.stat()
    except OSError as exc:
        raise RuleFileError(
            "the service directory cannot be loaded", [Problem(f"cannot read the file: {exc.strerror}", file=str(path))]
        ) from exc
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> ServiceDirectory:
    return load_service_directory(path)


def load_service_directory(path: Path | str) -> ServiceDirectory:
    """Load and check a service directory file.

    Raises:
        RuleFileError: the file cannot be read, or naming file, line and column of every problem.
    """
    path = Path(path)
    try:
        text = read_yaml_file(path)
    except RuleFileError as exc:  # unreadable, not a regular file, too large, not UTF-8 (line and column)
        raise RuleFileError("the service directory cannot be loaded", exc.problems) from exc
    return parse_service_directory(text, str(path))


def parse_service_directory(text: str, file: str = "service_directory.yaml") -> ServiceDirectory:
    """Parse and check the text of a service directory.

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    reader = YamlReader(file)
    directory = _Reader(reader).read(text, hashlib.sha256(text.encode()).hexdigest(), file)
    if reader.problems or directory is None:
        raise RuleFileError("the service directory is not valid", reader.problems)
    return directory


def require_service_directory(settings: Settings, service_types: set[str] | None = None) -> ServiceDirectory:
    """The directory a server starts with, checked: refused in production mode when it is example data
    (unless ``settings.allow_example_directory``) or when it lacks a provider for one of
    ``service_types`` (the rule catalogue's service types a referral can name).

    Raises:
        RuleFileError: the file is missing or invalid (every problem located).
        ExampleDirectoryError: production mode and example data, or a service type without a provider.
    """
    directory = service_directory(settings)
    if settings.environment != "production":
        return directory
    if directory.example and not settings.allow_example_directory:
        raise ExampleDirectoryError(
            f"refusing to start: the service directory {directory.path} is example data (its numbers reach "
            "nobody) and CAREPATH_ENV is production; set CAREPATH_SERVICE_DIRECTORY to the deployment's own "
            "directory, or CAREPATH_ALLOW_EXAMPLE_DIRECTORY=1 for a demonstration server"
        )
    missing = sorted(
        f"{system.key}: {code}"
        for system in directory.systems.values()
        for code in (service_types or set()) - set(system.services) - {"key_worker"}
    )
    if missing:
        raise ExampleDirectoryError(
            f"refusing to start: the service directory {directory.path} gives no provider and number for "
            f"service type(s) a referral can name: {', '.join(missing)}"
        )
    return directory


def phone_problem(phone: str, national: bool = False) -> str | None:
    """What is wrong with a phone number as written, or None: digits with spaces, ``+ - ( )``; at least
    three digits; not one digit repeated (``0000``), unless ``national`` (999, 111)."""
    digits = re.sub(r"\D", "", phone)
    if not _PHONE.match(phone.strip()) or len(digits) < 3:
        return f"'{phone}' is not a phone number (digits, spaces and + - ( ) only, at least 3 digits)"
    if len(set(digits)) == 1 and not national:
        return f"'{phone}' is a placeholder, not a phone number"
    return None


def _fictional(phone: str) -> bool:
    digits = re.sub(r"\D", "", phone)
    for country in ("44", "46"):
        if phone.strip().startswith("+" + country):
            digits = "0" + digits[len(country) :]
    return digits.startswith(_FICTIONAL)


# --- the grammar ---------------------------------------------------------------------------------------


class _Reader:
    """Reads the directory's sections with one YamlReader, collecting every problem."""

    def __init__(self, reader: YamlReader) -> None:
        self.r = reader
        self.example = False
        self.refs: list[tuple[str, str, str, Node]] = []  # (entry code, field, value, value node)
        self.declared: dict[str, list[str]] = {}  # section -> the codes written (valid or not)

    def read(self, text: str, version: str, file: str) -> ServiceDirectory | None:
        root = self.r.compose(text)
        if root is None:
            return None
        top = self.r.mapping(root, "the service directory", ("example",), HEALTH_SYSTEMS)
        if top is None or "example" not in top:
            return None
        example = self.r.boolean(top["example"][1], "example")
        self.example = bool(example)
        systems = {key: self._system(key, top[key][1]) for key in HEALTH_SYSTEMS if key in top}
        if not systems:
            self.r.problem(
                root,
                f"the service directory needs a section for at least one health system: {' or '.join(HEALTH_SYSTEMS)}",
            )
        if example is None or any(s is None for s in systems.values()):
            return None
        return ServiceDirectory(bool(example), {k: s for k, s in systems.items() if s is not None}, version, file)

    def _system(self, key: str, node: Node) -> HealthSystem | None:
        sections = ("hospitals", "teams", "staff", "gp_practices", "services", "organisations")
        entries = self.r.mapping(
            node, f"the {key} section", ("emergency_number", "twenty_four_hour_line"), ("urgent_advice", *sections)
        )
        if entries is None:
            return None
        emergency = (
            self._phone(entries["emergency_number"][1], "emergency_number", national=True)
            if "emergency_number" in entries
            else None
        )
        line = (
            self._entry(
                entries["twenty_four_hour_line"][1],
                "twenty_four_hour_line",
                "the 24-hour line",
                ("name_en", "name_sv", "phone", "hours"),
            )
            if "twenty_four_hour_line" in entries
            else None
        )
        if line is not None and line.hours is not None and not line.hours.always:
            self.r.problem(entries["twenty_four_hour_line"][1], "the 24-hour line must have hours: always")
        urgent = (
            self._entry(
                entries["urgent_advice"][1],
                "urgent_advice",
                "urgent_advice",
                ("name_en", "name_sv", "phone"),
                ("hours",),
                national=True,
            )
            if "urgent_advice" in entries
            else None
        )
        self.refs, self.declared = [], {}
        read = {name: self._section(name, entries[name][1]) if name in entries else {} for name in sections}
        self._check_references(key)
        if emergency is None or line is None:
            return None
        return HealthSystem(
            key,
            emergency,
            line,
            urgent,
            read["hospitals"],
            read["teams"],
            read["staff"],
            read["gp_practices"],
            read["services"],
            read["organisations"],
        )

    def _section(self, name: str, node: Node) -> dict[str, DirectoryEntry]:
        fields: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
            "hospitals": (("kind", "name", "phone"), ("hours",)),
            "teams": (("name_en", "name_sv", "phone", "hours"), ("hospital", "contacts")),
            "staff": (("name", "role", "team", "direct_line", "hours"), ()),
            "gp_practices": (("name", "phone"), ("hours",)),
            "services": (("name", "phone"), ("hours", "url")),
            "organisations": (("name",), ("phone", "hours", "url")),
        }
        required, optional = fields[name]
        found: dict[str, DirectoryEntry] = {}
        entries = self.r.free_mapping(node, name) or []
        self.declared[name] = [code for code, _, _ in entries]
        for code, _key_node, value in entries:
            entry = self._entry(value, code, f"{name} '{code}'", required, optional)
            if entry is not None:
                if name == "organisations" and entry.phone is None and entry.url is None:
                    self.r.problem(value, f"organisation '{code}' needs a phone or a url", element=code)
                found[code] = entry
        return found

    def _entry(
        self,
        node: Node,
        code: str,
        what: str,
        required: tuple[str, ...],
        optional: tuple[str, ...] = (),
        national: bool = False,
    ) -> DirectoryEntry | None:
        entries = self.r.mapping(node, what, required, ("example", *optional))
        if entries is None:
            return None
        if not national:  # national lines (NHS 111, 1177) are real in example data too
            self._check_example(node, entries, what, code)
        texts: dict[str, str | None] = {
            k: self.r.text(entries[k][1], k) for k in ("name", "name_en", "name_sv", "url") if k in entries
        }
        phone_key = "direct_line" if "direct_line" in entries else "phone"
        phone = self._phone(entries[phone_key][1], phone_key, national) if phone_key in entries else None
        hours = self._hours(entries["hours"][1]) if "hours" in entries else None
        choices = {"role": STAFF_ROLES if "direct_line" in required else TEAM_ROLES, "kind": HOSPITAL_KINDS}
        picked = {k: self.r.choice(entries[k][1], k, c) for k, c in choices.items() if k in entries}
        refs: dict[str, str | None] = {k: self.r.text(entries[k][1], k) for k in ("team", "hospital") if k in entries}
        self.refs.extend((code, k, v, entries[k][1]) for k, v in refs.items() if v is not None)
        contacts = (
            tuple(
                c
                for c in (
                    self._entry(item, f"{code}[{i}]", f"a contact of {what}", ("role", "name", "phone"), ("hours",))
                    for i, item in enumerate(self.r.sequence(entries["contacts"][1], "contacts") or [])
                )
                if c is not None
            )
            if "contacts" in entries
            else ()
        )
        read: dict[str, str | None] = {**texts, **picked, **refs}
        if (
            any(k in entries and v is None for k, v in read.items())
            or (phone_key in entries and phone is None)
            or ("hours" in entries and hours is None)
            or set(required) - set(entries)
        ):
            return None
        name_en = texts.get("name_en") or texts.get("name") or code
        return DirectoryEntry(
            code,
            name_en,
            texts.get("name_sv") or texts.get("name") or name_en,
            phone,
            hours,
            self.example and not national,
            texts.get("url"),
            picked.get("role"),
            refs.get("team"),
            refs.get("hospital"),
            picked.get("kind"),
            contacts,
        )

    def _check_example(self, node: Node, entries: dict[str, tuple[Node, Node]], what: str, code: str) -> None:
        marked = self.r.boolean(entries["example"][1], "example") if "example" in entries else False
        if self.example and marked is not True:
            self.r.problem(
                node, f"{what} needs example: true: the directory is example data, and each entry says so", element=code
            )
        elif not self.example and marked:
            self.r.problem(
                entries["example"][1],
                f"{what} is marked example: true in a directory that is not example data (example: false at the top)",
                element=code,
            )

    def _phone(self, node: Node, what: str, national: bool = False) -> str | None:
        phone = self.r.text(node, what)
        if phone is None:
            return None
        problem = phone_problem(phone, national)
        if problem is None and not self.example and not national and _fictional(phone):
            problem = (
                f"'{phone}' is in a range reserved for drama and fiction (Ofcom, PTS): example data "
                "in a directory that is not marked example"
            )
        if problem is not None:
            self.r.problem(node, problem)
            return None
        return phone

    def _hours(self, node: Node) -> Hours | None:
        if getattr(node, "value", None) == "always":
            return Hours(always=True)
        entries = self.r.mapping(node, "hours (always, or days, from and to)", ("days", "from", "to"))
        if entries is None or not {"days", "from", "to"} <= set(entries):
            return None
        days = self.r.choice(entries["days"][1], "days", _DAYS)
        times = {k: self.r.text(entries[k][1], k) for k in ("from", "to")}
        for key, value in times.items():
            if value is not None and not _TIME.match(value):
                self.r.problem(entries[key][1], f"'{value}' is not a time of day as HH:MM (quote it: \"08:30\")")
                times[key] = None
        opens, closes = times["from"], times["to"]
        if opens and closes and opens >= closes:
            self.r.problem(node, f"hours close ({closes}) before they open ({opens})")
            return None
        if days is None or opens is None or closes is None:
            return None
        return Hours(always=False, days=days, opens=opens, closes=closes)

    def _check_references(self, key: str) -> None:
        """Staff name a team of the same section, and teams a hospital of it."""
        targets = {"team": "teams", "hospital": "hospitals"}
        for code, ref, value, node in self.refs:
            known = self.declared.get(targets[ref], [])
            if value not in known:
                self.r.problem(
                    node,
                    f"unknown {ref} '{value}': the {key} section's {targets[ref]} are "
                    f"{', '.join(known) or 'none'}{did_you_mean(value, known)}",
                    element=code,
                )
