"""Driving the bundled pathways as a patient's care would, and recording which flows were taken.

A :class:`Journey` is one synthetic patient (references like ``SYN-0001``, never names) on one
pathway: it completes the ready tasks by element id, sends the patient's messages and moves the
clock, firing due timers as the worker would.

Coverage: :class:`FlowCoverage` watches each step through the step runner's observers, as
``carepath pathways test`` does for the YAML scenarios (engine.spiff.coverage, engine.scenarios.coverage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem
from engine.documents.build import fill_instance_forms, fill_listed_forms
from engine.documents.notices import NOTICE_KEY
from engine.instances.queries import InstanceFilter, InstanceQueries
from engine.instances.timers import fire_due_timers
from engine.pathways.sources import PathwayLibrary
from engine.scenarios import DiagramFlows, diagram_flows
from engine.spiff.coverage import TakenPaths

REPO = Path(__file__).resolve().parents[2]
PATHWAYS = REPO / "pathways"
NURSE, PATIENT, SYSTEM = "clinician:cns-syn", "patient:SYN", "system:ehr"
FLOW_NODE_TAGS = {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "userTask",
    "manualTask",
    "scriptTask",
    "serviceTask",
    "callActivity",
    "exclusiveGateway",
    "inclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
    "task",
    "sendTask",
    "receiveTask",
    "businessRuleTask",
}


@dataclass
class FlowCoverage(TakenPaths):
    """Elements completed and moves seen over the journeys run (engine.spiff.coverage), and which ran."""

    journeys: set[str] = field(default_factory=set)

    def watch(self, app: CarePath) -> None:
        """Observe every step of ``app`` just before the engine compacts it."""
        app.instances.steps.observers.append(self.observe)


def bundled_diagrams() -> DiagramFlows:
    """Every sequence flow of the bundled pathways and the sub-pathways they call (engine.scenarios)."""
    library = PathwayLibrary(PATHWAYS)
    return diagram_flows(library, library.pathway_ids())


def missing_nodes(diagrams: DiagramFlows, coverage: FlowCoverage) -> list[tuple[str, str]]:
    return sorted(key for key, tag in diagrams.kinds.items() if tag in FLOW_NODE_TAGS and key not in coverage.completed)


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
        matches = [
            t for t in self.view.ready_tasks if t["element"] == element and (process is None or t["process"] == process)
        ]
        assert matches, f"{element} is not ready; ready: {self.ready}"
        return matches[0]

    def proposals(self) -> list[CarePlanItem]:
        with self.app.sessions() as session:
            rows = session.scalars(
                select(CarePlanItem).where(CarePlanItem.instance_id == self.view.id, CarePlanItem.status == "proposed")
            )
            return list(rows)

    # --- acting ---
    def do(
        self, element: str, data: dict[str, Any] | None = None, actor: str = NURSE, process: str | None = None
    ) -> Journey:
        task = self.task(element, process)
        if NOTICE_KEY in (task.get("form") or {}) and isinstance(self.app, CarePath):  # not over HTTP (bench/api.py)
            self.check_listed_notice()
        self.view = self.app.instances.complete_task(
            self.view.id, task["id"], data or {}, actor, expected_version=self.view.version
        )
        assert self.view.status in ("running", "completed"), self.view.incident
        return self

    def check_listed_notice(self) -> None:
        """A checklist's safety notice in the task list (filled from what the row keeps, nothing restored)
        is the one the instance's own data gives (the patient's section, a child's treatment centre)."""
        page = InstanceQueries(self.app.sessions, self.app.instances).ready_tasks(
            InstanceFilter(patient_ref=self.patient)
        )
        mine = [t for t in page.items if t["instance_id"] == self.view.id]
        assert page.notice_contacts.get(self.view.id) is not None, "the row keeps nothing for its checklist"
        for language in ("en", "sv"):
            listed = fill_listed_forms(self.app, mine, page.notice_contacts, language)
            read = fill_instance_forms(self.app, self.view.id, mine, language)
            assert [t["form"] for t in listed] == [t["form"] for t in read], language

    def message(self, name: str, payload: dict[str, Any] | None = None) -> Journey:
        [delivered] = self.app.instances.send_message(
            name, "system:patient-app", patient_ref=self.patient, payload=payload
        )
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
    def hna(
        self,
        concerns: dict[str, int],
        *,
        about_you: dict[str, Any] | None = None,
        agree: Callable[[CarePlanItem], bool] = lambda item: item.kind != "information",
    ) -> Journey:
        """Offer, complete, discuss priority concerns if any, agree the plan (decisions per proposal)."""
        self.do("offer_hna", {"hna_accepted": True})
        if "complete_checklist_cyp" in self.ready:
            # The children and young people's checklist asks about school, not work or money, and
            # about travel only: the same worry, the school instead of the money.
            concerns = {("school" if code == "money_housing" else code): score for code, score in concerns.items()}
            travel = {k: v for k, v in (about_you or {}).items() if k in ("travel_minutes", "travel_km")}
            self.do(
                "complete_checklist_cyp",
                {"concerns": concerns, "about_you": travel, "what_matters": "Keeping up with school and my friends"},
                actor=PATIENT,
            )
        else:
            self.do(
                "complete_checklist",
                {
                    "concerns": concerns,
                    "about_you": about_you or {},
                    "what_matters": "Keeping up with my family and work",
                },
                actor=PATIENT,
            )
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
    return {
        "named_contact": {
            "role": "clinical_nurse_specialist",
            "staff_ref": "STAFF-SYN-1",
            "team": team,
            "contact_line": "team_phone_line",
        }
    }
