"""Who is signed in, what their role may see, and CSRF protection for every form.

Signing in exchanges an API token for a session cookie (Flask's signed cookie session: HttpOnly,
SameSite=Lax, Secure when the request came over TLS or ``SESSION_COOKIE_SECURE`` is set). The cookie
holds the token's id, never its secret; every request checks that the token still exists and is not
revoked, so revoking a token signs its browser sessions out too.

A session lasts :attr:`flask.Flask.permanent_session_lifetime` (a working shift) from its sign-in, however
often it is used: Flask signs the cookie afresh on every response, so the cookie's own expiry slides with
each request, and the end is kept in the session instead (``until``, judged by the engine's clock, as a
person's is). A token's session without one (a cookie from before) is signed out.

Every sign-in gives the session a new random id (``sid``). The cookie has no server record, so clearing it
at sign-out would not end a copy taken earlier: signing out records the id as ended
(:func:`engine.access.end_web_session`), and every request looks it up on the primary, in the read that
checks the token (or, for a person, in one read of its own) -- one primary-key lookup. A session without
an id (a cookie from before ids) is signed out. The worker deletes a record once every copy of its cookie
has expired anyway (:func:`engine.access.purge_ended_web_sessions`).

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
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from engine.access import (
    PATIENT_ROLE,
    ROLES,
    ApiToken,
    Principal,
    authenticate,
    authorize,
    end_web_session,
    principal_of_token,
    token_is_live,
    web_session_ended,
)
from engine.care_teams import NOWHERE, BreakGlass, CareScope
from engine.db.replica import primary_reads
from engine.db.session import read_only, unit_of_work
from engine.errors import InvalidTokenError, PermissionDeniedError
from engine.identity import Provider, ProviderUnavailableError
from engine.patients import still_linked

from ..auth import identity_provider
from ..headers import over_tls
from ..scope import break_glass, check_request

__all__ = [
    "TlsAwareSessions",
    "actor",
    "can",
    "check_csrf",
    "csrf_token",
    "finish_provider_sign_in",
    "page",
    "principal",
    "provider_sign_in_url",
    "sign_in",
    "sign_out",
    "web_provider",
]

# How long a browser may take at the provider between leaving and coming back.
SIGN_IN_FLOW_SECONDS = 600
# How long a break-glass opens one patient's pages to a clinician, and how many a session holds at once.
BREAK_GLASS_MINUTES = 60
MAX_BREAK_GLASS_GRANTS = 20

View = TypeVar("View", bound=Callable[..., Any])


class TlsAwareSessions(SecureCookieSessionInterface):
    """The session cookie is Secure when the request came over TLS (or the setting says so)."""

    def get_cookie_secure(self, app: Any) -> bool:
        return over_tls()


def sign_in(secret: str) -> Principal:
    """Start a session for the holder of an API token.

    Raises: InvalidTokenError (unknown or revoked token).
    """
    with read_only(current_app.extensions["carepath"].sessions) as db:
        found = authenticate(db, secret, current_app.extensions["carepath"].clock)
    # The end of the shift, fixed now: the cookie's own expiry moves on with every response Flask signs.
    _new_session(token_id=found.token_id, until=(_now() + current_app.permanent_session_lifetime).isoformat())
    g.principal = found
    return found


def _new_session(**values: Any) -> None:
    language = session.get("language")
    session.clear()  # a new session on every sign-in: nothing carries over from before (session fixation)
    session.permanent = True
    # The session's id: signing out records it as ended, which ends every copy of this cookie (sign_out).
    session.update(csrf=secrets.token_urlsafe(32), sid=secrets.token_urlsafe(32), **values)
    if language:
        session["language"] = language


def _now() -> datetime:
    now: datetime = current_app.extensions["carepath"].clock.now()
    return now


def web_provider() -> Provider | None:
    """The OpenID Connect provider the web app signs people in with, or None (API-token sign-in only)."""
    provider = identity_provider()
    return provider if provider is not None and provider.settings.web_sign_in else None


def _redirect_url(provider: Provider) -> str:
    return provider.settings.redirect_url or url_for("web.session.provider_callback", _external=True)


def provider_sign_in_url(next_path: str) -> str:
    """Begin signing in at the provider: remember this sign-in's state, nonce and PKCE verifier in the
    session, and return the provider's address to send the browser to.

    Raises: ProviderUnavailableError (the provider's discovery document cannot be read); NotFound (404)
    when no provider signs people in here.
    """
    provider = web_provider()
    if provider is None:
        abort(404)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    session["sign_in_flow"] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": next_path[:500],
        "started": _now().isoformat(),
    }
    return provider.authorization_url(_redirect_url(provider), state, nonce, verifier)


def finish_provider_sign_in(code: str, state: str) -> tuple[Principal, str]:
    """Back from the provider: check ``state`` against this browser's sign-in (once only), exchange
    ``code`` for an ID token, and start a session for the person it names. Returns the principal and
    the path the person was going to.

    Raises: InvalidTokenError (no sign-in of this browser's with that state, too old, or the ID token
    refused); ProviderUnavailableError (the token endpoint failed); NotFound (404) without a provider.
    """
    provider = web_provider()
    if provider is None:
        abort(404)
    flow = session.pop("sign_in_flow", None)  # used once, whatever happens next
    if (
        not isinstance(flow, dict)
        or not isinstance(flow.get("state"), str)
        or not hmac.compare_digest(flow["state"].encode(), state.encode())
    ):
        raise InvalidTokenError("this sign-in was not started in this browser, or has already finished")
    if _now() - datetime.fromisoformat(flow["started"]) > timedelta(seconds=SIGN_IN_FLOW_SECONDS):
        raise InvalidTokenError("this sign-in took too long: start again")
    found = provider.sign_in(code, _redirect_url(provider), flow["verifier"], flow["nonce"])
    lifetime = current_app.permanent_session_lifetime
    # A patient known by a link (not by the provider's patient claim): each request checks it still holds.
    linked = found.patient_ref is not None and _still_linked(provider, found.patient_ref, found.token_id)
    _new_session(
        person={
            "role": found.role,
            "staff_id": found.staff_id,
            "token_id": found.token_id,
            "patient_ref": found.patient_ref,
            "linked": linked,
            "until": (_now() + lifetime).isoformat(),
            "organisation": found.organisation or "",
            "teams": sorted(found.teams or ()),
        }
    )
    g.principal = found
    return found, str(flow.get("next") or "")


def _still_linked(provider: Provider, patient_ref: str, principal_id: str) -> bool:
    # The primary: an identity unlinked a moment ago ends its sessions at once, whatever a replica replayed.
    with primary_reads():
        return still_linked(
            current_app.extensions["carepath"].sessions, provider.settings.issuer, patient_ref, principal_id
        )


def _ended(session_id: str) -> bool:
    # The primary: a session signed out a moment ago is refused at once, whatever a replica replayed.
    with primary_reads(), read_only(current_app.extensions["carepath"].sessions) as db:
        return web_session_ended(db, session_id)


def _person(value: object, session_id: str) -> Principal | None:
    """The person a session holds, while their sign-in lasts and until the session is signed out."""
    if not isinstance(value, dict) or value.get("role") not in ROLES or web_provider() is None:
        return None
    try:
        if _now() >= datetime.fromisoformat(value["until"]) or _ended(session_id):
            return None
        if value["role"] == PATIENT_ROLE:  # a patient: named by their identity's id, scoped to their reference
            if not isinstance(value.get("patient_ref"), str):
                return None
            provider = web_provider()
            if value.get("linked") and (
                provider is None or not _still_linked(provider, value["patient_ref"], str(value["token_id"]))
            ):
                return None  # unlinked since they signed in: the session ends now, as a revoked token's does
            return Principal(
                role=PATIENT_ROLE,
                token_id=str(value["token_id"]),
                label=PATIENT_ROLE,
                patient_ref=str(value["patient_ref"]),
            )
        # A person is always scoped (engine.identity): a session without an organisation reaches nothing.
        return Principal(
            role=value["role"],
            token_id=str(value["token_id"]),
            label=str(value["staff_id"]),
            staff_id=str(value["staff_id"]),
            organisation=str(value.get("organisation") or ""),
            teams=frozenset(str(t) for t in value.get("teams") or ()),
        )
    except (KeyError, TypeError, ValueError):
        return None


def sign_out() -> str | None:
    """End this session: its id is recorded as ended, so a copy of the cookie taken before is refused too
    (this browser's own cookie is cleared). Other sessions of the same token or person go on.

    Returns where to send the browser next when the person signed in at the provider and it can end its
    own session too (RP-Initiated Logout), else None: CarePath's session has ended either way, and a
    provider that cannot be reached just now is logged, not shown (the person is signed out here)."""
    session_id = session.get("sid")
    at_provider = _provider_sign_out_url() if "person" in session else None
    if isinstance(session_id, str) and ("person" in session or "token_id" in session):
        now = _now()
        # Flask signs the cookie afresh on every response, so a copy made just now lasts one lifetime more.
        useless_after = now + current_app.permanent_session_lifetime
        try:
            with unit_of_work(current_app.extensions["carepath"].sessions) as db:
                end_web_session(db, session_id, now, useless_after)
        except IntegrityError:
            pass  # another copy of this cookie signed out at the same moment: recorded already
    _forget()
    return at_provider


def _provider_sign_out_url() -> str | None:
    provider = web_provider()
    if provider is None:
        return None
    back = provider.settings.post_logout_redirect_url or url_for("web.session.sign_in_page", _external=True)
    try:
        return provider.sign_out_url(back)
    except ProviderUnavailableError as exc:
        logging.getLogger(__name__).warning("identity provider sign-out not offered: %s", exc)
        return None


def _forget() -> None:
    """Clear this browser's session (its language stays)."""
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language


def principal() -> Principal | None:
    """The signed-in user, or None; a session that was signed out (in any copy of its cookie), whose token
    was revoked or expired, or that was signed in longer ago than the session's lifetime, is ended."""
    if "principal" in g:
        return cast(Principal | None, g.principal)
    found = None
    session_id = session.get("sid")
    token_id = session.get("token_id")
    if "person" in session or isinstance(token_id, str):
        if not isinstance(session_id, str):
            pass  # a cookie from before sessions had ids: signed out, the user signs in again once
        elif "person" in session:
            found = _person(session["person"], session_id)
        elif isinstance(token_id, str) and _within_shift(session.get("until")):
            found = _token_holder(token_id, session_id)
        if found is None:
            _forget()
    g.principal = found
    return found


def _within_shift(until: object) -> bool:
    """Whether a session signed in until ``until`` (ISO 8601, from the sign-in) still lasts."""
    try:
        return isinstance(until, str) and _now() < datetime.fromisoformat(until)
    except ValueError:
        return False


def _token_holder(token_id: str, session_id: str) -> Principal | None:
    # The primary: a revoked token, or a session signed out elsewhere, ends at once whatever a replica replayed.
    with primary_reads(), read_only(current_app.extensions["carepath"].sessions) as db:
        if web_session_ended(db, session_id):
            return None
        token = db.get(ApiToken, token_id)
        if token is not None and token_is_live(token, current_app.extensions["carepath"].clock.now()):
            # A held token acts for its holder, as over the API (engine.access.authenticate).
            return principal_of_token(token)
    return None


def actor() -> str:
    """How the signed-in user is named in the event trail (a page's view: :func:`page` signed them in).

    Raises: InvalidTokenError when nobody is signed in.
    """
    user = principal()
    if user is None:
        raise InvalidTokenError("sign in first")
    return user.actor


def scope() -> CareScope:
    """The signed-in user's care teams (nothing when nobody is signed in)."""
    user = principal()
    return NOWHERE if user is None else user.scope


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


def page(action: str, named: str | None = None) -> Callable[[View], View]:
    """Wrap a page: sign-in first (a redirect that comes back), then the role must allow ``action``, then the
    record the URL names must be in the user's care teams (:func:`api.scope.check_request`, as the API) --
    or opened by the user's break-glass for it (:func:`break_glass_grant`).

    Raises (through the view): PermissionDeniedError (a 403 page), NotFoundError (404: out of scope).
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
            break_glass(user, break_glass_grant())
            check_request(user, named)
            return view(*args, **kwargs)

        wrapper.permission = action  # type: ignore[attr-defined]  # read by the tests' route walk
        wrapper.named = named  # type: ignore[attr-defined]
        return cast(View, wrapper)

    return decorate


def grant_break_glass(instance_id: str, glass: BreakGlass) -> None:
    """Let this session read one instance outside the user's teams for :data:`BREAK_GLASS_MINUTES` (the reason
    code is kept in the signed cookie; the note is not: it went to the access log when the glass was broken)."""
    grants = {k: v for k, v in dict(session.get("break_glass") or {}).items() if _live(v)}
    until = _now() + timedelta(minutes=BREAK_GLASS_MINUTES)
    grants[instance_id] = {"reason": glass.reason, "until": until.isoformat()}
    session["break_glass"] = dict(list(grants.items())[-MAX_BREAK_GLASS_GRANTS:])


def _live(grant: Any) -> bool:
    try:
        return isinstance(grant, dict) and _now() < datetime.fromisoformat(str(grant["until"]))
    except (KeyError, ValueError):
        return False


def break_glass_grant() -> BreakGlass | None:
    """The session's break-glass for the instance a page (a read) names, while it lasts."""
    instance_id = (request.view_args or {}).get("instance_id")
    if request.method != "GET" or instance_id is None:
        return None
    grant = dict(session.get("break_glass") or {}).get(str(instance_id))
    return BreakGlass(str(grant["reason"])) if grant is not None and _live(grant) else None


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
