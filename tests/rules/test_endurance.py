"""20,000 evaluations in a row: no crash, flat memory. (How fast is bench/rules.py's business: a time
limit here would only measure how busy the machine is.)"""

from __future__ import annotations

import pytest

from engine.rules import Assessment, LoadedRuleset, PatientContext, evaluate


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover


@pytest.mark.slow
def test_twenty_thousand_evaluations_flat_memory(bundled: LoadedRuleset) -> None:
    assessments = [
        Assessment(
            {"worry_fear_anxiety": i % 11, "fatigue": (i * 3) % 11, "pain": (i * 7) % 11, "fever": i % 2},
            PatientContext(age=18 + i % 60, treatment_phase="treatment", travel_minutes=float(i % 120)),
        )
        for i in range(100)
    ]
    for a in assessments * 10:  # warm-up: caches, interned strings, allocator pools
        evaluate(bundled.compiled, bundled.catalogue, a)
    before = _rss_kb()
    fired = 0
    for i in range(20_000):
        fired += len(evaluate(bundled.compiled, bundled.catalogue, assessments[i % 100]).firings)
    growth_mb = (_rss_kb() - before) / 1024
    assert fired > 20_000
    assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB"
