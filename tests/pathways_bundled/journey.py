"""Driving the bundled pathways as a patient's care would, and recording which flows were taken.

A :class:`Journey` is one synthetic patient (references like ``SYN-0001``, never names) on one
pathway: it completes the ready tasks by element id, sends the patient's messages and moves the
clock, firing due timers as the worker would.

Coverage: the engine compacts finished history out of an instance after every step (history lives in
the event trail), so :class:`FlowCoverage` looks at each step's tasks just before compaction. A task
completed in the step gives its element, and the element it came from (its nearest ancestor task
that is a diagram element). A sequence flow counts as taken when its source completed and the flow
is the source's only way on, the source is a parallel gateway, or its target was reached from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem
from engine.instances.timers import fire_due_timers

REPO = Path(__file__).resolve().parents[2]
PATHWAYS = REPO / "pathways"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
FLOW_NODE_TAGS = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent", "userTask",
    "manualTask", "scriptTask", "serviceTask", "callActivity", "exclusiveGateway", "inclusiveGateway",
    "parallelGateway", "eventBasedGateway", "task", "sendTask", "receiveTask", "businessRuleTask",
}

NURSE, PATIENT, SYSTEM = "clinician:cns-syn", "patient:SYN", "system:ehr"


@dataclass(frozen=True)
class DiagramFlow:
    process: str
    id: str
    source: str
    target: str


@dataclass
class BundledDiagrams:
    """Every process, flow node and sequence flow of the bundled diagrams."""

    flows: list[DiagramFlow] = field(default_factory=list)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # process -> node id -> kind

    @classmethod
    def read(cls, root: Path = PATHWAYS) -> BundledDiagrams:
        found = cls()
        for path in sorted(root.rglob("*.bpmn")):
            for process in etree.parse(str(path)).getroot().iter(f"{BPMN}process"):
                pid = process.get("id")
                nodes = found.nodes.setdefault(pid, {})
                for node in process.iter():
                    kind = etree.QName(node).localname if isinstance(node.tag, str) else ""
                    if kind in FLOW_NODE_TAGS:
                        nodes[node.get("id")] = kind
                    elif kind == "sequenceFlow":
                        found.flows.append(DiagramFlow(pid, node.get("id"), node.get("sourceRef"),
                                                       node.get("targetRef")))
        return found

    def outgoing(self, process: str, source: str) -> list[DiagramFlow]:
        return [f for f in self.flows if f.process == process and f.source == source]


@dataclass
class FlowCoverage:
    """Elements completed and (from, to) steps seen, per process, over any number of instances."""

    completed: set[tuple[str, str]] = field(default_factory=set)
    steps: set[tuple[str, str, str]] = field(default_factory=set)
    journeys: set[str] = field(default_factory=set)

    def observe(self, workflow: Any) -> None:
        for wf in [workflow, *workflow.subprocesses.values()]:
            for task in list(wf.tasks.values()):
                if task.state != TaskState.COMPLETED or not task.task_spec.bpmn_id:
                    continue
                process = task.workflow.spec.name
                self.completed.add((process, task.task_spec.bpmn_id))
                parent = task.parent
                while parent is not None and not parent.task_spec.bpmn_id:
                    parent = parent.parent
                if parent is not None:
                    self.steps.add((process, parent.task_spec.bpmn_id, task.task_spec.bpmn_id))

    def taken(self, diagrams: BundledDiagrams, flow: DiagramFlow) -> bool:
        if (flow.process, flow.source) not in self.completed:
            return False
        if len(diagrams.outgoing(flow.process, flow.source)) == 1:
            return True
        if diagrams.nodes[flow.process].get(flow.source) == "parallelGateway":
            return True
        return (flow.process, flow.source, flow.target) in self.steps

    def missing_flows(self, diagrams: BundledDiagrams) -> list[DiagramFlow]:
        return [f for f in diagrams.flows if not self.taken(diagrams, f)]

    def missing_nodes(self, diagrams: BundledDiagrams) -> list[tuple[str, str]]:
        return sorted((p, n) for p, nodes in diagrams.nodes.items() for n in nodes if (p, n) not in self.completed)


@contextmanager
def recording(coverage: FlowCoverage) -> Iterator[None]:
    """Observe every step's workflow just before the engine compacts it."""
    import engine.instances.step as step_module

    original = step_module.compact

    def observing_compact(workflow: Any) -> int:
        coverage.observe(workflow)
        return original(workflow)

    step_module.compact = observing_compact
    try:
        yield
    finally:
        step_module.compact = original


class Journey:
    """One synthetic patient on one bundled pathway."""

    def __init__(self, app: CarePath, clock: ManualClock, pathway: str, patient: str, data: dict[str, Any]) -> None:
        self.app, self.clock, self.patient = app, clock, patient
        self.view = app.instances.start(pathway, patient, SYSTEM, data)

    # --- reading ---
    @property
    def ready(self) -> list[str]:
        return sorted(t["element"] for t in self.view.ready_tasks)

    @property
    def status(self) -> str:
        return self.view.status

    def task(self, element: str, process: str | None = None) -> dict[str, Any]:
        matches = [t for t in self.view.ready_tasks
                   if t["element"] == element and (process is None or t["process"] == process)]
        assert matches, f"{element} is not ready; ready: {self.ready}"
        return matches[0]

    def proposals(self) -> list[CarePlanItem]:
        with self.app.sessions() as session:
            rows = session.scalars(select(CarePlanItem).where(CarePlanItem.instance_id == self.view.id,
                                                              CarePlanItem.status == "proposed"))
            return list(rows)

    # --- acting ---
    def do(self, element: str, data: dict[str, Any] | None = None, actor: str = NURSE,
           process: str | None = None) -> Journey:
        task = self.task(element, process)
        self.view = self.app.instances.complete_task(self.view.id, task["id"], data or {}, actor,
                                                     expected_version=self.view.version)
        assert self.view.status in ("running", "completed"), self.view.incident
        return self

    def message(self, name: str, payload: dict[str, Any] | None = None) -> Journey:
        [delivered] = self.app.instances.send_message(name, "system:patient-app", patient_ref=self.patient,
                                                      payload=payload)
        # Reload: the view send_message returns can carry the revision from before its own change.
        self.view = self.app.instances.get(delivered.id)
        return self

    def wait(self, days: int) -> Journey:
        """Move the clock by ``days``, let the timer worker run, and reload the instance."""
        return self.wait_for(timedelta(days=days))

    def wait_until(self, day: str) -> Journey:
        """Move the clock to 09:00 UTC on ``day`` (YYYY-MM-DD) and let the timer worker run."""
        target = datetime.fromisoformat(f"{day}T09:00:00+00:00")
        assert target >= self.clock.now(), f"{day} is in the past"
        return self.wait_for(target - self.clock.now())

    def wait_for(self, delta: timedelta) -> Journey:
        self.clock.advance(delta)
        fire_due_timers(self.app.instances)
        self.view = self.app.instances.get(self.view.id)
        assert self.view.status in ("running", "completed"), self.view.incident
        return self

    # --- shared sub-pathways, as a clinic would complete them ---
    def hna(self, concerns: dict[str, int], *, about_you: dict[str, Any] | None = None,
            agree: Callable[[CarePlanItem], bool] = lambda item: item.kind != "information") -> Journey:
        """Offer, complete, discuss priority concerns if any, agree the plan (decisions per proposal)."""
        self.do("offer_hna", {"hna_accepted": True})
        self.do("complete_checklist", {"concerns": concerns, "about_you": about_you or {},
                                       "what_matters": "Keeping up with my family and work"}, actor=PATIENT)
        if max([0, *concerns.values()]) >= 8:
            self.do("priority_review", {"discussed_on": self.today(), "urgent_action": "same_day_referral"})
        items = self.proposals()
        decisions = {item.id: ("agreed" if agree(item) else "declined") for item in items}
        self.do("agree", {"decisions": decisions, "what_matters": "Being well enough for my grandchildren"})
        if any(item.kind == "referral" and agree(item) for item in items):
            self.do("send_referrals", {"referrals_sent_on": self.today()})
        return self.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})

    def hna_declined(self) -> Journey:
        self.do("offer_hna", {"hna_accepted": False})
        return self.do("record_declined", {"reason": "Not now"})

    def today(self) -> str:
        return self.clock.now().date().isoformat()


def contact(team: str = "Synthetic cancer nursing team") -> dict[str, Any]:
    return {"named_contact": {"role": "clinical_nurse_specialist", "staff_ref": "STAFF-SYN-1", "team": team,
                              "contact_line": "team_phone_line"}}
