"""Checks a response against the OpenAPI document: path, method, status, media type, body, headers.

The FHIR API (under ``api.openapi.FHIR_BASE``) is not in the OpenAPI document; its responses are checked
against the FHIR R4 models instead (tests/fhir_r4.py), so every response is checked against one contract.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fhir_r4  # tests/ is on sys.path
import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api import create_app
from api.openapi import DOCUMENT, FHIR_BASE
from engine import ManualClock
from engine.access import create_token
from engine.db.session import unit_of_work

URI = "https://carepath.dev/openapi.json"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@dataclass
class Contract:
    document: dict[str, Any]

    def __post_init__(self) -> None:
        self.registry: Registry[Any] = Registry().with_resource(
            URI, Resource.from_contents(self.document, default_specification=DRAFT202012)
        )
        templates = sorted(self.document["paths"], key=lambda t: t.count("{"))
        self.routes = [(t, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$")) for t in templates]

    def template(self, path: str) -> str | None:
        return next((t for t, pattern in self.routes if pattern.match(path)), None)

    def violations(self, method: str, path: str, status: int, headers: Any, body: bytes) -> list[str]:
        """Everything about this response the document does not allow (empty when it conforms)."""
        found: list[str] = []
        if "X-Request-ID" not in headers:
            found.append("no X-Request-ID header")
        if path.startswith(FHIR_BASE + "/"):
            return found + self._fhir(headers, body)
        template = self.template(path)
        if template is None or method.lower() not in self.document["paths"][template]:
            expected = 404 if template is None else 405
            if status != expected:
                found.append(f"undocumented {method} {path} answered {status}, not {expected}")
            return found + self._body(body, headers, "#/components/schemas/Problem", "application/problem+json")
        responses = self.document["paths"][template][method.lower()]["responses"]
        if str(status) not in responses:
            return found + [f"{method} {template}: status {status} is not documented ({sorted(responses)})"]
        response = responses[str(status)]
        for name in response.get("headers", {}):
            if name not in headers:
                found.append(f"{method} {template} {status}: documented header {name} missing")
        content = response.get("content")
        if not content:
            return found + ([f"{method} {template} {status}: undocumented body"] if body else [])
        media = headers.get("Content-Type", "").split(";")[0].strip()
        if media not in content:
            return found + [f"{method} {template} {status}: content type {media!r} not in {sorted(content)}"]
        pointer = f"#/paths/{_escape(template)}/{method.lower()}/responses/{status}/content/{_escape(media)}/schema"
        return found + self._body(body, headers, pointer, media)

    @staticmethod
    def _fhir(headers: Any, body: bytes) -> list[str]:
        if headers.get("Content-Type", "").split(";")[0].strip() != "application/fhir+json":
            return [f"content type {headers.get('Content-Type')!r} is not application/fhir+json"]
        return fhir_r4.problems(json.loads(body))

    def _body(self, body: bytes, headers: Any, pointer: str, media: str) -> list[str]:
        if headers.get("Content-Type", "").split(";")[0].strip() != media:
            return [f"content type {headers.get('Content-Type')!r} is not {media}"]
        if not media.endswith("json"):
            return []
        try:
            value = json.loads(body)
        except ValueError:
            return ["body is not JSON"]
        validator = Draft202012Validator(
            {"$ref": URI + pointer}, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        return [f"{pointer}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]


CONTRACT = Contract(DOCUMENT)


class ContractClient(FlaskClient):
    """A test client that fails the test when a response breaks the OpenAPI document."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        request = response.request
        problems = CONTRACT.violations(
            request.method, request.path, response.status_code, response.headers, response.get_data()
        )
        if problems:
            pytest.fail(
                f"{request.method} {request.path} -> {response.status_code} breaks the OpenAPI document:\n"
                + "\n".join(problems)
                + f"\nbody: {response.get_data(as_text=True)[:2000]}"
            )
        return response


# A patient token's patient: the one helpers.start starts a pathway for by default.
TEST_PATIENT = "MRN-1001"


def make_token(app: Flask, role: str, label: str = "", patient_ref: str = TEST_PATIENT) -> str:
    """A secret for ``role``; a patient's token is for ``patient_ref``."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(
            session, role, label or f"test {role}", engine.clock, patient_ref=patient_ref if role == "patient" else None
        )
    return secret


_TESTS = Path(__file__).resolve().parent.parent


@contextmanager
def running_app(database_url: str, clock: ManualClock, **config: Any) -> Iterator[Flask]:
    """The app as the server starts it on ``database_url`` (it migrates and syncs the test pathways: nothing
    to do on a copy), with the contract-checking client and ``config`` over the tests' defaults; closed after."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PATHWAYS_DIR": _TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            # Deploys are active at once for tests of other features; test_api_four_eyes.py turns it on.
            "FOUR_EYES": "off",
            **config,
        }
    )
    app.test_client_class = ContractClient
    try:
        yield app
    finally:
        app.extensions["carepath.jobs"].wait()  # a verification a test started, before its database goes
        app.extensions["carepath"].close()


@contextmanager
def bundled_running_app(folder: Path, database_templates: Any, clock: ManualClock) -> Iterator[Flask]:
    """:func:`running_app` on a copy (in ``folder``) of the test database template with the bundled pathways
    and rules deployed, as the bundled journeys run them."""
    from pathways_bundled.journey import PATHWAYS, REPO  # the bundled journeys' own folders

    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), folder / "api.sqlite3")
    with running_app(
        f"sqlite:///{folder / 'api.sqlite3'}", clock, PATHWAYS_DIR=PATHWAYS, RULES_DIR=REPO / "rules"
    ) as app:
        yield app
