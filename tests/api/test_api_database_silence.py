"""A PostgreSQL that stops answering -- a network partition, a proxy that drops what it is sent --
makes a request answer 503 within the statement timeout, never hang (docs/operations.md).

A TCP proxy of the test's own sits between the app and PostgreSQL; "frozen", it keeps accepting and
acknowledging what is sent and forwards nothing, so no TCP-level setting can notice: the client's own
bound on a round trip must. Small timeouts keep the test to a few seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_contract import make_token
from sqlalchemy.engine import make_url

from api import create_app
from engine import ManualClock

TESTS = Path(__file__).resolve().parent.parent


class SilentProxy:
    """Forwards TCP to ``target`` until frozen; frozen, it accepts and reads but forwards nothing."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # connected, then silence
            server = socket.create_connection(self.target)
            self.sockets.append(server)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.frozen.is_set():
                    continue  # dropped
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.closing.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def through_proxy(deployed_database_url: str) -> Iterator[tuple[str, SilentProxy]]:
    url = make_url(deployed_database_url)
    proxy = SilentProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


# The statement and round-trip bounds are PostgreSQL's (SQLite has its busy timeout).
@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)
def test_a_database_that_stops_answering_is_a_503_not_a_hang(
    through_proxy: tuple[str, SilentProxy], clock: ManualClock
) -> None:
    url, proxy = through_proxy
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            "FOUR_EYES": "off",
            "STATEMENT_TIMEOUT": 1,
            "DATABASE_CONNECT_TIMEOUT": 2,
        }
    )
    try:
        headers = {"Authorization": f"Bearer {make_token(app, 'system')}"}
        started = app.test_client().post(
            "/v1/instances", json={"pathway_id": "test_assessment", "patient_ref": "MRN-1"}, headers=headers
        )
        assert started.status_code == 201
        proxy.frozen.set()
        answers: list[Any] = []

        def read() -> None:
            answers.append(app.test_client().get(f"/v1/instances/{started.json['id']}", headers=headers))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)  # the bound is 1 + 5 s; without it, this waits for as long as TCP does (hours)
        assert not reader.is_alive(), "the request is still waiting for the database"
        assert answers[0].status_code == 503
        assert answers[0].headers["Retry-After"]
        assert answers[0].get_json()["type"].endswith("/database-unavailable")

        # The next request connects afresh: the connect timeout bounds it as well.
        again: list[Any] = []
        second = threading.Thread(
            target=lambda: again.append(app.test_client().get("/v1/instances", headers=headers)), daemon=True
        )
        second.start()
        second.join(30)
        assert not second.is_alive() and again[0].status_code == 503
    finally:
        proxy.frozen.clear()
        app.extensions["carepath"].close()
