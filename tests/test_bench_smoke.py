"""The benchmarks that need no PostgreSQL run through at their smallest and print their JSON.

Two of them had stopped with an error for a session without anyone noticing (bench/worklist.py started
instances without the start data their form requires; bench/api.py's view lacked ``next_due_at``,
which the journeys read). bench/engine.py takes minutes even at its smallest: its baseline is held to
the diagrams by tests/test_bench_engine.py; bench/scale.py and bench/reports.py by
tests/test_scale_queries.py and the reports' tests. Nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (
            ("bench/worklist.py", "--instances", "3", "--samples", "1"),
            {"summary", "restore", "ratio_summary_vs_restore"},
        ),
        (
            ("bench/rules.py", "--evaluations", "20", "--rounds", "1", "--block", "10"),
            {
                "durable_direct",
                "carepath_with_recording",
                "ratio_with_recording",
                "durable_direct_and_row",
                "ratio_with_recording_vs_direct_and_row",
                "command",
            },
        ),
        (
            (
                "bench/api.py",
                "--journeys",
                "1",
                "--gc-rounds",
                "1",
                "--starts",
                "2",
                "--race-instances",
                "1",
                "--clients",
                "2",
            ),
            {"sqlite", "command"},
        ),
        (("bench/state_dictionary.py", "--pathways", "general"), {"pathways", "dictionary", "command"}),
    ],
    ids=["worklist", "rules", "api", "state-dictionary"],
)
def test_a_benchmark_runs_through_at_its_smallest(args: tuple[str, ...], keys: set[str]) -> None:
    assert keys <= set(_run(*args))


def test_the_rules_benchmark_records_into_postgresql_and_counts_the_servers_cpu() -> None:
    """``bench/rules.py --database-url``: the recording goes to PostgreSQL, in a schema of its own that is
    dropped after, and the server's CPU for it is reported beside the client's."""
    import os

    from sqlalchemy import create_engine, text

    url = os.environ.get("CAREPATH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL not available: set CAREPATH_TEST_POSTGRES_URL (.ci/run does)")
    found = _run("bench/rules.py", "--evaluations", "20", "--rounds", "1", "--block", "10", "--database-url", url)
    assert found["recorded_into"] == "postgresql"
    assert isinstance(found["ratio_with_recording_and_database_server"], float)
    assert found["ratio_with_recording_and_database_server"] >= found["ratio_with_recording"]  # type: ignore[operator]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            left = connection.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench_rules_%'"))
            assert left.scalar() == 0
    finally:
        engine.dispose()
