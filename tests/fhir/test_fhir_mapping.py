"""The pure mappings of engine/fhir: patient identifiers, the status tables, the checklist against its form,
and a summary whose JSON grew a field (issue 17, point 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fhir_r4
import pytest

from engine.directory import load_service_directory, parse_service_directory
from engine.errors import InvalidInputError
from engine.fhir import CAREPATH_PATIENT_SYSTEM, SYSTEMS, answers_to_task_data, composition, patient_reference
from engine.fhir.careplans import service_request
from engine.fhir.identifiers import patient_ref_from_identifier, patient_ref_from_search
from engine.fhir.questionnaires import ABOUT_YOU, questionnaire
from engine.rules import load_catalogue
from engine.settings import Settings, bundled_service_directory

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(REPO / "rules" / "catalogues")
DIRECTORY = load_service_directory(bundled_service_directory())
PATIENT = patient_reference("9434765919", "nhs-number")


@pytest.mark.parametrize(
    "kind,valid,invalid",
    [
        (
            "nhs-number",
            ["9434765919", "4010232137"],
            ["9434765918", "943476591", "94347659190", "MRN-1001", "０４０１０２３２１３"],
        ),
        (
            "personnummer",
            ["191212121212", "200001012327"],
            ["191212121213", "19121212-1212", "191213121212", "1212121212"],
        ),
    ],
)
def test_identifiers_of_the_deployments_system(kind: str, valid: list[str], invalid: list[str]) -> None:
    for value in valid:
        assert patient_reference(value, kind)["identifier"] == {"system": SYSTEMS[kind], "value": value}
        assert patient_ref_from_identifier(SYSTEMS[kind], value, kind, "f") == value
    for value in invalid:  # never passed off as the deployment's system
        assert patient_reference(value, kind)["identifier"]["system"] == CAREPATH_PATIENT_SYSTEM
        with pytest.raises(InvalidInputError) as refused:
            patient_ref_from_identifier(SYSTEMS[kind], value, kind, "f")
        assert value not in str(refused.value) + str(refused.value.problems)


PERSONNUMMER_OID = "urn:oid:1.2.752.129.2.1.3.1"


def test_the_personnummer_oid_is_read_as_the_personnummer_and_the_uri_is_written() -> None:
    assert patient_ref_from_identifier(PERSONNUMMER_OID, "191212121212", "personnummer", "f") == "191212121212"
    assert patient_ref_from_search("patient:identifier", f"{PERSONNUMMER_OID}|191212121212", "personnummer") == (
        "191212121212"
    )
    assert patient_reference("191212121212", "personnummer")["identifier"]["system"] == SYSTEMS["personnummer"]
    with pytest.raises(InvalidInputError) as refused:  # checked as the URI's values are, never quoted
        patient_ref_from_identifier(PERSONNUMMER_OID, "191212121213", "personnummer", "f")
    assert "191212121213" not in str(refused.value) + str(refused.value.problems)
    with pytest.raises(InvalidInputError):  # the Swedish OID names no NHS number
        patient_ref_from_identifier(PERSONNUMMER_OID, "9434765919", "nhs-number", "f")


def test_the_identifier_system_is_a_deployment_setting() -> None:
    assert Settings().fhir_patient_identifier == "nhs-number"
    assert (
        Settings.from_env({"CAREPATH_FHIR_PATIENT_IDENTIFIER": "Personnummer"}).fhir_patient_identifier
        == "personnummer"
    )
    with pytest.raises(ValueError, match="CAREPATH_FHIR_PATIENT_IDENTIFIER"):
        Settings(fhir_patient_identifier="ssn")
    with pytest.raises(InvalidInputError):  # an NHS number system on a Swedish deployment
        patient_ref_from_identifier(SYSTEMS["nhs-number"], "9434765919", "personnummer", "f")


def test_search_names_the_patient_three_ways() -> None:
    assert patient_ref_from_search("patient", "SYN-0001", "nhs-number") == "SYN-0001"
    assert patient_ref_from_search("patient", "Patient/9434765919", "nhs-number") == "9434765919"
    assert (
        patient_ref_from_search("patient:identifier", f"{SYSTEMS['nhs-number']}|9434765919", "nhs-number")
        == "9434765919"
    )
    for name, value in (("patient", "Jane Smith"), ("patient:identifier", "9434765919")):
        with pytest.raises(InvalidInputError) as refused:
            patient_ref_from_search(name, value, "nhs-number")
        assert value not in str(refused.value.problems)


def _item(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "0b1e8f0c-3c43-4b0c-9d58-3f0a4f9b7e21",
        "kind": "referral",
        "code": "psychological-support-referral",
        "service": "psychological_support",
        "urgency": "urgent",
        "rules": ["psych-support-urgent"],
        "status": status,
        "evaluation_id": "6c1b3a55-2f8e-4d3e-a5a4-0d7a8f1c2b33",
        "task_id": "t",
        "created_at": "2026-01-15T09:00:00",
        "updated_at": "2026-01-16T10:00:00+00:00",
        "updated_by": "x",
        **extra,
    }


@pytest.mark.parametrize(
    "status,expected",
    [
        ("proposed", ("draft", "proposal")),
        ("agreed", ("active", "plan")),
        ("referred", ("active", "order")),
        ("completed", ("completed", "order")),
        ("declined", ("revoked", "proposal")),
    ],
)
def test_every_referral_status_maps_onto_fhir(status: str, expected: tuple[str, str]) -> None:
    request = service_request(_item(status), "9d1c0f3e-8a8b-4b8e-b1f4-0a2c3d4e5f60", PATIENT, CATALOGUE)
    assert (request["status"], request["intent"]) == expected
    assert request["authoredOn"] == "2026-01-15T09:00:00+00:00"  # SQLite's zone-less times are UTC
    assert fhir_r4.problems(request) == []


@pytest.mark.parametrize(
    "urgency,priority",
    [("routine", "routine"), ("soon", "urgent"), ("urgent", "asap"), ("emergency", "stat"), (None, None)],
)
def test_urgency_maps_onto_priority(urgency: str | None, priority: str | None) -> None:
    request = service_request(_item("agreed", urgency=urgency), "x", PATIENT, CATALOGUE)
    assert request.get("priority") == priority


def test_the_checklist_questions_are_the_forms() -> None:
    """The about-you questions and their types are the bundled checklist form's (drift fails here)."""
    form = json.loads((REPO / "pathways" / "shared" / "forms" / "hna_checklist.json").read_text())
    about = form["properties"]["about_you"]["properties"]
    assert [q.link_id for q in ABOUT_YOU] == list(about)
    types = {"choice": "string", "boolean": "boolean", "integer": "integer", "decimal": "number"}
    for q in ABOUT_YOU:
        assert types[q.type] == about[q.link_id]["type"] and q.text == about[q.link_id]["title"]
        assert (q.minimum, q.maximum) == (about[q.link_id].get("minimum"), about[q.link_id].get("maximum"))
    assert set(form["properties"]["concerns"]["properties"]) <= set(CATALOGUE.concerns)
    assert fhir_r4.problems(questionnaire(CATALOGUE, DIRECTORY)) == []


def test_answers_map_back_to_the_forms_data() -> None:
    response = {
        "item": [
            {
                "linkId": "concerns",
                "item": [{"linkId": "physical", "item": [{"linkId": "pain", "answer": [{"valueInteger": 4}]}]}],
            },
            {
                "linkId": "about_you",
                "item": [
                    {"linkId": "travel_km", "answer": [{"valueDecimal": 12.5}]},
                    {"linkId": "caring_duties", "answer": [{"valueBoolean": False}]},
                ],
            },
        ]
    }
    assert answers_to_task_data(response, CATALOGUE) == {
        "concerns": {"pain": 4},
        "about_you": {"travel_km": 12.5, "caring_duties": False},
    }
    twice = {
        "item": [
            {"linkId": "pain", "answer": [{"valueInteger": 4}]},
            {"linkId": "pain", "answer": [{"valueInteger": 5}]},
            {"linkId": "fatigue", "answer": [{"valueInteger": 1}, {"valueInteger": 2}]},
            {"linkId": "lives_alone", "answer": [{"valueInteger": 1}]},
        ]
    }
    with pytest.raises(InvalidInputError) as refused:
        answers_to_task_data(twice, CATALOGUE)
    assert [p.message for p in refused.value.problems] == [
        "item pain is answered more than once",
        "item fatigue needs exactly one answer",
        "item lives_alone takes valueBoolean",
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_answer_is_refused_where_it_is(value: float) -> None:
    response = {
        "item": [{"linkId": "about_you", "item": [{"linkId": "travel_km", "answer": [{"valueDecimal": value}]}]}]
    }
    with pytest.raises(InvalidInputError) as refused:
        answers_to_task_data(response, CATALOGUE)
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("QuestionnaireResponse.item[0].item[0].answer[0]", "item travel_km takes a finite valueDecimal")
    ]


def test_a_summary_that_grew_a_field_still_maps(tmp_path: Path) -> None:
    summary = {
        "document_type": "end_of_treatment_summary",
        "instance_id": "9d1c0f3e-8a8b-4b8e-b1f4-0a2c3d4e5f60",
        "generated_at": "2026-03-01T09:00:00+00:00",
        "language": "en",
        "title": "End of Treatment Summary",
        "patient_ref": "9434765919",
        "treatments_received": [{"code": "surgery", "label": "Surgery"}],
        "completed_on": "2026-02-20",
        "effects_to_watch_for": [],
        "psychosocial_<b>review</b>": {
            "label": "Booked",
            "when": "2026-04-01",
            "with": {"name": "Team <A>"},
            "confirmed": True,
        },
        "referrals_made": {"care_plan": [_item("referred")]},
    }
    doc = composition(summary, PATIENT, "CarePath test")
    assert fhir_r4.problems(doc) == []
    titles = [s["title"] for s in doc["section"]]
    assert titles == [
        "Treatment received",
        "Treatment completed on",
        "Effects to watch for",
        "Psychosocial <b>review</b>",
        "Referrals made",
    ]
    added = doc["section"][3]["text"]["div"]
    assert "Booked" in added and "Team &lt;A&gt;" in added and "Yes" in added and "<b>" not in added
    assert doc["section"][2]["text"]["div"].endswith(">None recorded</div>")
    assert doc["section"][4]["entry"] == [{"reference": "ServiceRequest/0b1e8f0c-3c43-4b0c-9d58-3f0a4f9b7e21"}]


def test_the_checklist_opens_with_the_24_hour_line_in_english_and_swedish() -> None:
    """The display item carries the deployment's 24-hour line from the directory (issue 13 point 5), in
    English and in Swedish: the translation changes the words, never the number."""
    text = bundled_service_directory().read_text(encoding="utf-8")
    moved = parse_service_directory(text.replace('phone: "01632 960100"', 'phone: "01632 960155"', 1))
    notice = questionnaire(CATALOGUE, moved)["item"][0]
    assert (notice["linkId"], notice["type"]) == ("safety-notice", "display")
    assert "01632 960155" in notice["text"] and "call the 24-hour line now" in notice["text"]
    translation = notice["_text"]["extension"][0]
    assert translation["url"] == "http://hl7.org/fhir/StructureDefinition/translation"
    lang, content = translation["extension"]
    assert lang == {"url": "lang", "valueCode": "sv"}
    assert content["valueString"].startswith("Om du får feber") and "01632 960155" in content["valueString"]
    assert "{" not in notice["text"] + content["valueString"]
    sweden = str(moved.systems["sweden"].twenty_four_hour_line.phone)
    swedish_deployment = questionnaire(CATALOGUE, moved, "sweden")["item"][0]
    assert sweden in swedish_deployment["text"] and "01632 960155" not in swedish_deployment["text"]
    assert sweden in swedish_deployment["_text"]["extension"][0]["extension"][1]["valueString"]
    assert fhir_r4.problems(questionnaire(CATALOGUE, moved)) == []
