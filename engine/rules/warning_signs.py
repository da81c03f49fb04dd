"""Warning signs per diagnosis, with whom to contact and the guidance each follows.

``rules/catalogues/warning_signs.yaml`` lists what a person with cancer should look out for: signs
for every diagnosis (``all``) and signs of their own for each bundled diagnosis pathway. Each sign
says when it applies (during or after treatment), how urgent it is, whom to contact (a key of
``contacts``) and which cited sources it follows. The end-of-treatment summary shows them ("warning
signs and who to call"); the triage sub-pathway looks up the sign a patient reports (its code) and
escalates a report nobody has triaged within the file's bound for that urgency
(``escalate_untriaged_after``). A diagnosis's sign may ``replace`` common signs it stands in for (the
children and young people's fever sign, with its treatment centre line, replaces the adult one): the
signs for that diagnosis leave the replaced ones out, so a patient never sees two signs for the same
thing with two different numbers to call.

It lives with the rules because it is a rules catalogue and the care plan operators read it
(the documents import it from here too).

The file is checked as it is loaded: every problem is reported at once, each with file, line and
column, in a :class:`~engine.errors.RuleFileError` (as the rule and catalogue files are).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import RuleFileError
from engine.rules.model import Guidance
from engine.rules.yaml_source import YamlReader, did_you_mean, read_yaml_file

__all__ = [
    "DIAGNOSES",
    "PLACEHOLDERS",
    "URGENCIES",
    "WHEN",
    "Contact",
    "WarningSign",
    "WarningSignCatalogue",
    "load_warning_signs",
    "is_duration",
    "parse_warning_signs",
    "warning_signs_of",
]

# The bundled diagnosis pathways; any other diagnosis uses ``general``.
DIAGNOSES = ("breast", "prostate", "colorectal", "lung", "children_young_people", "general")
COMMON = "all"
WHEN = ("during_treatment", "after_treatment", "any")
URGENCIES = ("emergency", "urgent", "soon")  # most to least urgent
# An ISO 8601 duration of days, hours and minutes (what a BPMN timer reads): P1D, PT30M, P1DT2H.
_DURATION = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?)?$")
_SIGN_FIELDS = ("code", "name_en", "name_sv", "when", "urgency", "contact", "action_en", "action_sv", "sources")
_SIGN_OPTIONAL = ("replaces",)
# What an action text may name a number by: the patient's health system's, filled in from the service
# directory (engine.directory) when a document or page shows the text, never written in the
# file: an English patient reading Swedish still calls 999, a Swedish patient reading English 112.
PLACEHOLDERS = ("emergency", "urgent_advice")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_ ]*)\s*\}")


@dataclass(frozen=True)
class Contact:
    """Whom a patient contacts (a kind of service; each deployment gives its own numbers)."""

    code: str
    name_en: str
    name_sv: str
    description: str | None


@dataclass(frozen=True)
class WarningSign:
    code: str
    diagnosis: str  # a member of DIAGNOSES, or "all"
    name_en: str
    name_sv: str
    when: str
    urgency: str
    contact: Contact
    action_en: str
    action_sv: str
    sources: tuple[Guidance, ...]
    replaces: tuple[str, ...] = ()  # codes of common (``all``) signs this diagnosis's sign stands in for

    def action(self, language: str, emergency: str, urgent_advice: str) -> str:
        """What to do, in ``language`` (``sv``, else English), with the patient's health system's
        emergency and urgent advice numbers in place of ``{emergency}`` and ``{urgent_advice}``."""
        text = self.action_sv if language == "sv" else self.action_en
        return text.replace("{emergency}", emergency).replace("{urgent_advice}", urgent_advice)


@dataclass(frozen=True)
class WarningSignCatalogue:
    signs: dict[str, tuple[WarningSign, ...]]  # "all" and each of DIAGNOSES -> its own signs
    contacts: dict[str, Contact]
    sources: dict[str, Guidance]
    version: str  # sha256 of the file
    # urgency -> ISO 8601 duration after which a report nobody has triaged is escalated; a report
    # without a known sign is treated as the most urgent.
    escalate_untriaged_after: dict[str, str]

    def for_diagnosis(self, diagnosis: str | tuple[str, ...], when: str | None = None) -> list[WarningSign]:
        """The signs for a diagnosis (common ones included), most urgent first; for several (a patient on
        one site's pathway whose diagnosis names another: engine.pathway_checks), each one's own signs.

        An unknown diagnosis gets the ``general`` signs. A common sign that one of the diagnosis's own
        signs ``replaces`` is left out. ``when`` ("during_treatment" or "after_treatment") keeps the
        signs that apply then (``any`` signs always apply).
        """
        keys = dict.fromkeys(
            d if d in DIAGNOSES else "general" for d in ((diagnosis,) if isinstance(diagnosis, str) else diagnosis)
        )
        own = [s for key in keys for s in self.signs.get(key, ())]
        stands_in = {code: s for s in own for code in s.replaces}  # shown where the replaced sign was
        found: list[WarningSign] = []
        for s in [*(stands_in.get(c.code, c) for c in self.signs.get(COMMON, ())), *own]:
            if s not in found:
                found.append(s)
        if when is not None:
            found = [s for s in found if s.when in (when, "any")]
        return sorted(found, key=lambda s: URGENCIES.index(s.urgency))  # stable: file order within urgency

    def sign(self, code: str) -> WarningSign | None:
        return next((s for signs in self.signs.values() for s in signs if s.code == code), None)

    def escalation_bound(self, code: str | None) -> str:
        """How long a report of this sign may wait untriaged (an unknown or missing sign: the shortest)."""
        sign = self.sign(code) if code else None
        return self.escalate_untriaged_after[sign.urgency if sign else URGENCIES[0]]


def is_duration(value: str) -> bool:
    """An ISO 8601 duration in days, hours and minutes, such as ``PT30M`` or ``P1DT2H``."""
    return bool(_DURATION.match(value))


def load_warning_signs(path: Path | str) -> WarningSignCatalogue:
    """Load and check a warning signs file.

    The file is read every time, so an edit is used at once; parsing it (a quarter of a second for
    the bundled catalogue, on every warning sign a patient reports: bench/api.py) happens once per
    distinct text. The catalogue returned is shared: it must not be changed.

    Raises:
        RuleFileError: the file cannot be read, or naming file, line and column of every problem.
    """
    path = Path(path)
    try:
        text = read_yaml_file(path)
    except RuleFileError as exc:  # unreadable, not a regular file, too large, not UTF-8 (line and column)
        raise RuleFileError("the warning signs cannot be loaded", exc.problems) from exc
    return _parsed(text, str(path))


@functools.lru_cache(maxsize=8)
def _parsed(text: str, file: str) -> WarningSignCatalogue:
    return parse_warning_signs(text, file)  # an invalid text raises every time: errors are not cached


def warning_signs_of(text: str, file: str = "catalogues/warning_signs.yaml") -> WarningSignCatalogue:
    """The catalogue of a warning signs text (as stored with a rule-set version), parsed once per distinct
    text. The catalogue returned is shared: it must not be changed.

    Raises:
        RuleFileError: naming file, line and column of every problem.
    """
    return _parsed(text, file)


def parse_warning_signs(text: str, file: str = "warning_signs.yaml") -> WarningSignCatalogue:
    """Parse and check the text of a warning signs file.

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    reader = YamlReader(file)
    catalogue = _read(reader, text, hashlib.sha256(text.encode()).hexdigest())
    if reader.problems or catalogue is None:
        raise RuleFileError("the warning signs are not valid", reader.problems)
    return catalogue


def _read(reader: YamlReader, text: str, version: str) -> WarningSignCatalogue | None:
    root = reader.compose(text)
    required = ("sources", "contacts", "escalate_untriaged_after", "signs")
    top = reader.mapping(root, "the warning signs file", required) if root else None
    if top is None or not set(required) <= set(top):
        return None
    sources = _read_sources(reader, top["sources"][1])
    contacts = _read_contacts(reader, top["contacts"][1])
    bounds = _read_bounds(reader, top["escalate_untriaged_after"][1])
    signs = _read_signs(reader, top["signs"][1], sources, contacts)
    return WarningSignCatalogue(
        signs=signs, contacts=contacts, sources=sources, version=version, escalate_untriaged_after=bounds
    )


def _read_bounds(reader: YamlReader, node: Node) -> dict[str, str]:
    entries = reader.mapping(node, "escalate_untriaged_after", URGENCIES)
    if entries is None:
        return {}
    bounds: dict[str, str] = {}
    for urgency, (_key, value) in entries.items():
        text = reader.text(value, f"the bound for {urgency}")
        if text is not None and not is_duration(text):
            reader.problem(value, f"expected an ISO 8601 duration such as PT30M or P1D for {urgency}, got '{text}'")
        elif text is not None:
            bounds[urgency] = text
    return bounds  # a missing urgency is reported by ``mapping``


def _read_sources(reader: YamlReader, node: Node) -> dict[str, Guidance]:
    sources: dict[str, Guidance] = {}
    for key, _key_node, value in reader.free_mapping(node, "sources") or []:
        entries = reader.mapping(value, f"source '{key}'", ("source", "title"), ("year", "section", "url"))
        if entries is None or not {"source", "title"} <= set(entries):
            continue
        source = reader.text(entries["source"][1], "source")
        title = reader.text(entries["title"][1], "title")
        year = reader.integer(entries["year"][1], "year") if "year" in entries else None
        section = reader.text(entries["section"][1], "section") if "section" in entries else None
        url = reader.text(entries["url"][1], "url") if "url" in entries else None
        if source and title:
            sources[key] = Guidance(source, title, year, section, url)
    return sources


def _read_contacts(reader: YamlReader, node: Node) -> dict[str, Contact]:
    contacts: dict[str, Contact] = {}
    for code, _key_node, value in reader.free_mapping(node, "contacts") or []:
        entries = reader.mapping(value, f"contact '{code}'", ("name_en", "name_sv"), ("description",))
        if entries is None or not {"name_en", "name_sv"} <= set(entries):
            continue
        name_en = reader.text(entries["name_en"][1], "name_en")
        name_sv = reader.text(entries["name_sv"][1], "name_sv")
        description = reader.text(entries["description"][1], "description") if "description" in entries else None
        if name_en and name_sv:
            contacts[code] = Contact(code, name_en, name_sv, description)
    return contacts


def _read_signs(
    reader: YamlReader, node: Node, sources: dict[str, Guidance], contacts: dict[str, Contact]
) -> dict[str, tuple[WarningSign, ...]]:
    signs: dict[str, tuple[WarningSign, ...]] = {}
    seen: dict[str, int] = {}  # sign code -> line, across diagnoses (a code names one sign)
    entries = reader.free_mapping(node, "signs") or []
    for diagnosis, key_node, value in entries:
        if diagnosis != COMMON and diagnosis not in DIAGNOSES:
            reader.problem(
                key_node,
                f"unknown diagnosis '{diagnosis}'; expected all or one of "
                f"{', '.join(DIAGNOSES)}{did_you_mean(diagnosis, (COMMON, *DIAGNOSES))}",
            )
            continue
        items = reader.sequence(value, f"the signs for {diagnosis}") or []
        read = [_read_sign(reader, item, diagnosis, sources, contacts, seen) for item in items]
        signs[diagnosis] = tuple(s for s in read if s is not None)
    for diagnosis in (COMMON, *DIAGNOSES):
        if diagnosis not in signs and not any(d == diagnosis for d, _, _ in entries):
            reader.problem(node, f"signs need an entry for '{diagnosis}' (an empty list [] if it has none)")
    _check_replaces(reader, entries, signs)
    return signs


def _check_replaces(
    reader: YamlReader, entries: list[tuple[str, Node, Node]], signs: dict[str, tuple[WarningSign, ...]]
) -> None:
    """Only a diagnosis's own sign replaces, and only common signs (those under ``all``)."""
    common = {s.code for s in signs.get(COMMON, ())}
    for diagnosis, _key_node, value in entries:
        for item in value.value if isinstance(value, SequenceNode) else []:
            replaces = _field(item, "replaces")
            code = _field(item, "code")
            code_text = str(code.value) if isinstance(code, ScalarNode) else None
            if not isinstance(replaces, SequenceNode):
                continue  # absent, or not a list (reported as the sign was read)
            if diagnosis == COMMON:
                reader.problem(
                    replaces,
                    f"a sign under '{COMMON}' cannot replace another; only a diagnosis's sign can",
                    element=code_text,
                )
                continue
            for replaced in replaces.value:
                text = str(replaced.value).strip() if isinstance(replaced, ScalarNode) else None
                if text and text not in common:
                    reader.problem(
                        replaced,
                        f"'{text}' is not a sign under '{COMMON}'; a diagnosis's sign replaces common signs only"
                        f"{did_you_mean(text, common)}",
                        element=code_text,
                    )


def _field(node: Node, name: str) -> Node | None:
    """The value node of ``name`` in a mapping node (``None`` if absent or not a mapping)."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == name:
                return value
    return None


def _read_sign(
    reader: YamlReader,
    node: Node,
    diagnosis: str,
    sources: dict[str, Guidance],
    contacts: dict[str, Contact],
    seen: dict[str, int],
) -> WarningSign | None:
    entries = reader.mapping(node, f"a warning sign for {diagnosis}", _SIGN_FIELDS, _SIGN_OPTIONAL)
    if entries is None or not set(_SIGN_FIELDS) <= set(entries):
        return None
    replaces: list[str | None] = []
    if "replaces" in entries:  # which common signs it replaces is checked once all are read
        replaces = [
            reader.text(n, "a replaced sign") for n in reader.sequence(entries["replaces"][1], "replaces") or []
        ]
    code_node = entries["code"][1]
    code = reader.text(code_node, "code")
    if code is not None:
        if code in seen:
            reader.problem(code_node, f"warning sign '{code}' is already defined (line {seen[code]})", element=code)
        seen.setdefault(code, reader.loc(code_node).line)
    texts = {name: reader.text(entries[name][1], name) for name in ("name_en", "name_sv", "action_en", "action_sv")}
    for name in ("action_en", "action_sv"):
        if texts[name] is not None and not _numbers_as_placeholders(reader, entries[name][1], str(texts[name]), code):
            texts[name] = None
    when = reader.choice(entries["when"][1], "when", WHEN)
    urgency = reader.choice(entries["urgency"][1], "urgency", URGENCIES)
    contact_node = entries["contact"][1]
    contact_code = reader.text(contact_node, "contact")
    contact = contacts.get(contact_code or "")
    if contact_code and contact is None:
        reader.problem(
            contact_node, f"unknown contact '{contact_code}'{did_you_mean(contact_code, contacts)}", element=code
        )
    cited = _cited(reader, entries["sources"][1], sources, code)
    if (
        code is None
        or contact is None
        or when is None
        or urgency is None
        or not cited
        or any(v is None for v in texts.values())
        or None in replaces
    ):
        return None
    return WarningSign(
        code,
        diagnosis,
        str(texts["name_en"]),
        str(texts["name_sv"]),
        when,
        urgency,
        contact,
        str(texts["action_en"]),
        str(texts["action_sv"]),
        cited,
        tuple(r for r in replaces if r is not None),
    )


def _numbers_as_placeholders(reader: YamlReader, node: Node, text: str, code: str | None) -> bool:
    """Whether every placeholder of an action text is a known one (``{emergency}``, ``{urgent_advice}``):
    a misspelt one would reach the patient as written. Each problem is reported at the text's line."""
    problems = [
        f"unknown placeholder '{{{name}}}' in an action text: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        for name in _PLACEHOLDER.findall(text)
        if name not in PLACEHOLDERS
    ]
    for problem in problems:
        reader.problem(node, problem, element=code)
    return not problems


def _cited(reader: YamlReader, node: Node, sources: dict[str, Guidance], code: str | None) -> tuple[Guidance, ...]:
    items = reader.sequence(node, "sources")
    if items is None:
        return ()
    if not items:
        reader.problem(node, "a warning sign needs at least one source", element=code)
    cited = []
    for item in items:
        key = reader.text(item, "a source key")
        if key is None:
            continue
        if key not in sources:
            reader.problem(item, f"unknown source '{key}'{did_you_mean(key, sources)}", element=code)
            continue
        cited.append(sources[key])
    return tuple(cited)
