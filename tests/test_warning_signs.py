"""The warning signs catalogue: the bundled file loads, covers every diagnosis, and mistakes are
reported with file, line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import RuleFileError
from engine.rules.warning_signs import DIAGNOSES, URGENCIES, load_warning_signs, parse_warning_signs

BUNDLED = Path(__file__).resolve().parent.parent / "rules" / "catalogues" / "warning_signs.yaml"

VALID = """\
sources:
  ukons: {source: UKONS, title: 24 Hour Triage Tool}
contacts:
  line: {name_en: 24-hour line, name_sv: Cancerjouren}
signs:
  all:
    - code: fever
      name_en: Temperature 38C or above during chemotherapy
      name_sv: Feber under cytostatikabehandling
      when: during_treatment
      urgency: emergency
      contact: line
      action_en: Call now.
      action_sv: Ring nu.
      sources: [ukons]
  breast: []
  prostate: []
  colorectal: []
  lung: []
  children_young_people: []
  general: []
escalate_untriaged_after: {emergency: PT30M, urgent: PT1H, soon: P1D}
"""


def test_bundled_catalogue_loads_with_signs_for_every_diagnosis() -> None:
    catalogue = load_warning_signs(BUNDLED)
    for diagnosis in DIAGNOSES:
        signs = catalogue.for_diagnosis(diagnosis)
        assert signs, diagnosis
        assert all(s.sources and s.contact.name_en and s.name_sv and s.action_sv for s in signs)
    for diagnosis in set(DIAGNOSES) - {"general"}:
        assert any(s.diagnosis == diagnosis for s in catalogue.for_diagnosis(diagnosis)), diagnosis


def test_neutropenic_sepsis_sends_the_patient_to_the_24_hour_line_at_once() -> None:
    catalogue = load_warning_signs(BUNDLED)
    fever = catalogue.sign("fever_on_treatment")
    assert fever is not None
    assert (fever.urgency, fever.when, fever.contact.code) == ("emergency", "during_treatment", "acute-oncology-line")
    # UKONS v3: 37.5C or above, or below 36C, on SACT (clinical safety review: it said 38C).
    assert "37.5C or above, or below 36C" in fever.name_en
    assert "37,5 grader eller högre, eller under 36 grader" in fever.name_sv
    assert any(g.source == "NICE CG151" for g in fever.sources)
    # Emergencies come first, for every diagnosis.
    assert catalogue.for_diagnosis("lung")[0].urgency == "emergency"


def test_site_guidance_is_cited_for_each_site() -> None:
    catalogue = load_warning_signs(BUNDLED)
    expected = {"breast": "NICE NG101", "prostate": "NICE NG131", "colorectal": "NICE NG151", "lung": "NICE NG122"}
    for diagnosis, guideline in expected.items():
        own = [s for s in catalogue.for_diagnosis(diagnosis) if s.diagnosis == diagnosis]
        assert any(g.source == guideline for s in own for g in s.sources), diagnosis


def test_children_and_young_people_call_their_treatment_centre() -> None:
    catalogue = load_warning_signs(BUNDLED)
    fever = catalogue.sign("cyp_fever_on_treatment")
    assert fever is not None and fever.contact.code == "treatment-centre-line"
    # Their choices (and summary) show their own fever and bleeding signs, never the adult ones with
    # the adult 24-hour line, and the fever sign where the adult one stands: first.
    for when in (None, "during_treatment"):
        codes = [s.code for s in catalogue.for_diagnosis("children_young_people", when)]
        assert codes[0] == "cyp_fever_on_treatment"
        assert "cyp_bleeding_pale_tired" in codes
        assert not {"fever_on_treatment", "unusual_bleeding_or_bruising"} & set(codes)
    adult = [s.code for s in catalogue.for_diagnosis("general")]
    assert adult[0] == "fever_on_treatment" and "cyp_fever_on_treatment" not in adult
    # Every other diagnosis keeps every common sign.
    common = {s.code for s in catalogue.signs["all"]}
    for diagnosis in set(DIAGNOSES) - {"children_young_people"}:
        assert common <= {s.code for s in catalogue.for_diagnosis(diagnosis)}, diagnosis


def test_children_and_young_people_are_never_sent_to_the_adult_24_hour_line() -> None:
    """A child's family calls the principal treatment centre or shared care unit, open 24 hours (CCLG):
    no sign a child sees names the adult acute oncology line, in its contact or its words (clinical
    review: the diarrhoea and immunotherapy signs, among others, still did). Each children's sign is
    at least as urgent as the adult one it replaces, and applies whenever that one did."""
    catalogue = load_warning_signs(BUNDLED)
    for when in (None, "during_treatment", "after_treatment"):
        signs = catalogue.for_diagnosis("children_young_people", when)
        adult_line = [
            s.code
            for s in signs
            if s.contact.code == "acute-oncology-line"
            or "acute oncology" in s.action_en.lower()
            or "cancerjouren" in s.action_sv.lower()
        ]
        assert adult_line == [], when
    common = {s.code: s for s in catalogue.signs["all"]}
    for sign in catalogue.signs["children_young_people"]:
        for code in sign.replaces:
            replaced = common[code]
            assert URGENCIES.index(sign.urgency) <= URGENCIES.index(replaced.urgency), (sign.code, code)
            assert sign.when in (replaced.when, "any"), (sign.code, code)
    for code in (
        "diarrhoea_or_vomiting_on_treatment",
        "severe_diarrhoea_or_vomiting_on_treatment",
        "immunotherapy_side_effects",
    ):
        assert code not in {s.code for s in catalogue.for_diagnosis("children_young_people")}, code


def test_red_findings_are_emergencies_and_amber_ones_same_day() -> None:
    """UKONS v3: diarrhoea 7 or more times above normal or fluids not kept down, and new confusion, are
    red (clinical safety review: both sat in same-day signs)."""
    catalogue = load_warning_signs(BUNDLED)
    urgency = {
        code: sign.urgency
        for code in (
            "severe_diarrhoea_or_vomiting_on_treatment",
            "diarrhoea_or_vomiting_on_treatment",
            "new_confusion_or_drowsiness",
            "hypercalcaemia_signs",
        )
        if (sign := catalogue.sign(code)) is not None
    }
    assert urgency == {
        "severe_diarrhoea_or_vomiting_on_treatment": "emergency",
        "diarrhoea_or_vomiting_on_treatment": "urgent",
        "new_confusion_or_drowsiness": "emergency",
        "hypercalcaemia_signs": "urgent",
    }
    severe = catalogue.sign("severe_diarrhoea_or_vomiting_on_treatment")
    moderate = catalogue.sign("diarrhoea_or_vomiting_on_treatment")
    hypercalcaemia = catalogue.sign("hypercalcaemia_signs")
    assert severe and moderate and hypercalcaemia
    assert "7 or more" in severe.name_en and "unable to keep fluids down" in severe.name_en
    assert "4 to 6" in moderate.name_en and "unable to keep fluids down" not in moderate.name_en
    assert "confused" not in hypercalcaemia.name_en and "förvirring" in hypercalcaemia.name_sv  # "utan ny förvirring"


def test_thoughts_of_suicide_or_self_harm_send_the_patient_for_help_now() -> None:
    """Every patient sees it (a common sign), and it says to call 999 or 111 now (112 or 1177 in Sweden)."""
    catalogue = load_warning_signs(BUNDLED)
    sign = catalogue.sign("thoughts_of_suicide_or_self_harm")
    assert sign is not None
    assert (sign.diagnosis, sign.urgency, sign.when, sign.contact.code) == (
        "all",
        "emergency",
        "any",
        "emergency-services",
    )
    # The numbers are the patient's health system's, filled in where the text is shown.
    assert "{emergency}" in sign.action_en and "{urgent_advice}" in sign.action_en and "now" in sign.action_en
    assert "{emergency}" in sign.action_sv and "{urgent_advice}" in sign.action_sv and "nu" in sign.action_sv
    english = sign.action("en", "999", "111")
    assert "Call 999" in english and "call 111 now" in english and "{" not in english
    assert "Ring 112" in sign.action("sv", "112", "1177") and "ring 1177 nu" in sign.action("sv", "112", "1177")
    assert [g.source for g in sign.sources] == ["NICE NG225"]
    for diagnosis in DIAGNOSES:
        assert sign in catalogue.for_diagnosis(diagnosis, when="after_treatment"), diagnosis


REPLACING = VALID.replace(
    "  breast: []",
    """  breast:
    - code: own_fever
      replaces: [fever]
      name_en: Own fever sign
      name_sv: Egen feber
      when: during_treatment
      urgency: emergency
      contact: line
      action_en: Call now.
      action_sv: Ring nu.
      sources: [ukons]""",
)


def test_a_diagnosis_sign_replaces_common_signs() -> None:
    catalogue = parse_warning_signs(REPLACING)
    assert [s.code for s in catalogue.for_diagnosis("breast")] == ["own_fever"]
    assert [s.code for s in catalogue.for_diagnosis("lung")] == ["fever"]
    assert catalogue.sign("fever") is not None  # a report naming the replaced sign is still triaged


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (REPLACING.replace("replaces: [fever]", "replaces: [fevr]"), 18, "'fevr' is not a sign under 'all'"),
        (
            VALID.replace("      sources: [ukons]\n", "      sources: [ukons]\n      replaces: [fever]\n"),
            16,
            "a sign under 'all' cannot replace another",
        ),
        (REPLACING.replace("replaces: [fever]", "replaces: fever"), 18, "expected replaces as a list"),
    ],
)
def test_replacing_mistakes_are_reported_with_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs(text, "w.yaml")
    problems = [p for p in raised.value.problems if message in p.message]
    assert problems and problems[0].line == line, [str(p) for p in raised.value.problems]


def test_unknown_diagnosis_gets_the_general_signs_and_when_filters() -> None:
    catalogue = load_warning_signs(BUNDLED)
    assert catalogue.for_diagnosis("kidney") == catalogue.for_diagnosis("general")
    after = catalogue.for_diagnosis("breast", when="after_treatment")
    assert after and all(s.when in ("after_treatment", "any") for s in after)
    assert "fever_on_treatment" not in {s.code for s in after}


def test_a_minimal_valid_file_parses() -> None:
    catalogue = parse_warning_signs(VALID)
    [fever] = catalogue.for_diagnosis("breast")
    assert fever.code == "fever" and fever.contact.name_sv == "Cancerjouren"
    assert len(catalogue.version) == 64


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("contact: line", "contact: lien"), 12, "unknown contact 'lien'; did you mean 'line'?"),
        (("sources: [ukons]", "sources: [ukns]"), 15, "unknown source 'ukns'; did you mean 'ukons'?"),
        (("sources: [ukons]", "sources: []"), 15, "at least one source"),
        (("urgency: emergency", "urgency: asap"), 11, "unknown urgency 'asap'"),
        (("when: during_treatment", "when: sometimes"), 10, "unknown when 'sometimes'"),
        (("  prostate: []", "  prostrate: []"), 17, "unknown diagnosis 'prostrate'; expected all or one of"),
        (("      action_sv: Ring nu.\n", ""), 7, "needs 'action_sv'"),
        (("      name_en: Temperature", "      nme_en: Temperature"), 8, "unknown field 'nme_en'"),
    ],
)
def test_mistakes_are_reported_with_file_and_line(change: tuple[str, str], line: int, message: str) -> None:
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs(VALID.replace(*change), "catalogues/warning_signs.yaml")
    problems = [p for p in raised.value.problems if message in p.message]
    assert problems, [str(p) for p in raised.value.problems]
    assert problems[0].file == "catalogues/warning_signs.yaml" and problems[0].line == line
    assert str(problems[0]).startswith(f"catalogues/warning_signs.yaml:{line}:")


def test_every_diagnosis_needs_an_entry_and_codes_are_unique() -> None:
    text = VALID.replace("  general: []\n", "").replace(
        "  breast: []",
        """  breast:
    - code: fever
      name_en: Again
      name_sv: Igen
      when: any
      urgency: soon
      contact: line
      action_en: Call.
      action_sv: Ring.
      sources: [ukons]""",
    )
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs(text)
    messages = [p.message for p in raised.value.problems]
    assert any("'general'" in m for m in messages)
    assert any("'fever' is already defined (line 7)" in m for m in messages)


def test_unreadable_file_and_bad_yaml() -> None:
    with pytest.raises(RuleFileError, match="cannot be loaded"):
        load_warning_signs(BUNDLED.parent / "no_such_file.yaml")
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs("signs: [", "w.yaml")
    assert raised.value.problems[0].line is not None


def test_untriaged_reports_escalate_after_the_bound_for_their_urgency() -> None:
    catalogue = load_warning_signs(BUNDLED)
    assert catalogue.escalate_untriaged_after == {"emergency": "PT30M", "urgent": "PT1H", "soon": "PT4H"}
    assert catalogue.escalation_bound("fever_on_treatment") == "PT30M"
    assert catalogue.escalation_bound("stoma_problems") == "PT1H"
    # A report naming no sign, or one the catalogue does not know, is taken as the most urgent.
    assert catalogue.escalation_bound(None) == catalogue.escalation_bound("no_such_sign") == "PT30M"


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ("{emergency: 30 minutes, urgent: PT1H, soon: P1D}", "expected an ISO 8601 duration"),
        ("{emergency: PT30M, urgent: PT1H}", "needs 'soon'"),
        ("{emergency: PT30M, urgent: PT1H, soon: P1D, later: P7D}", "unknown field 'later'"),
        ("{emergency: P, urgent: PT1H, soon: P1D}", "expected an ISO 8601 duration"),
    ],
)
def test_escalation_bounds_are_checked(bounds: str, message: str) -> None:
    text = VALID.replace(
        "escalate_untriaged_after: {emergency: PT30M, urgent: PT1H, soon: P1D}", f"escalate_untriaged_after: {bounds}"
    )
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs(text, "w.yaml")
    assert any(message in p.message and p.line == 22 for p in raised.value.problems), [
        str(p) for p in raised.value.problems
    ]


def test_the_signs_issue_13_asked_for_are_there_and_the_general_pathway_has_its_own() -> None:
    catalogue = load_warning_signs(BUNDLED)
    wanted = {
        "immunotherapy_side_effects": "all",
        "blood_clot_signs": "all",
        "cellulitis": "all",
        "brain_secondaries": "all",
        "tamoxifen_bleeding": "breast",
        "stoma_problems": "colorectal",
        "radiation_pneumonitis": "lung",
    }
    for code, diagnosis in wanted.items():
        sign = catalogue.sign(code)
        assert sign is not None and sign.diagnosis == diagnosis, code
    assert catalogue.sign("immunotherapy_side_effects").urgency == "emergency"  # type: ignore[union-attr]
    general = [s for s in catalogue.for_diagnosis("kidney") if s.diagnosis == "general"]
    assert len(general) >= 3 and all(s.sources for s in general)


def test_a_warning_signs_file_is_parsed_once_per_text_and_an_edit_is_used_at_once(tmp_path: Path) -> None:
    path = tmp_path / "warning_signs.yaml"
    text = BUNDLED.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    first = load_warning_signs(path)
    assert load_warning_signs(path) is first  # not parsed again (each report of a sign loads the file)
    path.write_text(text + "\n# edited\n", encoding="utf-8")
    edited = load_warning_signs(path)
    assert edited is not first and edited.version != first.version
    path.write_text("signs: [", encoding="utf-8")
    for _ in range(2):  # a broken file is refused every time, not remembered
        with pytest.raises(RuleFileError):
            load_warning_signs(path)


def test_the_bundled_action_texts_name_numbers_only_by_placeholder() -> None:
    """A national number written out in an action text would be wrong in the other health system
    (999 and NHS 111 do not exist in Sweden, nor 112 and 1177 in England); the directory gives them."""
    catalogue = load_warning_signs(BUNDLED)
    written = re.compile(r"(?<![\w])(999|112|111|1177)(?![\w])")
    for signs in catalogue.signs.values():
        for sign in signs:
            for text in (sign.action_en, sign.action_sv):
                assert not written.search(text), (sign.code, text)


def test_an_unknown_placeholder_in_an_action_text_is_refused_with_its_line() -> None:
    broken = VALID.replace("action_en: Call now.", "action_en: Call {emergancy} now.", 1)
    assert broken != VALID
    with pytest.raises(RuleFileError) as raised:
        parse_warning_signs(broken)
    [problem] = raised.value.problems
    assert "unknown placeholder '{emergancy}'" in problem.message and problem.line


def test_the_signs_of_two_diagnoses_are_each_ones_own_with_the_common_ones_once() -> None:
    catalogue = load_warning_signs(BUNDLED)
    both = [s.code for s in catalogue.for_diagnosis(("breast", "lung"))]
    for diagnosis in ("breast", "lung"):
        assert set(s.code for s in catalogue.for_diagnosis(diagnosis)) <= set(both), diagnosis
    assert len(both) == len(set(both))  # a common sign once
    assert [s.urgency for s in catalogue.for_diagnosis(("breast", "lung"))] == sorted(
        (s.urgency for s in catalogue.for_diagnosis(("breast", "lung"))), key=URGENCIES.index
    )
    assert catalogue.for_diagnosis(("lung",)) == catalogue.for_diagnosis("lung")
