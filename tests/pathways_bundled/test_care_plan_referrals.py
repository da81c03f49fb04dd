"""Sending the agreed referrals marks them referred on the care plan, by the person who sent them."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem, InstanceEvent

from .journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES, _start, _support

SENDER = "clinician:cns-referrals"


def _items(app: CarePath, instance_id: str) -> list[CarePlanItem]:
    with app.sessions() as session:
        return list(session.scalars(select(CarePlanItem).where(CarePlanItem.instance_id == instance_id)))


def test_sending_the_agreed_referrals_marks_them_referred(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-REF-0001")
    _support(j, "later")
    j.do("offer_hna", {"hna_accepted": True})
    j.do("complete_checklist", {"concerns": HIGH_CONCERNS, "about_you": ABOUT_WORKING_PARENT})
    j.do("priority_review", {"discussed_on": j.today(), "urgent_action": "same_day_referral"})
    proposals = j.proposals()
    referrals = [i for i in proposals if i.kind == "referral"]
    assert len(referrals) >= 2, "the premise: the high concerns propose several referrals"
    declined = referrals[0].id  # the patient declines one referral and agrees to the rest
    j.do(
        "agree",
        {
            "decisions": {i.id: "declined" if i.id == declined else "agreed" for i in proposals},
            "what_matters": "Being at home with my children",
        },
    )
    assert {i.status for i in _items(bundled, j.view.id) if i.id != declined} == {"agreed"}

    j.do("send_referrals", {"referrals_sent_on": j.today()}, actor=SENDER)

    after = {i.id: i for i in _items(bundled, j.view.id)}
    assert after[declined].status == "declined"
    sent = [after[i.id] for i in referrals if i.id != declined]
    assert {(i.status, i.updated_by) for i in sent} == {("referred", SENDER)}
    assert {i.status for i in after.values() if i.kind != "referral"} == {"agreed"}  # not referrals
    with bundled.sessions() as session:
        events = session.scalars(
            select(InstanceEvent)
            .where(
                InstanceEvent.instance_id == j.view.id,
                InstanceEvent.type == "care_plan_updated",
                InstanceEvent.element == "mark_referred",
            )
            .order_by(InstanceEvent.seq)
        ).all()
    # One event per referral sent (what service measures count from), then the step's summary.
    assert {e.actor for e in events} == {SENDER}
    assert sorted((p["item"], p["status"]) for p in (json.loads(e.payload) for e in events[:-1])) == sorted(
        (i.id, "referred") for i in sent
    )
    assert json.loads(events[-1].payload) == {"referred": len(sent)}
    assert "share_plan" in j.ready
