"""Benchmark: the service insight reports (docs/measures.md, issue 21 point 4) over a national
caseload on one PostgreSQL.

Loading, as ``bench/scale.py`` does: ``engine.demo.load_demo`` drives the synthetic demo patients
through real steps, then their instance rows, event trails and care plan items are copied
``--instances`` times with PostgreSQL's COPY, creation times spread over two years. Unlike scale.py
every copied event and care plan item is moved in time with its instance (the reports select by
period), each copy's items get new ids (the events that name them follow), its referrals are moved on
as a service would (referred, accepted, first contact or declined: ``care_plan_updated`` events
appended to its trail), and every trail is re-chained so that it verifies.

Measuring: the summary's refresh (every instance, as after a bulk import; then again with nothing to
do, as the worker's housekeeping mostly finds), then each report as its callers run it
(``engine.reports``: the measures of a year and of two years, one pathway, the manager page's
insight, the COSD export of a month and of a year), and the API's ``GET /v1/reports/measures``
through Flask's test client; ``--samples`` runs each, p50 and max.

Run from the repository root (a schema of its own, dropped and created again)::

    .venv/bin/python bench/reports.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/carepath \\
        --instances 100000

Prints JSON with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.machine import describe  # noqa: E402
from bench.scale import (  # noqa: E402
    EVENT_COLUMNS,
    INSTANCE_COLUMNS,
    fresh_schema,
    placement_of,
    schema_url,
    templates,
)
from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.access import create_token  # noqa: E402
from engine.audit import canonical_json, event_hash  # noqa: E402
from engine.db.models import CarePlanItem  # noqa: E402
from engine.db.session import read_only, unit_of_work  # noqa: E402
from engine.demo import load_demo  # noqa: E402
from engine.errors import InvalidInputError  # noqa: E402
from engine.reports import (  # noqa: E402
    MeasureQuery,
    cosd_csv,
    measures_report,
    refresh_summary,
    service_insight,
)

ITEM_COLUMNS = (
    "id",
    "instance_id",
    "evaluation_id",
    "task_id",
    "kind",
    "code",
    "service",
    "urgency",
    "rules",
    "status",
    "created_at",
    "updated_at",
    "updated_by",
)
GENESIS = "0" * 64


def bulk_copy(engine: Engine, count: int, today: datetime, chunk: int = 5000, seed: int = 21) -> float:
    """COPY ``count`` copies of the demo instances, their trails and care plan items, moved in time."""
    rows, trails = templates(engine)
    items: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    with engine.connect() as connection:
        for item in connection.execute(select(CarePlanItem.__table__)).mappings():
            items[item["instance_id"]].append(dict(item))
    first, step = today - timedelta(days=730), timedelta(days=730) / max(count, 1)
    rng = random.Random(seed)
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        done = 0
        while done < count:
            instance_rows, event_rows, item_rows = [], [], []
            for number in range(done, min(done + chunk, count)):
                template = rows[number % len(rows)]
                new_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                created = first + step * number
                shift = created - template["created_at"]
                renamed = {
                    item["id"]: str(uuid.UUID(int=rng.getrandbits(128), version=4)) for item in items[template["id"]]
                }
                prev, last = GENESIS, trails[template["id"]][-1]
                for stored in [*trails[template["id"]], *_referral_moves(items[template["id"]], last, rng)]:
                    payload = stored["payload"]
                    for old, new in renamed.items():
                        payload = payload.replace(old, new)
                    copied = {
                        **stored,
                        "instance_id": new_id,
                        "at": stored["at"] + shift,
                        "payload": payload,
                        "prev_hash": prev,
                        "mac": None,
                    }
                    copied["hash"] = prev = event_hash(SimpleNamespace(**copied))
                    event_rows.append(tuple(copied[c] for c in EVENT_COLUMNS))
                for item in items[template["id"]]:
                    moved = {
                        **item,
                        "id": renamed[item["id"]],
                        "instance_id": new_id,
                        "created_at": item["created_at"] + shift,
                        "updated_at": item["updated_at"] + shift,
                    }
                    item_rows.append(tuple(moved[c] for c in ITEM_COLUMNS))
                copy = {
                    **template,
                    "id": new_id,
                    "patient_ref": f"SYN-REPORT-{number:07d}",
                    "event_head": prev,
                    "state_mac": None,  # no trail key here: verification inflates the state
                    "event_seq": event_rows[-1][1],
                    "created_at": created,
                    "updated_at": created,
                    "ready_tasks": None,
                    **placement_of(number),
                }
                instance_rows.append(tuple(copy[c] for c in INSTANCE_COLUMNS))
            with driver.cursor() as cursor:
                with cursor.copy(f"COPY pathway_instances ({', '.join(INSTANCE_COLUMNS)}) FROM STDIN") as pipe:
                    for row in instance_rows:
                        pipe.write_row(row)
                with cursor.copy(f"COPY instance_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as pipe:
                    for row in event_rows:
                        pipe.write_row(row)
                with cursor.copy(f"COPY care_plan_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN") as pipe:
                    for row in item_rows:
                        pipe.write_row(row)
            driver.commit()
            done += len(instance_rows)
            print(f"loaded {done}/{count}", file=sys.stderr, flush=True)
        with driver.cursor() as cursor:
            cursor.execute("ANALYZE")
        driver.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def _referral_moves(items: list[dict[str, Any]], last: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Events moving the template's referrals on, as a service would (the demo's are never referred):
    referred a day after proposal, most accepted within days, many seen within weeks, some declined."""
    moves, seq = [], last["seq"]
    for item in items:
        if item["kind"] != "referral":
            continue
        at, steps = item["created_at"], [("referred", 1.0)]
        if rng.random() < 0.8:
            steps.append(("accepted", rng.uniform(0.2, 6)))
            steps.append(("first_contact", rng.uniform(1, 50)) if rng.random() < 0.8 else ("service_declined", 2.0))
        for status, days in steps:
            at, seq = at + timedelta(days=days), seq + 1
            moves.append(
                {
                    **last,
                    "seq": seq,
                    "type": "care_plan_updated",
                    "at": at,
                    "element": None,
                    "task_id": None,
                    "state_digest": None,
                    "payload": canonical_json(
                        {"item": item["id"], "status": status, "service": item["service"], "urgency": item["urgency"]}
                    ),
                }
            )
    return moves


def timed(call: Callable[[], Any], samples: int) -> dict[str, Any]:
    """Wall time (p50, max) and this process's CPU time (p50): on a shared machine the difference is
    mostly the database's work and the wait for a core."""
    times, cpu, result = [], [], None
    for _ in range(samples):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = call()
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return {
        "p50_seconds": round(statistics.median(times), 3),
        "max_seconds": round(max(times), 3),
        "client_cpu_p50_seconds": round(statistics.median(cpu), 3),
        "samples": samples,
        "under_2_seconds": max(times) < 2.0,
        "size": _size(result),
    }


def _size(result: Any) -> Any:
    if isinstance(result, str):  # CSV: a header, then a row per CRLF (no cell of these rows breaks a line)
        return {"rows": result.count("\r\n") - 1, "bytes": len(result.encode())}
    if isinstance(result, list):
        return {"rows": len(result)}
    if isinstance(result, dict) and ("refused" in result or "bytes" in result):
        return result
    if isinstance(result, dict) and "measures" in result:
        return {"referral_groups": len(result["referrals"])}
    if hasattr(result, "weekly_referrals"):
        return {"weeks": len(result.weekly_referrals.labels)}
    return None


def refresh(url: str, today: datetime) -> dict[str, Any]:
    """The summary brought up to date from nothing (every instance), then with nothing to do."""
    app = CarePath(Settings(database_url=url), ManualClock(today))
    try:
        with app.db.begin() as connection:  # from nothing, also on a --reuse of a refreshed schema
            for table in ("report_warning_signs", "report_items", "report_measure_rows", "report_instances"):
                connection.execute(text(f"DELETE FROM {table}"))
        print("refreshing the summary", file=sys.stderr, flush=True)
        began = time.perf_counter()
        count = refresh_summary(app.sessions, today, app.settings.referral_timeframes)
        everything = time.perf_counter() - began
        began = time.perf_counter()
        again = refresh_summary(app.sessions, today, app.settings.referral_timeframes)
        return {
            "instances": count,
            "all_seconds": round(everything, 1),
            "again_instances": again,
            "again_seconds": round(time.perf_counter() - began, 3),
        }
    finally:
        app.close()


def reports(url: str, today: datetime, samples: int) -> dict[str, Any]:
    """Every report, as its callers run it: the measures, the charts' data (the service page's
    insight: measures, months, weeks, backlog) and the COSD export, each over every pathway, one
    pathway (``pathway=``) and one care team (``team=``: one team name in every organisation, a
    tenth of the caseload, as a caller reaching every organisation asks)."""
    app = CarePath(Settings(database_url=url), ManualClock(today))
    year, two = MeasureQuery(today - timedelta(days=365), today), MeasureQuery(today - timedelta(days=730), today)
    month = MeasureQuery(today - timedelta(days=30), today)
    quarter = MeasureQuery(today - timedelta(days=91), today)
    breast = MeasureQuery(today - timedelta(days=365), today, "breast_cancer")
    team = MeasureQuery(today - timedelta(days=365), today, team=placement_of(0)["care_team"])
    team_month = MeasureQuery(today - timedelta(days=30), today, team=placement_of(0)["care_team"])
    breast_month = MeasureQuery(today - timedelta(days=30), today, "breast_cancer")

    def run(call: Callable[[Any], Any]) -> Callable[[], Any]:
        def inner() -> Any:
            with read_only(app.sessions) as session:
                return call(session)

        return inner

    timeframes = app.settings.referral_timeframes
    try:
        found = {
            "measures_one_year": timed(run(lambda s: measures_report(s, year, today, 5, timeframes)), samples),
            "measures_two_years": timed(run(lambda s: measures_report(s, two, today, 5, timeframes)), samples),
            "measures_one_pathway": timed(run(lambda s: measures_report(s, breast, today, 5, timeframes)), samples),
            "measures_one_team": timed(run(lambda s: measures_report(s, team, today, 5, timeframes)), samples),
            "service_page_one_year": timed(run(lambda s: service_insight(s, year, today, 5, timeframes)), samples),
            "service_page_two_years": timed(run(lambda s: service_insight(s, two, today, 5, timeframes)), samples),
            "service_page_one_pathway": timed(run(lambda s: service_insight(s, breast, today, 5, timeframes)), samples),
            "service_page_one_team": timed(run(lambda s: service_insight(s, team, today, 5, timeframes)), samples),
            # The export as `carepath report cosd` writes it and the API sends it: CSV text.
            "cosd_one_month": timed(run(lambda s: cosd_csv(s, month)), samples),
            "cosd_one_quarter": timed(run(lambda s: _refused_or(lambda: cosd_csv(s, quarter))), samples),
            "cosd_one_month_one_pathway": timed(run(lambda s: cosd_csv(s, breast_month)), samples),
            "cosd_one_month_one_team": timed(run(lambda s: cosd_csv(s, team_month)), samples),
        }
    finally:
        app.close()
    found.update(api(url, today, samples))
    return found


def _refused_or(call: Callable[[], Any]) -> Any:
    """The export's rows, or the refusal of one larger than MAX_EXPORT_ROWS (timed all the same)."""
    try:
        return call()
    except InvalidInputError as exc:
        return {"refused": exc.problems[0].message}


def api(url: str, today: datetime, samples: int) -> dict[str, Any]:
    """The reports through Flask's test client, as a manager's token asks for them: the measures, and
    the COSD export of a month as CSV (the access log's record of every exported patient included)."""
    from api import create_app

    app = create_app({"DATABASE_URL": url, "CLOCK": ManualClock(today), "SYNC_PATHWAYS": False})
    engine = app.extensions["carepath"]
    try:
        with unit_of_work(engine.sessions) as session:
            _, secret = create_token(session, "manager", "bench", engine.clock)
        client = app.test_client()

        def since(days: int) -> str:
            return (today - timedelta(days=days)).isoformat().replace("+00:00", "Z")

        def get(path: str) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(path, headers={"Authorization": f"Bearer {secret}"})
                assert response.status_code == 200, response.status_code
                return response.json if response.is_json else {"bytes": len(response.data)}

            return call

        return {
            "api_measures_one_year": timed(get(f"/v1/reports/measures?from={since(365)}"), samples),
            "api_measures_one_team": timed(
                get(f"/v1/reports/measures?from={since(365)}&team={placement_of(0)['care_team']}"), samples
            ),
            "api_cosd_one_month_csv": timed(get(f"/v1/reports/cosd?from={since(30)}&format=csv"), samples),
        }
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CAREPATH_TEST_POSTGRES_URL"),
        help="PostgreSQL (postgresql+psycopg://...)",
    )
    parser.add_argument("--schema", default="carepath_reports")
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="measure the schema a previous run loaded")
    parser.add_argument(
        "--keep-summary",
        action="store_true",
        help="with --reuse: measure the reports over the summary as it is, without refreshing it "
        "from nothing again (the run that loaded the schema measured that)",
    )
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL")
    url = schema_url(args.database_url, args.schema)
    today = datetime.now(UTC).replace(microsecond=0)
    result: dict[str, Any] = {
        "benchmark": "reports",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": describe(),
    }
    if not args.reuse:
        fresh_schema(args.database_url, args.schema)
        began = time.perf_counter()
        load_demo(Settings(database_url=url), now=today)
        result["load"] = {"templates_seconds": round(time.perf_counter() - began, 1)}
        result["load"]["copy_seconds"] = round(bulk_copy(create_engine(url), args.instances, today), 1)
    engine = create_engine(url)
    with engine.connect() as connection:
        result["database"] = {
            name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar()
            for name in ("pathway_instances", "instance_events", "care_plan_items")
        }
    engine.dispose()
    if not (args.reuse and args.keep_summary):
        result["summary_refresh"] = refresh(url, today)
    result["reports"] = reports(url, today, args.samples)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
