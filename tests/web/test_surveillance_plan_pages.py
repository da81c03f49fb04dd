"""The active surveillance plan on the web pages, on the bundled prostate pathway: the patient page offers
it (in both languages) only where the MDT chose active surveillance, and the man finds it, to read or as a
PDF, among his own documents. The document's content: tests/test_documents_surveillance.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journey import Journey
from pathways_bundled.journeys import prostate_mdt
from web_helpers import bundled_app, make_token, sign_in_with

from engine import ManualClock

DOCUMENT = "active-surveillance-plan"


@dataclass
class World:
    app: Flask
    man: Journey  # the MDT chose active surveillance
    other: Journey  # the MDT chose surgery


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, database_templates: Any) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("surveillance-plan-pages")
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    app = bundled_app(folder, database_templates, clock)
    try:
        engine = app.extensions["carepath"]
        yield World(
            app,
            prostate_mdt(engine, clock, "SYN-ASW-0001", "active_surveillance"),
            prostate_mdt(engine, clock, "SYN-ASW-0002", "radical_prostatectomy"),
        )
    finally:
        app.extensions["carepath"].close()


def _signed_in(app: Flask, role: str, patient_ref: str = "SYN-ASW-0001") -> FlaskClient:
    client = app.test_client()
    assert sign_in_with(client, make_token(app, role, patient_ref)).status_code == 303
    return client


def test_the_patient_page_offers_the_plan_only_on_active_surveillance(world: World) -> None:
    client = _signed_in(world.app, "clinician")
    page = client.get(f"/patients/{world.man.view.id}").get_data(as_text=True)
    for language in ("en", "sv"):
        assert f'href="/patients/{world.man.view.id}/documents/{DOCUMENT}?lang={language}"' in page
    assert "Active surveillance plan:" in page
    other = client.get(f"/patients/{world.other.view.id}").get_data(as_text=True)
    assert DOCUMENT not in other and "/documents/care-plan" in other
    document = client.get(f"/patients/{world.man.view.id}/documents/{DOCUMENT}?lang=sv")
    assert document.status_code == 200 and document.headers["Content-Language"] == "sv"
    assert "<h1>Min plan för aktiv monitorering</h1>" in document.get_data(as_text=True)
    refused = client.get(f"/patients/{world.other.view.id}/documents/{DOCUMENT}")
    assert refused.status_code == 409 and "SYN-ASW" not in refused.get_data(as_text=True)


def test_the_man_finds_his_plan_among_his_documents(world: World) -> None:
    client = _signed_in(world.app, "patient")
    page = client.get(f"/my/plans/{world.man.view.id}").get_data(as_text=True)
    assert f'href="/my/plans/{world.man.view.id}/documents/{DOCUMENT}?lang=en"' in page
    # What comes next on his page: his first PSA test, three months after the MDT chose surveillance.
    assert "<strong>2026-04-15</strong>: PSA blood test (active surveillance)" in page
    assert f'href="/my/plans/{world.man.view.id}/documents/{DOCUMENT}?lang=sv&amp;format=pdf"' in page
    document = client.get(f"/my/plans/{world.man.view.id}/documents/{DOCUMENT}?lang=en")
    assert document.status_code == 200 and "<h1>My active surveillance plan</h1>" in document.get_data(as_text=True)
    pytest.importorskip("weasyprint")
    pdf = client.get(f"/my/plans/{world.man.view.id}/documents/{DOCUMENT}?lang=en&format=pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    # Not his: as if it did not exist.
    assert client.get(f"/my/plans/{world.other.view.id}/documents/{DOCUMENT}").status_code == 404


def test_the_task_that_gives_the_plan_offers_it_to_print(world: World) -> None:
    client = _signed_in(world.app, "clinician")
    task = next(t for t in world.man.view.ready_tasks if t["element"] == "as_plan")
    page = client.get(f"/patients/{world.man.view.id}/tasks/{task['id']}").get_data(as_text=True)
    assert 'data-test="task-document"' in page and "Print or send the active surveillance plan" in page
    assert f'href="/patients/{world.man.view.id}/documents/{DOCUMENT}?lang=sv"' in page
    other = next(t for t in world.man.view.ready_tasks if t["element"] != "as_plan")
    assert 'data-test="task-document"' not in client.get(f"/patients/{world.man.view.id}/tasks/{other['id']}").get_data(
        as_text=True
    )
