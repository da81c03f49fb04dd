"""A task without a form declares no fields: data sent to it is refused field by field (422, code
``undeclared``), as a field a form does not declare is. Task data becomes the instance's data, which
steers the pathway, so a formless task must not be a way to set ``palliative_route`` or any other flag.

Three kinds of task wait for a person without a form of their own: a user task drawn without one (a
confirmation step, whose form is ``additionalProperties: false`` with no fields), a manual task and a
plain ``bpmn:task`` (no form at all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import CarePath
from engine.errors import StartDataError, TaskDataError
from engine.instances.forms import check_form_data, check_start_data

FORMS = Path(__file__).resolve().parent.parent / "pathways" / "shared" / "forms"

STEERING = {"palliative_route": "SECRET-ROUTE", "note": "SECRET-NOTE"}


def formless_diagram(pid: str, tag: str) -> bytes:
    """A pathway ``pid`` of one task ``work`` of the kind ``tag``, drawn without a form."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:{tag} id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:{tag}>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
""".encode()


def _formless(carepath: CarePath, tag: str, patient_ref: str) -> Any:
    pid = f"formless_{tag.lower()}"
    carepath.catalog.deploy_upload({f"{pid}.bpmn": formless_diagram(pid, tag)}, "author")
    return carepath.instances.start(pid, patient_ref, "system:test")


@pytest.mark.parametrize("tag", ["userTask", "manualTask", "task"])
def test_a_task_without_a_form_refuses_every_field_and_takes_an_empty_object(carepath: CarePath, tag: str) -> None:
    view = _formless(carepath, tag, f"MRN-FORMLESS-{tag}")
    [ready] = view.ready_tasks
    with pytest.raises(TaskDataError) as refused:
        carepath.instances.complete_task(view.id, ready["id"], STEERING, "clinician:x")
    assert [(p.code, p.field) for p in refused.value.problems] == [
        ("undeclared", "/note"),
        ("undeclared", "/palliative_route"),
    ]
    assert "SECRET" not in str(refused.value) + repr(refused.value.problems)  # fields named, values never
    after = carepath.instances.get(view.id)
    assert (after.version, [t["id"] for t in after.ready_tasks]) == (view.version, [ready["id"]])  # nothing done
    done = carepath.instances.complete_task(view.id, ready["id"], {}, "clinician:x")
    assert done.status == "completed"
    assert "palliative_route" not in carepath.instances.instance_data(view.id)


@pytest.mark.parametrize(
    "form",
    [None, {"type": "object", "properties": {}, "additionalProperties": False}, '{"type": "object", "properties": {}}'],
)
def test_a_form_that_declares_no_fields_names_each_one_sent(form: Any) -> None:
    with pytest.raises(TaskDataError) as refused:
        check_form_data(form, {"b": 1, "a": 2})
    assert [(p.code, p.field) for p in refused.value.problems] == [("undeclared", "/a"), ("undeclared", "/b")]
    check_form_data(form, {})


def test_a_form_with_its_own_rule_for_extra_fields_keeps_it() -> None:
    """A form that declares fields and refuses others keeps jsonschema's rule (each key it refuses named);
    one that allows others by pattern takes them."""
    closed = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    with pytest.raises(TaskDataError) as refused:
        check_form_data(closed, {"a": 1, "b": 2})
    assert [(p.code, p.field) for p in refused.value.problems] == [("additionalProperties", "/b")]
    check_form_data({"type": "object", "properties": {}, "patternProperties": {"^x_": {}}}, {"x_1": 1})


def test_a_key_a_form_refuses_is_named_with_the_closest_field_never_its_value() -> None:
    # A misspelt concern gave "/concerns: fails 'additionalProperties' (expected False)".
    form = json.loads((FORMS / "hna_checklist.json").read_text())
    concerns = next(iter(form["properties"]["concerns"]["properties"]))
    data = {"concerns": {concerns: 3, "fatige": 6, "SECRET-VALUE-KEY": "private text"}}
    with pytest.raises(TaskDataError) as refused:
        check_form_data(form, data)
    extra = {p.field: p.message for p in refused.value.problems if p.code == "additionalProperties"}
    assert extra["/concerns/fatige"] == "is not one of the concerns of this form; did you mean 'fatigue'?"
    assert "/concerns/SECRET-VALUE-KEY" in extra
    assert "private text" not in str(refused.value.problems) and "6" not in extra["/concerns/fatige"]
    with pytest.raises(StartDataError) as refused_start:
        check_start_data(
            json.dumps({"type": "object", "properties": {"age": {}}, "additionalProperties": False}), {"agee": 1}
        )
    [problem] = refused_start.value.problems
    assert (problem.field, problem.message) == (
        "/data/agee",
        "is not a field of this start data schema; did you mean 'age'?",
    )
