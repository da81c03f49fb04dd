"""Migration 0033: each instance's rule evaluations numbered in the order its steps made them.

"The previous assessment" (a deterioration is a rise since it) was the evaluation with the latest
time, ties broken by a random id; rules/test_change.py shows the order the engine keeps now. Here:
rows stored before 0033 are numbered as they were read before it, and the engine numbers the next
one after them."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import select, text

from engine import CarePath, ManualClock
from engine.db.models import RuleEvaluationRecord
from engine.db.session import alembic_config, unit_of_work, upgrade_schema
from engine.rules import Assessment, evaluate_and_record, latest_scores

CLINICIAN = "clinician:test"


def _assessed(carepath: CarePath) -> str:
    view = carepath.instances.start("test_careplan", "MRN-ORD-1", "system:test", {"age": 61})
    carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 2}}, CLINICIAN
    )
    return str(view.id)


def _ordinals(carepath: CarePath) -> dict[str, int | None]:
    with unit_of_work(carepath.sessions) as session:
        rows = session.execute(select(RuleEvaluationRecord.id, RuleEvaluationRecord.ordinal)).all()
        return {row_id: ordinal for row_id, ordinal in rows}


def test_rows_before_0033_are_numbered_per_instance_as_they_were_read_and_the_next_follows(
    carepath: CarePath, clock: ManualClock
) -> None:
    instance = _assessed(carepath)
    with unit_of_work(carepath.sessions) as session:
        [first] = session.scalars(select(RuleEvaluationRecord)).all()
        versions, facts, created = (
            (first.ruleset_name, first.ruleset_version, first.catalogue_version),
            first,
            first.created_at,
        )
        facts_json = [f for f in first.facts if f.get("t") != "concern"]
    url = carepath.settings.database_url
    carepath.close()
    command.downgrade(alembic_config(url), "0032")
    old = CarePath(carepath.settings, clock, upgrade=False)
    rows = [  # (id, created_at, instance, worry): a tie with the first broken by id, a later one, one of no instance
        ("00000000-0000-4000-8000-000000000001", created, instance, 5),
        ("ffffffff-ffff-4fff-bfff-fffffffffff1", created + timedelta(days=1), instance, 7),
        ("00000000-0000-4000-8000-000000000002", created + timedelta(days=2), None, 9),
    ]
    try:
        with unit_of_work(old.sessions) as session:
            for row_id, at, owner, worry in rows:
                concern = {"id": "concern:worry_fear_anxiety", "t": "concern", "code": "worry_fear_anxiety",
                           "domain": "emotional", "score": worry}  # fmt: skip
                session.execute(
                    RuleEvaluationRecord.__table__.insert().values(
                        id=row_id,
                        ruleset_name=versions[0],
                        ruleset_version=versions[1],
                        catalogue_version=versions[2],
                        created_at=at,
                        instance_id=owner,
                        task_id=None,
                        facts=[*facts_json, concern],
                        fired=[],
                        outcomes={},
                    )  # fmt: skip
                )
        with old.db.connect() as connection:  # the column is not there before 0033
            columns = connection.execute(text("SELECT * FROM rule_evaluations")).keys()
            assert "ordinal" not in columns
    finally:
        old.close()
    upgrade_schema(url)
    upgraded = CarePath(carepath.settings, clock)
    try:
        assert _ordinals(upgraded) == {rows[0][0]: 1, facts.id: 2, rows[1][0]: 3, rows[2][0]: None}
        with unit_of_work(upgraded.sessions) as session:
            assert latest_scores(session, instance) == {"worry_fear_anxiety": 7}
            made = evaluate_and_record(
                session, upgraded.rules, versions[0], Assessment({"worry_fear_anxiety": 3}), clock=clock,
                instance_id=instance, task_id="t",
            )  # fmt: skip
        assert _ordinals(upgraded)[made.id] == 4
        view = upgraded.instances.get(instance)
        assert view.status == "running"
    finally:
        upgraded.close()
    command.downgrade(alembic_config(url), "0032")  # and back: the column and its index go
    upgrade_schema(url)
