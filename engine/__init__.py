"""CarePath's engine: pathways, instances, rules and the audit trail. No web framework here."""

from engine.app import CarePath
from engine.clock import Clock, ManualClock, SystemClock
from engine.errors import (
    CarePathError,
    ConflictError,
    DiagramError,
    ExpressionError,
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    InvalidTokenError,
    MessageNotDeliverableError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    RuleEvaluationError,
    RuleFileError,
    StaleVersionError,
    TaskDataError,
    TaskNotReadyError,
    UnsafeExpressionError,
    WorkflowError,
)
from engine.settings import Settings

__all__ = [
    "CarePath",
    "CarePathError",
    "Clock",
    "ConflictError",
    "DiagramError",
    "ExpressionError",
    "IdempotencyKeyInUseError",
    "IdempotencyKeyReusedError",
    "InvalidInputError",
    "InvalidTokenError",
    "ManualClock",
    "MessageNotDeliverableError",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "RuleEvaluationError",
    "RuleFileError",
    "Settings",
    "StaleVersionError",
    "SystemClock",
    "TaskDataError",
    "TaskNotReadyError",
    "UnsafeExpressionError",
    "WorkflowError",
]
