"""Storing evaluations and explaining them: why, and why not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.dialects.mysql import pymysql
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.orm import Session

from engine.clock import ManualClock
from engine.db.base import Base
from engine.errors import NotFoundError
from engine.rules import (
    Assessment,
    LoadedRuleset,
    PatientContext,
    RuleSetRegistry,
    evaluate,
    evaluate_and_record,
    explain_evaluation,
    explain_why,
    explain_why_not,
    get_evaluation,
    list_evaluations,
    record_evaluation,
)
from engine.rules.store import RuleEvaluationRecord, RuleVersionRecord, _EncodedJSON

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_record_and_read_back(db_session: Session, registry: RuleSetRegistry, bundled: LoadedRuleset) -> None:
    clock = ManualClock(NOW)
    e = evaluate_and_record(
        db_session,
        registry,
        "supportive_care",
        Assessment({"pain": 9}),
        clock=clock,
        instance_id="11111111-1111-1111-1111-111111111111",
        task_id="t-1",
    )
    db_session.flush()
    stored = get_evaluation(db_session, e.id)
    assert stored.ruleset_version == bundled.version
    assert stored.created_at == NOW and stored.created_at.tzinfo is not None
    assert stored.instance_id == "11111111-1111-1111-1111-111111111111" and stored.task_id == "t-1"
    assert [f.rule_id for f in stored.firings] == ["pain-severe"]
    assert stored.firings[0].matched == ("concern:pain",)
    assert stored.outcomes["referrals"][0]["intervention"] == "pain-team-referral"
    assert stored.rule_source == bundled.compiled.rule_file.source
    assert stored.catalogue_sources == bundled.catalogue.sources
    assert [r.id for r in list_evaluations(db_session, instance_id=stored.instance_id or "")] == [e.id]


def test_rule_texts_are_stored_once_and_nothing_is_committed(db_session: Session, bundled: LoadedRuleset) -> None:
    for _ in range(3):
        e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"fatigue": 6}))
        record_evaluation(db_session, e, bundled, created_at=NOW)
    db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(RuleVersionRecord)) == 2
    assert db_session.scalar(select(func.count()).select_from(RuleEvaluationRecord)) == 3
    db_session.rollback()  # the caller owns the unit of work: nothing was committed
    assert db_session.scalar(select(func.count()).select_from(RuleEvaluationRecord)) == 0
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"fatigue": 6}))
    record_evaluation(db_session, e, bundled, created_at=NOW)  # the version cache survives rollback
    db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(RuleVersionRecord)) == 2


def test_stored_row_is_the_evaluation_as_json(database_url: str, bundled: LoadedRuleset) -> None:
    """The row's JSON columns are written from text made during the evaluation (not encoded by
    the column type): they must read back as the facts, firings and outcomes, on both databases."""
    engine = create_engine(database_url)
    Base.metadata.create_all(engine, tables=[RuleVersionRecord.__table__, RuleEvaluationRecord.__table__])
    context = PatientContext(age=61, diagnosis='lymfom "B", \u00f6', treatment_phase="treatment", travel_km=12.5)
    evaluations = [
        evaluate(bundled.compiled, bundled.catalogue, a)
        for a in (Assessment({"worry_fear_anxiety": 9, "pain": 8, "fatigue": 6}, context), Assessment({}))
    ]
    # An evaluation made otherwise than by evaluate() carries no texts: they are made when recorded.
    evaluations.append(replace(evaluations[0], id=str(uuid.uuid4()), facts_json=None, fired_json=None))
    assert evaluations[0].firings and not evaluations[1].firings
    with Session(engine) as session:
        for e in evaluations:
            record_evaluation(session, e, bundled, created_at=NOW)
        session.commit()
    with Session(engine) as session:
        for e in evaluations:
            row = session.get(RuleEvaluationRecord, e.id)
            assert row is not None
            assert row.facts == list(e.facts)
            assert row.fired == [f.as_dict() for f in e.firings]
            assert row.outcomes == e.outcomes.as_dict()
            assert get_evaluation(session, e.id).firings == list(e.firings)
        if engine.dialect.name == "sqlite":  # the very text SQLAlchemy's JSON type would have written
            raw = session.execute(
                text("SELECT facts, fired, outcomes FROM rule_evaluations WHERE id = :id"), {"id": evaluations[0].id}
            ).one()
            e = evaluations[0]
            without_texts = session.execute(
                text("SELECT facts, fired, outcomes FROM rule_evaluations WHERE id = :id"), {"id": evaluations[2].id}
            ).one()
            assert (
                tuple(raw)
                == tuple(without_texts)
                == (
                    json.dumps(list(e.facts)),
                    json.dumps([f.as_dict() for f in e.firings]),
                    json.dumps(e.outcomes.as_dict()),
                )
            )
    engine.dispose()


@pytest.mark.parametrize("dialect", [psycopg2.dialect(), pymysql.dialect()], ids=lambda d: d.driver)
def test_encoded_json_on_other_drivers_is_decoded_and_bound_as_usual(dialect: Any) -> None:
    process = _EncodedJSON().bind_processor(dialect)
    assert process is not None
    assert process('{"a": [1, "\\u00f6"]}') == json.dumps({"a": [1, "\u00f6"]})


def test_naive_time_is_refused(db_session: Session, bundled: LoadedRuleset) -> None:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({}))
    with pytest.raises(ValueError):
        record_evaluation(db_session, e, bundled, created_at=datetime(2026, 1, 1))


def test_unknown_evaluation(db_session: Session) -> None:
    with pytest.raises(NotFoundError):
        get_evaluation(db_session, "nope")


def test_why_names_rule_version_facts_and_guidance(bundled: LoadedRuleset) -> None:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"worry_fear_anxiety": 9}))
    why = explain_why(e.id, bundled.compiled.rule_file, e.facts, e.firings, "psychological-support-referral")
    assert why.made
    (reason,) = why.reasons
    assert reason.rule_id == "psych-support-urgent"
    assert reason.matched[0]["score"] == 9
    assert any("CSG4" in g.source for g in reason.guidance)
    text = why.text()
    assert bundled.version[:12] in text and "worry_fear_anxiety (emotional) scored 9" in text
    assert "urgent" in text


def test_why_not_gives_nearest_rule_and_actual_value(bundled: LoadedRuleset) -> None:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"worry_fear_anxiety": 4}))
    why_not = explain_why_not(e.id, bundled.compiled.rule_file, e.facts, e.firings, "emotional-support-discussion")
    assert not why_not.made
    assert why_not.nearest is not None
    assert why_not.nearest.rule_id == "emotional-support-moderate"
    (failed,) = why_not.nearest.failed
    assert failed.condition == "worry_fear_anxiety scored at least 5 and at most 7"
    assert failed.actual == "worry_fear_anxiety scored 4"
    assert failed.loc.line > 0
    assert [m.rule_id for m in why_not.others] == [
        "emotional-support-other",
        "fear-of-recurrence",
        "fear-of-recurrence-severe",
    ]


def test_why_not_for_context_and_none(bundled: LoadedRuleset) -> None:
    young_near = Assessment({}, PatientContext(age=30, treatment_phase="treatment", travel_minutes=95))
    e = evaluate(bundled.compiled, bundled.catalogue, young_near)
    why_not = explain_why_not(e.id, bundled.compiled.rule_file, e.facts, e.firings, "travel-cost-grant")
    assert why_not.nearest is not None
    (failed,) = why_not.nearest.failed
    assert failed.condition == "age at most 25" and failed.actual == "age is 30"
    fever = evaluate(
        bundled.compiled,
        bundled.catalogue,
        Assessment({"fatigue": 6, "fever": 2}, PatientContext(treatment_phase="treatment")),
    )
    blocked = explain_why_not(
        fever.id, bundled.compiled.rule_file, fever.facts, fever.firings, "physical-activity-programme"
    )
    assert blocked.nearest is not None and blocked.nearest.rule_id == "fatigue-physical-activity"
    assert blocked.nearest.failed[0].actual == "fever scored 2"
    assert "none of: fever scored at least 1" in blocked.text()


def test_why_not_unknown_code_suggests(bundled: LoadedRuleset) -> None:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({}))
    out = explain_why_not(
        e.id,
        bundled.compiled.rule_file,
        e.facts,
        e.firings,
        "dietitian-referal",
        list(bundled.catalogue.interventions),
    )
    assert out.note and "did you mean 'dietitian-referral'" in out.note


def test_explain_from_the_database_uses_the_stored_text(
    db_session: Session, rules_copy: Path, write_mini: Callable[..., Path]
) -> None:
    path = write_mini(rules_copy, threshold=8)
    registry = RuleSetRegistry(rules_copy)
    clock = ManualClock(NOW)
    e = evaluate_and_record(db_session, registry, "mini", Assessment({"worry_fear_anxiety": 9}), clock=clock)
    db_session.flush()
    path.unlink()  # the file is gone (or changed): the stored text still explains
    why = explain_evaluation(db_session, RuleSetRegistry(rules_copy), e.id, why="psychological-support-referral")
    assert why.made and why.reasons[0].rule_id == "anxiety-urgent"
    why_not = explain_evaluation(db_session, RuleSetRegistry(rules_copy), e.id, why_not="dietitian-referral")
    assert why_not.nearest is None and why_not.note
    with pytest.raises(ValueError):
        explain_evaluation(db_session, registry, e.id)
