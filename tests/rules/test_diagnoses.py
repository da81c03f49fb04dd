"""The diagnoses' vocabulary: a diagnosis as an EHR or a person writes it reaches the rules as its site."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import RuleFileError
from engine.rules import Assessment, Catalogue, LoadedRuleset, PatientContext, evaluate, parse_rule_text
from engine.rules.catalogue import CATALOGUE_FILES, load_catalogue, parse_catalogue
from engine.rules.compiler import canonical_facts
from engine.rules.diagnoses import DIAGNOSES_FILE

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize(
    ("written", "site"),
    [
        ("Non-small cell lung cancer", "lung"),
        ("Small cell lung cancer", "lung"),
        ("NSCLC", "lung"),
        ("Adenocarcinoma of the lung", "lung"),
        ("Multiple myeloma", "myeloma"),
        ("Solitary plasmacytoma", "myeloma"),
        ("Carcinoma of the prostate", "prostate"),
        ("Metastatic breast cancer", "breast"),
        ("DCIS", "breast"),
        ("Bowel cancer", "colorectal"),
        ("Adenocarcinoma of rectum", "colorectal"),
        ("Sigmoid colon cancer", "colorectal"),
        ("Liver metastases from colon cancer", "colorectal"),
        ("Small bowel cancer", "small_intestine"),  # the longer phrase: not the bowel
        ("Anal canal cancer", "anal"),
        ("Non-Hodgkin lymphoma", "lymphoma"),
        ("ALL", "leukaemia"),
        ("Ewing sarcoma", "sarcoma"),
        ("Prostatacancer", "prostate"),
        ("bröstcancer", "breast"),
        # ICD-10 codes: the category decides
        ("C50", "breast"),
        ("C509", "breast"),
        ("C50.9", "breast"),
        ("C50 9", "breast"),
        ("C34.1", "lung"),
        ("C61", "prostate"),
        ("C18", "colorectal"),
        ("C20", "colorectal"),
        ("C21", "anal"),
        ("C90", "myeloma"),
        # no site, or two: as written, normalised
        ("Kidney", "kidney"),
        ("Renal cell carcinoma", "renal_cell_carcinoma"),
        ("Lung metastases from breast cancer", "lung_metastases_from_breast"),
        ("all sites", "all_sites"),  # an abbreviation counts only as the whole diagnosis
        ("C64", "c64"),
        ("cancer", "cancer"),
        ("Carcinosarcoma of the uterus", "carcinosarcoma_of_the_uterus"),  # a whole word, not a part of one
    ],
)
def test_a_diagnosis_reaches_the_rules_as_its_site(catalogue: Catalogue, written: str, site: str) -> None:
    assert catalogue.diagnoses.site_of(written) == site
    facts = canonical_facts(Assessment({}, PatientContext(diagnosis=written)), catalogue)
    assert facts.facts[0]["diagnosis"] == site
    assert f'"diagnosis": "{site}"' in facts.stored_json()  # what the evaluation records: what the rules saw


def test_spinal_cord_compression_reads_the_diagnosis_as_an_ehr_writes_it(bundled: LoadedRuleset) -> None:
    """Back pain 6 is discussed the same day in lung cancer and myeloma however they are written (NICE NG234);
    before the vocabulary "Non-small cell lung cancer" and "Multiple myeloma" were held to the threshold of 8."""

    def fired(diagnosis: str, back_pain: int) -> list[str]:
        assessment = Assessment({"back_pain": back_pain}, PatientContext(diagnosis=diagnosis))
        return evaluate(bundled.compiled, bundled.catalogue, assessment).fired_rule_ids()

    for written in ("Non-small cell lung cancer", "Multiple myeloma", "C61", "NSCLC", "carcinoma of the breast"):
        assert fired(written, 6) == ["mscc-back-pain"], written
    for other in ("Kidney", "Small bowel cancer", "C64"):
        assert fired(other, 6) == [], other
        assert fired(other, 8) == ["mscc-back-pain"], other


def _texts(**changed: str) -> dict[str, str]:
    folder = RULES_DIR / "catalogues"
    texts = {name: (folder / name).read_text(encoding="utf-8") for name in (*CATALOGUE_FILES, DIAGNOSES_FILE)}
    return {**texts, **changed}


def _problems(diagnoses: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        parse_catalogue(_texts(**{DIAGNOSES_FILE: diagnoses}), "catalogues")
    return [str(p) for p in info.value.problems]


SITE = """\
source: [{source: World Health Organization, title: ICD-10}]
sites:
  lung:
    name_en: Lung cancer
    name_sv: Lungcancer
    icd10: [C34]
    words: [bronchus]
"""


def test_the_vocabulary_as_bundled_loads() -> None:
    vocabulary = load_catalogue(RULES_DIR / "catalogues").diagnoses
    assert {"breast", "prostate", "lung", "myeloma", "colorectal"} <= set(vocabulary.sites)
    assert all(site.name_en and site.name_sv and site.icd10 for site in vocabulary.sites.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SITE + "  lungs:\n    name_en: L\n    name_sv: L\n    icd10: [C33]\n    words: [Bronchus]\n",
            "catalogues/diagnoses.yaml:12:13: 'Bronchus' is already a word of site 'lung'",
        ),
        (
            SITE + "  trachea:\n    name_en: T\n    name_sv: T\n    icd10: [C33-C34]\n",
            "catalogues/diagnoses.yaml:11:13: C34 is already in site 'lung'",
        ),
        (
            SITE + "  Kidney:\n    name_en: K\n    name_sv: K\n    icd10: [C64]\n",
            "catalogues/diagnoses.yaml:8:3: site 'Kidney' must be written as rules compare it: 'kidney'",
        ),
        (
            SITE + "  kidney:\n    name_en: K\n    name_sv: K\n    icd10: [C64-C60]\n",
            "catalogues/diagnoses.yaml:11:13: 'C64-C60' is not an ICD-10 category (C50) or a range of them "
            "in one letter (C18-C20)",
        ),
        (
            SITE + "  kidney:\n    name_en: K\n    name_sv: K\n    icd10: [C64.9]\n",
            "catalogues/diagnoses.yaml:11:13: 'C64.9' is not an ICD-10 category (C50) or a range of them "
            "in one letter (C18-C20)",
        ),
        (
            SITE + "  kidney:\n    name_en: K\n    icd10: [C64]\n",
            "catalogues/diagnoses.yaml:9:5: site 'kidney' needs 'name_sv'",
        ),
        (
            SITE.replace("[bronchus]", "[bronchus, lung]"),
            "catalogues/diagnoses.yaml:7:23: 'lung' is given twice in site 'lung' "
            "(the site's name is one of its words)",
        ),
        (
            SITE.replace("[bronchus]", "[cancer of the upper lobe bronchus]"),
            "catalogues/diagnoses.yaml:7:13: 'cancer of the upper lobe bronchus' has more than 4 words",
        ),
    ],
    ids=[
        "word-twice",
        "category-twice",
        "site-not-normalised",
        "backward-range",
        "subdivision",
        "no-swedish",
        "site-as-word",
        "long-phrase",
    ],
)
def test_a_broken_vocabulary_is_refused_with_its_line(text: str, expected: str) -> None:
    assert _problems(text) == [expected]


def test_a_catalogue_without_the_vocabulary_compares_diagnoses_as_written(tmp_path: Path) -> None:
    """A catalogue stored before the vocabulary existed: its evaluations read as they did, and its rules name
    any diagnosis written as rules compare it."""
    texts = _texts()
    del texts[DIAGNOSES_FILE]
    old = parse_catalogue(texts, "catalogues")
    assert old.diagnoses.sites == {}
    assert old.diagnoses.site_of("Non-small cell lung cancer") == "non_small_cell_lung"
    assert old.version != parse_catalogue(_texts(), "catalogues").version
    rule = """\
ruleset: r
title: R
rules:
  - id: kidney-pain
    title: Back pain in kidney cancer
    description: For the test.
    guidance: [{source: NICE NG234, title: Spinal metastases and metastatic spinal cord compression}]
    when: {all: [{context: {diagnosis: kidney}}, {concern: {code: back_pain, score: {at_least: 5}}}]}
    then: {inform: [info-spinal-cord-compression]}
"""
    assert parse_rule_text(rule, "r.yaml", old).rules[0].id == "kidney-pain"
    with pytest.raises(RuleFileError, match="unknown diagnosis 'kidney'"):
        parse_rule_text(rule, "r.yaml", parse_catalogue(_texts(), "catalogues"))


def test_the_vocabulary_is_part_of_the_catalogue_version() -> None:
    bundled = parse_catalogue(_texts(), "catalogues")
    changed = _texts(**{DIAGNOSES_FILE: _texts()[DIAGNOSES_FILE].replace("lunga, ", "")})
    assert parse_catalogue(changed, "catalogues").version != bundled.version


def test_a_long_diagnosis_is_read_in_one_pass(catalogue: Catalogue) -> None:
    """Hostile input: a diagnosis of 200,000 words is read word by word (no backtracking), and with two sites
    named stays as written."""
    text = " ".join(["small"] * 100_000 + ["bowel", "lung"] + ["x"] * 100_000)
    assert catalogue.diagnoses.site_of(text).startswith("small_small_")


def test_a_diagnosis_naming_no_site_is_the_site_of_the_patients_own_pathway(catalogue: Catalogue) -> None:
    vocabulary = catalogue.diagnoses
    assert vocabulary.site_of("Invasive ductal carcinoma", "breast") == "breast"
    assert vocabulary.site_of("Lung metastases from breast cancer", "breast") == "breast"  # two named: the pathway's
    assert vocabulary.site_of("Non-small cell lung cancer", "breast") == "lung"  # the words name one: the words win
    assert vocabulary.site_of("Invasive ductal carcinoma", "general") == "invasive_ductal_carcinoma"  # not a site
    assert vocabulary.site_of("Invasive ductal carcinoma") == "invasive_ductal_carcinoma"
    on_breast = Assessment({"back_pain": 6}, PatientContext(diagnosis="Adenocarcinoma"), pathway_site="breast")
    assert canonical_facts(on_breast, catalogue).facts[0]["diagnosis"] == "breast"
    no_diagnosis = Assessment({"back_pain": 6}, pathway_site="breast")
    assert "diagnosis" not in canonical_facts(no_diagnosis, catalogue).facts[0]  # nothing recorded: none invented
