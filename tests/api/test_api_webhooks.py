"""/v1/webhooks: an admin subscribes (the secret once), lists (never the secret), removes, reads dead
letters and replays them; bad input is a located 400; other roles are refused (the role matrix)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from helpers import assert_problem, start

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
