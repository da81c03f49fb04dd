"""Benchmark: CarePath's rules evaluator vs the same compiled rule set on bare durable-rules.

Prints JSON. Both sides evaluate the same 15-concern assessments (seeded) with the bundled
rules, one evaluation after another on one thread:

- ``carepath``: ``evaluate_and_record`` -- the call a pathway task makes: rule-file change check,
  canonical facts, lock, fresh session, drain, delete, outcome resolution, and the evaluation
  row inserted into an in-memory SQLite database for one of 50 instances, numbered after that
  instance's evaluations as a pathway's are (committed every 100 evaluations);
- ``carepath_evaluate_only``: the same without the database row;
- ``durable_direct``: durable-rules driven natively doing the same work: the same compiled
  ruleset registered on a ``Host`` without its background threads, the same encoded fact texts
  (those CarePath asserts, encoded beforehand) through the native ``assert_fact``, actions run as
  the host runs them (an action that appends the match), queued actions drained, the session
  deleted. No CarePath code runs in the timed loop. (An earlier baseline used ``Host.assert_fact``
  with fact dicts, which re-encodes each fact and raises for unmatched ones: slower than native,
  it flattered CarePath.)
- ``durable_direct_and_row``: the same, and the evaluation row CarePath stores written by the bare
  database driver (``BareRows``: texts built before timing, the same INSERT). The target ratio
  (``ratio_with_recording``, 1.25) is against ``durable_direct``, which records nothing;
  ``ratio_with_recording_vs_direct_and_row`` is against this, the same work, and
  ``row_cpu_ms_bare_driver`` is what the row alone costs: the floor under any recording.

Times are CPU seconds of this process (``time.process_time``), because the machines we run on
are shared; wall-clock figures and ratios are printed too, with the machine and its load average
(``host``). Each round runs the four sides in alternating blocks of ``--block`` evaluations (the
order rotating), so a change of load meets all four alike; a ratio is the median over the rounds
of that round's ratio (each round's is printed too), throughputs are the best round's.

With ``--database-url`` (a PostgreSQL database) the recording goes there, as a deployment's does, in a
schema of its own that is dropped after; when the server runs on this machine its CPU for the recording
is read from ``/proc`` and reported (``database_server_cpu_ms_per_evaluation``) and counted in
``ratio_with_recording_and_database_server``. In-memory SQLite, the default, runs in this process.

Run from the repository root: ``.venv/bin/python bench/rules.py`` (``--evaluations N``,
``--rounds R``, ``--seed S``, ``--block B``, ``--database-url URL``).
"""

from __future__ import annotations

import argparse
import json
import os
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
from sqlalchemy import text as sql  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from engine.clock import ManualClock  # noqa: E402
from engine.db.base import Base  # noqa: E402
from engine.rules import Assessment, PatientContext, RuleSetRegistry  # noqa: E402
from engine.rules.compiler import canonical_facts  # noqa: E402
from engine.rules.evaluator import warm_up, with_warmup  # noqa: E402
from engine.rules.store import (  # noqa: E402
    RuleEvaluationRecord,
    RuleVersionRecord,
    evaluate_and_record,
    record_rule_version,
)


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


class Direct:
    """durable-rules driven natively, doing the evaluator's work on the same encoded facts.

    The compiled rule set is registered once on its own ``Host`` (without background threads) and
    warmed up, as CarePath's registry registers its rule set once per version: registering a fresh
    rule set for every round made the baseline's cost drift from round to round (2.6 to 3.8 s for
    the same 2,000 evaluations, growing with each registration), which swung the ratio by +-20 %.

    The facts are those CarePath sends (the ones some rule can match, in canonical order) as the
    same JSON texts, encoded before timing as CarePath encodes them once per catalogue version.
    Per evaluation: a new session id, each fact through the native ``assert_fact``, the actions it
    triggers run through the ruleset (``do_actions``, as ``Host.assert_fact`` does), queued actions
    drained (``start_action``, as the host's dispatcher does), then the session deleted.
    """

    def __init__(
        self, compiled: Any, name: str, encoded: list[list[tuple[str, str]]], rows: BareRows | None = None
    ) -> None:
        self.host = _DirectHost()
        self.host.register_rulesets({name: with_warmup(compiled.definition_with_actions())})
        warm_up(self.host, name)  # without it, deleting the first session segfaults
        self.ruleset = self.host.get_ruleset(name)
        self.encoded = encoded
        self.rows = rows

    def run(self, n: int, offset: int = 0) -> Timing:
        ruleset, handle, encoded, matches = self.ruleset, self.ruleset._handle, self.encoded, self.host.matches
        write = None if self.rows is None else self.rows.write

        def complete(error: Any, state: Any) -> None:
            if error:
                raise RuntimeError(error)

        start = _clock()
        for i in range(offset, offset + n):
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
            matches.clear()
            if write is not None:
                write(i)
        if self.rows is not None:
            self.rows.commit()
        return _since(start)


class BareRows:
    """The evaluation row CarePath records, written by the bare database driver: the floor of recording.

    Each assessment's row (its facts, firings and outcomes as the JSON texts CarePath stores, its
    times through the columns' bind processing) is built before timing; per evaluation a fresh id and
    the same INSERT CarePath runs (``engine.rules.store``, numbered after the instance's evaluations)
    on the driver's cursor, committed every 100 evaluations like the recording side. The baseline
    ``durable_direct_and_row`` is durable-rules natively plus this: the same work as CarePath with the
    recording, and no CarePath code in the loop but this INSERT's text.
    """

    def __init__(self, registry: RuleSetRegistry, cohort: list[Assessment], database: Recording) -> None:
        from engine.rules.store import _evaluation_insert  # the statement CarePath runs

        self.session = database.session
        insert = _evaluation_insert(self.session)
        self.sql = insert.sql_for_instance
        at = database.clock.now()
        record_rule_version(self.session, registry.current("supportive_care"), at)  # the rows refer to them
        self.session.commit()
        self.rows = []
        for assessment in cohort:  # the texts CarePath would store for it (engine.rules.store.record_evaluation)
            evaluation = registry.evaluate("supportive_care", assessment)
            row = {
                "ruleset_name": evaluation.ruleset_name,
                "ruleset_version": evaluation.ruleset_version,
                "catalogue_version": evaluation.catalogue_version,
                "created_at": at,
                "facts_json": evaluation.facts_json or json.dumps(list(evaluation.facts)),
                "fired_json": evaluation.fired_json,
                "outcomes_json": evaluation.outcomes.json_text,
            }
            for name, process in insert.processors:
                if name in row:
                    row[name] = process(row[name])
            self.rows.append(row)
        self.cursor: Any = None

    def write(self, i: int) -> None:
        if self.cursor is None:
            self.cursor = self.session.connection().connection.driver_connection.cursor()
        instance = f"bench-direct-{i % 50}"
        row = self.rows[i % len(self.rows)]
        self.cursor.execute(
            self.sql,
            {**row, "id": str(uuid.uuid4()), "instance_id": instance, "of_instance": instance, "task_id": f"t-{i}"},
        )
        if i % 100 == 99:
            self.commit()

    def commit(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None
        self.session.commit()


def run_evaluate_only(registry: RuleSetRegistry, cohort: list[Assessment], n: int, offset: int = 0) -> Timing:
    start = _clock()
    for i in range(offset, offset + n):
        registry.evaluate("supportive_care", cohort[i % len(cohort)])
    return _since(start)


class Recording:
    """``evaluate_and_record`` into an in-memory SQLite database (or the PostgreSQL database of
    ``--database-url``, in a schema of its own), committed every 100 evaluations."""

    def __init__(self, registry: RuleSetRegistry, url: str | None = None) -> None:
        self.registry = registry
        self.schema = f"bench_rules_{uuid.uuid4().hex[:8]}" if url else None
        self.db = create_engine(url or "sqlite://")
        tables = [
            Base.metadata.tables[RuleVersionRecord.__tablename__],
            Base.metadata.tables[RuleEvaluationRecord.__tablename__],
        ]
        if self.schema is not None:  # every statement of this engine in the schema (its search path)
            with self.db.begin() as connection:
                connection.execute(sql(f"CREATE SCHEMA {self.schema}"))
            self.db.dispose()
            self.db = create_engine(url, connect_args={"options": f"-c search_path={self.schema}"})
        Base.metadata.create_all(self.db, tables=tables)
        self.clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.session = Session(self.db)
        # The database server's process for this session, when it runs on this machine: its CPU is
        # the recording's too (None for SQLite, which runs in this process, or a remote server).
        self.backend: Path | None = None
        if self.schema is not None:
            pid = self.session.execute(sql("SELECT pg_backend_pid()")).scalar()
            self.session.commit()
            stat = Path(f"/proc/{pid}/stat")
            self.backend = stat if stat.exists() else None

    def backend_cpu(self) -> float:
        """CPU seconds the database server has spent on this session so far (0 when not measurable)."""
        if self.backend is None:
            return 0.0
        fields = self.backend.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(self, cohort: list[Assessment], n: int, offset: int = 0) -> Timing:
        session, registry, clock = self.session, self.registry, self.clock
        start = _clock()
        for i in range(offset, offset + n):
            # Recorded for an instance, as a pathway's task records it: numbered after that instance's
            # evaluations so far (50 instances, so each has many).
            evaluate_and_record(
                session,
                registry,
                "supportive_care",
                cohort[i % len(cohort)],
                clock=clock,
                instance_id=f"bench-instance-{i % 50}",
                task_id=f"bench-task-{i}",
            )
            if i % 100 == 99:
                session.commit()
        session.commit()
        return _since(start)

    def close(self) -> None:
        self.session.close()
        if self.schema is not None:
            with self.db.begin() as connection:
                connection.execute(sql(f"DROP SCHEMA {self.schema} CASCADE"))
        self.db.dispose()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block", type=int, default=100, help="evaluations per alternating block")
    parser.add_argument(
        "--database-url",
        default=None,
        help="record into this PostgreSQL database (a schema of its own, dropped after) instead of in-memory SQLite",
    )
    args = parser.parse_args()

    registry = RuleSetRegistry(ROOT / "rules", recheck_seconds=1.0)  # as the server runs it (engine/core.py)
    loaded = registry.current("supportive_care")
    cohort = assessments(sorted(loaded.catalogue.concerns), 200, args.seed)
    # The texts CarePath asserts: each assessment's canonical facts that some rule can match.
    encoded = []
    for assessment in cohort:
        facts = canonical_facts(assessment, loaded.catalogue)
        encoded.append(
            [
                (text, fact["id"])
                for fact, text in zip(facts.facts, facts.texts, strict=True)
                if loaded.compiled.could_match(fact)
            ]
        )
    n = args.evaluations
    block = max(1, min(args.block, n))

    direct_side = Direct(loaded.compiled, f"direct_{loaded.compiled.durable_name}", encoded)
    recording = Recording(registry, args.database_url)
    bare = Recording(registry, args.database_url)  # a database of its own for the bare driver's rows
    try:
        rows_side = Direct(
            loaded.compiled, f"direct_row_{loaded.compiled.durable_name}", encoded, BareRows(registry, cohort, bare)
        )
        recording.run(cohort, 300)  # warm-up: registration, caches; the baselines get the same
        direct_side.run(300)
        rows_side.run(300)
        sides: dict[str, Any] = {
            "direct": lambda k, at: direct_side.run(k, at),
            "only": lambda k, at: run_evaluate_only(registry, cohort, k, at),
            "full": lambda k, at: recording.run(cohort, k, at),
            "direct_row": lambda k, at: rows_side.run(k, at),
        }
        # Each round runs the sides in short alternating blocks (the order rotating from block to
        # block), so that a change in the machine's load between blocks meets them all alike.
        rounds: list[dict[str, Timing]] = []
        for _ in range(args.rounds):
            totals = {side: (0.0, 0.0) for side in sides}
            database_before = recording.backend_cpu()
            for number, at in enumerate(range(0, n, block)):
                size = min(block, n - at)
                order = list(sides)
                order = order[number % len(order) :] + order[: number % len(order)]
                for side in order:
                    cpu, wall = sides[side](size, at)
                    totals[side] = (totals[side][0] + cpu, totals[side][1] + wall)
            totals["database"] = (recording.backend_cpu() - database_before, 0.0)  # the server's, for "full"
            rounds.append(totals)
    finally:
        recording.close()  # a PostgreSQL schema of its own is dropped, also when a run fails
        bare.close()

    def figures(side: str) -> dict[str, float]:
        cpu = min(r[side][0] for r in rounds)
        wall = min(r[side][1] for r in rounds)
        return {
            "evaluations_per_cpu_s": round(n / cpu, 1),
            "cpu_ms_per_evaluation": round(1000 * cpu / n, 3),
            "evaluations_per_wall_s": round(n / wall, 1),
        }

    def ratios(side: str, index: int, baseline: str = "direct") -> list[float]:
        return [round(r[side][index] / r[baseline][index], 3) for r in rounds]

    # Recording into a PostgreSQL server on this machine: its CPU for the recording counts as well.
    server: dict[str, Any] = {}
    if recording.backend is not None:
        with_server = [(r["full"][0] + r["database"][0]) / r["direct"][0] for r in rounds]
        server = {
            "database_server_cpu_ms_per_evaluation": round(1000 * min(r["database"][0] for r in rounds) / n, 3),
            "ratio_with_recording_and_database_server": round(_median(with_server), 3),
        }
    print(
        json.dumps(
            {
                "benchmark": "rules evaluation, 15-concern assessments, bundled rules",
                "recorded_into": "sqlite in memory" if args.database_url is None else "postgresql",
                "ruleset": loaded.name,
                "version": loaded.version,
                "rules": len(loaded.compiled.rule_file.rules),
                "compiled_durable_rules": len(loaded.compiled.definition),
                "evaluations_per_round": n,
                "rounds": args.rounds,
                "block": block,
                "durable_direct": figures("direct"),
                "carepath_evaluate_only": figures("only"),
                "carepath_with_recording": figures("full"),
                "durable_direct_and_row": figures("direct_row"),
                "ratio_with_recording": round(_median(ratios("full", 0)), 3),
                "ratio_evaluate_only": round(_median(ratios("only", 0)), 3),
                # The bare driver's row on the baseline too: what CarePath adds to the same work.
                "ratio_with_recording_vs_direct_and_row": round(_median(ratios("full", 0, "direct_row")), 3),
                "row_cpu_ms_bare_driver": round(
                    1000 * _median([(r["direct_row"][0] - r["direct"][0]) for r in rounds]) / n, 3
                ),
                **server,
                "wall_ratio_with_recording": round(_median(ratios("full", 1)), 3),
                "wall_ratio_evaluate_only": round(_median(ratios("only", 1)), 3),
                "ratios_by_round": {
                    "with_recording": ratios("full", 0),
                    "with_recording_vs_direct_and_row": ratios("full", 0, "direct_row"),
                    "evaluate_only": ratios("only", 0),
                    "wall_with_recording": ratios("full", 1),
                },
                "target_ratio": 1.25,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "host": machine.describe(),
                "command": f".venv/bin/python bench/rules.py --evaluations {n} --rounds {args.rounds} "
                f"--seed {args.seed} --block {block}"
                + ("" if args.database_url is None else " --database-url <the database>"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
