"""Modeller dialects (issue 12, point 3): what bpmn.io and Camunda Modeler write either runs as the
author meant -- forms-less user tasks as confirmation steps, JUEL conditions, gateways covered by
conditions, layout attributes -- or is refused with a located message saying what CarePath does not
run (Java delegates, connectors, other script languages, cron timers, empty scripts, data stores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from start_schema_note import validate_paths, validate_upload

from engine import CarePath
from engine.errors import TaskDataError
from engine.pathways.diagrams import juel_to_python
from engine.pathways.validation import errors_in

OK = Path(__file__).resolve().parent / "diagrams" / "ok"
CAMUNDA = (OK / "camunda5.bpmn").read_text()
HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="d" targetNamespace="x">
  <bpmn:process id="{pid}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    {element}
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
ELEMENT_LINE = 8  # the line of {element} above


def _diagram(pid: str, element: str) -> bytes:
    return HEAD.format(pid=pid, element=element).encode()


@pytest.mark.parametrize(
    ("task", "words"),
    [
        ('<bpmn:userTask id="work" name="Confirm the plan was sent" />', "user task has no form"),
        ('<bpmn:userTask id="work" camunda:formKey="embedded:app:forms/plan.html" />', "camunda:formKey"),
    ],
)
def test_a_user_task_without_a_readable_form_is_a_confirmation_step(carepath: CarePath, task: str, words: str) -> None:
    pid = "confirm_" + str(len(task))
    files = {
        f"{pid}.bpmn": _diagram(
            pid,
            task.replace(" />", "><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>"),
        )
    }
    [warning] = validate_upload(files)
    assert (warning.code, warning.severity, warning.line, warning.element) == (
        "form-missing",
        "warning",
        ELEMENT_LINE,
        "work",
    )
    assert words in warning.message and "confirmation step that accepts no data" in warning.message
    carepath.catalog.deploy_upload(files, "author")
    view = carepath.instances.start(pid, "MRN-CONFIRM-1", "system:test")
    [ready] = view.ready_tasks
    assert ready["form"] == {"type": "object", "properties": {}, "additionalProperties": False}
    with pytest.raises(TaskDataError):
        carepath.instances.complete_task(view.id, ready["id"], {"sent": True}, "clinician:x")
    assert carepath.instances.complete_task(view.id, ready["id"], {}, "clinician:x").status == "completed"


@pytest.mark.parametrize(
    ("juel", "python"),
    [
        ("${a && b}", "a and b"),
        ("#{!done}", "not done"),
        ("${x != 1 || y eq 'a && b'}", "x != 1 or y == 'a && b'"),
        ("${score ge 5 and not (consent ne true)}", "score >= 5 and not (consent != True)"),
        ("${score lt 5 || score gt 8}", "score < 5 or score > 8"),
        ("${note == null}", "note == None"),
        ('${reason == "not !ok"}', 'reason == "not !ok"'),
        ("distress > 5", None),
    ],
)
def test_juel_conditions_become_the_safe_language(juel: str, python: str | None) -> None:
    converted = juel_to_python(juel)
    assert (" ".join(converted.split()) if converted is not None else None) == python


@pytest.mark.parametrize(
    ("condition", "distress", "consent", "branch"),
    [
        ("#{distress_score ge 5 &amp;&amp; consent eq true}", 7, True, "Activity_1psych"),
        ("#{distress_score ge 5 &amp;&amp; consent eq true}", 7, False, None),
        ("${!(distress_score lt 5) || consent}", 2, True, "Activity_1psych"),
        ("${not (distress_score lt 5) and consent != false}", 2, True, None),
    ],
)
def test_a_camunda_condition_takes_its_branch(
    carepath: CarePath, condition: str, distress: int, consent: bool, branch: str | None
) -> None:
    pid = f"juel_{abs(hash((condition, distress, consent))) % 100_000}"
    text = CAMUNDA.replace('id="breast_hna"', f'id="{pid}"').replace("${distress_score &gt;= 5}", condition)
    files = {f"{pid}.bpmn": text.encode()}
    assert errors_in(validate_upload(files)) == []
    carepath.catalog.deploy_upload(files, "author")
    view = carepath.instances.start(pid, "MRN-JUEL-1", "system:test", {"consent": consent})
    after = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"distress_score": distress}, "c:1")
    assert [t["element"] for t in after.ready_tasks] == ([branch] if branch else [])


def test_a_gateway_covered_by_conditions_is_a_warning_and_a_gap_an_error(tmp_path: Path) -> None:
    text = CAMUNDA.replace(' default="Flow_0low"', "").replace(
        '<bpmn:sequenceFlow id="Flow_0low" name="no" sourceRef="Gateway_1distress" targetRef="Event_18months" />',
        '<bpmn:sequenceFlow id="Flow_0low" name="no" sourceRef="Gateway_1distress" targetRef="Event_18months">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${distress_score &lt; 5}'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>",
    )
    (tmp_path / "covered.bpmn").write_text(text)
    [warning] = validate_paths([tmp_path / "covered.bpmn"])
    assert (warning.code, warning.severity, warning.element) == ("gateway-no-default", "warning", "Gateway_1distress")
    (tmp_path / "gap.bpmn").write_text(CAMUNDA.replace(' default="Flow_0low"', ""))
    found = validate_paths([tmp_path / "gap.bpmn"])
    assert [(p.code, p.severity) for p in found] == [("gateway-no-default", "error"), ("condition-missing", "error")]


@pytest.mark.parametrize(
    ("element", "code", "words"),
    [
        (
            '<bpmn:serviceTask id="work" camunda:class="org.example.SendLetter">',
            "service-no-operator",
            "runs a Java class (camunda:class), and CarePath runs no Java",
        ),
        (
            '<bpmn:serviceTask id="work" camunda:delegateExpression="${letters}">',
            "service-no-operator",
            "a Java delegate expression (camunda:delegateExpression)",
        ),
        (
            '<bpmn:serviceTask id="work" camunda:expression="${letters.send()}">',
            "service-no-operator",
            "a Java (JUEL) expression (camunda:expression)",
        ),
        (
            '<bpmn:serviceTask id="work" camunda:type="external" camunda:topic="letters">',
            "service-no-operator",
            "a Camunda external task",
        ),
        (
            '<bpmn:serviceTask id="work"><bpmn:extensionElements><camunda:connector><camunda:connectorId>http-connector'
            "</camunda:connectorId></camunda:connector></bpmn:extensionElements>",
            "service-no-operator",
            "uses a Camunda connector",
        ),
        # Camunda Modeler 2 wrote Camunda's extensions in the Activiti namespace; Camunda 8 in Zeebe's
        # (both met in the third-party census, bench/thirdparty.py, with a message that named neither).
        (
            '<bpmn:serviceTask id="work" xmlns:camunda2="http://activiti.org/bpmn" camunda2:class="org.example.Send">',
            "service-no-operator",
            "runs a Java class (camunda:class), and CarePath runs no Java",
        ),
        (
            '<bpmn:serviceTask id="work" xmlns:camunda2="http://activiti.org/bpmn"><bpmn:extensionElements>'
            "<camunda2:connector><camunda2:connectorId>http-connector</camunda2:connectorId></camunda2:connector>"
            "</bpmn:extensionElements>",
            "service-no-operator",
            "uses a Camunda connector",
        ),
        (
            '<bpmn:serviceTask id="work" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"><bpmn:extensionElements>'
            '<zeebe:taskDefinition type="letters" /></bpmn:extensionElements>',
            "service-no-operator",
            "a Camunda 8 job (zeebe:taskDefinition)",
        ),
        # A listener would be skipped silently (camunda-bpm-examples' task assignment e-mail, in the census).
        (
            '<bpmn:userTask id="work"><bpmn:extensionElements><camunda:taskListener class="org.example.Mail" '
            'event="assignment" /></bpmn:extensionElements>',
            "listener",
            "task listener runs Java or script code",
        ),
        (
            '<bpmn:task id="work" xmlns:camunda2="http://activiti.org/bpmn"><bpmn:extensionElements>'
            '<camunda2:executionListener expression="${audit.log()}" event="start" /></bpmn:extensionElements>',
            "listener",
            "execution listener runs Java or script code when 'start' happens",
        ),
        # Mappings would be skipped silently too (paed01/bpmn-engine's forms.bpmn ran without them in the census).
        (
            '<bpmn:userTask id="work" camunda:formKey="embedded:app:forms/review.html"><bpmn:extensionElements>'
            '<camunda:inputOutput><camunda:inputParameter name="due">${dueDate}</camunda:inputParameter>'
            "</camunda:inputOutput></bpmn:extensionElements>",
            "io-mapping",
            "camunda:inputOutput",
        ),
        (
            '<bpmn:userTask id="work" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"><bpmn:extensionElements>'
            '<zeebe:ioMapping><zeebe:input source="=dueDate" target="due" '
            "/></zeebe:ioMapping></bpmn:extensionElements>",
            "io-mapping",
            "zeebe:ioMapping",
        ),
        (
            '<bpmn:task id="work" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"><bpmn:extensionElements>'
            '<zeebe:executionListeners><zeebe:executionListener eventType="start" type="audit" />'
            "</zeebe:executionListeners></bpmn:extensionElements>",
            "listener",
            "Camunda 8 execution listener runs a job 'audit' when 'start' happens",
        ),
        (
            '<bpmn:scriptTask id="work" scriptFormat="javascript"><bpmn:script>var x = 1;</bpmn:script>',
            "script-format",
            "written in 'javascript'",
        ),
        (
            '<bpmn:scriptTask id="work" scriptFormat="groovy"><bpmn:script>x = 1</bpmn:script>',
            "script-format",
            "written in 'groovy'",
        ),
        ('<bpmn:scriptTask id="work" scriptFormat="python">', "script-empty", "script task has no script"),
        # Camunda 8's script task keeps a FEEL expression in zeebe:script (camunda-8-examples, in the census).
        (
            '<bpmn:scriptTask id="work" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"><bpmn:extensionElements>'
            '<zeebe:script expression="=true" resultVariable="done" /></bpmn:extensionElements>',
            "script-format",
            "Camunda 8 FEEL expression (zeebe:script)",
        ),
        (
            '<bpmn:intermediateCatchEvent id="work"><bpmn:timerEventDefinition><bpmn:timeCycle>0 0 9 ? * MON'
            "</bpmn:timeCycle></bpmn:timerEventDefinition>",
            "timer-cron",
            "is a cron expression",
        ),
        # bpmn-engine's timers.bpmn (in the census) reads its date from a JUEL expression.
        (
            '<bpmn:intermediateCatchEvent id="work"><bpmn:timerEventDefinition><bpmn:timeDate>${review_date}'
            "</bpmn:timeDate></bpmn:timerEventDefinition>",
            "expression-syntax",
            "timer date '${review_date}' is a Camunda (JUEL) expression",
        ),
    ],
)
def test_what_carepath_does_not_run_is_refused_where_it_is(element: str, code: str, words: str) -> None:
    tag = element.split()[0][1:]
    flows = "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
    after = "</bpmn:extensionElements>" if "</bpmn:extensionElements>" in element else ">"  # the schema's order
    opening, rest = element.split(after, 1)
    body = f"{opening}{after}{flows}{rest}</{tag}>"
    found = errors_in(validate_upload({"task.bpmn": _diagram("not_run", body)}))
    assert [(p.code, p.line, p.element) for p in found] == [(code, ELEMENT_LINE, "work")], found
    assert words in found[0].message


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        # Camunda 8 writes FEEL, starting with '=' (camunda-8-examples); bpmn-engine's tests name JavaScript.
        (
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">=distress_score &gt;= 5',
            "condition is a Camunda 8 FEEL expression (it starts with '=')",
        ),
        (
            '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" language="JavaScript">distress_score &gt;= 5',
            "condition is written in 'JavaScript'",
        ),
    ],
)
def test_a_condition_in_another_language_is_named_as_such(condition: str, words: str) -> None:
    text = CAMUNDA.replace(
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${distress_score &gt;= 5}', condition
    )
    [problem] = errors_in(validate_upload({"other.bpmn": text.encode()}))
    assert (problem.code, problem.line, problem.element) == ("script-format", 36, "Flow_1high")
    assert words in problem.message and "safe Python expression language" in problem.message


def test_a_data_store_is_refused_where_it_is() -> None:
    body = (
        '<bpmn:dataStoreReference id="records" name="Records" />\n'
        '    <bpmn:task id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:task>'
    )
    [problem] = errors_in(validate_upload({"store.bpmn": _diagram("data_store", body)}))
    assert (problem.code, problem.line, problem.element) == ("data-store", ELEMENT_LINE, "records")


def test_layout_attributes_the_schema_lacks_do_not_fail(carepath: CarePath) -> None:
    text = (
        (OK / "bpmnio.bpmn")
        .read_text()
        .replace('<bpmndi:BPMNPlane id="BPMNPlane_1"', '<bpmndi:BPMNPlane id="BPMNPlane_1" label="Main plane"')
    )
    text = text.replace("<bpmndi:BPMNShape id=", '<bpmndi:BPMNShape stroke="#205081" id=')
    files = {"bpmnio.bpmn": text.encode()}
    assert validate_upload(files) == []
    [deployed] = carepath.catalog.deploy_upload(files, "author")
    assert carepath.instances.start(deployed.pathway_id, "MRN-LAYOUT-1", "system:test").status == "running"


def test_a_file_alone_may_call_the_diagrams_in_its_folder_tree(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    followup = (OK / "bpmnio.bpmn").read_text().replace("lung_end_of_treatment", "shared_survivorship_followup")
    (tmp_path / "shared" / "followup.bpmn").write_text(followup)
    broken = Path(__file__).resolve().parent / "diagrams" / "broken" / "unresolved_call_activity.bpmn"
    shutil.copy(broken, tmp_path / "pathway.bpmn")
    assert validate_paths([tmp_path / "pathway.bpmn"]) == []
    [problem] = validate_paths([broken])  # its own folder has no such process
    assert problem.code == "unresolved-call"
