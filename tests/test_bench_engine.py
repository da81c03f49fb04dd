"""bench/engine.py's baseline (SpiffWorkflow alone) can run every bundled diagram: its script engine
defines each CarePath helper the diagrams call, computing what CarePath's does. (The benchmark stopped
with a NameError once a bundled diagram called add_days, which the baseline did not define.)"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from engine.expressions.functions import ALLOWED_FUNCTIONS
from tests.bench_modules import load_bench

ROOT = Path(__file__).resolve().parent.parent
# Helpers plain Python has under the same name and meaning (the baseline's eval has builtins).
_BUILTINS = {
    "len",
    "min",
    "max",
    "sum",
    "any",
    "all",
    "abs",
    "round",
    "sorted",
    "int",
    "float",
    "str",
    "bool",
    "list",
    "dict",
    "set",
}


@pytest.fixture(scope="module")
def bench_engine() -> ModuleType:
    return load_bench("engine", "bench_engine")


def _called_helpers() -> set[str]:
    text = "\n".join(path.read_text() for path in (ROOT / "pathways").rglob("*.bpmn"))
    return {name for name in ALLOWED_FUNCTIONS if name not in _BUILTINS and re.search(rf"\b{name}\(", text)}


def test_the_baseline_defines_every_helper_the_bundled_diagrams_call(bench_engine: ModuleType) -> None:
    called = _called_helpers()
    assert {"add_days", "add_months", "today"} <= called  # the scan finds what the diagrams are known to call
    baseline = bench_engine.baseline_engine("2026-03-31T09:00:00+00:00", {}).environment.globals
    assert called <= set(baseline), f"the baseline lacks {sorted(called - set(baseline))}"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("add_days", ("2026-03-31", 10)),
        ("add_months", ("2026-01-31", 1)),
        ("days_between", ("2026-01-01", "2026-03-01")),
    ],
)
def test_the_baselines_helpers_compute_what_carepaths_do(
    bench_engine: ModuleType, name: str, args: tuple[object, ...]
) -> None:
    baseline = bench_engine.baseline_engine("2026-03-31T09:00:00+00:00", {}).environment.globals
    assert baseline[name](*args) == ALLOWED_FUNCTIONS[name].function(*args)
