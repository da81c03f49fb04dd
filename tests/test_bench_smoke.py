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
            {"durable_direct", "carepath_with_recording", "ratio_with_recording", "command"},
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
    ],
    ids=["worklist", "rules", "api"],
)
def test_a_benchmark_runs_through_at_its_smallest(args: tuple[str, ...], keys: set[str]) -> None:
    assert keys <= set(_run(*args))
