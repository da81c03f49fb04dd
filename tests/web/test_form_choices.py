"""Choices with words: a form names its choices with ``oneOf`` consts and titles (JSON Schema's way), and the
page shows the words, sends the value, and the engine names a wrong one as it names an enum's."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from api.web.forms import fields_of, parse_fields
from engine.errors import TaskDataError
from engine.instances.forms import check_form_data

RATING = {
    "title": "UKONS rating",
    "oneOf": [
        {"const": "red", "title": "Red: assessment now"},
        {"const": "amber", "title": "Amber: a review within 24 hours"},
        {"const": "green", "title": "Green: self-care advice"},
    ],
}
FORM = {
    "type": "object",
    "properties": {
        "triage_rating": RATING,
        "plain": {"type": "string", "enum": ["yes_now", "later"]},
        "many": {"type": "array", "items": {"oneOf": [{"const": "a", "title": "First"}, {"const": "b"}]}},
        "mixed": {"type": "string", "oneOf": [{"const": "x"}, {"minLength": 3}]},  # not a choice: a rule
    },
    "required": ["triage_rating"],
}


def test_a_oneof_of_consts_is_a_choice_shown_by_its_titles_and_sent_by_value() -> None:
    fields = {f.name: f for f in fields_of(FORM)}
    rating = fields["triage_rating"]
    assert rating.kind == "radios" and [shown for shown, _ in rating.options] == ["red", "amber", "green"]
    assert rating.option_labels["amber"] == "Amber: a review within 24 hours"
    assert fields["plain"].option_labels == {}  # an enum's values are shown readable, as before
    assert fields["many"].kind == "checkboxes" and fields["many"].option_labels == {"a": "First"}
    assert fields["mixed"].kind == "text"
    data, problems = parse_fields(list(fields.values()), MultiDict({"triage_rating": "amber", "many": "a"}))
    assert problems == [] and data["triage_rating"] == "amber" and data["many"] == ["a"]
    _, refused = parse_fields(list(fields.values()), MultiDict({"triage_rating": "purple"}))
    assert [p.code for p in refused] == ["unreadable.options"]


def test_the_engine_names_a_value_outside_the_choices_as_an_enum_and_never_quotes_it() -> None:
    with pytest.raises(TaskDataError) as refused:
        check_form_data(FORM, {"triage_rating": "purple-ish"})
    [problem] = refused.value.problems
    assert (problem.field, problem.code) == ("/triage_rating", "enum")
    assert problem.message == "must be one of ['red', 'amber', 'green']" and "purple" not in problem.message
