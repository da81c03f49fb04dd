"""Who is calling: bearer tokens checked against :mod:`engine.access`, one permission per view.

Each view is wrapped in :func:`requires` with the action it performs; the action's roles come from
:data:`engine.access.PERMISSIONS` (the same table the OpenAPI document and the tests read).

A successfully authenticated token is remembered for ``AUTH_CACHE_SECONDS`` (default 5) so a
request does not pay a database round trip for it; a revoked token stops working within that time.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from engine.access import Principal, authenticate, authorize
from engine.db.replica import primary_reads
from engine.db.session import read_only
from engine.errors import InvalidTokenError

__all__ = ["current_principal", "requires"]

View = TypeVar("View", bound=Callable[..., Any])
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_-]{16,128})$", re.IGNORECASE)


class _PrincipalCache:
    """Principals by token digest, each valid for a few seconds; the secret itself is not kept."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal, seconds: float) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + seconds, principal)


def _authenticated() -> Principal:
    match = _BEARER.match(request.headers.get("Authorization", ""))
    if match is None:
        raise InvalidTokenError("send an API token: Authorization: Bearer <token>")
    secret = match.group(1)
    cache: _PrincipalCache = current_app.extensions["carepath.principals"]
    seconds = float(current_app.config["AUTH_CACHE_SECONDS"])
    digest = hashlib.sha256(secret.encode()).hexdigest()
    principal = cache.get(digest) if seconds > 0 else None
    if principal is None:
        # The primary: a token created a moment ago works at once, whatever a replica has replayed.
        with primary_reads(), read_only(current_app.extensions["carepath"].sessions) as session:
            principal = authenticate(session, secret)
        if seconds > 0:
            cache.put(digest, principal, seconds)
    return principal


def requires(action: str) -> Callable[[View], View]:
    """Wrap a view: authenticate the bearer token, then check the role may perform ``action``.

    Raises (through the view): InvalidTokenError (401), PermissionDeniedError (403).
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticated()
            g.principal = principal  # known before the role check: a refused look is still an access record
            authorize(principal, action)
            return view(*args, **kwargs)

        wrapper.permission = action  # type: ignore[attr-defined]  # read by the route/document test
        return cast(View, wrapper)

    return decorate


def current_principal() -> Principal:
    return cast(Principal, g.principal)


def init_app(extensions: dict[str, Any]) -> None:
    extensions["carepath.principals"] = _PrincipalCache()
