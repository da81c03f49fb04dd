"""Benchmark: every step of a breast cancer journey, cold and warm, against SpiffWorkflow alone.

What is measured (issue 19, point 1), on the bundled pathways (``pathways/``, ``rules/``) in SQLite:

* **Journeys.** A recorder process runs the full breast journey of the bundled-pathway tests
  (diagnosis to the end of the pathway, 18 months: every parallel part, messages and timers) and a
  *history* journey: a breast pathway waiting two years at the MDT while the patient reports a
  warning sign every month (triaged each time) and the cancer care reviews and the survey fall due.
  Before each completed task it keeps a snapshot of the database, the task, its data and the clock.
* **Cold** (``cold``): each snapshotted step runs in a process forked from this one, which has
  imported the modules a started server has imported and done nothing else: no spec restored, no
  form validator built, no SQL compiled, no rule set registered, no connection open (the first
  request of a fresh process; building the engine object is not timed). Several samples per
  step, each on its own copy of the database.
* **Warm** (``warm``): the recorder's own steps, in a process that has run the journey so far (spec,
  validators, statements and the instance's restored workflow in memory).
* **SpiffWorkflow alone**, interleaved with each CarePath sample, on the same state: the workflow
  as SpiffWorkflow's stock serializer stores it (spec included) is deserialised, the same task is
  completed with the same data, engine steps run, and it is serialised again; cold samples in
  forked processes too, warm ones with the workflow already in memory. Its script engine is
  SpiffWorkflow's own (plain Python) with the diagrams' date helpers; service tasks return what
  CarePath's operators returned in that step: the rules, care plan and status work is CarePath's
  alone (``with_operators`` counts those steps).
* CPU time (``time.process_time``) and wall time for every sample. Ratios are of sums over the
  steps, in CPU time (what a shared machine disturbs least), and the median of per-step ratios.
* **Stored state size** after every step, message and wait of both journeys, and while an instance
  waits with nothing to do (a day at a time for 90 days): the bytes the column holds (compressed,
  ``engine.db.stored_state``), and the JSON text they inflate to.

Prints JSON, with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the bundled-pathway journeys the tests run

# What a started server has imported before its first request (create_app deploys the library,
# which imports SpiffWorkflow's parser): a cold sample pays for no module import.
import machine  # noqa: E402  (bench/machine.py, beside this script)
import SpiffWorkflow.bpmn.parser  # noqa: E402, F401
from pathways_bundled import journey as journey_module  # noqa: E402
from pathways_bundled.journey import Journey, contact  # noqa: E402
from pathways_bundled.journeys import SITES, Options, full_journey  # noqa: E402
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment  # noqa: E402
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402
from sqlalchemy import text  # noqa: E402

import api  # noqa: E402, F401
from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.calendar import add_months  # noqa: E402
from engine.db.stored_state import decode_state  # noqa: E402
from engine.instances.store import load_instance, load_spec  # noqa: E402
from engine.spiff import patches, workflows  # noqa: E402

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
DATABASE = "bench.sqlite3"
STOCK = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))  # SpiffWorkflow as shipped
TARGET_COLD_CPU_RATIO = 1.2
TARGET_STATE_BYTES = 10 * 1024


def settings(folder: Path) -> Settings:
    # Four eyes off: one operator measures the engine (rule sets are evaluated from the folder).
    return Settings(
        database_url=f"sqlite:///{folder / DATABASE}",
        pathways_dir=ROOT / "pathways",
        rules_dir=ROOT / "rules",
        four_eyes=False,
    )


def timed(action: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = action()
    return {"cpu_ms": (time.process_time() - cpu) * 1000, "wall_ms": (time.perf_counter() - wall) * 1000}, result


# --- SpiffWorkflow alone ---------------------------------------------------------------------------------


def baseline_engine(at: str, results: dict[str, list[Any]]) -> PythonScriptEngine:
    """SpiffWorkflow's own script engine, with the date helpers the bundled diagrams call and service
    tasks answering what CarePath's operators answered in the recorded step."""
    today = datetime.fromisoformat(at).date().isoformat()

    def days_between(start: str, end: str) -> int:
        return (date.fromisoformat(end) - date.fromisoformat(start)).days

    helpers = {
        "add_months": lambda day, months: add_months(date.fromisoformat(day), months).isoformat(),
        "add_days": lambda day, days: (date.fromisoformat(day) + timedelta(days=days)).isoformat(),
        "days_between": days_between,
        "today": lambda: today,
    }
    # Every helper the bundled diagrams call must be here (tests/test_bench_engine.py holds it to them).
    pending = {name: list(values) for name, values in results.items()}

    class Baseline(PythonScriptEngine):
        def call_service(self, task: Any, **kwargs: Any) -> str:
            return json.dumps(pending[task.task_spec.name].pop(0))

    return Baseline(environment=TaskDataEnvironment(helpers))


def spiff_complete(workflow: Any, task_id: str, data: dict[str, Any]) -> None:
    # SpiffWorkflow's own engine-step round, not the one CarePath installs (engine.spiff.patches, no-idle-walks).
    workflow._do_engine_steps = types.MethodType(patches.STOCK_ENGINE_ROUND, workflow)
    task = workflow.get_task_from_id(UUID(task_id))
    task.set_data(**data)
    task.run()
    workflow.do_engine_steps()


# --- the recorder (runs in a forked process, so this one stays cold) -----------------------------------


@dataclass
class Recorded:
    number: int
    journey: str
    element: str
    instance_id: str
    task_id: str
    data: dict[str, Any]
    actor: str
    expected_version: int | None
    at: str  # the clock when the step ran
    snapshot: str | None  # the database just before the step (None: not measured cold)
    spiff_json: str  # the workflow before the step, as SpiffWorkflow's stock serializer writes it
    operator_results: dict[str, list[Any]]  # task spec name -> what CarePath's operators returned
    warm: dict[str, float] = field(default_factory=dict)


class Recorder:
    def __init__(self, workdir: Path, clock: ManualClock, snapshot_journeys: set[str]) -> None:
        self.workdir, self.clock, self.snapshot_journeys = workdir, clock, snapshot_journeys
        self.app = CarePath(settings(workdir), clock, upgrade=True)
        self.app.catalog.sync_library()
        self.steps: list[Recorded] = []
        self.sizes: dict[str, list[dict[str, Any]]] = {}
        self.current, self.instance_id = "setup", ""
        self.results: dict[str, list[Any]] = {}
        runner = self.app.instances.steps
        for name, operator in list(runner.operators.items()):
            runner.operators[name] = self._recording(operator)
        self._complete = self.app.instances.complete_task
        self.app.instances.complete_task = self.complete_task  # type: ignore[method-assign]
        self._send = self.app.instances.send_message
        self.app.instances.send_message = self.send_message  # type: ignore[method-assign]
        self._fire = journey_module.fire_due_timers
        journey_module.fire_due_timers = self.fire_due_timers

    def _recording(self, operator: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(context: Any, task: Any, params: dict[str, Any]) -> Any:
            result = operator(context, task, params)
            self.results.setdefault(task.task_spec.name, []).append(json.loads(json.dumps(result)))
            return result

        return recorded

    def note_size(self, after: str) -> None:
        with self.app.sessions() as session:
            stored = bytes(
                session.execute(
                    text("SELECT state FROM pathway_instances WHERE id = :id"), {"id": self.instance_id}
                ).scalar_one()
            )
        self.sizes.setdefault(self.current, []).append(
            {
                "after": after,
                "day": self.clock.now().date().isoformat(),
                "state_bytes": len(stored),
                "text_bytes": len(decode_state(stored).encode()),
            }
        )  # as stored (compressed), and the JSON text

    def complete_task(
        self, instance_id: str, task_id: str, data: dict[str, Any], actor: str, expected_version: int | None = None
    ) -> Any:
        """The journeys' complete_task: snapshot, then CarePath (warm), then SpiffWorkflow alone (warm)."""
        self.instance_id = instance_id
        number = len(self.steps)
        snapshot = None
        if self.current in self.snapshot_journeys:
            snapshot = str(self.workdir / f"step-{number}.sqlite3")
            with sqlite3.connect(self.workdir / DATABASE) as source, sqlite3.connect(snapshot) as target:
                source.backup(target)
        spiff_json = self.spiff_json(instance_id)
        spiff_workflow = STOCK.deserialize_json(spiff_json)
        element = str(spiff_workflow.get_task_from_id(UUID(task_id)).task_spec.bpmn_id)
        self.results = {}
        carepath, view = timed(lambda: self._complete(instance_id, task_id, data, actor, expected_version))
        # The operators' results are known once CarePath ran; SpiffWorkflow alone then does the same step.
        at = self.clock.now().isoformat()
        spiff_workflow.script_engine = baseline_engine(at, self.results)
        spiff, _ = timed(lambda: (spiff_complete(spiff_workflow, task_id, data), STOCK.serialize_json(spiff_workflow)))
        self.steps.append(
            Recorded(
                number,
                self.current,
                element,
                instance_id,
                task_id,
                json.loads(json.dumps(data)),
                actor,
                expected_version,
                at,
                snapshot,
                spiff_json,
                self.results,
                warm={
                    **{f"carepath_{k}": v for k, v in carepath.items()},
                    **{f"spiff_{k}": v for k, v in spiff.items()},
                },
            )
        )
        self.note_size(element)
        return view

    def send_message(self, name: str, actor: str, **kwargs: Any) -> Any:
        delivered = self._send(name, actor, **kwargs)
        self.note_size(f"message {name}")
        return delivered

    def fire_due_timers(self, service: Any) -> int:
        fired = int(self._fire(service))
        if self.instance_id:
            self.note_size(f"wait ({fired} instance(s) with due timers)")
        return fired

    def spiff_json(self, instance_id: str) -> str:
        """The instance's workflow as SpiffWorkflow's stock serializer stores it (spec included); the
        step's own cached workflow is left where it is."""
        with self.app.sessions() as session:
            record = load_instance(session, instance_id)
            specs = workflows.specs_for(record.pathway_version, lambda: load_spec(session, record.pathway_version_id))
            workflow = workflows.restore(specs, record.state, PythonScriptEngine())
        return str(STOCK.serialize_json(workflow))

    # --- the journeys ---

    def full(self) -> None:
        self.current = "full_breast_journey"
        journey = full_journey(self.app, self.clock, SITES["breast"], "SYN-BENCH-FULL", Options())
        assert journey.status == "completed"

    def history(self, months: int) -> None:
        """A breast pathway waiting at the MDT for ``months`` while warning signs and reviews come and go."""
        self.current = "history_first_round"
        j = Journey(
            self.app,
            self.clock,
            "breast_cancer",
            "SYN-BENCH-HISTORY",
            {"diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"},
        )
        j.do("assign_contact", contact())
        j.do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
        j.do("offer_hna", {"hna_accepted": False}).do("record_declined", {"reason": "Not now"})
        for month in range(months + 1):
            if month == months:
                self.current = "history_after_two_years"
            elif month:
                self.current = "history_between"
            sign = "diarrhoea_or_vomiting_on_treatment"
            j.message("warning_sign_reported", {"warning_sign": sign, "description": "Unwell since this morning"})
            j.do(
                "triage",
                {
                    "warning_sign": sign,
                    "on_systemic_treatment": False,
                    "triage_rating": "green",
                    "advice_given": "As the triage tool advises",
                },
            )
            j.do("self_care", {"advice_given": "Fluids, loperamide, call again if worse"})
            j.do("inform_team", {"informed_on": j.today()})
            for element in [e for e in j.ready if e in REVIEW_ANSWERS]:
                j.do(element, REVIEW_ANSWERS[element](j), actor=journey_module.NURSE)
            if month < months:
                j.wait(30)
        assert j.status == "running", j.ready

    def waiting(self, days: int) -> None:
        """A breast pathway with nothing to do for ``days``, a day at a time."""
        self.current = "waiting_only"
        j = Journey(
            self.app,
            self.clock,
            "breast_cancer",
            "SYN-BENCH-WAIT",
            {"diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"},
        )
        j.do("assign_contact", contact())
        for _ in range(days):
            j.wait(1)


def _review(j: Journey) -> dict[str, Any]:
    return {"reviewed_on": j.today(), "reviewed_by": "gp", "topics": ["support_available"], "new_needs": False}


REVIEW_ANSWERS: dict[str, Callable[[Journey], dict[str, Any]]] = {
    "first_review": _review,
    "second_review": _review,
    "remind_first": lambda j: {"reminded_on": j.today()},
    "remind_second": lambda j: {"reminded_on": j.today()},
    "survey_invitation": lambda j: {"invitation": "sent", "recorded_on": j.today()},
    "record_result": lambda j: {"done_on": j.today(), "result": "as_expected"},
    "follow_up_missed": lambda j: {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": j.today()},
    "record_rebooked_result": lambda j: {"done_on": j.today(), "result": "as_expected"},
}


def record(workdir: Path, months: int, wait_days: int) -> dict[str, Any]:
    """Run the journeys, keeping what the cold samples need; returns the manifest."""
    clock = ManualClock(START)
    recorder = Recorder(workdir, clock, {"full_breast_journey", "history_first_round", "history_after_two_years"})
    recorder.full()
    clock.set(START)
    recorder.history(months)
    clock.set(START)
    recorder.waiting(wait_days)
    recorder.app.close()
    return {"steps": recorder.steps, "sizes": recorder.sizes}


# --- cold samples: each in a process forked from this pristine one -----------------------------------------


def in_fork(work: Callable[[], dict[str, float]]) -> dict[str, float]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report, leave without running the parent's clean-up
        os.close(read)
        try:
            payload = pickle.dumps(work())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = pickle.dumps({"error": f"{type(exc).__name__}: {exc}"})
        with os.fdopen(write, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as source:
        found: dict[str, float] = pickle.loads(source.read())
    os.waitpid(pid, 0)
    if "error" in found:
        raise RuntimeError(f"a cold sample failed: {found['error']}")
    return found


def cold_carepath(step: Recorded, folder: Path) -> dict[str, float]:
    folder.mkdir()
    assert step.snapshot is not None
    shutil.copyfile(step.snapshot, folder / DATABASE)
    app = CarePath(settings(folder), ManualClock(datetime.fromisoformat(step.at)))
    figures, _ = timed(
        lambda: app.instances.complete_task(
            step.instance_id, step.task_id, step.data, step.actor, expected_version=step.expected_version
        )
    )
    return figures


def cold_spiff(step: Recorded) -> dict[str, float]:
    engine = baseline_engine(step.at, step.operator_results)

    def work() -> None:
        workflow = STOCK.deserialize_json(step.spiff_json)
        workflow.script_engine = engine
        spiff_complete(workflow, step.task_id, step.data)
        STOCK.serialize_json(workflow)

    return timed(work)[0]


def measure_cold(steps: list[Recorded], samples: int, workdir: Path) -> None:
    for step in steps:
        runs: dict[str, list[dict[str, float]]] = {"carepath": [], "spiff": []}
        for sample in range(samples):  # interleaved, the order alternating, so drifting load hits both alike
            folder = workdir / f"cold-{step.number}-{sample}"
            pair = [
                ("carepath", functools.partial(cold_carepath, step, folder)),
                ("spiff", functools.partial(cold_spiff, step)),
            ]
            for kind, work in pair if sample % 2 == 0 else pair[::-1]:
                runs[kind].append(in_fork(work))
        step.warm.update(
            {
                f"cold_{kind}_{unit}": statistics.median(run[unit] for run in found)
                for kind, found in runs.items()
                for unit in ("cpu_ms", "wall_ms")
            }
        )


# --- the report -------------------------------------------------------------------------------------------


def summary(steps: list[Recorded], prefix: str) -> dict[str, Any]:
    """Sums and ratios for ``prefix`` (``cold`` or ``warm``) over steps."""
    if not steps:
        return {}

    def key(kind: str, unit: str) -> str:
        return f"cold_{kind}_{unit}" if prefix == "cold" else f"{kind}_{unit}"

    found: dict[str, Any] = {"steps": len(steps)}
    for unit in ("cpu_ms", "wall_ms"):
        carepath = [s.warm[key("carepath", unit)] for s in steps]
        spiff = [s.warm[key("spiff", unit)] for s in steps]
        found[unit] = {
            "carepath_total": round(sum(carepath), 1),
            "spiff_total": round(sum(spiff), 1),
            "carepath_p50": round(statistics.median(carepath), 2),
            "spiff_p50": round(statistics.median(spiff), 2),
            "ratio_of_totals": round(sum(carepath) / sum(spiff), 2),
            "median_step_ratio": round(statistics.median(c / s for c, s in zip(carepath, spiff, strict=True)), 2),
        }
    return found


def per_step(steps: list[Recorded]) -> list[dict[str, Any]]:
    return [
        {
            "n": s.number,
            "element": s.element,
            "with_operators": bool(s.operator_results),
            **{k: round(v, 2) for k, v in s.warm.items()},
        }
        for s in steps
    ]


def sizes_report(sizes: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    found = {}
    for journey, points in sizes.items():
        values = [p["state_bytes"] for p in points]
        largest = max(points, key=lambda p: p["state_bytes"])
        waits = [p["state_bytes"] for p in points if p["after"].startswith("wait")]
        # Where the size changed while the instance only waited: timers that fired, or growth.
        changes = [
            {"day": p["day"], "after": p["after"], "from_bytes": previous["state_bytes"], "to_bytes": p["state_bytes"]}
            for previous, p in zip(points, points[1:], strict=False)
            if p["after"].startswith("wait") and p["state_bytes"] != previous["state_bytes"]
        ]
        found[journey] = {
            "points": len(points),
            "max_bytes": max(values),
            "min_bytes": min(values),
            "changes_while_waiting": changes if journey == "waiting_only" else len(changes),
            "max_text_bytes": max(p["text_bytes"] for p in points),
            "last_bytes": values[-1],
            "largest_after": largest["after"],
            "waits": {"first_bytes": waits[0], "last_bytes": waits[-1], "max_bytes": max(waits)} if waits else None,
            "over_target": sum(v > TARGET_STATE_BYTES for v in values),
        }
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="cold samples per step (each in a new process)")
    parser.add_argument("--months", type=int, default=24, help="months of warning signs in the history journey")
    parser.add_argument("--wait-days", type=int, default=90, help="days the waiting-only instance waits")
    parser.add_argument("--per-step", action="store_true", help="print every step's figures too")
    args = parser.parse_args(argv)
    command = ".venv/bin/python bench/engine.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        manifest_file = workdir / "manifest.pickle"

        def recording() -> dict[str, float]:
            manifest_file.write_bytes(pickle.dumps(record(workdir, args.months, args.wait_days)))
            return {}

        in_fork(recording)
        manifest = pickle.loads(manifest_file.read_bytes())
        steps: list[Recorded] = manifest["steps"]
        measure_cold([s for s in steps if s.snapshot is not None], args.samples, workdir)

    full = [s for s in steps if s.journey == "full_breast_journey"]
    round_elements = ("triage", "self_care", "inform_team")  # one warning sign, triaged green
    first = [s for s in steps if s.journey == "history_first_round" and s.element in round_elements]
    later = [s for s in steps if s.journey == "history_after_two_years" and s.element in round_elements]
    cold_full = summary(full, "cold")
    result = {
        "command": command,
        "machine": machine.describe(),
        "cold_samples_per_step": args.samples,
        "full_breast_journey": {
            "cold": cold_full,
            "warm": summary(full, "warm"),
            "steps_with_operators": sum(bool(s.operator_results) for s in full),
            "cold_without_operator_steps": summary([s for s in full if not s.operator_results], "cold"),
        },
        "history": {
            "months_of_warning_signs": args.months,
            "first_round": {
                "cold": summary(first, "cold"),
                "warm": summary(first, "warm"),
                "elements": [s.element for s in first],
            },
            "after_two_years": {
                "cold": summary(later, "cold"),
                "warm": summary(later, "warm"),
                "elements": [s.element for s in later],
            },
        },
        "stored_state": sizes_report(manifest["sizes"]),
        "targets": {
            "cold_step_cpu_ratio_vs_spiffworkflow_alone": {
                "breast_ratio_of_totals": cold_full["cpu_ms"]["ratio_of_totals"],
                "breast_median_step_ratio": cold_full["cpu_ms"]["median_step_ratio"],
                "max": TARGET_COLD_CPU_RATIO,
            },
            "stored_state_bytes": {
                "largest": max(p["state_bytes"] for points in manifest["sizes"].values() for p in points),
                "max": TARGET_STATE_BYTES,
            },
        },
    }
    if args.per_step:
        result["per_step"] = per_step(steps)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
