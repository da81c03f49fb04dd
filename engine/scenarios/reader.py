"""Reading scenario files (``pathways/tests/*.yaml``): bounded, checked, every problem located.

Scenario files are written by authors, so they are read as any author's YAML is
(:class:`engine.rules.yaml_source.BoundedLoader`: no aliases, a node and depth limit, UTF-8 only),
and every problem -- an unknown field with a "did you mean", a patient reference that is not
synthetic, a wait longer than :data:`MAX_WAIT_YEARS` years -- is reported with its file, line and
column, all of a file's problems at once. See pathways/README.md for the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from yaml.nodes import MappingNode, Node, ScalarNode

from engine.errors import InvalidInputError, Problem, RuleFileError
from engine.instances.view import PATIENT_REF_PATTERN
from engine.rules.model import Loc
from engine.rules.yaml_source import YamlReader, read_yaml_file
from engine.scenarios.model import (
    CarePlanExpectation,
    Complete,
    Expect,
    ReadyExpectation,
    Scenario,
    ScenarioStep,
    Send,
    Wait,
)

__all__ = [
    "DEFAULT_START",
    "MAX_FILE_BYTES",
    "MAX_SCENARIOS",
    "MAX_STEPS",
    "MAX_WAIT_YEARS",
    "SYNTHETIC_PREFIX",
    "load_scenarios",
    "scenario_files",
]

DEFAULT_START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)  # when a scenario names no start
SYNTHETIC_PREFIX = "SYN-"  # scenario patients are invented, and say so (as the demo patients do)
MAX_SCENARIOS = 200  # per file
MAX_STEPS = 1_000  # per scenario
MAX_WAIT_YEARS = 20  # one wait, and the start's distance from the default start
MAX_FILES = 500
MAX_FILE_BYTES = 2_000_000  # the largest bundled file is about 15 KB
DEFAULT_ACTOR = "clinician:scenario"

_DURATION = re.compile(
    r"^P(?!$)(?:(\d{1,5})Y)?(?:(\d{1,5})M)?(?:(\d{1,5})W)?(?:(\d{1,5})D)?"
    r"(?:T(?=\d)(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,7})S)?)?$"
)
_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
_DECISIONS = ("agreed", "declined")
_KINDS = ("referral", "intervention", "information")
_STATUSES = ("running", "completed", "error", "suspended", "cancelled")
_ACTIONS = ("complete", "send", "after", "until", "expect")


def scenario_files(paths: Iterable[Path | str]) -> list[Path]:
    """The ``*.yaml`` files of the folders given (searched recursively) and the files given."""
    found: list[Path] = []
    for path in map(Path, paths):
        found.extend(sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
    return found


def load_scenarios(paths: Iterable[Path | str], display_root: Path | None = None) -> list[Scenario]:
    """Read every scenario of the files (folders are searched for ``*.yaml``).

    ``display_root``: file names in problems and failures are shown relative to it.

    Raises:
        InvalidInputError: naming the file, line and column of every problem found (nothing runs).
    """
    files = scenario_files(paths)
    if len(files) > MAX_FILES:
        raise InvalidInputError(
            f"more than {MAX_FILES} scenario files",
            [Problem(f"more than {MAX_FILES} scenario files: run the folders one at a time")],
        )
    scenarios: list[Scenario] = []
    problems: list[Problem] = []
    for path in files:
        display = _display(path, display_root)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                problems.append(
                    Problem(f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB: split it", file=display)
                )
                continue
            text = read_yaml_file(path)
        except OSError as exc:
            problems.append(Problem(f"cannot read the file: {exc.strerror}", file=display))
            continue
        except RuleFileError as exc:  # unreadable, or not UTF-8 (with the line and column)
            problems.extend(Problem(p.message, file=display, line=p.line, column=p.column) for p in exc.problems)
            continue
        reader = YamlReader(display)
        scenarios.extend(_read_file(reader, text))
        problems.extend(reader.problems)
    if problems:
        raise InvalidInputError("the scenario files are not valid", problems)
    return scenarios


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve().parent).as_posix()
        except ValueError:
            pass
    return str(path)


def _read_file(reader: YamlReader, text: str) -> list[Scenario]:
    root = reader.compose(text)
    top = reader.mapping(root, "a scenario file", ("pathway", "scenarios")) if root is not None else None
    if top is None or "pathway" not in top or "scenarios" not in top:
        return []
    pathway = reader.text(top["pathway"][1], "pathway")
    nodes = reader.sequence(top["scenarios"][1], "scenarios") or []
    if len(nodes) > MAX_SCENARIOS:
        reader.problem(nodes[MAX_SCENARIOS], f"more than {MAX_SCENARIOS} scenarios in one file: split it")
        return []
    if not nodes and top["scenarios"][1].tag.endswith(":seq"):
        reader.problem(top["scenarios"][1], "the file has no scenarios")
    found = [_read_scenario(reader, node, pathway or "") for node in nodes]
    names: dict[str, Loc] = {}
    for scenario in found:
        if scenario is not None and scenario.name in names:
            reader.problem(
                scenario.loc, f"scenario '{scenario.name}' is given twice (first at line {names[scenario.name].line})"
            )
        elif scenario is not None:
            names[scenario.name] = scenario.loc
    return [s for s in found if s is not None] if pathway else []


def _read_scenario(reader: YamlReader, node: Node, pathway: str) -> Scenario | None:
    e = reader.mapping(node, "a scenario", ("name", "patient", "steps"), ("start", "data"))
    if e is None or not {"name", "patient", "steps"} <= set(e):
        return None
    before = len(reader.problems)
    name = reader.text(e["name"][1], "the scenario's name") or "?"
    reader.element = name
    try:
        patient = _patient(reader, e["patient"][1])
        start = _moment(reader, e["start"][1], "start") if "start" in e else DEFAULT_START
        if start is not None and abs(start - DEFAULT_START) > timedelta(days=366 * MAX_WAIT_YEARS):
            reader.problem(e["start"][1], f"start is more than {MAX_WAIT_YEARS} years from {DEFAULT_START.date()}")
        data = _data(reader, e["data"][1], "data") if "data" in e else {}
        step_nodes = reader.sequence(e["steps"][1], "steps") or []
        if len(step_nodes) > MAX_STEPS:
            reader.problem(step_nodes[MAX_STEPS], f"more than {MAX_STEPS} steps in one scenario: split it")
            return None
        steps = [_read_step(reader, step) for step in step_nodes]
    finally:
        reader.element = None
    if len(reader.problems) > before or patient is None or start is None or data is None:
        return None
    return Scenario(name, reader.loc(node), pathway, patient, start, data, tuple(s for s in steps if s is not None))


def _patient(reader: YamlReader, node: Node) -> str | None:
    ref = reader.text(node, "patient")
    if ref is None:
        return None
    if not _PATIENT_REF.match(ref) or not ref.startswith(SYNTHETIC_PREFIX):
        reader.problem(
            node,
            f"patient must be a synthetic reference starting with {SYNTHETIC_PREFIX} "
            f"(letters, digits and . _ : / -, at most 64), never a real patient's",
        )
        return None
    return ref


def _read_step(reader: YamlReader, node: Node) -> ScenarioStep | None:
    if not isinstance(node, MappingNode):
        reader.problem(node, f"expected a step as a mapping ({', '.join(_ACTIONS)}), got {reader.kind(node)}")
        return None
    keys = [reader.key(k) for k, _ in node.value]
    actions = [k for k in keys if k in _ACTIONS]
    if len(actions) != 1:
        reader.problem(
            node,
            f"a step has exactly one of {', '.join(_ACTIONS)}" + (f" (found {', '.join(actions)})" if actions else ""),
        )
        return None
    action = actions[0]
    if action == "complete":
        return _complete(reader, node)
    if action == "send":
        e = reader.mapping(node, "a 'send' step", ("send",), ("payload",))
        if e is None:
            return None
        message = reader.text(e["send"][1], "the message's name")
        payload = _data(reader, e["payload"][1], "payload") if "payload" in e else None
        return (
            Send(reader.loc(node), message, payload)
            if message and ("payload" not in e or payload is not None)
            else None
        )
    if action in ("after", "until"):
        e = reader.mapping(node, f"an '{action}' step", (action,))
        if e is None:
            return None
        value = e[action][1]
        if action == "after":
            delta = _duration(reader, value)
            return Wait(reader.loc(node), f"after {value.value}", delta=delta) if delta is not None else None
        until = _moment(reader, value, "until")
        return Wait(reader.loc(node), f"until {value.value}", until=until) if until is not None else None
    return _expect(reader, node)


def _complete(reader: YamlReader, node: Node) -> Complete | None:
    e = reader.mapping(node, "a 'complete' step", ("complete",), ("data", "as", "process", "decisions"))
    if e is None:
        return None
    task = reader.text(e["complete"][1], "the task's element id")
    data = _data(reader, e["data"][1], "data") if "data" in e else {}
    actor = reader.text(e["as"][1], "as (who completes the task)") if "as" in e else DEFAULT_ACTOR
    process = reader.text(e["process"][1], "process") if "process" in e else None
    decisions: dict[str, str] | None = None
    if "decisions" in e:
        decisions = {}
        for key, _k, value in reader.free_mapping(e["decisions"][1], "decisions") or []:
            decision = reader.choice(value, "decision", _DECISIONS)
            if decision is not None:
                decisions[key] = decision
        if data is not None and "decisions" in data:
            reader.problem(e["decisions"][0], "give the decisions either in 'decisions' or in the data, not both")
    if task is None or data is None or actor is None or ("process" in e and process is None):
        return None
    return Complete(reader.loc(node), task, data, actor, process, decisions)


def _expect(reader: YamlReader, node: Node) -> Expect | None:
    outer = reader.mapping(node, "an 'expect' step", ("expect",))
    if outer is None:
        return None
    body = outer["expect"][1]
    e = reader.mapping(
        body,
        "'expect'",
        optional=("ready", "ready_only", "not_ready", "timers", "care_plan", "not_in_care_plan", "status", "completed"),
    )
    if e is None:
        return None
    if not e:
        reader.problem(
            body,
            "'expect' checks nothing: give ready, ready_only, not_ready, timers, care_plan, "
            "not_in_care_plan, status or completed",
        )
        return None
    before = len(reader.problems)
    ready = tuple(r for r in (_ready(reader, n) for n in _list(reader, e, "ready")) if r is not None)
    ready_only = (
        tuple(t for t in (reader.text(n, "a task's element id") for n in _list(reader, e, "ready_only")) if t)
        if "ready_only" in e
        else None
    )
    not_ready = tuple(t for t in (reader.text(n, "a task's element id") for n in _list(reader, e, "not_ready")) if t)
    timers: dict[str, tuple[str, Loc]] = {}
    if "timers" in e:
        for element, _k, value in reader.free_mapping(e["timers"][1], "timers") or []:
            when = _due(reader, value)
            if when is not None:
                timers[element] = (when, reader.loc(value))
    care_plan = tuple(c for c in (_care_plan_item(reader, n) for n in _list(reader, e, "care_plan")) if c)
    not_in_care_plan = tuple(
        t for t in (reader.text(n, "an item code") for n in _list(reader, e, "not_in_care_plan")) if t
    )
    status = reader.choice(e["status"][1], "status", _STATUSES) if "status" in e else None
    if "completed" in e:
        completed = reader.boolean(e["completed"][1], "completed")
        if completed is not None:
            implied = "completed" if completed else "running"
            if status is not None and status != implied:
                reader.problem(
                    e["completed"][1], f"'completed: {str(completed).lower()}' contradicts 'status: {status}'"
                )
            status = status or implied
    if len(reader.problems) > before:
        return None
    return Expect(reader.loc(node), ready, ready_only, not_ready, timers, care_plan, not_in_care_plan, status)


def _list(reader: YamlReader, entries: dict[str, tuple[Node, Node]], key: str) -> list[Node]:
    if key not in entries:
        return []
    return reader.sequence(entries[key][1], key) or []


def _ready(reader: YamlReader, node: Node) -> ReadyExpectation | None:
    if isinstance(node, ScalarNode):
        task = reader.text(node, "a task's element id")
        return ReadyExpectation(task) if task else None
    e = reader.mapping(node, "a ready task", ("task",), ("process", "lane"))
    if e is None or "task" not in e:
        return None
    task = reader.text(e["task"][1], "task")
    process = reader.text(e["process"][1], "process") if "process" in e else None
    lane = reader.text(e["lane"][1], "lane") if "lane" in e else None
    return ReadyExpectation(task, process, lane) if task else None


def _care_plan_item(reader: YamlReader, node: Node) -> CarePlanExpectation | None:
    e = reader.mapping(node, "a care plan item", ("code",), ("kind", "urgency", "status"))
    if e is None or "code" not in e:
        return None
    code = reader.text(e["code"][1], "code")
    kind = reader.choice(e["kind"][1], "kind", _KINDS) if "kind" in e else None
    urgency = reader.text(e["urgency"][1], "urgency") if "urgency" in e else None
    status = reader.text(e["status"][1], "status") if "status" in e else None
    return CarePlanExpectation(code, kind, urgency, status) if code else None


def _duration(reader: YamlReader, node: Node) -> relativedelta | None:
    text = reader.text(node, "a duration")
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is None:
        reader.problem(node, f"'{text[:40]}' is not an ISO 8601 duration such as P3M, P28D or PT1H")
        return None
    years, months, weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    delta = relativedelta(
        years=years, months=months, weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
    )
    if (DEFAULT_START + delta) - DEFAULT_START > timedelta(days=366 * MAX_WAIT_YEARS):
        reader.problem(node, f"'{text}' is longer than {MAX_WAIT_YEARS} years")
        return None
    return delta


def _moment(reader: YamlReader, node: Node, what: str) -> datetime | None:
    """A date (09:00 UTC that day, the time clinics open) or a date-time with its zone."""
    value = reader.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError:
            value = None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            reader.problem(node, f"{what} needs a time zone (2026-01-15T09:00:00Z), or a date alone")
            return None
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(9, 0), tzinfo=UTC)
    reader.problem(
        node, f"expected {what} as a date (2026-04-13) or a date-time with its zone, got {reader.kind(node)}"
    )
    return None


def _due(reader: YamlReader, node: Node) -> str | None:
    """A timer's expected due date (YYYY-MM-DD) or date-time (ISO, UTC), as text to compare."""
    value = reader.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, datetime) or (isinstance(value, str) and "T" in value):
        moment = _moment(reader, node, "a due time")
        return moment.isoformat() if moment else None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    reader.problem(node, f"expected a due date (2026-04-12) or date-time, got {reader.kind(node)}")
    return None


def _data(reader: YamlReader, node: Node, what: str) -> dict[str, Any] | None:
    """A mapping of data as JSON would carry it: dates become YYYY-MM-DD text."""
    if not isinstance(node, MappingNode):
        reader.problem(node, f"expected {what} as a mapping, got {reader.kind(node)}")
        return None
    for key_node, _value in node.value:
        if not isinstance(key_node, ScalarNode):
            reader.problem(key_node, f"expected a field name in {what}, got {reader.kind(key_node)}")
            return None
    value = _as_json(reader.value(node))
    if not isinstance(value, dict):
        return None
    if not _finite(value):
        reader.problem(node, f"{what} holds .nan or .inf, which JSON cannot carry")
        return None
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
