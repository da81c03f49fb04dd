"""Benchmark: one page of the work list (ready tasks across instances), from the stored summaries
each instance row keeps, against restoring every listed instance (what the list did before
migration 0004, and still does for rows saved before it: the baseline, measured in the same run).

SQLite in a temporary file, ``--instances`` running instances of a bundled pathway just started
(``--at start``) or at their needs checklist (``--at checklist``), pages of ``--page`` instances. A
page is listed as ``GET /v1/tasks`` lists it, the checklists' safety notices filled with each
patient's line: from what each row keeps (migration 0030), and, as the third side, by reading each
instance whose checklist is listed (what the list did before it, and does for rows saved before it).
*Cold*: the process's spec and workflow caches emptied before each sample; *warm*: kept. Prints JSON
with the command that reproduces it.

Run from the repository root: ``.venv/bin/python bench/worklist.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the bundled pathways' sites, as the journeys start them

from pathways_bundled.journey import Journey, contact  # noqa: E402
from pathways_bundled.journeys import DIAGNOSED, SITES, tell_practice  # noqa: E402
from sqlalchemy import update  # noqa: E402

from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.db.models import PathwayInstance  # noqa: E402
from engine.db.session import unit_of_work  # noqa: E402
from engine.documents.build import fill_listed_forms  # noqa: E402
from engine.instances.queries import InstanceFilter, InstanceQueries  # noqa: E402
from engine.spiff import workflows  # noqa: E402


def measure(
    app: CarePath, queries: InstanceQueries, pathway_id: str, page: int, samples: int, cold: bool
) -> dict[str, Any]:
    times, listed = [], 0
    for _ in range(samples):
        if cold:
            workflows.clear_spec_cache()
            app.instances.steps.cache.clear()
        started = time.perf_counter()
        found = queries.ready_tasks(InstanceFilter(pathway_id=pathway_id), limit=page)
        listed = len(fill_listed_forms(app, found.items, found.notice_contacts, "en"))
        times.append(time.perf_counter() - started)
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 2),
        "samples": samples,
        "tasks_listed": listed,
    }


def start_data(pathway: str) -> dict[str, Any]:
    """What the bundled-pathway journeys start ``pathway`` with (its start form requires it)."""
    site = next((site for site in SITES.values() if site.pathway == pathway), None)
    if site is None:
        raise SystemExit(f"no bundled journey starts {pathway!r}: one of {sorted(s.pathway for s in SITES.values())}")
    return {"diagnosis": site.diagnosis, "diagnosis_date": DIAGNOSED, "age": site.age, "treatment_intent": "curative"}


def to_checklist(app: CarePath, clock: ManualClock, pathway: str, patients: list[str]) -> None:
    """Start an instance per patient and take it, as the bundled journeys do, to its needs checklist."""
    for patient in patients:
        journey = Journey(app, clock, pathway, patient, start_data(pathway))
        journey.do("assign_contact", contact())
        tell_practice(journey)
        journey.do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
        journey.do("offer_hna", {"hna_accepted": True})
        if not any(element.startswith("complete_checklist") for element in journey.ready):
            raise SystemExit(f"{pathway}: no checklist after the offer; ready: {journey.ready}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pathway", default="breast_cancer")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--at", choices=("start", "checklist"), default="start")
    args = parser.parse_args(argv)
    command = ("python bench/worklist.py " + shlex.join(sys.argv[1:] if argv is None else argv)).rstrip()
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(database_url=f"sqlite:///{Path(workdir) / 'bench.sqlite3'}", pathways_dir=ROOT / "pathways")
        clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
        app = CarePath(settings, clock, upgrade=True)
        try:
            app.catalog.sync_library()
            patients = [f"BENCH-{n}" for n in range(args.instances)]
            if args.at == "checklist":
                to_checklist(app, clock, args.pathway, patients)
            else:
                app.instances.start_many(args.pathway, patients, "system:bench", start_data(args.pathway))
            queries = InstanceQueries(app.sessions, app.instances)
            found = {
                "summary": {
                    kind: measure(app, queries, args.pathway, args.page, args.samples, kind == "cold")
                    for kind in ("cold", "warm")
                }
            }
            with unit_of_work(app.sessions) as session:  # as rows saved before migration 0030
                session.execute(update(PathwayInstance).values(notice_contacts=None))
            found["notices_read"] = {
                kind: measure(app, queries, args.pathway, args.page, args.samples, kind == "cold")
                for kind in ("cold", "warm")
            }
            with unit_of_work(app.sessions) as session:  # as rows saved before migration 0004
                session.execute(update(PathwayInstance).values(ready_tasks=None))
            found["restore"] = {
                kind: measure(app, queries, args.pathway, args.page, args.samples, kind == "cold")
                for kind in ("cold", "warm")
            }
        finally:
            app.close()
    result = {
        "command": command,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "pathway": args.pathway,
        "instances": args.instances,
        "page": args.page,
        "at": args.at,
        **found,
        "ratio_summary_vs_restore": {
            kind: round(found["summary"][kind]["p50_ms"] / found["restore"][kind]["p50_ms"], 3)
            for kind in ("cold", "warm")
        },
        "ratio_summary_vs_notices_read": {
            kind: round(found["summary"][kind]["p50_ms"] / found["notices_read"][kind]["p50_ms"], 3)
            for kind in ("cold", "warm")
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
