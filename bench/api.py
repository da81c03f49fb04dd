"""Benchmark of the HTTP API behind gunicorn; prints JSON with the figures and the command to reproduce.

1. Sequential: one client with a keep-alive connection runs "start an instance, then complete 3 user
   tasks" for N instances (default 200) on SQLite, and on PostgreSQL when a URL is given; p50/p95 per
   request type.
2. Concurrent (PostgreSQL only): C clients (default 32), each with its own keep-alive connection,
   run the same flow for D seconds (default 30): throughput, latency percentiles, errors, and a check
   against the event trail that no confirmed completion was lost or recorded twice.

    .venv/bin/python bench/api.py [--postgres postgresql+psycopg://user@host:port/db]

The PostgreSQL URL may also come from CAREPATH_DATABASE_URL. Each run uses a fresh database (a new
schema on PostgreSQL, dropped afterwards) and the test pathway tests/pathways/assessment.bpmn.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402

from engine import CarePath, Settings  # noqa: E402
from engine.access import create_token  # noqa: E402
from engine.audit import verify_trail  # noqa: E402
from engine.db.models import InstanceEvent  # noqa: E402
from engine.db.session import unit_of_work  # noqa: E402

PATHWAYS = ROOT / "tests" / "pathways"
FLOW = [{"anxiety": 9, "fatigue": 3}, {"review_outcome": "managed"}, {"support_accepted": True}]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index], 2)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "p99_ms": percentile(values, 99), "max_ms": round(max(values), 2) if values else None}


class Client:
    """One keep-alive connection (stdlib http.client)."""

    def __init__(self, port: int, secret: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any, float]:
        payload = json.dumps(body) if body is not None else None
        began = time.perf_counter()
        self.connection.request(method, path, body=payload, headers={**self.headers, **headers})
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        return response.status, json.loads(data) if data else None, elapsed


@dataclass
class FlowResult:
    timings: dict[str, list[float]] = field(default_factory=lambda: {"start": [], "complete": []})
    completed: list[tuple[str, str]] = field(default_factory=list)  # confirmed (instance, task)
    instances: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def run_flow(client: Client, patient_ref: str, result: FlowResult) -> None:
    status, body, elapsed = client.call("POST", "/v1/instances",
                                        {"pathway_id": "test_assessment", "patient_ref": patient_ref})
    if status != 201:
        result.errors[f"start {status}"] += 1
        return
    result.timings["start"].append(elapsed)
    result.instances.append(body["id"])
    for data in FLOW:
        task = body["ready_tasks"][0]
        status, reply, elapsed = client.call(
            "POST", f"/v1/instances/{body['id']}/tasks/{task['id']}/complete", {"data": data},
            **{"If-Match": f'"{body["version"]}"'})
        if status != 200:
            result.errors[f"complete {status}"] += 1
            return
        result.timings["complete"].append(elapsed)
        result.completed.append((body["id"], task["id"]))
        body = reply


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    secret: str


def prepare(url: str) -> str:
    """Upgrade the schema, deploy the test pathways, and return a fresh system token."""
    carepath = CarePath(Settings(database_url=url, pathways_dir=PATHWAYS), upgrade=True)
    try:
        carepath.catalog.sync_library()
        with unit_of_work(carepath.sessions) as session:
            return create_token(session, "system", "bench", carepath.clock)[1]
    finally:
        carepath.close()


def start_server(url: str, port: int, workers: int, threads: int) -> Server:
    secret = prepare(url)
    env = {**os.environ, "CAREPATH_DATABASE_URL": url, "CAREPATH_PATHWAYS_DIR": str(PATHWAYS),
           "CAREPATH_BIND": f"127.0.0.1:{port}", "CAREPATH_WORKERS": str(workers),
           "CAREPATH_THREADS": str(threads), "CAREPATH_ACCESS_LOG": "off", "CAREPATH_LOG_LEVEL": "warning"}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen([str(gunicorn), "-c", str(ROOT / "api" / "gunicorn.conf.py")], env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/v1/ready")
            if connection.getresponse().status == 200:
                return Server(url, port, process, secret)
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not become ready")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)


def sequential(server: Server, instances: int, warmup: int = 10) -> dict[str, Any]:
    client = Client(server.port, server.secret)
    run_flow(client, "BENCH-WARMUP", FlowResult())
    for n in range(warmup - 1):
        run_flow(client, f"BENCH-W{n}", FlowResult())
    result = FlowResult()
    began = time.perf_counter()
    for n in range(instances):
        run_flow(client, f"BENCH-{n}", result)
    seconds = time.perf_counter() - began
    # Floors for reading the figures: the HTTP + gunicorn + Flask round trip, and an authenticated read.
    health = [client.call("GET", "/v1/health")[2] for _ in range(200)]
    reads = [client.call("GET", f"/v1/instances/{i}")[2] for i in result.instances[:200]]
    return {"instances": instances, "seconds": round(seconds, 2), "errors": dict(result.errors),
            "start": summary(result.timings["start"]), "complete_task": summary(result.timings["complete"]),
            "get_instance": summary(reads), "health": summary(health)}


def concurrent(server: Server, clients: int, seconds: float) -> dict[str, Any]:
    results = [FlowResult() for _ in range(clients)]
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        client = Client(server.port, server.secret)
        n = 0
        while time.monotonic() < stop:
            try:
                run_flow(client, f"C{index}-{n}", results[index])
            except (OSError, http.client.HTTPException, ValueError) as exc:
                results[index].errors[type(exc).__name__] += 1
                client = Client(server.port, server.secret)
            n += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    starts = [t for r in results for t in r.timings["start"]]
    completes = [t for r in results for t in r.timings["complete"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    confirmed = [pair for r in results for pair in r.completed]
    instances = [i for r in results for i in r.instances]
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(starts) + len(completes),
            "throughput_rps": round((len(starts) + len(completes)) / elapsed, 1),
            "flows_completed": sum(1 for r in results for _ in r.instances) - sum(errors.values()),
            "errors": dict(errors), "start": summary(starts), "complete_task": summary(completes),
            "all_requests": summary(starts + completes), "trail": check_trail(server.url, instances, confirmed)}


def check_trail(url: str, instances: list[str], confirmed: list[tuple[str, str]]) -> dict[str, Any]:
    """Every confirmed completion appears exactly once in the event trail, and the trails verify."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(InstanceEvent.instance_id, InstanceEvent.task_id)
                                      .where(InstanceEvent.type == "task_completed")).all()
        recorded = Counter((r.instance_id, r.task_id) for r in rows if r.instance_id in set(instances))
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            problems = verify_trail(session, instances)
    finally:
        engine.dispose()
    lost = [pair for pair in confirmed if recorded[pair] == 0]
    duplicated = [pair for pair, count in recorded.items() if count > 1]
    unconfirmed = [pair for pair in recorded if pair not in set(confirmed)]
    return {"confirmed_completions": len(confirmed), "recorded_completions": sum(recorded.values()),
            "lost": len(lost), "duplicated": len(duplicated), "recorded_but_not_confirmed": len(unconfirmed),
            "trail_problems": len(problems)}


def postgres_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("CAREPATH_DATABASE_URL", ""),
                        help="PostgreSQL URL (default: CAREPATH_DATABASE_URL); without it only SQLite runs")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if args.postgres.startswith(("postgresql://", "postgres://")):
        args.postgres = "postgresql+psycopg://" + args.postgres.split("://", 1)[1]
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/api.py", *sys.argv[1:]])
    report: dict[str, Any] = {
        "reproduce": command,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "server": {"gunicorn_workers": args.workers, "threads_per_worker": args.threads, "worker_class": "gthread"},
        "flow": "POST /v1/instances, then POST .../tasks/{id}/complete x3 (If-Match), one keep-alive connection",
        "target": "complete_task p50 <= 5 ms",
    }
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            server = start_server(f"sqlite:///{folder}/bench.sqlite3", args.port, args.workers, args.threads)
            try:
                report["sqlite_sequential"] = sequential(server, args.instances)
            finally:
                stop_server(server)
    if args.postgres:
        url, schema = postgres_schema(args.postgres)
        try:
            server = start_server(url, args.port + 1, args.workers, args.threads)
            try:
                report["postgresql_sequential"] = sequential(server, args.instances)
                report["postgresql_concurrent"] = concurrent(server, args.clients, args.seconds)
            finally:
                stop_server(server)
        finally:
            drop_schema(args.postgres, schema)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
