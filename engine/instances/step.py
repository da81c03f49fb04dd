"""Running one step of an instance: the script engine, service operators and incidents.

A *step* is everything the engine does between two persisted states: complete a task and run the
automatic work that follows, deliver a message, fire timers, retry after an incident. A step that
fails inside the workflow library leaves the failing task in ERROR; the instance is then saved in
the ``error`` status with an incident naming the element and the message, and can be retried once
the cause is fixed. A step that fails for any other reason is rolled back whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.errors import (
    CarePathError,
    ExpressionError,
    Problem,
    RuleEvaluationError,
    UnsafeExpressionError,
    WorkflowError,
    translate_workflow_errors,
)
from engine.instances.store import InstanceRecord

__all__ = ["ServiceOperator", "StepContext", "StepScriptEngine", "run_step"]


@dataclass
class StepContext:
    """What service operators may use during a step (same transaction as the step)."""

    session: Session
    instance: InstanceRecord
    clock: Clock
    actor: str
    pathway_version: str
    # Events operators ask to append after the step (type, element, payload).
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


# An operator gets the step, the task and its evaluated parameters, and returns JSON-able data
# stored in the task's result variable.
ServiceOperator = Callable[[StepContext, Any, dict[str, Any]], Any]


class StepScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine with the safe environment and CarePath's service operators."""

    def __init__(self, environment: Any, operators: Mapping[str, ServiceOperator], context: StepContext) -> None:
        super().__init__(environment=environment)
        self._operators = operators
        self._context = context

    def call_service(self, task: Any, **kwargs: Any) -> str:
        name = kwargs.get("operation_name")
        operator = self._operators.get(str(name))
        if operator is None:
            raise WorkflowError(f"unknown service operator {name!r}",
                                [Problem(f"unknown service operator {name!r}", element=task.task_spec.bpmn_id)])
        params = {key: value["value"] for key, value in (kwargs.get("operation_params") or {}).items()}
        try:
            return json.dumps(operator(self._context, task, params))
        except CarePathError:
            raise
        except Exception as exc:  # an operator's own failure (network, service down) is an incident
            message = f"service {name!r} failed: {type(exc).__name__}: {exc}"
            raise WorkflowError(message, [Problem(message, element=task.task_spec.bpmn_id)]) from exc


def make_step_engine(clock: Clock, operators: Mapping[str, ServiceOperator], context: StepContext,
                     max_steps: int, max_seconds: float) -> StepScriptEngine:
    from engine.expressions import SafeEnvironment

    environment = SafeEnvironment(clock, max_steps=max_steps, max_seconds=max_seconds)
    return StepScriptEngine(environment, operators, context)


@dataclass(frozen=True)
class StepOutcome:
    """What a step did: None when it ran through, else the incident it raised."""

    incident: dict[str, Any] | None


def run_step(action: Callable[[], None], failing_element: Callable[[], str | None], at: str) -> StepOutcome:
    """Run ``action`` (which drives the workflow) and turn a workflow failure into an incident.

    Only failures of the diagram's own logic (expressions, services, the library's run-time
    errors) become incidents; CarePath errors about the request itself propagate unchanged.
    """
    try:
        with translate_workflow_errors():
            action()
    except (WorkflowError, ExpressionError, UnsafeExpressionError, RuleEvaluationError) as exc:
        # An unsafe expression met at run time is the diagram's fault, not the request's.
        element = exc.problems[0].element if exc.problems and exc.problems[0].element else failing_element()
        return StepOutcome({"element": element, "message": exc.message, "kind": type(exc).__name__, "at": at})
    return StepOutcome(None)
