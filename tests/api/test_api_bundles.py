"""POST /v1/pathways and /v1/pathways/validate take a pathway bundle as a zip archive or as
multipart parts, and say what the bundle held, what came from the pathways folder and what is
missing, by name; hostile archives get a 4xx, never a 500 (issue 12, point 5)."""

from __future__ import annotations

import io
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

from helpers import assert_problem

from engine.pathways.bundle import MAX_BUNDLE_FILE_BYTES

TESTS = Path(__file__).resolve().parent.parent
CAREPLAN = {
    "careplan.bpmn": (TESTS / "pathways" / "careplan.bpmn").read_bytes(),
    "forms/hna_small.json": (TESTS / "pathways" / "forms" / "hna_small.json").read_bytes(),
    "forms/decisions.json": (TESTS / "pathways" / "forms" / "decisions.json").read_bytes(),
}
CALLS_NOTHING_KNOWN = (
    (TESTS / "pathways" / "assessment.bpmn")
    .read_bytes()
    .replace(b'calledElement="test_support_connection"', b'calledElement="no_such_sub_pathway"')
    .replace(b'id="test_assessment"', b'id="test_assessment_copy"')
)


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def post_zip(client: Any, auth: Any, url: str, data: bytes) -> Any:
    return client.post(url, data=data, content_type="application/zip", headers=auth("author"))


def test_a_zip_bundle_deploys_and_lists_what_it_held(client: Any, auth: Any) -> None:
    response = post_zip(client, auth, "/v1/pathways", make_zip({**CAREPLAN, "README.md": b"notes"}))
    assert response.status_code == 201, response.json
    assert [item["pathway_id"] for item in response.json["items"]] == ["test_careplan"]
    assert response.json["bundle"] == {
        "contained": ["careplan.bpmn", "forms/decisions.json", "forms/hna_small.json"],
        "from_pathways_folder": [],
        "missing": [],
        "ignored": ["README.md"],
    }


def test_a_multipart_bundle_names_what_came_from_the_pathways_folder(client: Any, auth: Any) -> None:
    parts = [(BytesIO((TESTS / "pathways" / "assessment.bpmn").read_bytes()), "assessment.bpmn")]
    response = client.post(
        "/v1/pathways", data={"files": parts}, content_type="multipart/form-data", headers=auth("author")
    )
    assert response.status_code == 201, response.json
    assert response.json["bundle"]["from_pathways_folder"] == ["shared/support.bpmn"]


def test_validate_names_what_a_bundle_is_missing(client: Any, auth: Any) -> None:
    files = {
        "copy.bpmn": CALLS_NOTHING_KNOWN,
        "careplan.bpmn": CAREPLAN["careplan.bpmn"],
        "forms/hna_small.json": CAREPLAN["forms/hna_small.json"],
    }
    report = post_zip(client, auth, "/v1/pathways/validate", make_zip(files)).json
    assert report["valid"] is False
    assert report["bundle"]["missing"] == ["process no_such_sub_pathway"]
    assert report["bundle"]["from_pathways_folder"] == ["forms/decisions.json"]  # the test library has it
    refused = assert_problem(post_zip(client, auth, "/v1/pathways", make_zip(files)), 422, "diagram-invalid")
    assert refused["bundle"] == report["bundle"]
    assert any("no_such_sub_pathway" in e["message"] and e["file"] == "copy.bpmn" for e in refused["errors"])


def test_a_zip_bomb_gets_413(client: Any, auth: Any) -> None:
    bomb = make_zip({"bomb.bpmn": b"\0" * (8 * MAX_BUNDLE_FILE_BYTES)})
    body = assert_problem(post_zip(client, auth, "/v1/pathways", bomb), 413, "body-too-large")
    assert body["errors"][0]["file"] == "bomb.bpmn"


def test_hostile_archives_get_400_naming_the_entry(client: Any, auth: Any) -> None:
    for name in ("../x.json", "/abs.json"):
        body = assert_problem(
            post_zip(client, auth, "/v1/pathways", make_zip({**CAREPLAN, name: b"{}"})), 400, "request-invalid"
        )
        assert body["errors"][0]["file"] == name
    assert_problem(post_zip(client, auth, "/v1/pathways", b"not a zip"), 400, "request-invalid")
    deep = make_zip({**CAREPLAN, "a/b/c/d/e/deep.json": b"{}"})
    assert (
        assert_problem(post_zip(client, auth, "/v1/pathways", deep), 400, "request-invalid")["errors"][0]["file"]
        == "a/b/c/d/e/deep.json"
    )


def test_other_media_types_are_refused(client: Any, auth: Any) -> None:
    assert_problem(
        client.post("/v1/pathways", data=b"x", content_type="application/octet-stream", headers=auth("author")),
        415,
        "unsupported-media-type",
    )
