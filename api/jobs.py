"""Work a request starts and does not wait for: run on a thread of this process.

One object per app (``app.extensions["carepath.jobs"]``). A job's progress and result live in the
database (e.g. :mod:`engine.verifications`), not here, so any process can report on it; this only
runs it. ``wait`` lets a test or a graceful shutdown wait for the jobs started so far.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from engine.db.session import bounded_statements

__all__ = ["BackgroundJobs"]

_log = logging.getLogger("carepath.jobs")


class BackgroundJobs:
    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, name: str, work: Callable[[], object]) -> None:
        """Run ``work`` on a daemon thread; an exception it raises is logged by type only. A request's
        statement timeout does not apply to it (:func:`engine.db.session.bounded_statements`)."""

        def run() -> None:
            try:
                with bounded_statements(None):
                    work()
            except Exception as exc:  # noqa: BLE001 - a job's own failure is recorded by the job
                _log.error("background job %s failed: %s", name, type(exc).__name__)

        thread = threading.Thread(target=run, name=f"carepath-job-{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def wait(self) -> None:
        """Wait for every job started so far to end."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()
