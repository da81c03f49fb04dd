"""The palliative and living-with-cancer route (issue 14 points 3 and 7), as a clinic would live it.

``two_years_palliative``: an adult on the lung pathway with palliative intent, over two years: the route's
needs assessment at once and every 3 months, the referral to specialist palliative care agreed, sent,
accepted and seen, an advance care plan and the carer's needs recorded and revisited at 6 months, a
deterioration that brings the pathway's re-assessment 2 weeks later; then the patient dies.
``child_palliative``: a 14-year-old on the children and young people's pathway (NICE NG61): the named
medical specialist, the multidisciplinary team with children's palliative care, advance care planning with
the child and parents, support for the family, the children's palliative care referral; at the second
review care passes to another service and the route returns to the pathway.
``asked_on_the_way_out``: on each diagnosis pathway, care is transferred before the route asked for feedback
(at its first review, or at its first 3-monthly review itself), so the pathway asks once as the route returns
(``exit_feedback_gw`` -> ``exit_feedback``) and the patient answers; the pathway then ends with its reviews.
``asked_on_the_route``: on each diagnosis pathway, the route asks after its first 3-monthly review and care
is transferred a quarter later: the pathway goes on without asking again (``exit_feedback_gw`` -> merge).
The support connection declined at diagnosis is offered once more as the route begins (``pal_support_again``,
``cpal_support_again``): connected in ``two_years_palliative``, information for later in ``child_palliative``,
left open (and closed with the route) on the way out; informed at diagnosis, it is not offered on the route.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem
from engine.documents.build import care_plan_document

from .journey import NURSE, PATIENT, Journey
from .journeys import (
    FEEDBACK_ANSWER,
    SITES,
    _mdt,
    _review,
    _start,
    _support,
    feedback_answered,
    feedback_closed,
    feedback_task,
    feedback_tasks,
    to_the_end,
)

SPC, CHILDREN_SPC = "specialist-palliative-care-referral", "childrens-palliative-care-referral"
# At least 3 calendar months (92 days and a minute), so the route's next assessment is always due by then.
QUARTER = timedelta(days=92, minutes=1)
ADULT_ACP = {
    "advance_care_plan": {
        "conversation": "held",
        "recorded_on": "2026-01-15",
        "preferred_place_of_care": "home",
        "preferred_place_of_death": "hospice",
        "what_matters_most": "Being at home with my grandchildren",
        "took_part": ["patient", "partner_or_family", "key_worker"],
        "lasting_power_of_attorney": True,
        "respect_plan": True,
        "shared_with_gp": True,
    }
}
CARERS = {
    "carers": {
        "has_carer": True,
        "recorded_on": "2026-01-15",
        "relationship": "partner",
        "carers_assessment": "accepted",
        "needs": ["short_breaks", "emotional_support"],
        "support_arranged": "Carers' centre sitting service on Tuesdays",
    }
}
CHILD_ACP = {
    "advance_care_plan": {
        "conversation": "held",
        "recorded_on": "2026-01-15",
        "preferred_place_of_care": "home",
        "preferred_place_of_death": "childrens_hospice",
        "took_part": ["child_or_young_person", "parents_or_carers", "named_medical_specialist"],
    }
}
FAMILY = {
    "palliative_family_support": {
        "recorded_on": "2026-01-15",
        "child": "accepted",
        "parents_or_carers": "accepted",
        "siblings": "offered",
        "bereavement_support_explained": True,
    }
}


def referrals(j: Journey, code: str) -> list[CarePlanItem]:
    with j.app.sessions() as session:
        return list(
            session.scalars(
                select(CarePlanItem).where(CarePlanItem.instance_id == j.view.id, CarePlanItem.code == code)
            )
        )


def move(j: Journey, item_id: str, status: str) -> None:
    j.app.care_plans.set_status(j.view.id, item_id, status, NURSE)
    j.view = j.app.instances.get(j.view.id)


def review(j: Journey, element: str, route: str = "continue") -> Journey:
    return j.do(element, {"reviewed_on": j.today(), "on_palliative_care_register": True, "palliative_route": route})


def review_task(site_key: str) -> str:
    """The route's review: the children's route (shared/palliative_care_children.bpmn) has its own."""
    return "cpal_review" if site_key == "children_young_people" else "pal_review"


# What the route has ready while it runs (adults' and children's): none of it once care is transferred.
ROUTE_TASKS = {"pal_acp", "pal_carers", "pal_review", "cpal_acp", "cpal_support", "cpal_review", "offer_hna"}


def support_lane(site_key: str) -> str:
    """The lane of the route's offer of the support connection (the lane of its call activity)."""
    if site_key == "children_young_people":
        return "Principal treatment centre (named medical specialist and key worker)"
    return "Key worker (clinical nurse specialist)"


def on_the_route(
    app: CarePath, clock: ManualClock, site_key: str, patient: str, support: str = "no", age: int | None = None
) -> Journey:
    """Palliative intent confirmed by the MDT, the route's first assessment declined: its first review is next.
    ``support`` is the answer at diagnosis: declined ('no'), the route offers the connection once more as it
    begins, left open here; otherwise it is not offered again."""
    j = _start(app, clock, SITES[site_key], patient, age=age, intent="palliative")
    _support(j, support)
    j.hna_declined()
    _mdt(j, SITES[site_key], intent="palliative", prehab=False, special=False)
    offers = [t for t in j.view.ready_tasks if t["element"] == "offer_support"]
    assert [t["lane"] for t in offers] == ([support_lane(site_key)] if support == "no" else []), offers
    return j.hna_declined()


def upcoming(j: Journey) -> list[str]:
    """What the care plan tells the patient comes next (its codes)."""
    return [u["code"] for u in care_plan_document(j.app, j.view.id, "en")["next_steps"]["upcoming"]]


def _first_quarter(j: Journey, site_key: str) -> Journey:
    """From the route's first review (2026-01-15): the GP's 3-month cancer care review on 2026-04-10, then
    the route's first 3-monthly assessment (due 2026-04-15), declined, up to its review."""
    j.wait_until("2026-04-10")
    _review(j, "first_review")
    assert not {review_task(site_key), "offer_hna", "remind_first"} & set(j.ready)  # nothing else due yet
    j.wait_until("2026-04-16")
    assert "offer_hna" in j.ready, j.ready  # the route's 3-monthly assessment is due
    return j.hna_declined()


def asked_on_the_way_out(
    app: CarePath,
    clock: ManualClock,
    *,
    site_key: str,
    patient: str,
    at_first_review: bool,
    wants_contact: bool,
    age: int | None = None,
) -> Journey:
    """Care transferred before the route asked for feedback: at its first review (``at_first_review``), or
    at its first 3-monthly review, where the route asks only when care continues. The pathway asks once as
    the route returns, the patient answers (asking to be contacted if ``wants_contact``); never asked again.
    In the children and young people's pathway the family is asked for a child under 16 (``age``, else the
    site's), the young person from 16."""
    child = site_key == "children_young_people"
    age = SITES[site_key].age if age is None else age
    j = on_the_route(app, clock, site_key, patient, age=age)
    assert feedback_tasks(j) == []  # not in the first days after the news
    if not at_first_review:
        review(j, review_task(site_key))  # care continues here: the route's first review
        assert feedback_tasks(j) == [] and "palliative_assessment" in upcoming(j)
        _first_quarter(j, site_key)
        assert feedback_tasks(j) == []  # the route asks after its review, not before it

    review(j, review_task(site_key), route="care_transferred")

    [task] = feedback_tasks(j)  # the route had not asked: the pathway asks, once, on the way out
    # A child under 16: the parents or carers, with the child, in their lane and their own task (exit_feedback_family).
    lane = ("Parents or carers" if age < 16 else "Child or young person") if child else "Patient"
    element = feedback_task(age) if child else "give_feedback"
    assert (task["process"], task["lane"], task["element"]) == ("patient_feedback", lane, element)
    assert not ROUTE_TASKS & set(j.ready), j.ready  # the route ended with its planning branch
    assert "offer_support" not in j.ready  # and with the support offer still open on it
    assert "palliative_assessment" not in upcoming(j) and j.status == "running"
    j.do(task["element"], {**FEEDBACK_ANSWER, "feedback_wants_contact": wants_contact}, actor=PATIENT)
    if wants_contact:  # the patient experience team calls back
        assert [t["process"] for t in j.view.ready_tasks if t["element"] == "respond"] == ["patient_feedback"]
        j.do("respond", {"contacted_on": j.today(), "outcome": "Thanked"})
    assert feedback_tasks(j) == [] and "respond" not in j.ready
    if at_first_review:
        j.wait_until("2026-04-10")
        _review(j, "first_review")
    to_the_end(j, survey=age >= 15)  # the reviews and the survey (16 or over by then) outlast care; asked once
    assert (j.status, j.ready) == ("completed", [])
    assert (feedback_answered(app, j.view.id), feedback_closed(app, j.view.id)) == (1, [])
    return j


def asked_on_the_route(app: CarePath, clock: ManualClock, *, site_key: str, patient: str, answered: bool) -> Journey:
    """The route asks for feedback after its first 3-monthly review (answered, or left to close after 12
    weeks); a quarter later care is transferred: the pathway does not ask again on the way out."""
    child = site_key == "children_young_people"
    j = on_the_route(app, clock, site_key, patient, support="later")  # informed at diagnosis: not offered again
    review(j, review_task(site_key))  # the route's first review: too soon to ask
    assert feedback_tasks(j) == []
    _first_quarter(j, site_key)
    review(j, review_task(site_key))  # the first 3-monthly review: the route asks, once

    [task] = feedback_tasks(j)
    lane = "Child or young person, and parents or carers" if child else "Patient"
    element = feedback_task(SITES[site_key].age) if child else "give_feedback"  # under 16: the family's task
    assert (task["process"], task["lane"], task["element"]) == ("patient_feedback", lane, element)
    if answered:
        j.do(task["element"], {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
    j.wait_for(QUARTER).hna_declined()  # an unanswered invitation closes on the way (12 weeks)
    assert feedback_tasks(j) == [] and len(feedback_closed(app, j.view.id)) == (0 if answered else 1)

    review(j, review_task(site_key), route="care_transferred")

    assert feedback_tasks(j) == [], "asked twice"  # the route has asked: the pathway goes on without asking
    assert not ROUTE_TASKS & set(j.ready) and j.status == "running"
    assert "palliative_assessment" not in upcoming(j)
    to_the_end(j, survey=not child)
    assert (j.status, j.ready) == ("completed", [])
    assert feedback_answered(app, j.view.id) == (1 if answered else 0)
    return j


def two_years_palliative(app: CarePath, clock: ManualClock, patient: str = "SYN-0401") -> Journey:
    site = SITES["lung"]
    j = _start(app, clock, site, patient, intent="palliative")
    _support(j, "no")
    j.hna_declined()  # at diagnosis
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    assert {"offer_hna", "pal_acp", "first_review"} <= set(j.ready), j.ready
    # Declined at diagnosis: the connection is offered once more as the route begins; connected now.
    assert j.task("offer_support")["lane"] == support_lane("lung")
    j.do("offer_support", {"support_wanted": "yes_now", "support_types": ["emotional", "carers"]})
    j.do("connect", {"connected_to": ["EXAMPLE-SUPPORT-ORG"], "connected_on": j.today(), "connected_via": "nhs_app"})
    assert not {"offer_support", "connect"} & set(j.ready)
    j.hna({"pain": 5, "fatigue": 6})  # the route's first assessment proposes specialist palliative care
    [spc] = referrals(j, SPC)
    assert (spc.status, spc.urgency, spc.accept_by is not None) == ("referred", "soon", True)
    move(j, spc.id, "accepted")
    move(j, spc.id, "first_contact")
    review(j, "pal_review")
    j.do("pal_acp", ADULT_ACP).do("pal_carers", CARERS)
    scheduled = 1
    for quarter in range(1, 9):  # two years, a quarter at a time
        j.wait_for(QUARTER)
        if "pal_acp" in j.ready:  # revisited every 6 months
            j.do("pal_acp", ADULT_ACP).do("pal_carers", CARERS)
        assert "offer_hna" in j.ready, (quarter, j.ready)
        # The second quarter's assessment finds the pain much worse: a deterioration.
        j.hna({"pain": 9, "fatigue": 6} if quarter == 2 else {"pain": 4, "fatigue": 6})
        scheduled += 1
        review(j, "pal_review")
        if quarter == 2:  # the pathway's re-assessment, 2 weeks later (shared/needs_reassessment.bpmn)
            assert "offer_hna" not in j.ready
            j.wait(14)
            assert "offer_hna" in j.ready
            j.hna({"pain": 5, "fatigue": 6})
    assert scheduled == 9 and len(referrals(j, SPC)) == 1  # one open referral: never proposed twice
    j.message("patient_died", {"date_of_death": j.today()})
    assert (j.status, j.ready) == ("completed", [])
    return j


def child_palliative(app: CarePath, clock: ManualClock, patient: str = "SYN-0402") -> Journey:
    site = SITES["children_young_people"]
    j = _start(app, clock, site, patient, intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    assert {"offer_hna", "cpal_specialist"} <= set(j.ready), j.ready
    # The parents declined at diagnosis: offered once more as the route begins; information for later.
    assert j.task("offer_support")["lane"] == support_lane("children_young_people")
    j.do("offer_support", {"support_wanted": "later", "support_types": ["young_people", "carers"]})
    j.do("give_information", {"information_given_on": j.today(), "information_format": "leaflet"})
    assert not {"offer_support", "give_information"} & set(j.ready)
    j.do(
        "cpal_specialist",
        {
            "named_specialist": {
                "role": "paediatric_oncologist",
                "staff_ref": "STAFF-SYN-7",
                "team": "Synthetic principal treatment centre",
            }
        },
    )
    j.do(
        "cpal_mdt",
        {
            "palliative_mdt": {
                "planned_on": j.today(),
                "members": ["named_medical_specialist", "childrens_palliative_care", "key_worker", "childrens_hospice"],
            }
        },
    )
    j.do("cpal_acp", CHILD_ACP).do("cpal_support", FAMILY)
    j.hna({"pain": 5, "fatigue": 6})
    [referral] = referrals(j, CHILDREN_SPC)
    assert referral.status == "referred" and referrals(j, SPC) == []
    review(j, "cpal_review")
    j.wait_for(QUARTER)
    j.hna({"pain": 4, "fatigue": 5})
    review(j, "cpal_review")
    j.wait_for(QUARTER)
    j.do("cpal_acp", CHILD_ACP).do("cpal_support", FAMILY)  # revisited at 6 months
    j.hna({"pain": 3})
    review(j, "cpal_review", route="care_transferred")  # the route returns to the pathway
    assert feedback_tasks(j) == [] and not {"cpal_acp", "offer_hna"} & set(
        j.ready
    )  # feedback: at the end of a treatment
    return j


JourneyFn = Callable[[CarePath, ManualClock], Journey]
# Per site: (care transferred at the route's first review, else at its first 3-monthly one; the patient
# asks to be called back).
WAY_OUT = {
    "breast": (True, True),
    "prostate": (False, False),
    "colorectal": (True, False),
    "lung": (False, True),
    "general": (True, True),
    "children_young_people": (False, False),
}


def _feedback_journeys() -> dict[str, JourneyFn]:
    """Per diagnosis pathway (each diagram has its own exit_feedback_gw): asked on the way out, answered
    (SYN-0701...), and asked on the route before care is transferred (SYN-0711...; the children's
    invitation left unanswered, to close on the route: asked all the same, so never again)."""
    journeys: dict[str, JourneyFn] = {}
    for number, (key, (at_first_review, wants_contact)) in enumerate(WAY_OUT.items(), start=1):
        journeys[f"{key}-palliative-asked-on-the-way-out"] = partial(
            asked_on_the_way_out,
            site_key=key,
            patient=f"SYN-{700 + number:04d}",
            at_first_review=at_first_review,
            wants_contact=wants_contact,
        )
        journeys[f"{key}-palliative-asked-on-the-route"] = partial(
            asked_on_the_route, site_key=key, patient=f"SYN-{710 + number:04d}", answered=key != "children_young_people"
        )
    # A young person of 16 or over is asked on the way out in their own lane (exit_feedback), not the family.
    journeys["children_young_people-palliative-asked-on-the-way-out-young-person"] = partial(
        asked_on_the_way_out,
        site_key="children_young_people",
        patient="SYN-0721",
        at_first_review=True,
        wants_contact=False,
        age=17,
    )
    return journeys


PALLIATIVE_JOURNEYS: dict[str, JourneyFn] = {
    "palliative-two-years": partial(two_years_palliative, patient="SYN-0401"),
    "palliative-child": partial(child_palliative, patient="SYN-0402"),
    **_feedback_journeys(),
}
