"""A synthetic cohort whose measures are known: instances, their events and care plan items written
directly (through the store, as a step would), at hand-picked times. tests/test_reports.py works out
each measure by hand from the timeline below.

Period: 2026-01-01 to 2026-04-01; read as of 2026-09-01. ``D`` is Monday 5 January 2026, 09:00 UTC.

Pathway ``breast_cancer`` (P) unless said otherwise:

A  started D. HNA offered D+10, completed D+20, plan agreed D+25, treatment ended D+60, summary D+90,
   first review D+80. Referral r1 psychology/urgent: referred Fri 30 Jan 10:00, accepted Mon 2 Feb
   10:00, first contact Tue 3 Feb 09:00 (due by the end of Tue 3 Feb: on time). Referral r4 dietitian/routine:
   referred 10 Feb, first contact 1 Mar. Intervention i1 declined by the patient 1 Feb.
   Warning signs: reported 1 Feb 10:00, triaged 12:00, call back (amber); reported 3 Feb 10:00,
   triaged 10:30, urgent assessment (red).
B  started D+1. HNA offered D+41, completed D+46, no plan agreed, treatment ended D+71, summary 50 days
   later, no review. Referral r2 psychology/urgent: referred Wed 4 Feb 10:00, accepted Thu 5 Feb 10:00,
   first contact Mon 9 Feb 10:00 (due by the end of Fri 6 Feb: overdue). Referral r6 physio/soon: referred
   10 Feb, declined by the service 12 Feb. Warning sign reported 10 Feb 08:00, escalated triage 12:00,
   self care (green).
C  started D+2. HNA offered D+7, declined (no checklist). Second review D+202. Referral r3
   psychology/urgent referred Mon 2 Mar 10:00, never answered (overdue). Warning sign reported
   30 Mar, not triaged. Intervention i3 declined, last changed 1 May (after the period).
E  started 20 Mar. Nothing else but an emergency referral r5 acute_oncology, created referred
   21 Mar 08:00 (no referred event), first contact 21 Mar 20:00 (same day).
F  started 20 Dec 2025 (before the period). HNA offered 2 Jan, completed 10 Jan, plan agreed 15 Jan,
   treatment ended 1 Feb, no summary. Warning sign reported 25 Dec 2025.
G  pathway ``lung_cancer`` (Q), started D, HNA offered D+1.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import GENESIS, append_event
from engine.db.models import CarePlanItem, PathwayVersion
from engine.instances.store import InstanceRecord, insert_instances

D = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
AS_OF = datetime(2026, 9, 1, tzinfo=UTC)
P, Q = "breast_cancer", "lung_cancer"


def at(month: int, day: int, hour: int = 9, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def days(n: float, start: datetime = D) -> datetime:
    return start + timedelta(days=n)


@dataclass
class Patient:
    pathway: str
    started: datetime
    tasks: list[tuple[str, datetime]] = field(default_factory=list)
    reports: list[datetime] = field(default_factory=list)
    # (kind, code, service, urgency, final status, created at, [(status, at), ...])
    items: list[tuple[str, str, str | None, str | None, str, datetime, list[tuple[str, datetime]]]] = field(
        default_factory=list
    )
    organisation: str = "rx1"  # who looks after the patient (engine.care_teams)
    care_team: str = "breast"


def cohort() -> dict[str, Patient]:
    a = Patient(
        P,
        D,
        tasks=[
            ("offer_hna", days(10)),
            ("complete_checklist", days(20)),
            ("agree", days(25)),
            ("treatment", days(60)),
            ("first_review", days(80)),
            ("write_summary", days(90)),
            ("triage", at(2, 1, 12)),
            ("call_back", at(2, 1, 13)),
            ("triage", at(2, 3, 10, 30)),
            ("urgent_assessment", at(2, 3, 11)),
        ],
        reports=[at(2, 1, 10), at(2, 3, 10)],
        items=[
            (
                "referral",
                "psychology_referral",
                "psychology",
                "urgent",
                "first_contact",
                days(20),
                [
                    ("agreed", days(25)),
                    ("referred", at(1, 30, 10)),
                    ("accepted", at(2, 2, 10)),
                    ("first_contact", at(2, 3, 9)),
                ],
            ),
            (
                "referral",
                "dietitian_referral",
                "dietitian",
                "routine",
                "first_contact",
                days(20),
                [("referred", at(2, 10)), ("first_contact", at(3, 1))],
            ),
            ("intervention", "exercise", None, None, "declined", days(20), [("declined", at(2, 1))]),
        ],
    )
    b = Patient(
        P,
        days(1),
        tasks=[
            ("offer_hna", days(41)),
            ("complete_checklist", days(46)),
            ("treatment", days(71)),
            ("write_summary", days(121)),
            ("escalated_triage", at(2, 10, 12)),
            ("self_care", at(2, 10, 13)),
        ],
        reports=[at(2, 10, 8)],
        items=[
            (
                "referral",
                "psychology_referral",
                "psychology",
                "urgent",
                "first_contact",
                days(46),
                [("referred", at(2, 4, 10)), ("accepted", at(2, 5, 10)), ("first_contact", at(2, 9, 10))],
            ),
            (
                "referral",
                "physio_referral",
                "physio",
                "soon",
                "service_declined",
                days(46),
                [("referred", at(2, 10)), ("service_declined", at(2, 12))],
            ),
        ],
    )
    c = Patient(
        P,
        days(2),
        tasks=[("offer_hna", days(7)), ("record_declined", days(8)), ("second_review", days(202))],
        reports=[at(3, 30)],
        items=[
            (
                "referral",
                "psychology_referral",
                "psychology",
                "urgent",
                "referred",
                days(8),
                [("referred", at(3, 2, 10))],
            ),
            ("intervention", "yoga", None, None, "declined", at(5, 1), []),
        ],
    )
    e = Patient(
        P,
        at(3, 20),
        items=[
            (
                "referral",
                "acute_oncology",
                "acute_oncology",
                "emergency",
                "first_contact",
                at(3, 21, 8),
                [("first_contact", at(3, 21, 20))],
            )
        ],
    )
    f = Patient(
        P,
        at(12, 20, year=2025),
        tasks=[
            ("offer_hna", at(1, 2)),
            ("complete_checklist", at(1, 10)),
            ("agree", at(1, 15)),
            ("treatment", at(2, 1)),
        ],
        reports=[at(12, 25, year=2025)],
    )
    g = Patient(Q, D, tasks=[("offer_hna", days(1))])
    return {"A": a, "B": b, "C": c, "E": e, "F": f, "G": g}


def write_cohort(session: Session, patients: dict[str, Patient] | None = None) -> dict[str, str]:
    """Write the cohort (the caller commits); returns each patient's letter -> instance id."""
    patients = cohort() if patients is None else patients
    version = session.scalars(select(PathwayVersion).order_by(PathwayVersion.id).limit(1)).one()
    ids: dict[str, str] = {}
    for letter, patient in patients.items():
        record = InstanceRecord(
            id=str(uuid.uuid4()),
            pathway_id=patient.pathway,
            pathway_version_id=version.id,
            pathway_version=version.version,
            patient_ref=f"MRN-REPORT-{letter}-{uuid.uuid4().hex[:6]}",
            status="running",
            state="{}",
            revision=1,
            next_due_at=None,
            incident=None,
            event_seq=0,
            event_head=GENESIS,
            created_at=patient.started,
            updated_at=patient.started,
            organisation=patient.organisation,
            care_team=patient.care_team,
        )
        ids[letter] = record.id
        events: list[tuple[datetime, str, str | None, dict[str, Any]]] = [(patient.started, "started", None, {})]
        events += [(when, "task_completed", element, {"task": element}) for element, when in patient.tasks]
        events += [
            (when, "message_received", None, {"message": "warning_sign_reported", "data_digest": "sha256:0"})
            for when in patient.reports
        ]
        items = []
        for kind, code, service, urgency, status, created, moves in patient.items:
            item_id = str(uuid.uuid4())
            items.append(
                CarePlanItem(
                    id=item_id,
                    instance_id=record.id,
                    evaluation_id=str(uuid.uuid4()),
                    task_id=str(uuid.uuid4()),
                    kind=kind,
                    code=code,
                    service=service,
                    urgency=urgency,
                    rules="[]",
                    status=status,
                    created_at=created,
                    updated_at=max([created, *(when for _, when in moves)]),
                    updated_by="test",
                )
            )
            events += [
                (
                    when,
                    "care_plan_updated",
                    None,
                    {"item": item_id, "code": code, "status": moved, "service": service, "urgency": urgency},
                )
                for moved, when in moves
            ]
        for when, kind, element, payload in sorted(events, key=lambda e: e[0]):
            append_event(
                session,
                record,
                kind,
                at=when,
                actor="system:test",
                pathway_version=version.version,
                element=element,
                payload=payload,
            )
        insert_instances(session, [record])
        session.add_all(items)
        session.flush()
    return ids


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1)
