"""Webhooks go to public receivers only, unless the deployment allows its own network
(engine.webhooks.network): literal addresses are refused at subscription, names are checked at
every delivery, and the connection goes to the address that was checked."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from webhook_receiver import Dripper, Receiver

from engine import CarePath, Settings
from engine.db.session import unit_of_work
from engine.errors import InvalidInputError
from engine.webhooks import AddressNotAllowedError, GuardedTransport, RetryPolicy, add_subscription
from engine.webhooks.network import DeadlineExceededError, UnusableURLError, literal_host_problem, public_address

SIGNED = {"content-type": "application/json"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    try:
        yield found
    finally:
        found.stop()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.7",
        "172.16.4.1",
        "192.168.1.20",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "[::1]",
        "fd00::5",
        "fe80::1",
        "::ffff:127.0.0.1",
        "[::ffff:169.254.169.254]",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
    ],
)
def test_addresses_inside_any_network_are_refused_by_their_literal(host: str) -> None:
    assert literal_host_problem(host) is not None


@pytest.mark.parametrize(
    "host", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "ehr.example.org", "localhost.example.org"]
)
def test_public_addresses_and_host_names_pass_the_literal_check(host: str) -> None:
    assert literal_host_problem(host) is None


def test_public_address_judges_ipv4_mapped_addresses_by_the_ipv4_they_carry() -> None:
    assert public_address("::ffff:8.8.8.8") and not public_address("::ffff:10.0.0.1")


def test_a_subscription_to_a_private_address_is_refused_unless_the_deployment_allows_it(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        add_subscription(session, "http://169.254.169.254/latest/meta-data/", ["task.ready"], carepath.clock)
    assert [p.field for p in refused.value.problems] == ["/url"]
    with unit_of_work(carepath.sessions) as session:
        info, _ = add_subscription(
            session, "http://10.20.0.4/hooks", ["task.ready"], carepath.clock, allow_private_networks=True
        )
    assert info.url == "http://10.20.0.4/hooks"


def test_a_name_that_resolves_inside_the_network_is_not_sent_to(receiver: Receiver) -> None:
    looked_up: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["93.184.216.34", "127.0.0.1"]  # one public answer is not enough: every answer must be

    with pytest.raises(AddressNotAllowedError):
        GuardedTransport(resolver=rebinding, proxies={}).post("http://ehr.example.org/hooks", b"{}", SIGNED, 2)
    with pytest.raises(AddressNotAllowedError):
        GuardedTransport(proxies={}).post(receiver.url, b"{}", SIGNED, 2)  # a literal needs no lookup
    assert looked_up == ["ehr.example.org"] and receiver.received == []


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(receiver: Receiver) -> None:
    answers = iter([["127.0.0.1"]])  # a second lookup would raise StopIteration
    port = receiver.url.split(":")[2].split("/")[0]
    transport = GuardedTransport(allow_private=True, resolver=lambda host, p: next(answers), proxies={})
    status = transport.post(f"http://receiver.invalid:{port}/hooks?x=1", b'{"a": 1}', SIGNED, 5)
    assert status == 401  # reached the receiver, which refused the (absent) signature
    assert [r.body for r in receiver.received] == [{"a": 1}]


def test_a_configured_proxy_carries_the_request(receiver: Receiver) -> None:
    proxy = receiver.url.rsplit("/", 1)[0]  # the test receiver answers whatever path it is sent
    transport = GuardedTransport(proxies={"http": proxy}, resolver=lambda host, port: ["10.9.9.9"])
    assert transport.post("http://ehr.example.org/hooks", b'{"b": 2}', SIGNED, 5) == 401
    assert [r.body for r in receiver.received] == [{"b": 2}]


def test_the_setting_is_read_from_the_environment() -> None:
    assert Settings.from_env({"CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1"}).webhook_allow_private_networks
    assert not Settings.from_env({}).webhook_allow_private_networks


# --- one deadline for the whole attempt --------------------------------------------------------


def _post_in_the_background(transport: GuardedTransport, url: str, timeout: float) -> tuple[threading.Thread, list]:
    outcome: list[object] = []

    def post() -> None:
        try:
            outcome.append(transport.post(url, b"{}", SIGNED, timeout))
        except Exception as exc:  # noqa: BLE001 - what the attempt came to is the test's to judge
            outcome.append(exc)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, outcome


DRIPS = {
    "the status line": b"",
    "the headers": b"HTTP/1.1 200 OK\r\n",
    "the body": b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n",
    "a chunked body": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n100000\r\n",
}


@pytest.mark.parametrize("what", list(DRIPS))
@pytest.mark.parametrize("by_proxy", [False, True], ids=["direct", "by-proxy"])
def test_a_receiver_that_drips_its_answer_cannot_hold_the_attempt_past_its_deadline(what: str, by_proxy: bool) -> None:
    # A byte every 0.2 s keeps each read under a 1 s per-read timeout; only a deadline for the whole
    # attempt ends it. The join is a bound, not a measure: the attempt must have returned by then.
    dripper = Dripper(prefix=DRIPS[what]).start()
    try:
        if by_proxy:
            transport = GuardedTransport(proxies={"http": dripper.url.rsplit("/", 1)[0]})
            url = "http://ehr.example.org/hooks"
        else:
            transport, url = GuardedTransport(allow_private=True, proxies={}), dripper.url
        thread, outcome = _post_in_the_background(transport, url, timeout=1.0)
        thread.join(timeout=10)
        assert not thread.is_alive(), f"the attempt was still reading {what} long after its deadline"
        assert len(outcome) == 1 and isinstance(outcome[0], DeadlineExceededError)
    finally:
        dripper.stop()


@pytest.mark.parametrize("by_proxy", [False, True], ids=["receiver", "proxy"])
def test_a_resolver_that_does_not_answer_cannot_hold_the_attempt_past_its_deadline(
    by_proxy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system resolver has no timeout of ours: before, the attempt waited as long as getaddrinfo did.
    # Here it would wait 30 s (until the test lets it go); the attempt must fail at its 0.5 s deadline.
    released = threading.Event()
    real = socket.getaddrinfo

    def silent(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith("example.org"):
            released.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    if by_proxy:
        transport = GuardedTransport(proxies={"http": "http://proxy.example.org:3128"})
    else:
        transport = GuardedTransport(proxies={})
    try:
        thread, outcome = _post_in_the_background(transport, "http://ehr.example.org/hooks", timeout=0.5)
        thread.join(timeout=5)
        assert not thread.is_alive(), "the attempt was still waiting for the resolver long after its deadline"
        assert len(outcome) == 1 and isinstance(outcome[0], DeadlineExceededError), outcome
    finally:
        released.set()


def test_a_lookup_that_fails_fails_the_attempt_with_the_resolvers_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(socket.gaierror):
        GuardedTransport(proxies={}).post("http://ehr.example.org/hooks", b"{}", SIGNED, 1.0)


def test_the_lease_outlasts_a_whole_batch_of_attempts_each_at_its_deadline() -> None:
    # A claim's deliveries are attempted one after another, each bounded by the timeout: the last
    # of a full batch must still be under its lease, or a second worker sends it at the same time.
    for policy in (RetryPolicy(), RetryPolicy(timeout_seconds=30, batch=5), RetryPolicy(timeout_seconds=1, batch=1)):
        assert policy.lease > timedelta(seconds=policy.batch * policy.timeout_seconds)


# --- URLs that cannot be sent ------------------------------------------------------------------

UNSENDABLE = [
    "https://ehr.example/hooks/f\u00f6r",
    "https://ehr.example/hooks?x=\u2028",
    "https://\u00fc.example/hooks",
]


@pytest.mark.parametrize("url", UNSENDABLE)
def test_a_url_outside_ascii_is_refused_when_the_subscription_is_made(carepath: CarePath, url: str) -> None:
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        add_subscription(session, url, ["task.ready"], carepath.clock, allow_private_networks=True)
    assert [p.field for p in refused.value.problems] == ["/url"]
    assert "ASCII" in refused.value.problems[0].message


def test_an_xn_host_and_a_percent_encoded_path_are_accepted(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        info, _ = add_subscription(session, "https://xn--tda.example/hooks/f%C3%B6r", ["task.ready"], carepath.clock)
    assert info.url == "https://xn--tda.example/hooks/f%C3%B6r"


@pytest.mark.parametrize("url", UNSENDABLE)
def test_an_unsendable_url_fails_the_attempt_cleanly(receiver: Receiver, url: str) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    transport = GuardedTransport(allow_private=True, resolver=lambda host, p: ["127.0.0.1"], proxies={})
    with pytest.raises(UnusableURLError):
        transport.post(url.replace("https://", "http://").replace(".example/", f".example:{port}/"), b"{}", SIGNED, 2)
    assert receiver.received == []


# --- addresses that carry another, and IPv4 literals in other spellings -------------------------

INTERNAL_IN_DISGUISE = [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::a00:1",  # local-use NAT64
    "::127.0.0.1",  # IPv4-compatible
    "[::a00:5]",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "fec0::1",  # site-local
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "0",
    "10.1",
    "0xa9.0xfe.0xa9.0xfe",
]


@pytest.mark.parametrize("host", INTERNAL_IN_DISGUISE)
def test_addresses_carried_in_other_forms_are_judged_by_what_they_reach(host: str) -> None:
    assert literal_host_problem(host) is not None


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:5db8:d822::1", "::ffff:8.8.8.8"])
def test_public_addresses_carried_in_other_forms_stay_public(address: str) -> None:
    assert public_address(address)


@pytest.mark.parametrize("host", INTERNAL_IN_DISGUISE)
def test_a_subscription_to_an_address_in_another_form_is_refused(carepath: CarePath, host: str) -> None:
    url = f"http://[{host.strip('[]')}]/hooks" if ":" in host else f"http://{host}/hooks"
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        add_subscription(session, url, ["task.ready"], carepath.clock)
    assert [p.field for p in refused.value.problems] == ["/url"]


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "::127.0.0.1", "2002:a00:1::1", "fec0::1"])
def test_a_name_that_resolves_to_an_address_in_another_form_is_not_sent_to(address: str) -> None:
    transport = GuardedTransport(resolver=lambda host, port: [address], proxies={})
    with pytest.raises(AddressNotAllowedError):
        transport.post("http://ehr.example.org/hooks", b"{}", SIGNED, 2)
