"""Which destination URLs and addresses a webhook may go to.

In production a destination must be https, and neither its URL nor the addresses its host name
resolves to may be loopback, link-local (169.254.0.0/16, where cloud metadata services live),
private or otherwise not globally routable, unless the trust explicitly allows it
(``EXHALE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS``). The URL is checked when it is saved; the
resolved addresses are checked at every connection, and the connection goes to the address that
was checked, so a DNS answer that changes in between cannot redirect it. Redirects are never
followed, so a 3xx cannot lead anywhere either.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore

from app.config import Settings
from app.errors import FieldError, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class DestinationPolicy:
    require_https: bool
    allow_private: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> DestinationPolicy:
        allow = settings.delivery.allow_private_destinations
        return cls(
            require_https=settings.is_production,
            allow_private=(not settings.is_production) if allow is None else allow,
        )


class DestinationRefused(httpcore.ConnectError):
    """The destination's host resolves to an address the policy refuses; nothing was sent."""


def is_public_address(address: IPAddress) -> bool:
    """Globally routable and not multicast: no loopback, link-local, private or reserved."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def _url_error(message: str) -> InvalidInput:
    return InvalidInput("Check the destination URL.", fields=[FieldError("url", message)])


def check_destination_url(url: str, *, policy: DestinationPolicy) -> str:
    """The URL, stripped, if webhooks may be sent to it; otherwise InvalidInput naming the fix."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _url_error("give an absolute URL, for example https://receiver.example.nhs.uk/hook")
    if policy.require_https and parts.scheme != "https":
        raise _url_error("must be https in production")
    if parts.username is not None or parts.password is not None:
        raise _url_error("must not carry a user name or password; the signature authenticates")
    if parts.fragment:
        raise _url_error("must not have a #fragment")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise _url_error("the port must be a number from 1 to 65535") from None
    if not policy.allow_private and _names_a_private_host(parts.hostname):
        raise _url_error(
            "points at a loopback, link-local or private address, which production refuses; "
            "use the receiver's public name, or set EXHALE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS"
        )
    return url


def _names_a_private_host(hostname: str) -> bool:
    host = hostname.rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return not is_public_address(ipaddress.ip_address(host))
    except ValueError:
        return False  # a name: its addresses are checked at each connection


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host``, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise httpcore.ConnectError(f"cannot resolve the destination host: {error}") from None
    found: dict[IPAddress, None] = {}
    for info in infos:
        found[ipaddress.ip_address(str(info[4][0]).split("%")[0])] = None
    return list(found)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads and writes all end by one deadline (time.monotonic())."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error("the attempt's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(
            ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy allows, and ends the whole attempt by ``deadline``.

    The host name is resolved here and the connection made to the checked address; TLS still
    verifies the certificate against the host name (httpcore passes it as server_hostname).
    """

    def __init__(self, *, allow_private: bool, deadline: float) -> None:
        self._allow_private = allow_private
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        if not self._allow_private:
            refused = [a for a in addresses if not is_public_address(a)]
            if refused:
                raise DestinationRefused(
                    "the destination host resolves to a loopback, link-local or private address, "
                    "which production refuses"
                )
        error: Exception = httpcore.ConnectError("the destination host has no address")
        for address in addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise httpcore.ConnectTimeout("the attempt's deadline passed")
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining if timeout is None else min(timeout, remaining),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failure:
                error = failure
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
