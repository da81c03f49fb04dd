"""POST /v1/sandbox/clock and the CarePath-Sandbox header (issue 17, point 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import assert_problem

from api import create_app
from engine.access import create_token
from engine.clock import ManualClock
from engine.db.session import unit_of_work
from engine.sandbox import SandboxRefusedError

TESTS = Path(__file__).parent.parent


def _app(url: str, clock: ManualClock) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            "SANDBOX": True,
        }
    )


@pytest.fixture
def sandbox(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    app = _app(deployed_database_url, clock)
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


def _auth(app: Flask, role: str) -> dict[str, str]:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, f"test {role}", engine.clock)
    return {"Authorization": f"Bearer {secret}"}


def test_an_author_moves_the_clock_and_every_response_says_so(sandbox: Flask, clock: ManualClock) -> None:
    client = sandbox.test_client()
    health = client.get("/v1/health")
    assert health.headers["CarePath-Sandbox"] == f"clock={clock.now().isoformat()}"
    assert client.get("/v1/no-such-thing").headers["CarePath-Sandbox"].startswith("clock=")
    assert_problem(
        client.post("/v1/sandbox/clock", json={"advance": "P3M"}, headers=_auth(sandbox, "clinician")), 403, "forbidden"
    )
    moved = client.post("/v1/sandbox/clock", json={"advance": "P3M"}, headers=_auth(sandbox, "author"))
    assert moved.status_code == 200
    assert moved.json["now"] == "2026-04-15T09:00:00+00:00" and moved.json["offset_seconds"] == 90 * 86400
    assert moved.headers["CarePath-Sandbox"] == "clock=2026-04-15T09:00:00+00:00"
    started = client.post(
        "/v1/instances",
        json={"pathway_id": "test_timer_p1d", "patient_ref": "SYN-0001"},
        headers=_auth(sandbox, "system"),
    )
    assert started.json["next_due_at"] == "2026-04-16T09:00:00+00:00"  # the sandbox's day, not the real one


@pytest.mark.parametrize("advance", ["-P1D", "P0D", "P10Y", "soon", 3])
def test_negative_and_absurd_advances_are_refused(sandbox: Flask, advance: Any) -> None:
    response = sandbox.test_client().post(
        "/v1/sandbox/clock", json={"advance": advance}, headers=_auth(sandbox, "author")
    )
    assert response.status_code == 400 and response.json["errors"][0]["field"] in ("/advance", "advance")


def test_outside_a_sandbox_the_endpoint_is_404_and_no_header(client: Any, auth: Any) -> None:
    response = client.post("/v1/sandbox/clock", json={"advance": "P3M"}, headers=auth("author"))
    assert_problem(response, 404, "not-found")
    assert "CarePath-Sandbox" not in response.headers


def test_a_server_refuses_sandbox_mode_on_real_patients(
    app: Flask, client: Any, auth: Any, deployed_database_url: str, clock: ManualClock
) -> None:
    started = client.post(
        "/v1/instances", json={"pathway_id": "test_timer_p1d", "patient_ref": "MRN-0001"}, headers=auth("system")
    )
    assert started.status_code == 201
    with pytest.raises(SandboxRefusedError):
        _app(deployed_database_url, clock)
