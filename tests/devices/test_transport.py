"""The byte transport over pyserial URLs (the pseudo-terminal cases are in test_simulator)."""

from __future__ import annotations

import logging

import pytest

from devices.errors import DeviceDisconnected, TransportTimeout
from devices.transport import is_local_device, open_transport


def test_bytes_go_round_a_loop_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="devices.transport"),
        open_transport("loop://") as transport,
    ):
        transport.write(b"$IDN*43\r\n")
        assert transport.read(1.0) == b"$IDN*43\r\n"
        with pytest.raises(TransportTimeout):
            transport.read(0.01)
    assert "monitor tx loop:// b'$IDN*43\\r\\n'" in caplog.text
    assert "monitor rx loop://" in caplog.text


def test_a_closed_port_is_a_disconnect() -> None:
    transport = open_transport("loop://")
    transport.close()
    with pytest.raises(DeviceDisconnected):
        transport.read(0.01)
    with pytest.raises(DeviceDisconnected):
        transport.write(b"x")
    transport.close()


def test_a_socket_url_that_nobody_answers_is_a_disconnect() -> None:
    with pytest.raises(DeviceDisconnected, match="cannot open"):
        open_transport("socket://127.0.0.1:9")


def test_only_device_paths_are_opened_exclusively() -> None:
    assert is_local_device("/dev/ttyUSB0")
    assert is_local_device("COM3")
    assert not is_local_device("socket://monitor.local:4001")
    assert not is_local_device("loop://")
