"""The reference driver against scripted exchanges: every pair must be used."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from devices.drivers import MonitorDriver, ReferenceDriver
from devices.errors import CommandRejected, DeviceDisconnected, TransportTimeout
from devices.protocol import MonitorState, Status
from devices.readings import DeviceIdentity, Result
from tests.devices.helpers import ScriptedTransport, frame

IDN = b"$IDN*43\r\n"
ID = frame("ID,SIM-0001,exhale-sim,1.0.0")
WHEN = dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC)


def rs(sequence: int, ppm: int, serial: str = "SIM-0001") -> bytes:
    return frame(f"RS,{serial},{sequence},{ppm},2025-03-01T10:15:30Z,87,2026-01-31")


def ack(sequence: int) -> tuple[bytes, bytes]:
    return (frame(f"ACK,{sequence}"), frame(f"OK,ACK,{sequence}"))


def driver_for(script: ScriptedTransport) -> ReferenceDriver:
    return ReferenceDriver(script, reply_timeout_s=0.05, attempts=2)


def test_identify_then_a_result_with_its_acknowledgement() -> None:
    script = ScriptedTransport([(IDN, ID), (None, rs(42, 7)), ack(42)])
    driver = driver_for(script)

    assert driver.identify() == DeviceIdentity("SIM-0001", "exhale-sim", "1.0.0")
    event = driver.poll(1.0)
    assert event == Result("SIM-0001", 42, 7, WHEN, 87, dt.date(2026, 1, 31), "exhale-sim", "1.0.0")
    assert isinstance(event, Result)
    driver.acknowledge(event)
    assert driver.poll(0.01) is None
    script.assert_done()


def test_bad_lines_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    noise = b"\x00\xff garbage\r\n" + rs(5, 9).replace(b"*", b"*F") + rs(6, 499)[:20]
    script = ScriptedTransport([(IDN, ID), (None, noise + rs(5, 9))])
    driver = driver_for(script)
    driver.identify()

    with caplog.at_level(logging.WARNING, logger="devices.drivers.reference"):
        event = driver.poll(1.0)

    assert isinstance(event, Result)
    assert (event.sequence, event.co_ppm) == (5, 9)
    assert driver.skipped_lines == 3
    assert "skipped a line" in caplog.text
    script.assert_done()


def test_a_result_arriving_while_identifying_is_kept_for_poll() -> None:
    script = ScriptedTransport([(IDN, rs(1, 3) + frame("ST,READY") + ID)])
    driver = driver_for(script)

    assert driver.identify().serial == "SIM-0001"
    first, second = driver.poll(0.01), driver.poll(0.01)
    assert isinstance(first, Result)
    assert first.model == "exhale-sim"
    assert second == Status(MonitorState.READY)
    script.assert_done()


def test_identify_is_retried_after_a_corrupted_answer() -> None:
    script = ScriptedTransport([(IDN, ID.replace(b"SIM", b"SIN")), (IDN, ID)])
    assert driver_for(script).identify().serial == "SIM-0001"
    script.assert_done()


def test_a_silent_monitor_times_out() -> None:
    script = ScriptedTransport([(IDN, b""), (IDN, b"")])
    with pytest.raises(TransportTimeout, match="did not answer IDN"):
        driver_for(script).identify()
    script.assert_done()


def test_a_result_from_another_serial_makes_the_driver_identify_again() -> None:
    other = frame("ID,SIM-0002,exhale-sim,2.0.0")
    script = ScriptedTransport([(IDN, ID), (None, rs(1, 2, serial="SIM-0002")), (IDN, other)])
    driver = driver_for(script)
    driver.identify()

    event = driver.poll(1.0)

    assert isinstance(event, Result)
    assert (event.device_serial, event.firmware) == ("SIM-0002", "2.0.0")
    script.assert_done()


def test_status_frames_become_events() -> None:
    script = ScriptedTransport([(None, frame("ST,HOLD,15") + frame("ST,ERROR,E07"))])
    driver = driver_for(script)
    assert driver.poll(1.0) == Status(MonitorState.BREATH_HOLD, hold_s=15)
    assert driver.poll(1.0) == Status(MonitorState.ERROR, error_code="E07")
    script.assert_done()


def test_start_test_and_set_clock() -> None:
    script = ScriptedTransport(
        [
            (b"$RUN*49\r\n", frame("NO,RUN,NOT_READY")),
            (b"$RUN*49\r\n", frame("OK,RUN")),
            (frame("TIM,2025-03-01T10:15:30+00:00"), frame("OK,TIM")),
        ]
    )
    driver = driver_for(script)
    with pytest.raises(CommandRejected, match="NOT_READY"):
        driver.start_test()
    driver.start_test()
    driver.set_clock(WHEN)
    script.assert_done()


def test_a_disconnect_is_raised_not_swallowed() -> None:
    script = ScriptedTransport([(None, DeviceDisconnected("unplugged"))])
    with pytest.raises(DeviceDisconnected):
        driver_for(script).poll(1.0)
    script.assert_done()


def test_results_iterates_until_the_monitor_goes_quiet() -> None:
    script = ScriptedTransport([(None, rs(1, 2) + frame("ST,READY") + rs(2, 3))])
    driver = driver_for(script)
    driver.identify = lambda: DeviceIdentity("SIM-0001", "m", "f")  # type: ignore[method-assign]
    assert [r.sequence for r in driver.results(idle_timeout_s=0.05)] == [1, 2]
    script.assert_done()


def test_a_makers_driver_needs_only_three_methods() -> None:
    class Minimal(MonitorDriver):
        def identify(self) -> DeviceIdentity:
            return DeviceIdentity("X1", "maker", "1")

        def poll(self, timeout_s: float) -> None:
            return None

        def acknowledge(self, result: Result) -> None:
            pass

    driver = Minimal()
    assert driver.identify().serial == "X1"
    assert list(driver.results(idle_timeout_s=0.01)) == []
