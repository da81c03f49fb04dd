"""Idempotency keys: a retried request returns the first response and changes nothing twice.

The caller names a request with a key; the key is scoped to the caller (the token) and bound to a
fingerprint of the request (method, path and body). The protocol:

1. :meth:`IdempotencyStore.begin` reserves the key (a unique constraint on caller + key makes two
   concurrent first attempts collide: the second gets :class:`IdempotencyKeyInUseError`), or
   returns what an earlier attempt left: its stored response, or that its use case committed.
2. The use case runs in its own unit of work, inside :meth:`IdempotencyStore.recording`: the unit
   that commits the use case's change (the one that calls :func:`engine.db.session.note_outcome`)
   also marks the key *committed*, with what it changed (the instances' ids), in the same
   transaction. Either both commit or neither does; a reservation that was taken over meanwhile
   (see below) makes the use case roll back instead of committing a second time.
3. :meth:`IdempotencyStore.finish` stores the response; :meth:`IdempotencyStore.abandon` drops a
   reservation whose use case committed nothing, so a corrected retry may run (a failed use case
   changes nothing). A committed key is never released or taken over.

If storing the response fails (the database went away just after the use case committed) or the
process dies before it, the key stays *committed*: a retry does not run the use case again but is
answered from what it changed (the API reads the instance as it is now: :mod:`api.idempotency`).

If the process dies before the use case commits, the reservation stays "in progress": a retry within
:data:`LEASE` is refused with :class:`IdempotencyKeyInUseError` rather than run twice. After the
lease the reservation is released: the next retry takes it over and runs (one retry only: the
takeover is a guarded UPDATE, and a concurrent second retry is still refused). Should the first
request still be running after all, its commit finds the reservation no longer its own and rolls
back. Records expire after :data:`RETENTION` and are deleted then
(:meth:`IdempotencyStore.purge_expired`, run by ``carepath worker``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock
from engine.db.models import IdempotencyRecord
from engine.db.session import committing_outcome, unit_of_work
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
# The use case committed; its response is not stored (yet). The body then holds {"resources": [ids]}.
_COMMITTED = 1


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def committed_only(self) -> bool:
        """The use case committed, but its response was never stored: answer from :attr:`resources`."""
        return self.status == _COMMITTED

    @property
    def resources(self) -> list[str]:
        """What a :attr:`committed_only` use case changed (instances' or escalations' ids), in order."""
        found: list[str] = json.loads(self.body).get("resources", []) if self.committed_only else []
        return found


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
        # (principal, key) -> when this store reserved it (begin): the reservation's identity.
        self._reserved: dict[tuple[str, str], datetime] = {}
        self.committed = False  # a use case run inside recording() committed

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
                    self._reserved[principal, key] = now
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
                    self._reserved[principal, key] = now
                    return None
                return StoredResponse(record.status, json.loads(record.headers), record.body)
        except IntegrityError as exc:  # a concurrent first attempt reserved it a moment ago
            raise _in_use() from exc

    @contextlib.contextmanager
    def recording(self, principal: str, key: str) -> Iterator[None]:
        """Run a use case so that its committing unit of work also marks the key reserved by
        :meth:`begin` committed, with the ids it noted (:func:`engine.db.session.note_outcome`);
        :attr:`committed` says afterwards whether it did.

        Raises (from the use case's commit):
            IdempotencyKeyInUseError: the reservation is no longer this request's (its lease ran out
                and a retry took it over): the use case is rolled back, not committed twice.
        """
        reserved_at = self._reserved[principal, key]
        resources: list[str] = []

        def mark(session: Session, noted: list[str]) -> None:
            resources.extend(item for item in noted if item not in resources)
            marked = session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.principal == principal,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.created_at == reserved_at,
                    IdempotencyRecord.status.in_((_IN_PROGRESS, _COMMITTED)),
                )
                .values(status=_COMMITTED, body=json.dumps({"resources": resources}))
                .execution_options(synchronize_session=False)
            )
            if int(getattr(marked, "rowcount", 0) or 0) != 1:
                raise _in_use()
            event.listen(session, "after_commit", self._note_committed, once=True)

        with committing_outcome(mark):
            yield

    def _note_committed(self, _session: Session) -> None:
        self.committed = True

    def finish(self, principal: str, key: str, response: StoredResponse) -> None:
        """Store the response of the request holding the key (reserved or committed by it)."""
        with unit_of_work(self.sessions) as session:
            query = update(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal,
                IdempotencyRecord.key == key,
                IdempotencyRecord.status.in_((_IN_PROGRESS, _COMMITTED)),
            )
            if (principal, key) in self._reserved:
                query = query.where(IdempotencyRecord.created_at == self._reserved[principal, key])
            session.execute(
                query.values(
                    status=response.status, headers=json.dumps(response.headers), body=response.body
                ).execution_options(synchronize_session=False)
            )

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
        """Release the key after a failure, unless a use case committed under it (then it stays), or
        the reservation is no longer this request's (a retry took it over after the lease)."""
        with unit_of_work(self.sessions) as session:
            query = delete(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal,
                IdempotencyRecord.key == key,
                IdempotencyRecord.status == _IN_PROGRESS,
            )
            if (principal, key) in self._reserved:
                query = query.where(IdempotencyRecord.created_at == self._reserved[principal, key])
            session.execute(query)


def _in_use() -> IdempotencyKeyInUseError:
    return IdempotencyKeyInUseError(
        "a request with this Idempotency-Key is still being processed",
        [Problem("retry later", field="Idempotency-Key")],
    )
