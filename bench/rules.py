"""Benchmark: CarePath's rules evaluator vs the same compiled rule set on bare durable-rules.

Prints JSON. Both sides evaluate the same 15-concern assessments (seeded) with the bundled
rules, one evaluation after another on one thread:

- ``carepath``: ``evaluate_and_record`` -- the call a pathway task makes: rule-file change check,
  canonical facts, lock, fresh session, drain, delete, outcome resolution, and the evaluation
  row inserted into an in-memory SQLite database (committed every 100 evaluations);
- ``carepath_evaluate_only``: the same without the database row;
- ``durable_direct``: durable-rules driven natively doing the same work: the same compiled
  ruleset registered on a ``Host`` without its background threads, the same encoded fact texts
  (those CarePath asserts, encoded beforehand) through the native ``assert_fact``, actions run as
  the host runs them (an action that appends the match), queued actions drained, the session
  deleted. No CarePath code runs in the timed loop. (An earlier baseline used ``Host.assert_fact``
  with fact dicts, which re-encodes each fact and raises for unmatched ones: slower than native,
  it flattered CarePath.)

Times are CPU seconds of this process (``time.process_time``), best of the rounds, because
the machines we run on are shared; wall-clock figures and ratios are printed too, with the
machine and its load average (``host``).

Run from the repository root: ``.venv/bin/python bench/rules.py`` (``--evaluations N``,
``--rounds R``, ``--seed S``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import durable_rules_engine  # noqa: E402
import machine  # noqa: E402  (bench/machine.py, beside this script)
from durable import engine as durable  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from engine.clock import ManualClock  # noqa: E402
from engine.db.base import Base  # noqa: E402
from engine.rules import Assessment, PatientContext, RuleSetRegistry  # noqa: E402
from engine.rules.compiler import canonical_facts  # noqa: E402
from engine.rules.evaluator import warm_up, with_warmup  # noqa: E402
from engine.rules.store import RuleEvaluationRecord, RuleVersionRecord, evaluate_and_record  # noqa: E402


def assessments(catalogue_codes: list[str], n: int, seed: int) -> list[Assessment]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        codes = rng.sample(catalogue_codes, 15)
        out.append(
            Assessment(
                {c: rng.randint(0, 10) for c in codes},
                PatientContext(
                    age=rng.randint(16, 90),
                    treatment_phase=rng.choice(["diagnosis", "treatment", "follow_up"]),
                    caring_duties=rng.random() < 0.3,
                    wants_to_return_to_work=rng.random() < 0.4,
                    lives_alone=rng.random() < 0.2,
                    travel_minutes=float(rng.randint(5, 150)),
                ),
            )
        )
    return out


class _DirectHost(durable.Host):
    def __init__(self) -> None:
        self.matches: list[Any] = []
        super().__init__()

    def _run(self) -> None:  # no background dispatcher threads (they run actions concurrently)
        pass

    def get_action(self, action_name: str) -> Any:
        matches = self.matches

        def action(c: Any) -> None:
            matches.append((action_name, c._m))

        return action


Timing = tuple[float, float]  # (CPU seconds, wall seconds)


def _clock() -> Timing:
    return time.process_time(), time.perf_counter()


def _since(start: Timing) -> Timing:
    return time.process_time() - start[0], time.perf_counter() - start[1]


def run_direct(compiled: Any, name: str, encoded: list[list[tuple[str, str]]], n: int) -> Timing:
    """durable-rules driven natively, doing the evaluator's work on the same encoded facts.

    The facts are those CarePath sends (the ones some rule can match, in canonical order) as the
    same JSON texts, encoded before timing as CarePath encodes them once per catalogue version.
    Per evaluation: a new session id, each fact through the native ``assert_fact``, the actions it
    triggers run through the ruleset (``do_actions``, as ``Host.assert_fact`` does), queued actions
    drained (``start_action``, as the host's dispatcher does), then the session deleted.
    """
    host = _DirectHost()
    host.register_rulesets({name: with_warmup(compiled.definition_with_actions())})
    warm_up(host, name)  # without it, deleting the first session segfaults
    ruleset = host.get_ruleset(name)
    handle = ruleset._handle

    def complete(error: Any, state: Any) -> None:
        if error:
            raise RuntimeError(error)

    start = _clock()
    for i in range(n):
        sid = str(uuid.uuid4())
        end = f', "sid": "{sid}"}}'
        for text, _fact_id in encoded[i % len(encoded)]:
            result = durable_rules_engine.assert_fact(handle, text + end)
            if result[0] != 1:  # 1: no rule looks at it
                ruleset.do_actions(0 if result[0] == 3 else result[1], complete)
        while True:
            queued = durable_rules_engine.start_action(handle)
            if not queued:
                break
            ruleset._flush_actions(json.loads(queued[0]), {"message": json.loads(queued[1])}, queued[2], complete)
        ruleset.delete_state(sid)
        host.matches.clear()
    return _since(start)


def run_evaluate_only(registry: RuleSetRegistry, cohort: list[Assessment], n: int) -> Timing:
    start = _clock()
    for i in range(n):
        registry.evaluate("supportive_care", cohort[i % len(cohort)])
    return _since(start)


def run_carepath(registry: RuleSetRegistry, cohort: list[Assessment], n: int) -> Timing:
    db = create_engine("sqlite://")
    tables = [
        Base.metadata.tables[RuleVersionRecord.__tablename__],
        Base.metadata.tables[RuleEvaluationRecord.__tablename__],
    ]
    Base.metadata.create_all(db, tables=tables)
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    with Session(db) as session:
        start = _clock()
        for i in range(n):
            evaluate_and_record(session, registry, "supportive_care", cohort[i % len(cohort)], clock=clock)
            if i % 100 == 99:
                session.commit()
        session.commit()
        elapsed = _since(start)
    db.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    registry = RuleSetRegistry(ROOT / "rules", recheck_seconds=1.0)  # as the server runs it (engine/core.py)
    loaded = registry.current("supportive_care")
    cohort = assessments(sorted(loaded.catalogue.concerns), 200, args.seed)
    # The texts CarePath asserts: each assessment's canonical facts that some rule can match.
    encoded = []
    for assessment in cohort:
        facts = canonical_facts(assessment, loaded.catalogue)
        encoded.append([(text, fact["id"]) for fact, text in zip(facts.facts, facts.texts, strict=True)
                        if loaded.compiled.could_match(fact)])
    n = args.evaluations

    run_carepath(registry, cohort, 300)  # warm-up: registration, caches
    direct: list[Timing] = []
    only: list[Timing] = []
    full: list[Timing] = []
    for r in range(args.rounds):  # interleaved, so load changes hit all three alike
        name = f"direct_{r}_{loaded.compiled.durable_name}"  # same definition, its own registration
        direct.append(run_direct(loaded.compiled, name, encoded, n))
        only.append(run_evaluate_only(registry, cohort, n))
        full.append(run_carepath(registry, cohort, n))

    def figures(runs: list[Timing]) -> dict[str, float]:
        cpu, wall = min(c for c, _ in runs), min(w for _, w in runs)
        return {
            "evaluations_per_cpu_s": round(n / cpu, 1),
            "cpu_ms_per_evaluation": round(1000 * cpu / n, 3),
            "evaluations_per_wall_s": round(n / wall, 1),
        }

    best = {k: min(c for c, _ in v) for k, v in (("direct", direct), ("only", only), ("full", full))}
    best_wall = {k: min(w for _, w in v) for k, v in (("direct", direct), ("only", only), ("full", full))}
    print(
        json.dumps(
            {
                "benchmark": "rules evaluation, 15-concern assessments, bundled rules",
                "ruleset": loaded.name,
                "version": loaded.version,
                "rules": len(loaded.compiled.rule_file.rules),
                "compiled_durable_rules": len(loaded.compiled.definition),
                "evaluations_per_round": n,
                "rounds": args.rounds,
                "durable_direct": figures(direct),
                "carepath_evaluate_only": figures(only),
                "carepath_with_recording": figures(full),
                "ratio_with_recording": round(best["full"] / best["direct"], 3),
                "ratio_evaluate_only": round(best["only"] / best["direct"], 3),
                "wall_ratio_with_recording": round(best_wall["full"] / best_wall["direct"], 3),
                "wall_ratio_evaluate_only": round(best_wall["only"] / best_wall["direct"], 3),
                "target_ratio": 1.25,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "host": machine.describe(),
                "command": f".venv/bin/python bench/rules.py --evaluations {n} --rounds {args.rounds} "
                f"--seed {args.seed}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
