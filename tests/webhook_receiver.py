"""A local webhook receiver for the tests: a threading HTTP server on 127.0.0.1 that verifies every
request's Standard Webhooks signature with ``standardwebhooks.Webhook`` and notes what it got."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    message_id: str
    body: dict[str, Any]
    verified: bool


@dataclass
class Receiver:
    """``fail_next``: answer that many requests with 503; ``hold``: while set, the first request
    waits (``holding`` is set once it arrived) until ``release`` is set."""

    secret: str = ""
    fail_next: int = 0
    received: list[Received] = field(default_factory=list)  # every request, accepted or not
    accepted: list[Received] = field(default_factory=list)
    hold: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def handle(self, handler: BaseHTTPRequestHandler) -> int:
        raw = handler.rfile.read(int(handler.headers.get("content-length", "0")))
        headers = {name: value for name, value in handler.headers.items()}
        try:
            Webhook(self.secret).verify(raw, headers)
            verified = True
        except Exception:  # noqa: BLE001 - any verification failure is noted, not raised
            verified = False
        got = Received(headers.get("webhook-id", headers.get("Webhook-Id", "")), json.loads(raw), verified)
        with self.lock:
            self.received.append(got)
            first_held = self.hold and not self.holding.is_set()
            if first_held:
                self.holding.set()
        if first_held:
            self.release.wait(timeout=60)
            return 200
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503
            if not verified:
                return 401
            self.accepted.append(got)
        return 204

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                status = receiver.handle(self)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender went away (killed mid-delivery)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Dripper:
    """A receiver that never finishes answering: it reads the request, sends ``prefix``, then one
    byte every ``every`` seconds until the sender goes away or the test stops it."""

    prefix: bytes = b""
    every: float = 0.2
    stopped: threading.Event = field(default_factory=threading.Event)
    listener: socket.socket | None = None

    @property
    def url(self) -> str:
        assert self.listener is not None
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"

    def start(self) -> Dripper:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # to notice being stopped
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self.listener is not None
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # stopped
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(self.prefix)
                while not self.stopped.wait(self.every):
                    connection.sendall(b"X")
            except OSError:
                return  # the sender gave up

    def stop(self) -> None:
        self.stopped.set()
        if self.listener is not None:
            self.listener.close()
