"""Four eyes over HTTP (issue 18, point 4): a deploy is pending; a second author activates it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_contract import ContractClient, make_token
from flask import Flask
from helpers import PATHWAY, assert_problem, deploy
from oidc_provider import AUDIENCE, FakeProvider, serve

from api import create_app
from engine import ManualClock
from engine.access import create_token
from engine.db.session import unit_of_work

TESTS = Path(__file__).resolve().parent.parent
CHANGED = (
    (TESTS / "pathways" / "assessment.bpmn")
    .read_bytes()
    .replace(b'name="Test assessment pathway"', b'name="Test assessment pathway v2"')
)


@pytest.fixture
def app(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    """The app as a production server runs it: four eyes on (the default)."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": deployed_database_url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    app.test_client_class = ContractClient
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


def _held(app: Flask, staff_id: str | None, role: str = "author") -> dict[str, str]:
    """The Authorization header of a new token held by ``staff_id`` (None: held by nobody named)."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, "test", engine.clock, staff_id=staff_id)
    return {"Authorization": f"Bearer {secret}"}


def _scoped(app: Flask, role: str, organisation: str) -> str:
    """A new token of ``role`` scoped to ``organisation`` (every team of it)."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, "test", engine.clock, organisation=organisation)
    return secret


def _deploy(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    [info] = deploy(client, headers, {"assessment.bpmn": CHANGED})["items"]
    return dict(info)


def _start(client: Any, app: Flask, patient_ref: str) -> str:
    system = {"Authorization": f"Bearer {make_token(app, 'system')}"}
    response = client.post("/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": patient_ref}, headers=system)
    assert response.status_code == 201, response.json
    return str(response.json["pathway_version"])


def test_a_deployed_version_is_pending_until_a_second_author_activates_it(app: Flask, client: Any) -> None:
    alice, bob = _held(app, "alice"), _held(app, "bob")
    before = client.get(f"/v1/pathways/{PATHWAY}", headers=alice).json
    assert before["active"] and before["activated_by"] == "system"  # the bootstrap
    pending = _deploy(client, alice)
    assert pending["latest"] and not pending["active"] and pending["activated_at"] is None
    assert pending["deployed_by"].endswith(" for staff:alice")
    assert _start(client, app, "MRN-1") == before["version"]  # starts keep the active version
    assert client.get(f"/v1/pathways/{PATHWAY}", headers=alice).json["version"] == before["version"]

    url = f"/v1/pathways/{PATHWAY}/versions/{pending['version'][:12]}/activation"
    activated = client.post(url, headers=bob)
    assert activated.status_code == 200, activated.json
    assert activated.json["active"] and activated.json["activated_by"].endswith(" for staff:bob")
    assert _start(client, app, "MRN-2") == pending["version"]
    versions = client.get(f"/v1/pathways/{PATHWAY}/versions", headers=_held(app, None, "auditor")).json["items"]
    assert [(v["version"], v["active"]) for v in versions] == [(pending["version"], True), (before["version"], False)]
    assert versions[0]["deployed_by"] == pending["deployed_by"] and versions[0]["activated_by"].endswith("staff:bob")
    assert_problem(client.post(url, headers=_held(app, "carol")), 409, "version-state-conflict")


def test_the_deployer_cannot_activate_by_any_of_their_tokens(app: Flask, client: Any) -> None:
    alice = _held(app, "alice")
    pending = _deploy(client, alice)
    url = f"/v1/pathways/{PATHWAY}/versions/{pending['version']}/activation"
    body = assert_problem(client.post(url, headers=alice), 403, "four-eyes")  # the same token
    assert "staff:alice" in body["detail"] and "second author" in body["detail"]
    assert_problem(client.post(url, headers=_held(app, "alice")), 403, "four-eyes")  # another token of hers
    assert_problem(client.post(url, headers=_held(app, None)), 403, "four-eyes")  # a token naming nobody
    # Her token cannot claim to act for someone else either.
    assert_problem(client.post(url, headers={**alice, "X-On-Behalf-Of": "bob"}), 403, "forbidden")
    assert_problem(client.post(url, headers=_held(app, "bob", "clinician")), 403, "forbidden")
    assert not client.get(f"/v1/pathways/{PATHWAY}/versions", headers=alice).json["items"][0]["active"]
    assert_problem(client.post(f"/v1/pathways/{PATHWAY}/versions/zzzz/activation", headers=alice), 404, "not-found")


def test_a_migration_is_asked_for_by_one_author_and_approved_by_another(app: Flask, client: Any) -> None:
    alice, bob = _held(app, "alice"), _held(app, "bob")
    system = {"Authorization": f"Bearer {make_token(app, 'system')}"}
    started = client.post("/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": "MRN-7"}, headers=system).json
    pending = _deploy(client, alice)
    client.post(f"/v1/pathways/{PATHWAY}/versions/{pending['version']}/activation", headers=bob)
    moving = assert_problem(
        client.post(f"/v1/pathways/{PATHWAY}/migrate", json={"dry_run": False}, headers=alice), 403, "four-eyes"
    )
    assert "migration request" in moving["detail"]
    assert client.post(f"/v1/pathways/{PATHWAY}/migrate", json={"dry_run": True}, headers=alice).status_code == 200

    asked = client.post(f"/v1/pathways/{PATHWAY}/migration-requests", headers=alice)
    assert asked.status_code == 201, asked.json
    request = asked.json
    assert request["status"] == "requested" and request["target_version"] == pending["version"]
    assert [i["instance_id"] for i in request["report"]["instances"]] == [started["id"]]
    assert "MRN-7" not in asked.get_data(as_text=True)
    url = f"/v1/pathways/{PATHWAY}/migration-requests/{request['id']}/approval"
    assert_problem(client.post(url, headers=alice), 403, "four-eyes")
    assert_problem(client.post(url, headers=_held(app, "alice")), 403, "four-eyes")
    assert (
        client.get(f"/v1/instances/{started['id']}", headers=system).json["pathway_version"]
        == started["pathway_version"]
    )

    approved = client.post(url, headers=bob)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "executed" and approved.json["approved_by"].endswith("staff:bob")
    assert approved.json["result"]["instances"][0]["migrated"] is True
    assert client.get(f"/v1/instances/{started['id']}", headers=system).json["pathway_version"] == pending["version"]
    assert_problem(client.post(url, headers=_held(app, "carol")), 409, "version-state-conflict")
    listed = client.get(f"/v1/pathways/{PATHWAY}/migration-requests", headers=_held(app, None, "auditor")).json
    assert [(r["id"], r["requested_by"], r["approved_by"]) for r in listed["items"]] == [
        (request["id"], request["requested_by"], approved.json["approved_by"])
    ]
    assert_problem(client.get(f"/v1/pathways/{PATHWAY}/migration-requests", headers=system), 403, "forbidden")
    # An auditor of one organisation sees its own instances in the reports, never another organisation's.
    for organisation, seen in ((started["organisation"], [started["id"]]), ("another-trust", [])):
        auditor = {"Authorization": f"Bearer {_scoped(app, 'auditor', organisation)}"}
        [item] = client.get(f"/v1/pathways/{PATHWAY}/migration-requests", headers=auditor).json["items"]
        assert [i["instance_id"] for i in item["report"]["instances"]] == seen, organisation
        assert [i["instance_id"] for i in item["result"]["instances"]] == seen, organisation
    other = f"/v1/pathways/test_triage/migration-requests/{request['id']}/approval"
    assert_problem(client.post(other, headers=bob), 404, "not-found")


def test_a_rule_set_version_is_recorded_pending_and_activated_by_a_second_author(
    deployed_database_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": deployed_database_url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "RULES_DIR": rules,
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    app.test_client_class = ContractClient
    app.extensions["carepath"].rules.recheck_seconds = 0  # see a changed file at once (a server: within a second)
    client = app.test_client()
    try:
        alice, bob = _held(app, "alice"), _held(app, "bob")
        [bootstrap] = client.get("/v1/rule-sets/supportive_care/versions", headers=alice).json["items"]
        assert bootstrap["active"] and bootstrap["activated_by"] == "system"  # recorded when the server started
        rule_file = rules / "supportive_care.yaml"
        rule_file.write_text(rule_file.read_text() + "\n# reviewed\n")
        deployed = client.post("/v1/rule-sets", headers=alice)
        assert deployed.status_code == 201, deployed.json
        [pending] = deployed.json["items"]
        assert not pending["active"] and pending["activated_at"] is None and pending["deployed_by"].endswith("alice")
        url = f"/v1/rule-sets/supportive_care/versions/{pending['version'][:12]}/activation"
        assert_problem(client.post(url, headers=alice), 403, "four-eyes")
        assert_problem(client.post(url, headers=_held(app, "alice")), 403, "four-eyes")
        assert_problem(client.post(url, headers=_held(app, "bob", "clinician")), 403, "forbidden")
        activated = client.post(url, headers=bob)
        assert activated.status_code == 200 and activated.json["active"], activated.json
        listed = client.get("/v1/rule-sets/supportive_care/versions", headers=_held(app, None, "auditor")).json
        assert [(v["version"], v["active"]) for v in listed["items"]] == [
            (pending["version"], True),
            (bootstrap["version"], False),
        ]
        assert_problem(client.post(url, headers=_held(app, "carol")), 409, "version-state-conflict")
        assert_problem(client.get("/v1/rule-sets/nope/versions", headers=alice), 404, "not-found")
    finally:
        app.extensions["carepath"].close()


def test_a_person_signed_in_is_the_same_person_as_their_token(deployed_database_url: str, clock: ManualClock) -> None:
    """OpenID Connect: alice deploys with her token and cannot activate with her provider's access token
    (nor with a second one); bob, signed in, can."""
    with serve(FakeProvider(), clock.now()) as fake:
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": deployed_database_url,
                "PATHWAYS_DIR": TESTS / "pathways",
                "CLOCK": clock,
                "AUTH_CACHE_SECONDS": 0,
                "OIDC_ISSUER": fake.issuer,
                "OIDC_AUDIENCE": AUDIENCE,
                "OIDC_STAFF_ID_CLAIM": "preferred_username",
            }
        )
        app.test_client_class = ContractClient
        client = app.test_client()
        try:
            pending = _deploy(client, _held(app, "alice"))
            url = f"/v1/pathways/{PATHWAY}/versions/{pending['version']}/activation"
            for lifetime in (300, 600):  # two different access tokens of hers
                token = fake.token(clock.now(), preferred_username="alice", roles=["author"], lifetime=lifetime)
                body = assert_problem(client.post(url, headers={"Authorization": f"Bearer {token}"}), 403, "four-eyes")
                assert "staff:alice" in body["detail"]
            bob = fake.token(clock.now(), preferred_username="bob", roles=["author"])
            activated = client.post(url, headers={"Authorization": f"Bearer {bob}"})
            assert activated.status_code == 200 and activated.json["activated_by"] == "author:staff:bob"
        finally:
            app.extensions["carepath"].close()
