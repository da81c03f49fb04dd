"""SpiffWorkflow's patches: listed in one place, installed explicitly by the facade, never on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine import CarePath
from engine.spiff import patches

ROOT = Path(__file__).resolve().parent.parent


def test_the_patches_are_listed_in_one_place() -> None:
    assert patches.PATCHES == ("clock", "utc-for-naive-dates", "months-from-start", "months-from-end",
                               "calendar-cycles", "quiet-loggers", "bounded-timers", "safe-decisions",
                               "compact-task-ids")
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
settings = Settings(database_url="sqlite:///{tmp_path / 'p.sqlite3'}",
                    pathways_dir=Path({str(ROOT / 'tests' / 'pathways')!r}))
app = CarePath(settings)
print(json.dumps([before, patches.installed()]))
app.close()
"""
    # A host zone other than UTC, so that the naive-date patch shows (on a UTC host it changes nothing).
    env = {**os.environ, "TZ": "Europe/Stockholm"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=env)
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
