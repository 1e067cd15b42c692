"""The errors ``devices`` raises: one tree, each with a stable machine-readable code.

``devices`` imports nothing from the service, so this tree stands beside the service's
``ExhaleError`` rather than under it; callers that need one tree map ``DeviceError.code`` across.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base of every error raised by ``devices``."""

    code = "device_error"


class TransportError(DeviceError):
    """The byte link to a monitor failed."""

    code = "transport_error"


class DeviceDisconnected(TransportError):
    """The port is missing, was unplugged, or closed under us: reopen it to go on."""

    code = "device_disconnected"


class PortInUse(TransportError):
    """Another program holds the port exclusively (often a second bridge on the same monitor)."""

    code = "port_in_use"


class TransportTimeout(TransportError):
    """Nothing arrived (or could be sent) within the time allowed."""

    code = "transport_timeout"


class ProtocolError(DeviceError):
    """A line from a monitor is not a well-formed frame; ``reason`` says what was wrong."""

    code = "protocol_error"

    def __init__(self, reason: str, line: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line[:80]


class CommandRejected(DeviceError):
    """The monitor refused a command (for example a test asked for while it warms up)."""

    code = "command_rejected"


class UnsupportedCommand(DeviceError):
    """This monitor's protocol has no such command."""

    code = "unsupported_command"


class CsvImportError(DeviceError):
    """A CSV export cannot be read at all (missing columns, wrong mapping)."""

    code = "csv_import_error"
