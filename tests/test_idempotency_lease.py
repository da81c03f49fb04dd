"""An Idempotency-Key left "in use" by a request whose process died is released after a short lease."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import CarePath, ManualClock
from engine.errors import IdempotencyKeyInUseError, IdempotencyKeyReusedError
from engine.idempotency import LEASE, RETENTION, IdempotencyStore, StoredResponse, request_fingerprint


def test_a_crashed_request_releases_its_key_after_the_lease(carepath: CarePath, clock: ManualClock) -> None:
    store = IdempotencyStore(carepath.sessions, clock)
    assert LEASE <= timedelta(minutes=5) < RETENTION
    assert store.begin("tok_ehr", "start-1", "a" * 64) is None  # the first request: its process then dies
    clock.advance(LEASE - timedelta(seconds=1))
    with pytest.raises(IdempotencyKeyInUseError):  # it might still be running
        store.begin("tok_ehr", "start-1", "a" * 64)
    clock.advance(timedelta(seconds=2))
    with pytest.raises(IdempotencyKeyReusedError):  # the lease does not free the key for another request
        store.begin("tok_ehr", "start-1", "b" * 64)
    assert store.begin("tok_ehr", "start-1", "a" * 64) is None  # the retry takes the reservation over
    with pytest.raises(IdempotencyKeyInUseError):  # ... and holds it for a fresh lease
        store.begin("tok_ehr", "start-1", "a" * 64)
    store.finish("tok_ehr", "start-1", StoredResponse(201, {"ETag": '"1"'}, '{"id": "x"}'))
    clock.advance(LEASE * 3)
    assert store.begin("tok_ehr", "start-1", "a" * 64) == StoredResponse(201, {"ETag": '"1"'}, '{"id": "x"}')


def test_a_body_too_deep_to_read_is_fingerprinted_as_sent() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert request_fingerprint("POST", "/v1/instances", deep) != request_fingerprint("POST", "/v1/instances", b"[]")
