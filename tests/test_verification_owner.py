"""A verification run that stalled and was taken over never overwrites the result of the run that took
it over: each run owns the job by a token the takeover clears, and writes only while it owns it."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import engine.verifications as verifications
from engine import CarePath, ManualClock


def test_a_stalled_run_does_not_overwrite_the_takeover(
    carepath: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        carepath.instances.start("test_assessment", f"MRN-{n}", "system:ehr")
    real = verifications.verify_every_trail
    stalled, release = threading.Event(), threading.Event()

    def stall_in_the_first_run(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "stalled-run":  # its connection hangs, then fails
            stalled.set()
            release.wait(30)
            raise OperationalError("SELECT", {}, Exception("connection lost"))
        return real(*args, **kwargs)

    monkeypatch.setattr(verifications, "verify_every_trail", stall_in_the_first_run)
    job = verifications.request_verification(carepath.sessions, "auditor", clock.now())
    first = threading.Thread(
        target=verifications.run_verification,
        args=(carepath.sessions, job.id, clock.now),
        name="stalled-run",
        daemon=True,
    )
    first.start()
    assert stalled.wait(30)
    clock.advance(verifications.ABANDONED_AFTER + timedelta(minutes=1))
    taken = verifications.claim_abandoned(carepath.sessions, clock.now())
    assert taken == job.id
    assert verifications.run_verification(carepath.sessions, job.id, clock.now).status == "verified"

    release.set()
    first.join(30)
    assert not first.is_alive()
    after = verifications.get_verification(carepath.sessions, job.id)
    assert (after.status, after.failure, after.instances_checked) == ("verified", None, 3)
    # A run of a job another run owns does nothing.
    assert verifications.run_verification(carepath.sessions, job.id, clock.now).status == "verified"
