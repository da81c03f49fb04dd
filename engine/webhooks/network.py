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

A deployment whose receivers sit on its own network (the usual case inside a hospital, and every
developer's machine) says so with ``CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1``; its egress should
then be limited by the network (docs/webhooks.md). When the environment names an HTTP(S) proxy for
the URL, the request goes through it as before: the proxy is the deployment's egress control, and
the literal-address check still applies.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AddressNotAllowedError", "GuardedTransport", "literal_host_problem", "public_address"]

_MAX_ANSWER_BYTES = 64 * 1024  # read (and dropped) so the connection closes cleanly
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

Resolver = Callable[[str, int], list[str]]


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressNotAllowedError(OSError):
    """The receiver's host resolves to an address outside the public internet (a failed attempt)."""


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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer like any other non-2xx: the attempt failed


class GuardedTransport:
    """POSTs a webhook: bounded timeout, no redirects, public receivers only unless
    ``allow_private``; through the environment's proxy when one is set for the URL.

    ``resolver`` (host, port) -> addresses is the system's unless a test gives one.
    """

    def __init__(
        self, *, allow_private: bool = False, resolver: Resolver | None = None, proxies: Mapping[str, str] | None = None
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or _resolve
        self.proxies = dict(urllib.request.getproxies() if proxies is None else proxies)
        self._opener = urllib.request.build_opener(_NoRedirects(), urllib.request.ProxyHandler(self.proxies))

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """Send one POST; the HTTP status.

        Raises:
            AddressNotAllowedError: the host is (or resolves to) an address that is not allowed.
            OSError, http.client.HTTPException: no status came back (timeouts included).
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not self.allow_private and literal_host_problem(host) is not None:
            raise AddressNotAllowedError("the receiver's address is not allowed")
        if parts.scheme in self.proxies and not urllib.request.proxy_bypass(host):
            return self._post_by_proxy(url, body, headers, timeout)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._address(host, port)
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = kind(host, port, address, timeout)
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

    def _address(self, host: str, port: int) -> str:
        addresses = self.resolver(host, port)
        if not addresses:
            raise OSError("the receiver's host name has no address")
        if not self.allow_private and not all(public_address(a) for a in addresses):
            raise AddressNotAllowedError("the receiver's host resolves to an address that is not allowed")
        return addresses[0]

    def _post_by_proxy(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                answer.read(_MAX_ANSWER_BYTES)
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
