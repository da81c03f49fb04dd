"""The FHIR API on the bundled pathways: synthetic patients driven through the breast pathway (the journeys
of tests/pathways_bundled), served by the real app, read by a client that validates every FHIR response
against the R4 models (tests/fhir_r4.py). A module of its own name (not conftest) so the test modules
can import it whatever other folders run in the same session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fhir_r4
from flask import Flask
from flask.testing import FlaskClient
from pathways_bundled.journey import Journey
from pathways_bundled.journeys import SITES
from pathways_bundled.journeys import _start as start
from pathways_bundled.journeys import _support as support

from engine import CarePath

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
