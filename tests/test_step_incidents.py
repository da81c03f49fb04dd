"""Any exception raised while a step runs the workflow becomes an incident (issue 11, point 5).

Not only CarePath's and SpiffWorkflow's own errors: a plain Python exception from inside the library
(here a timer whose value is a number, which SpiffWorkflow 3.2 fails on with an AttributeError) or
from a service. The instance goes to ``error`` with the element and the error's type; the request
does not fail, nothing escapes, and the incident never quotes the error's text (it may hold values).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from engine import CarePath
from engine.db.models import InstanceEvent

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="{pid}" name="Step failures" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    {element}
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
NUMBER_TIMER = """<bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>weeks * 7</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>"""
SERVICE = """<bpmn:serviceTask id="wait" name="Look up">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
            id="test.lookup" resultVariable="found"><spiffworkflow:parameters /></spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>"""


def _deploy(carepath: CarePath, pid: str, element: str) -> None:
    carepath.catalog.deploy_upload({f"{pid}.bpmn": DIAGRAM.format(pid=pid, element=element).encode()}, "author")


def _error_events(carepath: CarePath, instance_id: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == "error")
            )
        )


def test_a_plain_exception_inside_spiffworkflow_is_an_incident_on_its_element(carepath: CarePath) -> None:
    _deploy(carepath, "number_timer", NUMBER_TIMER)
    view = carepath.instances.start("number_timer", "MRN-INC-1", "system:ehr", {"weeks": 6})
    assert view.status == "error"
    assert view.incident is not None
    assert view.incident["element"] == "wait"
    assert view.incident["kind"] == "AttributeError"
    assert view.incident["message"] == "AttributeError while running wait"
    [event] = _error_events(carepath, view.id)
    assert event.element == "wait" and json.loads(event.payload)["kind"] == "AttributeError"
    assert carepath.instances.get(view.id).status == "error"  # stored, not only returned


def test_an_incident_never_quotes_the_errors_text(carepath: CarePath) -> None:
    def lookup(context: Any, task: Any, params: dict[str, Any]) -> Any:
        raise KeyError("Jane Doe, NHS 943 476 5919")  # a value the operator happened to hold

    carepath.instances.operators["test.lookup"] = lookup
    _deploy(carepath, "failing_service", SERVICE)
    view = carepath.instances.start("failing_service", "MRN-INC-2", "system:ehr")
    assert view.status == "error" and view.incident is not None
    assert view.incident["element"] == "wait"
    assert "Jane" not in json.dumps(view.incident)
    [event] = _error_events(carepath, view.id)
    assert "Jane" not in event.payload and "943" not in event.payload
