"""The event trail: every change appended, hash-chained, and tampering detected."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from api.cli import main
from engine import CarePath
from engine.audit import verify_trail
from engine.db.models import InstanceEvent

NURSE = "clinician:cns-7"


def _journey(carepath: CarePath) -> str:
    view = carepath.instances.start("test_assessment", "MRN-42", "system:ehr")
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"anxiety": 2, "fatigue": 3}, NURSE)
    carepath.instances.suspend(view.id, NURSE, reason="admitted")
    view = carepath.instances.resume(view.id, NURSE)
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"support_accepted": False}, NURSE)
    carepath.instances.send_message("warning_sign_reported", "system:app", patient_ref="MRN-42")
    return view.id


def _events(carepath: CarePath, instance_id: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


def _verify(carepath: CarePath) -> list[str]:
    with carepath.sessions() as session:
        return [str(p) for p in verify_trail(session)]


def test_every_change_is_recorded_with_actor_version_and_data_digest(carepath: CarePath) -> None:
    instance_id = _journey(carepath)
    events = _events(carepath, instance_id)
    assert [e.type for e in events] == [
        "started",
        "task_completed",
        "suspended",
        "resumed",
        "task_completed",
        "message_received",
    ]
    completed = events[1]
    assert completed.actor == NURSE and completed.element == "hna"
    assert completed.pathway_version == carepath.instances.get(instance_id).pathway_version
    payload = json.loads(completed.payload)
    assert payload["data_digest"].startswith("sha256:")
    # The trail carries no patient data: neither the scores nor the patient reference.
    for event in events:
        assert "MRN-42" not in event.payload and '"anxiety"' not in event.payload
    assert events[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert _verify(carepath) == []


@pytest.mark.parametrize(
    "tamper, expected",
    [
        ('UPDATE instance_events SET payload = \'{"data_digest":"sha256:00"}\' WHERE seq = 2', "content was changed"),
        ("UPDATE instance_events SET actor = 'clinician:someone-else' WHERE seq = 3", "content was changed"),
        (
            "UPDATE instance_events SET seq = CASE seq WHEN 3 THEN 4 WHEN 4 THEN 3 END WHERE seq IN (3, 4)",
            "out of order",
        ),
        ("DELETE FROM instance_events WHERE seq = 3", "missing events"),
        ("DELETE FROM instance_events WHERE seq = (SELECT MAX(seq) FROM instance_events)", "events deleted"),
    ],
)
def test_tampering_with_the_database_is_reported(carepath: CarePath, tamper: str, expected: str) -> None:
    instance_id = _journey(carepath)
    with carepath.db.begin() as connection:
        if "seq = CASE" in tamper:
            # Swap through a free value: the (instance, seq) pair is unique.
            connection.execute(text("UPDATE instance_events SET seq = 1000 WHERE seq = 3"))
            connection.execute(text("UPDATE instance_events SET seq = 3 WHERE seq = 4"))
            connection.execute(text("UPDATE instance_events SET seq = 4 WHERE seq = 1000"))
        else:
            connection.execute(text(tamper))
    problems = _verify(carepath)
    assert problems and any(expected in p for p in problems), problems
    assert all(instance_id in p for p in problems)


def test_audit_verify_command_exits_non_zero_on_tampering(carepath: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    _journey(carepath)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", carepath.settings.database_url)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "event trail verified" in ok.output
    with carepath.db.begin() as connection:
        connection.execute(text("UPDATE instance_events SET type = 'resumed' WHERE seq = 3"))
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "event 3: content was changed" in bad.output
    # One organisation's trails (what its auditors' verification covers): another organisation's is not read.
    ours = runner.invoke(main, ["audit", "verify", "--organisation", "local"])
    assert ours.exit_code == 1 and "event 3: content was changed" in ours.output
    elsewhere = runner.invoke(main, ["audit", "verify", "--organisation", "rx9"])
    assert elsewhere.exit_code == 0 and "event trail verified" in elsewhere.output, elsewhere.output
