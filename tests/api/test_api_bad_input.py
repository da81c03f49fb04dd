"""Bad input is refused with a located 400, never a 500: JSON that parses but cannot be stored (lone
surrogates, deep nesting, numbers that overflow to infinity), strings longer than the column they
would land in; and every answer tells caches not to keep it and browsers not to guess its type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import PATHWAY, assert_problem, complete, start

from api.openapi import DOCUMENT
from api.parsing import MAX_FILE_NAME, MAX_JSON_DEPTH
from engine.db.models import IdempotencyRecord, PathwayInstance, PathwayVersion


def _post_raw(client: Any, auth: Any, path: str, raw: str, role: str = "system", **headers: str) -> Any:
    return client.post(path, data=raw.encode("ascii"), content_type="application/json", headers=auth(role, **headers))


def _start_with(data_json: str) -> str:
    """A start request whose ``data`` is the given JSON text, exactly as sent."""
    return f'{{"pathway_id": "{PATHWAY}", "patient_ref": "MRN-1", "data": {data_json}}}'


def _fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


@pytest.mark.parametrize(
    ("data_json", "field"),
    [
        ('{"note": "fine \\ud800 then"}', "/data/note"),  # a lone high surrogate
        ('{"notes": ["ok", "\\udfff"]}', "/data/notes/1"),  # a lone low surrogate
        ('{"bad\\udc00key": 1}', "/data/bad\\udc00key"),  # in a property name (shown escaped)
        ('{"dose": 1e400}', "/data/dose"),  # parses to infinity
        ('{"dose": -1e999}', "/data/dose"),
    ],
    ids=["high-surrogate", "low-surrogate", "surrogate-key", "overflow", "negative-overflow"],
)
def test_values_that_cannot_be_stored_are_refused_where_they_are(
    client: Any, auth: Any, data_json: str, field: str
) -> None:
    body = assert_problem(_post_raw(client, auth, "/v1/instances", _start_with(data_json)), 400, "request-invalid")
    assert _fields(body) == [field]
    assert client.get("/v1/instances", headers=auth("system")).json["items"] == []  # nothing started


def test_a_pair_of_surrogates_is_one_character_and_accepted(client: Any, auth: Any) -> None:
    response = _post_raw(client, auth, "/v1/instances", _start_with('{"note": "\\ud83d\\ude00"}'))
    assert response.status_code == 201, response.get_data(as_text=True)


def test_nesting_deeper_than_the_bound_is_refused(client: Any, auth: Any) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 600, 5000):
        nested = "[" * depth + "]" * depth
        response = _post_raw(client, auth, "/v1/instances", _start_with(f'{{"deep": {nested}}}'))
        body = assert_problem(response, 400, "request-invalid" if depth < 900 else "malformed-json")
        if depth < 900:
            assert body["errors"][0]["message"] == f"is nested deeper than {MAX_JSON_DEPTH} levels"
            assert body["errors"][0]["field"].startswith("/data/deep/0/0/")
    # A retried request (Idempotency-Key) too: its fingerprint reads the body before the view does.
    deep = "[" * 5000 + "]" * 5000
    response = _post_raw(client, auth, "/v1/instances", _start_with(deep), **{"Idempotency-Key": "deep-1"})
    assert_problem(response, 400, "malformed-json")
    nested_ok = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    assert _post_raw(client, auth, "/v1/instances", _start_with(f'{{"deep": {nested_ok}}}')).status_code == 201


def test_task_data_and_message_payloads_are_checked_the_same_way(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    task = instance["ready_tasks"][0]
    response = client.post(
        f"/v1/instances/{instance['id']}/tasks/{task['id']}/complete",
        data=b'{"data": {"anxiety": 1e400, "fatigue": 2}}',
        content_type="application/json",
        headers=auth("clinician", **{"If-Match": f'"{instance["version"]}"'}),
    )
    assert _fields(assert_problem(response, 400, "request-invalid")) == ["/data/anxiety"]
    response = _post_raw(
        client,
        auth,
        "/v1/messages",
        '{"name": "warning_sign_reported", "patient_ref": "MRN-1001", "payload": {"x": "\\ud800"}}',
    )
    assert _fields(assert_problem(response, 400, "request-invalid")) == ["/payload/x"]
    # The instance is untouched and the clinician can still complete the task.
    assert complete(client, auth, instance, {"anxiety": 3, "fatigue": 2}).status_code == 200


def _column_length(column: Any) -> int:
    return int(column.type.length)


@pytest.mark.parametrize(
    ("path", "body", "column"),
    [
        ("/v1/instances", {"pathway_id": "p" * 201, "patient_ref": "MRN-1"}, PathwayVersion.pathway_id),
        ("/v1/instances", {"pathway_id": PATHWAY, "patient_ref": "M" * 65}, PathwayInstance.patient_ref),
        ("/v1/messages", {"name": "n" * 201, "patient_ref": "MRN-1"}, PathwayVersion.pathway_id),
    ],
    ids=["pathway_id", "patient_ref", "message-name"],
)
def test_strings_longer_than_their_column_are_refused(
    client: Any, auth: Any, path: str, body: dict[str, Any], column: Any
) -> None:
    longest = max(len(v) for v in body.values() if isinstance(v, str))
    assert longest == _column_length(column) + 1  # one past what the column holds
    assert_problem(client.post(path, json=body, headers=auth("system")), 400, "request-invalid")


def test_an_idempotency_key_longer_than_its_column_is_refused(client: Any, auth: Any) -> None:
    key = "k" * (_column_length(IdempotencyRecord.key) + 1)
    response = client.post(
        "/v1/instances",
        json={"pathway_id": PATHWAY, "patient_ref": "MRN-1"},
        headers=auth("system", **{"Idempotency-Key": key}),
    )
    assert_problem(response, 400, "request-invalid")


def test_an_uploaded_file_name_longer_than_its_column_is_refused(client: Any, auth: Any) -> None:
    assert _column_length(PathwayVersion.main_file) == MAX_FILE_NAME
    folders = "/".join(["d" * 96] * 3) + "/"  # each part may have 100 characters, four parts
    name = folders + "p" * (MAX_FILE_NAME + 1 - len(folders) - len(".bpmn")) + ".bpmn"
    assert len(name) == MAX_FILE_NAME + 1
    response = client.post(
        "/v1/pathways", data={"files": [(_bpmn(), name)]}, content_type="multipart/form-data", headers=auth("author")
    )
    body = assert_problem(response, 400, "request-invalid")
    assert _fields(body) == ["/files/0"]


def _bpmn() -> Any:
    import io

    return io.BytesIO(b"<definitions/>")


def test_every_request_string_is_bounded_within_the_columns() -> None:
    """Each string a request body may carry has a maximum length (maxLength, or a pattern, enum or
    format that bounds it); the ones stored in a column fit it."""
    columns = {
        ("StartRequest", "pathway_id"): PathwayVersion.pathway_id,
        ("StartRequest", "patient_ref"): PathwayInstance.patient_ref,
        ("MessageRequest", "patient_ref"): PathwayInstance.patient_ref,
    }
    schemas = DOCUMENT["components"]["schemas"]
    for name, schema in schemas.items():
        if not name.endswith("Request"):
            continue
        for prop, spec in _string_properties(schema):
            bound = _max_length(spec)
            assert bound is not None, f"{name}.{prop} is an unbounded string"
            if (name, prop) in columns:
                assert bound <= _column_length(columns[(name, prop)]), f"{name}.{prop} may not fit its column"


def _string_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for variant in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        for prop, spec in variant.get("properties", {}).items():
            if spec.get("type") == "string" and "contentMediaType" not in spec:
                found.append((prop, spec))
    return found


def _max_length(spec: dict[str, Any]) -> int | None:
    if "maxLength" in spec:
        return int(spec["maxLength"])
    if "enum" in spec:
        return max(len(str(v)) for v in spec["enum"])
    pattern = spec.get("pattern", "")
    if pattern.startswith("^") and pattern.endswith("$") and "*" not in pattern and "+" not in pattern:
        import re

        # Each quantified class counts its maximum, every other atom one character.
        total, rest = 0, pattern[1:-1]
        for atom, low_high in re.findall(r"(\[[^\]]*\]|\\.|[^\[\\{])(\{[0-9]+(?:,[0-9]+)?\})?", rest):
            total += int(low_high.strip("{}").split(",")[-1]) if low_high else (0 if atom in "()?|" else 1)
        return total
    return None


def test_answers_are_not_cached_and_not_sniffed(client: Any, auth: Any) -> None:
    instance = start(client, auth).json
    responses = [
        client.get(f"/v1/instances/{instance['id']}", headers=auth("clinician")),
        client.get("/v1/tasks", headers=auth("clinician")),
        client.get(f"/v1/instances/{instance['id']}/events", headers=auth("auditor")),
        client.get("/v1/instances/00000000-0000-0000-0000-000000000000", headers=auth("clinician")),  # a 404
        client.get("/v1/health"),
    ]
    for response in responses:
        assert response.headers["Cache-Control"] == "no-store", response.request.path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(responses[0].get_data())["id"] == instance["id"]
