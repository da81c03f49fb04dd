"""Telling a supervisor that a long-running CarePath process is alive (docs/operations.md).

Two forms, both optional: systemd's notification protocol (``Type=notify`` with ``WatchdogSec=``:
systemd sets ``NOTIFY_SOCKET`` and restarts a process that stops sending ``WATCHDOG=1``), and a
heartbeat file whose modification time a health check compares with the clock (Docker's
HEALTHCHECK, a Kubernetes liveness probe, a cron job). Beats are sent at most once a second.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

__all__ = ["Heartbeat"]


class Heartbeat:
    """``ready`` once started, ``beat`` on every turn of the work loop, ``stopping`` at the end.

    Failures to notify are ignored: a supervisor that cannot be told must not stop the work.
    """

    def __init__(self, file: Path | None = None, notify_socket: str | None = None) -> None:
        self.file = file
        self.notify_socket = notify_socket if notify_socket is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._last = 0.0

    def ready(self) -> None:
        self._notify("READY=1")
        self.beat(force=True)

    def beat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        self._notify("WATCHDOG=1")
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.touch()

    def stopping(self) -> None:
        self._notify("STOPPING=1")

    def _notify(self, message: str) -> None:
        address = self.notify_socket
        if not address:
            return
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
