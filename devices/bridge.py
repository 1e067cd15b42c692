"""The bridge: runs beside a clinic PC's monitor and forwards every result to the service.

Two threads share a durable queue. The device thread reads results from the driver, commits each
to the queue and only then acknowledges it to the monitor; it reopens the port with backoff when
the monitor is unplugged. The sender thread posts queued results to
``POST {server}/api/v1/device-readings`` and removes each only when the server answers 200 or
201. Delivery is at least once; the ``Idempotency-Key: <serial>-<sequence>`` header lets the
server make it exactly once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from devices.drivers import DriverFactory, MonitorDriver, ReferenceDriver
from devices.errors import DeviceDisconnected, DeviceError, TransportError
from devices.protocol import Status
from devices.reading_queue import PutOutcome, QueuedReading, ReadingQueue
from devices.readings import Result
from devices.transport import Transport, open_transport

_log = logging.getLogger(__name__)

READINGS_PATH = "/api/v1/device-readings"
ACKNOWLEDGED = frozenset({200, 201})
RETRYABLE_4XX = frozenset({408, 429})
HELD_4XX = frozenset({401, 403, 404, 405})
"""Answers about the bridge's set-up (key, URL), not the reading: keep it and retry, loudly."""
RETRY_AFTER_MAX_S = 600.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: after ``failures`` failures wait between half and all of
    ``min(cap_s, base_s * 2 ** (failures - 1))`` seconds."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(failures - 1, 0), 30))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class BridgeStatus:
    """What the bridge is doing, for its status line."""

    device: str = "connecting"
    device_serial: str | None = None
    monitor_state: str | None = None
    queued: int = 0
    rejected: int = 0
    server: str = "not contacted yet"
    last_sent: str | None = None
    last_sent_at: dt.datetime | None = None

    def line(self) -> str:
        monitor = self.device + (f" {self.device_serial}" if self.device_serial else "")
        monitor += f" ({self.monitor_state})" if self.monitor_state else ""
        sent = "never"
        if self.last_sent and self.last_sent_at:
            sent = f"{self.last_sent} at {self.last_sent_at:%H:%M:%S}Z"
        return (
            f"monitor {monitor} | queued {self.queued} | rejected {self.rejected} "
            f"| server {self.server} | last sent {sent}"
        )


def classify(status_code: int, *, retry_after: bool = False) -> str:
    """``"acknowledged"`` (200, 201), ``"rejected"`` (a 4xx the server will always give for this
    reading), or ``"retry"``: 5xx, 408, 429, anything unexpected, 401/403/404/405 (the bridge's
    key or URL is wrong, not the reading), and any 4xx with ``Retry-After`` (such as a 409 for a
    request with the same Idempotency-Key still being processed)."""
    if status_code in ACKNOWLEDGED:
        return "acknowledged"
    if 400 <= status_code < 500 and status_code not in RETRYABLE_4XX | HELD_4XX:
        return "retry" if retry_after else "rejected"
    return "retry"


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), at most 600."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(max((when - now).total_seconds(), 0.0), RETRY_AFTER_MAX_S)


class Bridge:
    """Forward results from the monitor at ``device_url`` to the service at ``server_url``.

    ``queue_path`` is the SQLite queue (created if missing; reused after a restart). ``on_status``
    is called with a ``BridgeStatus`` whenever the status line changes (default: logged).
    """

    def __init__(
        self,
        device_url: str,
        server_url: str,
        api_key: str,
        queue_path: Path,
        *,
        driver_factory: DriverFactory = ReferenceDriver,
        opener: Callable[[str], Transport] = open_transport,
        on_status: Callable[[BridgeStatus], None] | None = None,
        send_backoff: Backoff = Backoff(1.0, 60.0),
        reconnect_backoff: Backoff = Backoff(0.5, 10.0),
        poll_s: float = 0.5,
        http_timeout_s: float = 10.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.device_url = device_url
        self.readings_url = server_url.rstrip("/") + READINGS_PATH
        self._api_key = api_key
        self.queue = ReadingQueue(queue_path)
        self._driver_factory = driver_factory
        self._opener = opener
        self._on_status = on_status or (lambda status: _log.info("bridge: %s", status.line()))
        self._send_backoff = send_backoff
        self._reconnect_backoff = reconnect_backoff
        self._poll_s = poll_s
        self._http = httpx.Client(
            timeout=http_timeout_s,
            transport=http_transport,
            headers={"User-Agent": "exhale-bridge"},
        )
        self._rng = random.Random()  # noqa: S311 - jitter, not secrets
        self._stop = threading.Event()
        self._wake_sender = threading.Event()
        self._status_lock = threading.Lock()
        self._status = BridgeStatus()
        self._threads: list[threading.Thread] = []

    @property
    def status(self) -> BridgeStatus:
        return self._status

    def start(self) -> Bridge:
        self._update()
        self._threads = [
            threading.Thread(target=self._device_loop, name="bridge-device", daemon=True),
            threading.Thread(target=self._send_loop, name="bridge-sender", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop both threads (an in-flight post is finished and recorded) and close the queue."""
        self._stop.set()
        self._wake_sender.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if any(thread.is_alive() for thread in self._threads):
            _log.warning("bridge threads did not stop within %.0f s", timeout_s)
            return
        self._http.close()
        self.queue.close()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (Ctrl-C), then stop cleanly (call from the main thread)."""

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            _log.info("bridge stopping (signal %d)", signum)
            self._stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # The device side.

    def _device_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            failures = 1 if self._device_session() else failures + 1
            self._update(device="disconnected", monitor_state=None)
            self._stop.wait(self._reconnect_backoff.delay(failures, self._rng))

    def _device_session(self) -> bool:
        """One connection to the monitor, until it drops or the bridge stops; True if the
        monitor identified itself."""
        self._update(device="connecting")
        try:
            transport = self._opener(self.device_url)
        except TransportError as error:
            _log.warning("monitor %s: %s", self.device_url, error)
            return False
        identified = False
        try:
            driver = self._driver_factory(transport)
            identity = driver.identify()
            identified = True
            self._update(device="connected", device_serial=identity.serial)
            _log.info("monitor %s connected: %s", self.device_url, identity)
            self._pump(driver)
        except TransportError as error:
            _log.warning("monitor %s: %s", self.device_url, error)
        except Exception:  # a driver bug must not end the bridge: reconnect and go on
            _log.exception("unexpected error with monitor %s", self.device_url)
        finally:
            transport.close()
        return identified

    def _pump(self, driver: MonitorDriver) -> None:
        while not self._stop.is_set():
            event = driver.poll(self._poll_s)
            if isinstance(event, Result):
                self._take(driver, event)
            elif isinstance(event, Status):
                code = f" {event.error_code}" if event.error_code else ""
                self._update(monitor_state=event.state.name.lower() + code)

    def _take(self, driver: MonitorDriver, result: Result) -> None:
        try:
            outcome = self.queue.put(result)
        except sqlite3.Error:
            # Not acknowledged, so the monitor keeps the result and sends it again.
            _log.exception("could not store result %s; the monitor will resend it", result.key)
            return
        _log.info("result %s (%d ppm): %s", result.key, result.co_ppm, outcome.value)
        if outcome is PutOutcome.CONFLICT:
            _log.error("monitor reused sequence %s for a different reading", result.key)
        if result.battery_low:
            _log.warning(
                "monitor %s battery low (%s%%)", result.device_serial, result.battery_percent
            )
        if result.calibration_overdue:
            _log.warning(
                "monitor %s calibration was due on %s",
                result.device_serial,
                result.calibration_due_on,
            )
        self._wake_sender.set()
        self._update()
        try:
            driver.acknowledge(result)
        except DeviceDisconnected:
            raise
        except DeviceError as error:
            _log.info("monitor did not confirm the acknowledgement of %s: %s", result.key, error)

    # The server side.

    def _send_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                item = self.queue.next_due()
                if item is None or not self._due(item):
                    self._wake_sender.wait(1.0 if item is None else self._idle_s(item))
                    self._wake_sender.clear()
                    continue
                least_wait_s = self._send(item)
                if least_wait_s is None:
                    failures = 0
                    continue
                failures += 1
                delay_s = max(least_wait_s, self._send_backoff.delay(failures, self._rng))
                self.queue.mark_retry(item, time.time() + delay_s, self._status.server)
            except Exception:  # a broken queue or a bug must not end delivery for good
                _log.exception("bridge sender failed; trying again")
                failures += 1
                delay_s = self._send_backoff.delay(failures, self._rng)
            self._stop.wait(delay_s)

    def _due(self, item: QueuedReading) -> bool:
        # A retry time further off than any backoff means the clock went back: try now.
        wait_s = item.next_attempt_at - time.time()
        return wait_s <= 0 or wait_s > self._send_backoff.cap_s + RETRY_AFTER_MAX_S

    def _idle_s(self, item: QueuedReading) -> float:
        return min(max(item.next_attempt_at - time.time(), 0.01), 1.0)

    def _send(self, item: QueuedReading) -> float | None:
        """Post ``item``; None when it is settled, else the least wait before trying again."""
        try:
            response = self._http.post(
                self.readings_url,
                json=item.body,
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Idempotency-Key": item.key,
                },
            )
        except httpx.HTTPError as error:
            _log.warning("server unreachable for %s: %s", item.key, error)
            self._update(server=f"unreachable ({type(error).__name__})")
            return 0.0
        retry_after = response.headers.get("Retry-After")
        verdict = classify(response.status_code, retry_after=retry_after is not None)
        if verdict == "acknowledged":
            self.queue.mark_sent(item, response.status_code)
            now = dt.datetime.now(dt.UTC)
            self._update(server="ok", last_sent=item.key, last_sent_at=now)
            return None
        if verdict == "rejected":
            reason = f"{response.status_code}: {response.text[:500]}"
            self.queue.mark_rejected(item, response.status_code, reason)
            _log.error("server rejected %s for good: %s", item.key, reason)
            self._update(server="ok")
            return None
        problem = _describe(response.status_code)
        _log.warning("server answered %s for %s: retrying", response.status_code, item.key)
        self._update(server=problem)
        return parse_retry_after(retry_after, dt.datetime.now(dt.UTC)) or 0.0

    def _update(self, **changes: Any) -> None:
        with self._status_lock:
            counts = self.queue.counts()
            status = replace(
                self._status, queued=counts.queued, rejected=counts.rejected, **changes
            )
            if status != self._status:
                self._status = status
                self._on_status(status)


def _describe(status_code: int) -> str:
    if status_code == 401:
        return "refuses the API key (401): check --api-key"
    if status_code in (403, 404, 405):
        return f"refuses the request ({status_code}): check --server and the device's registration"
    return f"answered {status_code}"
