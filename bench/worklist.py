"""Benchmark: one page of the work list (ready tasks across instances), from the stored summaries
each instance row keeps, against restoring every listed instance (what the list did before
migration 0004, and still does for rows saved before it: the baseline, measured in the same run).

SQLite in a temporary file, ``--instances`` running instances of a bundled pathway just started,
pages of ``--page`` instances. *Cold*: the process's spec and workflow caches emptied before each
sample; *warm*: kept. Prints JSON with the command that reproduces it.

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

from pathways_bundled.journeys import DIAGNOSED, SITES  # noqa: E402
from sqlalchemy import update  # noqa: E402

from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.db.models import PathwayInstance  # noqa: E402
from engine.db.session import unit_of_work  # noqa: E402
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
        listed = len(queries.ready_tasks(InstanceFilter(pathway_id=pathway_id), limit=page).items)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pathway", default="breast_cancer")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args(argv)
    command = ("python bench/worklist.py " + shlex.join(sys.argv[1:] if argv is None else argv)).rstrip()
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(database_url=f"sqlite:///{Path(workdir) / 'bench.sqlite3'}", pathways_dir=ROOT / "pathways")
        app = CarePath(settings, ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)), upgrade=True)
        try:
            app.catalog.sync_library()
            app.instances.start_many(
                args.pathway, [f"BENCH-{n}" for n in range(args.instances)], "system:bench", start_data(args.pathway)
            )
            queries = InstanceQueries(app.sessions, app.instances)
            found = {
                "summary": {
                    kind: measure(app, queries, args.pathway, args.page, args.samples, kind == "cold")
                    for kind in ("cold", "warm")
                }
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
        **found,
        "ratio_summary_vs_restore": {
            kind: round(found["summary"][kind]["p50_ms"] / found["restore"][kind]["p50_ms"], 3)
            for kind in ("cold", "warm")
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
