"""The diagram in words (engine.pathways.outline): the authors' pages' text alternative of the drawing."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from engine.pathways.diagrams import BPMN_NS, parse_diagram
from engine.pathways.outline import MAX_STEPS, outline

REPO = Path(__file__).resolve().parent.parent
BUNDLED = sorted([*(REPO / "pathways").glob("*.bpmn"), *(REPO / "pathways" / "shared").glob("*.bpmn")])
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
    '<bpmn:process id="p" name="P" isExecutable="true">'
)
TAIL = "</bpmn:process></bpmn:definitions>"


def _of(path: Path) -> list:
    return outline(parse_diagram(path.read_bytes(), path.name))


def _diagram(body: str) -> list:
    return outline(parse_diagram((HEAD + body + TAIL).encode(), "d.bpmn"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_named_step_of_a_bundled_diagram_is_in_words_once(path: Path) -> None:
    """A text alternative leaves nothing out: every named element the drawing shows is a row, once."""
    tree = etree.parse(str(path))
    named = {
        e.get("id")
        for e in tree.iter()
        if isinstance(e.tag, str)
        and e.tag.startswith(f"{{{BPMN_NS}}}")
        and e.get("name")
        and e.getparent() is not None
        and e.getparent().tag in (f"{{{BPMN_NS}}}process", f"{{{BPMN_NS}}}subProcess")
        and not e.tag.endswith(("sequenceFlow", "laneSet", "dataObject", "dataObjectReference", "textAnnotation"))
    }
    [process] = [p for p in _of(path) if p.steps]
    ids = [s.id for s in process.steps]
    assert len(ids) == len(set(ids)) and named <= set(ids), named - set(ids)
    assert process.complete and process.name


def test_the_breast_pathway_reads_from_its_start_with_each_decisions_answers() -> None:
    [breast] = _of(REPO / "pathways" / "breast.bpmn")
    assert breast.steps[0].kind == "startEvent" and breast.steps[0].name == "Diagnosis confirmed"
    intent = next(s for s in breast.steps if s.name == "Treatment intent?")
    assert intent.kind == "exclusiveGateway" and {label for label, _target in intent.then} == {"palliative", "curative"}
    # Unnamed joins say nothing to a reader: they are left out, and what led to them leads past them.
    assert not any(s.kind.endswith("Gateway") and not s.name and len(s.then) == 1 for s in breast.steps)
    prehab = next(s for s in breast.steps if s.name == "Prehabilitation" and s.kind == "callActivity")
    assert prehab.then == ((None, "Record the completed course of treatment"),) and prehab.detail == "prehabilitation"
    # A branch is read to its end before the next: the MDT's plan comes before the survey's branch.
    order = [s.name for s in breast.steps]
    assert order.index("MDT agrees the treatment plan") < order.index("Quality of life survey (18 months)")
    done = next(s for s in breast.steps if s.name == "All done")
    split = next(s for s in breast.steps if s.name == "Care, reviews and survey in parallel")
    assert (done.kind, done.joins, split.kind, split.joins) == ("parallelGateway", True, "parallelGateway", False)
    died = next(s for s in breast.steps if s.name == "Patient died")
    assert (died.kind, died.trigger, died.detail) == ("intermediateCatchEvent", "message", "patient_died")


def test_a_boundary_timer_is_read_straight_after_its_task() -> None:
    [triage] = _of(REPO / "pathways" / "shared" / "warning_sign_triage.bpmn")
    names = [s.name for s in triage.steps]
    timer = triage.steps[names.index("Triage the reported problem") + 1]
    assert (timer.kind, timer.trigger, timer.attached_to) == ("boundaryEvent", "timer", "Triage the reported problem")
    assert timer.detail == "report['escalate_after']" and timer.lane == "Acute oncology (24-hour line)"


def test_a_diagram_larger_than_the_bound_is_cut_and_says_so() -> None:
    tasks = "".join(f'<bpmn:task id="t{i}" name="Task {i}"/>' for i in range(MAX_STEPS + 50))
    [process] = _diagram(tasks)
    assert len(process.steps) == MAX_STEPS and not process.complete


def test_loops_strays_and_flows_to_nowhere_end_in_one_reading_each() -> None:
    body = (
        '<bpmn:exclusiveGateway id="a"/><bpmn:exclusiveGateway id="b"/>'  # unnamed, each leading to the other
        '<bpmn:sequenceFlow id="f1" sourceRef="a" targetRef="b"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="b" targetRef="a"/>'
        '<bpmn:task id="x" name="Stray"/><bpmn:sequenceFlow id="f3" sourceRef="x" targetRef="nowhere"/>'
        '<bpmn:task id="y" name="Loop"/><bpmn:sequenceFlow id="f4" sourceRef="y" targetRef="y"/>'
        '<bpmn:subProcess id="s" name="Inner"><bpmn:startEvent id="s1" name="Inner start"/></bpmn:subProcess>'
        '<bpmn:transaction id="tr" name="Whole"><bpmn:task id="tt" name="Inside"/></bpmn:transaction>'
    )
    [process] = _diagram(body)
    by_id = {s.id: s for s in process.steps}
    assert set(by_id) == {"x", "y", "s", "s1", "tr", "tt"}  # the unnamed pass-through gateways are left out
    assert by_id["x"].then == ((None, "nowhere"),) and by_id["y"].then == ((None, "Loop"),)
    assert (by_id["s1"].inside, by_id["tt"].inside) == ("Inner", "Whole")


def test_deeply_nested_sub_processes_are_read_without_recursion() -> None:
    depth = 200
    body = "".join(f'<bpmn:subProcess id="s{i}" name="Level {i}">' for i in range(depth)) + "</bpmn:subProcess>" * depth
    [process] = _diagram(body)
    assert len(process.steps) == depth and process.steps[-1].inside == f"Level {depth - 2}"


def test_long_names_are_shortened() -> None:
    [process] = _diagram(f'<bpmn:task id="t" name="{"x" * 5000}"/>')
    assert len(process.steps[0].name) == 200 and process.steps[0].name.endswith("…")
