"""A trail that survives its administrators: events authenticated by a key the database does not hold,
stored states checked against the digests their events recorded, and checkpoints outside the database
that notice a deleted instance or a trail cut back. Each tampering an administrator could do in SQL is
tried, and `carepath audit verify` reports it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from api.cli import main
from engine import CarePath, ManualClock, Settings
from engine import audit as audit_module
from engine.audit import (
    Checkpoint,
    _TrailEvent,
    _verify_chain,
    authenticate_existing,
    data_digest,
    event_hash,
    event_text,
    export_checkpoint,
    latest_checkpoint,
    make_checkpoint,
    state_digest,
    trail_key_of,
    verify_trail,
    write_checkpoint,
)
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.session import read_only, unit_of_work
from engine.db.stored_state import decode_state, encode_state
from engine.four_eyes import authenticate_existing_deployments
from engine.instances.timers import fire_due_timers
from engine.verifications import VerificationFailed, id_ranges, verify_every_trail

NURSE = "clinician:cns-7"
KEY = "3f1a9c0e6b2d4f8a7c5e1b3d9f0a2c4e6b8d0f1a3c5e7b9d"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "trail.key"
    path.write_text(KEY + "\n")
    path.chmod(0o400)
    return path


@pytest.fixture
def keyed(carepath: CarePath, clock: ManualClock, key_file: Path, tmp_path: Path) -> Iterator[CarePath]:
    """The engine with a trail key and a checkpoint folder, as a production deployment runs it (on the
    database the ``carepath`` fixture prepared)."""
    settings = dataclasses.replace(carepath.settings, trail_key_file=key_file, checkpoint_dir=tmp_path / "checkpoints")
    app = CarePath(settings, clock)
    with unit_of_work(app.sessions) as session:  # the deployment's trail, written before the key (sign-existing)
        authenticate_existing_deployments(session)
    try:
        yield app
    finally:
        app.close()


def _journey(carepath: CarePath, patient: str = "MRN-42") -> str:
    view = carepath.instances.start("test_assessment", patient, "system:ehr")
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 3}, NURSE)
    carepath.instances.suspend(view.id, NURSE, reason="admitted")
    carepath.instances.resume(view.id, NURSE)
    return view.id


def _events(carepath: CarePath, instance_id: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def _verify(carepath: CarePath, checkpoint: Checkpoint | None = None) -> list[str]:
    with read_only(carepath.sessions) as session:
        return [str(p) for p in verify_trail(session, checkpoint=checkpoint)]


def _checkpoint(carepath: CarePath) -> Checkpoint:
    folder = carepath.settings.checkpoint_dir
    assert folder is not None
    export_checkpoint(carepath.sessions, folder, carepath.clock.now())
    found = latest_checkpoint(folder)
    assert found is not None
    return found


def _sql(carepath: CarePath, *statements: str, **params: Any) -> None:
    """An administrator at the database: plain SQL, no engine, no key."""
    with carepath.db.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)


def _hash(row: Any, prev_hash: str) -> str:
    """The event hash as the documented format computes it, redone by someone without the key."""
    fields = [
        row.instance_id,
        row.seq,
        row.type,
        row.at.isoformat(),
        row.actor,
        row.pathway_version,
        row.element,
        row.task_id,
        row.payload,
        prev_hash,
    ]
    if row.state_digest is not None:
        fields.append(row.state_digest)
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _rewrite_consistently(carepath: CarePath, instance_id: str, seq: int, payload: str) -> None:
    """Change one event and recompute every hash after it and the instance's head: the chain agrees
    with itself again. Only the MACs (and a checkpoint) can tell."""
    events = _events(carepath, instance_id)
    prev_hash = events[seq - 2].hash if seq > 1 else "0" * 64
    with carepath.db.begin() as connection:
        for event in events[seq - 1 :]:
            if event.seq == seq:
                event.payload = payload
            new_hash = _hash(event, prev_hash)
            connection.execute(
                text("UPDATE instance_events SET payload = :p, prev_hash = :prev, hash = :h WHERE id = :id"),
                {"p": event.payload, "prev": prev_hash, "h": new_hash, "id": event.id},
            )
            prev_hash = new_hash
        connection.execute(
            text("UPDATE pathway_instances SET event_head = :h WHERE id = :id"), {"h": prev_hash, "id": instance_id}
        )


def test_events_carry_a_mac_and_state_changing_events_a_state_digest(keyed: CarePath, clock: ManualClock) -> None:
    instance_id = _journey(keyed)
    timer = keyed.instances.start("test_timer_p1d", "MRN-7", "system:ehr")
    clock.advance(timedelta(days=2))
    assert fire_due_timers(keyed.instances) == 1
    events = _events(keyed, instance_id)
    assert all(e.mac is not None and len(e.mac) == 73 for e in events)
    # started, task_completed and suspended/resumed? Only steps that stored a new state record one.
    digests = {e.type: e.state_digest for e in events}
    assert digests["started"] is not None and digests["task_completed"] is not None
    assert digests["suspended"] is None and digests["resumed"] is None  # the state did not change
    with keyed.sessions() as session:
        instance = session.get(PathwayInstance, instance_id)
        assert instance is not None
        assert [e.state_digest for e in events if e.state_digest][-1] == state_digest(instance.state)
    assert [e.type for e in _events(keyed, timer.id)] == ["started", "timer_fired", "completed"]
    assert _verify(keyed, _checkpoint(keyed)) == []


def test_data_digests_are_keyed_so_a_patients_scores_cannot_be_found_by_trying_each(keyed: CarePath) -> None:
    """A plain SHA-256 of {"anxiety": 2, "fatigue": 3} is found in 121 tries by anyone reading the trail;
    with the trail key the digest is an HMAC only the key's holder can check data against."""
    instance_id = _journey(keyed)
    with keyed.sessions() as session:
        key = trail_key_of(session)
    assert key is not None
    [completed] = [e for e in _events(keyed, instance_id) if e.type == "task_completed"]
    recorded = json.loads(completed.payload)["data_digest"]
    assert recorded == data_digest({"anxiety": 2, "fatigue": 3}, key)
    assert recorded.startswith(f"hmac-sha256:{key.key_id}:")
    plain = {data_digest({"anxiety": a, "fatigue": f}).removeprefix("sha256:") for a in range(11) for f in range(11)}
    assert not any(guess in recorded for guess in plain)
    assert _verify(keyed) == []


def test_without_a_trail_key_data_digests_are_plain_sha256(carepath: CarePath) -> None:
    instance_id = _journey(carepath)
    [completed] = [e for e in _events(carepath, instance_id) if e.type == "task_completed"]
    assert json.loads(completed.payload)["data_digest"] == data_digest({"anxiety": 2, "fatigue": 3})
    assert data_digest({"anxiety": 2, "fatigue": 3}).startswith("sha256:")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            ['UPDATE instance_events SET payload = \'{"data_digest":"sha256:00"}\' WHERE seq = 2'],
            "event 2: content was changed",
            id="edited",
        ),
        pytest.param(
            [
                "UPDATE instance_events SET seq = 1000 WHERE seq = 3",
                "UPDATE instance_events SET seq = 3 WHERE seq = 4",
                "UPDATE instance_events SET seq = 4 WHERE seq = 1000",
            ],
            "out of order",
            id="reordered",
        ),
        pytest.param(["DELETE FROM instance_events WHERE seq = 2"], "missing events", id="deleted-event"),
        pytest.param(["DELETE FROM instance_events WHERE seq = 4"], "events deleted", id="newest-deleted"),
        pytest.param(
            ["UPDATE instance_events SET mac = NULL WHERE seq = 1"], "event 1: not authenticated", id="mac-removed"
        ),
        pytest.param(
            ["UPDATE instance_events SET mac = 'deadbeef:' || substr(mac, 10) WHERE seq = 2"],
            "event 2: authenticated with another key (deadbeef)",
            id="mac-of-another-key",
        ),
        pytest.param(
            # The first hex digit changed whatever it was ('0' written over a '0' changed nothing: 1 run in 16).
            [
                "UPDATE instance_events SET mac = substr(mac, 1, 9) || "
                "CASE WHEN substr(mac, 10, 1) = '0' THEN '1' ELSE '0' END || substr(mac, 11) WHERE seq = 3"
            ],
            "event 3: authentication code does not match",
            id="mac-edited",
        ),
        # hmac.compare_digest refuses a str with non-ASCII characters: such a MAC once stopped the scan.
        pytest.param(
            ["UPDATE instance_events SET mac = substr(mac, 1, 9) || '\u00e9' || substr(mac, 11) WHERE seq = 3"],
            "event 3: authentication code does not match",
            id="mac-not-ascii",
        ),
    ],
)
def test_tampering_with_events_is_reported(keyed: CarePath, tamper: list[str], expected: str) -> None:
    instance_id = _journey(keyed)
    _sql(keyed, *tamper)
    problems = _verify(keyed)
    assert any(expected in p for p in problems), problems
    assert all(instance_id in p for p in problems)


def test_event_times_are_hashed_as_utc_in_whatever_zone_the_driver_reads_them(keyed: CarePath) -> None:
    """The scan reads event times as the driver gives them (PostgreSQL in the transaction's zone, which
    the verification sets to UTC; SQLite naive): a time read in any zone is checked as written."""
    instance_id = _journey(keyed)
    with read_only(keyed.sessions) as session:
        key = trail_key_of(session)
        head_seq, head_hash = session.execute(
            select(PathwayInstance.event_seq, PathwayInstance.event_head).where(PathwayInstance.id == instance_id)
        ).one()
    rows = [_TrailEvent(*(getattr(e, name) for name in _TrailEvent._fields)) for e in _events(keyed, instance_id)]
    assert all(r.at.utcoffset() == timedelta(0) for r in rows)
    kathmandu = [r._replace(at=r.at.astimezone(ZoneInfo("Asia/Kathmandu"))) for r in rows]  # UTC+05:45
    naive = [r._replace(at=r.at.replace(tzinfo=None)) for r in rows]
    for read in (rows, kathmandu, naive):
        assert _verify_chain(instance_id, read, head_seq, head_hash, key, None) == []
    moved = [kathmandu[0]._replace(at=kathmandu[0].at + timedelta(microseconds=1)), *kathmandu[1:]]
    problems = _verify_chain(instance_id, moved, head_seq, head_hash, key, None)
    assert [p.message for p in problems] == ["content was changed after it was written"]


def test_a_consistent_rewrite_without_the_key_fails_the_macs(
    keyed: CarePath, test_settings: Settings, clock: ManualClock
) -> None:
    instance_id = _journey(keyed)
    _rewrite_consistently(keyed, instance_id, 2, json.dumps({"data_digest": "sha256:forged", "task": "HNA"}))
    # Without the key the rewrite is invisible: every hash and the head agree.
    unkeyed = CarePath(test_settings, clock)
    try:
        assert _verify(unkeyed) == []
    finally:
        unkeyed.close()
    problems = _verify(keyed)
    assert problems == [
        f"instance {instance_id} event {seq}: authentication code does not match: rewritten without the key"
        for seq in (2, 3, 4)
    ]


def test_a_checkpoint_finds_a_deleted_instance_and_a_trail_cut_back(keyed: CarePath) -> None:
    kept, deleted, cut = _journey(keyed, "MRN-1"), _journey(keyed, "MRN-2"), _journey(keyed, "MRN-3")
    checkpoint = _checkpoint(keyed)
    assert set(checkpoint.heads) == {kept, deleted, cut} and checkpoint.heads[cut][0] == 4
    # Delete one instance with everything that points to it; cut another back by two events and set
    # its head to match: the database agrees with itself, and every remaining MAC is genuine.
    previous = _events(keyed, cut)[1]
    _sql(
        keyed,
        "DELETE FROM instance_events WHERE instance_id = :gone",
        "DELETE FROM pathway_instances WHERE id = :gone",
        "DELETE FROM instance_events WHERE instance_id = :cut AND seq > 2",
        "UPDATE pathway_instances SET event_seq = 2, event_head = :head WHERE id = :cut",
        gone=deleted,
        cut=cut,
        head=previous.hash,
    )
    assert _verify(keyed) == []  # the rows alone cannot tell
    problems = _verify(keyed, latest_checkpoint(keyed.settings.checkpoint_dir or Path()))
    assert problems == [
        f"instance {cut}: truncated: the checkpoint saw event 4, the trail now ends at 2",
        f"instance {deleted}: deleted: in the checkpoint of {checkpoint.at} at event 4, not in the database",
    ]


def test_a_rewrite_below_the_checkpoint_is_found_even_without_the_key(
    keyed: CarePath, test_settings: Settings, clock: ManualClock
) -> None:
    instance_id = _journey(keyed)
    checkpoint = _checkpoint(keyed)
    _rewrite_consistently(keyed, instance_id, 3, json.dumps({"reason": "changed afterwards"}))
    unkeyed = CarePath(test_settings, clock)
    try:
        assert _verify(unkeyed, checkpoint) == [
            f"instance {instance_id} event 4: rewritten: not the event the checkpoint saw"
        ]
    finally:
        unkeyed.close()


def test_an_edited_workflow_state_no_longer_matches_its_digest(keyed: CarePath) -> None:
    instance_id = _journey(keyed)
    with keyed.sessions() as session:
        instance = session.get(PathwayInstance, instance_id)
        assert instance is not None
        state = instance.state
    assert '"anxiety":2' in state.replace(" ", "")
    _sql(
        keyed,
        "UPDATE pathway_instances SET state = :s WHERE id = :id",
        s=state.replace('"anxiety":2', '"anxiety":9'),
        id=instance_id,
    )
    newest_digest = [e.seq for e in _events(keyed, instance_id) if e.state_digest][-1]
    assert _verify(keyed) == [
        f"instance {instance_id} event {newest_digest}: the stored workflow state is not the "
        "one this event recorded (edited after it was written)"
    ]


# --- state seals: a stored state verified without inflating it --------------------------------------


def _inflations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the stored states verification inflates (the slow way, against the text digest)."""
    counted: list[int] = []
    inflate = audit_module.decode_state

    def counting(stored: bytes) -> str:
        counted.append(len(stored))
        return inflate(stored)

    monkeypatch.setattr(audit_module, "decode_state", counting)
    return counted


def _stored(carepath: CarePath, instance_id: str) -> tuple[bytes, str | None]:
    with carepath.db.connect() as connection:
        state, seal = connection.execute(
            text("SELECT state, state_mac FROM pathway_instances WHERE id = :id"), {"id": instance_id}
        ).one()
    return bytes(state), seal


def _store(carepath: CarePath, instance_id: str, state: bytes, seal: str | None) -> None:
    table = PathwayInstance.__table__
    with carepath.db.begin() as connection:
        connection.execute(table.update().where(table.c.id == instance_id).values(state=state, state_mac=seal))


def test_a_sealed_state_is_verified_without_inflating_it(keyed: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    instance_id = _journey(keyed)
    stored, seal = _stored(keyed, instance_id)
    with keyed.sessions() as session:
        key = trail_key_of(session)
    assert key is not None and seal is not None and seal.startswith(f"{key.key_id}:") and len(seal) == 73
    newest = [e.state_digest for e in _events(keyed, instance_id) if e.state_digest][-1]
    assert seal == key.state_mac(instance_id, newest, stored)
    inflated = _inflations(monkeypatch)
    assert _verify(keyed) == []
    assert inflated == []


def test_a_state_edited_under_its_seal_is_found_the_slow_way(keyed: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    instance_id = _journey(keyed)
    stored, seal = _stored(keyed, instance_id)
    edited = decode_state(stored).replace('"anxiety":2', '"anxiety":9')
    assert edited != decode_state(stored)
    _store(keyed, instance_id, encode_state(edited), seal)  # the seal of the bytes before
    inflated = _inflations(monkeypatch)
    newest = [e.seq for e in _events(keyed, instance_id) if e.state_digest][-1]
    assert _verify(keyed) == [
        f"instance {instance_id} event {newest}: the stored workflow state is not the "
        "one this event recorded (edited after it was written)"
    ]
    assert len(inflated) == 1


def test_a_state_stored_again_with_its_text_unchanged_still_verifies(
    keyed: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored another way (as migration 0032's downgrade rewrites states, or a new compression would), the
    seal no longer matches the bytes; the text's digest does, and it alone decides."""
    instance_id = _journey(keyed)
    stored, seal = _stored(keyed, instance_id)
    again = b"\x01" + zlib.compress(decode_state(stored).encode())
    assert again != stored
    _store(keyed, instance_id, again, seal)
    inflated = _inflations(monkeypatch)
    assert _verify(keyed) == []
    assert inflated == [len(again)]


def test_a_seal_from_another_instance_or_forged_does_not_pass_an_edited_state(keyed: CarePath) -> None:
    first, second = _journey(keyed, "MRN-SEAL-1"), _journey(keyed, "MRN-SEAL-2")
    _store(keyed, first, *_stored(keyed, second))  # another instance's state, with its own seal
    _store(keyed, second, encode_state(decode_state(_stored(keyed, second)[0]) + " "), "é" * 73)
    digest_seq = {i: [e.seq for e in _events(keyed, i) if e.state_digest][-1] for i in (first, second)}
    assert sorted(_verify(keyed)) == sorted(
        f"instance {i} event {digest_seq[i]}: the stored workflow state is not the one this event recorded "
        "(edited after it was written)"
        for i in (first, second)
    )


def test_without_a_trail_key_no_state_is_sealed_and_each_is_inflated(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = _journey(carepath)
    assert _stored(carepath, instance_id)[1] is None
    inflated = _inflations(monkeypatch)
    assert _verify(carepath) == []
    assert len(inflated) == 1


@pytest.mark.parametrize(
    ("element", "task_id", "digest"),
    [(None, None, None), ("hna", "7c0e", "sha256:" + "ab" * 32), ('q"u\\o\nte\u2028', "τ✓\x00", "sha256:x")],
)
def test_an_events_text_is_the_canonical_json_of_its_fields(
    element: str | None, task_id: str | None, digest: str | None
) -> None:
    """event_text writes the canonical JSON out by hand, for speed: it must be the documented text exactly."""
    event = SimpleNamespace(
        instance_id="5f0c",
        seq=12,
        type="task_completed",
        at=datetime(2026, 12, 1, 9, 30, 5, 120, tzinfo=UTC),
        actor='clinician:"x" for staff:Å',
        pathway_version="breast_cancer@1.0.0",
        element=element,
        task_id=task_id,
        payload='{"data":"sha256:00","note":"\\\u00e9\t"}',
        prev_hash="0" * 64,
        state_digest=digest,
    )
    # _hash: the documented format, computed with json.dumps as someone without the engine would.
    assert event_hash(event) == _hash(event, event.prev_hash)
    assert event_hash(event) == hashlib.sha256(event_text(event).encode()).hexdigest()


def test_checkpoints_are_never_overwritten_and_a_forged_one_is_reported(
    keyed: CarePath, tmp_path: Path, test_settings: Settings, clock: ManualClock
) -> None:
    _journey(keyed)
    folder = tmp_path / "checkpoints"
    at = clock.now()
    with read_only(keyed.sessions) as session:
        first = make_checkpoint(session, at)
    path = write_checkpoint(folder, first, at)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o440
    assert write_checkpoint(folder, first, at) == path  # the same checkpoint again: nothing changes
    other = dataclasses.replace(first, heads={}, digest="sha256:" + "0" * 64)
    with pytest.raises(FileExistsError):  # same name, other content: refused, the first kept
        write_checkpoint(folder, dataclasses.replace(other, digest=first.digest), at)
    assert json.loads(path.read_text())["digest"] == first.digest
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind

    # A newer checkpoint written by someone without the key (one instance fewer, as if it never was).
    unkeyed = CarePath(test_settings, clock)
    try:
        clock.advance(timedelta(minutes=1))
        with read_only(unkeyed.sessions) as session:
            forged = make_checkpoint(session, clock.now())
        write_checkpoint(folder, forged, clock.now())
    finally:
        unkeyed.close()
    newest = latest_checkpoint(folder)
    assert newest is not None and newest.mac is None
    assert _verify(keyed, newest) == [f"{newest.source}: not signed, though a trail key is configured"]
    clock.advance(timedelta(minutes=1))
    edited = dataclasses.replace(first, heads={})  # the heads cut, digest and signature copied
    write_checkpoint(folder, edited, clock.now())
    newest = latest_checkpoint(folder)
    assert newest is not None
    assert _verify(keyed, newest) == [
        f"{newest.source}: its heads do not match its digest (the file was edited)",
        f"{newest.source}: its signature does not match (forged or edited)",
    ]
    # A signature edited to a character compare_digest refuses is reported like any other edit.
    clock.advance(timedelta(minutes=1))
    assert first.mac is not None
    write_checkpoint(folder, dataclasses.replace(first, mac=first.mac[:-1] + "\u00e9"), clock.now())
    newest = latest_checkpoint(folder)
    assert newest is not None
    assert _verify(keyed, newest) == [f"{newest.source}: its signature does not match (forged or edited)"]


def test_events_from_before_the_key_are_signed_once_their_chains_verify(
    keyed: CarePath, test_settings: Settings, clock: ManualClock
) -> None:
    unkeyed = CarePath(test_settings, clock)
    try:
        old, broken = _journey(unkeyed, "MRN-1"), _journey(unkeyed, "MRN-2")
    finally:
        unkeyed.close()
    assert all(e.mac is None for e in _events(keyed, old))
    assert len(_verify(keyed)) == 8  # four events each, none authenticated
    _sql(keyed, "UPDATE instance_events SET actor = 'someone' WHERE instance_id = :i AND seq = 2", i=broken)
    with unit_of_work(keyed.sessions) as session:
        # Three events a batch: the batches, not one read of every event, and the broken chain left as it is.
        assert authenticate_existing(session, batch=3) == 4
    problems = _verify(keyed)
    assert all(broken in p for p in problems) and any("content was changed" in p for p in problems)
    assert not any(old in p for p in problems)


def test_states_written_before_the_key_are_sealed_when_they_match_their_trail(
    keyed: CarePath, key_file: Path, test_settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    unkeyed = CarePath(test_settings, clock)
    try:
        kept, also, edited = _journey(unkeyed, "MRN-S1"), _journey(unkeyed, "MRN-S3"), _journey(unkeyed, "MRN-S2")
    finally:
        unkeyed.close()
    assert _stored(keyed, kept)[1] is None and _stored(keyed, edited)[1] is None
    stored = _stored(keyed, edited)[0]
    _store(keyed, edited, encode_state(decode_state(stored).replace('"anxiety":2', '"anxiety":7')), None)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", keyed.settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(keyed.settings.pathways_dir))
    monkeypatch.setenv("CAREPATH_TRAIL_KEY_FILE", str(key_file))
    result = CliRunner().invoke(main, ["audit", "sign-existing"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("; 2 state(s) sealed")  # counted as the statement sealed them
    with keyed.sessions() as session:
        key = trail_key_of(session)
    assert key is not None
    newest = [e.state_digest for e in _events(keyed, kept) if e.state_digest][-1]
    assert _stored(keyed, kept)[1] == key.state_mac(kept, newest, _stored(keyed, kept)[0])
    assert _stored(keyed, also)[1] is not None
    assert _stored(keyed, edited)[1] is None  # not its trail's state: left for verification to report
    inflated = _inflations(monkeypatch)
    problems = _verify(keyed)
    assert [p for p in problems if "workflow state" in p] == [
        f"instance {edited} event {[e.seq for e in _events(keyed, edited) if e.state_digest][-1]}: the stored "
        "workflow state is not the one this event recorded (edited after it was written)"
    ]
    assert len(inflated) == 1  # the edited one; the sealed ones were taken as they are


def test_error_events_name_the_type_and_element_never_values(keyed: CarePath) -> None:
    class Failing:
        def __call__(self, context: Any, task: Any, params: dict[str, Any]) -> Any:
            raise ConnectionError(f"patient MRN-5555 Jane Doe scored {params['level']}")

    keyed.instances.operators["test.notify"] = Failing()
    view = keyed.instances.start("test_service_step", "MRN-5555", "system:ehr")
    failed = keyed.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"distress": 8}, NURSE)
    condition = keyed.instances.start("test_bad_condition", "MRN-5556", "system:ehr")
    condition_failed = keyed.instances.complete_task(condition.id, condition.ready_tasks[0]["id"], {"pain": 7}, NURSE)
    assert failed.status == condition_failed.status == "error"
    errors = [e for i in (view.id, condition.id) for e in _events(keyed, i) if e.type == "error"]
    assert [json.loads(e.payload)["kind"] for e in errors] == ["WorkflowError", "ExpressionError"]
    assert [e.element for e in errors] == ["notify", "gw"]
    for event in errors:
        payload = json.loads(event.payload)
        assert set(payload) == {"message", "kind"}
        assert not any(value in event.payload for value in ("MRN-5555", "MRN-5556", "Jane", "Doe", " 8", " 7"))
    assert _verify(keyed) == []


_SCRIPT_DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="{pid}" name="Script on start data" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work" />
    <bpmn:scriptTask id="work"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""


@pytest.mark.parametrize(
    ("script", "data", "secret", "message"),
    [
        ("n = int(distress)", {"distress": "8 - my husband left"}, "husband", "int: the text is not a whole number"),
        ("f = float(weight)", {"weight": "about 61kg"}, "61kg", "float: the text is not a number"),
        ("x = lookup[nhs_number]", {"nhs_number": "9434765919", "lookup": {}}, "9434765919", "the key (a str) is"),
        ("a = age_on(dob, '1950-01-01')", {"dob": "1961-04-23"}, "1961", "age_on: the date is before the birth"),
        ("d = add_days(dob, 1)", {"dob": "23/04/1961"}, "1961", "add_days expects a date like '2024-08-31', got"),
        ("w = whole[int(code)]", {"code": "12", "whole": []}, "12", "the position is out of range"),
    ],
)
def test_an_expression_failing_on_a_patients_values_never_quotes_them(
    keyed: CarePath, script: str, data: dict[str, Any], secret: str, message: str
) -> None:
    """Python's texts quote the values they fail on (``invalid literal for int(): '8 - my husband
    left'``): the incident and the trail's error event name what failed, where, never the value."""
    pid = "script_" + hashlib.sha256(script.encode()).hexdigest()[:8]
    keyed.catalog.deploy_upload({f"{pid}.bpmn": _SCRIPT_DIAGRAM.format(pid=pid, script=script).encode()}, "author")
    view = keyed.instances.start(pid, "MRN-5557", "system:ehr", data)
    assert view.status == "error" and view.incident is not None
    assert view.incident["message"].startswith(message) and view.incident["element"] == "work"
    [error] = [e for e in _events(keyed, view.id) if e.type == "error"]
    for written in (json.dumps(view.incident), error.payload):
        assert secret not in written and "MRN-5557" not in written


def test_settings_refuse_a_key_file_that_is_missing_or_too_short(tmp_path: Path, test_settings: Settings) -> None:
    short = tmp_path / "short.key"
    short.write_text("too-short")
    with pytest.raises(ValueError, match="needs at least 32"):
        dataclasses.replace(test_settings, trail_key_file=short)
    with pytest.raises(ValueError, match="cannot be read"):
        dataclasses.replace(test_settings, trail_key_file=tmp_path / "missing.key")
    good = _write(tmp_path / "good.key", KEY)
    settings = Settings.from_env(
        {
            "CAREPATH_DATABASE_URL": test_settings.database_url,
            "CAREPATH_TRAIL_KEY_FILE": str(good),
            "CAREPATH_CHECKPOINT_DIR": str(tmp_path),
            "CAREPATH_CHECKPOINT_SECONDS": "900",
        }
    )
    assert (settings.trail_key(), settings.checkpoint_dir, settings.checkpoint_seconds) == (KEY.encode(), tmp_path, 900)
    assert KEY not in repr(settings)  # the secret is read when used, never kept where a traceback shows it
    with pytest.raises(ValueError, match="CAREPATH_CHECKPOINT_SECONDS"):
        Settings.from_env({"CAREPATH_DATABASE_URL": test_settings.database_url, "CAREPATH_CHECKPOINT_SECONDS": "x"})


def _write(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def test_audit_commands_checkpoint_and_verify(
    keyed: CarePath, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = _journey(keyed)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", keyed.settings.database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(keyed.settings.pathways_dir))
    monkeypatch.setenv("CAREPATH_TRAIL_KEY_FILE", str(key_file))
    monkeypatch.setenv("CAREPATH_CHECKPOINT_DIR", str(tmp_path / "cli-checkpoints"))
    runner = CliRunner()
    made = runner.invoke(main, ["audit", "checkpoint"])
    assert made.exit_code == 0, made.output
    written = Path(made.stdout.strip().splitlines()[-1])
    assert written.parent == tmp_path / "cli-checkpoints" and written.exists()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "(authenticated with key " in ok.stdout and f"checkpoint {written.name} (1 instances)" in ok.stdout
    _sql(
        keyed,
        "DELETE FROM instance_events WHERE instance_id = :i",
        "DELETE FROM pathway_instances WHERE id = :i",
        i=instance_id,
    )
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert f"instance {instance_id}: deleted: in the checkpoint of" in bad.stdout
    monkeypatch.delenv("CAREPATH_TRAIL_KEY_FILE")
    monkeypatch.setenv("CAREPATH_ENV", "production")
    monkeypatch.setenv("CAREPATH_ALLOW_EXAMPLE_DIRECTORY", "1")
    unkeyed = runner.invoke(main, ["audit", "verify", "--checkpoint-dir", str(tmp_path / "none")])
    assert unkeyed.exit_code == 1
    assert "the trail is not authenticated (no CAREPATH_TRAIL_KEY_FILE)" in unkeyed.stdout


def test_a_verification_in_parts_finds_every_tampering_a_single_scan_finds(keyed: CarePath) -> None:
    """Each kind of tampering on an instance of its own, verified in three processes over id ranges:
    the same problems as one scan; the checkpoint's own problems once."""
    ids = {
        kind: _journey(keyed, f"MRN-P-{kind}")
        for kind in ("edited", "gap", "unsigned", "state", "deleted", "rewritten", "intact")
    }
    _checkpoint(keyed)
    _sql(keyed, "UPDATE instance_events SET payload = '{}' WHERE instance_id = :i AND seq = 2", i=ids["edited"])
    _sql(keyed, "DELETE FROM instance_events WHERE instance_id = :i AND seq = 2", i=ids["gap"])
    _sql(keyed, "UPDATE instance_events SET mac = NULL WHERE instance_id = :i AND seq = 1", i=ids["unsigned"])
    _sql(keyed, "UPDATE pathway_instances SET state = state || ' ' WHERE id = :i", i=ids["state"])
    _sql(
        keyed,
        "DELETE FROM instance_events WHERE instance_id = :i",
        "DELETE FROM pathway_instances WHERE id = :i",
        i=ids["deleted"],
    )
    _rewrite_consistently(keyed, ids["rewritten"], 2, json.dumps({"reason": "changed afterwards"}))
    folder = keyed.settings.checkpoint_dir
    assert folder is not None
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None
    forged = dataclasses.replace(checkpoint, mac=checkpoint.mac[:-4] + "0000" if checkpoint.mac else None)
    one = verify_every_trail(keyed.sessions, checkpoint=forged, jobs=1)
    checked: list[int] = []
    parts = verify_every_trail(keyed.sessions, checkpoint=forged, jobs=3, progress=checked.append, batch=1)
    assert sorted(map(str, parts)) == sorted(map(str, one))  # (deleted ones come at the end of each share)
    assert sorted({p.instance_id for p in parts}) == sorted({"", *(i for k, i in ids.items() if k != "intact")})
    assert sum(1 for p in parts if not p.instance_id) == 1  # the forged checkpoint, reported once
    assert checked[-1] == 6  # every instance still there, counted over the three processes


def test_id_ranges_hold_every_id_exactly_once() -> None:
    import uuid

    ranges = id_ranges(5)
    assert ranges[0][0] is None and ranges[-1][1] is None
    for instance_id in [str(uuid.uuid4()) for _ in range(500)] + ["", "zzz", "00000000", "ffffffff-x"]:
        holding = [r for r in ranges if (r[0] is None or instance_id >= r[0]) and (r[1] is None or instance_id < r[1])]
        assert len(holding) == 1, instance_id
    shares = [
        sum(1 for i in range(4000) if ranges[k][0] is None or f"{i * 16**8 // 4000:08x}" >= ranges[k][0])
        for k in range(5)
    ]
    assert shares == sorted(shares, reverse=True) and shares[1] - shares[2] == 800  # even shares


def test_a_part_that_fails_fails_the_verification_by_the_errors_type(keyed: CarePath) -> None:
    _journey(keyed)
    _sql(keyed, "ALTER TABLE instance_events RENAME TO instance_events_moved")
    # SQLAlchemy's class on SQLite; psycopg's own on PostgreSQL, whose scans run on the driver's cursors.
    failed = r"share \d of 2 failed: (ProgrammingError|OperationalError|UndefinedTable)$"
    with pytest.raises(VerificationFailed, match=failed):
        verify_every_trail(keyed.sessions, jobs=2)
