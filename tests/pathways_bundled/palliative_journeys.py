"""The palliative and living-with-cancer route (issue 14 points 3 and 7), as a clinic would live it.

``two_years_palliative``: an adult on the lung pathway with palliative intent, over two years: the route's
needs assessment at once and every 3 months, the referral to specialist palliative care agreed, sent,
accepted and seen, an advance care plan and the carer's needs recorded and revisited at 6 months, a
deterioration that brings the pathway's re-assessment 2 weeks later; then the patient dies.
``child_palliative``: a 14-year-old on the children and young people's pathway (NICE NG61): the named
medical specialist, the multidisciplinary team with children's palliative care, advance care planning with
the child and parents, support for the family, the children's palliative care referral; at the second
review care passes to another service and the route returns to the pathway.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem

from .journey import NURSE, Journey
from .journeys import SITES, _mdt, _start, _support

SPC, CHILDREN_SPC = "specialist-palliative-care-referral", "childrens-palliative-care-referral"
# At least 3 calendar months (92 days and a minute), so the route's next assessment is always due by then.
QUARTER = timedelta(days=92, minutes=1)
ADULT_ACP = {
    "advance_care_plan": {
        "conversation": "held",
        "recorded_on": "2026-02-20",
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
        "recorded_on": "2026-02-20",
        "relationship": "partner",
        "carers_assessment": "accepted",
        "needs": ["short_breaks", "emotional_support"],
        "support_arranged": "Carers' centre sitting service on Tuesdays",
    }
}
CHILD_ACP = {
    "advance_care_plan": {
        "conversation": "held",
        "recorded_on": "2026-02-20",
        "preferred_place_of_care": "home",
        "preferred_place_of_death": "childrens_hospice",
        "took_part": ["child_or_young_person", "parents_or_carers", "named_medical_specialist"],
    }
}
FAMILY = {
    "palliative_family_support": {
        "recorded_on": "2026-02-20",
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


def two_years_palliative(app: CarePath, clock: ManualClock, patient: str = "SYN-0401") -> Journey:
    site = SITES["lung"]
    j = _start(app, clock, site, patient, intent="palliative")
    _support(j, "no")
    j.hna_declined()  # at diagnosis
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    assert {"offer_hna", "pal_acp", "first_review"} <= set(j.ready), j.ready
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
    assert not {"give_feedback", "cpal_acp", "offer_hna"} & set(j.ready)  # feedback: at the end of a treatment
    return j


JourneyFn = Callable[[CarePath, ManualClock], Journey]
PALLIATIVE_JOURNEYS: dict[str, JourneyFn] = {
    "palliative-two-years": partial(two_years_palliative, patient="SYN-0401"),
    "palliative-child": partial(child_palliative, patient="SYN-0402"),
}
