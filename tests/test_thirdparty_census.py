"""The third-party census (bench/thirdparty.py, issue 12's figures): what it counts, and that it
reports what would be a bug in the gate -- a validate/deploy disagreement, a refusal without
``file:line: element``, an incident for text the gate reads (a gate miss), a crash, a hang."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.bench_modules import load_bench

ROOT = Path(__file__).resolve().parent.parent
DIAGRAMS = ROOT / "tests" / "diagrams"


@pytest.fixture(scope="module")
def census() -> ModuleType:
    return load_bench("thirdparty", "thirdparty_census")


def _problem(code: str, text: str, *, line: int | None = 3, element: str | None = "Task_1") -> dict[str, Any]:
    return {
        "code": code,
        "file": "a.bpmn",
        "line": line,
        "element": element,
        "severity": "error",
        "message": text,
        "text": f"a.bpmn:{line}: {element}: {text}",
    }


def test_figures_count_outcomes_and_report_what_is_a_bug_in_the_gate(census: ModuleType) -> None:
    java = _problem("service-no-operator", "service task runs a Java class (camunda:class), and ...")
    records = {
        "repo_a/runs.bpmn": {
            "validate": {"errors": [], "warnings": 0},
            "deploy": {"errors": [], "pathways": ["p"]},
            "starts": [{"pathway": "p", "status": "running", "incident": None}],
        },
        "repo_a/java.bpmn": {"validate": {"errors": [java], "warnings": 0}, "deploy": {"errors": [java]}},
        "repo_b/disagrees.bpmn": {
            "validate": {"errors": [], "warnings": 0},
            "deploy": {"errors": [_problem("unsafe-expression", "import is not allowed")]},
        },
        "repo_b/unlocated.bpmn": {
            "validate": {"errors": [_problem("compile", "bad", line=None)], "warnings": 0},
            "deploy": {"errors": [_problem("compile", "bad", line=None)]},
        },
        "repo_b/crash.bpmn": {"raised": "TypeError: Object of type DataObject is not JSON serializable"},
        "repo_b/hang.bpmn": {"hang": 20.0},
        "repo_b/incident.bpmn": {
            "validate": {"errors": [], "warnings": 0},
            "deploy": {"errors": [], "pathways": ["q"]},
            "starts": [
                {
                    "pathway": "q",
                    "status": "error",
                    "incident": {"element": "g", "message": "m", "kind": "ExpressionError"},
                }
            ],
        },
        # The gate reads the text the engine refused when it ran: the gate missed it.
        "repo_b/missed.bpmn": {
            "validate": {"errors": [], "warnings": 0},
            "deploy": {"errors": [], "pathways": ["r"]},
            "starts": [
                {
                    "pathway": "r",
                    "status": "error",
                    "incident": {
                        "element": "e",
                        "message": "calling 'f' is not allowed",
                        "kind": "UnsafeExpressionError",
                    },
                }
            ],
        },
    }
    figures = census.figures(records, Path("/corpus"))
    assert figures["files"] == 8
    assert figures["outcomes"] == {"refused": 3, "incident": 2, "runs": 1, "crash": 1, "hang": 1}
    assert figures["refusal_categories"] == {
        "service-no-operator (Java class)": 1,
        "unsafe-expression": 1,
        "compile": 1,
    }
    assert figures["incident_categories"] == {"ExpressionError": 1, "UnsafeExpressionError": 1}
    assert [(m["file"], m["element"]) for m in figures["gate_misses"]] == [("repo_b/missed.bpmn", "e")]
    assert figures["per_source"]["repo_a"] == {"files": 2, "runs": 1, "refused": 1, "validates": 1, "deploys": 1}
    assert [d["file"] for d in figures["disagreements"]] == ["repo_b/disagrees.bpmn"]
    assert {u["file"] for u in figures["unlocated_refusals"]} == {"repo_b/unlocated.bpmn"}
    assert [c["file"] for c in figures["crashes"]] == ["repo_b/crash.bpmn"]
    assert figures["hangs"] == ["repo_b/hang.bpmn"]


def test_a_folder_is_put_through_validate_deploy_and_a_first_step(census: ModuleType, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "ours").mkdir(parents=True)
    shutil.copy(DIAGRAMS / "ok" / "bpmnio.bpmn", corpus / "ours")
    shutil.copy(DIAGRAMS / "broken" / "condition_imports_os.bpmn", corpus / "ours")
    shutil.copytree(DIAGRAMS / "calls_checked_sub", corpus / "calls")
    figures = census.figures(census.census(corpus, seconds=120.0, memory_mb=2048), corpus)
    assert figures["files"] == 6
    # bpmnio.bpmn runs; the unsafe condition, the pathway calling an unsafe score, the triage calling
    # it, the score itself and the uncalled unsafe diagram are refused, validate and deploy agreeing.
    assert figures["outcomes"] == {"refused": 5, "runs": 1}
    assert figures["refusal_categories"] == {"unsafe-expression": 5}
    assert figures["disagreements"] == figures["unlocated_refusals"] == figures["gate_misses"] == []
    assert figures["crashes"] == figures["hangs"] == []
