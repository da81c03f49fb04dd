"""Storing decision evaluations and reading them back (the ``decision_evaluations`` table).

Functions take a :class:`~sqlalchemy.orm.Session` and never commit: the step that evaluated the
table owns the unit of work, so an evaluation is stored exactly when the step's state is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import DecisionEvaluationRecord
from engine.decisions.evaluate import DecisionOutcome
from engine.errors import NotFoundError

__all__ = [
    "StoredDecisionEvaluation",
    "get_decision_evaluation",
    "list_decision_evaluations",
    "record_decision_evaluation",
]


@dataclass(frozen=True)
class StoredDecisionEvaluation:
    id: str
    decision_id: str
    table_version: str
    file: str
    hit_policy: str
    pathway_id: str
    pathway_version: str
    created_at: datetime
    instance_id: str
    task_id: str
    element: str
    inputs: list[dict[str, Any]]
    matched: list[str]
    outputs: dict[str, Any]
    misses: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "created_at": self.created_at.isoformat()}


def record_decision_evaluation(
    session: Session,
    outcome: DecisionOutcome,
    *,
    created_at: datetime,
    pathway_id: str,
    pathway_version: str,
    instance_id: str,
    task_id: str,
    element: str,
) -> str:
    """Add the evaluation to ``session``'s transaction; returns its id. Does not commit.

    Raises:
        ValueError: ``created_at`` is naive.
    """
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (UTC)")
    table = outcome.table
    record = DecisionEvaluationRecord(
        id=str(uuid.uuid4()),
        decision_id=table.decision_id,
        table_version=table.digest,
        file=table.file,
        hit_policy=table.hit_policy if table.aggregation is None else f"{table.hit_policy} {table.aggregation}",
        pathway_id=pathway_id,
        pathway_version=pathway_version,
        created_at=created_at,
        instance_id=instance_id,
        task_id=task_id,
        element=element,
        inputs=outcome.inputs,
        matched=outcome.matched,
        outputs=outcome.outputs,
        misses=outcome.misses,
    )
    session.add(record)
    return record.id


def _stored(record: DecisionEvaluationRecord) -> StoredDecisionEvaluation:
    return StoredDecisionEvaluation(
        record.id,
        record.decision_id,
        record.table_version,
        record.file,
        record.hit_policy,
        record.pathway_id,
        record.pathway_version,
        record.created_at,
        record.instance_id,
        record.task_id,
        record.element,
        list(record.inputs),
        list(record.matched),
        dict(record.outputs),
        dict(record.misses),
    )


def get_decision_evaluation(session: Session, evaluation_id: str) -> StoredDecisionEvaluation:
    """Raises: NotFoundError when no decision evaluation has that id."""
    record = session.get(DecisionEvaluationRecord, evaluation_id)
    if record is None:
        raise NotFoundError(f"no decision evaluation with id {evaluation_id}")
    return _stored(record)


def list_decision_evaluations(session: Session, *, instance_id: str) -> list[StoredDecisionEvaluation]:
    """The decision evaluations of a pathway instance, oldest first."""
    statement = (
        select(DecisionEvaluationRecord)
        .where(DecisionEvaluationRecord.instance_id == instance_id)
        .order_by(DecisionEvaluationRecord.created_at, DecisionEvaluationRecord.id)
    )
    return [_stored(record) for record in session.scalars(statement)]
