"""The active surveillance plan over HTTP, on the bundled prostate pathway: JSON (checked against the
OpenAPI document by the contract client), the printable page and the PDF, for the care team and for the
man himself, and 409 where there is no active surveillance. The document's content:
tests/test_documents_surveillance.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from api_contract import bundled_running_app, make_token
from flask import Flask
from helpers import assert_problem
from pathways_bundled.journey import Journey
from pathways_bundled.journeys import prostate_mdt

from engine import ManualClock

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass
class World:
    app: Flask
    man: Journey  # the MDT chose active surveillance
    other: Journey  # the MDT chose surgery
    headers: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("surveillance-plan-api")
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    with bundled_running_app(folder, database_templates, clock) as app:
        engine = app.extensions["carepath"]
        man = prostate_mdt(engine, clock, "SYN-ASA-0001", "active_surveillance")
        other = prostate_mdt(engine, clock, "SYN-ASA-0002", "radical_prostatectomy")
        headers = {"Authorization": f"Bearer {make_token(app, 'clinician')}"}
        yield World(app, man, other, headers)


def _get(world: World, instance_id: str, accept: str = "application/json", me: bool = False, **headers: str) -> Any:
    base = "/v1/me/instances" if me else "/v1/instances"
    auth = headers.pop("auth", None) or world.headers["Authorization"]
    return world.app.test_client().get(
        f"{base}/{instance_id}/active-surveillance-plan", headers={"Authorization": auth, "Accept": accept, **headers}
    )


def test_the_care_team_reads_his_plan_as_json_html_and_pdf(world: World) -> None:
    response = _get(world, world.man.view.id)  # the contract client checks it against ActiveSurveillancePlan
    assert response.status_code == 200 and response.headers["Content-Language"] == "en"
    doc = response.json
    assert doc["document_type"] == "active_surveillance_plan" and doc["patient_ref"] == "SYN-ASA-0001"
    assert [s["code"] for s in doc["schedule"]] == ["psa", "psa", "psa", "psa", "review"]
    page = _get(world, world.man.view.id, "text/html", **{"Accept-Language": "sv"})
    assert page.status_code == 200 and page.mimetype == "text/html" and page.headers["Content-Language"] == "sv"
    assert "Min plan för aktiv monitorering" in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"]
    pytest.importorskip("weasyprint")
    pdf = _get(world, world.man.view.id, "application/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    disposition = pdf.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="active-surveillance-plan-') and "SYN-ASA" not in disposition


def test_the_man_reads_his_own_plan_and_no_one_elses(world: World) -> None:
    own = f"Bearer {make_token(world.app, 'patient', patient_ref='SYN-ASA-0001')}"
    response = _get(world, world.man.view.id, me=True, auth=own)
    assert response.status_code == 200 and response.json["instance_id"] == world.man.view.id
    assert _get(world, world.other.view.id, me=True, auth=own).status_code == 404  # not his: as if missing


def test_no_plan_where_there_is_no_active_surveillance(world: World) -> None:
    refused = _get(world, world.other.view.id)
    assert_problem(refused, 409, "instance-state-conflict")
    assert "no active surveillance plan" in refused.json["detail"] and "SYN-ASA" not in refused.get_data(as_text=True)
    assert_problem(_get(world, MISSING), 404, "not-found")
