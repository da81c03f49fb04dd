"""What may reach the PDF renderer is bounded: the forms cap their lists, and a document too large to
print is refused before WeasyPrint sees it (6,000 GP actions made every PDF of a summary take a minute
and 380 MB of memory; a 1,000-item care plan 78 s)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from engine.documents.build import END_OF_TREATMENT
from engine.documents.render import MAX_LIST_ENTRIES, MAX_PRINTED_CHARS, DocumentTooLargeError, render_pdf
from engine.errors import TaskDataError
from engine.instances.forms import check_form_data

FORMS = Path(__file__).resolve().parents[1] / "pathways" / "shared" / "forms"  # this checkout's
SUMMARY = {
    "summary_treatments": ["surgery"],
    "effects_to_watch_for": ["fatigue"],
    "warning_signs_given": True,
    "ongoing_support": ["local support group"],
    "gp_actions": ["review fatigue at the cancer care review"],
    "follow_up_model": "patient_initiated",
}
CONNECTION = {"connected_to": ["EXAMPLE-SUPPORT-ORG"], "connected_on": "2026-01-15"}


@pytest.mark.parametrize(
    ("form", "data", "field"),
    [
        ("eot_summary.json", SUMMARY, "summary_treatments"),
        ("eot_summary.json", SUMMARY, "effects_to_watch_for"),
        ("eot_summary.json", SUMMARY, "ongoing_support"),
        ("eot_summary.json", SUMMARY, "gp_actions"),
        ("support_connection.json", CONNECTION, "connected_to"),
    ],
)
def test_the_forms_lists_that_documents_print_hold_at_most_30_entries(
    form: str, data: dict[str, Any], field: str
) -> None:
    schema = (FORMS / form).read_text(encoding="utf-8")
    check_form_data(schema, {**data, field: [f"entry {n}" for n in range(30)]})
    with pytest.raises(TaskDataError) as refused:
        check_form_data(schema, {**data, field: [f"entry {n}" for n in range(31)]})
    [problem] = refused.value.problems
    assert problem.field == f"/{field}" and "maxItems" in problem.message, problem


def _summary(**changes: Any) -> dict[str, Any]:
    """A minimal end of treatment summary document, as the renderer is given it."""
    document: dict[str, Any] = {"document_type": END_OF_TREATMENT, "language": "en", "gp_actions": []}
    document.update(copy.deepcopy(changes))
    return document


def test_a_document_with_a_list_too_long_to_print_is_refused_before_rendering() -> None:
    document = _summary(gp_actions=[f"review {n}" for n in range(MAX_LIST_ENTRIES + 1)])
    with pytest.raises(DocumentTooLargeError) as refused:
        render_pdf(document)
    assert refused.value.where == "/gp_actions"
    assert f"{MAX_LIST_ENTRIES + 1} entries" in str(refused.value)


def test_a_document_too_many_characters_long_to_print_is_refused_before_rendering() -> None:
    document = _summary(gp_actions=["x" * (MAX_PRINTED_CHARS // 4)] * 5)
    assert len(json.dumps(document)) > MAX_PRINTED_CHARS
    with pytest.raises(DocumentTooLargeError) as refused:
        render_pdf(document)
    assert refused.value.where == "/"
