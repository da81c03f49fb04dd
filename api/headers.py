"""What every response tells the browser about itself: caching, types, framing, referrers and, for
HTML, a Content-Security-Policy.

The pages' policy (:data:`PAGE_POLICY`) allows only this server's own files: scripts (no inline script,
no ``eval``), styles (no inline style either: htmx's indicator style is turned off in base.html, and
what bpmn-js sets as it draws goes through the CSSOM, which a policy does not govern), images and
fonts (and ``data:`` ones: the NHS.UK stylesheet's icons, the bpmn-js modeler's embedded font), fetches
and form targets; no plugin, no ``<base>``, no framing by any page. The JSON data a page carries for
its scripts is in ``<script type="application/json">``, which is data, not script. The diagram
editor also allows inline style *attributes* (:data:`EDITOR_POLICY`): the modeler's alignment icons
are SVG markup with ``style`` attributes; a style attribute cannot run code.

An answer over TLS -- the request came over https, or ``SESSION_COOKIE_SECURE`` says a proxy in front
terminates it -- tells the browser to use https only for the next year (``Strict-Transport-Security``):
otherwise a typed address or an old ``http://`` link starts the next visit in plain text, where anyone on
the network can answer in the server's place. Not ``includeSubDomains``: other hosts of the domain are
not this server's to commit.

A document (a care plan as a printable page) sets its own, stricter policy: nothing may be loaded
at all and its one inline ``<style>`` applies (:data:`DOCUMENT_POLICY`). A diagram an author wrote is
a sandboxed download (:data:`SANDBOX_POLICY`, api.web.downloads).
"""

from __future__ import annotations

from flask import Response, current_app, request

__all__ = [
    "DOCUMENT_POLICY",
    "EDITOR_POLICY",
    "PAGE_POLICY",
    "SANDBOX_POLICY",
    "TRANSPORT_POLICY",
    "over_tls",
    "protect_response",
]

_PAGE = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
PAGE_POLICY = "; ".join(_PAGE)
EDITOR_POLICY = "; ".join((*_PAGE, "style-src-attr 'unsafe-inline'"))
DOCUMENT_POLICY = "; ".join(
    (
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
SANDBOX_POLICY = "sandbox; default-src 'none'"
TRANSPORT_POLICY = "max-age=31536000"  # a year: https only, this host only


def over_tls() -> bool:
    """Whether the request came over TLS, here or at a proxy in front (``SESSION_COOKIE_SECURE``)."""
    return request.is_secure or bool(current_app.config["SESSION_COOKIE_SECURE"])


def protect_response(response: Response) -> Response:
    """Every answer may carry patient data (an instance, a task's form, a care plan, an error naming a
    field): no cache -- a browser's, a proxy's -- keeps it (``no-store``), unless a view chose its own
    caching; no browser guesses a type other than the one sent (``nosniff``); no other site frames it
    (``X-Frame-Options``, and ``frame-ancestors`` for browsers that read the policy); a link followed
    from it tells another site nothing of its address (``Referrer-Policy: same-origin``, unless a view
    chose a stricter one); over TLS, the next visits keep to TLS (:data:`TRANSPORT_POLICY`). An HTML answer
    gets the pages' policy unless its view set its own."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if over_tls():
        response.headers["Strict-Transport-Security"] = TRANSPORT_POLICY
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    return response
