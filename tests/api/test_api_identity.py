"""People on the API with their OpenID Connect provider's access tokens, beside systems' API tokens (issue 18,
point 1): the mapped role decides, the trail names the person, and every refused token is a 401 problem
that does not say why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from api_contract import ContractClient, make_token
from flask import Flask
from helpers import PATHWAY, assert_problem, complete, start
from oidc_provider import AUDIENCE, REFUSALS, FakeProvider, forged_tokens, serve

from api import create_app
from engine import ManualClock
from engine.identity import REFUSED

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeProvider]:
    with serve(FakeProvider(), clock.now()) as provider:
        yield provider


@pytest.fixture
def oidc_app(deployed_database_url: str, clock: ManualClock, fake: FakeProvider) -> Iterator[Flask]:
    # Every response is checked against the OpenAPI document (ContractClient), as in the other API tests.
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
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


@pytest.fixture
def client(oidc_app: Flask) -> Any:
    return oidc_app.test_client()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_a_person_acts_with_their_mapped_role_and_the_trail_names_them(
    oidc_app: Flask, client: Any, fake: FakeProvider, clock: ManualClock
) -> None:
    system = make_token(oidc_app, "system")  # systems keep their API tokens beside people's tokens
    instance = start(client, lambda role, **headers: bearer(system, **headers)).json
    person = fake.token(clock.now())
    listed = client.get("/v1/instances", headers=bearer(person))
    assert listed.status_code == 200 and [i["id"] for i in listed.json["items"]] == [instance["id"]]
    done = complete(
        client,
        lambda role, **headers: bearer(person, **headers),
        instance,
        {"anxiety": 2, "fatigue": 3},
        **{"Idempotency-Key": "complete-once"},
    )
    assert done.status_code == 200, done.json
    auditor = fake.token(clock.now(), preferred_username="a.auditor", roles=["auditor"])
    events = client.get(f"/v1/instances/{instance['id']}/events", headers=bearer(auditor)).json["items"]
    assert len(events) == 2 and events[0]["actor"].startswith("system:tok_")
    assert events[1]["actor"] == "clinician:staff:j.smith"


def test_the_mapped_role_is_enforced(client: Any, fake: FakeProvider, clock: ManualClock) -> None:
    person = fake.token(clock.now())  # a clinician: never an auditor's or an author's actions
    assert_problem(client.get("/v1/access-log", headers=bearer(person)), 403, "forbidden")
    assert_problem(
        client.post("/v1/pathways/validate", headers=bearer(person), data={}, content_type="multipart/form-data"),
        403,
        "forbidden",
    )
    assert_problem(client.get("/v1/audit/verify", headers=bearer(person)), 403, "forbidden")


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_token_is_a_401_that_does_not_say_why(
    client: Any, fake: FakeProvider, clock: ManualClock, case: str
) -> None:
    token = forged_tokens(fake, clock.now())[case]
    response = client.get("/v1/instances", headers=bearer(token))
    body = assert_problem(response, 401, "unauthenticated")
    assert body["detail"] == REFUSED and "errors" not in body
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="carepath"'


def test_a_token_stops_working_when_it_expires(client: Any, fake: FakeProvider, clock: ManualClock) -> None:
    person = fake.token(clock.now(), lifetime=300)
    assert client.get("/v1/instances", headers=bearer(person)).status_code == 200
    clock.advance(timedelta(seconds=360))  # past the expiry and the 60 s leeway
    assert_problem(client.get("/v1/instances", headers=bearer(person)), 401, "unauthenticated")


def test_without_a_provider_a_jwt_is_not_accepted(app: Flask, fake: FakeProvider, clock: ManualClock) -> None:
    """The stock app (API tokens only) does not know the provider: a valid-looking JWT is refused."""
    assert_problem(
        app.test_client().get("/v1/instances", headers=bearer(fake.token(clock.now()))), 401, "unauthenticated"
    )


def test_a_role_map_naming_an_unknown_role_refuses_to_start(
    deployed_database_url: str, clock: ManualClock, fake: FakeProvider
) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": deployed_database_url,
                "PATHWAYS_DIR": TESTS / "pathways",
                "CLOCK": clock,
                "OIDC_ISSUER": fake.issuer,
                "OIDC_AUDIENCE": AUDIENCE,
                "OIDC_ROLE_MAP": {"doctors": "doctor"},
            }
        )


def test_the_provider_is_configured_from_the_environment(
    deployed_database_url: str, clock: ManualClock, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a server starts: CAREPATH_OIDC_* variables (Flask reads a JSON object as a dict)."""
    monkeypatch.setenv("CAREPATH_OIDC_ISSUER", fake.issuer)
    monkeypatch.setenv("CAREPATH_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CAREPATH_OIDC_ROLE_CLAIM", "groups")
    monkeypatch.setenv("CAREPATH_OIDC_ROLE_MAP", '{"cn=auditors,ou=carepath": "auditor"}')
    app = create_app(
        {"TESTING": True, "DATABASE_URL": deployed_database_url, "PATHWAYS_DIR": TESTS / "pathways", "CLOCK": clock}
    )
    try:
        token = fake.token(clock.now(), groups=["cn=auditors,ou=carepath"])
        assert app.test_client().get("/v1/access-log", headers=bearer(token)).status_code == 200  # auditors' own
    finally:
        app.extensions["carepath"].close()


def test_a_persons_organisation_and_teams_come_from_their_claims(
    oidc_app: Flask, client: Any, fake: FakeProvider, clock: ManualClock
) -> None:
    """Care teams (docs/access.md): the provider's claims place a person; without a teams claim a clinician sees
    no patient, without an organisation nobody does; a claim that is not an identifier refuses the token."""
    system = make_token(oidc_app, "system")
    for team in ("general", "lung"):
        started = client.post(
            "/v1/instances",
            json={"pathway_id": PATHWAY, "patient_ref": f"MRN-{team}", "care_team": team},
            headers=bearer(system),
        )
        assert started.status_code == 201, started.json
    listed = {"general": "MRN-general", "lung": "MRN-lung"}
    for claims, seen in (
        ({}, {"general"}),
        ({"carepath_teams": "lung"}, {"lung"}),
        ({"carepath_teams": None}, set()),
        ({"carepath_organisation": None}, set()),
        ({"carepath_organisation": "rx9", "carepath_teams": ["general", "lung"]}, set()),
        ({"roles": ["auditor"], "carepath_teams": None}, {"general", "lung"}),
    ):
        token = fake.token(clock.now(), **claims)
        found = client.get("/v1/instances", headers=bearer(token))
        assert found.status_code == 200, (claims, found.json)
        assert {i["patient_ref"] for i in found.json["items"]} == {listed[t] for t in seen}, claims
    for bad in ({"carepath_teams": ["general", "Dr Smith"]}, {"carepath_organisation": ["local"]}):
        assert_problem(
            client.get("/v1/instances", headers=bearer(fake.token(clock.now(), **bad))), 401, "unauthenticated"
        )


def test_an_admin_without_an_organisation_reaches_no_webhook_subscription(
    oidc_app: Flask, client: Any, fake: FakeProvider, clock: ManualClock
) -> None:
    """A person signed in without an organisation claim reaches no organisation: they see no subscription
    (not even the deployment's) and may not add one, which would be no organisation's (docs/access.md)."""
    everyone = make_token(oidc_app, "admin")
    added = client.post(
        "/v1/webhooks/subscriptions",
        headers=bearer(everyone),
        json={"url": "https://ehr.example.org/hooks", "event_types": ["task.ready"]},
    )
    assert added.status_code == 201, added.json
    person = fake.token(clock.now(), roles=["admin"], carepath_organisation=None)
    assert client.get("/v1/webhooks/subscriptions", headers=bearer(person)).json["items"] == []
    assert_problem(
        client.post(
            "/v1/webhooks/subscriptions",
            headers=bearer(person),
            json={"url": "https://ehr.example.org/hooks", "event_types": ["task.ready"]},
        ),
        403,
        "forbidden",
    )
    assert_problem(
        client.delete(f"/v1/webhooks/subscriptions/{added.json['id']}", headers=bearer(person)), 404, "not-found"
    )
