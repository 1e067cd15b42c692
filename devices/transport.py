"""Bytes to and from a monitor over pyserial, and nothing more: no framing, no meaning.

``serial_for_url`` means one transport covers a USB serial port (``/dev/ttyUSB0``), a
pseudo-terminal (the simulator's ``/dev/pts/N`` or its stable link), ``socket://host:port`` and ``loop://``.
Every byte in and out is logged at debug level, as it was, for post-mortems on a clinic PC.
"""

from __future__ import annotations

import errno
import logging
from typing import Any, Protocol

import serial

from devices.errors import DeviceDisconnected, PortInUse, TransportTimeout

_log = logging.getLogger(__name__)

READ_CHUNK = 4096


class Transport(Protocol):
    """What a driver needs from a link: write bytes, read what has arrived, close."""

    def write(self, data: bytes) -> None:
        """Send ``data``; raises ``DeviceDisconnected`` or ``TransportTimeout``."""

    def read(self, timeout_s: float) -> bytes:
        """Bytes that arrived, waiting at most ``timeout_s`` seconds for the first one.

        Raises ``TransportTimeout`` when nothing arrived and ``DeviceDisconnected`` when the link
        is gone.
        """

    def close(self) -> None:
        """Release the port; safe to call twice."""


def is_local_device(url: str) -> bool:
    """True for a device path (``/dev/ttyUSB0``, ``COM3``), false for ``socket://``, ``loop://``."""
    return "://" not in url


class SerialTransport:
    """A ``Transport`` over an open pyserial port; build one with ``open_transport``."""

    def __init__(self, port: Any, url: str) -> None:
        self._port = port
        self.url = url
        self._timeout_s: float | None = None

    def write(self, data: bytes) -> None:
        _log.debug("monitor tx %s %r", self.url, data)
        try:
            written = self._port.write(data)
            self._port.flush()
        except serial.SerialTimeoutException as error:
            raise TransportTimeout(f"could not send to {self.url} in time") from error
        except (serial.SerialException, OSError) as error:
            raise DeviceDisconnected(f"monitor at {self.url} is gone: {error}") from error
        if written is not None and written != len(data):
            raise TransportTimeout(f"sent {written} of {len(data)} bytes to {self.url}")

    def read(self, timeout_s: float) -> bytes:
        try:
            self._set_timeout(max(timeout_s, 0.0))
            first = self._port.read(1)
            if not first:
                raise TransportTimeout(f"nothing from {self.url} in {timeout_s:.2f} s")
            waiting = self._port.in_waiting
            data = first + (self._port.read(min(waiting, READ_CHUNK)) if waiting else b"")
        except (serial.SerialException, OSError) as error:
            raise DeviceDisconnected(f"monitor at {self.url} is gone: {error}") from error
        _log.debug("monitor rx %s %r", self.url, data)
        return bytes(data)

    def close(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError) as error:
            _log.debug("closing %s: %s", self.url, error)

    def _set_timeout(self, timeout_s: float) -> None:
        if timeout_s != self._timeout_s:
            self._port.timeout = timeout_s
            self._timeout_s = timeout_s

    def __enter__(self) -> SerialTransport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_transport(
    url: str, *, baudrate: int = 9600, write_timeout_s: float = 2.0
) -> SerialTransport:
    """Open the monitor at ``url``; a local device is opened exclusively.

    Raises ``PortInUse`` when another program (or another handle) holds the port, and
    ``DeviceDisconnected`` when the port does not exist or cannot be opened.
    """
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            timeout=0,
            write_timeout=write_timeout_s,
            exclusive=True if is_local_device(url) else None,
        )
    except (serial.SerialException, OSError, ValueError) as error:
        if getattr(error, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
            raise PortInUse(
                f"the monitor port {url} is in use by another program "
                "(is another exhale bridge or terminal program using it?)"
            ) from error
        raise DeviceDisconnected(f"cannot open the monitor port {url}: {error}") from error
    _log.debug("monitor port %s open", url)
    return SerialTransport(port, url)
