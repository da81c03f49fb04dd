"""The gate over HTTP (issue 12, point 1): POST /v1/pathways/validate and POST /v1/pathways agree,
refusals are located by uploaded file name, and warnings travel with a deploy, marked as warnings."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from helpers import assert_problem

TESTS = Path(__file__).resolve().parent.parent
HOSTILE = TESTS / "diagrams" / "hostile"

IMPLIED = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="implied_api" name="Implied">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _upload(client: Any, auth: Any, url: str, files: dict[str, bytes]) -> Any:
    parts = [(BytesIO(content), name) for name, content in files.items()]
    return client.post(url, data={"files": parts}, content_type="multipart/form-data", headers=auth("author"))


def test_warnings_are_marked_and_do_not_stop_a_deploy(client: Any, auth: Any) -> None:
    report = _upload(client, auth, "/v1/pathways/validate", {"implied.bpmn": IMPLIED}).json
    assert report["valid"] is True
    # The other warning: it has no start data schema (tests/test_start_contract.py).
    [warning] = [p for p in report["problems"] if p["code"] != "start-schema-missing"]
    assert warning["severity"] == "warning" and warning["code"] == "executable-implied"
    assert (warning["file"], warning["line"], warning["element"]) == ("implied.bpmn", 3, "implied_api")
    deployed = _upload(client, auth, "/v1/pathways", {"implied.bpmn": IMPLIED})
    assert deployed.status_code == 201
    assert [item["pathway_id"] for item in deployed.json["items"]] == ["implied_api"]
    assert deployed.json["warnings"] == report["problems"]


def test_a_refused_deploy_lists_what_validate_lists(client: Any, auth: Any) -> None:
    for name in ("call_itself.bpmn", "timer_cycle_zero.bpmn", "dtd_external_entity.bpmn", "encoding_latin1.bpmn"):
        files = {name: (HOSTILE / name).read_bytes(), "note.json": (HOSTILE / "note.json").read_bytes()}
        report = _upload(client, auth, "/v1/pathways/validate", files).json
        assert report["valid"] is False
        body = assert_problem(_upload(client, auth, "/v1/pathways", files), 422, "diagram-invalid")
        assert body["errors"] == report["problems"]
        assert all(
            error["file"] == name and error["line"]
            for error in body["errors"]
            if error["code"] != "start-schema-missing"
        )
        errors = [e for e in body["errors"] if e["code"] != "start-schema-missing"]  # that one is a warning
        assert "severity" not in errors[0]  # an error, as every problem was before severities


def test_listing_pathways_carries_no_warnings(client: Any, auth: Any) -> None:
    assert "warnings" not in client.get("/v1/pathways", headers=auth("clinician")).json
