"""A PDF is rendered in a process of its own within CAREPATH_PDF_TIMEOUT and CAREPATH_PDF_MEMORY_MB:
a document that needs longer or more is a 422 ``document-unprintable``, logged without patient data,
and the server carries on (before, WeasyPrint ran in the server's own process with only size caps:
nothing stopped a document that took a minute or all the memory)."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from api_contract import make_token, running_app
from flask import Flask
from helpers import assert_problem, assessed

from engine import ManualClock
from engine.documents import render
from engine.documents.render import PdfLimits

PATIENT = "MRN-7007"


def _pdf(client: Any, auth: Any, instance_id: str) -> Any:
    return client.get(f"/v1/instances/{instance_id}/care-plan", headers=auth("clinician", Accept="application/pdf"))


@pytest.fixture
def hurried_app(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    """The app as the server starts it with ``CAREPATH_PDF_TIMEOUT=0.05``: no PDF renders that fast."""
    with running_app(deployed_database_url, clock, PDF_TIMEOUT="0.05") as app:
        yield app


def test_a_pdf_past_the_time_limit_is_a_422_logged_without_patient_data(
    hurried_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = hurried_app.test_client()
    tokens = {role: make_token(hurried_app, role) for role in ("system", "clinician")}

    def auth(role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}", **extra}

    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, patient_ref=PATIENT)
    with caplog.at_level(logging.INFO):
        body = assert_problem(_pdf(client, auth, instance["id"]), 422, "document-unprintable")
    assert "took longer than 0.05 s" in body["detail"] and "text/html" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["/"]
    assert PATIENT not in str(body)
    stopped = [r.getMessage() for r in caplog.records if r.name == "carepath.documents"]
    assert stopped and "took longer than 0.05 s" in stopped[0], stopped
    assert not [r for r in caplog.records if PATIENT in r.getMessage()]
    # The server carries on: the document's JSON and page still answer.
    assert client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician")).status_code == 200
    page = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician", Accept="text/html"))
    assert page.status_code == 200


def test_a_pdf_past_the_memory_limit_is_a_422_and_the_next_pdf_renders(
    client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the settings' floor (384 MB), which no bundled document needs; the rendering process is cut
    # at 150 MB of address space, less than WeasyPrint and Pango need for any page.
    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, patient_ref=PATIENT)
    with monkeypatch.context() as patched:
        patched.setattr(PdfLimits, "of", classmethod(lambda cls, settings: cls(memory_mb=150)))
        body = assert_problem(_pdf(client, auth, instance["id"]), 422, "document-unprintable")
    assert "more than 150 MB of memory" in body["detail"] and PATIENT not in str(body)
    # The next PDF, within the deployment's limits, renders.
    response = _pdf(client, auth, instance["id"])
    assert response.status_code == 200 and response.get_data().startswith(b"%PDF-")


def test_pdfs_past_the_renderings_a_worker_runs_at_once_wait_then_are_told_to_retry(
    client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker renders at most MAX_CONCURRENT_PDFS documents at once (each may use its memory limit): with
    # every turn taken, a request waits its time limit for one, then answers 503 pdf-busy with Retry-After.
    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, patient_ref=PATIENT)
    taken = [render._turns.acquire(timeout=1) for _ in range(render.MAX_CONCURRENT_PDFS)]
    assert all(taken)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(PdfLimits, "of", classmethod(lambda cls, settings: cls(seconds=0.2)))
            busy = _pdf(client, auth, instance["id"])
        body = assert_problem(busy, 503, "pdf-busy")
        assert busy.headers["Retry-After"] == "5" and PATIENT not in str(body)
    finally:
        for _ in taken:
            render._turns.release()
    response = _pdf(client, auth, instance["id"])  # a turn is free again: it renders
    assert response.status_code == 200 and response.get_data().startswith(b"%PDF-")


def test_a_renderer_error_is_named_by_its_type_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """WeasyPrint failing on a document (not time, not memory): the rendering process answers the error's
    type, never its text, which can quote the page; the caller gets reason ``failed``."""

    def fails(page: str) -> bytes:
        raise ValueError(f"cannot lay out {PATIENT}'s page")

    monkeypatch.setattr(render, "html_to_pdf", fails)
    # A plain fork carries the patched module into the process (the fork server imported its own copy).
    context = multiprocessing.get_context("fork")
    answers, answer = context.Pipe(duplex=False)
    limits = PdfLimits()
    process = context.Process(
        target=render._print_in_child, args=("<p>page</p>", limits.memory_mb * 2**20, limits.seconds, answer)
    )
    process.start()
    answer.close()
    said = render._answer_within(answers, limits.seconds, 2**20)
    process.join()
    answers.close()
    with pytest.raises(render.DocumentUnprintableError) as stopped:
        render._printed(said, limits, 0.1)
    assert stopped.value.reason == "failed"
    assert "the PDF renderer failed (ValueError)" in str(stopped.value) and PATIENT not in str(stopped.value)
