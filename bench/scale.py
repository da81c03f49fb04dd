"""Benchmark: a national caseload on one PostgreSQL (issue 19, points 2 and 3).

Loading. ``engine.demo.load_demo`` drives ten synthetic patients through real steps to realistic
points of the bundled pathways (just diagnosed, plan proposed, plan agreed, in treatment, summary
written, waiting for a review, survey due, a warning sign in triage, a young person's travel costs, a
pathway to check against its diagnosis).
Their instance rows, event trails and ready-task elements are then copied ``--instances`` times with
PostgreSQL's COPY:
new ids, patient references ``SYN-SCALE-nnnnnnn``, creation times spread over two years, and every
copied trail re-chained (each event's hash covers its instance id) so that every copy verifies. The
warning-sign and pathway-check templates are rare (0.5 % of the copies each), as those are. Every event
carries its MAC under a trail key of the benchmark's own (:data:`BENCH_TRAIL_SECRET`), as production runs
with one: verification checks an HMAC per event and the worker writes them (``database.trail_authenticated``
in the JSON; a schema loaded before this, without MACs, is measured without the key).

Measuring. Every list, work-list, trail, audit and worker query runs through the code that issues
it: ``engine.instances.queries`` (instances, ready tasks, an event trail), the API's list endpoints
through Flask's test client, the timer worker's batch claim (``engine.instances.timers``), the
trail's verification (``engine.audit.verify_trail``), the workers' reading of the diagnoses of instances
started before the pathway check (``engine.pathway_checks.read_diagnoses``, every copy's check emptied
first) and ``carepath migrate`` as a subprocess that is killed and run again (point 3: progress,
resumable). The SQL each call issues is captured and ``EXPLAIN``-ed: the access method of each plan is
printed next to its p50/p95.

Run from the repository root (PostgreSQL only; a schema of its own, dropped and created again)::

    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/carepath \\
        --instances 100000

Prints JSON with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import LargeBinary, create_engine, event, func, select, text  # noqa: E402
from sqlalchemy import cast as sql_cast  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.access import create_token  # noqa: E402
from engine.audit import TrailKey, count_instances, event_hash, scan_sql, trail_scans  # noqa: E402
from engine.care_teams import CareScope  # noqa: E402
from engine.db.models import InstanceEvent, PathwayInstance, PathwayVersion  # noqa: E402
from engine.db.session import read_only, unit_of_work, upgrade_schema  # noqa: E402
from engine.demo import load_demo  # noqa: E402
from engine.instances import step as step_module  # noqa: E402
from engine.instances import timers as timers_module  # noqa: E402
from engine.instances.queries import InstanceFilter, InstanceQueries  # noqa: E402
from engine.instances.store import ready_elements  # noqa: E402
from engine.instances.timers import fire_due_timers  # noqa: E402
from engine.processes import run_shares  # noqa: E402
from engine.spiff import serializer, workflows  # noqa: E402
from engine.verifications import verify_every_trail  # noqa: E402

INSTANCE_COLUMNS = (
    "id",
    "pathway_id",
    "pathway_version_id",
    "patient_ref",
    "status",
    "state",
    "revision",
    "next_due_at",
    "incident",
    "ready_tasks",
    "notice_contacts",
    "event_seq",
    "event_head",
    "state_mac",
    "created_at",
    "updated_at",
    "organisation",
    "care_team",
    "pathway_check",
)
# Copies are spread over organisations and their care teams (engine.care_teams): a clinician's list reads
# one team's share, an auditor's one organisation's.
ORGANISATIONS, TEAMS = 20, 10
EVENT_COLUMNS = (
    "instance_id",
    "seq",
    "type",
    "at",
    "actor",
    "pathway_version",
    "element",
    "task_id",
    "payload",
    "prev_hash",
    "hash",
    "state_digest",
    "mac",
)
# A warning sign in triage; a pathway started for a diagnosis naming another site (engine.pathway_checks).
RARE_TEMPLATES = ("SYN-DEMO-0008", "SYN-DEMO-0010")
RARE_SHARE = 0.005  # each
GENESIS = "0" * 64


# --- loading ---------------------------------------------------------------------------------------
# Every engine here runs with four eyes off: one operator loads, deploys and migrates a caseload.


def schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def fresh_schema(base: str, schema: str) -> None:
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


def templates(engine: Engine) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    instances = PathwayInstance.__table__
    events = InstanceEvent.__table__
    with engine.connect() as connection:
        # COPY writes the column's bytes as the engine stored them: the trail's digests are of these.
        columns = [sql_cast(c, LargeBinary).label("state") if c.name == "state" else c for c in instances.columns]
        rows = [dict(r) for r in connection.execute(select(*columns).order_by(instances.c.created_at)).mappings()]
        trails: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
        for e in connection.execute(select(events).order_by(events.c.instance_id, events.c.id)).mappings():
            trails[e["instance_id"]].append(dict(e))
    return rows, trails


def template_of(rows: list[dict[str, Any]], number: int, seed: int) -> dict[str, Any]:
    """The template copy ``number`` is: each rare one at RARE_SHARE, the others equally often. Drawn
    from the copy's own number, so the shares of a parallel load agree on every copy."""
    common = [r for r in rows if r["patient_ref"] not in RARE_TEMPLATES]
    rare = [r for r in rows if r["patient_ref"] in RARE_TEMPLATES]
    drawn = random.Random((seed << 32) + number)
    if rare and drawn.random() < RARE_SHARE * len(rare):
        # Drawn too (the copy's number decides its organisation and team: rare[number % 2] put each rare
        # template in every other organisation only).
        return rare[drawn.randrange(len(rare))]
    return common[number % len(common)]


def placement_of(number: int) -> dict[str, str]:
    """The organisation and care team of copy ``number``."""
    return {
        "organisation": f"ORG{number % ORGANISATIONS:02d}",
        "care_team": f"team-{(number // ORGANISATIONS) % TEAMS}",
    }


def bulk_copy(engine: Engine, count: int, today: datetime, chunk: int = 5000, seed: int = 19, jobs: int = 1) -> float:
    """COPY ``count`` copies of the template instances and their re-chained trails, in ``jobs``
    processes each copying a range of the copies' numbers; returns seconds.

    The three tables' secondary indexes and their unique and foreign-key constraints are dropped
    for the load and built again after it (one sort each instead of a B-tree insertion per row,
    and no per-row constraint trigger): what an operator loading a caseload does. The rebuilt
    constraints check every row, so a load that broke one fails here."""
    rows, trails = templates(engine)
    url = engine.url.render_as_string(hide_password=False)
    started = time.perf_counter()
    saved = _drop_for_load(engine)
    try:
        bounds = [count * share // jobs for share in range(jobs + 1)]
        shares = [(url, rows, trails, bounds[k], bounds[k + 1], count, today, chunk, seed, k) for k in range(jobs)]
        if jobs == 1:
            _copy_range(*shares[0], None)
        else:
            run_shares(
                _copy_range,
                shares,
                name="scale-load",
                progress=lambda latest: print(f"loaded {sum(latest.values())}/{count}", file=sys.stderr, flush=True),
            )
    finally:
        _rebuild_after_load(engine, saved)
    return time.perf_counter() - started


LOADED_TABLES = ("pathway_instances", "instance_events", "ready_task_elements")


def _drop_for_load(engine: Engine) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Drop the loaded tables' unique and foreign-key constraints and secondary indexes (primary keys
    stay); returns their definitions (:func:`_rebuild_after_load`)."""
    tables = ", ".join(f"'{t}'::regclass" for t in LOADED_TABLES)
    with engine.begin() as connection:
        constraints = [
            (r[0], r[1], r[2])
            for r in connection.execute(
                text(
                    f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    f"WHERE conrelid IN ({tables}) AND contype IN ('u', 'f') ORDER BY contype DESC, conname"
                )
            )
        ]
        for table, name, _ in constraints:
            connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        indexes = [
            (r[0], r[1])
            for r in connection.execute(
                text(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    f"WHERE i.indrelid IN ({tables}) AND NOT i.indisprimary ORDER BY 1"
                )
            )
        ]
        for name, _ in indexes:
            connection.execute(text(f"DROP INDEX {name}"))
    return [definition for _, definition in indexes], constraints


def _rebuild_after_load(engine: Engine, saved: tuple[list[str], list[tuple[str, str, str]]]) -> None:
    indexes, constraints = saved
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        for definition in indexes:
            connection.execute(text(definition))
        for table, name, definition in reversed(constraints):  # unique ones first: a key a foreign one needs
            connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


# The trail key of the benchmark's schema: every event carries its MAC, as in production (docs/operations.md
# asks for a key), so the verification checks one HMAC per event and the worker writes one. Fixed, so that a
# schema loaded by one run verifies in the next (--reuse), and no secret: it protects synthetic data only.
BENCH_TRAIL_SECRET = b"carepath bench/scale.py trail key: synthetic data only, not a secret"
# Set by main() when the schema's events carry MACs; spawned processes inherit it from the environment.
_KEY_FILE_VARIABLE = "CAREPATH_SCALE_TRAIL_KEY_FILE"


def bench_key_file() -> Path:
    """A file holding :data:`BENCH_TRAIL_SECRET`, as ``CAREPATH_TRAIL_KEY_FILE`` names one."""
    path = Path(tempfile.gettempdir()) / f"carepath-scale-trail-{os.getuid()}.key"
    if not path.exists() or path.read_bytes() != BENCH_TRAIL_SECRET:
        path.write_bytes(BENCH_TRAIL_SECRET)
        path.chmod(0o600)
    return path


def bench_settings(url: str, **kwargs: Any) -> Settings:
    """The settings every part of the benchmark runs with: the schema's trail key when it has one."""
    key_file = os.environ.get(_KEY_FILE_VARIABLE)
    if key_file:
        kwargs["trail_key_file"] = Path(key_file)
    return Settings(database_url=url, four_eyes=False, **kwargs)


def _state_seal(key: TrailKey, instance_id: str, trail: list[dict[str, Any]], stored: bytes) -> str | None:
    digest = next((event["state_digest"] for event in reversed(trail) if event["state_digest"]), None)
    return None if digest is None else key.state_mac(instance_id, digest, stored)


def _copy_range(
    url: str,
    rows: list[dict[str, Any]],
    trails: dict[str, list[dict[str, Any]]],
    first: int,
    end: int,
    count: int,
    today: datetime,
    chunk: int,
    seed: int,
    share: int,
    messages: Any,
) -> None:
    """COPY copies ``first`` to ``end - 1`` of ``count`` (created over the two years before ``today``),
    a chunk per transaction; progress to ``messages`` when run as a share (engine.processes), else to
    standard error."""
    engine = create_engine(url)
    raw = engine.raw_connection()
    key = TrailKey(BENCH_TRAIL_SECRET)
    oldest = today - timedelta(days=730)
    step = timedelta(days=730) / max(count, 1)
    try:
        driver = raw.driver_connection
        done = first
        while done < end:
            instance_rows, event_rows, element_rows = [], [], []
            for number in range(done, min(done + chunk, end)):
                template = template_of(rows, number, seed)
                created = oldest + step * number
                new_id = str(uuid.UUID(int=random.Random(number).getrandbits(128), version=4))
                prev, last = GENESIS, GENESIS
                for stored in trails[template["id"]]:
                    copied = {**stored, "instance_id": new_id, "prev_hash": prev}
                    copied["hash"] = event_hash(SimpleNamespace(**copied))
                    copied["mac"] = key.event_mac(copied["hash"])
                    prev = last = copied["hash"]
                    event_rows.append(tuple(copied[c] for c in EVENT_COLUMNS))
                copy = {
                    **template,
                    "id": new_id,
                    "patient_ref": f"SYN-SCALE-{number:07d}",
                    "event_head": last,
                    # Sealed as the engine seals a state it writes (engine.audit.TrailKey.state_mac).
                    "state_mac": _state_seal(key, new_id, trails[template["id"]], template["state"]),
                    "created_at": created,
                    "updated_at": created,
                    **placement_of(number),
                }
                instance_rows.append(tuple(copy[c] for c in INSTANCE_COLUMNS))
                element_rows += [(new_id, element, created) for element in ready_elements(copy["ready_tasks"])]
            with driver.cursor() as cursor:
                with cursor.copy(f"COPY pathway_instances ({', '.join(INSTANCE_COLUMNS)}) FROM STDIN") as pipe:
                    for row in instance_rows:
                        pipe.write_row(row)
                with cursor.copy(f"COPY instance_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as pipe:
                    for row in event_rows:
                        pipe.write_row(row)
                with cursor.copy("COPY ready_task_elements (instance_id, element, created_at) FROM STDIN") as pipe:
                    for row in element_rows:
                        pipe.write_row(row)
            driver.commit()
            done += len(instance_rows)
            if messages is None:
                print(f"loaded {done}/{end}", file=sys.stderr, flush=True)
            else:
                messages.put(("progress", share, done - first))
    finally:
        raw.close()
        engine.dispose()
    if messages is not None:
        messages.put(("done", share, end - first))


# --- measuring -------------------------------------------------------------------------------------


class Statements:
    """The SQL statements an engine issues while ``capturing``."""

    def __init__(self, engine: Engine) -> None:
        self.capturing = False
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._note)

    def _note(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if self.capturing and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.seen.append((statement, parameters))

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, Any]]]:
        self.seen, self.capturing = [], True
        try:
            yield self.seen
        finally:
            self.capturing = False


def plan_of(engine: Engine, statement: str, parameters: Any) -> str:
    """The plan's nodes, outermost first: type, index and table (e.g. ``Limit > Index Scan using ix_... on t``)."""
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters or None)
            (plan,) = cursor.fetchone()
        raw.driver_connection.rollback()
    finally:
        raw.close()
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
        if "Relation Name" in node:
            label += f" on {node['Relation Name']}"
        nodes.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    return " > ".join(nodes)


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def measure(
    name: str,
    call: Callable[[int], Any],
    samples: int,
    statements: Statements,
    engine: Engine,
    check: Callable[[Any], str] | None = None,
) -> dict[str, Any]:
    with statements.capture() as seen:
        first = call(0)
    times, cpu = [], []
    for sample in range(1, samples + 1):
        began, began_cpu = time.perf_counter(), time.process_time()
        call(sample)
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    plans = []
    for statement, parameters in seen:
        if "FROM pathway_instances" in statement or "FROM instance_events" in statement:
            plans.append(plan_of(engine, statement, parameters))
    # CPU time of this process (Python, driver): on a shared machine, the rest of wall time is the
    # database's work and waiting for a core.
    result = {
        "query": name,
        **percentiles(times),
        "client_cpu_p50_ms": round(statistics.median(cpu) * 1000, 2),
        "plans": plans,
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    if check is not None:
        result["result"] = check(first)
    print(f"{name}: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms; {plans}", file=sys.stderr, flush=True)
    return result


def cursor_at(at: datetime, instance_id: str, due_order: bool = False) -> str:
    """A page cursor as the API issues them (a client would take it from ``next_cursor``; built here to
    start pages anywhere in the caseload without walking to them); ``due_order``: of a ``due_before``
    list, whose pages are in (next_due_at, id) order."""
    key = [at.astimezone(UTC).isoformat(), instance_id]
    raw = json.dumps(["due", *key] if due_order else key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def due_cursors(engine: Engine, before: datetime, count: int, seed: int) -> list[str]:
    """Cursors of ``due_before`` pages spread through what is due before ``before``."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT next_due_at, id FROM pathway_instances TABLESAMPLE SYSTEM (5) REPEATABLE (:seed) "
                "WHERE next_due_at < :before AND status = 'running' LIMIT :count"
            ),
            {"seed": seed, "before": before, "count": count},
        ).all()
    return [cursor_at(at, i, due_order=True) for at, i in rows] or [""]


def keys_sample(engine: Engine, count: int, seed: int) -> list[tuple[datetime, str, str]]:
    """(created_at, id, patient_ref) of instances spread through the caseload (TABLESAMPLE: no full scan)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT created_at, id, patient_ref FROM pathway_instances TABLESAMPLE SYSTEM (1) REPEATABLE (:seed) "
                "LIMIT :count"
            ),
            {"seed": seed, "count": count},
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def list_queries(
    app: CarePath, engine: Engine, statements: Statements, samples: int, today: datetime
) -> list[dict[str, Any]]:
    queries = InstanceQueries(app.sessions, app.instances)
    keys = keys_sample(engine, samples + 1, 7)
    cursors = [cursor_at(at, i) for at, i, _ in keys]
    patients = [p for _, _, p in keys]
    pick = lambda sample: cursors[sample % len(cursors)]  # noqa: E731
    count_items = lambda page: f"{len(page.items)} items, next page: {page.next_cursor is not None}"  # noqa: E731
    with read_only(app.sessions) as session:
        pathway = (
            "breast_cancer"
            if session.scalar(
                select(func.count()).select_from(PathwayVersion).where(PathwayVersion.pathway_id == "breast_cancer")
            )
            else session.scalar(select(PathwayVersion.pathway_id))
        )
    due = today + timedelta(days=30)
    due_pages = due_cursors(engine, due, samples + 1, 7)
    pick_due = lambda sample: due_pages[sample % len(due_pages)] or None  # noqa: E731
    home = placement_of(0)
    team = CareScope(home["organisation"], frozenset({home["care_team"]}))
    teams = CareScope(home["organisation"], frozenset({home["care_team"], placement_of(ORGANISATIONS)["care_team"]}))
    organisation = CareScope(home["organisation"])
    with engine.connect() as connection:  # a team with pathways to check (any team, on an older load)
        found = connection.execute(
            select(PathwayInstance.organisation, PathwayInstance.care_team)
            .where(PathwayInstance.pathway_check.is_not(None))
            .limit(1)
        ).first()
    checking = team if found is None else CareScope(found[0], frozenset({found[1]}))
    cases: list[tuple[str, Callable[[int], Any]]] = [
        ("instances: first page (50)", lambda s: queries.find(InstanceFilter(), None, 50)),
        ("instances: a page anywhere (50)", lambda s: queries.find(InstanceFilter(), pick(s), 50)),
        (
            "instances: status=running, a page anywhere",
            lambda s: queries.find(InstanceFilter(status="running"), pick(s), 50),
        ),
        (
            f"instances: pathway_id={pathway}&status=running, a page anywhere",
            lambda s: queries.find(InstanceFilter(pathway_id=pathway, status="running"), pick(s), 50),
        ),
        (
            "instances: patient_ref=<one patient>",
            lambda s: queries.find(InstanceFilter(patient_ref=patients[s % len(patients)]), None, 50),
        ),
        (
            "instances: status=running&due_before=+30d (due order), a page anywhere",
            lambda s: queries.find(InstanceFilter(status="running", due_before=due), pick_due(s), 50),
        ),
        (
            "instances: due_before=+30d (due order), a page anywhere",
            lambda s: queries.find(InstanceFilter(due_before=due), pick_due(s), 50),
        ),
        ("tasks: first page (20)", lambda s: queries.ready_tasks(InstanceFilter(), None, None, 20)),
        ("tasks: a page anywhere (20)", lambda s: queries.ready_tasks(InstanceFilter(), None, pick(s), 20)),
        (
            f"tasks: pathway_id={pathway}, a page anywhere",
            lambda s: queries.ready_tasks(InstanceFilter(pathway_id=pathway), None, pick(s), 20),
        ),
        (
            "tasks: element=first_review (5 of 8 templates), a page anywhere",
            lambda s: queries.ready_tasks(InstanceFilter(), "first_review", pick(s), 20),
        ),
        (
            "tasks: element=triage (0.5 % of instances when loaded), a page anywhere",
            lambda s: queries.ready_tasks(InstanceFilter(), "triage", pick(s), 20),
        ),
        (
            "tasks: element=no_such_element (nobody is there), a page anywhere",
            lambda s: queries.ready_tasks(InstanceFilter(), "no_such_element", pick(s), 20),
        ),
        (
            "instances: one care team (a clinician's), a page anywhere",
            lambda s: queries.find(InstanceFilter(scope=team), pick(s), 50),
        ),
        (
            "instances: two care teams (a clinician's), a page anywhere",
            lambda s: queries.find(InstanceFilter(scope=teams), pick(s), 50),
        ),
        (
            "instances: one organisation (an auditor's), a page anywhere",
            lambda s: queries.find(InstanceFilter(scope=organisation), pick(s), 50),
        ),
        (
            "tasks: one care team's work list, a page anywhere",
            lambda s: queries.ready_tasks(InstanceFilter(scope=team), None, pick(s), 20),
        ),
        (
            "instances: pathways to check (engine.pathway_checks), first page",
            lambda s: queries.find(InstanceFilter(pathway_check=True), None, 50),
        ),
        (
            "instances: one care team's pathways to check, first page",
            lambda s: queries.find(InstanceFilter(scope=checking, pathway_check=True), None, 50),
        ),
        ("trail: one instance's events", lambda s: queries.events(keys[s % len(keys)][1])),
    ]
    return [
        measure(name, call, samples, statements, engine, None if name.startswith("trail") else count_items)
        for name, call in cases
    ]


def api_queries(url: str, engine: Engine, samples: int) -> list[dict[str, Any]]:
    from api import create_app

    app = create_app({"DATABASE_URL": url, "TESTING": True, "AUTH_CACHE_SECONDS": 60})
    carepath: CarePath = app.extensions["carepath"]
    statements = Statements(carepath.db)
    with unit_of_work(carepath.sessions) as session:
        _, clinician = create_token(session, "clinician", "bench", carepath.clock)
        _, auditor = create_token(session, "auditor", "bench", carepath.clock)
    client = app.test_client()
    keys = keys_sample(engine, samples + 1, 11)
    cursors = [cursor_at(at, i) for at, i, _ in keys]

    def get(path: str, secret: str) -> Callable[[int], Any]:
        def call(sample: int) -> Any:
            target = path.format(cursor=cursors[sample % len(cursors)], id=keys[sample % len(keys)][1])
            response = client.get(target, headers={"Authorization": f"Bearer {secret}"})
            assert response.status_code == 200, (target, response.status_code)
            return response.json

        return call

    items = lambda body: f"{len(body['items'])} items"  # noqa: E731
    cases = [
        (
            "GET /v1/instances?status=running&limit=50&cursor=...",
            "/v1/instances?status=running&limit=50&cursor={cursor}",
            clinician,
        ),
        ("GET /v1/tasks?limit=20&cursor=...", "/v1/tasks?limit=20&cursor={cursor}", clinician),
        (
            "GET /v1/tasks?element=triage&limit=20&cursor=...",
            "/v1/tasks?element=triage&limit=20&cursor={cursor}",
            clinician,
        ),
        ("GET /v1/instances/{id}/events", "/v1/instances/{id}/events", auditor),
    ]
    try:
        return [
            measure(name, get(path, secret), samples, statements, carepath.db, items) for name, path, secret in cases
        ]
    finally:
        carepath.close()


def timers(
    url: str,
    engine: Engine,
    statements_for: Callable[[Engine], Statements],
    count: int,
    today: datetime,
    workers: int = 1,
) -> dict[str, Any]:
    """Fire the due timers of ``count`` instances as the worker does (claims in batches of 100), in
    ``workers`` processes at once (as ``workers`` ``carepath worker`` processes share the due
    instances): the clock is set just past the due time most instances share (every copy of one
    template: thousands), so each instance fires the timers a worker would find due then (mostly one).

    Each process first fires 20 instances to warm up (not counted; ``timers_fired`` counts their events
    too). ``instances_per_minute`` is over the whole run, process starts included;
    ``..._once_started`` over the slowest process's warm firing; the CPU per instance is the
    processes' own after warm-up, and by phase (:data:`_PHASES`; ``the rest`` is what none of them took)."""
    with engine.connect() as connection:
        busiest = connection.execute(
            text(
                "SELECT next_due_at FROM pathway_instances WHERE status = 'running' "
                "AND next_due_at > :today GROUP BY next_due_at ORDER BY count(*) DESC "
                "LIMIT 1"
            ),
            {"today": today},
        ).scalar()
        due = connection.execute(
            text("SELECT count(*) FROM pathway_instances WHERE status = 'running' AND next_due_at <= :at"),
            {"at": busiest + timedelta(seconds=1)},
        ).scalar()
    now = busiest + timedelta(seconds=1)
    app = CarePath(bench_settings(url), ManualClock(now))
    statements = statements_for(app.db)
    try:  # the claim's plan, from one batch of one
        with statements.capture() as seen:
            fire_due_timers(app.instances, now=now, limit=1, worker_id="bench-plan")
        claim = next(s for s in seen if "next_due_at <=" in s[0] and "ORDER BY" in s[0])
        plan = plan_of(app.db, *claim)
    finally:
        app.close()
    events_before = _timer_events(engine)
    shares = [(url, now, count // workers + (k < count % workers), f"bench-{k}", k) for k in range(workers)]
    load = [round(x, 1) for x in os.getloadavg()]
    began = time.perf_counter()
    results = run_shares(_fire_share, shares, name="bench-timers")  # as `carepath migrate --jobs` starts them
    elapsed = time.perf_counter() - began
    fired = sum(advanced for advanced, _, _, _ in results.values())
    cpu = sum(seconds for _, seconds, _, _ in results.values())
    firing = max(seconds for _, _, _, seconds in results.values())  # the processes' own time, warm
    phases = {
        phase: round(sum(spent[phase] for _, _, spent, _ in results.values()) / max(fired, 1) * 1000, 2)
        for phase, _, _ in _PHASES
    }
    phases["the rest (claim, unit of work, commit, context, events)"] = round(
        (cpu - sum(sum(spent.values()) for _, _, spent, _ in results.values())) / max(fired, 1) * 1000, 2
    )
    return {
        "due_at_once": due,
        "worker_processes": workers,
        "instances_advanced": fired,
        "timers_fired": _timer_events(engine) - events_before,
        "seconds": round(elapsed, 1),
        "instances_per_minute": round(fired / elapsed * 60),
        "instances_per_minute_once_started": round(fired / firing * 60),
        "worker_cpu_ms_per_instance": round(cpu / max(fired, 1) * 1000, 1),
        "worker_cpu_ms_per_instance_by_phase": phases,
        "claim_plan": plan,
        "load_average_before": load,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


# The parts of firing one instance whose CPU the timers section reports: (phase, module, the name the
# worker's code calls it by there).
_PHASES = (
    ("restore the state", workflows, "restore"),
    ("fire the timers and the engine steps after them", timers_module, "run_due_timers"),
    ("serialise the state", serializer, "dump_state"),
    ("write the row and events (state compressed)", step_module, "save_instance"),
    ("compact finished history", step_module, "compact"),
    ("ready-task summary", workflows, "ready_task_summary"),
    ("read the row", step_module, "load_instance"),
)


def _time_phases() -> dict[str, float]:
    """Wrap each of :data:`_PHASES` in this process to add up its CPU seconds (returned, filled as it runs)."""
    spent = dict.fromkeys((phase for phase, _, _ in _PHASES), 0.0)

    def timed(phase: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.process_time()
            try:
                return call(*args, **kwargs)
            finally:
                spent[phase] += time.process_time() - began

        return run

    for phase, module, name in _PHASES:
        setattr(module, name, timed(phase, getattr(module, name)))
    return spent


def _fire_share(url: str, now: datetime, count: int, worker_id: str, share: int, messages: Any) -> None:
    """One worker process (a share of :func:`engine.processes.run_shares`): fire due timers in batches
    of 100 until ``count`` instances advanced; says ``done`` with (advanced, CPU seconds, CPU seconds
    by phase). The first batch of 20 warms the process up (specs, statements) and is not counted."""
    app = CarePath(bench_settings(url), ManualClock(now))
    fire_due_timers(app.instances, now=now, limit=20, worker_id=worker_id)
    spent = _time_phases()
    fired, cpu, wall = 0, time.process_time(), time.perf_counter()
    try:
        while fired < count:
            advanced = fire_due_timers(app.instances, now=now, limit=min(100, count - fired), worker_id=worker_id)
            if not advanced:
                break
            fired += advanced
    finally:
        app.close()
    # A failure ends the process instead: ShareFailed.
    messages.put(("done", share, (fired, time.process_time() - cpu, spent, time.perf_counter() - wall)))


def _timer_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM instance_events WHERE type = 'timer_fired'")).scalar() or 0
        )


def audit(url: str, jobs: int = 1) -> dict[str, Any]:
    """``carepath audit verify`` as the background job runs it (:func:`engine.verifications.verify_every_trail`),
    in ``jobs`` processes over id ranges; the plans are those of one range's scan."""
    app = CarePath(bench_settings(url))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marks: list[tuple[int, int]] = []
    load = [round(x, 1) for x in os.getloadavg()]
    try:
        with read_only(app.sessions) as session:
            total = count_instances(session)
        # The statements of a range's scan, for their plans (a narrow range: the plan is the same), as the
        # verification declares its server-side cursors for them (a cursor may be planned otherwise).
        seen = [scan_sql(app.db.dialect, scan) for scan in trail_scans(("fff", None))]
        plans = [plan_of(app.db, f"DECLARE plan_check BINARY CURSOR FOR {s}", p) for s, p in seen]
        began, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        problems = verify_every_trail(
            app.sessions,
            jobs=jobs,
            batch=2000,
            progress=lambda n: marks.append((n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)),
        )
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        app.close()
    middle = marks[len(marks) // 2][1] if marks else rss_before
    return {
        "instances": total,
        "processes": jobs,
        "seconds": round(elapsed, 1),
        "per_second": round(total / elapsed),
        "problems": len(problems),
        "statements_per_range": len(seen),
        "plans": plans,
        "cpu_ms_per_instance": round(
            ((after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)) / max(total, 1) * 1000, 3
        )
        if jobs > 1
        else None,
        "max_rss_mb": {
            "before": rss_before // 1024,
            "half_way": middle // 1024,
            "end": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "largest_verifying_process": after.ru_maxrss // 1024 if jobs > 1 else None,
        },
        "load_average_before": load,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


def diagnoses(url: str, engine: Engine, statements_for: Callable[[Engine], Statements], batch: int) -> dict[str, Any]:
    """Reading again the diagnoses of the instances started before the pathway check existed
    (:func:`engine.pathway_checks.read_diagnoses`, a worker's turn, or ``carepath pathways check-diagnoses``)
    over the whole caseload: every copy's check emptied first, as migration 0034 left the rows written before
    it, and the task started again. Each batch is timed (a worker's turn waits that long), and the statements
    of one batch are EXPLAINed. The checks it asks for must be the ones emptied; each asked instance's trail
    gets a ``pathway_check_asked`` event (a schema measured again gets another)."""
    from engine.pathway_checks import read_again, read_diagnoses, unread_count

    with engine.begin() as connection:
        emptied = connection.execute(
            text("UPDATE pathway_instances SET pathway_check = NULL WHERE pathway_check IS NOT NULL")
        ).rowcount
    app = CarePath(bench_settings(url))
    statements = statements_for(app.db)
    load = [round(x, 1) for x in os.getloadavg()]
    try:
        read_again(app)
        unread = unread_count(app)
        turns: list[float] = []
        read = asked = 0
        began, began_cpu = time.perf_counter(), time.process_time()
        with statements.capture() as seen:
            first = read_diagnoses(app, batch)
        turns.append(time.perf_counter() - began)
        read, asked, done = first.read, first.asked, first.done
        while not done:
            started = time.perf_counter()
            turn = read_diagnoses(app, batch)
            turns.append(time.perf_counter() - started)
            read, asked, done = read + turn.read, asked + turn.asked, turn.done
            if len(turns) % 100 == 0:
                print(f"diagnoses: {read}/{unread} read, {asked} asked", file=sys.stderr, flush=True)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    finally:
        app.close()
    plans = [plan_of(engine, s, p) for s, p in seen if s.lstrip().startswith("SELECT") and "pathway_instances" in s]
    return {
        "instances_to_read": unread,
        "read": read,
        "asked": asked,
        "checks_emptied_before": emptied,
        "asked_is_emptied": asked == emptied,
        "batch": batch,
        "batches": len(turns),
        "seconds": round(elapsed, 1),
        "per_second": round(read / elapsed) if elapsed else None,
        "cpu_ms_per_instance": round(cpu / max(read, 1) * 1000, 3),
        "batch_wall": percentiles(turns),
        "plans": plans,
        "load_average_before": load,
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


def migration(
    url: str, engine: Engine, pathway: str, first_seconds: float, second_seconds: float, jobs: int = 1
) -> dict[str, Any]:
    """Deploy a new version of ``pathway`` (a task renamed: the work is unchanged), then run
    ``carepath migrate --jobs JOBS`` for ``first_seconds``, kill it (SIGKILL, its process group: the
    processes of its shares too), and run it again for ``second_seconds``. Each run on a schema
    (``--reuse``) renames it anew, so every run moves the same caseload to a version of its own."""
    folder = Path(tempfile.mkdtemp(prefix="carepath-scale-pathways-"))
    try:
        shutil.copytree(Settings().pathways_dir, folder, dirs_exist_ok=True)
        diagram = folder / f"{pathway.removesuffix('_cancer')}.bpmn"
        with engine.connect() as connection:
            deployed = connection.execute(
                text("SELECT count(*) FROM pathway_versions WHERE pathway_id = :p"), {"p": pathway}
            ).scalar()
        suffix = "renamed" if deployed == 1 else f"renamed {deployed}"  # the first run's name as before
        changed, count = re.subn(
            r'(<bpmn:userTask id="[^"]+" name=")([^"]+)"',
            rf'\1\2 ({suffix})"',
            diagram.read_text(encoding="utf-8"),
            count=1,
        )
        assert count == 1, diagram
        diagram.write_text(changed, encoding="utf-8")
        deployer = CarePath(bench_settings(url, pathways_dir=folder))
        try:
            deployer.catalog.sync_library(actor="bench")
        finally:
            deployer.close()

        def moved() -> tuple[int, int, int]:
            with engine.connect() as connection:
                newest = connection.execute(
                    text(
                        "SELECT id FROM pathway_versions WHERE pathway_id = :p "
                        "ORDER BY deployed_at DESC, id DESC LIMIT 1"
                    ),
                    {"p": pathway},
                ).scalar()
                on_new = connection.execute(
                    text("SELECT count(*) FROM pathway_instances WHERE pathway_id = :p AND pathway_version_id = :v"),
                    {"p": pathway, "v": newest},
                ).scalar()
                left = connection.execute(
                    text(
                        "SELECT count(*) FROM pathway_instances WHERE pathway_id = :p AND "
                        "status IN ('running', 'suspended') AND pathway_version_id <> :v"
                    ),
                    {"p": pathway, "v": newest},
                ).scalar()
                events = connection.execute(
                    text("SELECT count(*) FROM instance_events WHERE type = 'migrated'")
                ).scalar()
            return int(on_new or 0), int(left or 0), int(events or 0)

        # One operator moves the caseload (four eyes off, as for the deploy above).
        env = {
            **os.environ,
            "CAREPATH_DATABASE_URL": url,
            "CAREPATH_PATHWAYS_DIR": str(folder),
            "CAREPATH_FOUR_EYES": "off",
        }
        if os.environ.get(_KEY_FILE_VARIABLE):  # the moves' events carry MACs too
            env["CAREPATH_TRAIL_KEY_FILE"] = os.environ[_KEY_FILE_VARIABLE]
        runs = []
        for seconds in (first_seconds, second_seconds):
            before = moved()[0]
            began = time.perf_counter()
            command = [str(Path(sys.executable).parent / "carepath"), "migrate", pathway, "--jobs", str(jobs)]
            load = [round(x, 1) for x in os.getloadavg()]
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            # Its progress goes to a file, not a pipe: a pipe nobody reads until the end fills after some
            # 750 progress lines and blocks the command (and with it its shares) until it is killed.
            with tempfile.TemporaryFile(mode="w+") as log:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log, text=True
                )
                try:
                    process.wait(timeout=seconds)
                    killed = False
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)  # the command and the processes of its shares
                    process.wait()
                    killed = True
                elapsed = time.perf_counter() - began
                log.seek(0)
                stderr = log.read().strip().splitlines()
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            # The command's CPU and that of the processes of its shares, which it waited for: a killed
            # run's shares are not waited for, so only a run that ended counts (the server's CPU never does).
            cpu = (used.ru_utime - children.ru_utime) + (used.ru_stime - children.ru_stime)
            after, left, events = moved()
            progress_line = next((line for line in reversed(stderr) if "migrating" in line), None)
            runs.append(
                {
                    "processes": jobs,
                    "load_average_before": load,
                    "load_average_after": [round(x, 1) for x in os.getloadavg()],
                    "seconds": round(elapsed, 1),
                    "killed": killed,
                    "moved": after - before,
                    "left": left,
                    "per_second": round((after - before) / elapsed, 1),
                    "cpu_ms_per_instance": None
                    if killed or after == before
                    else round(cpu / (after - before) * 1000, 2),
                    "last_progress_line": progress_line,
                    "fast_path_at_last_progress": _fast_path(progress_line),
                    "exit_code": process.returncode,
                    "last_error_line": stderr[-1] if stderr and not killed else None,
                    "migrated_events_total": events,
                    "instances_on_new_version": after,
                }
            )
        return {"pathway": pathway, "runs": runs}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fast_path(progress_line: str | None) -> int | None:
    """How many instances took the migration's fast path, by the command's last progress line."""
    found = re.search(r"(\d+) by the fast path", progress_line or "")
    return int(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CAREPATH_TEST_POSTGRES_URL"),
        help="PostgreSQL (postgresql+psycopg://...)",
    )
    parser.add_argument("--schema", default="carepath_scale")
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--load-jobs", type=int, default=1, help="processes copying the instances at once")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--timers", type=int, default=2000, help="instances whose due timers the worker fires")
    parser.add_argument("--timer-workers", type=int, default=1, help="worker processes firing them at once")
    parser.add_argument("--verify-jobs", type=int, default=1, help="processes verifying the trail at once")
    parser.add_argument("--migrate-jobs", type=int, default=1, help="carepath migrate --jobs")
    parser.add_argument(
        "--migrate-seconds",
        type=float,
        nargs=2,
        default=(60.0, 60.0),
        help="run `carepath migrate` this long, kill it, then again this long (0 0: skip)",
    )
    parser.add_argument(
        "--diagnoses-batch", type=int, default=1000, help="instances a turn of the diagnoses' reading reads"
    )
    parser.add_argument("--reuse", action="store_true", help="measure the schema a previous run loaded")
    parser.add_argument(
        "--sections",
        default="lists,api,timers,audit,diagnoses,migrate",
        help="which measurements to run (comma-separated)",
    )
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL")
    url = schema_url(args.database_url, args.schema)
    today = datetime.now(UTC).replace(microsecond=0)
    result: dict[str, Any] = {
        "benchmark": "scale",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        },
    }
    if not args.reuse:
        os.environ[_KEY_FILE_VARIABLE] = str(bench_key_file())  # a new schema's events carry MACs
        fresh_schema(args.database_url, args.schema)
        began = time.perf_counter()
        load_demo(bench_settings(url), now=today)
        templated = time.perf_counter() - began
        engine = create_engine(url)
        seconds = bulk_copy(engine, args.instances, today, jobs=args.load_jobs)
        result["load"] = {
            "templates_seconds": round(templated, 1),
            "copy_seconds": round(seconds, 1),
            "load_jobs": args.load_jobs,
        }
    else:
        upgrade_schema(url)  # a schema loaded by an earlier release gets the columns the queries now read
        engine = create_engine(url)
        with engine.connect() as connection:  # a schema loaded before events carried MACs has none
            if connection.execute(text("SELECT mac IS NOT NULL FROM instance_events LIMIT 1")).scalar():
                os.environ[_KEY_FILE_VARIABLE] = str(bench_key_file())
    with engine.connect() as connection:
        result["database"] = {
            "trail_authenticated": bool(os.environ.get(_KEY_FILE_VARIABLE)),
            "instances": connection.execute(text("SELECT count(*) FROM pathway_instances")).scalar(),
            "events": connection.execute(text("SELECT count(*) FROM instance_events")).scalar(),
            "server": connection.execute(text("SHOW server_version")).scalar(),
            "fsync": connection.execute(text("SHOW fsync")).scalar(),
            "size": connection.execute(
                text(
                    "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s "
                    "AND c.relkind = 'r'"
                ),
                {"s": args.schema},
            ).scalar(),
        }
    sections = set(args.sections.split(","))
    if "lists" in sections:
        app = CarePath(bench_settings(url))
        try:
            result["lists"] = list_queries(app, app.db, Statements(app.db), args.samples, today)
        finally:
            app.close()
    if "api" in sections:
        result["api"] = api_queries(url, engine, args.samples)
    if "timers" in sections:
        result["timers"] = timers(url, engine, Statements, args.timers, today, args.timer_workers)
    if "audit" in sections:
        result["audit_verify"] = audit(url, args.verify_jobs)
    if "diagnoses" in sections:
        result["diagnoses"] = diagnoses(url, engine, Statements, args.diagnoses_batch)
    if "migrate" in sections and args.migrate_seconds[0] > 0:
        result["migrate"] = migration(url, engine, "breast_cancer", *args.migrate_seconds, jobs=args.migrate_jobs)
    engine.dispose()
    result["machine"]["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
