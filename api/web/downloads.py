"""Files the pages hand out that an author wrote: saved, never shown in the app's origin.

A BPMN diagram is XML an author uploaded; served inline as ``application/xml`` a browser renders it,
and an XHTML ``<script>`` inside runs with the app's origin (the session, the CSRF token). So a
diagram is an attachment (a download, also when opened directly), under a sandboxing
Content-Security-Policy that forbids scripts, styles and fetches should a browser show it anyway, and
``nosniff`` (set on every response). The diagram viewer reads the same URL with ``fetch``, which
none of this affects.
"""

from __future__ import annotations

from flask import Response

from ..headers import SANDBOX_POLICY

__all__ = ["diagram_download"]


def diagram_download(xml: bytes | str, file_name: str) -> Response:
    """``xml`` as a download named ``file_name`` (quoted as needed)."""
    response = Response(xml, mimetype="application/xml")
    response.headers.set("Content-Disposition", "attachment", filename=file_name)
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
