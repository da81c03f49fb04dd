"""Robust steps (issue 12, point 2): no diagram, however broken, makes a step spin, hang or raise.

A step runs a bounded number of automatic tasks and subprocesses a bounded depth; past either, the
instance goes to an incident on the task that would have run next. Diagrams the gate now refuses may
still be deployed from before it: they are stored here as such a version would be, and starting them
ends in an incident that says why, never in an exception or a request that does not return.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine import CarePath
from engine.db.models import InstanceEvent, PathwayVersion
from engine.db.session import unit_of_work
from engine.instances.step import MAX_CALL_DEPTH, MAX_STEP_TASKS
from engine.instances.view import InstanceView
from engine.pathways.sources import PathwaySource, compile_source, files_to_json
from engine.spiff import serializer

HOSTILE = Path(__file__).resolve().parent / "diagrams" / "hostile"
SECONDS = 60.0  # a generous bound on any one step here: an overrun means it spun or hung
NOTE_FORM = (HOSTILE / "note.json").read_bytes()

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    {element}
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
REVIEW_THEN_LOOP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="review_then_loop" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:userTask id="review" name="Review"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="formJsonSchemaFilename" value="note.json" /></spiffworkflow:properties>
      </bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="again" />
    <bpmn:exclusiveGateway id="again" default="f3"><bpmn:incoming>f2</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f5</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="count" />
    <bpmn:scriptTask id="count"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>counted = True</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="count" targetRef="again" />
    <bpmn:sequenceFlow id="f5" sourceRef="again" targetRef="end">
      <bpmn:conditionExpression>note == "stop"</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _bounded(step: Any) -> Any:
    """Run ``step`` in a thread and return what it returned; fail if it overruns or raises."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = step()
        except BaseException as exc:  # noqa: BLE001 - reported below, failing the test
            outcome["raised"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(SECONDS)
    assert not worker.is_alive(), f"the step was still running after {SECONDS} s"
    if "raised" in outcome:
        raise AssertionError(f"the step raised {type(outcome['raised']).__name__}") from outcome["raised"]
    return outcome["value"]


def _deployed_before_the_gate(
    carepath: CarePath, pathway_id: str, diagram: str, forms: dict[str, bytes] | None = None
) -> None:
    """Store a version the way a deploy did before the gate: compiled, not validated."""
    source = PathwaySource(pathway_id, f"{pathway_id}.bpmn", {f"{pathway_id}.bpmn": diagram.encode(), **(forms or {})})
    compiled = compile_source(source)
    spec = serializer.serialize_specs(compiled.spec, compiled.subprocess_specs)
    with unit_of_work(carepath.sessions) as session:
        session.add(
            PathwayVersion(
                pathway_id=pathway_id,
                version=source.version,
                title=pathway_id,
                main_file=source.main_file,
                files=files_to_json(source.files),
                spec=spec,
                deployed_at=carepath.clock.now(),
                deployed_by="author:before-the-gate",
                activated_at=carepath.clock.now(),
                activated_by="system:before-four-eyes",
            )
        )  # as migration 0014 marks the versions before it


def _incident(view: InstanceView) -> dict[str, Any]:
    assert view.status == "error" and view.incident is not None, view
    return view.incident


def test_an_automatic_loop_is_an_incident_and_a_retry_is_bounded_too(carepath: CarePath) -> None:
    carepath.catalog.deploy_upload({"loop.bpmn": (HOSTILE / "automatic_loop.bpmn").read_bytes()}, "author")
    view = _bounded(lambda: carepath.instances.start("hostile_loop", "MRN-BOUND-1", "system:test"))
    incident = _incident(view)
    assert incident["element"] in {"Gateway_again", "Activity_count"}
    assert (
        incident["message"] == f"the step ran {MAX_STEP_TASKS} tasks without waiting for a person, a message or a timer"
    )
    assert incident["kind"] == "WorkflowError"
    again = _bounded(lambda: carepath.instances.retry(view.id, "clinician:duty-manager"))
    assert _incident(again)["message"] == incident["message"]
    with carepath.sessions() as session:
        errors = session.scalars(
            select(InstanceEvent.type).where(InstanceEvent.instance_id == view.id, InstanceEvent.type == "error")
        ).all()
    assert len(errors) == 2


def test_the_bound_holds_when_completing_a_task(carepath: CarePath) -> None:
    carepath.instances.steps.max_step_tasks = 40  # a deployment may lower it
    carepath.catalog.deploy_upload({"loop.bpmn": REVIEW_THEN_LOOP.encode(), "note.json": NOTE_FORM}, "author")
    view = carepath.instances.start("review_then_loop", "MRN-BOUND-2", "system:test")
    [task] = view.ready_tasks
    done = _bounded(lambda: carepath.instances.complete_task(view.id, task["id"], {"note": "again"}, "clinician:x"))
    assert "the step ran 40 tasks" in _incident(done)["message"]
    assert carepath.instances.get(view.id).status == "error"  # stored


def test_a_process_calling_itself_from_before_the_gate_is_an_incident(carepath: CarePath) -> None:
    _deployed_before_the_gate(carepath, "hostile_call_itself", (HOSTILE / "call_itself.bpmn").read_text())
    view = _bounded(lambda: carepath.instances.start("hostile_call_itself", "MRN-BOUND-3", "system:test"))
    assert f"subprocesses nested more than {MAX_CALL_DEPTH} deep" in _incident(view)["message"]


@pytest.mark.parametrize(
    ("element", "words"),
    [
        (
            '<bpmn:scriptTask id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            "<bpmn:script>import os</bpmn:script></bpmn:scriptTask>",
            "the script is outside the safe language: import is not allowed (line 1, col 1)",
        ),
        (
            '<bpmn:intermediateCatchEvent id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            '<bpmn:timerEventDefinition><bpmn:timeDuration>"P100000Y"</bpmn:timeDuration></bpmn:timerEventDefinition>'
            "</bpmn:intermediateCatchEvent>",
            "timer duration refused: it lasts more than a hundred years",
        ),
        (
            '<bpmn:intermediateCatchEvent id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
            '<bpmn:timerEventDefinition><bpmn:timeDate>"9999-12-31T23:59:59Z"</bpmn:timeDate></bpmn:timerEventDefinition>'
            "</bpmn:intermediateCatchEvent>",
            "timer date refused: its date is outside the years 1900 to 2199",
        ),
    ],
)
def test_what_the_gate_refuses_today_is_an_incident_saying_why(carepath: CarePath, element: str, words: str) -> None:
    pid = f"before_gate_{abs(hash(element)) % 10_000}"
    _deployed_before_the_gate(carepath, pid, DIAGRAM.format(pid=pid, element=element))
    incident = _incident(_bounded(lambda: carepath.instances.start(pid, "MRN-BOUND-4", "system:test")))
    assert incident["element"] == "work" and incident["message"] == words


def test_a_zero_period_cycle_from_before_the_gate_is_an_incident(carepath: CarePath) -> None:
    text = (HOSTILE / "timer_cycle_zero.bpmn").read_text().replace(">R/PT0S<", '>"R5/PT0S"<')
    _deployed_before_the_gate(carepath, "hostile_cycle_zero", text, {"note.json": NOTE_FORM})
    incident = _incident(_bounded(lambda: carepath.instances.start("hostile_cycle_zero", "MRN-BOUND-5", "system:x")))
    assert incident["element"] == "Event_remind"
    assert incident["message"] == "timer cycle refused: its period is shorter than one minute"
