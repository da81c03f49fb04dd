"""The FHIR R4 API on a synthetic breast pathway patient (issue 17, point 4). Every response is validated
against the FHIR R4 models by the client (conftest.FhirClient)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fhir_world import LOCAL, NHS, NHS_NUMBER, World
from pathways_bundled.journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES, prostate_mdt
from pathways_bundled.journeys import _mdt as mdt
from pathways_bundled.journeys import _start as start
from pathways_bundled.journeys import _support as support
from pathways_bundled.journeys import _treatment as treatment

from api.openapi import FHIR_BASE
from engine.access import PERMISSIONS, ROLES, create_token
from engine.db.session import unit_of_work
from engine.errors import TaskDataError
from engine.fhir import QUESTIONNAIRE_URL, RESOURCES

BASE = FHIR_BASE


def _search(world: World, resource: str, patient: str = NHS_NUMBER, role: str = "clinician") -> list[dict[str, Any]]:
    response = world.client.get(f"{BASE}/{resource}?patient={patient}", headers=world.auth(role))
    assert response.status_code == 200, response.json
    bundle = response.json
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle.get("entry", []))
    for entry in bundle.get("entry", []):
        assert entry["fullUrl"] == f"http://localhost{BASE}/{resource}/{entry['resource']['id']}"
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _outcome(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.json
    body: dict[str, Any] = response.json
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code, body
    assert response.headers["X-Request-ID"] in body["issue"][0]["diagnostics"]
    return body


# --- the server ------------------------------------------------------------------------------------


def test_metadata_is_public_and_names_every_route(world: World) -> None:
    statement = world.client.get(f"{BASE}/metadata").json
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    assert NHS in statement["rest"][0]["documentation"]
    declared = {(r["type"], i["code"]) for r in statement["rest"][0]["resource"] for i in r["interaction"]}
    routes = set()
    for rule in world.app.url_map.iter_rules():
        if not rule.rule.startswith(BASE + "/") or "<path:rest>" in rule.rule or rule.rule.endswith(BASE + "/"):
            continue
        parts = rule.rule.removeprefix(BASE + "/").split("/")
        if parts[0] == "metadata":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            kind = (
                "create"
                if method == "POST"
                else "search-type"
                if len(parts) == 1
                else "operation"
                if len(parts) == 3
                else "read"
            )
            routes.add((parts[0], kind))
            view = world.app.view_functions[rule.endpoint]
            permission = getattr(view, "permission", None)
            assert permission in PERMISSIONS, rule.rule  # the one permission table, never a second
    assert routes - {("Composition", "operation")} == declared
    assert {r.permission for r in RESOURCES} <= set(PERMISSIONS)


@pytest.mark.parametrize("resource", [r.type for r in RESOURCES])
def test_roles_follow_the_permission_table(world: World, resource: str) -> None:
    permission = next(r.permission for r in RESOURCES if r.type == resource)
    url = f"{BASE}/{resource}" + ("" if resource == "Questionnaire" else f"?patient={NHS_NUMBER}")
    response = world.client.get(url)
    _outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for role in ROLES:
        response = world.client.get(url, headers=world.auth(role))
        if role in PERMISSIONS[permission]:
            assert response.status_code == 200, (role, response.json)
        else:
            _outcome(response, 403, "forbidden")


# --- the care plan and its referrals -------------------------------------------------------------------


def test_the_care_plan_references_its_referrals_and_assessments(world: World) -> None:
    [plan] = _search(world, "CarePlan", role="system")
    assert plan["id"] == world.ended.view.id and plan["status"] == "active" and plan["intent"] == "plan"
    assert plan["subject"] == {"type": "Patient", "identifier": {"system": NHS, "value": NHS_NUMBER}}
    assert plan["note"][0]["text"].startswith("What matters to me: ")
    items = world.engine.care_plans.get(plan["id"]).items
    assert len(plan["activity"]) == len(items)
    referrals = [a["reference"]["reference"] for a in plan["activity"] if "reference" in a]
    assert referrals == [f"ServiceRequest/{i['id']}" for i in items if i["kind"] == "referral"] and referrals
    inline = [a["detail"] for a in plan["activity"] if "detail" in a]
    assert {d["status"] for d in inline} <= {"not-started", "cancelled"}
    assert any(d.get("statusReason", {}).get("text") == "Declined by the patient" for d in inline)  # information
    for reference in referrals:
        request = world.client.get(f"{BASE}/{reference}", headers=world.auth("clinician")).json
        assert (request["status"], request["intent"]) == ("active", "order")  # sent: referred
        assert request["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
    for info in plan["supportingInfo"]:
        assert world.client.get(f"{BASE}/{info['reference']}", headers=world.auth("auditor")).status_code == 200
    # The same plan by every way of naming the patient, and by id.
    for query in (f"patient=Patient/{NHS_NUMBER}", f"patient:identifier={NHS}|{NHS_NUMBER}"):
        again = world.client.get(f"{BASE}/CarePlan?{query}", headers=world.auth("system")).json
        assert again["entry"][0]["resource"] == plan
    assert world.client.get(f"{BASE}/CarePlan/{plan['id']}", headers=world.auth("auditor")).json == plan


def test_service_requests_follow_the_referral_status(world: World) -> None:
    requests = _search(world, "ServiceRequest")
    assert requests and all(r["resourceType"] == "ServiceRequest" for r in requests)
    first = requests[0]
    assert first["reasonReference"][0]["reference"].startswith("QuestionnaireResponse/")
    assert first["performerType"]["coding"][0]["system"] == "https://carepath.dev/fhir/CodeSystem/service-type"
    path = ["referred", "accepted", "first_contact", "completed"]
    for status in path[
        path.index(first["extension"][0]["valueCoding"]["code"]) + 1
        if first["extension"][0]["valueCoding"]["code"] in path
        else 0 :
    ]:
        world.engine.care_plans.set_status(world.ended.view.id, first["id"], status, "clinician:test")
        if status == "accepted":
            seen = world.client.get(f"{BASE}/ServiceRequest/{first['id']}", headers=world.auth("system")).json
            assert (seen["status"], seen["extension"][0]["valueCoding"]["code"]) == ("active", "accepted")
    done = world.client.get(f"{BASE}/ServiceRequest/{first['id']}", headers=world.auth("system")).json
    assert (done["status"], done["intent"]) == ("completed", "order")
    assert done["extension"][0]["valueCoding"]["code"] == "completed"
    assert (
        world.client.get(f"{BASE}/ServiceRequest/{world.ended.view.id}", headers=world.auth("system")).status_code
        == 404
    )


# --- needs assessments ---------------------------------------------------------------------------------


def test_the_questionnaire_is_the_catalogue_checklist(world: World) -> None:
    catalogue = world.engine.rules.catalogue()
    checklist = world.client.get(f"{BASE}/Questionnaire/hna-concerns-checklist", headers=world.auth("author")).json
    assert checklist["url"] == QUESTIONNAIRE_URL and checklist["version"] == catalogue.version
    notice, groups = checklist["item"][0], {i["linkId"]: i for i in checklist["item"]}
    assert notice["type"] == "display" and "01632 960100" in notice["text"]  # the directory's 24-hour line
    concerns = {i["linkId"]: i for group in groups["concerns"]["item"] for i in group["item"]}
    assert set(concerns) == set(catalogue.concerns)
    assert concerns["fatigue"]["type"] == "integer"
    assert (groups["other_concern_text"]["type"], groups["other_concern_text"]["maxLength"]) == ("text", 500)
    found = world.client.get(f"{BASE}/Questionnaire?url={QUESTIONNAIRE_URL}", headers=world.auth("clinician")).json
    assert found["entry"][0]["resource"] == checklist
    assert (
        world.client.get(f"{BASE}/Questionnaire?url=https://example.org/other", headers=world.auth("clinician")).json[
            "total"
        ]
        == 0
    )


def test_each_needs_assessment_is_a_questionnaire_response(world: World) -> None:
    [response] = _search(world, "QuestionnaireResponse")  # the HNA at the end of treatment was declined
    version = world.engine.rules.catalogue().version
    assert response["questionnaire"] == f"{QUESTIONNAIRE_URL}|{version}" and response["status"] == "completed"
    answers = {i["linkId"]: i["answer"][0] for group in response["item"] for i in _leaves(group)}
    assert {code: answers[code]["valueInteger"] for code in HIGH_CONCERNS} == HIGH_CONCERNS
    assert answers["work_status"]["valueCoding"]["code"] == ABOUT_WORKING_PARENT["work_status"]
    assert answers["travel_minutes"] == {"valueInteger": 50}
    assert answers["lives_alone"] == {"valueBoolean": False}
    read = world.client.get(f"{BASE}/QuestionnaireResponse/{response['id']}", headers=world.auth("clinician"))
    assert read.json == response


def _leaves(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [item] if "answer" in item else [leaf for inner in item.get("item", []) for leaf in _leaves(inner)]


# --- tasks ----------------------------------------------------------------------------------------------


def test_ready_tasks_are_tasks(world: World) -> None:
    tasks = _search(world, "Task", role="system")
    expected = world.client.get(f"/v1/tasks?patient_ref={NHS_NUMBER}", headers=world.auth("system")).json["items"]
    assert [t["id"] for t in tasks] == [t["id"] for t in expected] and tasks
    assert all(t["status"] == "ready" and t["intent"] == "order" for t in tasks)
    assert {t["code"]["coding"][0]["code"] for t in tasks} == {t["element"] for t in expected}


# --- the End of Treatment Summary ------------------------------------------------------------------------


def test_the_end_of_treatment_summary_is_a_composition_and_a_document(world: World) -> None:
    [composition] = _search(world, "Composition", role="system")
    assert composition["id"] == f"eot-{world.ended.view.id}" and composition["status"] == "final"
    titles = [s["title"] for s in composition["section"]]
    assert titles[:3] == ["Diagnosis", "Treatment received", "Treatment completed on"]
    assert "Warning signs" in titles and "Follow-up" in titles
    referenced = {e["reference"] for s in composition["section"] for e in s.get("entry", [])}
    requests = {f"ServiceRequest/{r['id']}" for r in _search(world, "ServiceRequest")}
    assert referenced == requests  # the referrals the summary names, by reference
    assert referenced and all(r.startswith("ServiceRequest/") for r in referenced)

    document = world.client.get(
        f"{BASE}/Composition/{composition['id']}/$document", headers=world.auth("clinician")
    ).json
    assert document["type"] == "document" and document["identifier"]["value"].startswith("urn:uuid:")
    first, *rest = document["entry"]
    assert first["resource"]["resourceType"] == "Composition"
    assert {f"ServiceRequest/{e['resource']['id']}" for e in rest} == referenced
    assert all(e["fullUrl"].startswith("http://localhost/fhir/R4/") for e in document["entry"])

    swedish = world.client.get(
        f"{BASE}/Composition/{composition['id']}", headers={**world.auth("system"), "Accept-Language": "sv-SE"}
    ).json
    assert swedish["language"] == "sv" and swedish["section"][0]["title"] == "Diagnos"


def test_a_care_plan_without_a_summary_has_no_composition(world: World) -> None:
    journey = world.waiting("SYN-FHIR-NOSUMMARY")
    _outcome(
        world.client.get(f"{BASE}/Composition/eot-{journey.view.id}", headers=world.auth("system")), 404, "not-found"
    )
    assert _search(world, "Composition", patient="SYN-FHIR-NOSUMMARY", role="system") == []


def test_each_phase_of_care_has_its_own_composition(world: World) -> None:
    journey = start(world.engine, world.engine.clock, SITES["breast"], "SYN-FHIR-TWOPHASES")  # type: ignore[arg-type]
    support(journey, "later")
    journey.hna_declined()  # at diagnosis
    mdt(journey, SITES["breast"], prehab=False, special=False)
    treatment(journey, SITES["breast"], special=False)
    journey.hna_declined()
    journey.do(
        "write_summary",
        {
            "summary_treatments": ["surgery"],
            "warning_signs_given": True,
            "gp_actions": ["first phase action"],
            "follow_up_model": "patient_initiated",
        },
    )
    journey.message("recurrence_confirmed").hna_declined()
    journey.message("recurrence_treatment_completed")
    journey.do("rec_treatment", {"treatments_received": ["chemotherapy"], "completed_on": journey.today()})
    journey.hna_declined()  # the needs assessment at the end of the recurrence's treatment
    journey.do(
        "write_summary",
        {
            "summary_treatments": ["chemotherapy"],
            "warning_signs_given": True,
            "gp_actions": ["second phase action"],
            "follow_up_model": "scheduled",
        },
    )
    found = _search(world, "Composition", patient="SYN-FHIR-TWOPHASES", role="system")
    instance = journey.view.id
    assert [c["id"] for c in found] == [f"eot-{instance}", f"eot-{instance}-2"]
    second = world.client.get(f"{BASE}/Composition/eot-{instance}-2", headers=world.auth("system")).json
    narrative = " ".join(s["text"]["div"] for s in second["section"])
    assert "second phase action" in narrative and "first phase action" not in narrative
    assert "Phase of care" in [s["title"] for s in second["section"]] and "Treatment of a recurrence" in narrative
    first = world.client.get(f"{BASE}/Composition/eot-{instance}", headers=world.auth("system")).json
    assert "first phase action" in " ".join(s["text"]["div"] for s in first["section"])
    for missing in (f"eot-{instance}-3", f"eot-{instance}-1", f"eot-{instance}-x", f"eot-{instance}-02"):
        _outcome(world.client.get(f"{BASE}/Composition/{missing}", headers=world.auth("system")), 404, "not-found")


def test_a_mans_active_surveillance_plan_is_a_composition_and_a_document(world: World) -> None:
    man = prostate_mdt(world.engine, world.engine.clock, "SYN-FHIR-ASP", "active_surveillance")  # type: ignore[arg-type]
    [plan] = _search(world, "Composition", patient="SYN-FHIR-ASP", role="system")
    assert plan["id"] == f"asp-{man.view.id}" and plan["status"] == "final"
    assert plan["type"]["coding"][0]["code"] == "active-surveillance-plan"
    titles = [s["title"] for s in plan["section"]]
    assert {"About the plan", "Tests and reviews", "Warning signs", "Who to call", "Support"} <= set(titles)
    schedule = next(s for s in plan["section"] if s["code"]["coding"][0]["code"] == "schedule")
    assert schedule["text"]["div"].count("PSA blood test") == 4
    read = world.client.get(f"{BASE}/Composition/{plan['id']}", headers=world.auth("system")).json
    assert read["id"] == plan["id"] and read["section"] == plan["section"]
    document = world.client.get(f"{BASE}/Composition/{plan['id']}/$document", headers=world.auth("clinician")).json
    assert document["type"] == "document" and document["entry"][0]["resource"]["id"] == plan["id"]
    swedish = world.client.get(
        f"{BASE}/Composition/{plan['id']}", headers={**world.auth("system"), "Accept-Language": "sv"}
    ).json
    assert swedish["language"] == "sv" and "Prover och uppföljningar" in [s["title"] for s in swedish["section"]]
    # His summary's id names no summary: none is written.
    _outcome(world.client.get(f"{BASE}/Composition/eot-{man.view.id}", headers=world.auth("system")), 404, "not-found")


def test_no_active_surveillance_plan_composition_without_active_surveillance(world: World) -> None:
    other = prostate_mdt(world.engine, world.engine.clock, "SYN-FHIR-NOASP", "radical_prostatectomy")  # type: ignore[arg-type]
    assert _search(world, "Composition", patient="SYN-FHIR-NOASP", role="system") == []
    for missing in (f"asp-{other.view.id}", f"asp-{world.ended.view.id}", f"asp-{other.view.id}-2", "asp-", "asp-x"):
        _outcome(world.client.get(f"{BASE}/Composition/{missing}", headers=world.auth("system")), 404, "not-found")


# --- a patient app completes the needs assessment ---------------------------------------------------------------


def _answers(world: World, patient: str, **extra: Any) -> dict[str, Any]:
    checklist = world.client.get(f"{BASE}/Questionnaire/hna-concerns-checklist", headers=world.auth("system")).json
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": f"{checklist['url']}|{checklist['version']}",
        "subject": {"identifier": {"system": LOCAL, "value": patient}},
        "item": [
            {
                "linkId": "concerns",
                "item": [
                    {
                        "linkId": "emotional",
                        "item": [{"linkId": "worry_fear_anxiety", "answer": [{"valueInteger": 9}]}],
                    },
                    {"linkId": "physical", "item": [{"linkId": "fatigue", "answer": [{"valueInteger": 3}]}]},
                ],
            },
            {
                "linkId": "about_you",
                "item": [
                    {"linkId": "lives_alone", "answer": [{"valueBoolean": True}]},
                    {"linkId": "work_status", "answer": [{"valueCoding": {"code": "retired"}}]},
                ],
            },
            {"linkId": "other_concern_text", "answer": [{"valueString": "SYN my dog is poorly"}]},
            {"linkId": "what_matters", "answer": [{"valueString": "My garden"}]},
        ],
        **extra,
    }


def _post(world: World, resource: dict[str, Any], role: str = "system") -> Any:
    return world.client.post(
        f"{BASE}/QuestionnaireResponse",
        data=json.dumps(resource),
        content_type="application/fhir+json",
        headers=world.auth(role),
    )


def test_a_patient_app_completes_the_waiting_needs_assessment(world: World) -> None:
    journey = world.waiting("SYN-FHIR-APP-1")
    [waiting] = [
        t
        for t in _search(world, "Task", patient="SYN-FHIR-APP-1", role="system")
        if t["code"]["coding"][0]["code"] == "complete_checklist"
    ]
    assert waiting["input"][0]["valueCanonical"].startswith(QUESTIONNAIRE_URL + "|")

    created = _post(world, _answers(world, "SYN-FHIR-APP-1"))
    assert created.status_code == 201, created.json
    assert created.headers["Location"] == f"http://localhost{BASE}/QuestionnaireResponse/{created.json['id']}"
    answers = {i["linkId"]: i["answer"][0] for g in created.json["item"] for i in _leaves(g)}
    assert answers["worry_fear_anxiety"] == {"valueInteger": 9} and answers["lives_alone"] == {"valueBoolean": True}
    assert created.json["subject"]["identifier"] == {"system": LOCAL, "value": "SYN-FHIR-APP-1"}

    view = world.engine.instances.get(journey.view.id)
    assert "complete_checklist" not in [t["element"] for t in view.ready_tasks]
    trail = world.client.get(f"/v1/instances/{view.id}/events", headers=world.auth("auditor")).json["items"]
    completed = [e for e in trail if e["type"] == "task_completed" and e["element"] == "complete_checklist"]
    assert completed and completed[-1]["actor"].startswith("system:tok_")
    assert "garden" not in json.dumps(trail) and "dog" not in json.dumps(trail)
    # "Something else", in the patient's own words, reaches the checklist's data as the web form's does.
    assert world.engine.instances.instance_data(view.id)["other_concern_text"] == "SYN my dog is poorly"
    # The rules' proposals are draft ServiceRequests in the care plan.
    [plan] = _search(world, "CarePlan", patient="SYN-FHIR-APP-1", role="system")
    assert plan["supportingInfo"] == [{"reference": f"QuestionnaireResponse/{created.json['id']}"}]
    requests = _search(world, "ServiceRequest", patient="SYN-FHIR-APP-1")
    assert requests and {(r["status"], r["intent"]) for r in requests} == {("draft", "proposal")}

    again = _post(world, _answers(world, "SYN-FHIR-APP-1"))
    _outcome(again, 409, "business-rule")
    assert "no needs assessment is waiting" in again.json["issue"][0]["diagnostics"]


def test_a_response_that_does_not_fit_is_refused_and_changes_nothing(world: World) -> None:
    journey = world.waiting("SYN-FHIR-APP-2")
    bad_answer = _answers(world, "SYN-FHIR-APP-2")
    bad_answer["item"][0]["item"][0]["item"][0]["answer"] = [{"valueString": "very"}]
    bad_answer["item"].append({"linkId": "Jane Doe's secret", "answer": [{"valueString": "x"}]})
    body = _outcome(_post(world, bad_answer), 400, "invalid")
    texts = [i["details"]["text"] for i in body["issue"]]
    assert (
        "QuestionnaireResponse.item[0].item[0].item[0].answer[0]: item worry_fear_anxiety takes valueInteger "
        "(0-10)" in texts
    )
    assert "Jane" not in json.dumps(body)
    out_of_range = _answers(world, "SYN-FHIR-APP-2")
    out_of_range["item"][0]["item"][1]["item"][0]["answer"] = [{"valueInteger": 11}]
    _outcome(_post(world, out_of_range), 422, "invalid")  # the task's form refuses it
    for change, field in (
        ({"status": "in-progress"}, "status"),
        ({"questionnaire": "https://example.org/Questionnaire/phq9"}, "questionnaire"),
        ({"subject": {"identifier": {"system": NHS, "value": "9434765918"}}}, "subject"),
    ):
        body = _outcome(_post(world, _answers(world, "SYN-FHIR-APP-2", **change)), 400, "invalid")
        assert f"QuestionnaireResponse.{field}" in body["issue"][0]["details"]["text"]
        assert "9434765918" not in json.dumps(body)
    _outcome(_post(world, _answers(world, "SYN-FHIR-APP-2"), role="auditor"), 403, "forbidden")
    wrong_type = world.client.post(
        f"{BASE}/QuestionnaireResponse", data="<xml/>", content_type="application/xml", headers=world.auth("system")
    )
    _outcome(wrong_type, 415, "not-supported")
    assert "complete_checklist" in [t["element"] for t in world.engine.instances.get(journey.view.id).ready_tasks]


def test_with_several_waiting_the_response_names_its_care_plan(world: World) -> None:
    first = world.waiting("SYN-FHIR-APP-3")
    second = world.engine.instances.start(
        "general_cancer",
        "SYN-FHIR-APP-3",
        "system:test",
        {"diagnosis": "kidney", "diagnosis_date": "2026-01-12", "age": 60, "treatment_intent": "curative"},
    )
    from pathways_bundled.journey import Journey, contact

    other = Journey.__new__(Journey)
    other.app, other.clock, other.patient, other.view = world.engine, world.engine.clock, "SYN-FHIR-APP-3", second
    other.do("assign_contact", contact())
    other.do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
    other.do("offer_hna", {"hna_accepted": True})
    ambiguous = _outcome(_post(world, _answers(world, "SYN-FHIR-APP-3")), 409, "business-rule")
    assert f"CarePlan/{first.view.id}" in ambiguous["issue"][0]["diagnostics"]
    named = _post(world, _answers(world, "SYN-FHIR-APP-3", basedOn=[{"reference": f"CarePlan/{second.id}"}]))
    assert named.status_code == 201, named.json
    assert named.json["basedOn"] == [{"reference": f"CarePlan/{second.id}"}]
    assert "complete_checklist" in [t["element"] for t in world.engine.instances.get(first.view.id).ready_tasks]


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,status,code",
    [
        (f"{BASE}/Patient/123", 404, "not-found"),
        (f"{BASE}/CarePlan/00000000-0000-0000-0000-000000000000", 404, "not-found"),
        (f"{BASE}/Questionnaire/other", 404, "not-found"),
        (f"{BASE}/CarePlan", 400, "invalid"),
        (f"{BASE}/CarePlan?patient=John%20Smith", 400, "invalid"),
        (f"{BASE}/CarePlan?patient={NHS_NUMBER}&status=active", 400, "invalid"),
        (f"{BASE}/CarePlan?patient:identifier=urn:oid:1.2.3|{NHS_NUMBER}", 400, "invalid"),
        (f"{BASE}/CarePlan?patient={NHS_NUMBER}&_format=xml", 400, "invalid"),
    ],
)
def test_errors_are_operation_outcomes(world: World, url: str, status: int, code: str) -> None:
    body = _outcome(world.client.get(url, headers=world.auth("system")), status, code)
    assert "John" not in json.dumps(body)
    assert not re.search(r"Traceback|File \"", json.dumps(body))


def test_methods_and_formats_not_supported(world: World) -> None:
    _outcome(world.client.delete(f"{BASE}/CarePlan/x", headers=world.auth("system")), 405, "not-supported")
    _outcome(world.client.post(f"{BASE}/CarePlan", json={}, headers=world.auth("system")), 405, "not-supported")
    xml = world.client.get(f"{BASE}/metadata", headers={"Accept": "application/fhir+xml"})
    _outcome(xml, 406, "not-supported")
    assert world.client.get(f"{BASE}/metadata", headers={"Accept": "application/fhir+json"}).status_code == 200
    assert world.client.get(f"{BASE}/metadata?_format=json").status_code == 200


def test_another_care_teams_patient_is_neither_found_nor_completed(world: World) -> None:
    """Care teams (docs/access.md): a patient app's back end scoped to another team finds no plan, task or
    waiting assessment for the patient, exactly as for a patient CarePath does not know; break-glass opens a
    clinician's search within the organisation."""
    journey = world.waiting("SYN-FHIR-APP-7")  # placed in the development default, local / general
    with unit_of_work(world.engine.sessions) as session:
        other = create_token(
            session, "system", "another team's app", world.engine.clock, organisation="local", teams=["lung"]
        )[1]
        clinician = create_token(
            session, "clinician", "lung", world.engine.clock, organisation="local", teams=["lung"]
        )[1]
    headers = {"Authorization": f"Bearer {other}"}
    for resource in ("CarePlan", "Task"):
        found = world.client.get(f"{BASE}/{resource}?patient=SYN-FHIR-APP-7", headers=headers).json
        assert found.get("entry", []) == [] and found["total"] == 0, resource
    hidden = world.client.post(
        f"{BASE}/QuestionnaireResponse",
        data=json.dumps(_answers(world, "SYN-FHIR-APP-7")),
        content_type="application/fhir+json",
        headers=headers,
    )
    unknown = world.client.post(
        f"{BASE}/QuestionnaireResponse",
        data=json.dumps(_answers(world, "SYN-NOBODY")),
        content_type="application/fhir+json",
        headers=headers,
    )

    def words(response: Any) -> tuple[int, str]:  # without the request id the diagnostics end with
        return response.status_code, response.json["issue"][0]["diagnostics"].split(" (request ")[0]

    assert words(hidden) == words(unknown) and hidden.status_code == 409
    plan = world.client.get(f"{BASE}/CarePlan/{journey.view.id}", headers=headers)
    assert plan.status_code == 404
    glass = {"Authorization": f"Bearer {clinician}", "CarePath-Break-Glass": "cross-cover"}
    assert [p["id"] for p in _search_with(world, "CarePlan", "SYN-FHIR-APP-7", glass)] == [journey.view.id]
    assert "complete_checklist" in [t["element"] for t in world.engine.instances.get(journey.view.id).ready_tasks]


def _search_with(world: World, resource: str, patient: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = world.client.get(f"{BASE}/{resource}?patient={patient}", headers=headers)
    assert response.status_code == 200, response.json
    return [entry["resource"] for entry in response.json.get("entry", [])]


HOSTILE = [
    "\r\n",
    "%ff%fe",
    "<script>x</script>",
    "\x00",
    "x" * 5000,
    "9" * 400,
    "urn:oid:1.2.3|",
    "|",
    "-1",
    "../../etc",
]


def test_hostile_search_and_read_values_get_an_operation_outcome_never_a_server_error(world: World) -> None:
    """Every FHIR route, its search parameters and its id given hostile values: a 4xx OperationOutcome, or an
    empty search set, never a server error."""
    from urllib.parse import quote

    resources = ["CarePlan", "ServiceRequest", "Task", "Questionnaire", "QuestionnaireResponse", "Composition"]
    names = ["patient", "patient:identifier", "url", "_format", "status", "_count", "identifier"]
    asked = 0
    for value in HOSTILE:
        encoded = value if value.startswith("%") else quote(value, safe="")
        urls = [f"{BASE}/{r}?{n}={encoded}" for r in resources for n in names]
        urls += [f"{BASE}/{r}/{encoded}" for r in resources if "/" not in value and value != "\r\n"]
        urls += [f"{BASE}/Composition/{encoded}/$document"] if "/" not in value else []
        for url in urls:
            response = world.client.get(url, headers=world.auth("system"))
            body = response.json
            if response.status_code == 200:  # a search whose value matches nothing (Questionnaire?url=)
                assert body["resourceType"] == "Bundle" and body["total"] == 0, url[:80]
            else:
                assert 400 <= response.status_code < 500, (url[:80], response.status_code)
                assert body["resourceType"] == "OperationOutcome", url[:80]
            assert response.mimetype == "application/fhir+json"  # JSON, never a page that could run markup
            asked += 1
    assert asked == 470  # 42 searches and up to 8 reads per value


# --- numbers that are not numbers ----------------------------------------------------------------


def _with_travel_km(world: World, patient: str, literal: str) -> str:
    """The response's JSON text with ``travel_km`` answered by ``literal`` as written (NaN is not JSON,
    so json.dumps cannot write it)."""
    resource = _answers(world, patient)
    resource["item"][1]["item"].append({"linkId": "travel_km", "answer": [{"valueDecimal": "PLACE"}]})
    return json.dumps(resource).replace('"PLACE"', literal)


def _checklist_waits(world: World, journey: Any) -> None:
    view = world.engine.instances.get(journey.view.id)
    assert view.status == "running"
    assert "complete_checklist" in [t["element"] for t in view.ready_tasks]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_a_non_finite_number_in_a_response_is_refused_and_the_assessment_still_waits(
    world: World, literal: str
) -> None:
    # NaN passed every minimum and maximum: the response was answered 200, the step after it failed,
    # the instance went to error and the checklist task was used up.
    patient = f"SYN-FHIR-NAN-{['NaN', 'Infinity', '-Infinity', '1e400', '-1e999'].index(literal)}"
    journey = world.waiting(patient)
    refused = world.client.post(
        f"{BASE}/QuestionnaireResponse",
        data=_with_travel_km(world, patient, literal),
        content_type="application/fhir+json",
        headers=world.auth("system"),
    )
    if "e" in literal:  # parses, to infinity: refused where it is
        [issue] = _outcome(refused, 400, "invalid")["issue"]
        assert issue["details"]["text"].startswith("QuestionnaireResponse.item[1].item[2].answer[0].valueDecimal:")
    else:  # not JSON, as on /v1
        [issue] = _outcome(refused, 400, "structure")["issue"]
        assert "not JSON numbers" in issue["details"]["text"]
    _checklist_waits(world, journey)
    assert _post(world, _answers(world, patient)).status_code == 201  # nothing was used up


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_a_non_finite_number_completing_the_task_over_v1_is_refused_and_the_task_stays_open(
    world: World, literal: str
) -> None:
    patient = f"SYN-FHIR-V1-NAN-{literal}"
    journey = world.waiting(patient)
    view = world.engine.instances.get(journey.view.id)
    [task] = [t for t in view.ready_tasks if t["element"] == "complete_checklist"]
    refused = world.client.post(
        f"/v1/instances/{view.id}/tasks/{task['id']}/complete",
        data='{"data": {"concerns": {"pain": 3}, "about_you": {"travel_km": LITERAL}}}'.replace("LITERAL", literal),
        content_type="application/json",
        headers=world.auth("clinician"),
    )
    assert refused.status_code in (400, 422), refused.json
    _checklist_waits(world, journey)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_the_task_form_refuses_a_non_finite_number_from_any_client(world: World, value: float) -> None:
    # What the FHIR mapping or an engine caller hands the engine is checked by the task's form.
    journey = world.waiting(f"SYN-FHIR-FORM-{value}")
    view = world.engine.instances.get(journey.view.id)
    [task] = [t for t in view.ready_tasks if t["element"] == "complete_checklist"]
    with pytest.raises(TaskDataError) as refused:
        world.engine.instances.complete_task(
            view.id, task["id"], {"concerns": {"pain": 3}, "about_you": {"travel_km": value}}, "clinician:cns-1"
        )
    assert ("/about_you/travel_km", "finite") in [(p.field, p.code) for p in refused.value.problems]
    _checklist_waits(world, journey)
