"""Files a diagram names resolve only inside its bundle (issue 20).

A form schema named as a bare file name that exists in the server's working directory, a relative
path with '..', an absolute path, or a symlink in the pathways folder pointing outside: each is
refused at validate and at deploy (over HTTP and through the CLI) with file:line: element-id, nothing
is deployed, the canary outside the root is never opened (watched with an audit hook), and the
diagram endpoint never returns it. The refusal reads the same whether or not the file exists outside.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api import create_app
from api.cli import main
from engine import ManualClock
from engine.access import create_token
from engine.db.models import PathwayVersion
from engine.db.session import read_only, unit_of_work

CANARY_TEXT = '{"title": "CANARY-SECRET-7d1f"}'

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="exfiltrate" name="Exfiltrate" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:userTask id="ask" name="Ask">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="{name}" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
TASK_LINE = DIAGRAM.splitlines().index('    <bpmn:userTask id="ask" name="Ask">') + 1


class OpenWatch:
    """Records every file open (Python's `open` audit event) of a watched path while active.

    Audit hooks cannot be removed, so one hook per process is installed and switched by ``watched``.
    """

    watched: set[str] = set()
    opened: list[str] = []
    installed = False

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and cls.watched and isinstance(args[0], str | bytes | Path):
            path = str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode(errors="replace")))
            if any(
                path == w or path.endswith("/" + Path(w).name) and Path(path).resolve() == Path(w) for w in cls.watched
            ):
                cls.opened.append(path)


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A secret JSON file in the working directory, outside every bundle; opening it fails the test."""
    outside = tmp_path / "cwd"
    outside.mkdir()
    secret = outside / "canary.json"
    secret.write_text(CANARY_TEXT)
    monkeypatch.chdir(outside)
    OpenWatch.install()
    OpenWatch.watched = {str(secret.resolve())}
    OpenWatch.opened = []
    try:
        yield secret
    finally:
        OpenWatch.watched = set()
    assert OpenWatch.opened == [], f"a file outside the bundle was opened: {OpenWatch.opened}"


def _names(canary: Path) -> dict[str, str]:
    """The hostile form names: the case -> what the diagram writes."""
    return {
        "bare name in the working directory": "canary.json",
        "relative path with ..": f"../{canary.parent.name}/canary.json",
        "absolute path": str(canary),
        "symlink out of the folder": "forms/link.json",
    }


def _library(tmp_path: Path, canary: Path) -> Path:
    """A pathways folder holding a symlink that leads to the canary."""
    library = tmp_path / "library"
    (library / "forms").mkdir(parents=True)
    (library / "forms" / "link.json").symlink_to(canary)
    return library


def _located(problem: dict[str, Any] | str) -> None:
    if isinstance(problem, str):
        file, line, element, message = problem.split(":", 3)
        problem = {"file": file, "line": int(line), "element": element.strip(), "message": message}
    assert problem["line"] == TASK_LINE and problem["element"] == "ask", problem
    assert "CANARY" not in problem["message"]


def test_each_hostile_name_is_refused_over_http_and_nothing_is_read(
    tmp_path: Path, canary: Path, database_url: str, clock: ManualClock
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PATHWAYS_DIR": _library(tmp_path, canary),
            "ALLOW_EMPTY_LIBRARY": True,
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    try:
        engine = app.extensions["carepath"]
        with unit_of_work(engine.sessions) as session:
            _, author = create_token(session, "author", "author", clock)
            _, clinician = create_token(session, "clinician", "clinician", clock)
        client = app.test_client()
        messages = set()
        for case, name in _names(canary).items():
            for url in ("/v1/pathways/validate", "/v1/pathways"):
                upload = {"files": [(BytesIO(DIAGRAM.format(name=name).encode()), "exfiltrate.bpmn")]}
                response = client.post(
                    url, data=upload, content_type="multipart/form-data", headers={"Authorization": f"Bearer {author}"}
                )
                assert b"CANARY" not in response.data, case
                problems = response.json["problems" if url.endswith("validate") else "errors"]
                assert problems, case
                [form_problem] = [p for p in problems if p.get("code") == "form-file"]
                _located(form_problem)
                assert form_problem["file"] == "exfiltrate.bpmn"
                if url == "/v1/pathways":
                    assert response.status_code == 422, (case, response.json)
                    messages.add(form_problem["message"].replace(name, "NAME"))
            diagram = client.get(
                f"/v1/pathways/exfiltrate/versions/latest/diagram?file={name.lstrip('/')}",
                headers={"Authorization": f"Bearer {clinician}"},
            )
            assert diagram.status_code == 404 and b"CANARY" not in diagram.data
        with read_only(engine.sessions) as session:
            assert session.scalar(select(func.count()).select_from(PathwayVersion)) == 0
        # Outside the bundle, "exists" and "missing" read alike: the message reveals nothing.
        missing = {"files": [(BytesIO(DIAGRAM.format(name="nothing-here.json").encode()), "exfiltrate.bpmn")]}
        response = client.post(
            "/v1/pathways",
            data=missing,
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {author}"},
        )
        [problem] = [p for p in response.json["errors"] if p.get("code") == "form-file"]
        assert problem["message"].replace("nothing-here.json", "NAME") in messages
    finally:
        app.extensions["carepath"].close()


def test_a_form_uploaded_with_the_diagram_is_deployed_and_served(
    tmp_path: Path, canary: Path, database_url: str, clock: ManualClock
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PATHWAYS_DIR": _library(tmp_path, canary),
            "ALLOW_EMPTY_LIBRARY": True,
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
        }
    )
    try:
        with unit_of_work(app.extensions["carepath"].sessions) as session:
            _, author = create_token(session, "author", "author", clock)
        client = app.test_client()
        form = b'{"type": "object", "properties": {"ok": {"type": "boolean"}}}'
        upload = {
            "files": [
                (BytesIO(DIAGRAM.format(name="forms/ask.json").encode()), "exfiltrate.bpmn"),
                (BytesIO(form), "forms/ask.json"),
            ]
        }
        response = client.post(
            "/v1/pathways",
            data=upload,
            content_type="multipart/form-data",
            headers={"Authorization": f"Bearer {author}"},
        )
        assert response.status_code == 201, response.json
        served = client.get(
            "/v1/pathways/exfiltrate/versions/latest/diagram?file=forms/ask.json",
            headers={"Authorization": f"Bearer {author}"},
        )
        assert served.status_code == 200 and served.data == form
    finally:
        app.extensions["carepath"].close()


@pytest.mark.parametrize(
    "case",
    ["bare name in the working directory", "relative path with ..", "absolute path", "symlink out of the folder"],
)
def test_cli_validate_and_deploy_refuse_each_hostile_name(
    case: str, tmp_path: Path, canary: Path, database_url: str
) -> None:
    library = _library(tmp_path, canary)
    (library / "exfiltrate.bpmn").write_text(DIAGRAM.format(name=_names(canary)[case]))
    env = {
        "CAREPATH_DATABASE_URL": database_url,
        "CAREPATH_PATHWAYS_DIR": str(library),
        "CAREPATH_RULES_DIR": str(Path(__file__).resolve().parent.parent / "rules"),
    }
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(library)], env=env)
    assert validated.exit_code == 1 and "CANARY" not in validated.output
    [line] = [x for x in validated.output.splitlines() if "form schema file" in x]
    _located(line)
    deployed = runner.invoke(main, ["pathways", "deploy"], env=env)
    assert deployed.exit_code != 0 and "CANARY" not in deployed.output
    [line] = [x for x in deployed.output.splitlines() if "form schema file" in x]
    _located(line)
    app = create_app(
        {"TESTING": True, "DATABASE_URL": database_url, "PATHWAYS_DIR": tmp_path / "empty", "ALLOW_EMPTY_LIBRARY": True}
    )
    try:
        with read_only(app.extensions["carepath"].sessions) as session:
            assert session.scalar(select(func.count()).select_from(PathwayVersion)) == 0
    finally:
        app.extensions["carepath"].close()
