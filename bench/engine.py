"""Benchmark: one cold step of CarePath against SpiffWorkflow alone, fresh and with a long history.

A *cold step* is what a request does when nothing is cached in the process: load the instance and
its pathway version from the database, restore it, complete one user task (and the automatic work
after it), persist state and events, commit. Per sample the engine's spec cache and workflow cache
are emptied and a new session is made (``cold_data``: the target's figure; the connection pool stays,
as in a running server). Two colder variants are printed beside it: a new database connection
(``cold_connection``) and a new database engine and service (``cold_engine``: the first request of a
new process, compiling its SQL). SQLite, in a temporary file.

*SpiffWorkflow alone* does "deserialize -> complete -> serialize" on the same diagram with the JSON
as SpiffWorkflow stores it (spec included), the way an application without CarePath would.

Measured on two pathways (both CLI options): the standard pathway (``--pathway``: fresh step, and
the stored state once it completes) and a review loop (``--loop-pathway``: fresh step and a step
after a long history). SpiffWorkflow alone cannot take a step once its tree is about 1,000 tasks
deep (its iterators stop at depth 1,000 and the next gateway is never run), so its history is the
deepest that still works (``--spiff-rounds``, 998 completed tasks by default).

Prints JSON, including the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.db.models import PathwayInstance  # noqa: E402
from engine.instances.timers import fire_due_timers  # noqa: E402
from engine.pathways.sources import PathwayLibrary, compile_source  # noqa: E402
from engine.spiff import workflows  # noqa: E402

NURSE = "clinician:bench"
KINDS = ("cold_data", "cold_connection", "cold_engine", "spiff", "spiff_sqlite")
# Form answers for the test pathways' user tasks; other pathways need --answers.
DEFAULT_ANSWERS: dict[str, dict[str, Any]] = {
    "hna": {"anxiety": 3, "fatigue": 4},
    "offer_support": {"support_accepted": True},
    "urgent_review": {"review_outcome": "managed"},
    "survey": {"qol_score": 70},
    "triage": {"triage_outcome": "seen"},
    "review": {"round": 1, "follow_up_ends": False},
}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2),
            "samples": len(ordered)}


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.settings = Settings(database_url=f"sqlite:///{workdir / 'bench.sqlite3'}",
                                 pathways_dir=Path(args.pathways_dir))
        self.clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
        self.answers = {**DEFAULT_ANSWERS, **json.loads(args.answers)}
        self.app = CarePath(self.settings, self.clock, upgrade=True)
        self.app.catalog.sync_library()
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    # --- CarePath --------------------------------------------------------------------------------

    def cold_engine(self, step: Callable[[CarePath], Any]) -> tuple[float, Any]:
        """``step`` on a new CarePath: new database engine (so SQLAlchemy compiles its statements
        again), empty spec cache. What the first request of a new process pays."""
        workflows.clear_spec_cache()
        app = CarePath(self.settings, self.clock)
        try:
            started = time.perf_counter()
            result = step(app)
            return time.perf_counter() - started, result
        finally:
            app.close()

    def cold_data(self, step: Callable[[CarePath], Any]) -> tuple[float, Any]:
        """``step`` with the spec cache and the workflow cache emptied and a new session: nothing of
        the pathway or the instance is in memory. The connection pool is kept, as in any running
        server (and as SpiffWorkflow-with-SQLite below keeps its connection)."""
        workflows.clear_spec_cache()
        self.app.instances.steps.cache.clear()
        started = time.perf_counter()
        result = step(self.app)
        return time.perf_counter() - started, result

    def cold_connection(self, step: Callable[[CarePath], Any]) -> tuple[float, Any]:
        """``cold_data`` with a new database connection as well (the pool emptied first)."""
        workflows.clear_spec_cache()
        self.app.instances.steps.cache.clear()
        self.app.db.dispose()
        started = time.perf_counter()
        result = step(self.app)
        return time.perf_counter() - started, result

    def complete_ready(self, app: CarePath, instance_id: str, task: dict[str, Any]) -> Any:
        data = dict(self.answers[task["element"]])
        return app.instances.complete_task(instance_id, task["id"], data, NURSE)

    def next_step(self, view: Any) -> Callable[[CarePath], Any]:
        def step(app: CarePath) -> Any:
            return self.complete_ready(app, view.id, view.ready_tasks[0])

        return step

    def fresh(self, pathway_id: str) -> dict[str, list[float]]:
        """Fresh instances: cold steps of both kinds, interleaved with SpiffWorkflow alone (same load)."""
        samples = self.args.samples
        views = self.app.instances.start_many(pathway_id, [f"FRESH-{n}" for n in range(3 * samples)], "system:bench")
        spiff_json = self.spiff_state(pathway_id, 0)
        found: dict[str, list[float]] = {kind: [] for kind in KINDS}
        connection, rows = self.spiff_sqlite_rows(spiff_json, samples)
        for number in range(samples):
            found["spiff_sqlite"].append(self.spiff_sqlite_step(connection, rows[number]))
            for offset, (kind, measure) in enumerate(self.measures()):
                found[kind].append(measure(self.next_step(views[3 * number + offset]))[0])
            found["spiff"].append(self.spiff_step(spiff_json))
        return found

    def measures(self) -> list[tuple[str, Callable[[Callable[[CarePath], Any]], tuple[float, Any]]]]:
        return [("cold_data", self.cold_data), ("cold_connection", self.cold_connection),
                ("cold_engine", self.cold_engine)]

    def history(self, pathway_id: str, rounds: int, spiff_rounds: int) -> dict[str, Any]:
        view = self.app.instances.start(pathway_id, "HISTORY-1", "system:bench")
        for _ in range(rounds):
            view = self.complete_ready(self.app, view.id, view.ready_tasks[0])
        completed = self.completed_tasks(view.id)
        spiff_json = self.spiff_state(pathway_id, spiff_rounds)
        found: dict[str, Any] = {kind: [] for kind in KINDS}
        connection, rows = self.spiff_sqlite_rows(spiff_json, self.args.samples)
        for number in range(self.args.samples):
            found["spiff_sqlite"].append(self.spiff_sqlite_step(connection, rows[number]))
            for kind, measure in self.measures():
                elapsed, view = measure(self.next_step(view))
                found[kind].append(elapsed)
            found["spiff"].append(self.spiff_step(spiff_json))
        restored = self.serializer.deserialize_json(spiff_json)
        found["completed_user_tasks"] = completed
        found["state_bytes"] = self.state_size(view.id)
        found["spiff_completed_tasks"] = sum(1 for t in restored.tasks.values() if t.state == TaskState.COMPLETED)
        found["spiff_json_bytes"] = len(spiff_json.encode())
        return found

    def completed_tasks(self, instance_id: str) -> int:
        from sqlalchemy import func, select

        from engine.db.models import InstanceEvent

        with self.app.sessions() as session:
            return int(session.scalar(select(func.count()).where(
                InstanceEvent.instance_id == instance_id, InstanceEvent.type == "task_completed")) or 0)

    def state_size(self, instance_id: str) -> int:
        with self.app.sessions() as session:
            row = session.get(PathwayInstance, instance_id)
            assert row is not None
            return len(row.state.encode())

    def completed_state_size(self, pathway_id: str) -> dict[str, Any]:
        """Run the standard pathway to its end (firing timers as they fall due) and measure its state."""
        view = self.app.instances.start(pathway_id, "COMPLETE-1", "system:bench")
        for _ in range(200):
            if view.status != "running":
                break
            if view.ready_tasks:
                view = self.complete_ready(self.app, view.id, view.ready_tasks[0])
            elif view.next_due_at:
                self.clock.set(datetime.fromisoformat(view.next_due_at) + timedelta(seconds=1))
                fire_due_timers(self.app.instances)
                view = self.app.instances.get(view.id)
            else:
                raise RuntimeError(f"{pathway_id} is stuck: no ready task and no timer")
        return {"status": view.status, "state_bytes": self.state_size(view.id)}

    # --- SpiffWorkflow alone ------------------------------------------------------------------------

    def spiff_state(self, pathway_id: str, rounds: int) -> str:
        """The workflow after ``rounds`` completed user tasks, as SpiffWorkflow stores it (with its spec)."""
        compiled = compile_source(PathwayLibrary(self.settings.pathways_dir).source(pathway_id))
        workflow = BpmnWorkflow(compiled.spec, compiled.subprocess_specs)
        workflow.do_engine_steps()
        for _ in range(rounds):
            self.spiff_complete(workflow)
        return str(self.serializer.serialize_json(workflow))

    def spiff_step(self, stored: str) -> float:
        started = time.perf_counter()
        restored = self.serializer.deserialize_json(stored)
        self.spiff_complete(restored)
        self.serializer.serialize_json(restored)
        return time.perf_counter() - started

    def spiff_sqlite_step(self, connection: sqlite3.Connection, row_id: int) -> float:
        """SpiffWorkflow alone with the same persistence: load its JSON row, step, write it back, commit."""
        started = time.perf_counter()
        (stored,) = connection.execute("SELECT state FROM workflows WHERE id = ?", (row_id,)).fetchone()
        restored = self.serializer.deserialize_json(stored)
        self.spiff_complete(restored)
        state = self.serializer.serialize_json(restored)
        connection.execute("UPDATE workflows SET state = ? WHERE id = ?", (state, row_id))
        connection.commit()
        return time.perf_counter() - started

    def spiff_sqlite_rows(self, stored: str, count: int) -> tuple[sqlite3.Connection, list[int]]:
        connection = sqlite3.connect(self.workdir / "spiff.sqlite3")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("CREATE TABLE IF NOT EXISTS workflows (id INTEGER PRIMARY KEY, state TEXT)")
        ids = [int(connection.execute("INSERT INTO workflows (state) VALUES (?)", (stored,)).lastrowid or 0)
               for _ in range(count)]
        connection.commit()
        return connection, ids

    def spiff_complete(self, workflow: Any) -> None:
        # By id, not through the iterators: those lose the ready task past depth 1,000.
        task = next(t for t in workflow.tasks.values() if t.state == TaskState.READY and t.task_spec.manual)
        task.set_data(**self.answers[task.task_spec.name])
        task.run()
        workflow.do_engine_steps()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pathways-dir", default=str(ROOT / "tests" / "pathways"))
    parser.add_argument("--pathway", default="test_assessment", help="the standard pathway")
    parser.add_argument("--loop-pathway", default="test_review_loop", help="a pathway with a user-task loop")
    parser.add_argument("--rounds", type=int, default=500, help="loop rounds before the history step")
    parser.add_argument("--spiff-rounds", type=int, default=498, help="the same for SpiffWorkflow alone")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--answers", default="{}", help="JSON: element id -> form data, for other pathways")
    args = parser.parse_args(argv)
    command = "python bench/engine.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(args, Path(workdir))
        standard = bench.fresh(args.pathway)
        loop = bench.fresh(args.loop_pathway)
        history = bench.history(args.loop_pathway, args.rounds, args.spiff_rounds)
        completed_state = bench.completed_state_size(args.pathway)
        bench.app.close()

    def p50(samples: list[float]) -> float:
        return statistics.median(samples)

    def ratio(first: list[float], second: list[float]) -> float:
        return round(p50(first) / p50(second), 2)

    def kinds(found: dict[str, Any]) -> dict[str, Any]:
        return {kind: percentiles(found[kind]) for kind in KINDS}

    result = {
        "command": command,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "definitions": {
            "cold_data": "spec and workflow caches emptied, new session; connection pool and SQLAlchemy's compiled "
                         "statements warm (a running server)",
            "cold_connection": "cold_data with a new database connection too",
            "cold_engine": "new CarePath and DB engine per sample: also compiles its SQL again (first request)",
            "spiff": "SpiffWorkflow alone: deserialize full JSON (with spec) -> complete -> serialize",
            "spiff_sqlite": "the same, reading and writing the JSON in a SQLite row (WAL) and committing",
        },
        "fresh_step": {args.pathway: kinds(standard), args.loop_pathway: kinds(loop)},
        "history_step": {args.loop_pathway: {
            **kinds(history), "completed_user_tasks": history["completed_user_tasks"],
            "completed_tasks": 2 * history["completed_user_tasks"] + 2, "state_bytes": history["state_bytes"],
            "spiff_completed_tasks": history["spiff_completed_tasks"], "spiff_json_bytes": history["spiff_json_bytes"],
        }},
        "stored_state_after_completion": {args.pathway: completed_state},
        "targets": {
            "fresh_cold_data_vs_spiff": {args.pathway: ratio(standard["cold_data"], standard["spiff"]),
                                         args.loop_pathway: ratio(loop["cold_data"], loop["spiff"]), "max": 1.2},
            "fresh_cold_connection_vs_spiff": {
                args.pathway: ratio(standard["cold_connection"], standard["spiff"]),
                args.loop_pathway: ratio(loop["cold_connection"], loop["spiff"])},
            "fresh_cold_engine_vs_spiff": {args.pathway: ratio(standard["cold_engine"], standard["spiff"]),
                                           args.loop_pathway: ratio(loop["cold_engine"], loop["spiff"])},
            "fresh_cold_data_vs_spiff_sqlite": {
                args.pathway: ratio(standard["cold_data"], standard["spiff_sqlite"]),
                args.loop_pathway: ratio(loop["cold_data"], loop["spiff_sqlite"])},
            "history_vs_fresh": {"cold_data": ratio(history["cold_data"], loop["cold_data"]),
                                 "cold_engine": ratio(history["cold_engine"], loop["cold_engine"]), "max": 2.0},
            "spiff_history_vs_fresh": ratio(history["spiff"], loop["spiff"]),
            "completed_state_kb": {"value": round(completed_state["state_bytes"] / 1024, 1), "max": 20},
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
