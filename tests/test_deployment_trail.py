"""The deployment trail (issue 18, points 4 and 5): every deploy, activation, migration request and approval is
hash-chained and authenticated with the trail key, and `carepath audit verify` notices an activation edited,
added, deleted or reordered in the database -- what an administrator could otherwise do without a second author."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text, update

from api.cli import main
from engine import CarePath, ManualClock, Settings
from engine.audit import TrailKey, export_checkpoint, latest_checkpoint, link_hash, verify_trail
from engine.db.models import DeploymentEvent, DeploymentTrailHead, PathwayVersion
from engine.db.session import read_only, unit_of_work
from engine.four_eyes import authenticate_existing_deployments, verify_deployment_trail
from engine.instances.migration_requests import approve_migration, request_migration

TESTS = Path(__file__).resolve().parent
ALICE, BOB = "author:staff:alice", "author:staff:bob"
PATHWAY = "test_assessment"
KEY = "9c0e6b2d4f8a7c5e1b3d9f0a2c4e6b8d0f1a3c5e7b9d3f1a"


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[CarePath]:
    folder = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", folder)
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    key = tmp_path / "trail.key"
    key.write_text(KEY + "\n")
    key.chmod(0o400)
    settings = Settings(database_url=database_url, pathways_dir=folder, rules_dir=rules, trail_key_file=key)
    carepath = CarePath(settings, clock, upgrade=True)  # four eyes on
    try:
        carepath.catalog.sync_library()  # the bootstrap: active at once, by "system"
        carepath.rule_sets.sync()
        view = carepath.instances.start(PATHWAY, "MRN-D1", "system:ehr")
        assert view.status == "running"
        clock.advance(timedelta(minutes=1))
        text_ = (folder / "assessment.bpmn").read_text()
        changed = text_.replace('name="Holistic needs assessment"', 'name="Needs assessment (HNA)"').encode()
        [pending] = carepath.catalog.deploy_upload({"assessment.bpmn": changed}, ALICE)
        clock.advance(timedelta(minutes=1))
        carepath.catalog.activate(PATHWAY, pending.version, BOB)
        clock.advance(timedelta(minutes=1))
        asked, _ = request_migration(carepath.instances, PATHWAY, ALICE)
        clock.advance(timedelta(minutes=1))
        approve_migration(carepath.instances, asked.id, BOB)
        yield carepath
    finally:
        carepath.close()


def _problems(app: CarePath) -> list[str]:
    with read_only(app.sessions) as session:
        return [str(problem) for problem in verify_deployment_trail(session)]


def _sql(db: Engine, *statements: str) -> None:
    with db.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_every_deploy_activation_request_and_approval_is_in_the_trail(app: CarePath) -> None:
    assert _problems(app) == []
    with app.db.connect() as connection:
        events = connection.execute(
            text("SELECT seq, type, actor, kind, mac FROM deployment_events ORDER BY seq")
        ).all()
    kinds = [(e.type, e.kind, e.actor) for e in events]
    # The baseline first (nothing was deployed before the trail), then the folder's bootstrap, active at once.
    assert kinds[:3] == [
        ("baseline", "", "system"),
        ("deployed", "pathway", "system"),
        ("activated", "pathway", "system"),
    ]
    assert ("deployed", "rule_set", "system") in kinds and ("activated", "rule_set", "system") in kinds
    assert kinds[-4:] == [
        ("deployed", "pathway", ALICE),
        ("activated", "pathway", BOB),
        ("migration_requested", "migration", ALICE),
        ("migration_approved", "migration", BOB),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    key = TrailKey(app.settings.trail_key() or b"")
    assert all(e.mac and e.mac.split(":")[0] == key.key_id for e in events)  # authenticated with the trail key


def _pending_version(app: CarePath, clock: ManualClock) -> str:
    folder = app.settings.pathways_dir
    changed = (folder / "assessment.bpmn").read_text().replace('name="Holistic needs assessment"', 'name="HNA 3"')
    clock.advance(timedelta(minutes=1))
    [pending] = app.catalog.deploy_upload({"assessment.bpmn": changed.encode()}, ALICE)
    return pending.version


TAMPERING: dict[str, tuple[list[str], str]] = {
    # Who activated, edited in the row: Alice (who deployed it) named as the approver.
    "activation edited": (
        [f"UPDATE pathway_versions SET activated_by = '{ALICE}' WHERE deployed_by = '{ALICE}'"],
        "activated or approved by author:staff:alice",
    ),
    "approval edited": ([f"UPDATE migration_requests SET approved_by = '{ALICE}'"], "migration request"),
    "stored diagram edited": (
        [
            f"UPDATE pathway_versions SET spec = replace(spec, 'Needs assessment', 'Skipped') "
            f"WHERE deployed_by = '{ALICE}'"
        ],
        "its stored content is not what was deployed",
    ),
    "rule set text edited": (
        ["UPDATE rule_set_activations SET source = source || '# edited'"],
        "its stored content is not what was deployed",
    ),
    "activation event edited": (
        [f"UPDATE deployment_events SET actor = 'author:staff:carol' WHERE type = 'activated' AND actor = '{BOB}'"],
        "content was changed after it was written",
    ),
    "activation event deleted": (
        [f"DELETE FROM deployment_events WHERE type = 'activated' AND actor = '{BOB}'"],
        "does not follow the previous event",
    ),
    "newest event deleted, its head rewound": (
        [
            "DELETE FROM deployment_events WHERE type = 'migration_approved'",
            "UPDATE deployment_trail_head SET seq = seq - 1, hash = (SELECT hash FROM deployment_events WHERE seq = "
            "(SELECT MAX(seq) FROM deployment_events))",
        ],
        "activated or approved by author:staff:bob at",
    ),
    "newest event deleted": (["DELETE FROM deployment_events WHERE type = 'migration_approved'"], "its head says"),
    "events reordered": (
        [
            "UPDATE deployment_events SET seq = -1 WHERE type = 'migration_requested'",
            "UPDATE deployment_events SET seq = seq - 1 WHERE type = 'migration_approved'",
            "UPDATE deployment_events SET seq = (SELECT seq FROM deployment_events WHERE type = "
            "'migration_approved') + 1"
            " WHERE type = 'migration_requested'",
        ],
        "out of order or missing events",
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_with_activations_is_detected(app: CarePath, name: str) -> None:
    statements, expected = TAMPERING[name]
    _sql(app.db, *statements)
    problems = _problems(app)
    assert any(expected in problem for problem in problems), problems


def test_a_version_activated_in_the_database_without_a_second_author_is_detected(
    app: CarePath, clock: ManualClock
) -> None:
    version = _pending_version(app, clock)
    assert _problems(app) == []
    _sql(
        app.db,
        f"UPDATE pathway_versions SET activated_by = '{BOB}', activated_at = deployed_at WHERE version = '{version}'",
    )
    [problem] = _problems(app)
    assert f"pathway {PATHWAY} version {version[:12]}: activated or approved by {BOB}" in problem
    assert "by nobody at - in the deployment trail" in problem


def test_a_consistent_rewrite_without_the_key_is_detected(app: CarePath) -> None:
    """Someone who rewrites an activation event and every hash after it, the head and the row, still lacks
    the key: the chain and the rows agree, the authentication codes do not."""
    with unit_of_work(app.sessions) as session:
        prev = "0" * 64
        for event in session.scalars(select(DeploymentEvent).order_by(DeploymentEvent.seq)):
            if event.type == "activated" and event.actor == BOB:
                event.actor = "author:staff:carol"
            event.prev_hash = prev
            event.hash = prev = link_hash(
                [
                    event.seq,
                    event.type,
                    event.at.isoformat(),
                    event.actor,
                    event.kind,
                    event.subject,
                    event.version,
                    event.payload,
                    event.prev_hash,
                ]
            )
        session.execute(update(DeploymentTrailHead).values(hash=prev))
        session.execute(
            update(PathwayVersion).where(PathwayVersion.activated_by == BOB).values(activated_by="author:staff:carol")
        )
    problems = _problems(app)
    assert problems and all("authentication code does not match" in p for p in problems), problems


def test_carepath_audit_verify_reports_the_deployment_trail(app: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(app.settings.pathways_dir))
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(app.settings.rules_dir))
    monkeypatch.setenv("CAREPATH_TRAIL_KEY_FILE", str(app.settings.trail_key_file))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    _sql(app.db, f"UPDATE pathway_versions SET activated_by = '{ALICE}' WHERE deployed_by = '{ALICE}'")
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert f"pathway {PATHWAY} version" in bad.output and "in the deployment trail" in bad.output


def test_deployments_from_before_the_key_are_signed_once_the_trail_verifies(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """A deployment that adds a trail key later: its deployment trail is unauthenticated until `carepath audit
    sign-existing`, which signs it only while its chain and rows agree."""
    folder = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", folder)
    unkeyed = CarePath(Settings(database_url=database_url, pathways_dir=folder), clock, upgrade=True)
    try:
        unkeyed.catalog.sync_library()
        assert _problems(unkeyed) == []  # without a key: chained, not authenticated
    finally:
        unkeyed.close()
    key = tmp_path / "trail.key"
    key.write_text(KEY)
    keyed = CarePath(Settings(database_url=database_url, pathways_dir=folder, trail_key_file=key), clock)
    try:
        assert _problems(keyed) and all("not authenticated" in p for p in _problems(keyed))
        _sql(keyed.db, "UPDATE pathway_versions SET activated_by = 'author:staff:mallory'")
        with unit_of_work(keyed.sessions) as session:
            assert authenticate_existing_deployments(session) == 0  # the rows disagree: left for an auditor
        _sql(keyed.db, "UPDATE pathway_versions SET activated_by = 'system'")
        with unit_of_work(keyed.sessions) as session:
            assert authenticate_existing_deployments(session) > 0
        assert _problems(keyed) == []
    finally:
        keyed.close()


def test_a_trail_cut_back_with_its_rows_is_found_against_the_checkpoint(
    app: CarePath, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who deletes the newest events (a version deployed and activated), its row and rewinds the head
    leaves a trail that agrees with itself and the rows; the checkpoint, signed outside the database, saw more."""
    folder = tmp_path / "checkpoints"
    written = export_checkpoint(app.sessions, folder, clock.now())
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None and checkpoint.deployment_head is not None
    assert '"deployment_head"' in written.read_text()
    with read_only(app.sessions) as session:
        assert verify_deployment_trail(session, checkpoint.deployment_head) == []
        assert verify_trail(session, checkpoint=checkpoint) == []  # signed with the head: the signature holds
    _sql(
        app.db,
        "DELETE FROM deployment_events WHERE type IN ('migration_requested', 'migration_approved')",
        "DELETE FROM migration_requests",
        "UPDATE deployment_trail_head SET seq = (SELECT MAX(seq) FROM deployment_events), "
        "hash = (SELECT hash FROM deployment_events WHERE seq = (SELECT MAX(seq) FROM deployment_events))",
    )
    assert _problems(app) == []  # consistent without the checkpoint
    with read_only(app.sessions) as session:
        [problem] = verify_deployment_trail(session, checkpoint.deployment_head)
    assert f"the checkpoint saw event {checkpoint.deployment_head[0]}; cut back" in str(problem)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(app.settings.pathways_dir))
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(app.settings.rules_dir))
    monkeypatch.setenv("CAREPATH_TRAIL_KEY_FILE", str(app.settings.trail_key_file))
    monkeypatch.setenv("CAREPATH_CHECKPOINT_DIR", str(folder))
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1 and "cut back" in bad.output
