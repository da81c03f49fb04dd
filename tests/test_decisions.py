"""Decision tables (issue 12, point 4): DMN tables drawn in Camunda Modeler / bpmn.io run with the safe
expression language, with each hit policy's semantics; cells outside what CarePath translates are
refused at validate and deploy with file:line: decision-id; each evaluation is recorded and explained."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from engine import ManualClock
from engine.app import CarePath
from engine.db.models import DecisionEvaluationRecord, InstanceEvent
from engine.db.session import read_only
from engine.decisions import evaluate_decision, read_decisions, translate_unary_tests
from engine.errors import DiagramError, ExpressionError, WorkflowError
from engine.expressions import SafeEnvironment
from engine.pathways.bundle import read_bundle_folder
from engine.pathways.sources import compile_source
from engine.pathways.validation import format_problems, validate_paths

FOLDER = Path(__file__).resolve().parent / "pathways"
DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"
CLOCK = ManualClock(datetime(2026, 1, 15, 9, tzinfo=UTC))


def dmn(
    rules: list[tuple[list[str], list[str]]],
    *,
    hit_policy: str = "UNIQUE",
    aggregation: str | None = None,
    inputs: tuple[str, ...] = ("score",),
    outputs: tuple[str, ...] = ("result",),
    output_values: str = "",
    namespace: str = DMN13,
) -> bytes:
    """A DMN file laid out as Camunda Modeler writes it."""
    columns = "".join(
        f'\n      <input id="Input_{i}" label="{text}">\n        <inputExpression id="IE_{i}" '
        f'typeRef="string">\n          <text>{escape(text)}</text>\n        </inputExpression>'
        "\n      </input>"
        for i, text in enumerate(inputs)
    )
    values = f'<outputValues id="OV"><text>{output_values}</text></outputValues>' if output_values else ""
    columns += "".join(
        f'\n      <output id="Output_{i}" name="{name}" typeRef="string">{values}</output>'
        for i, name in enumerate(outputs)
    )
    body = ""
    for n, (entries, results) in enumerate(rules, start=1):
        body += f'\n      <rule id="Rule_{n}">'
        body += "".join(
            f'\n        <inputEntry id="IN_{n}_{i}"><text>{escape(e)}</text></inputEntry>'
            for i, e in enumerate(entries)
        )
        body += "".join(
            f'\n        <outputEntry id="OUT_{n}_{i}"><text>{escape(r)}</text></outputEntry>'
            for i, r in enumerate(results)
        )
        body += "\n      </rule>"
    aggregate = f' aggregation="{aggregation}"' if aggregation else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<definitions xmlns="{namespace}" id="Defs" name="DRD" '
        f'namespace="http://camunda.org/schema/1.0/dmn">\n  <decision id="choose" name="Choose">\n'
        f'    <decisionTable id="Table" hitPolicy="{hit_policy}"{aggregate}>{columns}{body}\n'
        "    </decisionTable>\n  </decision>\n</definitions>\n"
    ).encode()


def run(content: bytes, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    tables, problems = read_decisions(content, "t.dmn")
    assert problems == []
    outcome = evaluate_decision(tables["choose"], data, SafeEnvironment(CLOCK))
    return outcome.matched, outcome.outputs


@pytest.mark.parametrize(
    ("entry", "value", "holds"),
    [
        ("-", "anything", True),
        ("", None, True),
        ('"a"', "a", True),
        ('"a"', "b", False),
        ('"a","b"', "b", True),
        ('"a","b"', "c", False),
        ("< 5", 4, True),
        ("< 5", 5, False),
        ("<= 5", 5, True),
        ("> 5", 6, True),
        (">= 8", 8, True),
        (">= 8", 7, False),
        ("[1..5]", 1, True),
        ("[1..5]", 5, True),
        ("]1..5]", 1, False),
        ("[1..5[", 5, False),
        ("(1..5)", 3, True),
        ("[1..5)", 5, False),
        ("[1.5..2.5]", 2, True),
        ('not("a")', "b", True),
        ('not("a","b")', "a", False),
        ("not([1..5])", 7, True),
        ("not(< 3)", 2, False),
        ("true", True, True),
        ("false", True, False),
        ("null", None, True),
        ("null", 0, False),
        ("limit", 3, True),
        ("-2", -2, True),
        ("< 5, > 10", 11, True),
        ("< 5", None, False),
        ("[1..5]", None, False),
    ],
)
def test_feel_unary_tests_translate_to_the_safe_language(entry: str, value: Any, holds: bool) -> None:
    test = translate_unary_tests(entry)
    if test is None:
        assert holds
        return
    result = SafeEnvironment(CLOCK).evaluate(test, {"limit": 3}, {"dmn_input_value": value})
    assert result is holds


@pytest.mark.parametrize(
    "entry",
    [
        'date("2024-01-01")',
        "x + 1",
        '__import__("os")',
        "a.__class__",
        "[1..]",
        "not()",
        "count(x) > 1",
        '"a",',
        "? > 3",
        'matches(x, "a")',
    ],
)
def test_other_feel_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not a value|outside the safe|empty test|needs a test"):
        translate_unary_tests(entry)


def test_unique_one_match_and_no_match() -> None:
    table = dmn([(["< 4"], ['"routine"']), (["[4..7]"], ['"soon"']), ([">= 8"], ['"urgent"'])])
    assert run(table, {"score": 5}) == (["Rule_2"], {"result": "soon"})
    assert run(table, {"score": None}) == ([], {"result": None})


def test_unique_with_two_matches_is_an_error_naming_the_rules() -> None:
    table = dmn([(["< 5"], ['"a"']), (["< 9"], ['"b"'])])
    with pytest.raises(WorkflowError, match="UNIQUE, but 2 rules match: Rule_1, Rule_2") as caught:
        run(table, {"score": 3})
    assert caught.value.message.startswith("decision choose: ") and "3" not in caught.value.message


def test_first_takes_the_first_match_in_table_order() -> None:
    table = dmn([([">= 8"], ['"urgent"']), ([">= 4"], ['"soon"']), (["-"], ['"routine"'])], hit_policy="FIRST")
    assert run(table, {"score": 9}) == (["Rule_1"], {"result": "urgent"})
    assert run(table, {"score": 5}) == (["Rule_2"], {"result": "soon"})


def test_priority_takes_the_output_first_in_the_output_values() -> None:
    table = dmn(
        [(["-"], ['"routine"']), ([">= 4"], ['"soon"']), ([">= 8"], ['"urgent"'])],
        hit_policy="PRIORITY",
        output_values='"urgent","soon","routine"',
    )
    assert run(table, {"score": 9}) == (["Rule_1", "Rule_2", "Rule_3"], {"result": "urgent"})
    assert run(table, {"score": 5})[1] == {"result": "soon"}


def test_any_accepts_agreeing_rules_and_refuses_disagreeing_ones() -> None:
    table = dmn([([">= 4"], ['"soon"']), ([">= 6"], ['"soon"']), ([">= 8"], ['"urgent"'])], hit_policy="ANY")
    assert run(table, {"score": 7}) == (["Rule_1", "Rule_2"], {"result": "soon"})
    with pytest.raises(WorkflowError, match="ANY, but the matching rules give different outputs"):
        run(table, {"score": 9})


def test_collect_and_rule_order_list_every_match_in_order() -> None:
    rules = [([">= 4"], ['"psychology"']), (["-"], ['"leaflet"']), ([">= 8"], ['"acute"'])]
    assert run(dmn(rules, hit_policy="COLLECT"), {"score": 9})[1] == {"result": ["psychology", "leaflet", "acute"]}
    assert run(dmn(rules, hit_policy="RULE ORDER"), {"score": 5})[1] == {"result": ["psychology", "leaflet"]}
    output_order = dmn(rules, hit_policy="OUTPUT ORDER", output_values='"acute","psychology","leaflet"')
    assert run(output_order, {"score": 9})[1] == {"result": ["acute", "psychology", "leaflet"]}


@pytest.mark.parametrize(
    ("aggregation", "score", "expected"),
    [
        ("SUM", 9, 6),
        ("MIN", 9, 1),
        ("MAX", 9, 3),
        ("COUNT", 9, 3),
        ("COUNT", 0, 0),
        ("SUM", 0, None),
    ],
)
def test_collect_aggregations(aggregation: str, score: int, expected: Any) -> None:
    table = dmn(
        [([">= 1"], ["1"]), ([">= 4"], ["2"]), ([">= 8"], ["3"])], hit_policy="COLLECT", aggregation=aggregation
    )
    assert run(table, {"score": score})[1] == {"result": expected}


def test_sum_of_text_is_an_error() -> None:
    table = dmn([(["-"], ['"a"'])], hit_policy="COLLECT", aggregation="SUM")
    with pytest.raises(WorkflowError, match="needs numbers"):
        run(table, {"score": 1})


def test_input_expressions_and_outputs_are_feel_translated() -> None:
    table = dmn([(["true"], ["score.value * 2"]), (["-"], ["null"])], hit_policy="FIRST", inputs=("score.flag = true",))
    assert run(table, {"score": {"flag": True, "value": 4}}) == (["Rule_1"], {"result": 8})
    assert run(table, {"score": {"flag": False, "value": 4}}) == (["Rule_2"], {"result": None})


def test_an_output_task_data_cannot_hold_is_an_error() -> None:
    with pytest.raises(WorkflowError, match="Rule_1 gives an output task data cannot hold"):
        run(dmn([(["-"], ["{1, 2}"])]), {"score": 1})
    assert run(dmn([(["-"], ["(1, 2)"])]), {"score": 1})[1] == {"result": [1, 2]}


def test_spiffworkflows_own_dmn_engine_never_runs(carepath: CarePath) -> None:
    """A workflow driven without CarePath's step (SpiffWorkflow's default script engine, which would
    eval the cells) stops at the business rule task instead of evaluating the table."""
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

    compiled = compile_source(carepath.catalog.library.source("test_triage"))
    workflow = BpmnWorkflow(compiled.spec, compiled.subprocess_specs)
    workflow.get_tasks()[0].data.update({"distress_score": 9, "main_concern": "emotional"})
    with pytest.raises(Exception) as caught:
        workflow.do_engine_steps()
    assert "no safe decision evaluator" in str(caught.value)
    assert all("urgency" not in task.data for task in workflow.get_tasks())


def test_a_table_past_its_time_budget_stops_with_an_error() -> None:
    tables, _ = read_decisions(dmn([(["< 5"], ['"a"']), (["> 5"], ['"b"'])]), "t.dmn")
    with pytest.raises(WorkflowError, match=r"ran longer than -1 s \(rule 1 of 2\)"):
        evaluate_decision(tables["choose"], {"score": 1}, SafeEnvironment(CLOCK), max_seconds=-1)


def test_a_cell_failing_at_run_time_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        run(dmn([(["< 5"], ['"x"'])]), {"other": 1})  # no 'score' in the data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (dmn([(["-"], ['"x"'])], hit_policy="SOMETIMES"), "hit policy SOMETIMES is not one of"),
        (
            dmn([(["-"], ["1", "2"])], hit_policy="COLLECT", aggregation="SUM", outputs=("a", "b")),
            "needs a table with one output column",
        ),
        (dmn([(["-"], ['"x"'])], aggregation="SUM"), "aggregation SUM is run only with COLLECT"),
        (dmn([(["-"], ['"x"'])], hit_policy="PRIORITY"), "needs the output values listed in priority order"),
        (dmn([(["-"], ['"x"'])], outputs=("has space",)), "needs a name that can be a variable"),
        (dmn([(["-", "-"], ['"x"'])]), "rule 1 has 2 input and 1 output entries"),
        (dmn([(['date("2020-01-01")'], ['"x"'])]), "input entry: 'date(\"2020-01-01\")' is not a value"),
        (dmn([(["-"], ['open("/etc/passwd")'])]), "output entry: 'open(\"/etc/passwd\")' is outside the safe"),
        (dmn([(["-"], ['"x"'])], inputs=("__import__('os')",)), "input expression:"),
        (dmn([(["-"], ['"x"'])], namespace="http://example.org/not-dmn"), "not a DMN 1.1, 1.2 or 1.3 file"),
        (dmn([(["-"], ['"x"']), (["-"], ['"y"'])]).replace(b'id="Rule_2"', b'id="Rule_1"'), "an id of its own"),
        (dmn([(["-"], ['"x"'])]).replace(b' id="Rule_1"', b""), "an id of its own"),
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><definitions/>', "document type declaration"),
    ],
)
def test_what_carepath_does_not_run_is_refused_with_file_line_and_decision(content: bytes, message: str) -> None:
    tables, problems = read_decisions(content, "pathways/t.dmn")
    assert tables == {} and problems
    assert any(message in p.message for p in problems), [p.message for p in problems]
    for problem in problems:
        assert problem.file == "pathways/t.dmn" and problem.line
        if problem.code not in ("not-dmn", "dtd"):
            assert problem.element == "choose"


def test_two_decisions_in_one_file_are_refused_at_the_second() -> None:
    content = dmn([(["-"], ['"x"'])]).replace(
        b"</definitions>",
        b'  <decision id="second"><decisionTable '
        b'id="T2"><output id="O2" name="y"/></decisionTable></decision>\n'
        b"</definitions>",
    )
    tables, problems = read_decisions(content, "t.dmn")
    assert list(tables) == ["choose"]
    line = content[: content.index(b'<decision id="second"')].count(b"\n") + 1
    assert [(p.element, p.line) for p in problems] == [("second", line)]


def _bad_bundle(tmp_path: Path, replace: tuple[str, str]) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "triage.bpmn").write_bytes((FOLDER / "triage.bpmn").read_bytes())
    (folder / "distress_triage.dmn").write_text((FOLDER / "distress_triage.dmn").read_text().replace(*replace))
    return folder


def test_validate_locates_unsafe_cells_in_the_dmn_file(tmp_path: Path) -> None:
    folder = _bad_bundle(tmp_path, ('<text>"soon"</text>', '<text>__import__("os").system("x")</text>'))
    errors = [p for p in validate_paths([folder / "triage.bpmn"]) if p.is_error]
    assert len(errors) == 1
    assert errors[0].file.endswith("bundle/distress_triage.dmn") and errors[0].line == 35
    assert errors[0].element == "distress_triage" and "Rule_moderate" in errors[0].message
    assert "distress_triage.dmn:35: distress_triage: rule 2" in format_problems(errors)


def test_validate_locates_dmn_schema_errors_in_the_dmn_file(tmp_path: Path) -> None:
    folder = _bad_bundle(
        tmp_path, ("<description>Low distress: self-management information</description>", "<bogus>x</bogus>")
    )
    [error] = [p for p in validate_paths([folder / "triage.bpmn"]) if p.is_error]
    assert error.file.endswith("bundle/distress_triage.dmn") and error.line == 17
    assert error.element == "distress_triage" and "bogus" in error.message


def test_camunda_result_mapping_is_a_warning(tmp_path: Path) -> None:
    folder = _bad_bundle(tmp_path, ("", ""))
    diagram = folder / "triage.bpmn"
    diagram.write_text(
        diagram.read_text().replace("camunda:decisionRef=", 'camunda:resultVariable="r" camunda:decisionRef=')
    )
    [warning] = [p for p in validate_paths([diagram]) if p.code == "decision-result"]
    assert not warning.is_error and warning.element == "triage" and "camunda:resultVariable" in warning.message


@pytest.mark.parametrize(
    "namespace", ["http://www.omg.org/spec/DMN/20151101/dmn.xsd", "http://www.omg.org/spec/DMN/20180521/MODEL/", DMN13]
)
def test_dmn_1_1_1_2_and_1_3_files_validate(tmp_path: Path, namespace: str) -> None:
    (tmp_path / "triage.bpmn").write_text(
        (FOLDER / "triage.bpmn").read_text().replace('decisionRef="distress_triage"', 'decisionRef="choose"')
    )
    (tmp_path / "choose.dmn").write_bytes(
        dmn([(["< 4"], ['"a"']), (["-"], ['"b"'])], hit_policy="FIRST", inputs=("distress_score",), namespace=namespace)
    )
    assert [p for p in validate_paths([tmp_path]) if p.is_error] == []


def test_validate_names_a_missing_decision(tmp_path: Path) -> None:
    folder = tmp_path / "alone"
    folder.mkdir()
    (folder / "triage.bpmn").write_bytes((FOLDER / "triage.bpmn").read_bytes())
    [error] = [p for p in validate_paths([folder]) if p.is_error]
    assert error.code == "decision-missing" and error.element == "triage" and error.line == 8
    assert "distress_triage" in error.message


def test_deploy_refuses_what_validate_refuses(carepath: CarePath, tmp_path: Path) -> None:
    folder = _bad_bundle(tmp_path, ("&lt; 4", "matches(x)"))
    with pytest.raises(DiagramError) as caught:
        carepath.catalog.deploy_bundle(read_bundle_folder(folder), "author")
    [error] = [p for p in caught.value.problems if p.is_error]
    assert error.file == "distress_triage.dmn" and error.element == "distress_triage" and error.line == 18


def _deploy(carepath: CarePath, folder: Path | None = None) -> str:
    """The version of test_triage: as the test library deployed it, or from a bundle folder."""
    if folder is None:
        return carepath.catalog.versions("test_triage")[0].version
    deployment = carepath.catalog.deploy_bundle(read_bundle_folder(folder), "author")
    assert deployment.bundle is not None and "distress_triage.dmn" in deployment.bundle.contained
    return deployment[0].version


def test_a_business_rule_task_runs_the_table_and_records_the_evaluation(carepath: CarePath) -> None:
    version = _deploy(carepath)
    view = carepath.instances.start(
        "test_triage", "MRN-DMN-1", "system:ehr", {"distress_score": 6, "main_concern": "physical"}
    )
    assert view.status == "running" and [t["element"] for t in view.ready_tasks] == ["review"]
    with read_only(carepath.sessions) as session:
        [row] = session.scalars(select(DecisionEvaluationRecord)).all()
        events = session.scalars(
            select(InstanceEvent).where(InstanceEvent.instance_id == view.id).order_by(InstanceEvent.seq)
        ).all()
    assert row.decision_id == "distress_triage" and row.instance_id == view.id and row.element == "triage"
    assert row.matched == ["Rule_moderate_physical"] and row.outputs == {"urgency": "urgent"}
    assert row.inputs == [
        {"id": "Input_score", "label": "Distress score", "value": 6},
        {"id": "Input_concern", "label": "Main concern", "value": "physical"},
    ]
    assert row.pathway_version == version and row.file == "distress_triage.dmn"
    assert row.table_version == hashlib.sha256((FOLDER / "distress_triage.dmn").read_bytes()).hexdigest()
    [event] = [e for e in events if e.type == "decision_evaluated"]
    payload = json.loads(event.payload) if isinstance(event.payload, str) else event.payload
    assert payload == {
        "evaluation_id": row.id,
        "decision": "distress_triage",
        "table_version": row.table_version,
        "matched": ["Rule_moderate_physical"],
    }
    assert "physical" not in json.dumps(payload).replace("Rule_moderate_physical", "")


def test_the_outputs_reach_the_task_data(carepath: CarePath) -> None:
    _deploy(carepath)
    view = carepath.instances.start(
        "test_triage", "MRN-DMN-2", "system:ehr", {"distress_score": 2, "main_concern": "practical"}
    )
    task = view.ready_tasks[0]
    done = carepath.instances.complete_task(view.id, task["id"], {}, "clinician")
    assert done.status == "completed"
    with read_only(carepath.sessions) as session:
        [row] = session.scalars(select(DecisionEvaluationRecord)).all()
    assert row.outputs == {"urgency": "routine"} and row.matched == ["Rule_low"]


def test_a_unique_violation_is_an_incident_without_values(carepath: CarePath, tmp_path: Path) -> None:
    folder = _bad_bundle(tmp_path, ("&gt;= 8", "&gt;= 5"))  # a score of 6, physical, now matches two rules
    _deploy(carepath, folder)
    view = carepath.instances.start(
        "test_triage", "MRN-DMN-3", "system:ehr", {"distress_score": 6, "main_concern": "physical"}
    )
    assert view.status == "error"
    incident = view.incident if isinstance(view.incident, dict) else json.loads(view.incident or "{}")
    assert incident["element"] == "triage"
    assert "UNIQUE, but 2 rules match: Rule_moderate_physical, Rule_high" in incident["message"]
    assert "physical" not in incident["message"].replace("Rule_moderate_physical", "")


def test_the_table_is_part_of_the_pathway_version(carepath: CarePath, tmp_path: Path) -> None:
    first = _deploy(carepath)
    second = _deploy(carepath, _bad_bundle(tmp_path, ('"routine"', '"self-management"')))
    assert first != second
