"""Who is signed in, what their role may see, and CSRF protection for every form.

Signing in exchanges an API token for a session cookie (Flask's signed cookie session: HttpOnly,
SameSite=Lax, Secure when the request came over TLS or ``SESSION_COOKIE_SECURE`` is set). The cookie
holds the token's id, never its secret; every request checks that the token still exists and is not
revoked, so revoking a token signs its browser sessions out too.

The role decides what a page shows exactly as the API decides what is allowed: :func:`page` and
:func:`can` both ask :func:`engine.access.authorize`, which reads the one permission table
(:data:`engine.access.PERMISSIONS`).

CSRF: each session holds a random token; every POST must send it back (the ``csrf_token`` form field,
or the ``X-CSRF-Token`` header htmx sends), compared in constant time. No framework is needed for
that, and the pages have no other use for one.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from engine.access import ApiToken, Principal, authenticate, authorize
from engine.db.replica import primary_reads
from engine.db.session import read_only
from engine.errors import InvalidTokenError, PermissionDeniedError

__all__ = ["TlsAwareSessions", "actor", "can", "check_csrf", "csrf_token", "page", "principal", "sign_in",
           "sign_out"]

View = TypeVar("View", bound=Callable[..., Any])


class TlsAwareSessions(SecureCookieSessionInterface):
    """The session cookie is Secure when the request came over TLS (or the setting says so)."""

    def get_cookie_secure(self, app: Any) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def sign_in(secret: str) -> Principal:
    """Start a session for the holder of an API token.

    Raises: InvalidTokenError (unknown or revoked token).
    """
    with read_only(current_app.extensions["carepath"].sessions) as db:
        found = authenticate(db, secret)
    language = session.get("language")
    session.clear()  # a new session on every sign-in: nothing carries over from before (session fixation)
    session.permanent = True
    session.update(token_id=found.token_id, csrf=secrets.token_urlsafe(32))
    if language:
        session["language"] = language
    g.principal = found
    return found


def sign_out() -> None:
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language


def principal() -> Principal | None:
    """The signed-in user, or None; a session whose token was revoked is ended."""
    if "principal" in g:
        return cast(Principal | None, g.principal)
    found = None
    token_id = session.get("token_id")
    if isinstance(token_id, str):
        # The primary: a revoked token ends its sessions at once, whatever a replica has replayed.
        with primary_reads(), read_only(current_app.extensions["carepath"].sessions) as db:
            token = db.get(ApiToken, token_id)
            if token is not None and token.revoked_at is None:
                found = Principal(role=token.role, token_id=token.id, label=token.label)
        if found is None:
            sign_out()
    g.principal = found
    return found


def actor() -> str:
    """How the signed-in user is named in the event trail (a page's view: :func:`page` signed them in).

    Raises: InvalidTokenError when nobody is signed in.
    """
    user = principal()
    if user is None:
        raise InvalidTokenError("sign in first")
    return user.actor


def can(action: str) -> bool:
    """Whether the signed-in user's role may perform ``action`` (a key of the permission table)."""
    user = principal()
    if user is None:
        return False
    try:
        authorize(user, action)
    except PermissionDeniedError:
        return False
    return True


def page(action: str) -> Callable[[View], View]:
    """Wrap a page: sign-in first (a redirect that comes back), then the role must allow ``action``.

    Raises (through the view): PermissionDeniedError (a 403 page).
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = principal()
            if user is None:
                if request.method != "GET" or request.headers.get("HX-Request"):
                    abort(401)
                return redirect(url_for("web.session.sign_in_page", next=request.full_path.rstrip("?")))
            authorize(user, action)
            return view(*args, **kwargs)

        wrapper.permission = action  # type: ignore[attr-defined]  # read by the tests' route walk
        return cast(View, wrapper)

    return decorate


def csrf_token() -> str:
    """The session's CSRF token (made on first use, also before sign-in for the sign-in form)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> Response | None:
    """Refuse a POST without the session's CSRF token (400), before any view runs."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    expected = session.get("csrf")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        abort(400, description="csrf")
    return None
