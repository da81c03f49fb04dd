"""/v1/webhooks: an admin subscribes (the secret once), lists (never the secret), removes, reads dead
letters and replays them; bad input is a located 400; other roles are refused (the role matrix). An
admin of one organisation reaches its organisation's subscriptions only: another's, or the
deployment's, answers as one that does not exist."""

from __future__ import annotations

from typing import Any

from flask import Flask
from helpers import PATHWAY, assert_problem, start

from engine.access import create_token
from engine.db.session import unit_of_work
from engine.webhooks import GuardedTransport, RetryPolicy, WebhookDeliverer


def _subscribe(client: Any, auth: Any, url: str = "https://ehr.example.org/hooks") -> dict[str, Any]:
    response = client.post(
        "/v1/webhooks/subscriptions",
        headers=auth("admin"),
        json={"url": url, "event_types": ["task.ready"], "description": "EHR inbox"},
    )
    assert response.status_code == 201, response.json
    return dict(response.json)


def test_an_admin_subscribes_and_sees_the_secret_only_once(client: Any, auth: Any) -> None:
    created = _subscribe(client, auth)
    assert created["secret"].startswith("whsec_")
    listed = client.get("/v1/webhooks/subscriptions", headers=auth("admin"))
    assert [s["id"] for s in listed.json["items"]] == [created["id"]]
    assert created["secret"] not in listed.get_data(as_text=True)
    removed = client.delete(f"/v1/webhooks/subscriptions/{created['id']}", headers=auth("admin"))
    assert removed.json == {"id": created["id"], "cancelled_deliveries": 0}
    assert client.get("/v1/webhooks/subscriptions", headers=auth("admin")).json["items"] == []
    assert_problem(
        client.delete(f"/v1/webhooks/subscriptions/{created['id']}", headers=auth("admin")), 404, "not-found"
    )


def test_bad_subscriptions_are_refused_with_every_field_named(client: Any, auth: Any) -> None:
    body = assert_problem(
        client.post(
            "/v1/webhooks/subscriptions",
            headers=auth("admin"),
            json={"url": "x" * 3000, "event_types": ["patient.moved"]},
        ),
        400,
        "request-invalid",
    )
    assert {e["field"] for e in body["errors"]} == {"/url", "/event_types/0"}
    body = assert_problem(
        client.post(
            "/v1/webhooks/subscriptions",
            headers=auth("admin"),
            json={"url": "file:///etc/passwd", "event_types": ["task.ready"]},
        ),
        400,
        "input-invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["/url"]
    for inside in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5432/",
        "http://[::1]/",
        "https://10.1.2.3/hooks",
        "http://localhost:8080/",
    ):
        body = assert_problem(
            client.post(
                "/v1/webhooks/subscriptions", headers=auth("admin"), json={"url": inside, "event_types": ["task.ready"]}
            ),
            400,
            "input-invalid",
        )
        assert [e["field"] for e in body["errors"]] == ["/url"]
        assert "CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in str(body)
    body = assert_problem(
        client.post(
            "/v1/webhooks/replay",
            headers=auth("admin"),
            json={"subscription_id": "whsub_0000000000000000", "since": "yesterday"},
        ),
        400,
        "request-invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["/since"]


def test_a_dead_letter_is_listed_and_replayed(app: Flask, client: Any, auth: Any) -> None:
    created = _subscribe(client, auth)
    start(client, auth)
    engine = app.extensions["carepath"]
    # The receiver's name now resolves to loopback (DNS rebinding): the attempt is refused, not sent.
    sender = WebhookDeliverer(
        engine.sessions,
        engine.clock,
        RetryPolicy(max_attempts=1, timeout_seconds=2),
        GuardedTransport(resolver=lambda host, port: ["127.0.0.1"]),
    )
    assert [(a.outcome, a.error) for a in sender.run_once()] == [("dead", "AddressNotAllowedError")]
    dead = client.get(f"/v1/webhooks/dead-letters?subscription_id={created['id']}", headers=auth("admin")).json
    assert [d["event_type"] for d in dead["items"]] == ["task.ready"] and dead["items"][0]["attempts"] == 1
    replayed = client.post(
        "/v1/webhooks/replay", headers=auth("admin"), json={"delivery_ids": [dead["items"][0]["id"]]}
    )
    assert [(d["message_id"], d["status"]) for d in replayed.json["items"]] == [
        (dead["items"][0]["message_id"], "pending")
    ]
    assert client.get("/v1/webhooks/dead-letters", headers=auth("admin")).json["items"] == []


# --- whose: an admin of one organisation (docs/access.md) ----------------------------------------------


def _admin_of(app: Flask, organisation: str, teams: list[str] | None = None) -> dict[str, str]:
    """The Authorization header of an admin token limited to ``organisation`` (and ``teams`` in it)."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(
            session, "admin", f"admin {organisation}", engine.clock, organisation=organisation, teams=teams
        )
    return {"Authorization": f"Bearer {secret}"}


def _add(client: Any, headers: dict[str, str], host: str) -> dict[str, Any]:
    response = client.post(
        "/v1/webhooks/subscriptions",
        headers=headers,
        json={"url": f"https://{host}/hooks", "event_types": ["task.ready"]},
    )
    assert response.status_code == 201, response.json
    return dict(response.json)


def _same(hidden: Any, missing: Any, hidden_id: str, missing_id: str) -> None:
    """A hidden subscription answers exactly as a missing one: status and body, bar the request id and the id."""

    def normal(response: Any, key: str) -> str:
        text = response.get_data(as_text=True).replace(response.headers["X-Request-ID"], "")
        return f"{response.status_code} {text.replace(key, 'KEY')}"

    assert hidden.status_code == 404
    assert normal(hidden, hidden_id) == normal(missing, missing_id)


def test_an_organisations_admin_adds_and_lists_only_its_own_subscriptions(app: Flask, client: Any, auth: Any) -> None:
    everyone = _add(client, auth("admin"), "ehr.example.org")  # a token made without an organisation
    rx1 = _add(client, _admin_of(app, "rx1", ["breast"]), "rx1.example.org")  # a team's admin: its organisation's
    rx2 = _add(client, _admin_of(app, "rx2"), "rx2.example.org")
    assert (everyone["organisation"], rx1["organisation"], rx2["organisation"]) == (None, "rx1", "rx2")
    for headers, seen in (
        (_admin_of(app, "rx1"), [rx1]),
        (_admin_of(app, "rx2"), [rx2]),
        (_admin_of(app, "rx3"), []),
        (auth("admin"), [everyone, rx1, rx2]),
    ):
        listed = client.get("/v1/webhooks/subscriptions", headers=headers).json["items"]
        assert sorted((s["id"], s["organisation"]) for s in listed) == sorted(
            (s["id"], s["organisation"]) for s in seen
        )


def test_another_organisations_subscription_answers_as_a_missing_one(app: Flask, client: Any, auth: Any) -> None:
    rx1, rx2 = _admin_of(app, "rx1"), _admin_of(app, "rx2")
    theirs = _add(client, rx2, "rx2.example.org")["id"]
    deployments = _add(client, auth("admin"), "ehr.example.org")["id"]
    missing = "whsub_0123456789abcdef"
    asks = {
        "remove": lambda sub: client.delete(f"/v1/webhooks/subscriptions/{sub}", headers=rx1),
        "dead letters": lambda sub: client.get(f"/v1/webhooks/dead-letters?subscription_id={sub}", headers=rx1),
        "replay": lambda sub: client.post("/v1/webhooks/replay", headers=rx1, json={"subscription_id": sub}),
    }
    for ask in asks.values():
        assert_problem(ask(missing), 404, "not-found")
        for hidden in (theirs, deployments):
            _same(ask(hidden), ask(missing), hidden, missing)
    listed = client.get("/v1/webhooks/subscriptions", headers=auth("admin")).json["items"]
    assert {s["id"] for s in listed} == {theirs, deployments}  # neither was removed
    assert client.delete(f"/v1/webhooks/subscriptions/{theirs}", headers=rx2).status_code == 200


def test_dead_letters_and_replays_stay_within_the_organisation(app: Flask, client: Any, auth: Any) -> None:
    rx1, rx2 = _admin_of(app, "rx1"), _admin_of(app, "rx2")
    subscriptions = {
        "rx1": _add(client, rx1, "rx1.example.org")["id"],
        "rx2": _add(client, rx2, "rx2.example.org")["id"],
        "deployment": _add(client, auth("admin"), "ehr.example.org")["id"],
    }
    for organisation in ("rx1", "rx2"):
        started = client.post(
            "/v1/instances",
            json={"pathway_id": PATHWAY, "patient_ref": f"MRN-{organisation}", "organisation": organisation},
            headers=auth("system"),
        )
        assert started.status_code == 201, started.json
    engine = app.extensions["carepath"]
    sender = WebhookDeliverer(
        engine.sessions,
        engine.clock,
        RetryPolicy(max_attempts=1, timeout_seconds=2),
        GuardedTransport(resolver=lambda host, port: ["127.0.0.1"]),  # refused: every attempt is dead at once
    )
    assert {a.outcome for a in sender.run_once()} == {"dead"}
    every = client.get("/v1/webhooks/dead-letters", headers=auth("admin")).json["items"]
    whose = {subscription: organisation for organisation, subscription in subscriptions.items()}
    assert sorted(whose[d["subscription_id"]] for d in every) == ["deployment", "deployment", "rx1", "rx2"]
    own = client.get("/v1/webhooks/dead-letters", headers=rx1).json["items"]
    assert {d["subscription_id"] for d in own} == {subscriptions["rx1"]} and len(own) == 1

    replayed = client.post("/v1/webhooks/replay", headers=rx1, json={"delivery_ids": [d["id"] for d in every]})
    assert [d["id"] for d in replayed.json["items"]] == [d["id"] for d in own]  # the others' ids: as missing ones
    by_range = client.post(
        "/v1/webhooks/replay",
        headers=rx2,
        json={"subscription_id": subscriptions["rx2"], "since": "2000-01-01T00:00:00Z"},
    )
    assert [d["subscription_id"] for d in by_range.json["items"]] == [subscriptions["rx2"]]
    still_dead = client.get("/v1/webhooks/dead-letters", headers=auth("admin")).json["items"]
    assert sorted(whose[d["subscription_id"]] for d in still_dead) == ["deployment", "deployment"]
