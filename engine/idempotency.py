"""Idempotency keys: a retried request returns the first response and changes nothing twice.

The caller names a request with a key; the key is scoped to the caller (the token) and bound to a
fingerprint of the request (method, path and body). The protocol, in three short transactions:

1. :meth:`IdempotencyStore.begin` reserves the key (a unique constraint on caller + key makes two
   concurrent first attempts collide: the second gets :class:`IdempotencyKeyInUseError`), or
   returns the stored response of an earlier success.
2. The use case runs in its own unit of work.
3. :meth:`IdempotencyStore.finish` stores a success; :meth:`IdempotencyStore.abandon` drops the
   reservation after a failure, so a corrected retry may run (failed use cases change nothing).

If the process dies between 2 and 3 the reservation stays "in progress": a retry within
:data:`LEASE` is refused with :class:`IdempotencyKeyInUseError` rather than run twice. After the
lease the first request cannot still be running -- the lease is longer than any request may take
(gunicorn's worker ``timeout`` in ``api/gunicorn.conf.py`` is 60 s, after which the worker is
killed) -- so the reservation is released: the next retry takes it over and runs (one retry only:
the takeover is a guarded UPDATE, and a concurrent second retry is still refused). Records expire
after :data:`RETENTION` and are deleted then (:meth:`IdempotencyStore.purge_expired`, run by
``carepath worker``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.db.models import IdempotencyRecord
from engine.db.session import unit_of_work
from engine.errors import IdempotencyKeyInUseError, IdempotencyKeyReusedError, Problem

__all__ = [
    "IdempotencyRecord",
    "IdempotencyStore",
    "StoredResponse",
    "request_fingerprint",
]

RETENTION = timedelta(hours=24)
# How long an unfinished first request holds its key: twice gunicorn's 60 s worker timeout.
LEASE = timedelta(minutes=2)
_IN_PROGRESS = 0


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 over the method, path and body (canonical JSON when the body is JSON)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read: the bytes as sent
        canonical = body
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


class IdempotencyStore:
    """Reserving keys and storing first responses; each method is one unit of work."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = session_factory
        self.clock = clock

    def begin(self, principal: str, key: str, fingerprint: str) -> StoredResponse | None:
        """Reserve ``key`` for this request, or return the response of its earlier success.

        A reservation older than :data:`LEASE` whose request never finished (its process died) is
        taken over by this request.

        Raises:
            IdempotencyKeyReusedError: the key was used for a different request.
            IdempotencyKeyInUseError: the first request with this key is still running (or
                another retry has just taken over its expired reservation).
        """
        now = self.clock.now()
        try:
            with unit_of_work(self.sessions) as session:
                record = session.scalars(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                    )
                ).first()
                if record is not None and record.created_at < now - RETENTION:
                    session.delete(record)
                    session.flush()
                    record = None
                if record is None:
                    session.add(
                        IdempotencyRecord(
                            principal=principal,
                            key=key,
                            fingerprint=fingerprint,
                            status=_IN_PROGRESS,
                            headers="{}",
                            body="",
                            created_at=now,
                        )
                    )
                    session.flush()
                    return None
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReusedError(
                        "this Idempotency-Key was already used for a different request",
                        [Problem("already used with another method, path or body", field="Idempotency-Key")],
                    )
                if record.status == _IN_PROGRESS:
                    if record.created_at >= now - LEASE:
                        raise _in_use()
                    # Its request died: take the reservation over, unless another retry just did.
                    taken = session.execute(
                        update(IdempotencyRecord)
                        .where(
                            IdempotencyRecord.id == record.id,
                            IdempotencyRecord.status == _IN_PROGRESS,
                            IdempotencyRecord.created_at == record.created_at,
                        )
                        .values(created_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    if int(getattr(taken, "rowcount", 0) or 0) != 1:
                        raise _in_use()
                    return None
                return StoredResponse(record.status, json.loads(record.headers), record.body)
        except IntegrityError as exc:  # a concurrent first attempt reserved it a moment ago
            raise _in_use() from exc

    def finish(self, principal: str, key: str, response: StoredResponse) -> None:
        with unit_of_work(self.sessions) as session:
            record = session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
            ).one()
            record.status = response.status
            record.headers = json.dumps(response.headers)
            record.body = response.body

    def purge_expired(self) -> int:
        """Delete records older than :data:`RETENTION`; returns how many.

        A stored first response holds what the request returned (patient references, task forms):
        it is kept no longer than a client may retry. Reservations stuck "in progress" by a process
        that died expire the same way, as :meth:`begin` already treats them. ``carepath worker``
        calls this periodically.
        """
        cutoff = self.clock.now() - RETENTION
        with unit_of_work(self.sessions) as session:
            result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    def abandon(self, principal: str, key: str) -> None:
        with unit_of_work(self.sessions) as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.principal == principal,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.status == _IN_PROGRESS,
                )
            )


def _in_use() -> IdempotencyKeyInUseError:
    return IdempotencyKeyInUseError(
        "a request with this Idempotency-Key is still being processed",
        [Problem("retry later", field="Idempotency-Key")],
    )
