"""An Idempotency-Key's outcome commits with its use case: when storing the response fails after the
use case committed (a database blip), or the view fails after it, a retry with the key answers from
what committed -- the same status, the same resource -- and never runs the use case a second time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from api_contract import make_token, running_app
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import api.instances
from engine import ManualClock
from engine.db.models import PathwayInstance
from engine.db.session import read_only
from engine.idempotency import LEASE, IdempotencyStore

BODY = {"pathway_id": "test_assessment", "patient_ref": "MRN-1"}


def _blip(*_args: Any, **_kwargs: Any) -> None:
    raise OperationalError("UPDATE idempotency_records", {}, Exception("server closed the connection unexpectedly"))


@pytest.fixture(params=[False, True], ids=["one-instance", "concurrent-instances"])
def app(request: pytest.FixtureRequest, deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    """The app, also with CAREPATH_ALLOW_CONCURRENT_INSTANCES, where a second run would start a second instance."""
    with running_app(deployed_database_url, clock, ALLOW_CONCURRENT_INSTANCES=request.param) as app:
        yield app


def _instances(app: Flask) -> int:
    with read_only(app.extensions["carepath"].sessions) as session:
        return int(session.scalar(select(func.count()).where(PathwayInstance.patient_ref == "MRN-1")) or 0)


def test_a_response_not_stored_after_the_commit_is_answered_from_what_committed(app: Flask, clock: ManualClock) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {make_token(app, 'system')}", "Idempotency-Key": "start-1"}
    with mock.patch.object(IdempotencyStore, "finish", _blip):
        first = client.post("/v1/instances", json=BODY, headers=headers)
    assert first.status_code == 201  # it committed: the client gets its answer, not a 503 inviting a retry
    for wait in (timedelta(seconds=5), LEASE + timedelta(seconds=1)):  # before and after the lease
        clock.advance(wait)
        retry = client.post("/v1/instances", json=BODY, headers=headers)
        assert retry.status_code == 201, retry.get_json()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.get_json()["id"] == first.get_json()["id"]
        assert retry.headers["Location"] == first.headers["Location"]
        assert retry.get_json() == first.get_json()
    assert _instances(app) == 1


def test_a_view_failing_after_the_commit_keeps_the_key(app: Flask, clock: ManualClock) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {make_token(app, 'system')}", "Idempotency-Key": "start-2"}
    with mock.patch.object(api.instances, "instance_body", _blip):
        first = client.post("/v1/instances", json=BODY, headers=headers)
    assert first.status_code == 503  # the use case committed, then the answer could not be made
    clock.advance(LEASE + timedelta(seconds=1))
    retry = client.post("/v1/instances", json=BODY, headers=headers)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert _instances(app) == 1
    # And again, the same answer.
    assert client.post("/v1/instances", json=BODY, headers=headers).get_json() == retry.get_json()
