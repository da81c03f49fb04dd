"""Form field keys are identifiers (web security review, stored XSS through a field's name).

A field's key -- a JSON Schema property of a form file, nested ones too, or a ``camunda:formField`` id --
becomes the field's ``name`` and ``id`` in the web form and a JSON pointer in problems. A key that is not
an identifier (``^[A-Za-z_][A-Za-z0-9_]*$``, at most 64 characters) is refused at validate and at deploy,
over HTTP and through ``carepath validate``, located at the file, the task and the field.
"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api import create_app
from api.cli import main
from engine import ManualClock
from engine.access import create_token
from engine.db.models import PathwayVersion
from engine.db.session import read_only, unit_of_work
from engine.pathways.validation import errors_in, validate_upload

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = 'note" autofocus onfocus="alert(1)" x="'

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="x">
  <bpmn:process id="keys" name="Keys" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:userTask id="ask" name="Ask">
      <bpmn:extensionElements>
{form}
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
FILE_FORM = """        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="forms/ask.json" />
        </spiffworkflow:properties>"""
TASK_LINE = DIAGRAM.splitlines().index('    <bpmn:userTask id="ask" name="Ask">') + 1


def _schema(*keys: str, nested: str | None = None) -> bytes:
    properties: dict[str, object] = {key: {"type": "string"} for key in keys}
    if nested is not None:
        properties["details"] = {"type": "object", "properties": {nested: {"type": "integer"}}}
    return json.dumps({"type": "object", "properties": properties}).encode()


def _upload(schema: bytes) -> dict[str, bytes]:
    return {
        "keys.bpmn": DIAGRAM.format(form=FILE_FORM).encode(),
        "keys.start.schema.json": b'{"type": "object"}',
        "forms/ask.json": schema,
    }


def _camunda(field_id: str) -> dict[str, bytes]:
    escaped = field_id.replace("&", "&amp;").replace('"', "&quot;")
    form = (
        '        <camunda:formData><camunda:formField id="ok" type="string" />\n'
        f'<camunda:formField id="{escaped}" label="Note" type="string" /></camunda:formData>'
    )
    return {"keys.bpmn": DIAGRAM.format(form=form).encode(), "keys.start.schema.json": b'{"type": "object"}'}


def _key_problems(files: dict[str, bytes]) -> list[dict[str, object]]:
    return [p.as_dict() for p in errors_in(validate_upload(files)) if p.code == "form-field"]


@pytest.mark.parametrize(
    "key", [HOSTILE, "has space", "1starts_with_digit", "a/b", "a.b", "", "é", "x" * 65, "line\nbreak"]
)
def test_a_form_file_key_that_is_not_an_identifier_is_refused_and_located(key: str) -> None:
    [problem] = _key_problems(_upload(_schema("fine", key)))
    assert problem["file"] == "keys.bpmn" and problem["line"] == TASK_LINE and problem["element"] == "ask"
    assert str(problem["field"]).startswith("/") and "forms/ask.json" in str(problem["message"])
    assert "\n" not in str(problem["message"]) and "\n" not in str(problem["field"])


def test_a_nested_key_is_checked_and_located_under_its_parent() -> None:
    [problem] = _key_problems(_upload(_schema("fine", nested="bad-key")))
    assert problem["field"] == "/details/bad-key"


def test_a_camunda_form_field_id_that_is_not_an_identifier_is_refused_at_its_line() -> None:
    files = _camunda(HOSTILE)
    [problem] = _key_problems(files)
    line = next(i for i, text in enumerate(files["keys.bpmn"].decode().splitlines(), 1) if "onfocus" in text)
    assert problem["line"] == line and problem["element"] == "ask" and problem["file"] == "keys.bpmn"


@pytest.mark.parametrize("key", ["note", "_private", "Score2", "x" * 64])
def test_identifier_keys_pass(key: str) -> None:
    assert _key_problems(_upload(_schema(key, nested=key))) == []
    assert _key_problems(_camunda(key)) == []


def test_the_hostile_key_is_refused_at_deploy_over_http(database_url: str, clock: ManualClock) -> None:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PATHWAYS_DIR": ROOT / "tests" / "pathways",
            "RULES_DIR": ROOT / "rules",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    try:
        engine = app.extensions["carepath"]
        with read_only(engine.sessions) as session:
            before = session.scalar(select(func.count()).select_from(PathwayVersion))
        with unit_of_work(engine.sessions) as session:
            _, author = create_token(session, "author", "author", clock)
        upload = {"files": [(BytesIO(content), name) for name, content in _upload(_schema(HOSTILE)).items()]}
        response = app.test_client().post(
            "/v1/pathways",
            data=upload,
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {author}"},
        )
        assert response.status_code == 422, response.json
        [problem] = [p for p in response.json["errors"] if p.get("code") == "form-field"]
        assert problem["element"] == "ask" and problem["line"] == TASK_LINE
        with read_only(engine.sessions) as session:
            assert session.scalar(select(func.count()).select_from(PathwayVersion)) == before
    finally:
        app.extensions["carepath"].close()


def test_carepath_validate_refuses_the_hostile_key(tmp_path: Path) -> None:
    for name, content in _upload(_schema(HOSTILE)).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "keys.bpmn")])
    assert result.exit_code != 0
    assert f"keys.bpmn:{TASK_LINE}: ask: /note" in result.output and "is not an identifier" in result.output


@pytest.mark.parametrize(
    ("form", "read_only"),
    [
        ('{"properties": {"report": {"readOnly": true}, "rating": {}, "odd": 1}}', ("report",)),
        ('{"properties": {"report": {"readOnly": "yes"}}}', ()),  # only true marks a field read-only
        ('{"properties": 3}', ()),
        ("[1, 2]", ()),  # not an object at all: no field is read-only, nothing raises
    ],
)
def test_read_only_fields_are_read_from_any_form_text(form: str, read_only: tuple[str, ...]) -> None:
    from engine.errors import TaskDataError
    from engine.instances.forms import _read_only_fields, check_read_only

    assert _read_only_fields(form) == read_only
    check_read_only(form, {"report": {"said": "x"}, "rating": "red"}, {"report": {"said": "x"}})  # unchanged
    if read_only:
        with pytest.raises(TaskDataError) as refused:
            check_read_only(form, {"report": {"said": "SYN-SECRET"}}, {"report": {"said": "x"}})
        assert [(p.field, p.code) for p in refused.value.problems] == [("/report", "readOnly")]
        assert "SYN-SECRET" not in str(refused.value) + refused.value.problems[0].message
