"""Rule evaluations over HTTP: an instance's evaluations, one with its exact rule texts, and why / why not."""

from __future__ import annotations

import json
from typing import Any

from helpers import assert_problem, assessed, start

MISSING = "00000000-0000-4000-8000-000000000000"


def _evaluation_id(client: Any, auth: Any, concerns: dict[str, int]) -> tuple[str, str]:
    instance = assessed(client, auth, concerns)
    listed = client.get(f"/v1/instances/{instance['id']}/evaluations", headers=auth("auditor")).json["items"]
    assert len(listed) == 1
    return instance["id"], listed[0]["id"]


def test_an_instances_evaluations(client: Any, auth: Any) -> None:
    instance = assessed(client, auth, {"worry_fear_anxiety": 9, "fatigue": 2})
    response = client.get(f"/v1/instances/{instance['id']}/evaluations", headers=auth("clinician"))
    assert response.status_code == 200
    [evaluation] = response.json["items"]
    assert evaluation["instance_id"] == instance["id"] and evaluation["ruleset"] == "supportive_care"
    assert len(evaluation["ruleset_version"]) == 64 and evaluation["created_at"].startswith("2026-01-15")
    assert {"rule": "psych-support-urgent", "matched": ["concern:worry_fear_anxiety"]} in evaluation["firings"]
    assert [r["intervention"] for r in evaluation["outcomes"]["referrals"]] == ["psychological-support-referral"]
    plain = start(client, auth).json  # a pathway without rules
    assert client.get(f"/v1/instances/{plain['id']}/evaluations", headers=auth("auditor")).json == {"items": []}
    assert_problem(client.get(f"/v1/instances/{MISSING}/evaluations", headers=auth("auditor")), 404, "not-found")
    assert_problem(client.get(f"/v1/instances/{plain['id']}/evaluations", headers=auth("system")), 403, "forbidden")


def test_one_evaluation_with_the_rule_text_it_used(client: Any, auth: Any) -> None:
    instance_id, evaluation_id = _evaluation_id(client, auth, {"worry_fear_anxiety": 9, "fatigue": 2})
    response = client.get(f"/v1/evaluations/{evaluation_id}", headers=auth("auditor"))
    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["instance_id"], body["ruleset"]) == (evaluation_id, instance_id, "supportive_care")
    facts = {f["id"]: f for f in body["facts"]}
    assert facts["concern:fatigue"]["score"] == 2 and facts["context"]["age"] == 54
    assert body["rule_file"] == "supportive_care.yaml"
    assert "id: psych-support-urgent" in body["rule_text"]
    assert set(body["catalogue_texts"]) == {
        "concerns.yaml",
        "interventions.yaml",
        "services.yaml",
        "warning_signs.yaml",
        "diagnoses.yaml",
    }  # the catalogue in use, warning signs and the diagnoses' vocabulary too
    # No server folders (the files' own texts may hold any URL: a warning sign's guidance cites web pages).
    assert "/rules/" not in json.dumps({k: v for k, v in body.items() if k not in ("rule_text", "catalogue_texts")})
    assert_problem(client.get(f"/v1/evaluations/{MISSING}", headers=auth("clinician")), 404, "not-found")
    assert_problem(client.get("/v1/evaluations/not-a-uuid", headers=auth("clinician")), 404, "not-found")


def test_an_evaluation_leads_to_its_event_and_the_pathway_version_it_ran_under(client: Any, auth: Any) -> None:
    """An auditor follows a referral from the need and the rule to the pathway version: the evaluation names
    the rules_evaluated event of the trail that records it, and the version the instance was on then."""
    instance_id, evaluation_id = _evaluation_id(client, auth, {"worry_fear_anxiety": 9})
    traced = client.get(f"/v1/evaluations/{evaluation_id}", headers=auth("auditor")).json["trail_event"]
    events = client.get(f"/v1/instances/{instance_id}/events", headers=auth("auditor")).json["items"]
    [recorded] = [e for e in events if e["type"] == "rules_evaluated"]
    assert recorded["payload"]["evaluation_id"] == evaluation_id
    instance = client.get(f"/v1/instances/{instance_id}", headers=auth("clinician")).json
    assert traced == {
        "seq": recorded["seq"],
        "at": recorded["at"],
        "pathway_id": instance["pathway_id"],
        "pathway_version": recorded["pathway_version"],
    }
    assert traced["pathway_version"] == instance["pathway_version"]


def test_why_a_referral_was_proposed(client: Any, auth: Any) -> None:
    _, evaluation_id = _evaluation_id(client, auth, {"worry_fear_anxiety": 9, "fatigue": 2})
    response = client.get(
        f"/v1/evaluations/{evaluation_id}/explanation?why=psychological-support-referral", headers=auth("auditor")
    )
    assert response.status_code == 200
    body = response.json
    assert (body["kind"], body["made"], body["code"]) == ("why", True, "psychological-support-referral")
    [reason] = body["reasons"]
    assert reason["rule_id"] == "psych-support-urgent" and reason["guidance"][0]["source"] == "NICE CSG4"
    assert reason["matched"] == [
        {
            "id": "concern:worry_fear_anxiety",
            "t": "concern",
            "code": "worry_fear_anxiety",
            "domain": "emotional",
            "score": 9,
        }
    ]
    assert reason["loc"]["file"] == "supportive_care.yaml" and reason["loc"]["line"] > 0
    assert "'psychological-support-referral' was proposed by 1 rule(s)" in body["text"]
    assert "[supportive_care.yaml:" in body["text"] and "/rules/" not in response.get_data(as_text=True)


def test_why_not(client: Any, auth: Any) -> None:
    _, evaluation_id = _evaluation_id(client, auth, {"worry_fear_anxiety": 9, "fatigue": 2})
    url = f"/v1/evaluations/{evaluation_id}/explanation"
    body = client.get(f"{url}?why_not=fatigue-management", headers=auth("clinician")).json
    assert (body["kind"], body["made"], body["note"]) == ("why_not", False, None)
    assert body["nearest"]["rule_id"] == "fatigue-support"
    assert body["nearest"]["failed"][0]["actual"] == "fatigue scored 2"
    assert "Nearest rule that did not fire: fatigue-support" in body["text"]
    unknown = client.get(f"{url}?why_not=fatigue-managment", headers=auth("clinician")).json
    assert unknown["nearest"] is None and "No rule in this version proposes" in unknown["note"]
    assert "fatigue-management" in unknown["note"]  # did you mean
    not_made = client.get(f"{url}?why=fatigue-management", headers=auth("clinician")).json
    assert (not_made["kind"], not_made["made"], not_made["reasons"]) == ("why", False, [])


def test_explanation_needs_exactly_one_valid_code(client: Any, auth: Any) -> None:
    _, evaluation_id = _evaluation_id(client, auth, {"worry_fear_anxiety": 9})
    url = f"/v1/evaluations/{evaluation_id}/explanation"
    for query in ("", "?why=a&why_not=b", "?why=has%20space", "?why_not=" + "x" * 101, "?because=a"):
        body = assert_problem(client.get(url + query, headers=auth("auditor")), 400, "request-invalid")
        assert body["errors"], query
    assert_problem(
        client.get(f"/v1/evaluations/{MISSING}/explanation?why=x", headers=auth("auditor")), 404, "not-found"
    )
    assert_problem(client.get(f"{url}?why=x", headers=auth("author")), 403, "forbidden")
