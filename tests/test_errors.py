"""The error boundary: every SpiffWorkflow exception becomes a CarePath error, with its element."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import SpiffWorkflow
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.serializer.exceptions import MissingSpecError, TaskNotSupportedError, TaskSpecNotSupportedError
from SpiffWorkflow.util.weakmethod import DeadMethodCalled

import engine
from engine.errors import (
    CarePathError,
    DiagramError,
    ExpressionError,
    Problem,
    WorkflowError,
    translate_workflow_errors,
)


def _spiff_exception_classes() -> list[type[BaseException]]:
    """Every exception class SpiffWorkflow defines, found by importing all of it: those under
    SpiffWorkflowException and the others (the serializer's ValueErrors, DeadMethodCalled), so a new
    one fails the test below until the boundary maps it."""
    classes: set[type[BaseException]] = set()
    for module_info in pkgutil.walk_packages(SpiffWorkflow.__path__, "SpiffWorkflow."):
        if ".tests" in module_info.name or module_info.name.endswith(".camunda.serializer.config"):
            continue
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.split(".")[0] == "SpiffWorkflow":
                classes.add(obj)
    return sorted(classes, key=lambda c: c.__qualname__)


def _real_task():  # type: ignore[no-untyped-def]
    """A task of a real workflow (task exceptions read its spec and workflow)."""
    from pathlib import Path

    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(Path(__file__).parent / "pathways" / "bad_condition.bpmn"))
    workflow = BpmnWorkflow(parser.get_spec("test_bad_condition"))
    workflow.do_engine_steps()
    return workflow.get_tasks(spec_name="collect")[0]


def _instantiate(cls: type[BaseException]) -> BaseException:
    for args, kwargs in (((), {"task": _real_task()}), (("boom",), {}), (("boom", None), {}), ((), {})):
        try:
            return cls(*(args or ("boom",)), **kwargs)
        except TypeError:
            continue
    raise AssertionError(f"cannot build {cls}")


@pytest.mark.parametrize("cls", _spiff_exception_classes(), ids=lambda c: c.__qualname__)
def test_every_library_exception_is_mapped(cls: type[BaseException]) -> None:
    """As translate_workflow_errors says: the parser's errors are DiagramErrors, all others WorkflowErrors."""
    with pytest.raises(CarePathError) as raised, translate_workflow_errors():
        raise _instantiate(cls)
    assert type(raised.value) is (DiagramError if issubclass(cls, ValidationException) else WorkflowError)
    assert raised.value.problems, "a mapped error always says what went wrong"
    assert raised.value.__cause__ is not None, "the library's error stays attached (raise ... from exc)"


def test_there_are_library_exceptions_to_map() -> None:
    classes = set(_spiff_exception_classes())
    assert {c.__name__ for c in classes} >= {
        "WorkflowException",
        "WorkflowTaskException",
        "ValidationException",
        "TaskNotFoundException",
    }
    assert {MissingSpecError, TaskNotSupportedError, TaskSpecNotSupportedError, DeadMethodCalled} <= classes
    assert any(not issubclass(c, SpiffWorkflowException) for c in classes)


def test_parser_errors_become_diagram_errors_with_file_and_line() -> None:
    with pytest.raises(DiagramError) as raised, translate_workflow_errors():
        raise ValidationException("bad thing", file_name="breast.bpmn", line_number=12)
    assert str(raised.value.problems[0]).startswith("breast.bpmn:12: ")


def test_our_error_raised_inside_the_library_keeps_its_class_and_gains_the_element() -> None:
    from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException

    original = ExpressionError("unknown variable 'worst'", [Problem("unknown variable 'worst'")])
    with pytest.raises(ExpressionError) as raised, translate_workflow_errors():
        try:
            raise original
        except ExpressionError as exc:
            raise WorkflowTaskException("Error evaluating expression", task=_real_task(), exception=exc) from None
    assert raised.value.problems[0].element == "collect"


def test_other_python_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError), translate_workflow_errors():
        raise KeyError("not the library's")


def test_public_surface_is_explicit() -> None:
    for name in engine.__all__:
        assert hasattr(engine, name), name
    assert issubclass(WorkflowError, CarePathError)
