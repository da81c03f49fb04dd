"""The server process (issue 19, point 4): workers per core, a warm-up and gc.freeze before the
workers fork, and the latest pathway version cached for starts (cleared by a deploy)."""

from __future__ import annotations

import gc
import logging
import os
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from api import create_app
from engine import CarePath, ManualClock
from engine.instances import step as step_module
from engine.instances.cache import LatestVersion, LatestVersionCache
from engine.spiff import workflows

TESTS = Path(__file__).resolve().parent
CONFIG = TESTS.parent / "api" / "gunicorn.conf.py"
ASSESSMENT = (TESTS / "pathways" / "assessment.bpmn").read_bytes()


def _renamed_assessment(title: str) -> dict[str, bytes]:
    """The test assessment pathway with another name: a new version of it."""
    return {"assessment.bpmn": ASSESSMENT.replace(b'name="Test assessment pathway"', f'name="{title}"'.encode())}


class _FakeClock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class _Server:
    """What gunicorn's hooks read of its arbiter."""

    def __init__(self, app: Flask) -> None:
        self.log = logging.getLogger("test.gunicorn")
        self.app = self

        def wsgi() -> Flask:
            return app

        self.wsgi = wsgi


@pytest.fixture
def app(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    app = create_app(
        {"TESTING": True, "DATABASE_URL": deployed_database_url, "PATHWAYS_DIR": TESTS / "pathways", "CLOCK": clock}
    )
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


def test_workers_default_to_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREPATH_WORKERS", raising=False)
    config = runpy.run_path(str(CONFIG))
    assert config["workers"] == len(os.sched_getaffinity(0))
    assert config["preload_app"] is True
    monkeypatch.setenv("CAREPATH_WORKERS", "3")
    assert runpy.run_path(str(CONFIG))["workers"] == 3


def test_the_master_warms_up_then_freezes_the_collector_before_workers_fork(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    carepath: CarePath = app.extensions["carepath"]
    workflows.clear_spec_cache()
    carepath.instances.steps.versions.clear()

    original_names = carepath.rules.names
    monkeypatch.setattr(carepath.rules, "names", lambda: calls.append("rules") or original_names())

    runpy.run_path(str(CONFIG))["when_ready"](_Server(app))

    assert calls == ["rules", "collect", "freeze"]  # rule sets read and compiled before the freeze
    deployed = [info.pathway_id for info in carepath.catalog.pathways()]
    assert deployed
    for pathway_id in deployed:  # every latest version and its specs are in the master's caches
        version = carepath.instances.steps.versions.get(pathway_id)
        assert version is not None
        specs = workflows.specs_for(version.version, lambda: pytest.fail("the spec was read again"))
        assert all(specs.subprocess_specs[name] is not None for name in specs.subprocess_specs)
    assert carepath.db.pool.checkedout() == 0


def test_a_start_reads_no_version_row_while_the_latest_is_cached(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = step_module.load_latest_version

    def counting(session: Any, pathway_id: str) -> Any:
        reads.append(pathway_id)
        return original(session, pathway_id)

    monkeypatch.setattr(step_module, "load_latest_version", counting)
    carepath.instances.steps.versions.clear()
    first = carepath.instances.start("test_assessment", "MRN-CACHE-1", "system:test")
    second = carepath.instances.start("test_assessment", "MRN-CACHE-2", "system:test")
    assert reads == ["test_assessment"]
    assert first.pathway_version == second.pathway_version


def test_a_deploy_through_this_process_is_started_at_once(carepath: CarePath) -> None:
    before = carepath.instances.start("test_assessment", "MRN-CACHE-3", "system:test")
    [deployed] = carepath.catalog.deploy_upload(_renamed_assessment("Assessment, second edition"), "author")
    after = carepath.instances.start("test_assessment", "MRN-CACHE-4", "system:test")
    assert deployed.version != before.pathway_version
    assert after.pathway_version == deployed.version


def test_a_deploy_through_another_process_is_started_once_the_cache_expires(
    carepath: CarePath, test_settings: Any, clock: ManualClock
) -> None:
    monotonic = _FakeClock()
    carepath.instances.steps.versions = LatestVersionCache(5.0, now=monotonic)
    before = carepath.instances.start("test_assessment", "MRN-CACHE-5", "system:test")
    other = CarePath(test_settings, clock)  # another worker, or `carepath deploy`
    try:
        [deployed] = other.catalog.deploy_upload(_renamed_assessment("Assessment, third edition"), "author")
    finally:
        other.close()
    monotonic.seconds = 4.9
    assert (
        carepath.instances.start("test_assessment", "MRN-CACHE-6", "system:test").pathway_version
        == before.pathway_version
    )  # the previous version is still valid to start on
    monotonic.seconds = 5.0
    assert carepath.instances.start("test_assessment", "MRN-CACHE-7", "system:test").pathway_version == deployed.version


def test_the_version_cache_keeps_nothing_when_switched_off() -> None:
    cache = LatestVersionCache(0)
    cache.put(LatestVersion(1, "p", "v1"))
    assert cache.get("p") is None
