"""What the pages' responses tell the browser (web security review): diagrams an author wrote are
downloads under a sandbox, never a page in the app's origin."""

from __future__ import annotations

from flask import Flask
from test_pages import PATHWAY, Client, engine, start
from web_helpers import csrf_of

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
