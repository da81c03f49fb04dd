"""Who is calling: bearer tokens checked against :mod:`engine.access`, one permission per view.

Two kinds of bearer token: an API token (a system's, :mod:`engine.access`), or -- when an OpenID
Connect provider is configured (``CAREPATH_OIDC_*``) -- a person's access token from that provider, a
JWT checked by :class:`engine.identity.Provider`. The two look different (a JWT has two dots), so
each request is checked by one of them only.

Each view is wrapped in :func:`requires` with the action it performs; the action's roles come from
:data:`engine.access.PERMISSIONS` (the same table the OpenAPI document and the tests read).

A successfully authenticated API token is remembered for ``AUTH_CACHE_SECONDS`` (default 5) so a
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

from engine.access import Principal, acting_for, authenticate, authorize
from engine.db.replica import primary_reads
from engine.db.session import read_only
from engine.errors import InvalidTokenError
from engine.identity import Provider

from .scope import break_glass, check_request

__all__ = ["current_principal", "identity_provider", "requires"]

View = TypeVar("View", bound=Callable[..., Any])
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_-]{16,128})$", re.IGNORECASE)
_BEARER_JWT = re.compile(
    r"^Bearer ([A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{0,8192})$", re.IGNORECASE
)


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
    header = request.headers.get("Authorization", "")
    provider = identity_provider()
    if provider is not None and (person := _BEARER_JWT.match(header)) is not None:
        # Not cached: each request checks the token's expiry; the keys are cached by the provider.
        return provider.principal(person.group(1))
    match = _BEARER.match(header)
    if match is None:
        raise InvalidTokenError(
            "send an API token (or, for a person, an access token of the configured identity "
            "provider): Authorization: Bearer <token>"
        )
    secret = match.group(1)
    cache: _PrincipalCache = current_app.extensions["carepath.principals"]
    seconds = float(current_app.config["AUTH_CACHE_SECONDS"])
    digest = hashlib.sha256(secret.encode()).hexdigest()
    principal = cache.get(digest) if seconds > 0 else None
    if principal is None:
        # The primary: a token created a moment ago works at once, whatever a replica has replayed.
        with primary_reads(), read_only(current_app.extensions["carepath"].sessions) as session:
            principal = authenticate(session, secret, current_app.extensions["carepath"].clock)
        if seconds > 0:
            cache.put(digest, principal, seconds)
    return principal


def requires(action: str, named: str | None = None) -> Callable[[View], View]:
    """Wrap a view: authenticate the bearer token, check the role may perform ``action``, then that the
    record the URL names is in the caller's care teams (:func:`api.scope.check_request`; ``named`` is
    its kind, a key of :data:`api.scope.KINDS`, when it is not the ``instance_id``).

    An ``X-On-Behalf-Of: <staff id>`` header names the member of staff a system token acts for; the
    event trail records both (:func:`engine.access.acting_for`). ``CarePath-Break-Glass`` declares a
    clinician's read outside their teams (:func:`api.scope.break_glass`).

    Raises (through the view): InvalidTokenError (401), PermissionDeniedError (403: also a token of
    another role sending X-On-Behalf-Of, or break-glass from a role other than clinician),
    InvalidInputError (400: a malformed staff id, a break-glass that is not a read or has no valid
    reason), NotFoundError (404: out of scope, as if missing).
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticated()
            g.principal = principal  # known before any check: a refused look is still an access record
            staff_id = request.headers.get("X-On-Behalf-Of")
            if staff_id is not None:  # a system token acting for a member of staff (engine.access)
                principal = acting_for(principal, staff_id)
                g.principal = principal
            authorize(principal, action)
            break_glass(principal)
            check_request(principal, named)
            return view(*args, **kwargs)

        wrapper.permission = action  # type: ignore[attr-defined]  # read by the route/document test
        wrapper.named = named  # type: ignore[attr-defined]  # read by the scope matrix test
        return cast(View, wrapper)

    return decorate


def current_principal() -> Principal:
    return cast(Principal, g.principal)


def identity_provider() -> Provider | None:
    """The OpenID Connect provider people sign in with, or None (API tokens only)."""
    return cast(Provider | None, current_app.extensions["carepath.identity"])


def init_app(extensions: dict[str, Any], identity: Provider | None) -> None:
    extensions["carepath.principals"] = _PrincipalCache()
    extensions["carepath.identity"] = identity
