"""Where a webhook may send (SSRF): THE address rule, checked at ``POST /webhooks`` and
again on the resolved address of every delivery (a name may resolve elsewhere later).

* Always refused: link-local addresses (169.254.0.0/16, fe80::/10) and the cloud
  metadata services (169.254.169.254, 100.100.100.200, fd00:ec2::254, and names such as
  ``metadata.google.internal``).
* Refused unless the server runs with ``--allow-private-webhooks``
  (``TRACKER_ALLOW_PRIVATE_WEBHOOKS=true``): loopback, private and shared ranges
  (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), the unspecified address,
  multicast, reserved and every other address that is not globally routable.

An IPv4 address inside IPv6 (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``) is judged as
the IPv4 address. Deliveries connect to the address that was checked
(:class:`CheckedTransport`), so a name cannot be re-resolved elsewhere between the check
and the connection (DNS rebinding); the transport also reads at most
``MAX_ANSWER_BYTES`` of an answer (only an excerpt is kept).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names of metadata services, refused before any lookup (they resolve only in the cloud).
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
#: An answer is read up to this many bytes; the rest is never downloaded.
MAX_ANSWER_BYTES = 64 * 1024


class RefusedTarget(Exception):
    """A webhook's address that the rule refuses; the message says which and why."""


class UnresolvedTarget(Exception):
    """A webhook's host name that does not resolve (now)."""


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _always_refused(address: IPAddress) -> str | None:
    metadata = address in METADATA_ADDRESSES
    if address.is_link_local:
        return "a link-local address" + (" (a cloud metadata service)" if metadata else "")
    return "a cloud metadata address" if metadata else None


def _private_kind(address: IPAddress) -> str | None:
    checks = (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private or address in _SHARED),
    )
    for kind, matches in checks:
        if matches:
            return kind
    return None if address.is_global else "not a public address"


def _kind_refused(address: str, *, allow_private: bool) -> str | None:
    parsed = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0
    judged = _embedded_ipv4(parsed)
    why = _always_refused(judged)
    if why is None and not allow_private:
        why = _private_kind(judged)
        if why is not None:
            why += " (allowed with --allow-private-webhooks)"
    return why


def refusal(address: str, *, allow_private: bool) -> str | None:
    """Why a webhook may not send to this IP address (``None``: it may)."""
    why = _kind_refused(address, allow_private=allow_private)
    return None if why is None else f"refused: {address} is {why}"


def check_name(host: str) -> None:
    """Refuse a metadata service's name before it is looked up."""
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES:
        raise RefusedTarget(f"refused: {host} is a cloud metadata service")


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP address is itself), in resolver order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedTarget(f"{host} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _check_literal(host: str, *, allow_private: bool) -> None:
    """An IP address written in the URL is judged as written, even if it cannot be
    resolved here (``fe80::1%eth0`` on a host without ``eth0``)."""
    try:
        why = refusal(host, allow_private=allow_private)
    except ValueError:  # a name
        return
    if why is not None:
        raise RefusedTarget(why)


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host`` once every one passed the rule (one refused address
    refuses the host: a name must not point at both a public and an internal address)."""
    check_name(host)
    _check_literal(host, allow_private=allow_private)
    addresses = resolve(host, port)
    for address in addresses:
        why = _kind_refused(address, allow_private=allow_private)
        if why is not None and address == host:
            raise RefusedTarget(f"refused: {address} is {why}")
        if why is not None:
            raise RefusedTarget(f"refused: {host} resolves to {address}, {why}")
    return addresses


def check_url(url: str, *, allow_private: bool) -> list[str]:
    """The checked addresses of a webhook URL's host (see :func:`checked_addresses`)."""
    try:
        parts = httpx.URL(url)
        host, port = parts.host, parts.port or (443 if parts.scheme == "https" else 80)
    except (httpx.InvalidURL, UnicodeError) as exc:  # UnicodeError: a bad IDNA name
        raise RefusedTarget(f"refused: {url[:100]!r} cannot be sent to: {exc}") from None
    return checked_addresses(host, port, allow_private=allow_private)


# ------------------------------------------------------------------ the transport
class _CheckedBackend(httpcore.NetworkBackend):
    """Connects only to an address that passed the rule, the one it checked."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve, check every address, connect to the first that answers."""
        try:
            addresses = checked_addresses(host, port, allow_private=self.allow_private)
        except UnresolvedTarget as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Never: a webhook is a TCP receiver."""
        raise RefusedTarget("refused: a webhook cannot use a unix socket")

    def sleep(self, seconds: float) -> None:
        """As the default backend sleeps."""
        self._inner.sleep(seconds)


class _CappedStream(httpx.SyncByteStream):
    """The first ``limit`` bytes of an answer; the rest is never read."""

    def __init__(self, stream: httpx.SyncByteStream, limit: int) -> None:
        self._stream, self._limit = stream, limit

    def __iter__(self) -> Iterator[bytes]:
        left = self._limit
        for chunk in self._stream:
            if left <= 0:
                break
            yield chunk[:left]
            left -= len(chunk)

    def close(self) -> None:
        """Close the answer (a connection left mid-answer is not reused)."""
        self._stream.close()


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport, connecting only to checked addresses (no proxy: the address
    checked must be the one connected to), reading at most ``max_answer_bytes``."""

    def __init__(self, *, allow_private: bool, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_CheckedBackend(allow_private=allow_private),
        )
        self.max_answer_bytes = max_answer_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the checked pool; the answer capped."""
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self.max_answer_bytes),
            extensions=response.extensions,
        )
