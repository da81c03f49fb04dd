"""Where webhooks may be sent: public addresses only, unless the deployment says otherwise.

A webhook URL is chosen by whoever holds the admin role, and the worker POSTs to it from inside the
hospital network. Without a check, a subscription to ``http://169.254.169.254/`` (a cloud metadata
service), ``http://127.0.0.1:5432/`` or an intranet host would make CarePath a proxy into places its
admin cannot otherwise reach (server-side request forgery). So:

* a URL whose host is an address literal (or ``localhost``) outside the public internet is refused
  when the subscription is made, with a located problem;
* at every delivery the host name is resolved, and the attempt fails (``address-not-allowed``,
  retried and in the end dead-lettered like any other failure) if any address it resolves to is not
  public. The connection then goes to the address that was checked, never to a second lookup, so a
  name that answers differently the second time (DNS rebinding) gains nothing.

"Public" is :attr:`ipaddress.IPv4Address.is_global` (and the IPv6 equivalent): loopback, private
ranges, link-local, carrier-grade NAT, multicast and reserved addresses are not, nor IPv6 site-local
``fec0::/10``. An IPv6 address that carries an IPv4 address is judged by the IPv4 address it carries:
IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, 6to4 ``2002::/16`` and NAT64 ``64:ff9b::/96``
(a NAT64 gateway would forward ``64:ff9b::a9fe:a9fe`` to 169.254.169.254). The local-use NAT64 prefix
``64:ff9b:1::/48`` is not public at all: where it carries the IPv4 address depends on the prefix
length the site chose. Host names that ``inet_aton`` reads as IPv4 addresses (``127.1``,
``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``0``) are address literals too.

**Time.** Each attempt has one deadline, the delivery timeout, for all of it: connecting, the TLS
handshake, sending the request, and reading the status line, the headers and the first
:data:`_MAX_ANSWER_BYTES` of the body. Before every socket operation the socket's timeout is set to
the time left, and once none is left the attempt fails (:class:`DeadlineExceededError`), so a
receiver that answers a byte every few seconds cannot hold the worker (timers, escalations, its
heartbeat) beyond it. The host name lookups (the receiver's, or the proxy's) are the system
resolver's, which no timeout of ours reaches: each runs on a thread of its own that the attempt waits
for only until its deadline. A lookup still running then is left to end by the resolver's own
timeouts (its answer unused); at most :data:`_MAX_PENDING_LOOKUPS` run at once, and an attempt that
finds them all still running waits for one, within its deadline, like any other.

A deployment whose receivers sit on its own network (the usual case inside a hospital, and every
developer's machine) says so with ``CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1``; its egress should
then be limited by the network (docs/webhooks.md). When the environment names an HTTP(S) proxy for
the URL, the request goes through it as before: the proxy is the deployment's egress control, and
the literal-address check still applies.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "AddressNotAllowedError",
    "DeadlineExceededError",
    "GuardedTransport",
    "UnusableURLError",
    "literal_host_problem",
    "public_address",
    "url_characters_problem",
]

_MAX_ANSWER_BYTES = 64 * 1024  # read (and dropped) so the connection closes cleanly
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

Resolver = Callable[[str, int], list[str]]
_T = TypeVar("_T")
# Host name lookups left running past their attempt's deadline (a resolver that does not answer): each
# holds a thread until the resolver gives up, so their number is bounded.
_MAX_PENDING_LOOKUPS = 8
_pending_lookups = threading.BoundedSemaphore(_MAX_PENDING_LOOKUPS)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressNotAllowedError(OSError):
    """The receiver's host resolves to an address outside the public internet (a failed attempt)."""


class DeadlineExceededError(TimeoutError):
    """The attempt ran past its deadline (the delivery timeout) before the whole answer came."""


class UnusableURLError(OSError):
    """The subscription's URL cannot be sent as it is (characters outside printable ASCII): a failed
    attempt. Subscriptions made now cannot have such a URL (:func:`url_characters_problem`)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def public_address(address: str) -> bool:
    """Whether ``address`` (an IPv4 or IPv6 literal) is on the public internet; an IPv6 address that
    carries an IPv4 address is judged by that IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return public_address(str(embedded))
    return ip.is_global and not ip.is_multicast


def _address_literal(name: str) -> str | None:
    """``name`` as an address, if it is one: an IP literal, or a form ``inet_aton`` (and so the
    system resolver) reads as an IPv4 address (``127.1``, ``0x7f000001``, ``2130706433``)."""
    try:
        return str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        pass
    if not name or not name.isascii() or not all(c.isalnum() or c == "." for c in name):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except OSError:
        return None


def url_characters_problem(url: str) -> str | None:
    """Why ``url`` cannot be sent as it is: a control character, a space, or a character outside
    ASCII (a path or query must be percent-encoded, a host name given in its ``xn--`` form)."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    if not url.isascii():
        return "must be ASCII: percent-encode the path and query, give a host name in its xn-- (punycode) form"
    return None


def literal_host_problem(host: str) -> str | None:
    """Why a URL's ``host`` may not receive webhooks, when that can be told without a lookup: an
    address literal outside the public internet, or a name for this machine. None otherwise."""
    name = host.strip("[]").rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return "must not name this machine (set CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1 for a local receiver)"
    address = _address_literal(name)
    if address is None:
        return None  # a host name: judged by what it resolves to at each delivery
    if not public_address(address):
        return (
            "must not be a private, loopback or link-local address "
            "(set CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1 for receivers on the deployment's own network)"
        )
    return None


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class _Deadline:
    """The moment an attempt must be over by; :meth:`left` is the time until then."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left. Raises DeadlineExceededError when none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError("the attempt ran past its deadline")
        return left


def _looked_up(lookup: Callable[[], _T], deadline: _Deadline) -> _T:
    """What ``lookup`` (a host name lookup, which no socket timeout bounds) returns, run on a thread of
    its own and waited for until ``deadline``; past it the thread is left to finish on its own.

    Raises:
        DeadlineExceededError: the deadline passed first (or while :data:`_MAX_PENDING_LOOKUPS` were
            already running).
        Exception: what ``lookup`` raised (e.g. ``socket.gaierror``).
    """
    if not _pending_lookups.acquire(timeout=deadline.left()):
        raise DeadlineExceededError("the attempt ran past its deadline waiting for a host name lookup")
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, lookup()))
        except Exception as exc:  # noqa: BLE001 - raised again on the attempt's thread
            outcome.append((False, exc))
        finally:
            _pending_lookups.release()
            done.set()

    threading.Thread(target=run, name="carepath-webhook-lookup", daemon=True).start()
    if not done.wait(deadline.left()):
        raise DeadlineExceededError("the host name lookup ran past the attempt's deadline")
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    result: _T = value
    return result


@contextlib.contextmanager
def _overrun() -> Iterator[None]:
    """A socket operation that timed out used up the time left: the deadline passed."""
    try:
        yield
    except TimeoutError as exc:
        if isinstance(exc, DeadlineExceededError):
            raise
        raise DeadlineExceededError("the attempt ran past its deadline") from exc


class _DeadlineSocket:
    """A connected socket (plain or TLS) whose every operation ends by the deadline: its timeout is
    set to the time left before each one. What http.client uses of a socket, nothing more; like a
    socket, it stays open while a reader made by :meth:`makefile` is (urllib closes the connection
    and goes on reading the answer)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self.readers = 0
        self.closed = False

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            self.sock.settimeout(self.deadline.left())
            with _overrun():
                sent = self.sock.send(view[:65536])
            view = view[sent:]

    def recv_into(self, buffer: Any) -> int:
        self.sock.settimeout(self.deadline.left())
        with _overrun():
            return self.sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only reading is supported")
        self.readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.closed = True
        if self.readers == 0:
            self.sock.close()

    def reader_closed(self) -> None:
        self.readers -= 1
        if self.closed and self.readers == 0:
            self.sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self.sock.reader_closed()
        super().close()


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    """A TCP connection to ``host`` (an address, or the proxy's name), each address tried in the time left."""
    failure: OSError = OSError("the host name has no address")
    found = _looked_up(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), deadline)
    for family, kind, proto, _name, target in found:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            with _overrun():
                sock.connect(target)
            return sock
        except OSError as exc:
            sock.close()
            if isinstance(exc, DeadlineExceededError):
                raise
            failure = exc
    raise failure


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection under one deadline; to ``address`` (the one checked) when given, else to ``host``."""

    def __init__(
        self, host: str, port: int | None = None, *, deadline: _Deadline, address: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.pop("timeout", None)
        super().__init__(host, port, timeout=deadline.left(), **kwargs)
        self.deadline = deadline
        self.address = address
        self._create_connection = self._deadline_connection

    def _deadline_connection(self, target: tuple[str, int], *_args: Any) -> _DeadlineSocket:
        return _DeadlineSocket(_connect(self.address or target[0], target[1], self.deadline), self.deadline)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection):
    """TLS under the same deadline, the certificate checked against the URL's host name (through a
    proxy's tunnel too). The handshake has the time left as its whole budget."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int | None = None, *, context: ssl.SSLContext | None = None, **kwargs: Any):
        super().__init__(host, port, **kwargs)
        self.tls = context or ssl.create_default_context()

    def connect(self) -> None:
        super().connect()  # TCP, and the proxy's CONNECT tunnel when there is one
        plain = self.sock
        assert isinstance(plain, _DeadlineSocket)
        plain.sock.settimeout(self.deadline.left())
        with _overrun():
            wrapped = self.tls.wrap_socket(plain.sock, server_hostname=getattr(self, "_tunnel_host", None) or self.host)
        self.sock = _DeadlineSocket(wrapped, self.deadline)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=self.deadline), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_DeadlineHTTPSConnection, deadline=self.deadline), req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer like any other non-2xx: the attempt failed


class GuardedTransport:
    """POSTs a webhook: one deadline for the whole attempt, no redirects, public receivers only
    unless ``allow_private``; through the environment's proxy when one is set for the URL.

    ``resolver`` (host, port) -> addresses is the system's unless a test gives one.
    """

    def __init__(
        self, *, allow_private: bool = False, resolver: Resolver | None = None, proxies: Mapping[str, str] | None = None
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or _resolve
        self.proxies = dict(urllib.request.getproxies() if proxies is None else proxies)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """Send one POST and read its answer, all within ``timeout`` seconds; the HTTP status.

        Raises:
            UnusableURLError: the URL holds characters that cannot be sent (non-ASCII, controls).
            AddressNotAllowedError: the host is (or resolves to) an address that is not allowed.
            DeadlineExceededError, OSError, http.client.HTTPException: no status (or not the
                answer's first bytes) came back within the timeout.
        """
        if url_characters_problem(url) is not None:
            raise UnusableURLError("the receiver's URL holds characters that cannot be sent")
        deadline = _Deadline(timeout)
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not self.allow_private and literal_host_problem(host) is not None:
            raise AddressNotAllowedError("the receiver's address is not allowed")
        if parts.scheme in self.proxies and not urllib.request.proxy_bypass(host):
            return self._post_by_proxy(url, body, headers, deadline)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._address(host, port, deadline)
        kind = _DeadlineHTTPSConnection if parts.scheme == "https" else _DeadlineHTTPConnection
        connection = kind(host, port, deadline=deadline, address=address)
        try:
            path = parts.path or "/"
            connection.request(
                "POST", path + (f"?{parts.query}" if parts.query else ""), body=body, headers=dict(headers)
            )
            answer = connection.getresponse()
            answer.read(_MAX_ANSWER_BYTES)
            return int(answer.status)
        finally:
            connection.close()

    def _address(self, host: str, port: int, deadline: _Deadline) -> str:
        addresses = _looked_up(lambda: self.resolver(host, port), deadline)
        if not addresses:
            raise OSError("the receiver's host name has no address")
        if not self.allow_private and not all(public_address(a) for a in addresses):
            raise AddressNotAllowedError("the receiver's host resolves to an address that is not allowed")
        return addresses[0]

    def _post_by_proxy(self, url: str, body: bytes, headers: Mapping[str, str], deadline: _Deadline) -> int:
        opener = urllib.request.build_opener(
            _NoRedirects(),
            urllib.request.ProxyHandler(self.proxies),
            _DeadlineHTTPHandler(deadline),
            _DeadlineHTTPSHandler(deadline),
        )
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with opener.open(request, timeout=deadline.left()) as answer:
                answer.read(_MAX_ANSWER_BYTES)
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, OSError):
                raise exc.reason from exc  # the cause's type is what the delivery records (a timeout, a refusal)
            raise
