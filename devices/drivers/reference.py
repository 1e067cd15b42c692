"""Driver for the exhale reference protocol (``devices/PROTOCOL.md``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable

from devices.drivers.base import Event, MonitorDriver
from devices.errors import CommandRejected, ProtocolError, TransportTimeout
from devices.protocol import (
    AckResult,
    Command,
    CommandReply,
    Frame,
    Identify,
    LineSplitter,
    SetClock,
    StartTest,
    encode_command,
    parse_frame,
)
from devices.readings import DeviceIdentity, Result
from devices.transport import Transport

_log = logging.getLogger(__name__)

BACKLOG_MAX = 256
"""Frames kept while waiting for a command's answer; results beyond it are resent by the monitor."""


class ReferenceDriver(MonitorDriver):
    """Reference-protocol monitor over ``transport``.

    ``reply_timeout_s`` is how long to wait for an answer to a command; ``attempts`` how many
    times identify is sent before giving up. Results carry the model and firmware of the identity
    whose serial number they name.
    """

    def __init__(
        self, transport: Transport, *, reply_timeout_s: float = 2.0, attempts: int = 3
    ) -> None:
        self._transport = transport
        self._reply_timeout_s = reply_timeout_s
        self._attempts = attempts
        self._splitter = LineSplitter()
        self._lines: deque[bytes] = deque()
        self._backlog: deque[Frame] = deque(maxlen=BACKLOG_MAX)
        self.identity: DeviceIdentity | None = None
        self.skipped_lines = 0

    def identify(self) -> DeviceIdentity:
        frame = self._command(
            Identify(), lambda f: isinstance(f, DeviceIdentity), attempts=self._attempts
        )
        assert isinstance(frame, DeviceIdentity)
        self.identity = frame
        return frame

    def poll(self, timeout_s: float) -> Event | None:
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self._backlog.popleft() if self._backlog else self._next_frame(deadline)
            if frame is None:
                return None
            if isinstance(frame, CommandReply):
                _log.debug("monitor reply %s", frame)
                continue
            if isinstance(frame, Result):
                return self._with_identity(frame)
            if isinstance(frame, DeviceIdentity):
                self.identity = frame
            return frame

    def acknowledge(self, result: Result) -> None:
        """Send ``ACK,<sequence>`` and wait for ``OK,ACK,<sequence>`` (one try: a monitor that
        misses it resends the result, which the caller recognises as a duplicate)."""
        detail = str(result.sequence)
        self._command(
            AckResult(result.sequence),
            lambda f: isinstance(f, CommandReply) and f.command == "ACK" and f.detail == detail,
            attempts=1,
        )

    def start_test(self) -> None:
        self._command(StartTest(), _accepted("RUN"), attempts=1)

    def set_clock(self, at: dt.datetime) -> None:
        self._command(SetClock(at), _accepted("TIM"), attempts=1)

    def _command(
        self, command: Command, matches: Callable[[Frame], bool], *, attempts: int
    ) -> Frame:
        line = encode_command(command)
        word = line[1:4].decode()
        for _attempt in range(attempts):
            self._transport.write(line)
            deadline = time.monotonic() + self._reply_timeout_s
            while (frame := self._next_frame(deadline)) is not None:
                if matches(frame):
                    return frame
                if isinstance(frame, CommandReply) and frame.command == word:
                    if not frame.accepted:
                        raise CommandRejected(f"monitor refused {word}: {frame.detail}")
                    continue
                self._backlog.append(frame)
        raise TransportTimeout(f"monitor did not answer {word} ({attempts} tries)")

    def _next_frame(self, deadline: float) -> Frame | None:
        while True:
            while self._lines:
                line = self._lines.popleft()
                try:
                    return parse_frame(line)
                except ProtocolError as error:
                    self.skipped_lines += 1
                    _log.warning("skipped a line from the monitor: %s %r", error.reason, error.line)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                data = self._transport.read(remaining)
            except TransportTimeout:
                return None
            self._lines.extend(self._splitter.feed(data))

    def _with_identity(self, result: Result) -> Result:
        if self.identity is None or self.identity.serial != result.device_serial:
            try:
                self.identify()
            except TransportTimeout:
                _log.warning("monitor did not identify itself; result sent without model")
        identity = self.identity
        if identity is None or identity.serial != result.device_serial:
            return result
        return dataclasses.replace(result, model=identity.model, firmware=identity.firmware)


def _accepted(word: str) -> Callable[[Frame], bool]:
    return lambda f: isinstance(f, CommandReply) and f.command == word and f.accepted
