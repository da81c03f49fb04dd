"""What ``pip install carepath`` gives (issue 22).

The wheel and sdist carry the bundled library, templates and locales; Settings finds the library
through importlib.resources; a server or worker refuses an empty library unless told to allow it,
and logs what it loaded; ``carepath --version``, the OpenAPI document and /v1/health show the one
version written in pyproject.toml. ``.ci/smoke-wheel`` installs the wheel and runs it from an empty folder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import flask
import pytest
from click.testing import CliRunner

from api import create_app
from api.cli import main
from api.openapi import DOCUMENT
from engine.library import EmptyLibraryError, read_library
from engine.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
BUNDLED = [
    "breast_cancer",
    "children_young_people_cancer",
    "colorectal_cancer",
    "general_cancer",
    "lung_cancer",
    "prostate_cancer",
]


def _files(root: Path, suffixes: tuple[str, ...]) -> set[str]:
    return {
        p.relative_to(REPO).as_posix() for p in root.rglob("*") if p.suffix in suffixes and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """The file names in the wheel and in the sdist (without its top folder), built once."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # A folder missing from pyproject's explicit `packages` list (setuptools warns, and means to drop it).
    output = (built.stdout + built.stderr).splitlines()
    unlisted = sorted({line for line in output if "absent from the `packages`" in line})
    assert not unlisted, unlisted
    [wheel], [sdist] = out.glob("*.whl"), out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = set(archive.namelist())
    with tarfile.open(sdist) as archive:
        sdist_names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    return wheel_names, sdist_names


@pytest.mark.slow
def test_the_wheel_and_sdist_carry_the_library_templates_and_locales(distribution: tuple[set[str], set[str]]) -> None:
    wheel, sdist = distribution
    library = _files(REPO / "pathways", (".bpmn", ".dmn", ".json", ".yaml")) | _files(REPO / "rules", (".yaml",))
    assert {
        "pathways/breast.bpmn",
        "pathways/shared/holistic_needs_assessment.bpmn",
        "pathways/tests/breast.yaml",
        "pathways/shared/forms/hna_checklist.json",
        "rules/supportive_care.yaml",
        "rules/catalogues/concerns.yaml",
        "rules/tests/supportive_care.yaml",
    } <= library  # the premise
    assert {f"carepath_content/{name}" for name in library} <= wheel
    assert library <= sdist
    documents = _files(REPO / "engine" / "documents", (".html", ".yaml"))
    assert {"engine/documents/templates/care_plan.html", "engine/documents/locales/sv.yaml"} <= documents
    assert documents <= wheel
    # The web app's templates, words and vendored libraries with their licences and sums (issue 16).
    web = _files(REPO / "api" / "web", (".html", ".yaml", ".css", ".js", ".svg"))
    vendor = REPO / "api" / "web" / "static" / "vendor"
    web |= {p.relative_to(REPO).as_posix() for p in [*vendor.rglob("LICENSE"), vendor / "SHA256SUMS"]}
    assert {
        "api/web/templates/web/work_list.html",
        "api/web/locales/sv.yaml",
        "api/web/static/carepath.js",
        "api/web/static/vendor/bpmn-js/18.31.1/LICENSE",
        "api/web/static/vendor/SHA256SUMS",
    } <= web  # the premise
    assert web <= wheel
    # The service directory (example data as bundled): the numbers the documents print (issue 15).
    assert {"carepath_content/directory/service_directory.yaml", "carepath_content/directory/__init__.py"} <= wheel
    assert {"directory/service_directory.yaml", "directory/__init__.py"} <= sdist
    # Every module (a package missing from pyproject's explicit list would be left out) and the migrations.
    code = _files(REPO / "engine", (".py",)) | _files(REPO / "api", (".py",))
    assert code | {"engine/db/migrations/script.py.mako"} <= wheel
    assert not [
        name for name in wheel if name.startswith(("tests/", "pathways/", "rules/", "directory/")) or ".pyc" in name
    ]


def test_settings_default_to_the_installed_library() -> None:
    settings = Settings()
    assert settings.pathways_dir == importlib.resources.files("carepath_content.pathways")
    assert settings.rules_dir == importlib.resources.files("carepath_content.rules")
    assert (settings.pathways_dir / "breast.bpmn").is_file()
    assert (settings.pathways_dir / "shared" / "forms" / "hna_checklist.json").is_file()
    assert (settings.rules_dir / "catalogues" / "concerns.yaml").is_file()
    assert (
        settings.service_directory == importlib.resources.files("carepath_content.directory") / "service_directory.yaml"
    )
    assert settings.service_directory.is_file()
    library = read_library(settings)
    assert sorted(library.pathways) == BUNDLED and list(library.rule_sets) == ["supportive_care"]


def test_allow_empty_library_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).allow_empty_library is False
    assert Settings.from_env({"CAREPATH_ALLOW_EMPTY_LIBRARY": "1"}).allow_empty_library is True
    assert Settings.from_env({"CAREPATH_ALLOW_EMPTY_LIBRARY": "true"}).allow_empty_library is True
    assert Settings.from_env({"CAREPATH_ALLOW_EMPTY_LIBRARY": "0"}).allow_empty_library is False


def _config(tmp_path: Path, **overrides: object) -> dict[str, object]:
    return {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'carepath.sqlite3'}",
        "PATHWAYS_DIR": TESTS / "pathways",
        **overrides,
    }


def test_a_server_refuses_an_empty_or_missing_library_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyLibraryError) as refused:
        create_app(_config(tmp_path, PATHWAYS_DIR=tmp_path / "empty"))
    assert str(refused.value).startswith(
        f"refusing to start: the pathways folder {tmp_path / 'empty'} holds no "
        "pathway (a top-level .bpmn file with an executable process)"
    )
    assert "CAREPATH_ALLOW_EMPTY_LIBRARY=1" in str(refused.value)
    with pytest.raises(EmptyLibraryError, match=f"the rules folder {tmp_path / 'missing'} does not exist"):
        create_app(_config(tmp_path, RULES_DIR=tmp_path / "missing"))


def test_a_server_starts_with_an_empty_library_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(_config(tmp_path, PATHWAYS_DIR=tmp_path / "empty", ALLOW_EMPTY_LIBRARY=True))
    app.extensions["carepath"].close()
    monkeypatch.setenv("CAREPATH_ALLOW_EMPTY_LIBRARY", "1")  # as a deployment sets it (from_prefixed_env)
    app = create_app(_config(tmp_path, PATHWAYS_DIR=tmp_path / "empty", RULES_DIR=tmp_path / "empty"))
    try:
        response = app.test_client().get("/v1/health")
        assert response.status_code == 200
    finally:
        app.extensions["carepath"].close()


def test_a_server_logs_the_pathways_and_rule_sets_it_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="api"):
        app = create_app(_config(tmp_path))
    app.extensions["carepath"].close()
    library = read_library(Settings(pathways_dir=TESTS / "pathways"))
    [line] = [r.getMessage() for r in caplog.records if r.name == "api" and "rule set" in r.getMessage()]
    assert line.startswith(f"CarePath {importlib.metadata.version('carepath')}: {len(library.pathways)} pathways (")
    for name, version in [*library.pathways.items(), *library.rule_sets.items()]:
        assert f"{name} {version[:12]}" in line
    assert f"pathways from {TESTS / 'pathways'}" in line


def test_carepath_serve_refuses_an_empty_library_and_starts_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kwargs: None)  # not listening: the start is the test
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'carepath.sqlite3'}",
        "CAREPATH_PATHWAYS_DIR": str(tmp_path / "empty"),
    }
    refused = CliRunner().invoke(main, ["serve"], env=env)
    assert refused.exit_code == 1
    assert f"Error: refusing to start: the pathways folder {tmp_path / 'empty'} does not exist" in refused.output
    started = CliRunner().invoke(main, ["serve"], env={**env, "CAREPATH_ALLOW_EMPTY_LIBRARY": "1"})
    assert started.exit_code == 0, started.output
    assert "CarePath API on http://127.0.0.1:8080/v1/" in started.output


def test_carepath_worker_refuses_an_empty_library_and_starts_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'carepath.sqlite3'}",
        "CAREPATH_PATHWAYS_DIR": str(TESTS / "pathways"),
        "CAREPATH_RULES_DIR": str(tmp_path / "rules"),
    }
    refused = CliRunner().invoke(main, ["worker", "--once"], env=env)
    assert refused.exit_code == 1
    assert f"refusing to start: the rules folder {tmp_path / 'rules'} holds no rule set" in refused.output
    started = CliRunner().invoke(main, ["worker", "--once"], env={**env, "CAREPATH_ALLOW_EMPTY_LIBRARY": "yes"})
    assert started.exit_code == 0, started.output
    assert "0 rule sets" in started.output and "test_assessment" in started.output


def test_one_version_in_pyproject_shown_by_the_cli_openapi_and_health(tmp_path: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("carepath") == version  # else: reinstall (pip install -e .)
    shown = CliRunner().invoke(main, ["--version"])
    assert shown.exit_code == 0 and shown.output == f"carepath, version {version}\n"
    assert DOCUMENT["info"]["version"] == version
    app = create_app(_config(tmp_path))
    try:
        assert app.test_client().get("/v1/health").json == {"status": "ok", "version": version}
    finally:
        app.extensions["carepath"].close()
