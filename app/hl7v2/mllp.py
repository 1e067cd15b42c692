"""MLLP: each message framed as ``0x0b`` message ``0x1c 0x0d`` over TCP, each answered with an ACK.

The listener is python-hl7's asyncio server; the framing checks are ours, so that input that
is not a good frame gets an AR where one can still be sent, and never stops the listener:
- bytes before a frame's start (``0x0b``) are discarded;
- a frame cut short by a new ``0x0b``, or by the connection ending, gets an AR;
- a frame that is not UTF-8, or has no MSH, gets an AR;
- more than ``max_message_bytes`` without an end marker gets an AR and the connection closed;
- a connection idle for ``idle_timeout_s`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hl7.mllp import start_hl7_server  # type: ignore[import-untyped]

from app.logs import get_logger

log = get_logger(__name__)

START = b"\x0b"
END = b"\x1c\r"
TRUNCATED = (
    "The MLLP frame was cut short (a new frame began, or the connection ended, before its end "
    "marker 0x1c 0x0d): nothing of it was stored; send it again whole."
)
NOT_FRAMED = "No MLLP frame: each message must begin with 0x0b and end with 0x1c 0x0d."
NOT_UTF8 = "The message is not UTF-8 text; send it encoded as UTF-8 (MSH-18 UNICODE UTF-8)."

Handler = Callable[[str], Awaitable[str]]  # a message's text -> its ACK's text
Refuser = Callable[[str, str], str]  # (what was read, the problem) -> an AR's text


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 1024 * 1024
    idle_timeout_s: float = 300.0


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class Listener:
    """Serves each connection in its own task; one connection's failure touches no other."""

    def __init__(self, handle: Handler, refuse: Refuser, limits: Limits) -> None:
        self.handle = handle
        self.refuse = refuse
        self.limits = limits
        self._ids = itertools.count(1)

    async def connection(self, reader: Any, writer: Any) -> None:
        connection_id = next(self._ids)
        try:
            while await self._one_block(reader, writer, connection_id):
                pass
        except Exception as error:  # the listener outlives any connection
            log.error(
                "mllp_connection_failed", connection=connection_id, error=type(error).__name__
            )
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_block(self, reader: Any, writer: Any, connection_id: int) -> bool:
        """Read up to the next end marker and answer it; False when the connection is done."""
        try:
            block = await asyncio.wait_for(reader.readuntil(END), self.limits.idle_timeout_s)
        except asyncio.IncompleteReadError as ended:
            if START in ended.partial:
                frame = ended.partial.rsplit(START, 1)[1]
                await self._send(writer, self.refuse(_text(frame), TRUNCATED))
            elif ended.partial.strip():
                log.info(
                    "mllp_garbage_discarded", connection=connection_id, bytes=len(ended.partial)
                )
            return False
        except asyncio.LimitOverrunError:
            problem = f"The message is over {self.limits.max_message_bytes} bytes, or unframed."
            await self._send(writer, self.refuse("", problem))
            return False
        except TimeoutError:
            log.info("mllp_idle_closed", connection=connection_id)
            return False
        junk, *frames = block[: -len(END)].split(START)
        if junk.strip():
            log.info("mllp_garbage_discarded", connection=connection_id, bytes=len(junk))
        if not frames:
            await self._send(writer, self.refuse("", NOT_FRAMED))
            return True
        for cut in frames[:-1]:
            await self._send(writer, self.refuse(_text(cut), TRUNCATED))
        try:
            text = frames[-1].decode("utf-8")
        except UnicodeDecodeError:
            await self._send(writer, self.refuse(_text(frames[-1]), NOT_UTF8))
            return True
        await self._send(writer, await self.handle(text))
        return True

    @staticmethod
    async def _send(writer: Any, ack: str) -> None:
        try:
            writer.writeblock(ack.encode("utf-8"))
            await writer.drain()
        except ConnectionError:  # the sender has gone; the next read ends the connection
            log.info("mllp_sender_gone")


async def serve(
    listener: Listener,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Listen until ``stop`` is set."""
    server = await start_hl7_server(
        listener.connection, host, port, limit=listener.limits.max_message_bytes
    )
    async with server:
        if on_ready is not None:
            address = server.sockets[0].getsockname()
            on_ready(f"{address[0]}:{address[1]}")
        await stop.wait()
