"""Sending one signed webhook over HTTP: timeouts, a deadline, no redirects, a capped read.

Nothing here knows about the outbox: it takes a URL, a body and headers and says what happened.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpcore
import httpx

from app import __version__
from app.config import DeliverySettings
from referral.delivery.safety import GuardedBackend

TransportFactory = Callable[[float], httpx.BaseTransport]  # given the attempt's deadline
USER_AGENT = f"exhale-webhooks/{__version__}"
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None = None  # short; never a payload, a URL or a response body
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Certificate-verifying TLS (certifi's CAs), built once: loading the CAs is not free."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over :class:`GuardedBackend`: checked addresses, one deadline, no proxy.

    httpx 0.28 has no parameter for a network backend, so the pool it built is replaced by one
    with ours (``_pool`` is what ``HTTPTransport.handle_request`` uses).
    """

    def __init__(self, *, allow_private: bool, deadline: float) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            network_backend=GuardedBackend(allow_private=allow_private, deadline=deadline),
        )


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _describe(error: Exception) -> str:
    message = _URL.sub("[url]", str(error)).strip()
    return f"{type(error).__name__}: {message}"[:300] if message else type(error).__name__


def _drain(response: httpx.Response, limit: int) -> None:
    """Read at most ``limit`` bytes of the answer (undecoded: no decompression bombs)."""
    received = 0
    try:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received >= limit:
                break
    except (httpx.HTTPError, httpx.StreamError):
        pass  # the status line is the receiver's answer; a broken body does not change it


def send(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    settings: DeliverySettings,
    allow_private: bool,
    now: dt.datetime,
    transport_factory: TransportFactory | None = None,
) -> AttemptResult:
    """POST one signed message; any failure becomes an :class:`AttemptResult`, never raises.

    ``deadline`` (``time.monotonic()``) ends the whole attempt, resolving, connecting, TLS,
    writing and reading included: no byte is sent after it.
    """
    if time.monotonic() >= deadline:
        return AttemptResult(None, "not sent: the attempt's deadline passed before it could start")
    transport = (
        transport_factory(deadline)
        if transport_factory
        else GuardedTransport(allow_private=allow_private, deadline=deadline)
    )
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.read_timeout_s,
        pool=settings.connect_timeout_s,
    )
    headers = {**headers, "user-agent": USER_AGENT}
    try:
        with (
            httpx.Client(
                transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            _drain(response, settings.max_response_bytes)
            return _result(response, now)
    except (httpx.HTTPError, httpx.StreamError) as error:
        return AttemptResult(None, _describe(error))


def _result(response: httpx.Response, now: dt.datetime) -> AttemptResult:
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(code)
    error = f"HTTP {code}"
    if 300 <= code < 400:
        error += ": redirects are not followed; set the destination to the final URL"
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
    return AttemptResult(code, error, retry_after)
