"""Running scenarios on a throwaway database with a manual clock, and reporting failures and coverage.

The pathways folder is deployed once into a temporary SQLite database (checked as a deploy checks
it); each scenario runs on its own copy of it, with its own :class:`~engine.clock.ManualClock`
starting at the scenario's start, so scenarios never see each other's patients or timers. Nothing
is written anywhere else, and the temporary folder is removed afterwards.

Waits move the clock as a timer worker polling every second would see it: to one second past each
timer due by the end of the wait (a timer due at the very end fires too), firing them in turn
(:func:`engine.instances.timers.fire_due_timers`), then to the end of the wait.

A scenario stops at its first failing step; the failure names the step's file and line, and for
an expectation shows what was expected against what is.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from engine.app import CarePath
from engine.clock import ManualClock
from engine.errors import CarePathError, InvalidInputError, Problem
from engine.instances.progress import instance_progress
from engine.instances.timers import fire_due_timers
from engine.instances.view import InstanceView, Status
from engine.pathways.sources import PathwayLibrary
from engine.rules import RuleSetRegistry
from engine.rules.model import Loc
from engine.rules.yaml_source import did_you_mean
from engine.scenarios.coverage import DiagramFlows, Flow, diagram_flows
from engine.scenarios.model import Complete, Expect, Scenario, ScenarioStep, Send, Wait
from engine.scenarios.reader import DEFAULT_START
from engine.settings import Settings
from engine.spiff.coverage import TakenPaths

__all__ = ["MAX_SPAN", "MAX_TIMER_ROUNDS", "ScenarioReport", "ScenarioResult", "StepFailure", "run_scenarios"]

MAX_TIMER_ROUNDS = 1_000  # timers one wait may fire, one after the other
MAX_SPAN = timedelta(days=366 * 100)  # how far a scenario's clock may go from its start
START_ACTOR = "system:scenario"
MESSAGE_ACTOR = "system:scenario"
_RUNNING = (Status.RUNNING, Status.COMPLETED)


@dataclass(frozen=True)
class StepFailure:
    loc: Loc
    step: str  # what the step was ("complete assign_contact", "expect", "after P3M")
    lines: tuple[str, ...]  # the diff, or what went wrong

    def text(self, scenario: str) -> str:
        return "\n".join([f"FAIL {self.loc}: {scenario}: {self.step}", *(f"    {line}" for line in self.lines)])


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    failure: StepFailure | None

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class ScenarioReport:
    results: list[ScenarioResult] = field(default_factory=list)
    flows: DiagramFlows = field(default_factory=DiagramFlows)
    taken: TakenPaths = field(default_factory=TakenPaths)

    @property
    def failures(self) -> list[ScenarioResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failures

    def untaken(self) -> dict[str, list[Flow]]:
        return self.flows.untaken(self.taken)

    def text(self) -> str:
        lines = [r.failure.text(r.scenario.name) for r in self.failures if r.failure is not None]
        untaken = self.untaken()
        if untaken:
            lines.append("Sequence flows no scenario took:")
            for process, flows in sorted(untaken.items()):
                lines.append(f"  {process} ({flows[0].file}): {len(flows)} of {len(self.flows.flows[process])}")
                lines += [f"    {flow.text()}" for flow in flows]
        total = self.flows.count()
        missing = sum(len(flows) for flows in untaken.values())
        if total:
            lines.append(
                f"Coverage: {total - missing} of {total} sequence flows taken "
                f"({100 * (total - missing) / total:.1f}%) in {len(self.flows.flows)} process(es)"
            )
        passed = len(self.results) - len(self.failures)
        lines.append(f"{len(self.results)} scenario(s): {passed} passed, {len(self.failures)} failed")
        return "\n".join(lines)


class _Failed(Exception):
    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines


def run_scenarios(scenarios: Iterable[Scenario], pathways_dir: Path, rules_dir: Path) -> ScenarioReport:
    """Run each scenario on its own copy of a database with ``pathways_dir`` deployed.

    Raises:
        DiagramError: the pathways folder does not validate (nothing runs).
        InvalidInputError: a scenario names a pathway the folder does not define (located; nothing runs).
    """
    scenarios = list(scenarios)
    report = ScenarioReport()
    library = PathwayLibrary(pathways_dir)
    known = library.pathway_ids()
    unknown = [
        Problem(
            f"no pathway '{s.pathway}' in {pathways_dir}{did_you_mean(s.pathway, known)}",
            file=s.loc.file,
            line=s.loc.line,
            column=s.loc.column,
            element=s.name,
        )
        for s in scenarios
        if s.pathway not in known
    ]
    if unknown:
        raise InvalidInputError("the scenarios name pathways the folder does not define", unknown)
    report.flows = diagram_flows(library, sorted({s.pathway for s in scenarios}))
    rules = RuleSetRegistry(rules_dir)
    with tempfile.TemporaryDirectory(prefix="carepath-scenarios-") as folder:
        template = Path(folder) / "template.sqlite3"
        _deploy(template, pathways_dir, rules_dir, rules)
        for index, scenario in enumerate(scenarios):
            database = Path(folder) / f"scenario{index}.sqlite3"
            shutil.copyfile(template, database)
            settings = Settings(
                database_url=f"sqlite:///{database}", pathways_dir=pathways_dir, rules_dir=rules_dir, four_eyes=False
            )
            app = CarePath(settings, ManualClock(scenario.start), rules=rules)
            try:
                report.results.append(_run(app, scenario, report.taken.observe))
            finally:
                app.close()
                database.unlink()
    return report


def _deploy(path: Path, pathways_dir: Path, rules_dir: Path, rules: RuleSetRegistry) -> None:
    # Four eyes off: an author tests the folder's texts -- pathways and rule sets -- before any activation.
    settings = Settings(
        database_url=f"sqlite:///{path}", pathways_dir=pathways_dir, rules_dir=rules_dir, four_eyes=False
    )
    app = CarePath(settings, ManualClock(DEFAULT_START), upgrade=True, rules=rules)
    try:
        app.catalog.sync_library()
    finally:
        app.close()
    # Copies take the main file alone: everything must be out of the write-ahead log.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _run(app: CarePath, scenario: Scenario, observe: Callable[[Any], None]) -> ScenarioResult:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    app.instances.steps.observers.append(observe)
    try:
        view = app.instances.start(scenario.pathway, scenario.patient, START_ACTOR, _fill(scenario.data, clock))
    except CarePathError as exc:
        return ScenarioResult(scenario, StepFailure(scenario.loc, "start", _error_lines(exc)))
    if view.status not in _RUNNING:
        return ScenarioResult(scenario, StepFailure(scenario.loc, "start", _incident_lines(view)))
    for step in scenario.steps:
        try:
            view = _step(app, clock, scenario, view, step)
        except _Failed as failed:
            return ScenarioResult(scenario, StepFailure(step.loc, _describe(step), failed.lines))
        except CarePathError as exc:
            return ScenarioResult(scenario, StepFailure(step.loc, _describe(step), _error_lines(exc)))
        except Exception as exc:  # a fault of CarePath's, not the author's: the other scenarios still run
            return ScenarioResult(
                scenario,
                StepFailure(
                    step.loc,
                    _describe(step),
                    (f"error: {type(exc).__name__} inside CarePath while running this step (please report it)",),
                ),
            )
        if view.status not in _RUNNING:
            return ScenarioResult(scenario, StepFailure(step.loc, _describe(step), _incident_lines(view)))
    return ScenarioResult(scenario, None)


def _describe(step: ScenarioStep) -> str:
    if isinstance(step, Complete):
        return f"complete {step.task}"
    if isinstance(step, Send):
        return f"send {step.message}"
    if isinstance(step, Wait):
        return step.text
    return "expect"


def _step(
    app: CarePath, clock: ManualClock, scenario: Scenario, view: InstanceView, step: ScenarioStep
) -> InstanceView:
    if isinstance(step, Complete):
        return _complete(app, clock, view, step)
    if isinstance(step, Send):
        app.instances.send_message(
            step.message,
            MESSAGE_ACTOR,
            patient_ref=scenario.patient,
            payload=_fill(step.payload, clock) if step.payload else None,
        )
        return app.instances.get(view.id)
    if isinstance(step, Wait):
        try:
            until = step.until if step.until is not None else clock.now() + (step.delta or relativedelta())
        except (OverflowError, ValueError):
            raise _Failed("the wait would take the clock past the year 9999") from None
        if until - scenario.start > MAX_SPAN:
            raise _Failed(f"the wait would take the clock more than {MAX_SPAN.days // 366} years past the start")
        if until < clock.now():
            raise _Failed(f"{until.isoformat()} is before the scenario's clock ({clock.now().isoformat()})")
        _wait(app, clock, view.id, until)
        return app.instances.get(view.id)
    _check(app, view, step)
    return view


def _complete(app: CarePath, clock: ManualClock, view: InstanceView, step: Complete) -> InstanceView:
    matches = [
        t
        for t in view.ready_tasks
        if t["element"] == step.task and (step.process is None or t["process"] == step.process)
    ]
    if not matches:
        raise _Failed(
            f"- expected ready: {step.task}" + (f" in {step.process}" if step.process else ""),
            f"+ actual ready:   {_ready_text(view)}",
        )
    data = _fill(step.data, clock)
    if step.decisions is not None:
        data["decisions"] = _decisions(app, view.id, step.decisions)
    return app.instances.complete_task(view.id, matches[0]["id"], data, step.actor, expected_version=view.version)


def _decisions(app: CarePath, instance_id: str, given: dict[str, str]) -> dict[str, str]:
    """Item id -> decision for the proposed items and those named by code: code, then kind, then ``all``."""
    decisions: dict[str, str] = {}
    for item in app.care_plans.get(instance_id).items:
        decision = given.get(item["code"])
        if decision is None and item["status"] == "proposed":
            decision = given.get(item["kind"], given.get("all"))
        if decision is not None:
            decisions[item["id"]] = decision
    return decisions


def _wait(app: CarePath, clock: ManualClock, instance_id: str, until: datetime) -> None:
    for _ in range(MAX_TIMER_ROUNDS):
        view = app.instances.get(instance_id)
        due = datetime.fromisoformat(view.next_due_at) if view.next_due_at else None
        if view.status != Status.RUNNING or due is None or due > until:
            break
        clock.set(max(clock.now(), due + timedelta(seconds=1)))
        if fire_due_timers(app.instances) == 0:
            break
    else:
        raise _Failed(f"more than {MAX_TIMER_ROUNDS} timers fire in this wait: wait less at a time")
    if until > clock.now():
        clock.set(until)
        fire_due_timers(app.instances)


def _check(app: CarePath, view: InstanceView, expect: Expect) -> None:
    lines = _check_ready(view, expect)
    if expect.timers:
        lines += _check_timers(app, view, expect)
    if expect.care_plan or expect.not_in_care_plan:
        lines += _check_care_plan(app, view, expect)
    if expect.status is not None and view.status != expect.status:
        lines += [f"- expected status: {expect.status}", f"+ actual status:   {view.status}"]
    if lines:
        raise _Failed(*lines)


def _check_ready(view: InstanceView, expect: Expect) -> list[str]:
    lines: list[str] = []
    ready = view.ready_tasks
    for wanted in expect.ready:
        if not any(
            t["element"] == wanted.task and wanted.process in (None, t["process"]) and wanted.lane in (None, t["lane"])
            for t in ready
        ):
            lines += [f"- expected ready: {wanted.text()}", f"+ actual ready:   {_ready_text(view, lanes=True)}"]
    if expect.ready_only is not None and sorted(expect.ready_only) != sorted(t["element"] for t in ready):
        lines += [
            f"- expected only ready: {', '.join(sorted(expect.ready_only)) or 'none'}",
            f"+ actual ready:        {_ready_text(view)}",
        ]
    for task in expect.not_ready:
        if any(t["element"] == task for t in ready):
            lines += [f"- expected not ready: {task}", f"+ actual ready:       {_ready_text(view)}"]
    return lines


def _check_timers(app: CarePath, view: InstanceView, expect: Expect) -> list[str]:
    lines: list[str] = []
    waiting = {
        e.element: e.due_at
        for e in instance_progress(app.instances, view.id).elements
        if e.state == "waiting" and e.due_at
    }
    for element, (due, _loc) in expect.timers.items():
        actual = waiting.get(element)
        if actual is None:
            lines += [
                f"- expected timer {element} due {due}",
                f"+ actual timer {element} not waiting (waiting timers: {_timers_text(waiting)})",
            ]
        elif not _same_due(due, actual):
            lines += [f"- expected timer {element} due {due}", f"+ actual timer {element} due {actual}"]
    return lines


def _check_care_plan(app: CarePath, view: InstanceView, expect: Expect) -> list[str]:
    lines: list[str] = []
    items = app.care_plans.get(view.id).items
    for wanted in expect.care_plan:
        if not any(wanted.matches(item) for item in items):
            lines += [f"- expected in the care plan: {wanted.text()}", f"+ actual care plan: {_care_plan_text(items)}"]
    for code in expect.not_in_care_plan:
        if any(item["code"] == code for item in items):
            lines += [f"- expected not in the care plan: {code}", f"+ actual care plan: {_care_plan_text(items)}"]
    return lines


def _same_due(expected: str, actual: str) -> bool:
    when = datetime.fromisoformat(actual)
    if "T" not in expected:
        return when.date().isoformat() == expected
    return when == datetime.fromisoformat(expected)


def _ready_text(view: InstanceView, lanes: bool = False) -> str:
    if view.status != Status.RUNNING:
        return f"none (the instance is {view.status})"
    names = sorted(t["element"] + (f" (lane {t['lane']!r})" if lanes and t["lane"] else "") for t in view.ready_tasks)
    return ", ".join(names) or "none"


def _timers_text(waiting: dict[str, str]) -> str:
    return ", ".join(f"{element} {due}" for element, due in sorted(waiting.items())) or "none"


def _care_plan_text(items: list[dict[str, Any]]) -> str:
    return (
        ", ".join(f"{i['code']} ({i['kind']}, {i['urgency'] or 'no urgency'}, {i['status']})" for i in items) or "empty"
    )


def _error_lines(exc: CarePathError) -> tuple[str, ...]:
    return (f"refused: {exc.message}", *(f"  {problem}" for problem in exc.problems))


def _incident_lines(view: InstanceView) -> tuple[str, ...]:
    incident = view.incident or {}
    return (
        f"+ the instance is {view.status}"
        + (f": incident at {incident.get('element')}: {incident.get('message')}" if incident else ""),
    )


def _fill(data: dict[str, Any], clock: ManualClock) -> dict[str, Any]:
    """The data with ``$today`` (the clock's date) and ``$now`` (its date-time) filled in."""
    return {key: _fill_value(value, clock) for key, value in data.items()}


def _fill_value(value: Any, clock: ManualClock) -> Any:
    if value == "$today":
        return clock.now().date().isoformat()
    if value == "$now":
        return clock.now().isoformat()
    if isinstance(value, dict):
        return _fill(value, clock)
    if isinstance(value, list):
        return [_fill_value(v, clock) for v in value]
    return value
