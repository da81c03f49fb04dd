"""The layout's rules, read from the source (docs/architecture.md draws them).

* No module reaches into another module's private names: no ``from x import _name`` of a project
  module, no ``obj._name`` where ``_name`` is defined in another project module, and no import of a
  private module (``pkg/_x.py``) from outside its package.
* Imports flow one way: ``api`` -> ``engine`` -> libraries; ``engine`` never imports Flask or ``api``.
* No import cycle hidden behind a function-level import inside ``engine`` (type-only imports under
  ``TYPE_CHECKING`` are fine).
* Every engine package says what it owns and what it may import.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "api")


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


TREES = {path: ast.parse(path.read_text(encoding="utf-8")) for path in _sources()}


def _defined_private_names() -> dict[str, set[Path]]:
    """Private functions, classes and module-level names -> the files that define them."""
    defined: dict[str, set[Path]] = {}
    for path, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and _private(node.name):
                defined.setdefault(node.name, set()).add(path)
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and _private(target.id):
                    defined.setdefault(target.id, set()).add(path)
    return defined


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def private_accesses() -> Iterator[str]:
    defined = _defined_private_names()
    for path, tree in TREES.items():
        own_package = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path)
        for node in ast.walk(tree):
            yield from _reach(path, node, own_package, defined)


def _reach(path: Path, node: ast.AST, own_package: str, defined: dict[str, set[Path]]) -> Iterator[str]:
    """What one node reaches that is private to another module."""
    where = path.relative_to(ROOT)
    if isinstance(node, ast.ImportFrom):
        source = _absolute(path, node)
        if source.split(".")[0] in PACKAGES:
            yield from (
                f"{where}:{node.lineno}: imports {alias.name} from {source}"
                for alias in node.names
                if _private(alias.name)
            )
            yield from _private_module(where, node.lineno, source, own_package)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in PACKAGES:
                yield from _private_module(where, node.lineno, alias.name, own_package)
    elif isinstance(node, ast.Attribute) and _private(node.attr):
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            return
        owners = defined.get(node.attr, set())
        if owners and path not in owners:
            yield f"{where}:{node.lineno}: reads .{node.attr}, private to {sorted(map(str, owners))}"


def _private_module(where: Path, line: int, module: str, own_package: str) -> Iterator[str]:
    parts = module.split(".")
    for index, part in enumerate(parts):
        if _private(part):
            package = ".".join(parts[:index])
            if not (own_package == package or own_package.startswith(package + ".")):
                yield f"{where}:{line}: imports the private module {module} from outside {package}"


def test_no_module_reaches_into_another_modules_private_names() -> None:
    assert list(private_accesses()) == []


def test_the_private_access_check_finds_each_kind(tmp_path: Path) -> None:
    """The check is not vacuous: each kind of reach is found in a sample."""
    sample = ast.parse("from engine.instances.step import _run\nimport engine.rules._x\nx = step._failing_element\n")
    global TREES
    saved = TREES
    fake = ROOT / "api" / "sample_for_test.py"
    TREES = {**saved, fake: sample}
    try:
        found = list(private_accesses())
    finally:
        TREES = saved
    assert any("imports _run" in f for f in found)
    assert any("private module engine.rules._x" in f for f in found)
    assert any(".\u005ffailing_element" in f for f in found)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def test_engine_never_imports_flask_or_the_api() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path, tree in TREES.items()
        if path.is_relative_to(ROOT / "engine")
        for line, name in _imports(tree)
        if name.split(".")[0] in ("flask", "werkzeug", "api")
    ]
    assert found == []


SHARED = {"settings", "clock", "errors", "calendar", "files"}
# docs/architecture.md's table: engine package -> the engine packages it may import (besides SHARED).
ALLOWED = {
    "app": {"careplan", "db", "directory", "instances", "pathways", "rules", "sandbox", "spiff", "webhooks"},
    "documents": {"app", "audit", "db", "directory", "instances", "rules"},
    "fhir": {"app", "care_teams", "careplan", "db", "directory", "documents", "instances", "rules"},
    "demo": {"app", "db", "instances"},
    "careplan": {"audit", "db", "instances", "rules", "webhooks"},
    "instances": {
        "access_log",
        "audit",
        "care_teams",
        "db",
        "decisions",
        "expressions",
        "four_eyes",
        "rules",
        "spiff",
        "webhooks",
    },
    "pathways": {"db", "decisions", "expressions", "four_eyes", "spiff"},
    "decisions": {"db", "expressions"},
    "library": {"pathways", "rules"},
    "scenarios": {"app", "instances", "pathways", "rules", "spiff"},
    "spiff": set(),
    "expressions": set(),
    "rules": {"db", "four_eyes"},
    "four_eyes": {"audit", "db"},
    "webhooks": {"db"},
    "directory": {"rules"},
    "audit": {"db"},
    "access": {"audit", "care_teams", "db"},
    "access_log": {"db"},
    "care_teams": {"db"},
    "identity": {"access", "care_teams"},
    "patients": {"access", "care_teams", "db", "instances"},
    "subject_access": {"access_log", "app", "db", "instances", "patients", "rules"},
    "verifications": {"audit", "db", "four_eyes", "processes"},
    "processes": set(),
    "reports": {"access_log", "care_teams", "db"},
    "idempotency": {"db"},
    "pathway_checks": {"app", "db", "instances", "rules"},
    "sandbox": {"db", "instances"},
    "db": set(),
    "settings": set(),
    "clock": set(),
    "errors": set(),
    "calendar": set(),
}


def package_imports() -> dict[str, set[str]]:
    """Engine package (or top-level module) -> the other engine packages it imports."""
    graph: dict[str, set[str]] = {}
    for path, tree in TREES.items():
        if not path.is_relative_to(ROOT / "engine") or path == ROOT / "engine" / "__init__.py":
            continue
        parts = path.relative_to(ROOT / "engine").parts
        package = parts[0].removesuffix(".py")
        for _, name in _imports(tree):
            if name.startswith("engine."):
                target = name.split(".")[1]
                if target != package:
                    graph.setdefault(package, set()).add(target)
    return graph


def test_engine_packages_import_only_what_the_architecture_allows() -> None:
    graph = package_imports()
    unknown = sorted(set(graph) - set(ALLOWED))
    assert unknown == [], f"packages missing from docs/architecture.md's table: {unknown}"
    extra = {package: sorted(targets - ALLOWED[package] - SHARED) for package, targets in graph.items()}
    assert {p: t for p, t in extra.items() if t} == {}


def test_the_allowed_imports_have_no_cycle() -> None:
    allowed = {
        package: targets | (SHARED - {package}) if package not in SHARED else targets
        for package, targets in ALLOWED.items()
    }
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        if package in done:
            return
        for target in allowed.get(package, set()):
            visit(target, (*path, package))
        done.add(package)

    for package in allowed:
        visit(package, ())


def test_no_engine_import_hides_inside_a_function() -> None:
    """A function-level import of another engine module is how import cycles were hidden."""
    found = []
    for path, tree in TREES.items():
        if not path.is_relative_to(ROOT / "engine"):
            continue
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("engine")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


@pytest.mark.parametrize(
    "name",
    sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine.") if m.ispkg and "migrations" not in m.name),
)
def test_every_engine_package_says_what_it_owns_and_may_import(name: str) -> None:
    package = importlib.import_module(name)
    doc = package.__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    if name.count(".") == 1 and name not in ("engine.db",):
        assert "May import" in doc, f"{name}'s docstring does not say what it may import"


def test_no_migration_imports_the_project() -> None:
    """A migration names its tables and types itself: it runs against the schema of its own revision, and the
    models it would import change after it was written (a changed type there would change what an old
    migration creates)."""
    folder = ROOT / "engine" / "db" / "migrations" / "versions"
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(folder.glob("*.py"))
        for line, name in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in PACKAGES
    ]
    assert len(list(folder.glob("*.py"))) > 20 and found == []
