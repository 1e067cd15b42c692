"""A light HTTP/1.1 load generator: keep-alive connections on asyncio, answers parsed by httptools.

The closed loop of ``bench_ingest.py`` shares the machine's cores with the server it measures,
so what the client spends per request is taken from the server. aiohttp spends about 0.4 ms per
``POST /api/v1/readings`` (its request and response objects, cookies, tracing hooks); writing
the request's bytes and parsing the answer's status line and length with httptools (the C parser
uvicorn uses) spends a fraction of that. Each request is still built when it is sent, with its
own woman and source id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools


class _Answers(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time; its answer's status."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None  # asyncio's Transport, or uvloop's
        self.waiting: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._settle(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._settle(exc or ConnectionResetError("the server closed the connection"))

    # httptools' callback, once an answer's body has all arrived.
    def on_message_complete(self) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(self.parser.get_status_code())

    def _settle(self, error: BaseException) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(error)

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiting = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiting


class Client:
    """Requests to one server over its own connection, reopened when the server closes it."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        fixed = {"Host": f"{self.host}:{self.port}", **headers}
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._connection: _Answers | None = None

    async def _open(self) -> _Answers:
        if self._connection is None or self._connection.transport is None:
            loop = asyncio.get_running_loop()
            _, self._connection = await loop.create_connection(_Answers, self.host, self.port)
        return self._connection

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> int:
        """The answer's status code; 0 when the connection failed (the next request reconnects)."""
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            connection = await self._open()
            return await connection.send(request)
        except (OSError, httptools.HttpParserError):
            self.close()
            return 0

    def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


async def closed_loop(
    bases: list[str],
    headers: dict[str, str],
    path: str,
    body: Callable[[], bytes],
    *,
    connections: int,
    on_answer: Callable[[int], Any],
    stop: asyncio.Event,
) -> None:
    """``connections`` connections, spread over ``bases``, each posting ``body()`` to ``path``
    as soon as its last answer arrived, until ``stop`` is set."""

    async def one(base: str) -> None:
        client = Client(base, headers)
        try:
            while not stop.is_set():
                on_answer(await client.post(path, body()))
        finally:
            client.close()

    await asyncio.gather(*(one(bases[i % len(bases)]) for i in range(connections)))
