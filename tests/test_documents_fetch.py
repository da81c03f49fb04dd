"""The PDF renderer loads nothing: a document's page that names a file or a URL renders without it.

WeasyPrint 70 takes a URLFetcher object (a plain function crashed the render on the first image or
stylesheet); engine/documents/render.py gives it one that refuses every URL before opening anything.
"""

from __future__ import annotations

import io
import socket
import urllib.request
from typing import Any

import pytest
from pypdf import PdfReader

from engine.documents.render import html_to_pdf

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<style>
@import url("file:///etc/hostname");
body { background: url("file:///etc/passwd"); }
p::after { content: url("http://169.254.169.254/latest/meta-data/"); }
</style>
<link rel="stylesheet" href="file:///etc/passwd">
</head><body>
<p>Visible text of the document</p>
<img src="file:///etc/passwd" alt="">
<img src="http://169.254.169.254/latest/meta-data/" alt="">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="">
</body></html>"""


def test_a_page_naming_files_and_urls_renders_and_fetches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []

    def refuse_open(self: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(url)
        raise AssertionError(f"the renderer opened {url!r}")

    def refuse_connect(self: Any, address: Any) -> None:
        opened.append(address)
        raise AssertionError(f"the renderer connected to {address!r}")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse_open)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    pdf = html_to_pdf(PAGE)
    assert pdf.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Visible text of the document" in text
    assert opened == []
    with open("/etc/passwd", "rb") as secret:
        first_line = secret.readline().strip()
    assert first_line and first_line not in pdf and first_line.decode() not in text
