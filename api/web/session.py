"""Signing in with an API token, signing out, the language switch, and the home page per role."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from engine.errors import InvalidTokenError

from .auth import can, principal, sign_in, sign_out
from .i18n import LANGUAGES

bp = Blueprint("session", __name__)

# The first page each role lands on, by what it may do (the permission table decides).
_HOMES = (("tasks.read", "web.clinicians.work_list"), ("pathways.validate", "web.authors.library"),
          ("audit.verify", "web.auditors.trail"), ("instances.read", "web.patients.find"))


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
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


@bp.get("/sign-in")
def sign_in_page() -> Response | tuple[str, int] | str:
    """The sign-in form; with ``?token=`` (the link ``carepath serve`` prints) it signs in at once."""
    token = request.args.get("token")
    if token:
        try:
            sign_in(token[:200])
        except InvalidTokenError:
            return render_template("web/sign_in.html", failed=True, next=""), 401
        return redirect(url_for(".home"), code=303)  # the token leaves the address bar
    return render_template("web/sign_in.html", failed=False, next=request.args.get("next", ""))


@bp.post("/sign-in")
def sign_in_form() -> Response | tuple[str, int]:
    try:
        sign_in(request.form.get("token", "").strip()[:200])
    except InvalidTokenError:
        return render_template("web/sign_in.html", failed=True, next=request.form.get("next", "")), 401
    return redirect(_safe_next(request.form.get("next")), code=303)


@bp.post("/sign-out")
def sign_out_form() -> Response:
    sign_out()
    return redirect(url_for(".sign_in_page"), code=303)


@bp.post("/language")
def choose_language() -> Response:
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session["language"] = chosen
    return redirect(_safe_next(request.form.get("next")), code=303)
