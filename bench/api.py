"""Benchmark of the HTTP API on breast cancer journeys; prints JSON with the figures and the command.

Every request goes through the Flask app (its test client: routing, authentication, JSON parsing and
checking, the engine, the database; no socket), on the bundled pathways, with a manual clock so a
journey's 18 months pass at once; due timers are fired by the worker's own function between
requests, as the timer worker does. On SQLite (a file) and on PostgreSQL (``--postgres``; the
server's ``fsync`` and ``synchronous_commit`` are read and reported: durable commits need both on).

1. ``journeys``: full breast journeys one after another (the journey the bundled-pathway tests run:
   diagnosis to the end of the pathway, every parallel part, messages, timers). p50/p95/p99 per
   request type (``start``, ``complete <element>``, ``message <name>``) and per journey (the sum
   of its requests' times).
2. ``cache_misses``: the same with the process's workflow cache switched off, so every step restores
   its instance from the database.
3. ``gc_freeze``: journeys alternating with and without ``gc.freeze()`` of everything alive first
   (what the gunicorn master does after its warm-up): the slowest requests.
4. ``version_cache``: starts with the latest-version cache on and off, alternating.
5. ``conflicts``: C client threads on the same instances at once: each reads the instance, completes
   one of its ready tasks with ``If-Match``, and on 409/412 reads again and retries. Outcomes per
   status, latencies, and a check of the event trails: every confirmed completion recorded exactly
   once, nothing recorded that was not confirmed, every trail verifies.

    .venv/bin/python bench/api.py [--postgres postgresql+psycopg://postgres@127.0.0.1:55491/carepath]
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the bundled-pathway journeys the tests run

import machine  # noqa: E402  (bench/machine.py, beside this script)
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from pathways_bundled import journey as journey_module  # noqa: E402
from pathways_bundled.journey import contact  # noqa: E402
from pathways_bundled.journeys import SITES, Options, full_journey  # noqa: E402
from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from api import create_app  # noqa: E402
from engine import CarePath, ManualClock  # noqa: E402
from engine.access import create_token  # noqa: E402
from engine.audit import verify_trail  # noqa: E402
from engine.db.models import InstanceEvent  # noqa: E402
from engine.db.session import unit_of_work  # noqa: E402
from engine.instances.timers import fire_due_timers  # noqa: E402

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
START_DATA = {"diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index], 2)


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "max_ms": round(max(values), 2),
    }


class View:
    """An instance as the API returned it, with what the journeys read."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.id, self.version, self.status = body["id"], body["version"], body["status"]
        self.ready_tasks, self.incident = body["ready_tasks"], body.get("incident")
        self.next_due_at = body.get("next_due_at")  # ISO text, as InstanceView holds it


class HttpInstances:
    """The journeys' ``app.instances``, over HTTP; every request's time is kept under its type."""

    def __init__(self, client: FlaskClient, tokens: dict[str, str], engine: CarePath) -> None:
        self.client, self.tokens, self.engine = client, tokens, engine
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.elements: dict[str, str] = {}  # task id -> element, from the views seen

    def call(
        self, kind: str, method: str, path: str, role: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        began = time.perf_counter()
        response = self.client.open(
            path, method=method, json=body, headers={"Authorization": f"Bearer {self.tokens[role]}", **(headers or {})}
        )
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code >= 300:
            raise RuntimeError(f"{kind}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
        self.timings[kind].append(elapsed)
        return response.get_json()

    def view(self, body: dict[str, Any]) -> View:
        self.elements.update((task["id"], task["element"]) for task in body["ready_tasks"])
        return View(body)

    def start(self, pathway_id: str, patient_ref: str, actor: str, data: dict[str, Any] | None = None) -> View:
        return self.view(
            self.call(
                "start",
                "POST",
                "/v1/instances",
                "system",
                {"pathway_id": pathway_id, "patient_ref": patient_ref, "data": data or {}},
            )
        )

    def complete_task(
        self, instance_id: str, task_id: str, data: dict[str, Any], actor: str, expected_version: int | None = None
    ) -> View:
        headers = {"If-Match": f'"{expected_version}"'} if expected_version is not None else {}
        return self.view(
            self.call(
                f"complete {self.elements.get(task_id, '?')}",
                "POST",
                f"/v1/instances/{instance_id}/tasks/{task_id}/complete",
                "clinician",
                {"data": data},
                headers,
            )
        )

    def send_message(
        self, name: str, actor: str, *, patient_ref: str | None = None, payload: dict[str, Any] | None = None
    ) -> list[View]:
        body = self.call(
            f"message {name}",
            "POST",
            "/v1/messages",
            "system",
            {"name": name, "patient_ref": patient_ref, "payload": payload or {}},
        )
        return [self.view(item) for item in body["delivered"]]

    def get(self, instance_id: str) -> View:
        return self.view(self.call("get instance", "GET", f"/v1/instances/{instance_id}", "clinician"))


class HttpApp:
    """What a Journey reads of its app: instances over HTTP; care plan rows read directly (not timed)."""

    def __init__(self, instances: HttpInstances) -> None:
        self.instances = instances
        self.sessions = instances.engine.sessions


class Bench:
    def __init__(self, url: str) -> None:
        self.clock = ManualClock(START)
        self.app: Flask = create_app(
            {"DATABASE_URL": url, "PATHWAYS_DIR": ROOT / "pathways", "RULES_DIR": ROOT / "rules", "CLOCK": self.clock}
        )
        self.engine: CarePath = self.app.extensions["carepath"]
        with unit_of_work(self.engine.sessions) as session:
            self.tokens = {
                role: create_token(session, role, "bench", self.clock)[1] for role in ("system", "clinician")
            }
        self.url = url
        engine = self.engine

        def worker(_: Any) -> int:  # the timer worker, between requests (not HTTP)
            return fire_due_timers(engine.instances)

        journey_module.fire_due_timers = worker

    def instances(self) -> HttpInstances:
        return HttpInstances(self.app.test_client(), self.tokens, self.engine)

    def journeys(self, count: int, label: str) -> tuple[HttpInstances, list[float]]:
        http = self.instances()
        totals = []
        for number in range(count):
            self.clock.set(START)
            before = sum(sum(values) for values in http.timings.values())
            journey = full_journey(
                HttpApp(http),
                self.clock,
                SITES["breast"],
                f"SYN-{label}-{number}",  # type: ignore[arg-type]
                Options(),
            )
            assert journey.status == "completed"
            totals.append(sum(sum(values) for values in http.timings.values()) - before)
        return http, totals

    def report(self, http: HttpInstances, totals: list[float]) -> dict[str, Any]:
        steps = [t for kind, values in http.timings.items() if kind.startswith("complete") for t in values]
        return {
            "journeys": len(totals),
            "per_journey_total": summary(totals),
            "requests_per_journey": round(sum(len(v) for v in http.timings.values()) / max(1, len(totals)), 1),
            "all_task_completions": summary(steps),
            "per_request_type": {kind: summary(values) for kind, values in sorted(http.timings.items())},
        }

    @contextmanager
    def workflow_cache_off(self) -> Iterator[None]:
        cache = self.engine.instances.steps.cache
        size, cache.size = cache.size, 0
        cache.clear()
        try:
            yield
        finally:
            cache.size = size

    def gc_freeze(self, rounds: int) -> dict[str, Any]:
        found: dict[str, list[float]] = {"frozen": [], "not_frozen": []}
        for number in range(2 * rounds):
            frozen = number % 2 == 0
            gc.collect()
            if frozen:
                gc.freeze()
            try:
                http, _ = self.journeys(1, f"GC{number}")
            finally:
                gc.unfreeze()
            found["frozen" if frozen else "not_frozen"] += [t for values in http.timings.values() for t in values]
        return {kind: summary(values) for kind, values in found.items()}

    def version_cache(self, starts: int) -> dict[str, Any]:
        http = self.instances()
        versions = self.engine.instances.steps.versions
        seconds = versions.seconds
        found: dict[str, list[float]] = {"cached": [], "read_each_time": []}
        try:
            for number in range(2 * starts):
                cached = number % 2 == 0
                versions.seconds = seconds if cached else 0
                versions.clear() if not cached else None
                http.start("breast_cancer", f"SYN-START-{number}", "system", START_DATA)
                found["cached" if cached else "read_each_time"].append(http.timings["start"][-1])
        finally:
            versions.seconds = seconds
        return {kind: summary(values) for kind, values in found.items()}

    def conflicts(self, instances: int, clients: int, rounds: int) -> dict[str, Any]:
        """``clients`` threads at once on each of ``instances`` instances, ``rounds`` completions each."""
        setup = self.instances()
        ids = []
        for number in range(instances):
            view = setup.start("breast_cancer", f"SYN-RACE-{number}", "system", START_DATA)
            view = setup.complete_task(view.id, view.ready_tasks[0]["id"], contact(), "c", view.version)
            ids.append(view.id)
        statuses: Counter[str] = Counter()
        timings: dict[str, list[float]] = defaultdict(list)
        confirmed: list[tuple[str, str]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def client(index: int) -> None:
            http = self.instances()
            for instance_id in ids:
                barrier.wait()  # every client on this instance at the same moment
                for _ in range(rounds):
                    for _attempt in range(10):
                        body = http.client.get(
                            f"/v1/instances/{instance_id}",
                            headers={"Authorization": f"Bearer {self.tokens['clinician']}"},
                        )
                        view = body.get_json()
                        ready = [t for t in view["ready_tasks"] if t["element"] in ANSWERS]
                        if not ready:
                            break
                        task = ready[index % len(ready)]
                        began = time.perf_counter()
                        response = http.client.post(
                            f"/v1/instances/{instance_id}/tasks/{task['id']}/complete",
                            json={"data": ANSWERS[task["element"]]},
                            headers={
                                "Authorization": f"Bearer {self.tokens['clinician']}",
                                "If-Match": f'"{view["version"]}"',
                            },
                        )
                        elapsed = (time.perf_counter() - began) * 1000
                        with lock:
                            statuses[str(response.status_code)] += 1
                            timings[str(response.status_code)].append(elapsed)
                            if response.status_code == 200:
                                confirmed.append((instance_id, task["id"]))
                        if response.status_code == 200:
                            break

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "instances": instances,
            "clients_per_instance": clients,
            "completions_per_client": rounds,
            "seconds": round(time.perf_counter() - began, 2),
            "statuses": dict(statuses),
            "latency_by_status": {status: summary(values) for status, values in timings.items()},
            "trail": check_trail(self.url, ids, confirmed),
        }

    def close(self) -> None:
        self.engine.close()


# Answers for the tasks ready early in a breast pathway (the conflicts' clients complete these).
ANSWERS: dict[str, dict[str, Any]] = {
    "offer_support": {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False},
    "first_review": {
        "reviewed_on": "2026-01-15",
        "reviewed_by": "gp",
        "topics": ["support_available"],
        "new_needs": False,
    },
    "offer_hna": {"hna_accepted": False},
    "record_declined": {"reason": "Not now"},
}


def check_trail(url: str, instances: list[str], confirmed: list[tuple[str, str]]) -> dict[str, Any]:
    """Every confirmed completion appears exactly once in the event trail, and the trails verify."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(InstanceEvent.instance_id, InstanceEvent.task_id).where(
                    InstanceEvent.type == "task_completed", InstanceEvent.instance_id.in_(instances)
                )
            ).all()
        with Session(engine) as session:
            problems = verify_trail(session, instances)
    finally:
        engine.dispose()
    recorded = Counter((r.instance_id, r.task_id) for r in rows)
    confirmed_set = set(confirmed)
    return {
        "confirmed_completions": len(confirmed),
        "lost": sum(1 for pair in confirmed if recorded[pair] == 0),
        "recorded_twice": sum(1 for count in recorded.values() if count > 1),
        # the set-up's own completion of assign_contact is recorded, not confirmed by a client
        "recorded_but_not_confirmed": sum(1 for pair in recorded if pair not in confirmed_set) - len(instances),
        "trail_problems": len(problems),
    }


def postgres_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def durability(base: str) -> dict[str, Any]:
    admin = create_engine(base)
    try:
        with admin.connect() as connection:
            found = {
                name: connection.execute(text(f"SHOW {name}")).scalar()
                for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version")
            }
    finally:
        admin.dispose()
    found["durable_commits"] = found["fsync"] == "on" and found["synchronous_commit"] != "off"
    return found


def drop_schema(base: str, schema: str) -> None:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(url)
    try:
        bench.journeys(1, "WARMUP")
        found: dict[str, Any] = {"journeys": bench.report(*bench.journeys(args.journeys, "J"))}
        with bench.workflow_cache_off():
            found["cache_misses"] = bench.report(*bench.journeys(args.journeys, "MISS"))
        found["gc_freeze"] = bench.gc_freeze(args.gc_rounds)
        found["version_cache"] = bench.version_cache(args.starts)
        found["conflicts"] = bench.conflicts(args.race_instances, args.clients, 2)
        return found
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", default="", help="PostgreSQL URL; without it only SQLite runs")
    parser.add_argument("--journeys", type=int, default=10, help="full breast journeys per measurement")
    parser.add_argument("--gc-rounds", type=int, default=4, help="journeys with and without gc.freeze, each")
    parser.add_argument("--starts", type=int, default=100, help="starts with and without the version cache, each")
    parser.add_argument("--race-instances", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4, help="threads on the same instance at once")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/api.py", *sys.argv[1:]])
    report: dict[str, Any] = {
        "command": command,
        "machine": machine.describe(),
        "client": "Flask test client, one process; due timers fired by the worker function between requests",
    }
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            report["sqlite"] = run(f"sqlite:///{folder}/bench.sqlite3", args)
    if args.postgres:
        report["postgresql_server"] = durability(args.postgres)
        url, schema = postgres_schema(args.postgres)
        try:
            report["postgresql"] = run(url, args)
        finally:
            drop_schema(args.postgres, schema)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
