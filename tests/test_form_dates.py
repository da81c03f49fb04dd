"""``x-carepath-not-after: today`` (engine.instances.forms): a date that records what has happened may not be
after today; the engine gives today from its clock, where it is latest on Earth. ``x-carepath-choices``: a
code from a list the engine holds (the warning signs in use)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from engine.calendar import latest_today
from engine.errors import TaskDataError
from engine.instances.forms import NOT_AFTER, check_form_data
from engine.pathways.start_schema import parse_start_schema
from engine.spiff.form_keywords import CHOICES, keyword_mistakes

TODAY = date(2026, 1, 15)
FORM = {
    "type": "object",
    "properties": {
        "seen_on": {"type": "string", "format": "date", NOT_AFTER: "today"},
        "review_on": {"type": "string", "format": "date"},  # a date that plans: not bounded
        "plan": {
            "type": "object",
            "properties": {"recorded_on": {"type": "string", "format": "date", NOT_AFTER: "today"}},
        },
    },
}


def _refused(data: dict[str, object], today: date | None = TODAY) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(TaskDataError) as refused:
        check_form_data(FORM, data, today)
    return [(p.field, p.code, p.message) for p in refused.value.problems]


def test_today_and_before_pass_and_a_plan_may_be_in_the_future() -> None:
    check_form_data(
        FORM, {"seen_on": "2026-01-15", "review_on": "2031-01-01", "plan": {"recorded_on": "2025-12-01"}}, TODAY
    )


def test_a_date_after_today_is_named_by_its_field_and_never_quoted() -> None:
    found = _refused({"seen_on": "2026-01-16", "plan": {"recorded_on": "2031-01-05"}})
    assert found == [
        ("/plan/recorded_on", NOT_AFTER, "cannot be after today"),
        ("/seen_on", NOT_AFTER, "cannot be after today"),
    ]
    assert "2031" not in str(found)


def test_a_value_that_is_not_a_date_is_the_formats_problem_alone() -> None:
    assert [code for _field, code, _message in _refused({"seen_on": "2026-13-45"})] == ["format"]


def test_without_today_the_bound_is_not_applied() -> None:
    """Checks outside a step (a form's own examples) have no clock: the engine always gives one."""
    check_form_data(FORM, {"seen_on": "2099-01-01"}, None)


@pytest.mark.parametrize(
    ("now", "today"),
    [
        (datetime(2026, 1, 15, 9, 59, tzinfo=UTC), date(2026, 1, 15)),
        (datetime(2026, 1, 15, 10, 0, tzinfo=UTC), date(2026, 1, 16)),  # midnight at UTC+14
        (datetime(2026, 1, 15, 23, 30), date(2026, 1, 16)),  # a clock without a zone gives UTC
    ],
)
def test_today_is_the_latest_date_on_earth(now: datetime, today: date) -> None:
    assert latest_today(now) == today


def test_mistakes_in_carepaths_keywords_are_named_by_pointer() -> None:
    schema = {
        "properties": {
            "a": {"type": "string", NOT_AFTER: "today"},
            "b": {"type": "array", "items": {"format": "date", NOT_AFTER: "yesterday"}},
            "c": {"type": "string", "format": "date", NOT_AFTER: "today"},
            "d": {"type": "integer", CHOICES: "warning_signs"},
            "e": {"type": "string", CHOICES: "drugs"},
            "f": {"type": "string", CHOICES: "warning_signs"},
        }
    }
    assert keyword_mistakes(schema) == [
        '/properties/a: x-carepath-not-after needs "format": "date" on the same field',
        '/properties/b/items: x-carepath-not-after may only be "today"',
        '/properties/d: x-carepath-choices needs "type": "string" on the same field',
        "/properties/e: x-carepath-choices may only be one of: warning_signs",
    ]


def test_a_start_schema_with_a_mistaken_bound_is_refused_at_the_gate() -> None:
    schema = (
        b'{"type": "object", "properties": {"diagnosis_date": {"type": "string", "x-carepath-not-after": "today"}}}'
    )
    found, problems = parse_start_schema(schema, "breast.start.schema.json")
    assert found is None and [p.code for p in problems] == ["start-schema"]
    assert 'needs "format": "date"' in problems[0].message


CHOOSING = {
    "type": "object",
    "properties": {"sign": {"type": "string", "pattern": "^[a-z_]+$", CHOICES: "warning_signs"}},
}


def test_a_choice_outside_its_list_is_refused_by_field_and_never_quoted() -> None:
    codes = {"warning_signs": frozenset({"fever_on_treatment", "cellulitis"})}
    check_form_data(CHOOSING, {"sign": "cellulitis"}, TODAY, codes)
    with pytest.raises(TaskDataError) as refused:
        check_form_data(CHOOSING, {"sign": "celulitis"}, TODAY, codes)
    assert [(p.field, p.code, p.message) for p in refused.value.problems] == [
        ("/sign", "enum", "is not a warning sign of the catalogue in use")
    ]
    assert "celulitis" not in str(refused.value)
    check_form_data(CHOOSING, {"sign": "celulitis"}, TODAY)  # without the list (no engine): the pattern alone
