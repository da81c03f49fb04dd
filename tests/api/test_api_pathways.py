"""Pathways: list, versions, diagram XML, validating and deploying uploads."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from flask import Flask
from helpers import PATHWAY, assert_problem
from sqlalchemy import select

from engine.db.models import PathwayVersion
from engine.db.session import unit_of_work

TESTS = Path(__file__).resolve().parent.parent
ASSESSMENT = (TESTS / "pathways" / "assessment.bpmn").read_bytes()


def _upload(client: Any, auth: Any, url: str, files: dict[str, bytes]) -> Any:
    parts = [(BytesIO(content), name) for name, content in files.items()]
    return client.post(url, data={"files": parts}, content_type="multipart/form-data", headers=auth("author"))


def test_list_versions_and_diagram(client: Any, auth: Any) -> None:
    items = client.get("/v1/pathways", headers=auth("clinician")).json["items"]
    ours = next(i for i in items if i["pathway_id"] == PATHWAY)
    assert ours["latest"] is True and ours["main_file"] == "assessment.bpmn" and len(ours["version"]) == 64
    versions = client.get(f"/v1/pathways/{PATHWAY}/versions", headers=auth("auditor")).json["items"]
    assert [v["version"] for v in versions] == [ours["version"]]
    for version in ("latest", ours["version"][:12]):
        diagram = client.get(f"/v1/pathways/{PATHWAY}/versions/{version}/diagram", headers=auth("system"))
        assert diagram.status_code == 200 and diagram.mimetype == "application/xml"
        assert diagram.data == ASSESSMENT
    shared = client.get(
        f"/v1/pathways/{PATHWAY}/versions/latest/diagram?file=shared/support.bpmn", headers=auth("system")
    )
    assert shared.status_code == 200 and b"offer_support" in shared.data
    assert_problem(
        client.get(f"/v1/pathways/{PATHWAY}/versions/latest/diagram?file=x.bpmn", headers=auth("system")),
        404,
        "not-found",
    )
    assert_problem(client.get("/v1/pathways/nope/versions", headers=auth("system")), 404, "not-found")
    assert_problem(
        client.get(f"/v1/pathways/{PATHWAY}/versions/zzzz/diagram", headers=auth("system")), 404, "not-found"
    )


def test_validate_reports_problems_by_uploaded_file_name(client: Any, auth: Any) -> None:
    ok = _upload(client, auth, "/v1/pathways/validate", {"assessment.bpmn": ASSESSMENT})
    assert ok.status_code == 200 and ok.json["valid"] is True
    assert [p["code"] for p in ok.json["problems"]] == ["start-schema-missing"]
    broken = ASSESSMENT.replace(b'default="f_routine"', b"")
    report = _upload(client, auth, "/v1/pathways/validate", {"mine.bpmn": broken}).json
    assert report["valid"] is False
    assert all(p["file"] == "mine.bpmn" for p in report["problems"])
    assert any(p.get("element") == "gw_severity" for p in report["problems"])
    garbage = _upload(client, auth, "/v1/pathways/validate", {"junk.bpmn": b"<not xml"}).json
    assert garbage["valid"] is False and garbage["problems"][0]["file"] == "junk.bpmn"


def test_upload_refuses_bad_names(client: Any, auth: Any) -> None:
    for name in ("../evil.bpmn", "/abs.bpmn", "x.exe"):
        body = assert_problem(
            _upload(client, auth, "/v1/pathways/validate", {name: ASSESSMENT}), 400, "request-invalid"
        )
        assert body["errors"][0]["field"] == "/files/0"
    assert_problem(
        client.post("/v1/pathways", data={}, content_type="multipart/form-data", headers=auth("author")),
        400,
        "request-invalid",
    )


def test_deploy_a_new_version(app: Flask, client: Any, auth: Any) -> None:
    changed = ASSESSMENT.replace(b'name="Test assessment pathway"', b'name="Test assessment pathway v2"')
    response = _upload(client, auth, "/v1/pathways", {"assessment.bpmn": changed})
    assert response.status_code == 201
    [info] = response.json["items"]
    assert info["pathway_id"] == PATHWAY and info["latest"] and info["deployed_by"].startswith("author:tok_")
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        rows = session.scalars(select(PathwayVersion).where(PathwayVersion.pathway_id == PATHWAY)).all()
    assert len(rows) == 2
    body = assert_problem(_upload(client, auth, "/v1/pathways", {"junk.bpmn": b"<bpmn"}), 422, "diagram-invalid")
    assert body["errors"][0]["file"] == "junk.bpmn"
