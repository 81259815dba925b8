"""Where webhooks may send (SSRF, targets.py): refused at POST /webhooks and again on the
resolved address of each delivery; the delivery connects to the address it checked; only
an excerpt of a receiver's answer is kept. Also POST /webhooks' Idempotency-Key."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tracker_server import targets
from tracker_server.clock import ManualClock
from tracker_server.dispatcher import MAX_ERROR_CHARS, Dispatcher
from tracker_server.settings import ServerSettings

from tests.server.helpers import API, assert_error, create_event
from tests.support.receivers import run_receiver
from tests.support.servers import run_server

pytestmark = pytest.mark.server

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "a link-local address (a cloud metadata service)"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("::ffff:169.254.169.254", "a link-local address (a cloud metadata service)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (a cloud metadata service)"),
    ],
)
def test_link_local_and_metadata_are_always_refused(address: str, kind: str) -> None:
    for allow_private in (False, True):
        assert targets.refusal(address, allow_private=allow_private) == (
            f"refused: {address} is {kind}"
        )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_private_addresses_need_the_option(address: str, kind: str) -> None:
    why = targets.refusal(address, allow_private=False)
    assert why is not None and kind in why and "--allow-private-webhooks" in why
    assert targets.refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert targets.refusal(address, allow_private=False) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost:9/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://metadata.google.internal/computeMetadata/v1", "cloud metadata service"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[fe80::1%25eth0]/", "is a link-local address"),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f.0.0.1/", "resolves to 127.0.0.1, a loopback address"),
        ("http://xn--/", "cannot be sent to"),
        ("http://[v1.x]/", "cannot be sent to"),
    ],
)
def test_post_webhooks_refuses_internal_targets(make_client: Any, url: str, fragment: str) -> None:
    client = make_client(allow_private_webhooks=False, webhook_dispatcher=False)
    body = {"url": url, "events": ["*"]}
    assert_error(client.post(f"{API}/webhooks", json=body), 400, 3, "url: refused: ", fragment)
    assert client.get(f"{API}/webhooks").json()["totalCount"] == 0


def test_the_option_allows_loopback_but_never_metadata(make_client: Any) -> None:
    client = make_client(allow_private_webhooks=True, webhook_dispatcher=False)
    ok = client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["*"]})
    assert ok.status_code == 201, ok.text
    metadata = {"url": "http://169.254.169.254/", "events": ["*"]}
    assert_error(client.post(f"{API}/webhooks", json=metadata), 400, 3, "link-local", "metadata")


def test_a_name_that_does_not_resolve_is_accepted(make_client: Any) -> None:
    client = make_client(allow_private_webhooks=False, webhook_dispatcher=False)
    body = {"url": "http://receiver.invalid/hook", "events": ["*"]}
    assert client.post(f"{API}/webhooks", json=body).status_code == 201


def _dispatcher(client: Any, **settings: Any) -> Dispatcher:
    """A second dispatcher on the app's database, with its own settings."""
    state = client.app.state
    merged = ServerSettings(database_url="sqlite://", **settings)
    return Dispatcher(state.database, state.clock, merged)


def test_a_delivery_to_a_refused_address_is_a_failed_attempt(make_client: Any) -> None:
    clock = ManualClock(START)
    # Subscribed while private targets were allowed; delivered by a server that refuses them.
    client = make_client(clock=clock, allow_private_webhooks=True, webhook_dispatcher=False)
    with run_receiver() as receiver:
        body = {"url": receiver.url + "/hook", "events": ["deployment.*"]}
        assert client.post(f"{API}/webhooks", json=body).status_code == 201
        create_event(client, status="start")
        strict = _dispatcher(client, allow_private_webhooks=False)
        try:
            assert strict.run_once() == 1
        finally:
            strict.stop()
        assert receiver.requests == []
    [delivery] = client.get(f"{API}/webhooks/deliveries").json()["deliveries"]
    assert delivery["state"] == "pending"
    assert delivery["attempts"] == 1
    assert delivery["responseCode"] is None
    assert delivery["error"].startswith("refused: 127.0.0.1 is a loopback address")


def test_the_connection_goes_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolved once, checked, and connected to by that address (the Host header
    stays the name): a second lookup could answer something else (DNS rebinding)."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "169.254.169.254"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with run_receiver() as receiver:
        url = f"http://rebind.test:{receiver.url.rsplit(':', 1)[1]}"
        for attempt in ("first", "second"):  # a new connection each time
            transport = targets.CheckedTransport(allow_private=True)
            with httpx.Client(transport=transport) as http:
                if attempt == "first":
                    assert http.post(f"{url}/hook", json={}).status_code == 200
                    continue
                with pytest.raises(
                    targets.RefusedTarget, match="resolves to 169.254.169.254, a link-l"
                ):
                    http.post(f"{url}/again", json={})
        [received] = receiver.requests
        assert received.headers["host"] == url.removeprefix("http://")


def test_only_an_excerpt_of_the_answer_is_kept(make_client: Any) -> None:
    clock = ManualClock(START)
    client = make_client(clock=clock, webhook_dispatcher=False)
    page = "<html>" + "x" * 200_000 + "</html>"
    with run_receiver(lambda _request: (500, {"page": page})) as receiver:
        body = {"url": receiver.url + "/hook", "events": ["deployment.*"]}
        assert client.post(f"{API}/webhooks", json=body).status_code == 201
        create_event(client, status="start")
        assert client.app.state.dispatcher.run_once() == 1
    [delivery] = client.get(f"{API}/webhooks/deliveries").json()["deliveries"]
    assert delivery["responseCode"] == 500
    assert delivery["error"].startswith('HTTP 500: {"page": "<html>xxx')
    assert len(delivery["error"]) <= MAX_ERROR_CHARS


def test_the_transport_reads_a_bounded_answer() -> None:
    big = "y" * (targets.MAX_ANSWER_BYTES * 3)
    transport = targets.CheckedTransport(allow_private=True)
    with (
        run_receiver(lambda _request: (200, big)) as receiver,
        httpx.Client(transport=transport) as http,
    ):
        assert len(http.get(receiver.url).content) == targets.MAX_ANSWER_BYTES


def test_post_webhooks_honours_the_idempotency_key(client: Any) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["deployment.*"], "secret": "k"}
    headers = {"Idempotency-Key": "hook-1"}
    first = client.post(f"{API}/webhooks", json=body, headers=headers)
    again = client.post(f"{API}/webhooks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert client.get(f"{API}/webhooks").json()["totalCount"] == 1
    other = {**body, "events": ["lock.*"]}
    assert_error(
        client.post(f"{API}/webhooks", json=other, headers=headers),
        400,
        3,
        "Idempotency-Key reused with a different request",
    )
    assert client.get(f"{API}/webhooks").json()["totalCount"] == 1


def test_the_serve_option_wins_over_its_variable(tmp_path: Any) -> None:
    """The real process: the variable off refuses loopback, the flag then allows it."""
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    off = {"TRACKER_ALLOW_PRIVATE_WEBHOOKS": "false"}
    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    with run_server(database_url, log_dir=tmp_path, env=off) as server:
        refused = httpx.post(f"{server.url}{API}/webhooks", json=hook)
        assert_error(refused, 400, 3, "127.0.0.1 is a loopback address", "--allow-private-webhooks")
    with run_server(
        database_url, log_dir=tmp_path, env=off, extra_args=["--allow-private-webhooks"]
    ) as server:
        assert httpx.post(f"{server.url}{API}/webhooks", json=hook).status_code == 201
