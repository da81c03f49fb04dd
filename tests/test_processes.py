"""Shares run in spawned processes (engine.processes): results by share, progress, a failure, a death."""

from __future__ import annotations

import os
from typing import Any

import pytest

from engine.processes import ShareFailed, run_shares


def _count(share: int, upto: int, messages: Any) -> None:
    for done in range(1, upto + 1):
        messages.put(("progress", share, done))
    messages.put(("done", share, {"share": share, "pid": os.getpid(), "sum": sum(range(upto + 1))}))


def _fail_or_count(share: int, messages: Any) -> None:
    if share == 1:
        messages.put(("failed", share, "ValueError"))
        return
    _count(share, 3, messages)


def _die_or_wait(share: int, messages: Any) -> None:
    if share == 0:
        os._exit(7)  # no word on the queue: as a process killed by the kernel
    messages.get(timeout=60)  # never answered: stopped by the caller once share 0 is found dead


def test_each_share_runs_in_a_process_of_its_own_and_its_result_comes_back_by_its_index() -> None:
    seen: list[dict[int, int]] = []
    results = run_shares(
        _count, [(0, 5), (1, 10), (2, 1)], name="test-count", progress=lambda latest: seen.append(dict(latest))
    )
    assert {k: r["sum"] for k, r in results.items()} == {0: 15, 1: 55, 2: 1}
    assert len({r["pid"] for r in results.values()} | {os.getpid()}) == 4
    assert seen[-1] == {0: 5, 1: 10, 2: 1}  # the latest progress of every share
    assert len(seen) == 16


def test_a_share_that_fails_stops_the_run_and_is_named_with_its_text() -> None:
    with pytest.raises(ShareFailed) as failed:
        run_shares(_fail_or_count, [(0,), (1,), (2,)], name="test-fail")
    assert (failed.value.share, failed.value.count, failed.value.reason) == (1, 3, "ValueError")
    assert failed.value.exitcode is None


def test_a_share_whose_process_dies_without_a_word_stops_the_others() -> None:
    with pytest.raises(ShareFailed) as failed:
        run_shares(_die_or_wait, [(0,), (1,)], name="test-die")
    assert (failed.value.share, failed.value.exitcode, failed.value.reason) == (0, 7, None)
    assert str(failed.value) == "died (exit code 7)"
