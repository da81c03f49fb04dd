"""The stored workflow state (engine.db.stored_state, issue 19): compressed behind a format marker,
inflated within a bound, verified by the digest of its text, and a blob that cannot be read is an
incident and a 409, never a 500 or a dead worker. Migration 0019 converts existing rows both ways."""

from __future__ import annotations

import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from engine import CarePath, ManualClock
from engine.audit import verify_trail
from engine.db import stored_state
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.session import alembic_config, read_only, upgrade_schema
from engine.db.stored_state import MAX_STATE_BYTES, UnreadableStateError, decode_state, encode_state
from engine.errors import ConflictError
from engine.instances.step import STATE_UNREADABLE
from engine.instances.store import STATE_TOO_LARGE
from engine.instances.timers import fire_due_timers

NURSE = "clinician:nurse-1"
STATE = '{"tasks":{"a":{"children":[]}},"note":"Ångström ✓"}'


# --- the format -------------------------------------------------------------------------------------


def test_a_state_is_stored_compressed_behind_its_marker_and_reads_back_exactly() -> None:
    text_ = STATE + " " * 5000
    stored = encode_state(text_)
    assert stored[:1] == b"\x02" and len(stored) < len(text_) // 10
    assert decode_state(stored) == text_
    assert decode_state(memoryview(stored)) == text_
    assert decode_state(STATE.encode()) == STATE  # uncompressed text: "{" is its own marker
    assert decode_state(STATE) == STATE  # SQLite hands back a value written as text as str


def test_a_state_is_compressed_with_the_preset_dictionary_and_one_stored_before_it_still_reads() -> None:
    text_ = STATE + " " * 5000
    stored = encode_state(text_)
    with pytest.raises(zlib.error, match="Error 2 "):  # Z_NEED_DICT: the stream asks for the dictionary (FDICT)
        zlib.decompress(stored[1:])
    inflater = zlib.decompressobj(zdict=stored_state.DICTIONARY)
    assert inflater.decompress(stored[1:]).decode() == text_
    before = b"\x01" + zlib.compress(text_.encode(), 6)  # as every state was written until the dictionary
    assert decode_state(before) == text_
    # A state's usual text, with the pieces every state repeats, is smaller with the dictionary than without.
    typical = (
        '{"tasks":{"a":{"children":[],"last_state_change":1.5,"state":64,"task_spec":"Start"}},'
        '"typename":"BpmnWorkflow"}'
    )
    assert len(encode_state(typical)) < len(b"\x01" + zlib.compress(typical.encode(), 6)) - 20


def test_a_changed_dictionary_file_refuses_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """States written with the dictionary can be read only with exactly its bytes: an edited or truncated
    file stops the engine at start instead of turning every stored state into an incident."""
    shipped = stored_state.DICTIONARY_FILE
    changed = tmp_path / "state_dictionary_1.txt"
    changed.write_bytes(stored_state.DICTIONARY_FILE.read_bytes()[:-1] + b" ")
    monkeypatch.setattr(stored_state, "DICTIONARY_FILE", changed)
    with pytest.raises(RuntimeError, match="not the dictionary stored states were written with"):
        stored_state._dictionary()
    monkeypatch.setattr(stored_state, "DICTIONARY_FILE", shipped)
    assert stored_state._dictionary() == stored_state.DICTIONARY


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (b"", "empty"),
        (b"\x07" + zlib.compress(b"{}"), "unknown format marker 0x07"),
        (b"\x01" + b"not zlib at all", "corrupt"),
        (b"\x01" + zlib.compress(STATE.encode())[:-6], "truncated"),
        (b"\x01" + zlib.compress(STATE.encode()) + b"\x00", "bytes after its end"),
        (b"\x01" + zlib.compress(b"{\xff\xfe}"), "not UTF-8"),
        (encode_state(STATE)[:-6], "truncated"),
    ],
    ids=["empty", "marker", "not-zlib", "truncated", "trailing", "not-utf8", "truncated-2"],
)
def test_a_blob_that_cannot_be_read_says_why_without_its_content(stored: bytes, reason: str) -> None:
    with pytest.raises(UnreadableStateError) as refused:
        decode_state(stored)
    assert reason in str(refused.value) and "Ångström" not in str(refused.value)


def test_a_flipped_byte_in_the_compressed_stream_is_caught_by_its_check() -> None:
    stored = bytearray(encode_state(STATE * 50))
    stored[len(stored) // 2] ^= 0x55
    with pytest.raises(UnreadableStateError, match="corrupt"):
        decode_state(bytes(stored))


def test_inflating_stops_at_the_bound_whatever_the_blob_claims() -> None:
    bomb = b"\x01" + zlib.compress(b"{" + b" " * MAX_STATE_BYTES, 9)  # 16 KB that inflates past 16 MiB
    assert len(bomb) < 64 * 1024
    with pytest.raises(UnreadableStateError, match="inflates to more than"):
        decode_state(bomb)
    deflater = zlib.compressobj(9, zdict=stored_state.DICTIONARY)
    with pytest.raises(UnreadableStateError, match="inflates to more than"):  # and with the dictionary
        decode_state(b"\x02" + deflater.compress(b"{" + b" " * MAX_STATE_BYTES) + deflater.flush())
    assert decode_state(b"\x01" + zlib.compress(b"{" + b" " * (MAX_STATE_BYTES - 2) + b"}")).endswith(" }")
    with pytest.raises(UnreadableStateError, match="over the"):  # never stored: it could not be read back
        encode_state("{" + " " * MAX_STATE_BYTES + "}")


# --- in the database ------------------------------------------------------------------------------------


def _instance(carepath: CarePath, patient: str = "MRN-SS-1") -> str:
    view = carepath.instances.start("test_assessment", patient, "system:ehr")
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 3}, NURSE)
    return view.id


def _stored(carepath: CarePath, instance_id: str) -> bytes:
    with carepath.db.connect() as connection:
        return bytes(
            connection.execute(
                text("SELECT state FROM pathway_instances WHERE id = :id"), {"id": instance_id}
            ).scalar_one()
        )


def _store(carepath: CarePath, instance_id: str, stored: bytes) -> None:
    """An administrator (or a fault) at the database: the bytes written as they are."""
    table = PathwayInstance.__table__
    with carepath.db.begin() as connection:
        connection.execute(table.update().where(table.c.id == instance_id).values(state=stored))


def _problems(carepath: CarePath) -> list[str]:
    with read_only(carepath.sessions) as session:
        return [str(p) for p in verify_trail(session)]


def _newest_digest_seq(carepath: CarePath, instance_id: str) -> int:
    with carepath.sessions() as session:
        return max(
            session.scalars(
                select(InstanceEvent.seq).where(
                    InstanceEvent.instance_id == instance_id, InstanceEvent.state_digest.is_not(None)
                )
            )
        )


def test_the_column_holds_compressed_bytes_and_the_digest_is_of_the_text(carepath: CarePath) -> None:
    instance_id = _instance(carepath)
    stored = _stored(carepath, instance_id)
    assert stored[:1] == b"\x02"
    with carepath.sessions() as session:
        assert session.get(PathwayInstance, instance_id).state == decode_state(stored)  # type: ignore[union-attr]
    assert _problems(carepath) == []


def test_a_recompressed_edit_of_the_state_is_found_by_verification(carepath: CarePath) -> None:
    instance_id = _instance(carepath)
    edited = decode_state(_stored(carepath, instance_id)).replace('"anxiety":2', '"anxiety":9')
    assert '"anxiety":9' in edited
    _store(carepath, instance_id, encode_state(edited))  # well-formed bytes, other text
    seq = _newest_digest_seq(carepath, instance_id)
    assert _problems(carepath) == [
        f"instance {instance_id} event {seq}: the stored workflow state is not the one "
        "this event recorded (edited after it was written)"
    ]


def test_a_state_that_is_not_text_is_named_so_by_verification(carepath: CarePath) -> None:
    """Verification hashes the inflated bytes without decoding them; bytes that fail the digest and are
    not UTF-8 are still named as such, not only as a different state."""
    instance_id = _instance(carepath)
    _store(carepath, instance_id, b"\x01" + zlib.compress(b'{"a":"\xff\xfe"}'))
    seq = _newest_digest_seq(carepath, instance_id)
    assert _problems(carepath) == [
        f"instance {instance_id} event {seq}: the stored workflow state is not UTF-8 text "
        "(edited or damaged after it was written)"
    ]


def test_a_damaged_blob_is_a_verification_problem_not_a_failure(carepath: CarePath) -> None:
    instance_id = _instance(carepath)
    damaged = bytearray(_stored(carepath, instance_id))
    damaged[len(damaged) // 2] ^= 0x55
    _store(carepath, instance_id, bytes(damaged))
    seq = _newest_digest_seq(carepath, instance_id)
    [problem] = _problems(carepath)
    assert problem.startswith(f"instance {instance_id} event {seq}: the stored workflow state is corrupt")


def test_a_step_on_an_unreadable_state_is_refused_and_holds_the_instance_in_an_incident(carepath: CarePath) -> None:
    instance_id = _instance(carepath)
    bomb = b"\x01" + zlib.compress(b"{" + b" " * MAX_STATE_BYTES, 9)
    _store(carepath, instance_id, bomb)
    carepath.instances.steps.cache.clear()
    with pytest.raises(ConflictError) as refused:
        carepath.instances.suspend(instance_id, NURSE, reason="admitted")
    assert refused.value.problems[0].code == STATE_UNREADABLE
    assert "inflates to more than" in refused.value.message
    with pytest.raises(ConflictError):
        carepath.instances.instance_data(instance_id)
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None and row.status == "error"
        assert '"kind": "UnreadableStateError"' in (row.incident or "")
        newest = session.scalars(
            select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq.desc())
        ).first()
        assert newest is not None and newest.type == "error" and newest.state_digest is None
    assert _stored(carepath, instance_id) == bomb  # kept as it was, for whoever restores the row
    with pytest.raises(ConflictError):  # a second attempt: refused again, nothing more recorded
        carepath.instances.retry(instance_id, NURSE)
    with carepath.sessions() as session:
        assert session.scalar(select(PathwayInstance.event_seq).where(PathwayInstance.id == instance_id)) == newest.seq


def test_the_timer_worker_records_an_unreadable_state_as_an_incident_and_goes_on(
    carepath: CarePath, clock: ManualClock
) -> None:
    broken, healthy = (carepath.instances.start("test_timer_p1d", f"MRN-SS-{n}", "system:ehr").id for n in (2, 3))
    _store(carepath, broken, b"\x01" + b"\x00" * 64)
    carepath.instances.steps.cache.clear()
    clock.advance(timedelta(days=2))
    assert fire_due_timers(carepath.instances) == 2  # both advanced, one into its incident: the worker goes on
    with carepath.sessions() as session:
        rows = {
            r.id: r for r in session.scalars(select(PathwayInstance).where(PathwayInstance.id.in_([broken, healthy])))
        }
        assert rows[broken].status == "error" and rows[broken].incident is not None
        assert rows[healthy].status != "error" and rows[healthy].event_seq > 1


# --- migration 0019 ------------------------------------------------------------------------------------


def test_migration_0019_converts_existing_states_both_ways_and_trails_still_verify(
    carepath: CarePath, clock: ManualClock
) -> None:
    ids = [_instance(carepath, f"MRN-SS-M{n}") for n in range(3)]
    texts = {i: decode_state(_stored(carepath, i)) for i in ids}
    url = carepath.settings.database_url
    carepath.close()
    command.downgrade(alembic_config(url), "0017")
    again = CarePath(carepath.settings, clock, upgrade=False)
    try:
        with again.db.connect() as connection:
            rows = dict(connection.execute(text("SELECT id, state FROM pathway_instances")).all())
        assert {i: rows[i] for i in ids} == texts  # text again, exactly as it was
    finally:
        again.close()
    upgrade_schema(url)
    upgraded = CarePath(carepath.settings, clock)
    try:
        assert {i: _stored(upgraded, i)[:1] for i in ids} == {i: b"\x01" for i in ids}
        assert {i: decode_state(_stored(upgraded, i)) for i in ids} == texts
        assert _problems(upgraded) == []
        view = upgraded.instances.get(ids[0])  # and the engine runs on them
        assert view.status == "running"
    finally:
        upgraded.close()


def test_migration_0032_rewrites_dictionary_states_for_a_release_before_it_and_trails_still_verify(
    carepath: CarePath, clock: ManualClock
) -> None:
    ids = [_instance(carepath, f"MRN-SS-D{n}") for n in range(3)]
    texts = {i: decode_state(_stored(carepath, i)) for i in ids}
    assert {_stored(carepath, i)[:1] for i in ids} == {b"\x02"}
    url = carepath.settings.database_url
    carepath.close()
    command.downgrade(alembic_config(url), "0032-1")
    again = CarePath(carepath.settings, clock, upgrade=False)
    try:
        stored = {i: _stored(again, i) for i in ids}
        assert {value[:1] for value in stored.values()} == {b"\x01"}  # what a release before 0032 reads
        assert {i: zlib.decompress(stored[i][1:]).decode() for i in ids} == texts
    finally:
        again.close()
    upgrade_schema(url)  # nothing rewritten on the way up: the engine reads both
    upgraded = CarePath(carepath.settings, clock)
    try:
        assert {i: _stored(upgraded, i) for i in ids} == stored
        assert _problems(upgraded) == []
        view = upgraded.instances.get(ids[0])
        upgraded.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"support_accepted": False}, NURSE)
        assert _stored(upgraded, ids[0])[:1] == b"\x02"  # written in the new form at its next step
        assert _problems(upgraded) == []
    finally:
        upgraded.close()


# --- a state over the bound, when a step would write it -------------------------------------------------


def test_a_step_whose_state_would_be_over_the_bound_is_refused_and_nothing_is_written(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = carepath.instances.start("test_assessment", "MRN-SS-9", "system:ehr")
    before = _stored(carepath, view.id)
    monkeypatch.setattr("engine.db.stored_state.MAX_STATE_BYTES", len(decode_state(before)) + 10)
    carepath.instances.steps.cache.clear()
    with pytest.raises(ConflictError) as refused:  # the API maps it to 409 (tests/test_error_mapping.py)
        carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 3}, NURSE)
    assert refused.value.problems[0].code == STATE_TOO_LARGE
    assert "anxiety" not in str(refused.value)
    assert _stored(carepath, view.id) == before
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, view.id)
        assert row is not None and row.status == "running" and row.event_seq == 1
    with pytest.raises(ConflictError) as refused_start:  # a start over the bound: no row at all
        monkeypatch.setattr("engine.db.stored_state.MAX_STATE_BYTES", 10)
        carepath.instances.start("test_assessment", "MRN-SS-10", "system:ehr")
    assert refused_start.value.problems[0].code == STATE_TOO_LARGE
    with carepath.sessions() as session:
        assert session.scalar(select(PathwayInstance.id).where(PathwayInstance.patient_ref == "MRN-SS-10")) is None


def test_a_timer_step_over_the_bound_becomes_an_incident_and_the_worker_goes_on(
    carepath: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = carepath.instances.start("test_timer_p1d", "MRN-SS-11", "system:ehr").id

    def over_the_bound(state: str) -> bytes:
        raise UnreadableStateError(f"the workflow state is {len(state)} bytes, over the bound")

    monkeypatch.setattr("engine.instances.store.encode_state", over_the_bound)  # the bound, whatever the size
    clock.advance(timedelta(days=2))
    fire_due_timers(carepath.instances)
    with carepath.sessions() as session:
        row = session.get(PathwayInstance, instance_id)
        assert row is not None and row.status == "error" and '"kind": "ConflictError"' in (row.incident or "")
