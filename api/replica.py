"""``GET`` requests read the streaming replica (``CAREPATH_READ_DATABASE_URL``), never showing their
caller less than that caller wrote.

A request that wrote answers with ``CarePath-Read-After: <WAL position>`` (and, for the web app's
signed-in browsers, a short-lived cookie of the same value). A later ``GET`` that sends it back reads
the replica only once the replica has replayed that far, else the primary (:mod:`engine.db.replica`).
Callers that do not send it still read their own writes when the same API process serves them: each
process remembers, for a minute, the last write position of every caller (by a digest of their bearer
token or session cookie). Behind a load balancer without sticky routing, clients send the header.

Token and session lookups read the primary (a token created a moment ago works at once); the timer
worker and the command line never read the replica.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from flask import Flask, Response, current_app, g, request

from engine.db.replica import LSN_PATTERN, forget_write_position, last_write_position, replica_reads

from .errors import ApiError
from .headers import over_tls

__all__ = ["HEADER", "init_app"]

HEADER = "CarePath-Read-After"
COOKIE = "carepath_read_after"
REMEMBER_SECONDS = 60.0
_MAX_CALLERS = 10_000
_READS = ("GET", "HEAD")
_UNREPLICATED = ("health.health", "health.ready")  # a probe asks about this process and its primary


class _Positions:
    """Each caller's last write position, for a minute, at most ``_MAX_CALLERS`` callers (oldest go first)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, caller: str) -> str | None:
        entry = self._entries.get(caller)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, caller: str, position: str) -> None:
        with self._lock:
            self._entries.pop(caller, None)
            self._entries[caller] = (time.monotonic() + REMEMBER_SECONDS, position)
            while len(self._entries) > _MAX_CALLERS:
                self._entries.popitem(last=False)


def _caller() -> str | None:
    """A digest naming the caller's credential (never the credential itself), or None for anonymous requests."""
    credential = request.headers.get("Authorization") or request.cookies.get(_session_cookie())
    return hashlib.sha256(credential.encode()).hexdigest() if credential else None


def _session_cookie() -> str:
    """The web session's cookie name, as the deployment configures it (``SESSION_COOKIE_NAME``)."""
    return str(current_app.config["SESSION_COOKIE_NAME"])


def _later(a: str | None, b: str | None) -> str | None:
    def key(lsn: str) -> tuple[int, int]:
        high, low = lsn.split("/")
        return int(high, 16), int(low, 16)

    known = [lsn for lsn in (a, b) if lsn is not None]
    return max(known, key=key) if known else None


def init_app(app: Flask) -> None:
    """Route reads to the replica when the app's engine has one; otherwise change nothing."""
    if app.extensions["carepath"].replica_db is None:
        return
    positions = _Positions()

    @app.before_request
    def read_the_replica() -> None:
        forget_write_position()  # a thread serves many requests: report only this one's writes
        if request.method not in _READS or request.endpoint in _UNREPLICATED:
            return
        sent = request.headers.get(HEADER) or request.cookies.get(COOKIE)
        if sent is not None and not LSN_PATTERN.match(sent):
            raise ApiError(400, "request-invalid", f"{HEADER} must be a position this API gave (e.g. 0/3000148)")
        caller = _caller()
        after = _later(sent, positions.get(caller) if caller else None)
        g.replica_reads = replica_reads(after)
        g.replica_reads.__enter__()

    @app.after_request
    def tell_where_written(response: Response) -> Response:
        position = last_write_position()
        if position is not None and request.method not in _READS:
            response.headers[HEADER] = position
            caller = _caller()
            if caller:
                positions.put(caller, position)
            if request.cookies.get(_session_cookie()):
                response.set_cookie(
                    COOKIE,
                    position,
                    max_age=int(REMEMBER_SECONDS),
                    httponly=True,
                    samesite="Strict",
                    secure=over_tls(),  # as the session cookie is, also behind a proxy that terminates TLS
                )
        return response

    @app.teardown_request
    def leave_the_replica(_exc: BaseException | None) -> None:
        reads = g.pop("replica_reads", None)
        if reads is not None:
            reads.__exit__(None, None, None)
