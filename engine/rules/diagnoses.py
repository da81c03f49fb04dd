"""The diagnoses rules name, and the words and codes that mean each (``catalogues/diagnoses.yaml``).

A rule names a cancer site (``diagnosis: {in: [breast, prostate, lung, myeloma]}``); a patient's diagnosis
arrives as an EHR or a person wrote it: "Non-small cell lung cancer", "Multiple myeloma", "Bowel cancer",
"C50". Compared as text, each of those misses the rule that names its site, and a missed match can hide an
emergency (spinal cord compression's back-pain threshold is 5 in these four cancers and 8 in any other).
The vocabulary gives each site its words and its ICD-10 categories; :meth:`DiagnosisVocabulary.site_of`
turns a diagnosis into the site the rules compare, or leaves it as written (normalised) when no site, or
more than one, is named. It is part of the catalogue, so an evaluation records the vocabulary's version
with the catalogue's, and a change to it is governed as any catalogue change.

How a diagnosis is read (:func:`engine.rules.model.normalised_text` first: lower case, ``_`` between words,
a trailing "cancer" dropped):

1. the whole text is a site, or one of a site's abbreviations (``nsclc``, ``aml``; only ever the whole
   text, since as a word of a longer text they mean other things);
2. the whole text is an ICD-10 code in one of a site's categories (``c50``, ``c509``, ``c34_1``);
3. otherwise its words, read left to right, the longest of a site's phrases first ("small bowel" is not
   "bowel"): exactly one site named is that site;
4. none or two ("lung metastases from breast": which is the primary cannot be told from the words):
   on a site's own pathway (``breast_cancer``), that site, since the pathway was chosen for it
   ("Invasive ductal carcinoma" on the breast pathway); elsewhere the text as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from yaml.nodes import Node

from engine.rules.model import normalised_text
from engine.rules.yaml_source import YamlReader

__all__ = ["DIAGNOSES_FILE", "DiagnosisSite", "DiagnosisVocabulary", "pathway_site", "read_diagnoses"]

DIAGNOSES_FILE = "diagnoses.yaml"
_RANGE = re.compile(r"([A-Z][0-9]{2})(?:-([A-Z][0-9]{2}))?")
# An ICD-10 code as normalised_text leaves it: the category, then its subdivision (C50.9 arrives as c50.9,
# or as c509 or c50_9 through the start data, whose pattern allows no full stop).
_CODE = re.compile(r"([a-z][0-9]{2})(?:[._]?[0-9a-z]{1,4})?")
_MAX_PHRASE_WORDS = 4


@dataclass(frozen=True)
class DiagnosisSite:
    code: str
    name_en: str
    name_sv: str
    words: tuple[str, ...]  # normalised phrases: "small_bowel"
    abbreviations: tuple[str, ...]
    icd10: tuple[str, ...]  # categories: C50, C18, C19, C20


@dataclass(frozen=True)
class DiagnosisVocabulary:
    """The sites and what names them. Empty for a catalogue stored before the file existed: a diagnosis
    is then compared as normalised text, as it was."""

    sites: dict[str, DiagnosisSite] = field(default_factory=dict)
    _whole: dict[str, str] = field(default_factory=dict, repr=False)  # a whole text -> its site
    _phrases: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)
    _categories: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, sites: Iterable[DiagnosisSite]) -> DiagnosisVocabulary:
        by_code = {s.code: s for s in sites}
        whole: dict[str, str] = {}
        phrases: dict[tuple[str, ...], str] = {}
        categories: dict[str, str] = {}
        for site in by_code.values():
            whole[site.code] = site.code
            phrases[tuple(site.code.split("_"))] = site.code  # the site's name is one of its words
            for text in (*site.words, *site.abbreviations):
                whole.setdefault(text, site.code)
            for word in site.words:
                phrases[tuple(word.split("_"))] = site.code
            for category in site.icd10:
                categories[category.lower()] = site.code
        return cls(by_code, whole, phrases, categories)

    def site_of(self, diagnosis: str, pathway_site: str | None = None) -> str:
        """The site ``diagnosis`` names; else ``pathway_site`` when it is a site (the patient is on that
        site's own pathway: "Invasive ductal carcinoma" on the breast pathway is breast cancer); else the
        diagnosis as :func:`normalised_text` writes it."""
        text = normalised_text(diagnosis)
        if not self.sites:
            return text
        site = self._named(text)
        if site is not None:
            return site
        return pathway_site if pathway_site in self.sites else text

    def other_site(self, pathway_id: str, diagnosis: object) -> DiagnosisSite | None:
        """The site ``diagnosis`` names when ``pathway_id`` is another site's own pathway (lung cancer on
        ``breast_cancer``: most likely the wrong pathway chosen from a list, or an EHR's mapping error),
        else None: a diagnosis naming no site or two, the pathway's own site, or a pathway of no site."""
        own = pathway_site(pathway_id)
        if own not in self.sites or not isinstance(diagnosis, str):
            return None
        named = self._named(normalised_text(diagnosis))
        return self.sites[named] if named is not None and named != own else None

    def _named(self, text: str) -> str | None:
        site = self._whole.get(text)
        if site is not None:
            return site
        code = _CODE.fullmatch(text)
        if code is not None:
            return self._categories.get(code.group(1))
        named = self._sites_in(text.split("_"))
        return named.pop() if len(named) == 1 else None

    def _sites_in(self, words: list[str]) -> set[str]:
        named: set[str] = set()
        i = 0
        while i < len(words):
            for n in range(min(_MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                site = self._phrases.get(tuple(words[i : i + n]))
                if site is not None:
                    named.add(site)
                    i += n
                    break
            else:
                i += 1
        return named


def pathway_site(pathway_id: str) -> str:
    """The site a pathway is written for, by its id (``breast_cancer`` -> ``breast``); a general pathway's
    id names no site of the vocabulary."""
    return pathway_id.removesuffix("_cancer")


def read_diagnoses(
    reader: YamlReader, text: str, read_source: Callable[[YamlReader, Node], object]
) -> DiagnosisVocabulary:
    """Parse ``diagnoses.yaml``; every problem is recorded on ``reader`` with its line. ``read_source``
    checks the file's citations (the catalogue's ``read_guidance``)."""
    root = reader.compose(text)
    top = reader.mapping(root, "the diagnoses catalogue", ("sites", "source")) if root else None
    if top is None or "sites" not in top:
        return DiagnosisVocabulary()
    if "source" in top:
        read_source(reader, top["source"][1])
    sites: list[DiagnosisSite] = []
    owners: dict[str, str] = {}  # a whole text, phrase or category -> the site that has it
    for code, key_node, value in reader.free_mapping(top["sites"][1], "sites") or []:
        if code != normalised_text(code) or code in owners:
            reader.problem(
                key_node,
                f"site '{code}' must be written as rules compare it: '{normalised_text(code)}'"
                if code != normalised_text(code)
                else f"site '{code}' is already a word of site '{owners[code]}'",
            )
            continue
        owners[code] = code
        e = reader.mapping(value, f"site '{code}'", ("name_en", "name_sv", "icd10"), ("words", "abbreviations"))
        if e is None or any(k not in e for k in ("name_en", "name_sv", "icd10")):
            continue
        name_en = reader.text(e["name_en"][1], "name_en")
        name_sv = reader.text(e["name_sv"][1], "name_sv")
        words = _texts(reader, e, "words", code, owners)
        abbreviations = _texts(reader, e, "abbreviations", code, owners)
        categories = _categories(reader, e["icd10"][1], code, owners)
        if name_en and name_sv:
            sites.append(DiagnosisSite(code, name_en, name_sv, words, abbreviations, categories))
    return DiagnosisVocabulary.of(sites)


def _texts(
    reader: YamlReader, entries: dict[str, tuple[Node, Node]], key: str, site: str, owners: dict[str, str]
) -> tuple[str, ...]:
    if key not in entries:
        return ()
    out: list[str] = []
    for node in reader.sequence(entries[key][1], key) or []:
        value = reader.text(node, f"a {key[:-1]}")
        if value is None:
            continue
        word = normalised_text(value)
        if key == "words" and len(word.split("_")) > _MAX_PHRASE_WORDS:
            reader.problem(node, f"'{value}' has more than {_MAX_PHRASE_WORDS} words")
        elif owners.get(word) == site:
            reader.problem(node, f"'{value}' is given twice in site '{site}' (the site's name is one of its words)")
        elif word in owners:
            reader.problem(node, f"'{value}' is already a word of site '{owners[word]}'")
        else:
            owners[word] = site
            out.append(word)
    return tuple(out)


def _categories(reader: YamlReader, node: Node, site: str, owners: dict[str, str]) -> tuple[str, ...]:
    """``[C50, D05]`` or ranges within one letter: ``[C18-C20]``."""
    out: list[str] = []
    for item in reader.sequence(node, "icd10") or []:
        value = reader.text(item, "an ICD-10 category")
        if value is None:
            continue
        match = _RANGE.fullmatch(value)
        if match is None or (match.group(2) and (match.group(2)[0] != value[0] or match.group(2) < match.group(1))):
            reader.problem(
                item, f"'{value}' is not an ICD-10 category (C50) or a range of them in one letter (C18-C20)"
            )
            continue
        first, last = match.group(1), match.group(2) or match.group(1)
        for number in range(int(first[1:]), int(last[1:]) + 1):
            category = f"{first[0]}{number:02d}"
            if category in owners:
                reader.problem(item, f"{category} is already in site '{owners[category]}'")
            else:
                owners[category] = site
                out.append(category)
    return tuple(out)
