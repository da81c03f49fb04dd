"""Work split into shares, each run in a process of its own, with progress and results gathered here.

Verifying every trail (``carepath audit verify --jobs N``, engine.verifications) and moving a
caseload to a new pathway version (``carepath migrate --jobs N``) cost the same per instance, and a
caseload of 100,000 goes about N times faster in N processes, one per core. Both start the processes
the same way and read what they say the same way, which is written once here:

* the processes are started afresh (``spawn``): nothing of the caller's threads, connections or
  locks is inherited, so a share opens its own database connections;
* each share's function is called as ``target(*args, messages)`` and says what happens by putting
  ``(kind, share, value)`` on ``messages``: ``"progress"`` any number of times, then ``"done"`` with
  its result, or ``"failed"`` with a text that carries no patient data (an error's type, or
  CarePath's own message);
* a process that fails, or dies without a word (killed, out of memory), stops the others; the
  caller gets :class:`ShareFailed` naming the share, and what the shares committed stays committed.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ShareFailed", "run_shares"]


class ShareFailed(Exception):
    """A share's process failed (``reason``: the text it sent) or died (``exitcode``); the others were
    stopped. ``share`` is its index in the shares (from 0), of ``count``."""

    def __init__(self, share: int, count: int, *, reason: str | None = None, exitcode: int | None = None) -> None:
        super().__init__(reason if reason is not None else f"died (exit code {exitcode})")
        self.share, self.count, self.reason, self.exitcode = share, count, reason, exitcode


def run_shares(
    target: Callable[..., None],
    shares: Sequence[tuple[Any, ...]],
    *,
    name: str,
    progress: Callable[[dict[int, Any]], None] | None = None,
) -> dict[int, Any]:
    """Run ``target(*shares[k], messages)`` in one spawned process per share and return each share's
    result (what it put as ``"done"``), by the share's index in ``shares``.

    ``progress`` is called with the latest ``"progress"`` value of every share that sent one, each time
    one arrives. ``name``: the processes' names are ``{name}-{k}-of-{n}`` (k from 1).

    Raises:
        ShareFailed: a share failed or its process died; every other process is stopped first.
    """
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    count = len(shares)
    processes = [
        context.Process(target=target, daemon=True, name=f"{name}-{k + 1}-of-{count}", args=(*arguments, messages))
        for k, arguments in enumerate(shares)
    ]
    try:
        for process in processes:
            process.start()
        return _gather(processes, messages, progress)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _gather(processes: list[Any], messages: Any, progress: Callable[[dict[int, Any]], None] | None) -> dict[int, Any]:
    """Raises: ShareFailed."""
    count = len(processes)
    latest: dict[int, Any] = {}
    results: dict[int, Any] = {}
    while len(results) < count:
        try:
            kind, share, value = messages.get(timeout=1.0)
        except queue.Empty:
            for k, process in enumerate(processes):
                if k not in results and process.exitcode not in (None, 0):
                    raise ShareFailed(k, count, exitcode=process.exitcode) from None
            continue
        if kind == "failed":
            raise ShareFailed(share, count, reason=str(value))
        if kind == "done":
            results[share] = value
            continue
        latest[share] = value
        if progress is not None:
            progress(latest)
    return results
