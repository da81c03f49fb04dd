"""Property-based tests of the whole API against its own OpenAPI document (schemathesis, in-process WSGI).

For every operation, schemathesis generates valid requests (with random and with real instance and
task ids) and invalid ones, sent with a token of a role allowed to call it. Checks: no 5xx; status
codes, content types, headers and bodies as documented; invalid requests refused. Examples are
bounded so the run stays well under a minute per database.

(schemathesis' pytest plugin for fixture-built schemas fails on pytest 9, so the strategies are
driven with hypothesis directly.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from helpers import PATHWAY, care_plan_ids, escalation_id, start
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from api.openapi import DOCUMENT
from engine.access import PERMISSIONS

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    # Refused invalid requests. It found the webhooks API accepting unknown parameters. Run with more examples it
    # also reports cases whose invalid part never reached the server (an extra query parameter without a value:
    # its "Reproduce with" line holds only documented, valid parameters); read that line before chasing one.
    openapi_checks.negative_data_rejection,
]
EXAMPLES = 20


def test_api_conforms_to_its_document(app: Flask, client: Any, auth: Any, tokens: dict[str, str]) -> None:
    instance = start(client, auth).json
    subscription = client.post(
        "/v1/webhooks/subscriptions",
        headers=auth("admin"),
        json={"url": "https://ehr.example.org/hooks", "event_types": ["task.ready"]},
    ).json
    real = {
        "instance_id": instance["id"],
        "task_id": instance["ready_tasks"][0]["id"],
        "pathway_id": PATHWAY,
        "version": "latest",
        "subscription_id": subscription["id"],
        **care_plan_ids(client, auth),
        "job_id": client.post("/v1/audit/verifications", headers=auth("auditor")).json["id"],
        "escalation_id": escalation_id(app.extensions["carepath"], client, auth),
        "request_id": client.post(f"/v1/pathways/{PATHWAY}/migration-requests", headers=auth("author")).json["id"],
        "ruleset": "supportive_care",
        "number": 1,
    }  # a phase of care
    schema = schemathesis.openapi.from_wsgi(
        "/v1/openapi.json", app, headers={"Authorization": f"Bearer {tokens['author']}"}
    )
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {f"{m.upper()} {p}" for p, item in DOCUMENT["paths"].items() for m in item}
    assert documented - {op.label for op in operations} <= {"GET /v1/openapi.json"}  # schemathesis skips it
    for operation in operations:
        permission = DOCUMENT["paths"][operation.path][operation.method.lower()].get("x-permission")
        headers = (
            {} if permission is None else {"Authorization": f"Bearer {tokens[sorted(PERMISSIONS[permission])[0]]}"}
        )
        names = [
            p["name"]
            for p in DOCUMENT["paths"][operation.path][operation.method.lower()].get("parameters", [])
            if p["in"] == "path"
        ]
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        if names:
            strategies.append(operation.as_strategy(path_parameters={n: real[n] for n in names}))

        first_failure = _explore(st.one_of(strategies), headers)
        if first_failure:
            failures[operation.label] = first_failure
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def _explore(strategy: Any, headers: dict[str, str]) -> str | None:
    """Run the bounded examples; return the first failure's report (None when all pass)."""
    found: list[str] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # keep exploring; report the first failure
            found.append(f"{exc}"[:3000])

    run()
    return found[0] if found else None
