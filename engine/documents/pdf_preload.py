"""Imported by the PDF renderer's fork server alone (:func:`engine.documents.render.render_pdf`):
WeasyPrint is imported there once, so every rendering process forked from it starts with it loaded.
Without Pango the import fails here and is tried again (and reported) by each rendering."""

import contextlib

__all__: list[str] = []

with contextlib.suppress(OSError):  # cffi could not open libpango: html_to_pdf says so
    import weasyprint  # noqa: F401
