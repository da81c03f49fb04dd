"""bench/rules.py's same-work baseline writes the row CarePath records, with the bare driver: the same
texts and numbering as ``evaluate_and_record``, so the ratio against it compares like with like."""

from __future__ import annotations

from pathlib import Path

from bench_modules import load_bench  # tests/ is on sys.path
from sqlalchemy import select

from engine.rules import RuleSetRegistry, evaluate_and_record
from engine.rules.store import RuleEvaluationRecord

rules_bench = load_bench("rules", "bench_rules")
ROOT = Path(__file__).resolve().parent.parent


def _rows(database) -> list[tuple]:  # noqa: ANN001 - bench_rules.Recording
    database.session.commit()
    found = database.session.execute(
        select(
            RuleEvaluationRecord.instance_id,
            RuleEvaluationRecord.ordinal,
            RuleEvaluationRecord.ruleset_version,
            RuleEvaluationRecord.catalogue_version,
            RuleEvaluationRecord.created_at,
            RuleEvaluationRecord.facts,
            RuleEvaluationRecord.fired,
            RuleEvaluationRecord.outcomes,
        ).order_by(RuleEvaluationRecord.task_id)
    ).all()
    return [tuple(row) for row in found]


def test_the_bare_driver_writes_the_row_carepath_records() -> None:
    registry = RuleSetRegistry(ROOT / "rules", recheck_seconds=1.0)
    loaded = registry.current("supportive_care")
    cohort = rules_bench.assessments(sorted(loaded.catalogue.concerns), 3, seed=4)
    bare, carepath = rules_bench.Recording(registry), rules_bench.Recording(registry)
    try:
        rows = rules_bench.BareRows(registry, cohort, bare)
        for i in (0, 1, 2, 50):  # 50: the first instance's second evaluation
            rows.write(i)
        rows.commit()
        for i in (0, 1, 2, 50):
            evaluate_and_record(
                carepath.session, registry, "supportive_care", cohort[i % 3], clock=carepath.clock,
                instance_id=f"bench-direct-{i % 50}", task_id=f"t-{i}",
            )  # fmt: skip
        written = _rows(bare)
        assert written == _rows(carepath)
        assert [(instance, ordinal) for instance, ordinal, *_ in written] == [
            ("bench-direct-0", 1), ("bench-direct-1", 1), ("bench-direct-2", 1), ("bench-direct-0", 2)
        ]  # fmt: skip
        assert all(row[5] and row[7] for row in written)  # facts and outcomes, not empty
    finally:
        bare.close()
        carepath.close()
