"""Hostile diagrams (issue 12, point 7): every file in ``tests/diagrams/hostile`` is either refused --
by ``carepath validate`` and by a deploy alike, with the same located problems -- or harmless: it
passes the gate, deploys, and starting it ends its step with an incident naming the element and why.

Each file is tried in a child process that runs under a memory limit (``RLIMIT_AS``) and stops
the moment one file overruns a generous time bound; the child also reports how much each file grew
its peak memory. The bounds are limits on harm, not measures of speed: today's hostile files took
54 s, looped forever or built a gigabyte.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "diagrams" / "hostile"
SECONDS_PER_FILE = 20.0  # the child gives up on a file after this long: an overrun fails the test
MEMORY_GROWTH_MB = 256  # peak memory one file may add (a 1 GB format width or entity expansion fails)
ADDRESS_SPACE_MB = 2048  # the child's hard limit, on top of what it uses once started

# file -> (code, line, element) of the first refusal; the same at validate and at deploy.
REFUSED: dict[str, tuple[str, int, str | None]] = {
    "call_itself.bpmn": ("call-cycle", 7, "Activity_call"),
    "deeply_nested.bpmn": ("xml-syntax", 8, None),
    "dtd_billion_laughs.bpmn": ("dtd", 2, None),
    "dtd_external_entity.bpmn": ("dtd", 2, None),
    "encoding_bad_bytes.bpmn": ("encoding", 4, None),
    "encoding_latin1.bpmn": ("encoding", 1, None),
    "encoding_utf16.bpmn": ("encoding", 1, None),
    "id_too_long.bpmn": ("too-long", 7, "Activity_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
    "process_name_too_long.bpmn": ("too-long", 4, "hostile_long_name"),
    "script_format_width.bpmn": ("unsafe-expression", 9, "Activity_script"),
    "timer_cycle_endless.bpmn": ("timer-bounds", 9, "Event_remind"),
    "timer_cycle_seconds.bpmn": ("timer-bounds", 9, "Event_remind"),
    "timer_cycle_zero.bpmn": ("timer-bounds", 9, "Event_remind"),
    "timer_date_overflow.bpmn": ("timer-bounds", 8, "Event_wait"),
    "timer_duration_100000_years.bpmn": ("timer-bounds", 8, "Event_wait"),
}
# file -> (element, words of the incident): what the gate cannot see, the running engine stops.
HARMLESS: dict[str, tuple[str, str]] = {
    "automatic_loop.bpmn": ("Gateway_again", "the step ran 500 tasks without waiting"),
    "condition_shared_references.bpmn": ("Gateway_same", "built more than 1000000 items"),
    "script_int_digits.bpmn": ("Activity_script", "int: the text has more than 3000 digits"),
    "script_shared_references.bpmn": ("Activity_script", "built more than 1000000 items"),
    "script_text_of_shared_list.bpmn": ("Activity_script", "built more than 1000000 items"),
    "timer_cycle_computed_zero.bpmn": ("Event_remind", "timer cycle refused: it repeats without end"),
}

CHILD = r"""
import json, os, resource, sys, tempfile, threading, time
from datetime import UTC, datetime
from pathlib import Path

folder, limit_mb, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
from engine import CarePath, ManualClock, Settings
from engine.errors import DiagramError
from engine.pathways.validation import validate_paths

with open("/proc/self/status") as status:
    used_kb = int(status.read().split("VmSize:")[1].split()[0])
limit = (used_kb // 1024 + limit_mb) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
work = Path(tempfile.mkdtemp())
library = work / "library"
library.mkdir()
app = CarePath(Settings(database_url=f"sqlite:///{work}/db.sqlite3", pathways_dir=library, four_eyes=False),
               ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)), upgrade=True)
forms = {"note.json": (folder / "note.json").read_bytes()}


def problems(found):
    return [{"code": p.code, "line": p.line, "element": p.element, "message": p.message,
             "severity": p.severity, "file": p.file} for p in found
            if p.code != "start-schema-missing"]  # no diagram here has a start schema: not what is tested


def attempt(path, result):
    result["validate"] = problems(validate_paths([path]))
    try:
        deployed = app.catalog.deploy_upload({path.name: path.read_bytes(), **forms}, "author")
    except DiagramError as exc:
        result["deploy"] = problems(exc.problems)
        return
    result["deploy"] = None
    view = app.instances.start(deployed[0].pathway_id, "MRN-HOSTILE", "system:test")
    result["start"] = {"status": view.status, "incident": view.incident}


results = {}
for path in sorted(folder.glob("*.bpmn")):
    result = results[path.name] = {}
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()

    def run(path=path, result=result):
        try:
            attempt(path, result)
        except BaseException as exc:  # reported, and the test fails on it
            result["raised"] = f"{type(exc).__name__}: {exc}"[:500]

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    result["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    result["seconds"] = round(time.monotonic() - started, 2)  # for whoever reads a failure
    if worker.is_alive():
        result["overran"] = True
        break  # the thread cannot be stopped: report what there is, and end the child
print(json.dumps(results))
sys.stdout.flush()
os._exit(0)
"""


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    files = sorted(p.name for p in HOSTILE.glob("*.bpmn"))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(HOSTILE), str(ADDRESS_SPACE_MB), str(SECONDS_PER_FILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SECONDS_PER_FILE * len(files) + 120,
        env={"PATH": "/usr/bin:/bin", "TZ": "UTC"},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    found: dict[str, Any] = json.loads(child.stdout)
    return found


def test_every_hostile_file_is_in_a_table() -> None:
    assert sorted(p.name for p in HOSTILE.glob("*.bpmn")) == sorted([*REFUSED, *HARMLESS])


def _within_bounds(result: dict[str, Any]) -> None:
    assert "overran" not in result, f"still running after {SECONDS_PER_FILE} s"
    assert "raised" not in result, result.get("raised")
    assert result["grew_mb"] < MEMORY_GROWTH_MB


def _located(problems: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(p["code"], p["line"], p["element"], p["message"]) for p in problems if p["severity"] == "error"]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_by_validate_and_deploy_alike(outcomes: dict[str, Any], name: str) -> None:
    result = outcomes[name]
    _within_bounds(result)
    validated, deployed = _located(result["validate"]), result["deploy"]
    assert deployed is not None, "deployed, though validate refused it"
    assert validated == _located(deployed)
    assert validated[0][:3] == REFUSED[name]
    assert all(p["file"] == str(HOSTILE / name) and p["line"] for p in result["validate"])
    assert all(p["file"] == name for p in deployed)  # the upload's own name, never a server path


@pytest.mark.parametrize("name", sorted(HARMLESS))
def test_harmless_once_running(outcomes: dict[str, Any], name: str) -> None:
    result = outcomes[name]
    _within_bounds(result)
    assert _located(result["validate"]) == [] and result["deploy"] is None
    element, words = HARMLESS[name]
    assert result["start"]["status"] == "error"
    incident = result["start"]["incident"]
    assert incident["element"] == element and words in incident["message"], incident


def _chain(tasks: int) -> bytes:
    """A pathway of ``tasks`` tasks one after the other (600 make about 110 KB, under the 1 MiB limit)."""
    nodes = ["start", *(f"t{n}" for n in range(tasks)), "end"]
    body = ['<bpmn:startEvent id="start" />']
    body += [f'<bpmn:scriptTask id="{node}"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>' for node in nodes[1:-1]]
    body += ['<bpmn:endEvent id="end" />']
    body += [
        f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}" />'
        for n, (a, b) in enumerate(itertools.pairwise(nodes))
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/'
        '20100524/MODEL" id="d" targetNamespace="x">\n<bpmn:process id="chain" isExecutable="true">\n'
        + "\n".join(body)
        + "\n</bpmn:process>\n</bpmn:definitions>\n"
    ).encode()


def test_a_long_chain_of_tasks_is_a_located_problem_not_a_recursion_error() -> None:
    # SpiffWorkflow's parser follows each flow by calling itself: 600 tasks in a row gave the author
    # "t485: RecursionError('maximum recursion depth exceeded while calling a Python object')".
    from engine.pathways.validation import errors_in, validate_upload

    content = _chain(600)
    [problem] = errors_in(validate_upload({"chain.bpmn": content}))
    assert problem.code == "sequence-too-long", problem
    assert "too many elements in sequence" in problem.message and "RecursionError" not in problem.message
    lines = content.decode().splitlines()
    assert problem.element and f'id="{problem.element}"' in lines[(problem.line or 0) - 1]
    assert errors_in(validate_upload({"chain.bpmn": _chain(100)})) == []


def test_the_parsers_repr_of_an_exception_reads_as_a_sentence() -> None:
    from engine.pathways.validation import _plain

    assert _plain("KeyError('type').") == "SpiffWorkflow's parser failed at this element (KeyError: type)"
    assert _plain("No start event found") == "No start event found"
