"""Webhooks: written to the outbox in the step's transaction, delivered by the worker to a local
receiver that verifies every signature (standardwebhooks), retried with backoff and jitter, dead-
lettered after a bound and replayed, in order per instance, at least once, ids and types only."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, text, update
from test_database_outage import PrivateServer
from test_database_outage import private_postgres as restartable_postgres  # noqa: F401 - a fixture, by this name
from webhook_receiver import Dripper, Receiver

from engine import CarePath, ManualClock, Settings
from engine.db.models import InstanceEvent, WebhookDelivery, WebhookSubscription
from engine.db.session import alembic_config, database_unavailable, read_only, unit_of_work, upgrade_schema
from engine.errors import InvalidInputError, NotFoundError
from engine.instances.timers import fire_due_timers
from engine.webhooks import (
    WEBHOOK_EVENT_TYPES,
    RetryPolicy,
    StepFacts,
    WebhookDeliverer,
    add_subscription,
    dead_letters,
    derive_notices,
    enqueue,
    list_subscriptions,
    remove_subscription,
    replay,
)

TESTS = Path(__file__).resolve().parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
NURSE = "clinician:cns-4"
PATIENT = "SYN-0101"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    try:
        yield found
    finally:
        found.stop()


def subscribe(carepath: CarePath, receiver: Receiver, types: tuple[str, ...] = WEBHOOK_EVENT_TYPES) -> str:
    with unit_of_work(carepath.sessions) as session:
        # The test receiver listens on loopback, as a receiver on a deployment's own network would.
        info, secret = add_subscription(
            session, receiver.url, list(types), carepath.clock, "test receiver", allow_private_networks=True
        )
    receiver.secret = secret
    return info.id


def deliverer(carepath: CarePath, **policy: Any) -> WebhookDeliverer:
    return WebhookDeliverer(
        carepath.sessions, carepath.clock, RetryPolicy(**policy), rng=random.Random(7), allow_private_networks=True
    )


def outbox(carepath: CarePath) -> list[WebhookDelivery]:
    with read_only(carepath.sessions) as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def drain(sender: WebhookDeliverer, turns: int = 20) -> None:
    for _ in range(turns):
        if not sender.run_once():
            return
    raise AssertionError("deliveries still due after 20 turns")


def assess(carepath: CarePath) -> str:
    """A care plan pathway through its needs assessment: task ready, assessment, referral, next task."""
    view = carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9, "money_housing": 6}}, NURSE
    )
    return view.id


def test_every_event_arrives_signed_in_order_with_ids_and_types_only(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver)
    instance_id = assess(carepath)
    rows = outbox(carepath)
    types = [row.event_type for row in rows]
    assert types[0] == "task.ready" and "assessment.completed" in types and "referral.created" in types
    assert types.index("assessment.completed") < types.index("referral.created") < len(types) - 1
    assert types[-1] == "task.ready"  # the agreement task, after the assessment that opened it

    drain(deliverer(carepath))

    assert [r.message_id for r in receiver.accepted] == [row.message_id for row in rows]  # in order, once each
    assert all(r.verified for r in receiver.received)
    assert {row.status for row in outbox(carepath)} == {"delivered"}
    for got in receiver.accepted:
        data = got.body["data"]
        assert got.body["type"] == data["event_type"] and data["instance_id"] == instance_id
        assert data["pathway_id"] == "test_careplan" and isinstance(data["trail_seq"], int)
    text = json.dumps([r.body for r in receiver.accepted])
    assert PATIENT not in text and "worry" not in text
    ids_and_types = {
        "instance_id",
        "pathway_id",
        "pathway_version",
        "event_type",
        "trail_seq",
        "task_id",
        "element",
        "task_kind",
        "evaluation_id",
        "care_plan_item_id",
        "status",
    }
    assert set().union(*(r.body["data"] for r in receiver.accepted)) <= ids_and_types
    ready = [r.body["data"] for r in receiver.accepted if r.body["type"] == "task.ready"]
    assert [d["element"] for d in ready] == ["hna", "agree"] and all(d["task_id"] for d in ready)


def test_only_the_event_types_subscribed_to_are_written(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver, ("assessment.completed",))
    assess(carepath)
    assert [row.event_type for row in outbox(carepath)] == ["assessment.completed"]


def test_a_step_that_rolls_back_leaves_no_outbox_row(
    carepath: CarePath, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(carepath, receiver)
    view = carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    before = len(outbox(carepath))
    written: list[int] = []
    real_save = carepath.instances.steps.save

    def save_then_fail(step: Any) -> None:
        real_save(step)  # the state, the events and the outbox rows, in the step's transaction
        with step.session.no_autoflush:
            written.append(step.session.scalar(select(func.count()).select_from(WebhookDelivery)))
        raise RuntimeError("the step fails after its save, before its commit")

    monkeypatch.setattr(carepath.instances.steps, "save", save_then_fail)
    with pytest.raises(RuntimeError):
        carepath.instances.complete_task(
            view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, NURSE
        )
    assert written and written[0] > before  # the rows were there inside the transaction...
    assert len(outbox(carepath)) == before  # ...and went with its rollback


def test_a_failing_receiver_is_retried_with_backoff_and_nothing_is_lost_or_reordered(
    carepath: CarePath, receiver: Receiver
) -> None:
    subscribe(carepath, receiver)
    assess(carepath)
    expected = [row.message_id for row in outbox(carepath)]
    receiver.fail_next = 3
    sender = deliverer(carepath, first_wait=timedelta(seconds=30))
    clock = carepath.clock

    waits = []
    for attempt in range(1, 4):
        attempts = sender.run_once()
        assert [a.outcome for a in attempts] == ["retry"]  # one instance: its later events wait behind the first
        assert attempts[0].message_id == expected[0]
        wait = attempts[0].next_attempt_at - clock.now()
        base = timedelta(seconds=30) * 2 ** (attempt - 1)
        assert base / 2 <= wait < base  # exponential, with jitter (never exactly the base)
        waits.append(wait)
        assert sender.run_once() == []  # not before its time
        clock.advance(wait)
    assert len(set(waits)) == 3
    drain(sender)
    assert [r.message_id for r in receiver.received[:3]] == [expected[0]] * 3
    assert [r.message_id for r in receiver.accepted] == expected
    assert {row.status for row in outbox(carepath)} == {"delivered"}


def test_dead_lettered_after_the_bound_then_replayed_with_the_same_id(carepath: CarePath, receiver: Receiver) -> None:
    subscription = subscribe(carepath, receiver, ("task.ready",))
    carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    receiver.fail_next = 10
    sender = deliverer(carepath, max_attempts=3)
    outcomes = []
    for _ in range(3):
        outcomes += [a.outcome for a in sender.run_once()]
        carepath.clock.advance(timedelta(hours=1))
    assert outcomes == ["retry", "retry", "dead"]
    assert sender.run_once() == []
    with read_only(carepath.sessions) as session:
        dead = dead_letters(session)
    assert len(dead) == 1 and dead[0].attempts == 3 and dead[0].last_error == "HTTP 503"
    receiver.fail_next = 0
    with unit_of_work(carepath.sessions) as session:
        replayed = replay(session, carepath.clock, delivery_ids=[dead[0].id])
    assert [r.id for r in replayed] == [dead[0].id]
    drain(sender)
    assert [r.message_id for r in receiver.accepted] == [dead[0].message_id]
    with unit_of_work(carepath.sessions) as session:  # a range replays delivered ones too
        again = replay(session, carepath.clock, subscription_id=subscription)
    assert [r.id for r in again] == [dead[0].id]
    drain(sender)
    assert [r.message_id for r in receiver.accepted] == [dead[0].message_id] * 2


def test_a_dead_letter_no_longer_holds_the_instances_later_events_back(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver)
    assess(carepath)
    rows = outbox(carepath)
    receiver.fail_next = 1
    sender = deliverer(carepath, max_attempts=1)
    assert [a.outcome for a in sender.run_once()] == ["dead"]
    drain(sender)
    assert [r.message_id for r in receiver.accepted] == [row.message_id for row in rows[1:]]


def test_an_overdue_task_and_the_instance_completing_are_told(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver)
    view = carepath.instances.start("test_parallel_review", PATIENT, "system:ehr")
    by_element = {t["element"]: t["id"] for t in view.ready_tasks}
    carepath.instances.complete_task(view.id, by_element["bloods"], {"hb": 120}, NURSE)
    view = carepath.instances.complete_task(view.id, by_element["offer_support"], {"support_accepted": False}, NURSE)
    plan = next(t for t in view.ready_tasks if t["element"] == "plan")
    carepath.clock.advance(timedelta(days=8))
    assert fire_due_timers(carepath.instances) == 1
    overdue = [row for row in outbox(carepath) if row.event_type == "task.overdue"]
    assert len(overdue) == 1
    data = json.loads(overdue[0].body)["data"]
    assert data["task_id"] == plan["id"] and data["element"] == "plan" and data["timer_element"] == "plan_overdue"
    chase = carepath.instances.get(view.id).ready_tasks[0]
    assert chase["element"] == "chase"
    carepath.instances.complete_task(view.id, chase["id"], {"finished": True}, NURSE)
    assert outbox(carepath)[-1].event_type == "instance.completed"


def test_emergency_and_incident_events_come_from_the_trail() -> None:
    facts = StepFacts(
        "i-1",
        "p",
        "v1",
        datetime(2026, 1, 1, tzinfo=UTC),
        [
            {
                "seq": 4,
                "type": "rules_evaluated",
                "element": "propose",
                "payload": json.dumps({"evaluation_id": "e-1", "proposed": 1, "emergency_referred": 1}),
            },
            {
                "seq": 5,
                "type": "error",
                "element": "x",
                "payload": json.dumps({"message": "m", "kind": "ExpressionError"}),
            },
        ],
        None,
        None,
        trail_seq=5,
    )
    notices = derive_notices(facts)
    assert [(n.type, n.data["trail_seq"]) for n in notices] == [
        ("assessment.completed", 4),
        ("emergency.opened", 4),
        ("incident.opened", 5),
    ]
    assert notices[1].data["evaluation_id"] == "e-1" and notices[2].data["error_type"] == "ExpressionError"
    assert "message" not in notices[2].data  # an incident's text stays in the trail


def test_subscriptions_refuse_bad_input_and_never_show_the_secret(carepath: CarePath, receiver: Receiver) -> None:
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        add_subscription(session, "ftp://user:pw@x/", ["task.ready", "patient.moved"], carepath.clock, "d" * 201)
    assert {p.field for p in refused.value.problems} == {"/url", "/event_types/1", "/description"}
    subscription = subscribe(carepath, receiver)
    assert receiver.secret.startswith("whsec_")
    with read_only(carepath.sessions) as session:
        listed = list_subscriptions(session)
    assert [s.id for s in listed] == [subscription] and receiver.secret not in json.dumps([s.as_dict() for s in listed])
    carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    with unit_of_work(carepath.sessions) as session:
        assert remove_subscription(session, subscription, carepath.clock) == 1  # its pending delivery is cancelled
    with unit_of_work(carepath.sessions) as session, pytest.raises(NotFoundError):
        remove_subscription(session, subscription, carepath.clock)
    assert deliverer(carepath).run_once() == [] and receiver.received == []
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        replay(session, carepath.clock, delivery_ids=[2**63])  # a driver would overflow on it
    assert [p.field for p in refused.value.problems] == ["/delivery_ids"]


# --- a worker killed mid-delivery, a database restarted mid-delivery --------------------------------


def _held_then_released(receiver: Receiver) -> None:
    assert receiver.holding.wait(timeout=120), "the worker never sent its first delivery"


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_next_sends_the_same_id(
    carepath: CarePath, receiver: Receiver, test_settings: Settings
) -> None:
    subscribe(carepath, receiver)
    assess(carepath)
    expected = [row.message_id for row in outbox(carepath)]
    receiver.hold = True
    env = {
        **os.environ,
        "CAREPATH_DATABASE_URL": test_settings.database_url,
        "CAREPATH_PATHWAYS_DIR": str(test_settings.pathways_dir),
        "CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "worker", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _held_then_released(receiver)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    receiver.hold = False
    receiver.release.set()
    first = outbox(carepath)[0]
    assert first.status == "pending" and first.attempts == 1 and first.lease_until is not None  # left mid-delivery

    carepath.clock.set(first.lease_until + timedelta(seconds=1))  # its lease ran out: another worker may take it
    drain(deliverer(carepath))
    assert [r.message_id for r in receiver.received] == [expected[0], *expected]  # at least once, same id
    assert [r.message_id for r in receiver.accepted] == expected
    assert {row.status for row in outbox(carepath)} == {"delivered"}


@pytest.mark.slow
def test_postgresql_restarted_mid_delivery_loses_nothing(
    restartable_postgres: PrivateServer,  # noqa: F811
    receiver: Receiver,
) -> None:
    private_postgres = restartable_postgres
    url = private_postgres.url
    app = CarePath(Settings(database_url=url, pathways_dir=TESTS / "pathways"), ManualClock(START), upgrade=True)
    try:
        app.catalog.sync_library()
        subscribe(app, receiver, ("task.ready",))
        for n in range(5):
            app.instances.start("test_careplan", f"SYN-02{n:02d}", "system:ehr", {"age": 60})
        expected = [row.message_id for row in outbox(app)]
        assert len(expected) == 5
        receiver.hold = True
        sender = deliverer(app)
        failures: list[BaseException] = []

        def deliver() -> None:
            try:
                sender.run_once()
            except BaseException as exc:  # noqa: BLE001 - the outage, examined below
                failures.append(exc)

        thread = threading.Thread(target=deliver)
        thread.start()
        _held_then_released(receiver)
        private_postgres.pg_ctl("-m", "fast", "stop")  # the outcome of the held delivery cannot be written
        receiver.hold = False
        receiver.release.set()
        thread.join(timeout=120)
        assert len(failures) == 1 and database_unavailable(failures[0])
        private_postgres.pg_ctl("start")

        app.clock.advance(sender.policy.lease + timedelta(seconds=1))
        for _ in range(20):  # the pool's dead connections are replaced as they are found
            try:
                drain(sender)
                break
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
        assert {row.status for row in outbox(app)} == {"delivered"}
    finally:
        app.close()
    got = [r.message_id for r in receiver.received]
    assert set(got) == set(expected) and got.count(expected[0]) == 2  # every event, the cut one again, same id
    assert [r.message_id for r in receiver.accepted] == expected


# --- the command line and the worker's loop -----------------------------------------------------------


def _command_line(settings: Settings) -> Callable[[list[str]], Any]:
    """``carepath ARGS`` on ``settings``' database, receivers on this machine allowed; the click result."""
    from click.testing import CliRunner

    from api.cli import main

    env = {
        "CAREPATH_DATABASE_URL": settings.database_url,
        "CAREPATH_PATHWAYS_DIR": str(settings.pathways_dir),
        "CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
    }
    return lambda args: CliRunner().invoke(main, args, env=env)


def test_the_command_line_adds_lists_dead_letters_replays_and_removes(
    carepath: CarePath, test_settings: Settings, receiver: Receiver
) -> None:
    cli = _command_line(test_settings)
    refused = cli(["webhooks", "add", "ftp://x/", "--event", "task.ready"])
    assert refused.exit_code == 1 and "/url" in refused.output
    added = cli(["webhooks", "add", receiver.url, "--event", "task.ready"])
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    receiver.secret = secret
    listed = cli(["webhooks", "list"])
    subscription = listed.stdout.split()[0]
    assert subscription.startswith("whsub_") and receiver.url in listed.stdout and secret not in listed.output

    carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    receiver.fail_next = 1
    assert [a.outcome for a in deliverer(carepath, max_attempts=1).run_once()] == ["dead"]
    dead = cli(["webhooks", "dead-letters"])
    delivery_id, message_id = dead.stdout.split()[:2]
    assert "task.ready" in dead.stdout and "HTTP 503" in dead.stdout
    replayed = cli(["webhooks", "replay", delivery_id])
    assert replayed.exit_code == 0 and "1 delivery(ies) due again" in replayed.output
    carepath.clock.set(datetime.now(UTC) + timedelta(minutes=1))  # the command ran on the real clock
    drain(deliverer(carepath))
    assert [r.message_id for r in receiver.accepted] == [message_id]
    removed = cli(["webhooks", "remove", subscription])
    assert removed.exit_code == 0 and cli(["webhooks", "list"]).stdout == ""


def test_the_worker_loop_delivers_after_firing_timers(carepath: CarePath, receiver: Receiver) -> None:
    from engine.instances.worker import run_worker

    subscribe(carepath, receiver, ("instance.completed",))
    carepath.instances.start("test_timer_p1d", PATIENT, "system:ehr")
    carepath.clock.advance(timedelta(days=2))
    sender = deliverer(carepath)  # carepath.webhooks would refuse the loopback receiver (test_webhook_network)
    run_worker(carepath.instances, worker_id="w", once=True, deliver=lambda: len(sender.run_once()))
    assert [r.body["type"] for r in receiver.accepted] == ["instance.completed"]


def test_webhook_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"CAREPATH_WEBHOOK_MAX_ATTEMPTS": "3", "CAREPATH_WEBHOOK_TIMEOUT_SECONDS": "2.5"})
    assert (settings.webhook_max_attempts, settings.webhook_timeout_seconds) == (3, 2.5)
    with pytest.raises(ValueError, match="CAREPATH_WEBHOOK_MAX_ATTEMPTS"):
        Settings.from_env({"CAREPATH_WEBHOOK_MAX_ATTEMPTS": "many"})
    with pytest.raises(ValueError, match="positive"):
        Settings.from_env({"CAREPATH_WEBHOOK_MAX_ATTEMPTS": "0"})


@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)  # SQLite's single writer serialises claims
def test_on_postgresql_a_worker_skips_what_another_is_claiming(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver, ("task.ready",))
    for n in range(2):
        carepath.instances.start("test_careplan", f"SYN-03{n:02d}", "system:ehr", {"age": 54})
    first, second = outbox(carepath)
    done = threading.Event()
    attempts: list[Any] = []
    with carepath.sessions() as other:  # another worker, inside its claim of the first delivery
        other.execute(select(WebhookDelivery).where(WebhookDelivery.id == first.id).with_for_update())

        def claim() -> None:
            attempts.extend(deliverer(carepath).run_once())
            done.set()

        threading.Thread(target=claim, daemon=True).start()
        finished = done.wait(timeout=60)  # without SKIP LOCKED it would wait for the other's commit
        other.rollback()
    assert finished and [a.message_id for a in attempts] == [second.message_id]
    assert [r.message_id for r in receiver.accepted] == [second.message_id]


def test_any_failure_of_one_delivery_is_that_deliverys_and_names_no_url(carepath: CarePath, receiver: Receiver) -> None:
    class Broken:
        def post(self, url: str, body: bytes, headers: Any, timeout: float) -> int:
            raise RuntimeError(f"cannot reach {url}")

    subscribe(carepath, receiver, ("task.ready",))
    carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    sender = WebhookDeliverer(carepath.sessions, carepath.clock, RetryPolicy(), Broken())
    assert [(a.outcome, a.error) for a in sender.run_once()] == [("retry", "RuntimeError")]
    (row,) = outbox(carepath)
    assert row.last_error == "RuntimeError" and receiver.url not in (row.last_error or "")


def test_a_referral_moved_by_a_clinician_is_told_with_its_new_status(carepath: CarePath, receiver: Receiver) -> None:
    subscribe(carepath, receiver, ("referral.created", "referral.changed"))
    instance_id = assess(carepath)
    created = [json.loads(row.body)["data"] for row in outbox(carepath)]
    assert {d["event_type"] for d in created} == {"referral.created"} and {d["status"] for d in created} == {"proposed"}
    item = created[0]["care_plan_item_id"]
    carepath.care_plans.set_status(instance_id, item, "declined", NURSE)
    changed = json.loads(outbox(carepath)[-1].body)["data"]
    assert (changed["event_type"], changed["care_plan_item_id"], changed["status"]) == (
        "referral.changed",
        item,
        "declined",
    )
    with read_only(carepath.sessions) as session:
        newest = session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == instance_id)
            .order_by(InstanceEvent.seq.desc())
            .limit(1)
        ).one()
    assert newest.type == "care_plan_updated" and changed["trail_seq"] == newest.seq


def test_a_receiver_that_never_finishes_answering_is_a_failed_attempt_retried_later(carepath: CarePath) -> None:
    # The attempt ends at its deadline (the timeout, 1 s here) however the receiver dribbles; the
    # worker's loop goes on. The join bounds the test; it does not measure it.
    dripper = Dripper(prefix=b"HTTP/1.1 200 OK\r\n").start()
    try:
        with unit_of_work(carepath.sessions) as session:
            add_subscription(session, dripper.url, ["task.ready"], carepath.clock, "drips", allow_private_networks=True)
        carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
        sender = deliverer(carepath, timeout_seconds=1.0)
        attempts: list[Any] = []
        turn = threading.Thread(target=lambda: attempts.extend(sender.run_once()), daemon=True)
        turn.start()
        turn.join(timeout=10)
        assert not turn.is_alive(), "the delivery was still running long after its deadline"
        assert [(a.outcome, a.error) for a in attempts] == [("retry", "DeadlineExceededError")]
        (row,) = outbox(carepath)
        assert row.status == "pending" and row.lease_until is None and row.attempts == 1
    finally:
        dripper.stop()


def test_a_subscription_whose_url_cannot_be_sent_fails_each_attempt_with_a_clear_reason(carepath: CarePath) -> None:
    # Such a URL is refused now when the subscription is made; one made before is stored still.
    with unit_of_work(carepath.sessions) as session:
        info, _ = add_subscription(session, "https://ehr.example/hooks", ["task.ready"], carepath.clock)
        session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == info.id)
            .values(url="https://ehr.example/hooks/f\u00f6r")
        )
    carepath.instances.start("test_careplan", PATIENT, "system:ehr", {"age": 54})
    attempts = WebhookDeliverer(carepath.sessions, carepath.clock, RetryPolicy()).run_once()
    assert [(a.outcome, a.error) for a in attempts] == [("retry", "UnusableURLError")]
    (row,) = outbox(carepath)
    assert row.last_error == "UnusableURLError"


def test_the_worker_beats_before_each_attempt_of_a_batch(carepath: CarePath, receiver: Receiver) -> None:
    """A batch of receivers that each take the whole timeout lasts up to ``batch`` timeouts (200 s by
    default), longer than a supervisor's watchdog waits (WatchdogSec=60, docs/operations.md): the
    heartbeat comes before every attempt, not only once per turn of the worker's loop."""
    subscribe(carepath, receiver, ("task.ready",))
    for patient in ("SYN-BEAT-1", "SYN-BEAT-2", "SYN-BEAT-3"):  # one due delivery each (per-instance order)
        carepath.instances.start("test_careplan", patient, "system:ehr", {"age": 54})
    pending = len(outbox(carepath))
    assert pending == 3
    beats: list[int] = []
    attempts = deliverer(carepath).run_once(between=lambda: beats.append(len(receiver.received)))
    assert len(attempts) == pending
    assert beats == list(range(pending))  # one beat before each POST, none after the last


# --- whose: an organisation's subscriptions and the deployment's -------------------------------------


def subscribe_for(
    carepath: CarePath, url: str, organisation: str | None, types: tuple[str, ...] = ("task.ready",)
) -> str:
    with unit_of_work(carepath.sessions) as session:
        info, _ = add_subscription(
            session, url, list(types), carepath.clock, "", organisation=organisation, allow_private_networks=True
        )
    return info.id


def test_an_organisations_subscription_receives_only_its_own_instances_events(carepath: CarePath) -> None:
    receivers = {whose: Receiver().start() for whose in ("rx1", "rx2", "deployment")}
    try:
        for whose, receiver in receivers.items():
            with unit_of_work(carepath.sessions) as session:
                _, receiver.secret = add_subscription(
                    session,
                    receiver.url,
                    ["task.ready"],
                    carepath.clock,
                    whose,
                    organisation=None if whose == "deployment" else whose,
                    allow_private_networks=True,
                )
        rx1, rx2 = (
            carepath.instances.start(
                "test_careplan", f"SYN-ORG-{org}", "system:ehr", {"age": 54}, organisation=org, care_team="breast"
            ).id
            for org in ("rx1", "rx2")
        )
        drain(deliverer(carepath))
        got = {
            whose: [r.body["data"]["instance_id"] for r in receiver.accepted] for whose, receiver in receivers.items()
        }
        assert all(r.verified for receiver in receivers.values() for r in receiver.received)
    finally:
        for receiver in receivers.values():
            receiver.stop()
    assert got == {"rx1": [rx1], "rx2": [rx2], "deployment": [rx1, rx2]}


def test_an_event_of_no_organisation_goes_to_the_deployments_subscriptions_only(carepath: CarePath) -> None:
    # Every event in the catalogue is an instance's, and every instance has an organisation: this is the
    # documented rule for a step that names none (fail closed: no organisation's receiver gets it).
    deployment = subscribe_for(carepath, "https://ehr.example.org/hooks", None, ("instance.completed",))
    subscribe_for(carepath, "https://rx1.example.org/hooks", "rx1", ("instance.completed",))
    facts = StepFacts(
        "4d8b0e3c-0000-4000-8000-000000000001", "p", "v", START, [{"seq": 1, "type": "completed"}], None, None
    )
    with unit_of_work(carepath.sessions) as session:
        assert enqueue(session, [facts]) == 1
    assert [row.subscription_id for row in outbox(carepath)] == [deployment]


def test_the_command_line_adds_a_subscription_of_one_organisation(
    carepath: CarePath, test_settings: Settings, receiver: Receiver
) -> None:
    cli = _command_line(test_settings)
    refused = cli(["webhooks", "add", receiver.url, "--event", "all", "--organisation", "RX 1"])
    assert refused.exit_code == 2 and "--organisation" in refused.output
    added = cli(["webhooks", "add", receiver.url, "--event", "all", "--organisation", "rx1"])
    assert added.exit_code == 0 and "of organisation rx1" in added.output, added.output
    everyone = cli(["webhooks", "add", receiver.url, "--event", "all"])
    assert everyone.exit_code == 0 and "of the deployment" in everyone.output, everyone.output
    listed = [line.split()[3] for line in cli(["webhooks", "list"]).stdout.splitlines()]
    assert listed == ["rx1", "*"]
    with read_only(carepath.sessions) as session:
        assert [s.organisation for s in list_subscriptions(session)] == ["rx1", None]
    missing = cli(["webhooks", "dead-letters", "--subscription", "whsub_0000000000000000"])
    assert missing.exit_code == 1 and "no webhook subscription" in missing.output


def test_revision_0031_keeps_existing_subscriptions_the_deployments_and_a_downgrade_stops_an_organisations(
    carepath: CarePath, clock: ManualClock
) -> None:
    """Upgrading: a subscription stored before is the deployment's (every organisation's events). Downgrading
    would widen an organisation's subscription to every organisation's events: it is stopped instead."""
    deployment = subscribe_for(carepath, "https://ehr.example.org/hooks", None)
    rx1 = subscribe_for(carepath, "https://rx1.example.org/hooks", "rx1")
    carepath.instances.start("test_careplan", "SYN-MIG-1", "system:ehr", {"age": 54}, organisation="rx1")
    url = carepath.settings.database_url
    carepath.close()
    command.downgrade(alembic_config(url), "0030")
    before = CarePath(carepath.settings, clock, upgrade=False)
    try:
        with before.db.connect() as connection:
            removed = dict(connection.execute(text("SELECT id, removed_at FROM webhook_subscriptions")).all())
            statuses = dict(connection.execute(text("SELECT subscription_id, status FROM webhook_deliveries")).all())
    finally:
        before.close()
    assert removed[deployment] is None and removed[rx1] is not None
    assert statuses == {deployment: "pending", rx1: "cancelled"}
    upgrade_schema(url)
    upgraded = CarePath(carepath.settings, clock)
    try:
        with read_only(upgraded.sessions) as session:
            assert [(s.id, s.organisation) for s in list_subscriptions(session)] == [(deployment, None)]
        rx2 = upgraded.instances.start("test_careplan", "SYN-MIG-2", "system:ehr", {"age": 54}, organisation="rx2")
        assert [row.subscription_id for row in outbox(upgraded) if row.instance_id == rx2.id] == [deployment]
    finally:
        upgraded.close()
