"""The small interface every monitor driver implements, so a maker's protocol is one new file.

A driver speaks one command set over a ``Transport`` it is given; it never opens a port itself, so
the same driver runs over USB, a pseudo-terminal, a socket or a scripted fake in tests.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Callable, Iterator

from devices.errors import UnsupportedCommand
from devices.protocol import Status
from devices.readings import DeviceIdentity, Result
from devices.transport import Transport

Event = Status | Result | DeviceIdentity
"""Something the monitor told us: its state, a test result, or its identity."""


class MonitorDriver(abc.ABC):
    """A monitor's command set. Lines that fail to parse are logged and skipped, never raised."""

    @abc.abstractmethod
    def identify(self) -> DeviceIdentity:
        """Ask the monitor who it is. Raises ``TransportTimeout`` when it does not say."""

    @abc.abstractmethod
    def poll(self, timeout_s: float) -> Event | None:
        """The next event from the monitor, or None if none came within ``timeout_s`` seconds.

        Raises ``DeviceDisconnected`` when the link is gone; never raises for a bad line.
        """

    @abc.abstractmethod
    def acknowledge(self, result: Result) -> None:
        """Tell the monitor ``result`` is stored safely (a no-op for monitors that cannot be told).

        Call it only after the result is durable: a monitor may forget an acknowledged result.
        """

    def start_test(self) -> None:
        """Start a breath test from the host, where the monitor allows it."""
        raise UnsupportedCommand(f"{type(self).__name__} cannot start a test")

    def set_clock(self, at: dt.datetime) -> None:
        """Set the monitor's clock, where the monitor allows it."""
        raise UnsupportedCommand(f"{type(self).__name__} cannot set the clock")

    def results(self, idle_timeout_s: float) -> Iterator[Result]:
        """Results as they come, ending once ``idle_timeout_s`` seconds pass with no event."""
        deadline = time.monotonic() + idle_timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            event = self.poll(remaining)
            if event is None:
                return
            deadline = time.monotonic() + idle_timeout_s
            if isinstance(event, Result):
                yield event


DriverFactory = Callable[[Transport], MonitorDriver]
"""Builds a driver over a transport: ``ReferenceDriver`` is one."""
