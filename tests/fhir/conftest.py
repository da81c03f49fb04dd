"""Fixtures of the FHIR API tests (the world they run in: fhir_world.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhir_world import NHS_NUMBER, START, FhirClient, World
from pathways_bundled.journey import PATHWAYS, REPO
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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app as a server starts it on a new database (it deploys the bundled pathways itself)."""
    database = tmp_path_factory.mktemp("fhir") / "fhir.sqlite3"
    clock = ManualClock(START)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{database}",
            "PATHWAYS_DIR": PATHWAYS,
            "RULES_DIR": REPO / "rules",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    app.test_client_class = FhirClient
    engine: CarePath = app.extensions["carepath"]
    try:
        with unit_of_work(engine.sessions) as session:
            tokens = {
                role: create_token(
                    session, role, f"test {role}", clock, patient_ref=NHS_NUMBER if role == "patient" else None
                )[1]
                for role in ROLES
            }
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
