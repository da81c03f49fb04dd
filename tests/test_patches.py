"""SpiffWorkflow's patches: listed in one place, installed explicitly by the facade, never on import."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from engine import CarePath
from engine.spiff import patches

ROOT = Path(__file__).resolve().parent.parent


def test_the_patches_are_listed_in_one_place() -> None:
    assert patches.PATCHES == (
        "clock",
        "utc-for-naive-dates",
        "months-from-start",
        "months-from-end",
        "calendar-cycles",
        "quiet-loggers",
        "bounded-timers",
        "safe-decisions",
        "compact-task-ids",
        "no-idle-walks",
    )
    assert set(patches.installed()) == set(patches.PATCHES)
    # The module's docstring table names each one, for whoever reads it first.
    assert all(name in (patches.__doc__ or "") for name in patches.PATCHES)


def test_importing_the_engine_installs_nothing_and_the_facade_installs_every_patch(tmp_path: Path) -> None:
    script = f"""
import json
from pathlib import Path
from engine import CarePath, Settings
from engine.spiff import patches
before = patches.installed()
settings = Settings(database_url="sqlite:///{tmp_path / "p.sqlite3"}",
                    pathways_dir=Path({str(ROOT / "tests" / "pathways")!r}))
app = CarePath(settings)
print(json.dumps([before, patches.installed()]))
app.close()
"""
    # A host zone other than UTC, so that the naive-date patch shows (on a UTC host it changes nothing).
    env = {**os.environ, "TZ": "Europe/Stockholm"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert not any(before.values()), before
    assert all(after.values()), after


def test_installing_twice_changes_nothing(carepath: CarePath) -> None:
    patches.install()
    patches.install()
    assert all(patches.installed().values())


def test_task_ids_are_unique_compact_version_4_uuids_and_a_forked_child_draws_its_own(carepath: CarePath) -> None:
    ids = [patches.compact_task_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(i.version == 4 for i in ids)
    assert len({i.int >> 64 for i in ids}) == 1  # one prefix: the ids a state holds compress well
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child (a gunicorn worker forked from the preloaded app) must not repeat the parent
        os.write(writer, patches.compact_task_id().bytes)
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(reader, 16)
    parent_next = patches.compact_task_id()
    assert from_child[:8] != parent_next.bytes[:8]
    assert parent_next not in ids


def test_a_started_instance_gets_compact_task_ids(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-PATCH-1", "system:ehr")
    task_id = view.ready_tasks[0]["id"]
    assert task_id[:18] == str(patches.compact_task_id())[:18]  # this process's prefix


def _without_annotations_and_docstrings(function: object, skipped: str | None = None) -> str:
    """The function's syntax tree with its name, annotations and docstrings left out (and every ``if``
    whose test calls ``skipped``), as text to compare."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
            node.returns = None
            for argument in (*node.args.args, *node.args.kwonlyargs):
                argument.annotation = None
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            node.body = [
                statement
                for statement in body
                if not (skipped and isinstance(statement, ast.If) and skipped in ast.dump(statement.test))
            ]
            self.generic_visit(node)
            return node

    root = Strip().visit(tree)
    root.body[0].name = "round"
    return ast.dump(root)


def test_the_engine_round_is_spiffworkflows_own_but_for_the_scan_before_each_walk() -> None:
    # When SpiffWorkflow's method changes (an upgrade), this fails: the copy must be brought up to date.
    stock = _without_annotations_and_docstrings(patches.STOCK_ENGINE_ROUND)
    ours = _without_annotations_and_docstrings(patches.engine_round, skipped="_automatic_ready")
    assert ours == stock
    # And the scan is really there (the comparison above left it out).
    assert "_automatic_ready" in inspect.getsource(patches.engine_round)
