"""Fakes and waits for the device tests: a scripted transport, a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devices.errors import TransportTimeout
from devices.protocol import checksum
from devices.simulator import Timings

API_KEY = "test-key"
QUICK = Timings(warmup_s=2, zeroing_s=2, hold_s=3, tick_s=1, recovery_s=3, resend_s=30)
"""Scaled by ``fast``: warm-up 0.02 s, a test 0.06 s, resend every 0.3 s."""


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s`` (generous, never tight)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.01)


def frame(payload: str) -> bytes:
    """A line with a correct checksum around ``payload``, whatever the payload says."""
    data = payload.encode("ascii")
    return b"$" + data + b"*" + f"{checksum(data):02X}".encode() + b"\r\n"


class ScriptedTransport:
    """Replays an exchange: each pair is (what the host must write, what the monitor answers).

    ``None`` as the first item means the monitor sends unasked; an exception as the answer is
    raised by the next read. ``assert_done()`` checks every pair was used.
    """

    def __init__(self, script: list[tuple[bytes | None, bytes | Exception]]) -> None:
        self._script = deque(script)
        self._incoming: deque[bytes | Exception] = deque()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert self._script, f"host wrote {data!r} after the script ended"
        expected, answer = self._script[0]
        assert expected == data, f"host wrote {data!r}, script expected {expected!r}"
        self._script.popleft()
        self._incoming.append(answer)

    def read(self, timeout_s: float) -> bytes:
        if not self._incoming and self._script and self._script[0][0] is None:
            self._incoming.append(self._script.popleft()[1])
        if not self._incoming:
            raise TransportTimeout("script has nothing to send now")
        item = self._incoming.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        assert not self._script, f"unused exchanges: {list(self._script)}"


@dataclass
class Post:
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]
    status: int | str
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeServer:
    """The service's device-readings endpoint on 127.0.0.1, deduplicating by Idempotency-Key.

    ``script`` holds answers for the next posts (a status code, ``"drop"`` to close the
    connection unanswered, ``"store-then-drop"`` to accept the reading but lose the answer);
    ``fail_with`` answers every post with a code until cleared; ``reject_ppm`` readings get 422;
    ``retry_after`` maps a status code to the Retry-After header sent with it.
    """

    posts: list[Post] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: deque[int | str] = field(default_factory=deque)
    fail_with: int | None = None
    retry_after: dict[int, str] = field(default_factory=dict)
    reject_ppm: set[int] = field(default_factory=set)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.port = self._httpd.server_address[1]
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def posts_for(self, key: str) -> list[Post]:
        return [p for p in self.posts if p.headers.get("idempotency-key") == key]

    def answer(self, headers: dict[str, str], body: dict[str, Any]) -> int | str:
        with self._lock:
            answer: int | str | None = self.script.popleft() if self.script else self.fail_with
            if headers.get("authorization") != f"Bearer {API_KEY}":
                answer = 401
            if answer is None and body.get("co_ppm") in self.reject_ppm:
                answer = 422
            if answer is None or answer == "store-then-drop":
                key = headers["idempotency-key"]
                duplicate = key in self.accepted
                self.accepted.setdefault(key, body)
                answer = answer or (200 if duplicate else 201)
            self.posts.append(Post(headers, body, answer))
            return answer


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/api/v1/device-readings":
                self._reply(404)
                return
            answer = server.answer({k.lower(): v for k, v in self.headers.items()}, body)
            if isinstance(answer, str):  # drop the connection without an answer
                self.close_connection = True
                return
            self._reply(answer)

        def _reply(self, status: int) -> None:
            payload = json.dumps({"status": status}).encode()
            self.send_response(status)
            if status in server.retry_after:
                self.send_header("Retry-After", server.retry_after[status])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
