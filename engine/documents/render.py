"""A document's JSON as a printable HTML page, and that page as a PDF for sending to the GP practice.

The templates (``templates/``) and their strings (``locales/en.yaml``, ``sv.yaml``) ship inside this
package and are read through importlib.resources. The page prints on A4 with CSS paged media: every
page carries the patient reference, the document's date and "page N of M" in its margins (Chromium
and WeasyPrint both draw ``@page`` margin boxes), and the document's technical details never stand on
a page of their own. The PDF is WeasyPrint's rendering of the same HTML, so it has the same content.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from datetime import date, datetime
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

__all__ = [
    "CARE_PLAN",
    "END_OF_TREATMENT",
    "LANGUAGES",
    "MAX_LIST_ENTRIES",
    "MAX_PRINTED_CHARS",
    "DocumentTooLargeError",
    "PdfUnavailableError",
    "check_printable",
    "html_to_pdf",
    "render_html",
    "render_pdf",
    "strings",
]

CARE_PLAN = "personalised_care_plan"
END_OF_TREATMENT = "end_of_treatment_summary"
LANGUAGES = ("en", "sv")  # the first is the fallback
_PACKAGE = "engine.documents"
_TEMPLATES = {CARE_PLAN: "care_plan.html", END_OF_TREATMENT: "end_of_treatment_summary.html"}
# What a PDF may be made from: WeasyPrint's time and memory grow with the content (6,000 GP actions
# took a minute and 380 MB; a 200-item care plan 8 s), so a larger document is refused, not rendered.
# The bundled documents are 30-50 thousand characters of JSON with lists of a few dozen entries; the
# forms cap their lists at 30 entries (pathways/shared/forms/eot_summary.json).
MAX_LIST_ENTRIES = 200
MAX_PRINTED_CHARS = 500_000


class DocumentTooLargeError(ValueError):
    """Raised when a document is too large to print as a PDF: a list longer than
    :data:`MAX_LIST_ENTRIES`, or more than :data:`MAX_PRINTED_CHARS` characters of JSON. ``where`` is
    the JSON pointer of the list (``/gp_actions``), or ``/`` for the whole document."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


class PdfUnavailableError(RuntimeError):
    """Raised when WeasyPrint cannot run here: its system libraries (Pango) are missing.

    A deployment error, like a missing database driver: the README and .ci/run say what to install.
    """


@functools.cache
def strings(language: str) -> dict[str, Any]:
    """The interface strings of a language (``en`` or ``sv``)."""
    text = (importlib.resources.files(_PACKAGE) / "locales" / f"{language}.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["day"] = _day
    env.filters["short"] = lambda value: str(value or "")[:12]
    env.filters["css_string"] = _css_string
    return env


def _day(value: Any) -> str:
    """An ISO date or time as ``YYYY-MM-DD`` (the format used in Sweden, and unambiguous in English)."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).date().isoformat()
    except ValueError:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            return str(value)


def _css_string(value: Any) -> Markup:
    """A value as the inside of a double-quoted CSS string in a ``<style>`` element: quotes, backslashes,
    ``< > &`` and control characters as CSS escapes (HTML escaping does not apply inside ``<style>``,
    and only ``</style>`` could end it), so the result is safe as it is."""
    out = []
    for char in str(value):
        if char in "\"'\\<>&" or ord(char) < 0x20:
            out.append(f"\\{ord(char):x} ")
        else:
            out.append(char)
    return Markup("".join(out))


def render_html(document: dict[str, Any]) -> str:
    """A document (from :func:`~engine.documents.build.care_plan_document` or
    :func:`~engine.documents.build.end_of_treatment_summary`) as a self-contained printable HTML page in
    the document's language. Everything from the document is escaped.

    Raises:
        ValueError: ``document_type`` is not one of these documents.
    """
    template = _TEMPLATES.get(document.get("document_type", ""))
    if template is None:
        raise ValueError(f"no HTML template for document type {document.get('document_type')!r}")
    language = document.get("language") if document.get("language") in LANGUAGES else LANGUAGES[0]
    return _environment().get_template(template).render(doc=document, t=strings(str(language)))


def render_pdf(document: dict[str, Any]) -> bytes:
    """The document's HTML page as an A4 PDF (WeasyPrint), with the same content.

    Raises:
        ValueError: ``document_type`` is not one of these documents.
        DocumentTooLargeError: the document is too large to print (:func:`check_printable`).
        PdfUnavailableError: WeasyPrint's system libraries (Pango) are not installed.
    """
    check_printable(document)
    return html_to_pdf(render_html(document))


def check_printable(document: dict[str, Any]) -> None:
    """Refuse a document too large to print (:class:`DocumentTooLargeError`), before any rendering."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        children: Any = ()
        if isinstance(value, dict):
            children = ((f"{where}/{key}", child) for key, child in value.items())
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ENTRIES:
                raise DocumentTooLargeError(
                    f"the document is too large to print: {where} has {len(value)} entries "
                    f"(at most {MAX_LIST_ENTRIES})",
                    where,
                )
            children = ((f"{where}/{n}", child) for n, child in enumerate(value))
        stack.extend(children)
    size = len(json.dumps(document, default=str))
    if size > MAX_PRINTED_CHARS:
        raise DocumentTooLargeError(
            f"the document is too large to print: {size} characters (at most {MAX_PRINTED_CHARS})", "/"
        )


def html_to_pdf(page: str) -> bytes:
    """A self-contained HTML page as a PDF, loading nothing: no base URL, and a fetcher that refuses
    every URL (``file:``, ``http:``, ``data:``...) before opening it, so a document's text can never make
    the server fetch a URL or read a file; a refused image or stylesheet is left out, the page renders.

    Raises:
        PdfUnavailableError: WeasyPrint's system libraries (Pango) are not installed.
    """
    try:
        import weasyprint  # a second to import, and only PDFs need it
    except OSError as exc:  # cffi could not open libpango / libgobject
        raise PdfUnavailableError(f"PDF documents need WeasyPrint's system libraries (Pango): {exc}") from exc
    pdf: bytes = weasyprint.HTML(string=page, url_fetcher=_no_fetch()).write_pdf()
    return pdf


@functools.cache
def _no_fetch_class() -> type:
    from weasyprint.urls import URLFetcher  # WeasyPrint 68 and later (pyproject.toml)

    class NoFetch(URLFetcher):
        """WeasyPrint's URL fetcher, refusing every URL before anything is opened: fail_on_errors is off,
        so WeasyPrint logs the refusal and renders the page without the resource."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            raise ValueError(f"documents load nothing from outside: {url[:60]}")

    return NoFetch


def _no_fetch() -> Any:
    return _no_fetch_class()(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
