"""A document's JSON as a printable HTML page, and that page as a PDF for sending to the GP practice.

The templates (``templates/``) and their strings (``locales/en.yaml``, ``sv.yaml``) ship inside this
package and are read through importlib.resources. The page prints on A4 with CSS paged media: every
page carries the patient reference, the document's date and "page N of M" in its margins (Chromium
and WeasyPrint both draw ``@page`` margin boxes), and the document's technical details never stand on
a page of their own. The PDF is WeasyPrint's rendering of the same HTML, so it has the same content.

WeasyPrint runs in a process of its own for each PDF, bounded in time and memory (:class:`PdfLimits`):
a document that would take longer or need more is stopped there and refused
(:class:`DocumentUnprintableError`), and the server's own process never holds WeasyPrint's memory.
Each such process is forked from a fork server (``multiprocessing``'s ``forkserver``: a fresh
interpreter started on the first PDF a process asks for, which imports WeasyPrint once), so a PDF
costs a fork, not WeasyPrint's second-long import, and nothing of the server's threads, locks or
connections is inherited.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import logging
import math
import multiprocessing
import resource
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing.connection import Connection
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from engine.settings import DEFAULT_PDF_MEMORY_MB, DEFAULT_PDF_TIMEOUT_SECONDS, Settings

__all__ = [
    "CARE_PLAN",
    "END_OF_TREATMENT",
    "LANGUAGES",
    "MAX_CONCURRENT_PDFS",
    "MAX_LIST_ENTRIES",
    "MAX_PRINTED_CHARS",
    "DocumentTooLargeError",
    "DocumentUnprintableError",
    "PdfBusyError",
    "PdfLimits",
    "PdfUnavailableError",
    "SURVEILLANCE_PLAN",
    "check_printable",
    "html_to_pdf",
    "render_html",
    "render_pdf",
    "strings",
]

CARE_PLAN = "personalised_care_plan"
END_OF_TREATMENT = "end_of_treatment_summary"
SURVEILLANCE_PLAN = "active_surveillance_plan"
LANGUAGES = ("en", "sv")  # the first is the fallback
_PACKAGE = "engine.documents"
_TEMPLATES = {
    CARE_PLAN: "care_plan.html",
    END_OF_TREATMENT: "end_of_treatment_summary.html",
    SURVEILLANCE_PLAN: "active_surveillance_plan.html",
}
# What a PDF may be made from: WeasyPrint's time and memory grow with the content (6,000 GP actions
# took a minute and 380 MB; a 200-item care plan 8 s), so a larger document is refused, not rendered.
# The bundled documents are 30-50 thousand characters of JSON with lists of a few dozen entries; the
# forms cap their lists at 30 entries (pathways/shared/forms/eot_summary.json).
MAX_LIST_ENTRIES = 200
MAX_PRINTED_CHARS = 500_000
_MB = 1024 * 1024
_log = logging.getLogger("carepath.documents")
# PDFs rendering at once in one process (a gunicorn worker has CAREPATH_THREADS request threads): each
# rendering may use up to its memory limit, so a worker holds at most this many times it. A request that
# waits longer than its time limit for a turn is told the renderer is busy (503), never queued forever.
MAX_CONCURRENT_PDFS = 2
_turns = threading.BoundedSemaphore(MAX_CONCURRENT_PDFS)


@dataclass(frozen=True)
class PdfLimits:
    """How long one PDF may take to render (``seconds``: wall-clock, from the rendering process's start
    to its answer) and how much memory it may use (``memory_mb``: the rendering process's address space,
    WeasyPrint and the interpreter included). ``engine.settings.Settings`` reads them from
    ``CAREPATH_PDF_TIMEOUT`` and ``CAREPATH_PDF_MEMORY_MB`` (:meth:`of`).

    Raises:
        ValueError: a limit that is not a positive finite number.
    """

    seconds: float = DEFAULT_PDF_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_PDF_MEMORY_MB

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds > 0) or self.memory_mb <= 0:
            raise ValueError("the PDF limits must be a positive finite number of seconds and of megabytes")

    @classmethod
    def of(cls, settings: Settings) -> PdfLimits:
        """The limits a deployment's :class:`~engine.settings.Settings` set."""
        return cls(settings.pdf_timeout_seconds, settings.pdf_memory_mb)


class DocumentTooLargeError(ValueError):
    """Raised when a document is too large to print as a PDF: a list longer than
    :data:`MAX_LIST_ENTRIES`, or more than :data:`MAX_PRINTED_CHARS` characters of JSON. ``where`` is
    the JSON pointer of the list (``/gp_actions``), or ``/`` for the whole document."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


class DocumentUnprintableError(ValueError):
    """Raised when WeasyPrint was stopped, or failed, on a document: it took longer than the
    :class:`PdfLimits`' ``seconds`` (``reason`` ``"time"``), needed more memory than their
    ``memory_mb`` (``"memory"``: the rendering process ran out, or died without answering), or failed
    (``"failed"``: the message names the error's type, never its text). The server carries on; the
    document's JSON and HTML still answer."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PdfUnavailableError(RuntimeError):
    """Raised when WeasyPrint cannot run here: its system libraries (Pango) are missing.

    A deployment error, like a missing database driver: the README and .ci/run say what to install.
    """


class PdfBusyError(PdfUnavailableError):
    """Raised when :data:`MAX_CONCURRENT_PDFS` documents were rendering in this process for the whole
    of a request's time limit: try again in a moment (nothing is wrong with the document)."""


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
    """A document (from :func:`~engine.documents.build.care_plan_document`,
    :func:`~engine.documents.build.end_of_treatment_summary` or
    :func:`~engine.documents.build.active_surveillance_plan`) as a self-contained printable HTML page in
    the document's language. Everything from the document is escaped.

    Raises:
        ValueError: ``document_type`` is not one of these documents.
    """
    template = _TEMPLATES.get(document.get("document_type", ""))
    if template is None:
        raise ValueError(f"no HTML template for document type {document.get('document_type')!r}")
    language = document.get("language") if document.get("language") in LANGUAGES else LANGUAGES[0]
    return _environment().get_template(template).render(doc=document, t=strings(str(language)))


def render_pdf(document: dict[str, Any], limits: PdfLimits = PdfLimits()) -> bytes:
    """The document's HTML page as an A4 PDF (WeasyPrint), with the same content, rendered in a process
    of its own within ``limits``.

    Raises:
        ValueError: ``document_type`` is not one of these documents.
        DocumentTooLargeError: the document is too large to print (:func:`check_printable`).
        DocumentUnprintableError: WeasyPrint took longer or needed more memory than ``limits``, or failed.
        PdfUnavailableError: WeasyPrint's system libraries (Pango) are not installed, or no rendering
            process could be started.
    """
    check_printable(document)
    return _print_bounded(render_html(document), limits)


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


# --- WeasyPrint in a process of its own -----------------------------------------------------------------

# What the rendering process answers: a first byte saying what happened, then the PDF's bytes.
_PRINTED, _OUT_OF_MEMORY, _UNAVAILABLE, _FAILED = b"P", b"M", b"U", b"F"


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext:
    """The ``forkserver`` context, its server importing WeasyPrint once (``pdf_preload``). The fork server
    starts on the first PDF a process renders: under gunicorn that is in a worker, never in the master
    (a fork server started before the workers fork is not theirs to use). It imports the program's
    main module once too (``__main__``, multiprocessing's default), as each rendering process would
    otherwise do again."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "engine.documents.render", "engine.documents.pdf_preload"])
    return context


def _print_bounded(page: str, limits: PdfLimits) -> bytes:
    """``page`` as a PDF, rendered in a process forked from the fork server within ``limits``; the
    process is killed when the time is up. Logs what stopped a rendering, never the page.

    Raises:
        DocumentUnprintableError, PdfUnavailableError: as :func:`render_pdf`.
    """
    if not _turns.acquire(timeout=limits.seconds):
        _log.warning("a PDF waited %g s for one of the %d renderings at once", limits.seconds, MAX_CONCURRENT_PDFS)
        raise PdfBusyError(f"the PDF renderer is busy ({MAX_CONCURRENT_PDFS} documents at once): try again in a moment")
    try:
        return _print_in_turn(page, limits)
    finally:
        _turns.release()


def _print_in_turn(page: str, limits: PdfLimits) -> bytes:
    context = _fork_server()
    answers, answer = context.Pipe(duplex=False)
    memory = limits.memory_mb * _MB
    process = context.Process(
        target=_print_in_child, args=(page, memory, limits.seconds, answer), name="carepath-pdf", daemon=True
    )
    started = time.monotonic()
    try:
        try:
            process.start()
        except (OSError, EOFError) as exc:  # no fork server, or no process left to fork
            _log.error("the PDF renderer could not start a process (%s)", type(exc).__name__)
            raise PdfUnavailableError(f"the PDF renderer could not start a process ({type(exc).__name__})") from None
        finally:
            answer.close()  # the child holds its own end: the pipe reads as closed once the child has gone
        said = _answer_within(answers, limits.seconds, memory)
    finally:
        if process.pid is not None:
            process.kill()  # at once when the time is up; a no-op for a process that has answered and ended
            process.join()
            process.close()
        answers.close()
    return _printed(said, limits, time.monotonic() - started)


def _answer_within(answers: Connection, seconds: float, longest: int) -> bytes | None:
    """The child's answer; ``b""`` when it died without one; None when ``seconds`` passed first."""
    if not answers.poll(seconds):
        return None
    try:
        return answers.recv_bytes(longest)
    except (EOFError, OSError):  # died without answering (killed, or GLib aborted with no memory left)
        return b""


def _printed(said: bytes | None, limits: PdfLimits, took: float) -> bytes:
    """The PDF in the child's answer, or the error that answer means (logged without the document)."""
    if said is not None and said[:1] == _PRINTED:
        return said[1:]
    if said is not None and said[:1] == _UNAVAILABLE:
        raise PdfUnavailableError(said[1:].decode(errors="replace"))
    if said is None:
        reason, why = "time", f"it took longer than {limits.seconds:g} s"
    elif said[:1] == _FAILED:
        reason, why = "failed", f"the PDF renderer failed ({said[1:].decode(errors='replace')[:80]})"
    else:
        reason, why = "memory", f"it needed more than {limits.memory_mb} MB of memory"
    _log.warning("a PDF rendering was stopped after %.1f s: %s", took, why)
    raise DocumentUnprintableError(f"the document cannot be printed as a PDF: {why}", reason)


def _print_in_child(page: str, memory: int, seconds: float, answer: Connection) -> None:
    """In the rendering process: limit its memory (``memory`` bytes of address space) and, should its
    parent be gone, its processor time, render ``page`` and answer on ``answer``. WeasyPrint's log lines
    can quote the page, so this process logs nothing; errors are sent as their type's name alone."""
    logging.disable(logging.CRITICAL)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = math.ceil(seconds) + 1  # a backstop: the parent kills it at ``seconds`` of wall-clock time
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        said = _PRINTED + html_to_pdf(page)
    except MemoryError:
        said = _OUT_OF_MEMORY
    except PdfUnavailableError as exc:
        said = _UNAVAILABLE + str(exc).encode()
    except Exception as exc:  # noqa: BLE001 - any error is the document's refusal, named by its type
        said = _FAILED + type(exc).__name__.encode()
    answer.send_bytes(said)
    answer.close()
