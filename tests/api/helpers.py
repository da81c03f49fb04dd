"""Small helpers shared by the API tests (imported as a top-level module from tests/api)."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from typing import Any

PROBLEMS = "https://carepath.dev/problems/"
PATHWAY = "test_assessment"
CARE_PLAN_PATHWAY = "test_careplan"


def start(client: Any, auth: Any, patient_ref: str = "MRN-1001", **headers: str) -> Any:
    response = client.post(
        "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": patient_ref}, headers=auth("system", **headers)
    )
    assert response.status_code == 201, response.json
    return response


def complete(
    client: Any, auth: Any, instance: dict[str, Any], data: dict[str, Any], role: str = "clinician", **headers: str
) -> Any:
    task = instance["ready_tasks"][0]
    return client.post(
        f"/v1/instances/{instance['id']}/tasks/{task['id']}/complete",
        json={"data": data},
        headers=auth(role, **{"If-Match": f'"{instance["version"]}"', **headers}),
    )


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def assessed(client: Any, auth: Any, concerns: dict[str, int], patient_ref: str = "MRN-3003") -> dict[str, Any]:
    """A test_careplan instance whose needs assessment was evaluated: care plan items proposed."""
    started = client.post(
        "/v1/instances",
        json={"pathway_id": CARE_PLAN_PATHWAY, "patient_ref": patient_ref, "data": {"age": 54}},
        headers=auth("system"),
    )
    assert started.status_code == 201, started.json
    response = complete(client, auth, started.json, {"concerns": concerns})
    assert response.status_code == 200 and response.json["status"] == "running", response.json
    body: dict[str, Any] = response.json
    return body


def care_plan_ids(client: Any, auth: Any) -> dict[str, str]:
    """A proposed care plan item and the evaluation that proposed it (for walking every endpoint)."""
    instance = assessed(client, auth, {"worry_fear_anxiety": 9})
    plan = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician")).json
    item = plan["awaiting_decision"][0]
    return {"item_id": item["id"], "evaluation_id": item["why"]["evaluation_id"]}


def escalation_id(carepath: Any, client: Any, auth: Any) -> str:
    """An open escalation of a referral not accepted in time (the clock moved on a week, the worker's scan)."""
    instance = assessed(client, auth, {"worry_fear_anxiety": 9}, "MRN-3013")
    plan = client.get(f"/v1/instances/{instance['id']}/care-plan", headers=auth("clinician")).json
    item = next(i["id"] for i in plan["awaiting_decision"] if i["kind"] == "referral")
    for status in ("agreed", "referred"):
        carepath.care_plans.set_status(instance["id"], item, status, "clinician:test")
    carepath.clock.advance(timedelta(days=7))
    carepath.referral_escalations.open_due()
    found: str = carepath.referral_escalations.list_open(patient_ref="MRN-3013")[0]["id"]
    return found


def deploy(client: Any, headers: dict[str, str], files: dict[str, bytes]) -> dict[str, Any]:
    """``POST /v1/pathways`` of ``files`` (name -> bytes) as a multipart upload; 201 expected. The response."""
    parts = [(BytesIO(content), name) for name, content in files.items()]
    response = client.post("/v1/pathways", data={"files": parts}, content_type="multipart/form-data", headers=headers)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json
    return body
