"""CarePath's exceptions, and the one boundary where library errors become ours.

The tree (``api/errors.py`` maps every class to an HTTP status; a test holds both to this drawing)::

    CarePathError
    ├── InvalidInputError              input from an author, a system or a clinician is wrong
    │   ├── DiagramError               a BPMN diagram is malformed or breaks a lint rule
    │   ├── RuleFileError              a YAML rule or catalogue file is malformed
    │   ├── UnsafeExpressionError      an expression uses syntax outside the safe language
    │   ├── TaskDataError              data for a task fails the task's form schema
    │   ├── StartDataError             start data (or a correction of it) fails the pathway's start schema
    │   └── IdempotencyKeyReusedError  an Idempotency-Key is sent again with a different request
    ├── NotFoundError                  a pathway, version, instance, task or evaluation does not exist
    ├── ConflictError                  the request is valid but the instance is not in a state for it
    │   ├── StaleVersionError          If-Match / expected version is not the current one
    │   ├── TaskNotReadyError          the task is already completed, cancelled, or not yet reached
    │   ├── InstanceExistsError        the patient already has a running instance of the pathway
    │   ├── PatientDeceasedError       a start for a patient whose death is recorded
    │   ├── IdempotencyKeyInUseError   the first request with an Idempotency-Key has not finished
    │   └── VersionStateError          a version is already active, a migration request already executed
    ├── MessageNotDeliverableError     no waiting instance matches a message
    ├── PermissionDeniedError          the caller's role does not allow the action
    │   ├── InvalidTokenError          the bearer token is missing, unknown or revoked
    │   └── FourEyesError              the approver of a version or migration is not a second person
    ├── ExpressionError                a safe expression failed while running (name, type, step limit)
    ├── WorkflowError                  the workflow library failed while running a step (becomes an incident)
    └── RuleEvaluationError            the rules engine failed while evaluating an assessment

A broken event trail is not an error: :func:`engine.audit.verify_trail` reports it as a list of
problems for an auditor, and clinical work goes on.

Every error carries ``problems``: a list of :class:`Problem` naming where (file, line, column,
element) and what, so command-line tools can print ``file:line: element-id: message`` and the
HTTP API can name every failing field.

SpiffWorkflow's exceptions are translated only in :func:`translate_workflow_errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "CarePathError",
    "ConflictError",
    "ERROR",
    "WARNING",
    "VersionStateError",
    "DiagramError",
    "ExpressionError",
    "FourEyesError",
    "IdempotencyKeyInUseError",
    "IdempotencyKeyReusedError",
    "InvalidInputError",
    "InstanceExistsError",
    "PatientDeceasedError",
    "InvalidTokenError",
    "MessageNotDeliverableError",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "RuleEvaluationError",
    "RuleFileError",
    "StaleVersionError",
    "StartDataError",
    "TaskDataError",
    "TaskNotReadyError",
    "UnsafeExpressionError",
    "WorkflowError",
    "translate_workflow_errors",
]


ERROR = "error"
WARNING = "warning"
SEVERITIES = (ERROR, WARNING)


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong, and where.

    ``field`` is a JSON pointer-like path (``/scores/anxiety``) for data problems; ``file``,
    ``line``, ``column`` and ``element`` locate problems in diagrams and rule files.
    ``severity`` is :data:`ERROR` (the input is refused) or :data:`WARNING` (worth an author's
    attention, but a diagram with only warnings is deployed).
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    element: str | None = None
    field: str | None = None
    code: str | None = None
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        if self.element:
            where += f"{self.element}: "
        if self.field:
            where += f"{self.field}: "
        return where + ("" if self.is_error else f"{self.severity}: ") + self.message

    def as_dict(self) -> dict[str, object]:
        """The fields that are set; ``severity`` only for a warning (absent means an error, as it
        always did before problems had a severity)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and (k != "severity" or v != ERROR)}


@dataclass
class CarePathError(Exception):
    """Base of every error CarePath raises on purpose."""

    message: str
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  {p}" for p in self.problems)


class InvalidInputError(CarePathError):
    """Raised when input from a person or a system is wrong; nothing was changed."""


class DiagramError(InvalidInputError):
    """Raised when a BPMN diagram cannot be parsed or fails validation."""


class RuleFileError(InvalidInputError):
    """Raised when a rule, rule-test or catalogue file cannot be loaded."""


class UnsafeExpressionError(InvalidInputError):
    """Raised when an expression or script uses syntax or names outside the safe language."""


class TaskDataError(InvalidInputError):
    """Raised when data submitted for a task fails its form schema (every field is named)."""


class StartDataError(InvalidInputError):
    """Raised when start data, or a clinician's correction of an instance's data, fails the pathway's
    start data schema, or a waiting timer's date cannot be worked out from a corrected value (every field
    is named; values are never quoted)."""


class IdempotencyKeyReusedError(InvalidInputError):
    """Raised when an ``Idempotency-Key`` is sent again with a different request (method, path or body)."""


class NotFoundError(CarePathError):
    """Raised when the thing asked for does not exist."""


class ConflictError(CarePathError):
    """Raised when the request conflicts with the instance's current state."""


class StaleVersionError(ConflictError):
    """Raised when the caller's expected instance version is not the current one."""


class TaskNotReadyError(ConflictError):
    """Raised when a task is completed twice, or is not (or no longer) ready."""


class InstanceExistsError(ConflictError):
    """Raised when a start would give a patient a second running instance of a pathway; ``instance_id``
    is the running one (the HTTP API answers with its location)."""

    def __init__(self, message: str, problems: list[Problem] | None = None, *, instance_id: str = "") -> None:
        super().__init__(
            message,
            problems
            if problems is not None
            else [
                Problem(
                    "the patient already has a running instance of this pathway",
                    field="/patient_ref",
                    code="instance-exists",
                )
            ],
        )
        self.instance_id = instance_id


class PatientDeceasedError(ConflictError):
    """Raised when a pathway would start for a patient whose death is recorded (the ``patient_died``
    message records it; engine.instances.deaths)."""

    def __init__(
        self,
        message: str = "the patient's death is recorded: no pathway can be started",
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(
            message,
            problems
            if problems is not None
            else [
                Problem(
                    "this patient's death is recorded (withdraw a record made in error first)",
                    field="/patient_ref",
                    code="patient-deceased",
                )
            ],
        )


class IdempotencyKeyInUseError(ConflictError):
    """Raised when the first request with an ``Idempotency-Key`` has not finished yet (or died unfinished)."""


class VersionStateError(ConflictError):
    """Raised when a pathway or rule-set version is already active, or a migration request was
    already executed (engine.four_eyes)."""


class MessageNotDeliverableError(CarePathError):
    """Raised when a message matches no instance waiting for it."""


class PermissionDeniedError(CarePathError):
    """Raised when the caller is not allowed to do what they asked."""


class InvalidTokenError(PermissionDeniedError):
    """Raised when a bearer token is missing, unknown or revoked (the caller is not authenticated)."""


class FourEyesError(PermissionDeniedError):
    """Raised when a version would be activated, or a migration approved, by the person who deployed
    or asked for it, or by a token naming no person (engine.four_eyes)."""


class ExpressionError(CarePathError):
    """Raised when a safe expression fails at run time (unknown name, type error, step limit)."""


class WorkflowError(CarePathError):
    """Raised when the workflow library fails while running a step (recorded as an incident), or when
    stored workflow state no longer fits its diagram."""


class RuleEvaluationError(CarePathError):
    """Raised when the rules engine fails while evaluating an assessment."""


def _element_of(exc: BaseException) -> str | None:
    task = getattr(exc, "task", None)
    spec = getattr(task, "task_spec", None) if task is not None else getattr(exc, "task_spec", None)
    if spec is None:
        return getattr(exc, "id", None) or None
    return getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)


def _root_cause(exc: BaseException) -> BaseException:
    """The error that started it: SpiffWorkflow wraps errors, sometimes keeping the original only in
    ``__context__`` (WorkflowTaskException; the NameError of call_service's error path)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen and not isinstance(current, CarePathError):
        seen.add(id(current))
        inner = getattr(current, "exception", None)
        if not isinstance(inner, BaseException):
            inner = current.__cause__ or current.__context__
        if inner is None:
            break
        current = inner
    return current


@contextlib.contextmanager
def translate_workflow_errors() -> Iterator[None]:
    """Map SpiffWorkflow's exceptions (and errors raised inside it) to CarePath's.

    Our own errors raised from inside SpiffWorkflow callbacks (for example an
    :class:`ExpressionError` from the safe evaluator) are unwrapped and re-raised with the
    element that failed.

    Raises:
        DiagramError: for the parser's ValidationException.
        ExpressionError / UnsafeExpressionError: for failures of the safe evaluator.
        WorkflowError: for every other failure inside the workflow library.
    """
    from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
    from SpiffWorkflow.exceptions import SpiffWorkflowException
    from SpiffWorkflow.serializer.exceptions import MissingSpecError, TaskNotSupportedError, TaskSpecNotSupportedError
    from SpiffWorkflow.util.weakmethod import DeadMethodCalled

    try:
        yield
    except CarePathError:
        raise
    except ValidationException as exc:
        problem = Problem(
            message=str(getattr(exc, "message", exc)).strip(),
            file=getattr(exc, "file_name", None) or None,
            line=getattr(exc, "line_number", None) or None,
            element=getattr(exc, "id", None) or None,
        )
        raise DiagramError("the diagram is not valid BPMN", [problem]) from exc
    except SpiffWorkflowException as exc:
        cause = _root_cause(exc)
        element = _element_of(exc)
        if isinstance(cause, CarePathError):
            problems = [Problem(message=p.message, element=p.element or element) for p in cause.problems]
            if not problems:
                problems = [Problem(message=cause.message, element=element)]
            raise type(cause)(cause.message, problems) from exc
        # SpiffWorkflow's own texts are about the diagram; the text of an error raised inside it (a
        # ValueError parsing a date from task data) may quote a patient's values: its type alone.
        message = f"{type(cause).__name__} inside the workflow library" if cause is not exc else str(exc)
        raise WorkflowError(message, [Problem(message=message, element=element)]) from exc
    except (MissingSpecError, TaskNotSupportedError, TaskSpecNotSupportedError, DeadMethodCalled) as exc:
        # The serializer's errors are plain ValueErrors: stored state that does not fit its spec.
        message = f"stored workflow state cannot be used: {type(exc).__name__}: {exc}"
        raise WorkflowError(message, [Problem(message=message)]) from exc
