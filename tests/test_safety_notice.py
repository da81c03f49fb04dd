"""The safety notice a form declares, filled from the service directory (engine.documents.notices)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.directory import parse_service_directory
from engine.documents.notices import NOTICE_KEY, NOTICE_KINDS, TEXT_KEY, fill_form, safety_notice
from engine.settings import bundled_service_directory

REPO = Path(__file__).resolve().parent.parent
BUNDLED = bundled_service_directory().read_text(encoding="utf-8")


def _directory(england: str = "01632 960100", sweden: str = "08-465 004 00") -> object:
    text = BUNDLED.replace('phone: "01632 960100"', f'phone: "{england}"', 1)
    return parse_service_directory(text.replace('phone: "08-465 004 00"', f'phone: "{sweden}"', 1))


def test_the_bundled_checklist_declares_the_24_hour_line_and_no_pointer_elsewhere() -> None:
    form = json.loads((REPO / "pathways/shared/forms/hna_checklist.json").read_text(encoding="utf-8"))
    assert form[NOTICE_KEY] == "twenty_four_hour_line"
    assert "24-hour" not in form["description"]  # the number comes from the directory, never from the file
    for path in sorted((REPO / "pathways").rglob("*.json")):
        declared = json.loads(path.read_text(encoding="utf-8")).get(NOTICE_KEY)
        assert declared is None or declared in NOTICE_KINDS, path


@pytest.mark.parametrize(("language", "system"), [("en", "england"), ("sv", "sweden"), ("sv", "england")])
def test_the_notice_is_in_the_readers_language_with_the_patients_numbers(language: str, system: str) -> None:
    directory = _directory("01632 960142", "08-465 004 42")
    health_system = directory.systems[system]  # type: ignore[attr-defined]
    notice = safety_notice(directory, language, system=health_system)  # type: ignore[arg-type]
    phone = "01632 960142" if system == "england" else "08-465 004 42"
    assert notice["phone"] == phone and phone in notice["text"] and notice["language"] == language
    assert notice["example"] is True and "{" not in notice["text"] and "}" not in notice["text"]
    line = health_system.twenty_four_hour_line
    assert notice["line"] == line.name(language) and line.name(language) in notice["text"]
    assert notice["hours_label"] in notice["text"]
    assert notice["text"].startswith("If you have a temperature" if language == "en" else "Om du får feber")


def test_without_a_patient_the_notice_has_the_deployments_numbers_whatever_the_language() -> None:
    directory = _directory("01632 960142", "08-465 004 42")
    for language in ("en", "sv"):  # the bundled directory's first section, england, in either language
        assert safety_notice(directory, language)["phone"] == "01632 960142"  # type: ignore[arg-type]
    sweden = directory.for_deployment("sweden")  # type: ignore[attr-defined]
    assert safety_notice(directory, "en", system=sweden)["phone"] == "08-465 004 42"  # type: ignore[arg-type]


def test_another_directory_gives_another_number() -> None:
    before, after = (safety_notice(_directory(phone), "en")["text"] for phone in ("01632 960142", "01632 960143"))
    assert "01632 960142" in before and "01632 960143" in after and before != after


def test_an_unknown_language_gets_english_and_an_unknown_notice_is_refused() -> None:
    assert safety_notice(_directory(), "de")["language"] == "en"
    with pytest.raises(ValueError, match="unknown safety notice"):
        fill_form({NOTICE_KEY: "call_someone", "type": "object"}, _directory(), "en")


def test_filling_copies_the_form_and_leaves_undeclared_forms_alone() -> None:
    form = {"type": "object", NOTICE_KEY: "twenty_four_hour_line", "description": "Score each concern."}
    filled = fill_form(form, _directory(), "sv")
    assert filled is not None and TEXT_KEY not in form and form["description"] == "Score each concern."
    assert filled[TEXT_KEY]["language"] == "sv"
    assert filled["description"] == f"{filled[TEXT_KEY]['text']} Score each concern."
    plain = {"type": "object", "description": "Nothing to warn about."}
    assert fill_form(plain, _directory(), "en") is plain and fill_form(None, _directory(), "en") is None
