"""Small helpers shared by the API tests (imported as a top-level module from tests/api)."""

from __future__ import annotations

from typing import Any

PROBLEMS = "https://carepath.dev/problems/"
PATHWAY = "test_assessment"


def start(client: Any, auth: Any, patient_ref: str = "MRN-1001", **headers: str) -> Any:
    response = client.post("/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": patient_ref},
                           headers=auth("system", **headers))
    assert response.status_code == 201, response.json
    return response


def complete(client: Any, auth: Any, instance: dict[str, Any], data: dict[str, Any], role: str = "clinician",
             **headers: str) -> Any:
    task = instance["ready_tasks"][0]
    return client.post(f"/v1/instances/{instance['id']}/tasks/{task['id']}/complete", json={"data": data},
                       headers=auth(role, **{"If-Match": f'"{instance["version"]}"', **headers}))


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body
