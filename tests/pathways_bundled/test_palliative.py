"""The palliative and living-with-cancer route (issue 14 point 3; the point 7 journey "a palliative patient
over two years"): shared/palliative_care.bpmn for adults, shared/palliative_care_children.bpmn (NICE NG61)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from api import create_app
from api.openapi_schemas import SCHEMAS
from engine import CarePath, ManualClock
from engine.access import create_token
from engine.careplan.patient_status import PATIENT_STATUS_FIELDS
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.session import unit_of_work
from engine.documents.build import care_plan_document, render_html
from engine.errors import TaskDataError

from .conftest import DATABASE
from .journey import PATHWAYS, REPO, Journey
from .journeys import SITES, _mdt, _start, _support
from .palliative_journeys import (
    ADULT_ACP,
    CARERS,
    CHILD_ACP,
    CHILDREN_SPC,
    FAMILY,
    SPC,
    child_palliative,
    referrals,
    review,
    two_years_palliative,
)


def _events(app: CarePath, instance_id: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def _on_the_route(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Palliative intent confirmed by the MDT: the route has begun, nothing on it is done yet."""
    site = SITES["colorectal"]
    j = _start(app, clock, site, patient, intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    return j


def test_two_years_on_the_route_then_death_ends_every_timer(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = two_years_palliative(bundled, journey_clock)  # asserts each quarter's assessment as it goes
    events = _events(bundled, j.view.id)
    assessed = [e for e in events if e.type == "rules_evaluated"]
    assert len(assessed) == 10  # at once, 8 quarters, and the re-assessment on deterioration
    started = [json.loads(e.payload) for e in events if e.type == "reassessment_started"]
    assert started == [{"reasons": ["deterioration"]}]
    assert [(e.type, e.element) for e in events[-2:]] == [("message_received", None), ("completed", "pd_end")]
    assert json.loads(events[-2].payload)["message"] == "patient_died"
    # The route ended with the pathway; what the patient wished for is still in their plan.
    wishes = care_plan_document(bundled, j.view.id, "en")["wishes"]
    assert wishes["advance_care_plan"]["preferred_place_of_death"]["code"] == "hospice"
    assert wishes["carers"]["relationship"]["code"] == "partner"
    with bundled.sessions() as session:
        assert session.get(PathwayInstance, j.view.id).next_due_at is None  # no timer is waiting
    count = len(events)

    j.wait_for(timedelta(days=3 * 366))  # past every 3-monthly assessment and 6-monthly plan it had

    assert (j.status, j.ready) == ("completed", [])
    assert len(_events(bundled, j.view.id)) == count  # no invitation, no task, nothing at all after death


def test_the_care_plan_shows_the_advance_care_plan_the_carers_and_the_referral(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _on_the_route(bundled, journey_clock, "SYN-0411")
    assert care_plan_document(bundled, j.view.id, "en")["wishes"] is None  # nothing recorded yet
    j.hna({"fatigue": 6})
    j.do("pal_acp", ADULT_ACP).do("pal_carers", CARERS)

    doc = care_plan_document(bundled, j.view.id, "en")
    acp, carers = doc["wishes"]["advance_care_plan"], doc["wishes"]["carers"]
    assert (acp["preferred_place_of_care"], acp["preferred_place_of_death"]) == (
        {"code": "home", "label": "Home"},
        {"code": "hospice", "label": "A hospice"},
    )
    assert acp["what_matters_most"] == "Being at home with my grandchildren" and acp["respect_plan"] is True
    assert carers["has_carer"] is True and [n["code"] for n in carers["needs"]] == ["short_breaks", "emotional_support"]
    [spc] = [i for i in doc["agreed"] if i["code"] == SPC]
    assert (spc["status"], spc["urgency"], spc["kind"]) == ("referred", "soon", "referral")
    assert spc["name"] == "Referral to the specialist palliative care team"
    html = render_html(doc)
    assert "Where I would like to die" in html and "A hospice" in html and "Short breaks" in html
    # Coming up: the route's next assessment (after the key worker's review) and the plan's revisit.
    assert "palliative_assessment" not in [u["code"] for u in doc["next_steps"]["upcoming"]]
    review(j, "pal_review")
    upcoming = {u["code"]: u["due_on"] for u in care_plan_document(bundled, j.view.id, "en")["next_steps"]["upcoming"]}
    assert (upcoming["palliative_assessment"], upcoming["palliative_plan_revisit"]) == ("2026-04-15", "2026-07-15")
    # The JSON keeps the API's promise (the OpenAPI document's CarePlanDocument), wishes included.
    schema = {"$ref": "#/components/schemas/CarePlanDocument", "components": {"schemas": SCHEMAS}}
    assert [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(json.dumps(doc)))] == []
    swedish = care_plan_document(bundled, j.view.id, "sv")
    assert swedish["wishes"]["advance_care_plan"]["preferred_place_of_care"]["label"] == "Hemma"
    assert "Där jag vill dö" in render_html(swedish)


def test_the_referral_moves_on_and_is_escalated_when_not_accepted_in_time(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _on_the_route(bundled, journey_clock, "SYN-0412")
    j.hna({"fatigue": 6})
    [spc] = referrals(j, SPC)
    assert spc.status == "referred" and spc.service == "specialist_palliative_care"
    assert bundled.referral_escalations.open_due() == 0  # within its 2 weeks
    j.wait(15)
    assert bundled.referral_escalations.open_due() == 1
    [escalation] = bundled.referral_escalations.list_open(patient_ref="SYN-0412")
    assert (escalation["code"], escalation["urgency"]) == (SPC, "soon")
    moved = bundled.care_plans.set_status(j.view.id, spc.id, "accepted", "clinician:spc-syn")
    assert "first_contact" in moved["next_statuses"]


def test_the_route_assesses_again_without_proposing_the_open_referral_twice(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _on_the_route(bundled, journey_clock, "SYN-0413")
    j.hna({"fatigue": 6})
    review(j, "pal_review")
    assert "offer_hna" not in j.ready
    j.wait_for(timedelta(days=92, minutes=1))
    assert "offer_hna" in j.ready  # 3 months later
    j.hna({"fatigue": 6})
    assert len(referrals(j, SPC)) == 1


def test_care_transferred_returns_to_the_pathway_and_ends_the_route(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _on_the_route(bundled, journey_clock, "SYN-0414")
    assert {"offer_hna", "pal_acp"} <= set(j.ready)
    j.hna_declined()
    review(j, "pal_review", route="care_transferred")
    assert not {"pal_acp", "pal_carers", "offer_hna"} & set(j.ready)
    assert "give_feedback" in j.ready  # the route had not asked: asked on the way out
    j.wait(400)
    assert not {"pal_acp", "offer_hna", "pal_review"} & set(j.ready)  # no timer of the route is left


@pytest.mark.parametrize(
    "answers",
    [
        {
            "advance_care_plan": {
                "conversation": "held",
                "recorded_on": "2026-02-01",
                "preferred_place_of_death": "moon",
            }
        },
        {"advance_care_plan": {"conversation": "held", "recorded_on": "2026-02-01", "note": "x"}},
        {"advance_care_plan": {"conversation": "held", "recorded_on": "2026-02-01", "what_matters_most": "x" * 1001}},
        {"advance_care_plan": {"recorded_on": "2026-02-01"}},
    ],
)
def test_a_wrong_advance_care_plan_is_refused_and_nothing_is_recorded(
    bundled: CarePath, journey_clock: ManualClock, answers: dict[str, object]
) -> None:
    j = _on_the_route(bundled, journey_clock, "SYN-0415")
    with pytest.raises(TaskDataError) as refused:
        j.do("pal_acp", answers)
    assert all(p.field and p.field.startswith("/advance_care_plan") for p in refused.value.problems)
    assert "moon" not in refused.value.message
    assert "pal_acp" in [t["element"] for t in j.app.instances.get(j.view.id).ready_tasks]
    assert care_plan_document(bundled, j.view.id, "en")["wishes"] is None


def test_a_child_follows_ng61_with_the_childrens_palliative_care_team(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = child_palliative(bundled, journey_clock)  # care is transferred at the third review
    assert len(referrals(j, CHILDREN_SPC)) == 1 and referrals(j, SPC) == []
    doc = care_plan_document(bundled, j.view.id, "en")
    acp = doc["wishes"]["advance_care_plan"]
    assert acp["preferred_place_of_death"] == {"code": "childrens_hospice", "label": "A children's hospice"}
    assert [p["code"] for p in acp["took_part"]] == [
        "child_or_young_person",
        "parents_or_carers",
        "named_medical_specialist",
    ]
    support = doc["wishes"]["family_support"]
    assert (support["siblings"]["code"], support["bereavement_support_explained"]) == ("offered", True)
    assert doc["wishes"]["carers"] is None


def test_the_childrens_team_must_include_childrens_palliative_care(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["children_young_people"]
    j = _start(bundled, journey_clock, site, "SYN-0416", intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    j.do("cpal_specialist", {"named_specialist": {"role": "paediatric_oncologist", "team": "Synthetic PTC"}})
    with pytest.raises(TaskDataError):
        j.do("cpal_mdt", {"palliative_mdt": {"planned_on": j.today(), "members": ["key_worker", "gp"]}})
    assert "cpal_mdt" in j.ready


@pytest.mark.parametrize(
    "value",
    [
        {f"k{i}": "x" for i in range(21)},  # too many fields
        {"what_matters_most": "x" * 1001},  # text past the form's limit
        {"took_part": ["patient"] * 13},  # a list past its limit
        {"nested": {"a": 1}},  # not the form's shape
        ["home"],
    ],
)
def test_the_patient_status_bounds_what_the_route_keeps(value: object) -> None:
    assert PATIENT_STATUS_FIELDS["advance_care_plan"](value) is not None
    assert PATIENT_STATUS_FIELDS["advance_care_plan"](ADULT_ACP["advance_care_plan"]) is None


def test_the_patient_page_shows_the_wishes(bundled_template: Path, tmp_path: Path, journey_clock: ManualClock) -> None:
    shutil.copyfile(bundled_template, tmp_path / DATABASE)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / DATABASE}",
            "PATHWAYS_DIR": PATHWAYS,
            "RULES_DIR": REPO / "rules",
            "CLOCK": journey_clock,
            "SECRET_KEY": "test-secret-key",
        }
    )
    try:
        engine = app.extensions["carepath"]
        j = _on_the_route(engine, journey_clock, "SYN-0417")
        client = app.test_client()
        with unit_of_work(engine.sessions) as session:
            _, secret = create_token(session, "clinician", "test clinician", engine.clock)
        # The sign-in link shows a button (never signs in on a GET); the button POSTs with the CSRF token.
        page = client.get(f"/sign-in?token={secret}").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf and client.post("/sign-in", data={"token": secret, "csrf_token": csrf.group(1)}).status_code == 303
        before = client.get(f"/patients/{j.view.id}").get_data(as_text=True)
        assert 'data-test="wishes"' not in before  # nothing recorded: no empty section
        j.do("pal_acp", ADULT_ACP).do("pal_carers", CARERS)
        html = client.get(f"/patients/{j.view.id}").get_data(as_text=True)
        assert 'data-test="advance-care-plan"' in html and 'data-test="carers"' in html
        place = html[html.index('data-test="preferred-place-of-death"') :]
        assert place[: place.index("</dd>")].endswith("A hospice")
        assert "Being at home with my grandchildren" in html
    finally:
        app.extensions["carepath"].close()


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_death_on_the_route_ends_its_loops_in_every_pathway(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = _start(bundled, journey_clock, SITES[site], "SYN-0420", intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, SITES[site], intent="palliative", prehab=False, special=False)
    child = site == "children_young_people"
    if child:
        j.do("cpal_specialist", {"named_specialist": {"role": "paediatrician", "team": "Synthetic PTC"}})
        j.do("cpal_mdt", {"palliative_mdt": {"planned_on": j.today(), "members": ["childrens_palliative_care"]}})
        j.do("cpal_acp", CHILD_ACP).do("cpal_support", FAMILY)
    else:
        j.do("pal_acp", ADULT_ACP).do("pal_carers", CARERS)
    j.hna({"fatigue": 6})
    review(j, "cpal_review" if child else "pal_review")
    # Waiting now: the next assessment (3 months), the plan's revisit (6 months), the reviews and survey.
    assert not {"offer_hna", "pal_acp", "cpal_acp"} & set(j.ready)
    j.message("patient_died", {"date_of_death": j.today()})
    assert (j.status, j.ready) == ("completed", [])
    count = len(_events(bundled, j.view.id))
    j.wait_for(timedelta(days=2 * 366))
    assert (j.status, j.ready) == ("completed", []) and len(_events(bundled, j.view.id)) == count
