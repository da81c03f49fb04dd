"""The FHIR API on the bundled pathways: synthetic patients driven through the breast pathway (the journeys
of tests/pathways_bundled), served by the real app, read by a client that validates every FHIR response
against the R4 models (tests/fhir_r4.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import fhir_r4
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journey import PATHWAYS, REPO, Journey
from pathways_bundled.journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES
from pathways_bundled.journeys import _end_of_treatment as end_of_treatment
from pathways_bundled.journeys import _mdt as mdt
from pathways_bundled.journeys import _start as start
from pathways_bundled.journeys import _support as support
from pathways_bundled.journeys import _treatment as treatment

from api import create_app
from engine import CarePath, ManualClock
from engine.access import ROLES, create_token
from engine.db.session import unit_of_work

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
NHS_NUMBER = "9434765919"  # a valid NHS number of the kind used in test data (synthetic patient)
NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOCAL = "https://carepath.dev/fhir/sid/patient-ref"


class FhirClient(FlaskClient):
    """Fails the test when a /fhir response is not FHIR R4 JSON that the R4 models accept."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        if response.request.path.startswith("/fhir/"):
            assert response.mimetype == "application/fhir+json", (response.request.path, response.mimetype)
            assert "X-Request-ID" in response.headers
            found = fhir_r4.problems(response.json)
            assert found == [], f"{response.request.path}: {found}"
            if response.status_code >= 400:
                assert response.json["resourceType"] == "OperationOutcome", response.json
        return response


@dataclass
class World:
    app: Flask
    engine: CarePath
    client: FhirClient
    tokens: dict[str, str]
    ended: Journey  # NHS number patient: HNA at diagnosis (referrals), treated, end of treatment summary written

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def waiting(self, patient: str) -> Journey:
        """A new breast pathway patient whose needs assessment checklist is waiting."""
        journey = start(self.engine, self.engine.clock, SITES["breast"], patient)  # type: ignore[arg-type]
        support(journey, "later")
        journey.do("offer_hna", {"hna_accepted": True})
        assert "complete_checklist" in journey.ready
        return journey


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("fhir")
    database = folder / "fhir.sqlite3"
    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), database)
    clock = ManualClock(START)
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{database}", "PATHWAYS_DIR": PATHWAYS,
                      "RULES_DIR": REPO / "rules", "CLOCK": clock, "AUTH_CACHE_SECONDS": 0})
    app.test_client_class = FhirClient
    engine: CarePath = app.extensions["carepath"]
    try:
        with unit_of_work(engine.sessions) as session:
            tokens = {role: create_token(session, role, f"test {role}", clock)[1] for role in ROLES}
        site = SITES["breast"]
        ended = start(engine, clock, site, NHS_NUMBER)
        support(ended, "yes_now")
        ended.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)  # information declined, the rest agreed
        mdt(ended, site, prehab=False, special=False)
        treatment(ended, site, special=False)
        ended.hna_declined()
        end_of_treatment(ended, "patient_initiated")
        yield World(app, engine, app.test_client(), tokens, ended)  # type: ignore[arg-type]
    finally:
        engine.close()
