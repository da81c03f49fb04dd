"""A supervisor hears from a running worker: systemd's notification socket and a heartbeat file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from api.supervision import Heartbeat


def test_heartbeat_tells_systemd_and_touches_the_file(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(5)
        beat_file = tmp_path / "worker.alive"
        heartbeat = Heartbeat(beat_file, notify_socket=address)
        heartbeat.ready()
        assert listener.recv(100) == b"READY=1"
        assert listener.recv(100) == b"WATCHDOG=1"
        assert beat_file.exists()
        os.utime(beat_file, (0, 0))
        heartbeat.beat()  # within a second of the last: not sent again
        assert beat_file.stat().st_mtime == 0
        heartbeat.beat(force=True)
        assert listener.recv(100) == b"WATCHDOG=1"
        assert beat_file.stat().st_mtime > 0
        heartbeat.stopping()
        assert listener.recv(100) == b"STOPPING=1"


def test_a_supervisor_that_cannot_be_told_does_not_stop_the_work(tmp_path: Path) -> None:
    heartbeat = Heartbeat(tmp_path / "missing-folder" / "alive", notify_socket=str(tmp_path / "nobody.sock"))
    heartbeat.ready()
    heartbeat.beat(force=True)
    heartbeat.stopping()
