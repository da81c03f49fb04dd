"""The vendored front-end libraries (``static/vendor/<name>/<version>/``, made by ``static/vendor/refresh.sh``).

The versions here are the ones the pages load; ``static/vendor/SHA256SUMS`` lists every vendored
file, and a test checks both against the files.
"""

from __future__ import annotations

from flask import url_for

__all__ = ["VENDORED", "vendor_url"]

VENDORED = {"htmx.org": "2.0.11", "bpmn-js": "18.31.1", "nhsuk-frontend": "10.6.1"}


def vendor_url(library: str, path: str) -> str:
    """The URL of a vendored file. Raises: KeyError for a library that is not vendored."""
    return url_for("web.static", filename=f"vendor/{library}/{VENDORED[library]}/{path}")
