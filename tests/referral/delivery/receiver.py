"""A real HTTP receiver for webhook tests: ThreadingHTTPServer on 127.0.0.1, scripted answers.

Each request is recorded (headers, body, arrival) before ``behaviour`` answers it; behaviours
that wait do so on ``release``, always with a timeout, so a test can never hang on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

WAIT_CAP_S = 10.0  # no behaviour holds a request longer than this


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    arrived: float = field(default_factory=time.monotonic)

    def verify(self, *secrets: str) -> dict[str, object]:
        """The body, once the standardwebhooks library accepts its signature by every secret."""
        payload: dict[str, object] = {}
        for secret in secrets:
            payload = Webhook(secret).verify(self.body, self.headers)
        return payload


Behaviour = Callable[[BaseHTTPRequestHandler, Received, "Receiver"], None]


def respond(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Behaviour:
    def behaviour(handler: BaseHTTPRequestHandler, _item: Received, _rx: Receiver) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


OK = respond(200, body=b'{"ok":true}')


def huge_body(status: int) -> Behaviour:
    """Announce 1 GB, then send zeros until the client hangs up (at most 64 MB)."""

    def behaviour(handler: BaseHTTPRequestHandler, _item: Received, rx: Receiver) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(1_000_000_000))
        handler.end_headers()
        chunk = b"\0" * 65536
        try:
            for _ in range(1024):
                handler.wfile.write(chunk)
                rx.bytes_sent += len(chunk)
        except OSError:
            pass
        handler.close_connection = True

    return behaviour


def silent(handler: BaseHTTPRequestHandler, _item: Received, rx: Receiver) -> None:
    """Say nothing until released (or WAIT_CAP_S)."""
    rx.release.wait(WAIT_CAP_S)
    handler.close_connection = True


def hang_up(handler: BaseHTTPRequestHandler, _item: Received, _rx: Receiver) -> None:
    """Close the connection without an answer."""
    handler.close_connection = True


def ok_then_hold(handler: BaseHTTPRequestHandler, item: Received, rx: Receiver) -> None:
    """Send ``200`` and half the body, tell the test, then hold until released: the sender has
    its 2xx but has not finished the attempt, let alone recorded it."""
    handler.send_response(200)
    handler.send_header("Content-Length", "10")
    handler.end_headers()
    handler.wfile.write(b"12345")
    handler.wfile.flush()
    rx.holding.append(item.webhook_id)
    rx.release.wait(WAIT_CAP_S)
    with suppress(OSError):
        handler.wfile.write(b"67890")


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.behaviour: Behaviour = OK
        self.release = threading.Event()
        self.holding: list[str] = []
        self.bytes_sent = 0
        self.incomplete = 0  # requests cut off before their body was complete
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks?token=not-logged"

    def ids(self) -> list[str]:
        with self._lock:
            return [item.webhook_id for item in self.received]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met within {timeout_s} s")
            time.sleep(0.02)

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    receiver.incomplete += 1
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                item = Received(headers.get("webhook-id", ""), headers, body)
                receiver._record(item)
                receiver.behaviour(self, item, receiver)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
