"""Concern trends: each concern's scores over a patient's assessments, and what counts as a deterioration.

An assessment is one stored rule evaluation of the instance (engine.rules.store): its concern facts
hold the scores of one completed checklist. A concern the checklist left unscored is no concern (0),
as the checklist tells the patient, so every series has a point for every assessment.

A **deterioration** between two assessments is a concern that rose by 3 or more, or that reached 8
(8 or more now, less before): CarePath's threshold, the same as the bundled rules' "priority" score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db.models import RuleEvaluationRecord

__all__ = ["MAX_ASSESSMENTS", "AssessedConcerns", "ConcernTrends", "concern_trends", "deteriorated", "latest_scores"]

MAX_ASSESSMENTS = 200  # the most recent assessments a trend reads (years of three-monthly HNAs)
RISE = 3  # a rise by this much or more is a deterioration
PRIORITY_SCORE = 8  # reaching this (from below) is a deterioration


@dataclass(frozen=True)
class AssessedConcerns:
    """One assessment: when, which evaluation, and the scores given (code -> 0-10)."""

    evaluation_id: str
    at: datetime
    scores: Mapping[str, int]


@dataclass(frozen=True)
class ConcernTrends:
    """Per concern, its score at each assessment (oldest first); codes sorted."""

    assessments: tuple[AssessedConcerns, ...]

    def codes(self) -> list[str]:
        return sorted({code for a in self.assessments for code in a.scores})

    def as_dict(self) -> dict[str, Any]:
        series = []
        for code in self.codes():
            points, last = [], None
            for a in self.assessments:
                score = a.scores.get(code, 0)
                points.append(
                    {
                        "evaluation_id": a.evaluation_id,
                        "at": a.at.isoformat(),
                        "score": score,
                        "change": None if last is None else score - last,
                    }
                )
                last = score
            series.append({"code": code, "points": points})
        return {
            "assessments": [{"evaluation_id": a.evaluation_id, "at": a.at.isoformat()} for a in self.assessments],
            "concerns": series,
            "deteriorated": (
                deteriorated(self.assessments[-2].scores, self.assessments[-1].scores)
                if len(self.assessments) > 1
                else []
            ),
        }


def _scores(facts: Any) -> dict[str, int]:
    if not isinstance(facts, list):
        return {}
    return {
        f["code"]: f["score"]
        for f in facts
        if isinstance(f, dict) and f.get("t") == "concern" and isinstance(f.get("score"), int)
    }


def concern_trends(session: Session, instance_id: str) -> ConcernTrends:
    """The instance's assessments, oldest first (at most :data:`MAX_ASSESSMENTS`, the latest)."""
    rows = session.execute(
        select(RuleEvaluationRecord.id, RuleEvaluationRecord.created_at, RuleEvaluationRecord.facts)
        .where(RuleEvaluationRecord.instance_id == instance_id)
        .order_by(RuleEvaluationRecord.ordinal.desc())
        .limit(MAX_ASSESSMENTS)
    ).all()
    return ConcernTrends(tuple(AssessedConcerns(row.id, row.created_at, _scores(row.facts)) for row in reversed(rows)))


def latest_scores(session: Session, instance_id: str) -> dict[str, int] | None:
    """The scores of the instance's latest assessment (``None``: it has none yet)."""
    row = session.execute(
        select(RuleEvaluationRecord.facts)
        .where(RuleEvaluationRecord.instance_id == instance_id)
        .order_by(RuleEvaluationRecord.ordinal.desc())
        .limit(1)
    ).first()
    return None if row is None else _scores(row.facts)


def deteriorated(previous: Mapping[str, int], now: Mapping[str, int]) -> list[str]:
    """The concerns (sorted) that rose by 3 or more, or reached 8, from ``previous`` to ``now``."""
    out = []
    for code, score in now.items():
        before = previous.get(code, 0)
        if score - before >= RISE or (score >= PRIORITY_SCORE > before):
            out.append(code)
    return sorted(out)
