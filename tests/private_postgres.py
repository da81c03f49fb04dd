"""PostgreSQL servers of a test's own: stopped, restarted or replicated at will.

The shared server of .ci/start-postgres serves other tests and other people's runs, so it is never
touched; a test that needs to stop a server, or a primary with a streaming replica, starts its own
here (Debian's postgresql-15, which .ci/start-postgres installs). Each lives in a temporary folder
outside pytest's (as root, that is closed to the postgres user) and is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

__all__ = ["PG_BIN", "PrivateServer", "private_server", "streaming_replica", "why_no_private_server"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@dataclass
class PrivateServer:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/carepath"

    def pg_ctl(self, *args: str) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} {_FAST}"
        as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.data / "server.log"),
                "-w",
                "-t",
                "60",
                *args,
                "-o",
                options,
            ]
        )

    def stop(self) -> None:
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop"])


def as_postgres(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    # Output to a file, not a pipe: the server inherits it and would keep a pipe open.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def why_no_private_server() -> str | None:
    """Why this machine cannot start a server of the test's own, or None when it can."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15's programs are not in {PG_BIN} (.ci/start-postgres installs them)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
        return "running as root, and there is no postgres user or runuser to start a server as"
    return None


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


@contextlib.contextmanager
def _folder(prefix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    data = folder / "data"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        for path in (folder, data):
            os.chown(path, _uid("postgres") or 0, -1)
    try:
        yield data
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A new PostgreSQL 15 with an empty ``carepath`` database (the caller checks
    :func:`why_no_private_server` first)."""
    with _folder("carepath-test-pg-") as data:
        as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        server = PrivateServer(data, free_port())
        server.pg_ctl("start")
        try:
            admin = create_engine(
                server.url.replace("/carepath", "/postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
            )
            with admin.connect() as connection:
                connection.execute(text("CREATE DATABASE carepath"))
            admin.dispose()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def streaming_replica(primary: PrivateServer) -> Iterator[PrivateServer]:
    """A hot standby of ``primary``, streaming its WAL (pg_basebackup -R: initdb's default pg_hba lets
    local replication connections in, and PostgreSQL 15's defaults have wal_level=replica)."""
    with _folder("carepath-test-replica-") as data:
        as_postgres(
            [
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ]
        )
        replica = PrivateServer(data, free_port())
        replica.pg_ctl("start")
        try:
            yield replica
        finally:
            replica.stop()
