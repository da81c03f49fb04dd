"""Decision table evaluations over the API: deployed as a zip bundle with the .dmn beside the diagram,
listed per instance and explained rule by rule (issue 12, point 4)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from helpers import assert_problem

FOLDER = Path(__file__).resolve().parent.parent / "pathways"


def _bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("triage.bpmn", "distress_triage.dmn"):
            archive.writestr(f"triage/{name}", (FOLDER / name).read_bytes())
    return buffer.getvalue()


def test_an_evaluation_is_listed_and_explained(client: Any, auth: Any) -> None:
    deployed = client.post("/v1/pathways", data=_bundle(), content_type="application/zip", headers=auth("author"))
    assert deployed.status_code == 201, deployed.json
    assert deployed.json["bundle"]["contained"] == ["distress_triage.dmn", "triage.bpmn"]
    started = client.post(
        "/v1/instances",
        json={
            "pathway_id": "test_triage",
            "patient_ref": "MRN-7001",
            "data": {"distress_score": 9, "main_concern": "emotional"},
        },
        headers=auth("system"),
    )
    assert started.status_code == 201, started.json
    instance_id = started.json["id"]
    [item] = client.get(f"/v1/instances/{instance_id}/decision-evaluations", headers=auth("auditor")).json["items"]
    assert item["decision_id"] == "distress_triage" and item["matched"] == ["Rule_high"]
    assert item["outputs"] == {"urgency": "urgent"} and item["element"] == "triage"
    body = client.get(f"/v1/decision-evaluations/{item['id']}", headers=auth("auditor")).json
    verdicts = {rule["rule"]: rule for rule in body["explanation"]["rules"]}
    assert verdicts["Rule_high"]["verdict"] == "matched"
    assert verdicts["Rule_low"] == {
        "rule": "Rule_low",
        "row": 1,
        "verdict": "not matched",
        "entries": ["< 4", "-"],
        "failed_input": "Distress score",
        "outputs": ['urgency = "routine"'],
    }
    assert verdicts["Rule_moderate_physical"]["failed_input"] == "Distress score"
    assert "Rule 1 (Rule_low): not matched: Distress score is 9, the entry says < 4" in body["explanation"]["text"]
    assert body["explanation"]["table_version"] == item["table_version"]


def test_unknown_ids_and_roles(client: Any, auth: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(f"/v1/decision-evaluations/{missing}", headers=auth("auditor")), 404, "not-found")
    assert_problem(
        client.get(f"/v1/instances/{missing}/decision-evaluations", headers=auth("auditor")), 404, "not-found"
    )
    assert_problem(client.get(f"/v1/decision-evaluations/{missing}", headers=auth("author")), 403, "forbidden")
