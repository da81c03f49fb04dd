"""What the pages' responses tell the browser (web security review): diagrams an author wrote are
downloads under a sandbox, never a page in the app's origin; pages carry a Content-Security-Policy that
runs only the server's own scripts, are never framed and send no address to another site; documents
load nothing at all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from test_pages import PATHWAY, Client, engine, start
from web_helpers import csrf_of, make_token

# An XHTML script inside a diagram: a browser showing the XML inline would run it in the app's origin.
SCRIPT = (
    '<bpmn:extensionElements><h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(document.domain)</h:script>'
    "</bpmn:extensionElements>"
)


def _assert_download(response: object, file_name: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert headers["Content-Type"].startswith("application/xml")
    assert headers["Content-Disposition"] == f"attachment; filename={file_name}"
    assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_diagrams_are_downloads_under_a_sandbox(app: Flask, signed_in: Client) -> None:
    catalog = engine(app).catalog
    version = catalog.versions(PATHWAY)[0].version[:12]
    author = signed_in("author")
    xml = catalog.diagram(PATHWAY, version).decode()
    opening = xml.index(">", xml.index("<bpmn:process ")) + 1
    edit = f"/pathways/{PATHWAY}/versions/{version}/edit"
    response = author.post(
        edit, data={"diagram": xml[:opening] + SCRIPT + xml[opening:], "csrf_token": csrf_of(author.get(edit).text)}
    )
    assert response.status_code == 303, response.text[:2000]
    pending = response.location.rsplit("/", 1)[1]
    for role in ("clinician", "author"):
        download = signed_in(role).get(f"/pathways/{PATHWAY}/versions/{pending}/diagram.bpmn")
        _assert_download(download, f"{PATHWAY}-{pending}.bpmn")
        assert b"<h:script" in download.data  # kept as written: the author's file, but never run
    view = start(app)
    download = signed_in("clinician").get(f"/patients/{view.id}/diagram.bpmn")
    _assert_download(download, f"{PATHWAY}-{view.pathway_version[:12]}.bpmn")


# --- the pages' Content-Security-Policy and the other headers -------------------------------------------

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "api" / "web" / "templates"


def _policy(response: Any) -> dict[str, str]:
    """The response's Content-Security-Policy as directive -> its sources."""
    found = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        found[name] = value
    return found


def test_pages_carry_a_policy_that_allows_only_the_servers_own_scripts(app: Flask, signed_in: Client) -> None:
    view = start(app)
    version = engine(app).catalog.versions(PATHWAY)[0].version[:12]
    pages = {
        "clinician": ["/work-list", f"/patients/{view.id}", f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"],
        "author": ["/pathways", f"/pathways/{PATHWAY}/versions/{version}", "/pathways/check"],
        "patient": ["/my"],
    }
    anonymous = app.test_client()
    missing = signed_in("clinician").get("/patients/00000000-0000-4000-8000-000000000000")  # the error page
    for response in [anonymous.get("/sign-in"), missing] + [
        signed_in(role).get(path) for role, paths in pages.items() for path in paths
    ]:
        assert response.mimetype == "text/html" and response.status_code in (200, 404), response.request.path
        policy = _policy(response)
        assert policy == {
            "default-src": "'self'",
            "script-src": "'self'",
            "style-src": "'self'",
            "img-src": "'self' data:",
            "font-src": "'self' data:",
            "object-src": "'none'",
            "frame-ancestors": "'none'",
            "base-uri": "'none'",
            "form-action": "'self'",
        }, response.request.path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The modeler draws SVG icons with style attributes: its page allows those, and nothing else more.
    edit = signed_in("author").get(f"/pathways/{PATHWAY}/versions/{version}/edit")
    assert _policy(edit) == {**policy, "style-src-attr": "'unsafe-inline'"}
    # A sign-in link's page holds the token in its address: it sends no Referer at all.
    assert anonymous.get("/sign-in?token=abc").headers["Referrer-Policy"] == "no-referrer"


def test_documents_load_nothing_and_keep_their_inline_style(app: Flask, signed_in: Client) -> None:
    view = start(app)
    staff = signed_in("clinician").get(f"/patients/{view.id}/documents/care-plan")
    own = signed_in("patient").get(f"/my/plans/{view.id}/documents/care-plan")
    api = app.test_client().get(
        f"/v1/instances/{view.id}/care-plan",
        headers={"Authorization": f"Bearer {make_token(app, 'clinician')}", "Accept": "text/html"},
    )
    for response in (staff, own, api):
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert "<style>" in response.text and "<script" not in response.text
        assert _policy(response) == {
            "default-src": "'none'",
            "style-src": "'unsafe-inline'",
            "frame-ancestors": "'none'",
            "base-uri": "'none'",
            "form-action": "'none'",
        }
        assert response.headers["X-Frame-Options"] == "DENY"


def test_other_answers_are_not_framed_and_pdfs_keep_no_policy(app: Flask, signed_in: Client) -> None:
    view = start(app)
    answer = app.test_client().get("/v1/pathways", headers={"Authorization": f"Bearer {make_token(app, 'clinician')}"})
    assert answer.mimetype == "application/json" and "Content-Security-Policy" not in answer.headers
    assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["Referrer-Policy"] == "same-origin"
    pdf = signed_in("patient").get(f"/my/plans/{view.id}/documents/care-plan?format=pdf")
    if pdf.status_code == 200:  # a server without Pango answers 503
        assert pdf.mimetype == "application/pdf" and "Content-Security-Policy" not in pdf.headers


def test_templates_hold_no_inline_script_or_style() -> None:
    """What the policy would block: a script without ``src`` (other than JSON data), an event handler
    attribute, a ``<style>`` element or a ``style`` attribute, in any page template."""
    inline_script = re.compile(r"<script(?![^>]*\ssrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    styled = re.compile(r"<style|\sstyle\s*=", re.I)
    for template in sorted(TEMPLATES.rglob("*.html")):
        source = template.read_text(encoding="utf-8")
        for pattern in (inline_script, handler, styled):
            assert not pattern.search(source), (template.name, pattern.pattern, pattern.search(source))


def test_answers_over_tls_tell_the_browser_to_come_back_over_tls_only(app: Flask) -> None:
    """Without Strict-Transport-Security a browser's next visit may start over plain http (a typed
    address, an old link), where a network attacker answers instead of the server."""
    for path in ("/sign-in", "/v1/", "/fhir/R4/metadata"):
        over_tls = app.test_client().get(path, base_url="https://localhost")
        assert over_tls.headers["Strict-Transport-Security"] == "max-age=31536000", path
        assert "Strict-Transport-Security" not in app.test_client().get(path).headers  # plain http: meaningless
    app.config["SESSION_COOKIE_SECURE"] = True  # behind a proxy that terminates TLS (docs/web.md)
    assert app.test_client().get("/sign-in").headers["Strict-Transport-Security"] == "max-age=31536000"
