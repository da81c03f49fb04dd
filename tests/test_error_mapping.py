"""Every engine error is in the one tree of engine/errors.py, and has its own HTTP mapping in api/errors.py."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from flask import Flask

import api.errors
import engine
import engine.errors
from api.errors import ENGINE_ERRORS
from api.openapi import PROBLEM_BASE, PROBLEM_TYPES
from engine.errors import CarePathError, Problem, StaleVersionError


def _engine_error_classes() -> list[type[CarePathError]]:
    """CarePathError and every subclass defined anywhere in the engine, after importing every module
    (an import error fails the test rather than hiding a module's classes)."""
    for module_info in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(module_info.name)
    found: list[type[CarePathError]] = []
    pending: list[type[CarePathError]] = [CarePathError]
    while pending:
        cls = pending.pop()
        if cls not in found and cls.__module__.split(".")[0] == "engine":
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


ENGINE_ERROR_CLASSES = _engine_error_classes()


def _drawn_tree() -> dict[str, str | None]:
    """Class name -> the parent drawn for it in engine/errors.py's docstring (None for the root)."""
    doc = engine.errors.__doc__ or ""
    drawing = doc[doc.index("::\n\n") + 4 :].split("\n\n")[0]
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in drawing.splitlines():
        match = re.match(r"^    ((?:│   |    )*)(├── |└── )?(\w+)", line)
        assert match, f"not a line of the tree: {line!r}"
        depth = len(match.group(1)) // 4 + (1 if match.group(2) else 0)
        name = match.group(3)
        del path[depth:]
        parents[name] = path[-1] if path else None
        path.append(name)
    return parents


def _docstring_rows() -> list[tuple[str, str, str]]:
    """(first column, status, first word of the type) of each row of api/errors.py's docstring table."""
    lines = (api.errors.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+(  +=+)+", line)]
    rows = []
    for line in lines[rules[1] + 1 : rules[2]]:
        name, status, slug = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows.append((name, status, slug.split()[0]))
    return rows


def test_the_walk_finds_the_engine_errors() -> None:
    names = {cls.__name__ for cls in ENGINE_ERROR_CLASSES}
    assert {"CarePathError", "InvalidTokenError", "IdempotencyKeyInUseError", "WorkflowError"} <= names


@pytest.mark.parametrize("cls", ENGINE_ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_engine_error_lives_in_engine_errors_and_says_when_it_is_raised(cls: type[CarePathError]) -> None:
    assert cls.__module__ == "engine.errors", f"move {cls.__name__} into engine/errors.py"
    assert cls.__name__ in engine.errors.__all__ and cls.__name__ in engine.__all__
    doc = cls.__dict__.get("__doc__") or ""
    assert cls is CarePathError or doc.startswith("Raised when"), f"{cls.__name__} must say when it is raised"


def test_the_drawn_tree_is_the_class_tree() -> None:
    actual = {
        cls.__name__: (None if cls is CarePathError else cls.__bases__[0].__name__) for cls in ENGINE_ERROR_CLASSES
    }
    assert _drawn_tree() == actual


def test_every_engine_error_has_its_own_http_mapping() -> None:
    """Explicit rows only: a new class must not be answered by its parent's row without anyone deciding."""
    mapped = [cls for cls, _, _ in ENGINE_ERRORS]
    assert len(mapped) == len(set(mapped)), "a class is mapped twice"
    missing = sorted(cls.__name__ for cls in ENGINE_ERROR_CLASSES if cls not in mapped)
    assert not missing, f"add these to api.errors.ENGINE_ERRORS and its docstring table: {missing}"
    assert set(mapped) == set(ENGINE_ERROR_CLASSES)


def test_the_mapping_is_most_specific_first() -> None:
    for i, (earlier, _, _) in enumerate(ENGINE_ERRORS):
        for later, _, _ in ENGINE_ERRORS[i + 1 :]:
            assert not issubclass(later, earlier), f"{later.__name__} is hidden by {earlier.__name__} above it"


def test_the_docstring_table_shows_the_mapping_in_order() -> None:
    rows = _docstring_rows()
    mapped_rows = [row for row in rows if row[0] in {cls.__name__ for cls, _, _ in ENGINE_ERRORS}]
    assert mapped_rows == [(cls.__name__, str(status), slug) for cls, status, slug in ENGINE_ERRORS]
    assert ("StaleVersionError with If-Match", "412", "stale-version") in rows
    assert all(slug in PROBLEM_TYPES for _, _, slug in ENGINE_ERRORS)


def _raising_app(error: Exception) -> Flask:
    app = Flask(__name__)
    api.errors.init_app(app)

    @app.post("/raise")
    def raise_it() -> None:
        raise error

    return app


@pytest.mark.parametrize(("cls", "status", "slug"), [pytest.param(*row, id=row[0].__name__) for row in ENGINE_ERRORS])
def test_each_engine_error_becomes_its_problem(cls: type[CarePathError], status: int, slug: str) -> None:
    error = cls("what went wrong", [Problem("is wrong", field="/anxiety")])
    response = _raising_app(error).test_client().post("/raise")
    body = response.json
    assert (response.status_code, response.mimetype) == (status, "application/problem+json")
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status
    if status >= 500:  # the server's fault: logged, and nothing of the message is shown
        assert set(body) == {"type", "title", "status", "request_id"}
    else:
        assert body["detail"] == "what went wrong"
        assert body["errors"] == [{"message": "is wrong", "field": "/anxiety"}]
    assert ("WWW-Authenticate" in response.headers) == (status == 401)


def test_stale_version_is_412_when_the_caller_sent_if_match() -> None:
    client = _raising_app(StaleVersionError("the instance has changed")).test_client()
    with_if_match, without = client.post("/raise", headers={"If-Match": '"3"'}), client.post("/raise")
    assert (with_if_match.status_code, with_if_match.json["type"]) == (412, PROBLEM_BASE + "stale-version")
    assert (without.status_code, without.json["type"]) == (409, PROBLEM_BASE + "instance-changed")
