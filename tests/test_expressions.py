"""The safe expression language: escapes are refused, clinical logic works, SpiffWorkflow uses it."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from engine.clock import ManualClock
from engine.errors import ExpressionError, UnsafeExpressionError, translate_workflow_errors
from engine.expressions import (
    ALLOWED_FUNCTIONS,
    SafeEnvironment,
    check_expression,
    check_script,
    make_script_engine,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def env(clock: ManualClock) -> SafeEnvironment:
    return SafeEnvironment(clock)


@pytest.fixture
def data() -> dict[str, Any]:
    return {
        "age": 22,
        "scores": {"anxiety": 9, "pain": 3, "fatigue": 6, "mood": 5},
        "diagnoses": ["breast", "lymphoedema"],
        "diagnosis_date": "2024-08-31",
        "birth_date": "2001-02-28",
        "referral": None,
    }


# --- escapes --------------------------------------------------------------------------------------

ESCAPES = [
    "import os",
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "().__class__.__bases__[0].__subclasses__()",
    "(x for x in []).gi_frame.f_back",
    "getattr(age, '__class__')",
    "eval('1')",
    "exec('import os')",
    "globals()",
    "lambda: 1",
    "[].__class__",
    "type(age)",
    "'{0.__class__}'.format(age)",
    "'{}'.format(age)",
    "__builtins__",
    "age.real",
    "scores.get.__self__",
    "[*diagnoses]",
    "max(*diagnoses)",
    "dict(**scores)",
    "{**scores}",
    "b'bytes'",
    "1j",
    "~age",
    "age << 2",
    "age is 22",
    "diagnoses.append('x')",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_escapes_are_refused_in_expressions(env: SafeEnvironment, data: dict[str, Any], expression: str) -> None:
    before = copy.deepcopy(data)
    with pytest.raises(UnsafeExpressionError) as info:
        env.evaluate(expression, data)
    assert info.value.problems
    assert data == before


@pytest.mark.parametrize(
    "script",
    [
        "import os",
        "from os import system",
        "x = __import__('os').system('true')",
        "def f():\n    return 1",
        "f = lambda: 1",
        "class C:\n    pass",
        "global age",
        "with open('/etc/passwd') as f:\n    pass",
        "try:\n    x = 1\nexcept Exception:\n    pass",
        "raise ValueError()",
        "assert age",
        "x: int = 1",
        "exec('x = 1')",
        "x = [].__class__.__base__.__subclasses__()",
        "x = '{0.__class__}'.format(age)",
        "_hidden = 1",
        "len = 3",
        "for today in diagnoses:\n    pass",
        "break",
        "age",
    ],
)
def test_escapes_are_refused_in_scripts(env: SafeEnvironment, data: dict[str, Any], script: str) -> None:
    before = copy.deepcopy(data)
    with pytest.raises(UnsafeExpressionError):
        env.execute(script, data)
    assert data == before


def test_a_refused_expression_never_runs(env: SafeEnvironment, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeExpressionError):
        env.evaluate(f"__import__('os').system('touch {marker}')", {})
    with pytest.raises(UnsafeExpressionError):
        env.execute(f"x = 1\n__import__('os').system('touch {marker}')", {})
    assert not marker.exists()


def test_the_problem_says_what_was_refused_and_where(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError) as info:
        env.evaluate("age + [].__class__", {"age": 1})
    [problem] = info.value.problems
    assert problem.message == "attribute access '__class__' is not allowed (line 1, col 10)"
    assert (problem.line, problem.column) == (1, 10)


def test_format_is_refused_with_a_hint(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError, match="f-string"):
        env.evaluate("'{}'.format(1)", {})


def test_a_method_of_another_type_is_refused_at_run_time(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError, match=r"the method 'lower' is not available on dict \(line 1"):
        env.evaluate("scores.lower()", {"scores": {}})


def test_values_that_are_functions_cannot_be_reached(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError, match="holds a function"):
        env.evaluate("sorted(['b', 'a'], key=f)", {"f": print})


# --- bounds ---------------------------------------------------------------------------------------


def test_an_endless_loop_stops_at_the_step_limit(env: SafeEnvironment) -> None:
    started = time.process_time()  # CPU time: a busy machine does not make it fail
    with pytest.raises(ExpressionError, match="step limit"):
        env.execute("while True:\n    pass", {})
    assert time.process_time() - started < 0.5


def test_a_slow_script_stops_at_the_time_limit(clock: ManualClock) -> None:
    env = SafeEnvironment(clock, max_steps=10**9, max_seconds=0.05)
    started = time.process_time()  # CPU time: a busy machine does not make it fail
    with pytest.raises(ExpressionError, match="time limit"):
        env.execute("n = 0\nwhile True:\n    n += 1", {})
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize(
    "expression",
    [
        "'a' * 10**9",
        "[0] * 10**9",
        "10**9 * 'a'",
        "9**9**9",
        "10**10**10",
        "(10**100)**1000",
        "round(5, -10**9)",
        "'%*d' % (10**9, 1)",
        "sum([[1], [2]])",
        "(-8) ** 0.5",
    ],
)
def test_oversized_results_are_refused_quickly(env: SafeEnvironment, expression: str) -> None:
    started = time.process_time()  # CPU time: a busy machine does not make it fail
    with pytest.raises(ExpressionError):
        env.evaluate(expression, {})
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize(
    "expression",
    [
        "10**10**10",
        "9**9**9",
        "(10**100)**1000",
        "x ** 10**10",
        "'a' * 10**9",
        "[0] * 10**9",
        "10**9 * 'a'",
        "('a' * 1000) * 1000",
        "[0] * 1000 + [1] * 100000",
        "x if y else -((2**1000)**9 * 2**1000)",
    ],
)
def test_constant_parts_past_the_evaluators_limits_are_reported_before_they_run(
    env: SafeEnvironment, expression: str
) -> None:
    # They passed the static check (and so validate and deploy) and failed only when a patient's
    # pathway reached them. Reported by the bound the evaluator applies, which still stops them.
    [problem] = check_expression(expression)
    assert problem.code == "size-limit" and problem.line == 1, problem
    with pytest.raises(ExpressionError) as ran:
        env.evaluate(expression, {"x": 2, "y": False})
    assert problem.message.split(";")[0] in str(ran.value)


@pytest.mark.parametrize(
    "expression",
    ["2**1000", "(2**1000)**9 * 2**999", "x ** 2", "'ab' * 3", "[0] * 100000", "1 / 0", "10.0 ** 400", "'a' - 1"],
)
def test_constant_parts_within_the_limits_are_not_reported(expression: str) -> None:
    # Division by zero, a float overflow or a type the evaluator refuses may sit in a branch never
    # taken: left to run time.
    assert check_expression(expression) == []


def test_a_scripts_constant_past_the_limits_is_located_at_its_line() -> None:
    [problem] = check_script("x = 1\nif y:\n    z = 'a' * 10**9\n")
    assert (problem.code, problem.line, problem.column) == ("size-limit", 3, 9)


@pytest.mark.parametrize(
    "script",
    [
        "x = 'ab'\nwhile True:\n    x = x + x",
        "x = [1]\nwhile True:\n    x.extend(x)",
        "x = 'a' * 100000\ny = x.replace('a', 'aa')",
        "x = ['a' * 100000] * 100000\ny = str(x)",
        "x = ['a' * 100000] * 100000\ny = f'{x}'",
        "x = ['a' * 100000] * 100000\ny = ''.join(x)",
        "x = 2**1000\nwhile True:\n    x = x * x",
        "rows = [[0] * 100000 for i in [0] * 2000]",
        "x = []\nwhile True:\n    x.extend([0] * 100000)\n    x = []",
    ],
)
def test_growing_data_in_a_script_is_refused_quickly(env: SafeEnvironment, script: str) -> None:
    started = time.process_time()  # CPU time: a busy machine does not make it fail
    with pytest.raises(ExpressionError):
        env.execute(script, {})
    assert time.process_time() - started < 1


def test_deep_nesting_is_an_expression_error(env: SafeEnvironment) -> None:
    with pytest.raises((ExpressionError, UnsafeExpressionError)):
        env.evaluate("1" + " + 1" * 5000, {})


# --- clinical logic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("scores['anxiety'] >= 8 and age < 25", True),
        ("'breast' in diagnoses", True),
        ("'prostate' not in diagnoses", True),
        ("max(scores.values()) >= 7", True),
        ("len([s for s in scores.values() if s >= 5]) >= 3", True),
        ("any(s >= 9 for s in scores.values())", True),
        ("18 <= age < 25", True),
        ("referral is None", True),
        ("scores.get('sleep', 0)", 0),
        ("add_months(diagnosis_date, 18)", "2026-02-28"),
        ("days_between(diagnosis_date, today()) > 90", True),
        ("age_on(birth_date, today())", 24),
        ("age_on('2001-02-28', today())", 24),
        ('"P18M"', "P18M"),
        ("'high' if scores['anxiety'] >= 8 else 'low'", "high"),
        ("sorted(scores, key=None, reverse=True)[:2]", ["pain", "mood"]),
        ("{k: v for k, v in scores.items() if v > 5}", {"anxiety": 9, "fatigue": 6}),
        ("{d.upper() for d in diagnoses}", {"BREAST", "LYMPHOEDEMA"}),
        ("f'{age} years, anxiety {scores[\"anxiety\"]:>3}'", "22 years, anxiety   9"),
        ("diagnoses[-1][:5]", "lymph"),
        ("(n := len(diagnoses)) * n", 4),
        ("round(sum(scores.values()) / len(scores), 1)", 5.8),
        ("-age // 5 % 3", 1),
        ("str(age) + '/' + ', '.join(sorted(diagnoses))", "22/breast, lymphoedema"),
        ("not diagnoses or age > 80", False),
        ("(scores['anxiety'] if age else 0) or None", 9),
    ],
)
def test_clinical_expressions(env: SafeEnvironment, data: dict[str, Any], expression: str, expected: object) -> None:
    assert check_expression(expression) == []
    assert env.evaluate(expression, data) == expected


def test_evaluate_does_not_change_task_data(env: SafeEnvironment, data: dict[str, Any]) -> None:
    before = copy.deepcopy(data)
    env.evaluate("(age := 99) > 1", data)
    assert data == before


def test_external_context_is_readable_and_task_data_wins(env: SafeEnvironment) -> None:
    assert env.evaluate("pathway_name + ':' + site", {"site": "ward"}, {"pathway_name": "x", "site": "y"}) == ("x:ward")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("today()", "2025-03-01"),
        ("now()", "2025-03-01T09:30:00+00:00"),
        ("date(2024, 2, 29)", "2024-02-29"),
        ("add_days('2024-12-25', 10)", "2025-01-04"),
        ("add_days('2024-03-01', -1)", "2024-02-29"),
        ("add_months('2024-08-31', 18)", "2026-02-28"),
        ("add_months('2024-01-31', 1)", "2024-02-29"),
        ("add_months('2024-03-31', -1)", "2024-02-29"),
        ("add_years('2024-02-29', 1)", "2025-02-28"),
        ("add_years('2024-02-29', 4)", "2028-02-29"),
        ("days_between('2024-01-01', '2025-01-01')", 366),
        ("days_between('2025-01-01', '2024-12-31')", -1),
        ("months_between('2024-01-31', '2024-02-29')", 1),
        ("months_between('2024-01-15', '2024-03-14')", 1),
        ("months_between('2024-03-15', '2024-01-15')", -2),
        ("age_on('2000-02-29', '2001-02-28')", 1),
        ("age_on('2000-03-01', '2001-02-28')", 0),
        ("age_on('1960-05-10', '2025-05-10T00:30:00+00:00')", 65),
    ],
)
def test_date_helpers(env: SafeEnvironment, expression: str, expected: object) -> None:
    assert env.evaluate(expression, {}) == expected


def test_today_follows_the_injected_clock(clock: ManualClock, env: SafeEnvironment) -> None:
    condition = "days_between(diagnosis_date, today()) > 90"
    clock.set(datetime(2024, 9, 30, tzinfo=UTC))
    assert env.evaluate(condition, {"diagnosis_date": "2024-08-31"}) is False
    clock.set(datetime(2024, 12, 1, tzinfo=UTC))
    assert env.evaluate(condition, {"diagnosis_date": "2024-08-31"}) is True


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("add_days(20240831, 1)", "add_days expects a date like '2024-08-31', got int"),
        ("add_months('31/08/2024', 1)", "add_months expects a date like '2024-08-31', got text that is not one "),
        ("age_on('2020-01-01', '2019-01-01')", "^age_on: the date is before the birth date"),
        ("add_years('9999-01-01', 1)", "outside the years"),
    ],
)
def test_date_helpers_explain_bad_input(env: SafeEnvironment, expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        env.evaluate(expression, {})


def test_every_helper_is_documented() -> None:
    documented = (Path(__file__).parent.parent / "docs" / "expressions.md").read_text()
    for name, helper in ALLOWED_FUNCTIONS.items():
        assert helper.summary
        assert f"`{name}(" in documented, name


# --- run-time errors ------------------------------------------------------------------------------


def test_an_unknown_variable_is_named_with_a_suggestion(env: SafeEnvironment, data: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError) as info:
        env.evaluate("score['anxiety'] >= 8", data)
    assert "unknown variable 'score'; did you mean 'scores'?" in info.value.message
    assert info.value.problems[0].code == "unknown-variable"


def test_a_score_the_form_never_asked_for(env: SafeEnvironment, data: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="the key 'distress' is not there"):
        env.evaluate("scores['distress'] >= 4", data)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("age / 0", "division by zero"),
        ("age + 'x'", "unsupported operand"),
        ("diagnoses[10]", "out of range"),
        ("age[0]", "cannot be indexed"),
        ("int('many')", "int: the text is not a whole number"),
        ("float('many')", "float: the text is not a number"),
    ],
)
def test_run_time_failures_are_expression_errors(
    env: SafeEnvironment, data: dict[str, Any], expression: str, message: str
) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        env.evaluate(expression, data)
    assert not isinstance(info.value, UnsafeExpressionError)
    assert info.value.problems[0].line == 1


# --- scripts --------------------------------------------------------------------------------------

CARE_PLAN_SCRIPT = """
plan = {'needs': [], 'review_on': add_months(diagnosis_date, 18), 'priority': 'routine'}
for need, score in scores.items():
    if score >= 8:
        plan['needs'].append({'need': need, 'level': 'high'})
        plan['priority'] = 'urgent'
    elif score >= 5:
        plan['needs'].append({'need': need, 'level': 'moderate'})
    else:
        continue
plan['count'] = len(plan['needs'])
window = (today(), add_days(today(), 14))
young_adult = 16 <= age_on(birth_date, today()) < 25
del referral
"""


def test_a_script_builds_a_care_plan(env: SafeEnvironment, data: dict[str, Any]) -> None:
    assert check_script(CARE_PLAN_SCRIPT) == []
    assert env.execute(CARE_PLAN_SCRIPT, data) is True
    assert data["plan"] == {
        "needs": [
            {"need": "anxiety", "level": "high"},
            {"need": "fatigue", "level": "moderate"},
            {"need": "mood", "level": "moderate"},
        ],
        "review_on": "2026-02-28",
        "priority": "urgent",
        "count": 3,
    }
    assert data["window"] == ["2025-03-01", "2025-03-15"]  # tuples are stored as lists
    assert data["young_adult"] is True
    assert "referral" not in data


def test_script_statements(env: SafeEnvironment) -> None:
    script = (
        "a, [b, c] = 1, (2, 3)\n"
        "d = {'k': 1, 'gone': 0}\n"
        "d['k'] += 10\n"
        "del d['gone']\n"
        "n = 0\n"
        "while n < 10:\n"
        "    n += 1\n"
        "    if n == 5:\n"
        "        break\n"
        "for x in [1, 2]:\n"
        "    pass\n"
        "else:\n"
        "    finished = True\n"
        "s = set()\n"
        "s.add(1)\n"
        "tags = sorted(s)\n"
        "del s\n"
        "d.setdefault('new', []).append(1)\n"
    )
    context: dict[str, Any] = {}
    env.execute(script, context)
    assert context == {
        "a": 1, "b": 2, "c": 3, "d": {"k": 11, "new": [1]}, "n": 5, "x": 2, "finished": True, "tags": [1],
    }  # fmt: skip


def test_sets_are_refused_in_task_data(env: SafeEnvironment) -> None:
    context: dict[str, Any] = {"keep": 1}
    with pytest.raises(ExpressionError, match=r"'tags' would hold a set.*sorted"):
        env.execute("tags = {'a', 'b'}", context)
    assert context == {"keep": 1}


@pytest.mark.parametrize(
    ("script", "variable"),
    [
        ("counts = {1: 'one'}", "counts"),
        ("ratio = float('nan')", "ratio"),
        ("loop = []\nloop.append(loop)", "loop"),
    ],
)
def test_values_task_data_cannot_store_are_refused(env: SafeEnvironment, script: str, variable: str) -> None:
    with pytest.raises(ExpressionError, match=f"'{variable}'"):
        env.execute(script, {})


def test_a_failing_script_changes_nothing(env: SafeEnvironment, data: dict[str, Any]) -> None:
    before = copy.deepcopy(data)
    script = "age = 30\nscores['anxiety'] = 0\ndiagnoses.append('x')\ndel birth_date\nbroken = 1 / 0"
    with pytest.raises(ExpressionError, match=r"division by zero \(line 5"):
        env.execute(script, data)
    assert data == before


def test_changing_methods_are_for_scripts_only(env: SafeEnvironment, data: dict[str, Any]) -> None:
    assert check_expression("diagnoses.append('x')")[0].message.startswith(
        "the method 'append' is not allowed (it changes data: only in scripts)"
    )
    env.execute("diagnoses.append('x')", data)
    assert data["diagnoses"][-1] == "x"


def test_service_calls_are_refused(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError, match="service tasks"):
        env.call_service({}, operation_name="x")


# --- static checks --------------------------------------------------------------------------------


def test_check_reports_syntax_errors_with_their_line() -> None:
    [problem] = check_script("x = 1\ny = (2 +\n")
    assert problem.code == "syntax-error"
    assert problem.line == 2
    [problem] = check_expression("scores['anxiety'] >=")
    assert problem.message.startswith("syntax error")
    assert problem.line == 1


def test_check_reports_every_forbidden_construct() -> None:
    problems = check_script("x = 1\nfor i in y:\n    import os\n    z = lambda: open('f')\nw = x.__dict__")
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [
        (3, "import is not allowed"),
        (4, "lambda is not allowed"),
        (5, "attribute access '__dict__' is not allowed"),
    ]


def test_check_accepts_the_language() -> None:
    assert check_expression("  scores['anxiety'] >= 8\n") == []
    assert check_script("x = [s for s in scores.values() if s >= 5]\nn = len(x)") == []
    assert check_expression("x = 1")[0].code == "syntax-error"  # statements are not expressions


def test_overlong_text_is_refused() -> None:
    assert check_expression("1 + " * 10_000 + "1")[0].message.startswith("longer than")


# --- inside SpiffWorkflow -------------------------------------------------------------------------

TRIAGE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="defs" targetNamespace="http://carepath.test">
  <bpmn:process id="triage" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gateway" />
    <bpmn:exclusiveGateway id="gateway" default="to_routine" />
    <bpmn:sequenceFlow id="to_urgent" sourceRef="gateway" targetRef="urgent">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">CONDITION</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_routine" sourceRef="gateway" targetRef="routine" />
    <bpmn:task id="urgent">
      <bpmn:extensionElements>
        <spiffworkflow:preScript>review_on = add_days(today(), 7)</spiffworkflow:preScript>
        <spiffworkflow:postScript>route = 'urgent'</spiffworkflow:postScript>
      </bpmn:extensionElements>
    </bpmn:task>
    <bpmn:scriptTask id="routine">
      <bpmn:script>ROUTINE_SCRIPT</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="urgent" targetRef="end" />
    <bpmn:sequenceFlow id="f3" sourceRef="routine" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _run_triage(
    condition: str, data: dict[str, Any], clock: ManualClock, script: str = "route = 'routine'"
) -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    xml = TRIAGE_BPMN.replace("CONDITION", _escape(condition)).replace("ROUTINE_SCRIPT", _escape(script))
    parser.add_bpmn_str(xml.encode())
    workflow = BpmnWorkflow(parser.get_spec("triage"))
    workflow.script_engine = make_script_engine(clock)
    workflow.get_tasks(spec_name="start")[0].data.update(data)
    workflow.do_engine_steps()
    workflow.run_all(halt_on_manual=False)  # the urgent path is a plain task, which waits for a person
    return workflow


@pytest.mark.parametrize(("anxiety", "route"), [(9, "urgent"), (3, "routine")])
def test_a_gateway_condition_routes_the_workflow(clock: ManualClock, anxiety: int, route: str) -> None:
    workflow = _run_triage("scores['anxiety'] >= 8 and age < 25", {"scores": {"anxiety": anxiety}, "age": 22}, clock)
    assert workflow.is_completed()
    assert workflow.data["route"] == route
    assert ("review_on" in workflow.data) is (route == "urgent")
    if route == "urgent":
        assert workflow.data["review_on"] == "2025-03-08"


def _cause(exc: BaseException) -> BaseException | None:
    """The CarePath error SpiffWorkflow wrapped (it keeps it only as the implicit __context__)."""
    while exc.__context__ is not None and not isinstance(exc, ExpressionError | UnsafeExpressionError):
        exc = exc.__context__
    return exc


def test_an_unsafe_gateway_condition_does_not_run(clock: ManualClock, tmp_path: Path) -> None:
    marker = tmp_path / "x"
    with pytest.raises(SpiffWorkflowException) as info:
        _run_triage(f"__import__('os').system('touch {marker}')", {}, clock)
    assert not marker.exists()
    cause = _cause(info.value)
    assert isinstance(cause, UnsafeExpressionError)
    assert "calling '__import__' is not allowed (line 1, col 1)" in str(cause)


def test_an_unknown_variable_in_a_gateway_surfaces(clock: ManualClock) -> None:
    with pytest.raises(SpiffWorkflowException) as info:
        _run_triage("distress >= 4", {"scores": {"distress": 5}}, clock)
    cause = _cause(info.value)
    assert isinstance(cause, ExpressionError)
    assert cause.message == "unknown variable 'distress' (line 1, col 1)"


def test_a_failing_script_task_surfaces(clock: ManualClock) -> None:
    script = "route = 'routine'\nreview_on = add_days(diagnosis_dat, 7)"
    with pytest.raises(SpiffWorkflowException) as info:
        _run_triage("False", {"diagnosis_date": "2024-08-31"}, clock, script)
    cause = _cause(info.value)
    assert isinstance(cause, ExpressionError)
    assert "unknown variable 'diagnosis_dat'; did you mean 'diagnosis_date'? (line 2" in cause.message


def test_the_error_boundary_unwraps_expression_errors(clock: ManualClock) -> None:
    with pytest.raises(UnsafeExpressionError) as info, translate_workflow_errors():
        _run_triage("__import__('os')", {}, clock)
    assert info.value.problems[0].element == "gateway"


def test_make_script_engine_uses_the_safe_environment(clock: ManualClock) -> None:
    engine = make_script_engine(clock)
    assert isinstance(engine, PythonScriptEngine)
    assert isinstance(engine.environment, SafeEnvironment)


# --- values that share references, format widths, digits (issue 12, point 7) ------------------------


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        ("eval", "[[[]] * 60000] * 60000 == [[[]] * 60000] * 60000"),  # stalled every request for 54 s
        ("exec", "a = [[]] * 60000\nb = [a] * 60000"),
        (
            "exec",
            "a = [[]] * 1000\nb = [a, a, a, a, a, a, a, a, a, a]\nc = [b, b, b, b, b, b, b, b, b, b]\n"
            "d = [c, c, c, c, c, c, c, c, c, c]",
        ),
        ("exec", "a = [0] * 100000\nrows = {}\nfor k in 'abcdefghijk':\n    rows[k] = a"),
        ("exec", "a = [0] * 100000\nrows = []\nfor k in 'abcdefghijk':\n    rows += [a]"),
        ("exec", "a = [0] * 100000\nrows = {k: a for k in 'abcdefghijk'}"),
        ("exec", "t = 'x' * 100000\nmany = [t] * 100000"),
    ],
)
def test_shared_references_count_at_every_visit(env: SafeEnvironment, mode: str, text: str) -> None:
    with pytest.raises(ExpressionError, match="built more than 1000000 items or characters"):
        env.evaluate(text, {}) if mode == "eval" else env.execute(text, {})


def test_a_value_is_sized_as_it_is_visited() -> None:
    from engine.expressions.functions import built_size

    empty: list[Any] = []
    shared = [empty] * 3
    assert built_size(shared) == 3
    assert built_size([shared, shared]) == 2 + 2 * 3
    assert built_size(["abc", "abc", 1]) == 3 + 2 * 2  # text counts its characters at each visit
    assert built_size({"x": [1, 2], "y": "hi"}) == 2 + 2 + 1
    assert built_size([[[0] * 60000] * 60000], budget=1_000_000) > 1_000_000
    itself: list[Any] = []
    itself.append(itself)
    assert built_size(itself, budget=100) > 100  # without end


def test_text_of_a_shared_value_is_sized_as_rendered(env: SafeEnvironment) -> None:
    from engine.expressions.functions import check_text_size

    # 30 references to one 40,000-character text render 1.2 million characters, over the limit.
    parts = ["x" * 40_000] * 10
    with pytest.raises(ValueError, match="longer than 1000000 characters"):
        check_text_size([parts, parts, parts])
    check_text_size([parts, parts])
    data: dict[str, Any] = {}
    env.execute("loop = [1]\nloop.append(loop)\ntext = str(loop)\nloop = 0", data)  # a list in itself
    assert data["text"] == "[1, [...]]"


@pytest.mark.parametrize("spec", [">999999999", ".99999f", "0>1001", "<5000"])
def test_format_widths_are_capped_before_anything_runs(spec: str) -> None:
    [problem] = check_script(f"x = 1\ny = f'{{x:{spec}}}'")
    assert "asks for more than 1000 characters" in problem.message and problem.line == 2


def test_usual_format_specifications_run(env: SafeEnvironment) -> None:
    data: dict[str, Any] = {"score": 7.25, "name": "Ada"}
    env.execute("a = f'{score:.1f}'\nb = f'{name:>5}'\nc = f'{score:08.3f}'\nd = f'{name:_^1000}'", data)
    assert (data["a"], data["b"], data["c"], len(data["d"])) == ("7.2", "  Ada", "0007.250", 1000)


def test_int_and_str_conversions_stop_at_a_digit_limit(env: SafeEnvironment) -> None:
    data: dict[str, Any] = {}
    env.execute("n = int('9' * 3000)\nback = len(str(n))", data)
    assert data["back"] == 3000
    with pytest.raises(ExpressionError, match=r"int: the text has more than 3000 digits \(line 1, col 5\)") as refused:
        env.execute("n = int('9' * 5000)", {})
    assert "sys" not in str(refused.value)  # not Python's advice to the server's programmer
    with pytest.raises(ExpressionError, match="the number is too large"):
        env.execute("n = int('9' * 3000)\nm = n * n * n * n", {})


def test_an_unsafe_expression_says_which_construct_not_its_text(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError) as refused:
        env.execute("secret = 'do not show'\nimport os", {})
    assert refused.value.message == "the script is outside the safe language: import is not allowed (line 2, col 1)"
