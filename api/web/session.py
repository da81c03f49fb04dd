"""Signing in (at the organisation's OpenID Connect provider when one is configured, or with an API
token), signing out, the language switch, and the home page per role."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from engine.errors import InvalidTokenError
from engine.identity import ProviderUnavailableError

from .auth import can, finish_provider_sign_in, principal, provider_sign_in_url, sign_in, sign_out, web_provider
from .i18n import LANGUAGES

bp = Blueprint("session", __name__)

# The first page each role lands on, by what it may do (the permission table decides).
_HOMES = (
    ("patient.read", "web.my_plan.plan"),
    ("tasks.read", "web.clinicians.work_list"),
    ("pathways.validate", "web.authors.library"),
    ("audit.verify", "web.auditors.trail"),
    ("instances.read", "web.patients.find"),
    ("reports.read", "web.managers.service"),
)


# A path on this site: "/" then printable ASCII, no space, control character or backslash, and not "//" (another
# host). Browsers drop tabs and line breaks from a URL, so "/<tab>/evil.example" would be "//evil.example".
_LOCAL_PATH = re.compile(r"/(?!/)[!-\[\]-~]{0,499}")


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never another host (an open redirect), never a header it cannot be sent in."""
    if value and _LOCAL_PATH.fullmatch(value):
        return value
    return url_for("web.session.home")


@bp.get("/")
def home() -> Response | str:
    if principal() is None:
        return redirect(url_for(".sign_in_page"))
    for action, endpoint in _HOMES:
        if can(action):
            return redirect(url_for(endpoint))
    return render_template("web/home.html")


def _sign_in_page(failed: str | None, next_path: str, status: int = 200) -> tuple[str, int]:
    """The sign-in page; ``failed``: ``token`` (the API token was refused), ``provider`` (the provider's
    sign-in was refused) or ``unavailable`` (the provider could not be reached)."""
    return render_template(
        "web/sign_in.html", failed=failed, next=next_path, provider=web_provider() is not None
    ), status


@bp.get("/sign-in")
def sign_in_page() -> Response | tuple[str, int]:
    """The sign-in form; with ``?token=`` (the link ``carepath serve`` prints) a page asking to sign in
    with that token, whose button POSTs it with the session's CSRF token.

    Never signing in on a GET: a link or a redirect from another site would otherwise swap a signed-in
    person's session for one of the sender's token (login CSRF), and what they then record would be
    the sender's. The page names the session a sign-in would end, and sends no Referer (the address
    holds the token).
    """
    token = request.args.get("token")
    if token:
        response = make_response(render_template("web/sign_in_link.html", token=token.strip()[:200]))
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    return _sign_in_page(None, request.args.get("next", ""))


def _landing(next_path: str | None) -> str:
    """Where a sign-in goes: the page asked for, except that a patient only ever lands on their own pages."""
    found = _safe_next(next_path)
    if can("patient.read") and not found.startswith(url_for("web.my_plan.plan")):
        return url_for(".home")
    return found


@bp.post("/sign-in")
def sign_in_form() -> Response | tuple[str, int]:
    try:
        sign_in(request.form.get("token", "").strip()[:200])
    except InvalidTokenError:
        return _sign_in_page("token", request.form.get("next", ""), 401)
    return redirect(_landing(request.form.get("next")), code=303)


@bp.get("/sign-in/provider")
def provider_sign_in() -> Response | tuple[str, int]:
    """Off to the organisation's identity provider (404 when none signs people in here)."""
    next_path = request.args.get("next", "")
    try:
        return redirect(provider_sign_in_url(next_path), code=303)
    except ProviderUnavailableError as exc:
        logging.getLogger(__name__).warning("identity provider unavailable: %s", exc)
        return _sign_in_page("unavailable", next_path, 502)


@bp.get("/sign-in/callback")
def provider_callback() -> Response | tuple[str, int]:
    """Back from the identity provider with an authorization code (or an error it reports)."""
    code, state = request.args.get("code", ""), request.args.get("state", "")
    if request.args.get("error") or not code or not state or len(code) > 4096 or len(state) > 200:
        session.pop("sign_in_flow", None)
        return _sign_in_page("provider", "", 401)
    try:
        _, next_path = finish_provider_sign_in(code, state)
    except InvalidTokenError:
        return _sign_in_page("provider", "", 401)
    except ProviderUnavailableError as exc:
        logging.getLogger(__name__).warning("identity provider sign-in failed: %s", exc)
        return _sign_in_page("unavailable", "", 502)
    return redirect(_landing(next_path), code=303)


@bp.post("/sign-out")
def sign_out_form() -> Response | str:
    """Sign out here; a person signed in at the provider is then sent on to sign out there too. Not by a
    redirect: a form's answer redirecting to another site breaks the pages' ``form-action 'self'``
    policy in browsers that apply it to redirects, so a page says so and goes on by itself."""
    at_provider = sign_out()
    if at_provider is not None:
        return render_template("web/signed_out.html", at_provider=at_provider)
    return redirect(url_for(".sign_in_page"), code=303)


@bp.post("/language")
def choose_language() -> Response:
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session["language"] = chosen
    return redirect(_safe_next(request.form.get("next")), code=303)
