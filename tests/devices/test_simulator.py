"""The simulated monitor and the reference driver over a real pseudo-terminal, fault by fault."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devices.drivers import Event, ReferenceDriver
from devices.errors import CommandRejected, DeviceDisconnected, PortInUse, TransportTimeout
from devices.protocol import MonitorState, Status
from devices.readings import Result
from devices.simulator import FAULT_PPM, Scenario, SimulatedMonitor, Step, Timings, load_scenario
from devices.transport import SerialTransport, open_transport
from tests.devices.conftest import StartMonitor, manual_scenario
from tests.devices.helpers import wait_for


@pytest.fixture
def connect() -> Iterator[object]:
    opened: list[SerialTransport] = []

    def open_driver(monitor: SimulatedMonitor) -> ReferenceDriver:
        assert monitor.link is not None
        wait_for(lambda: monitor.link is not None and monitor.link.exists(), what="the link")
        transport = open_transport(str(monitor.link))
        opened.append(transport)
        return ReferenceDriver(transport, reply_timeout_s=0.2, attempts=2)

    yield open_driver
    for transport in opened:
        transport.close()


def events_until(
    driver: ReferenceDriver, done: Callable[[list[Event]], bool], what: str
) -> list[Event]:
    """Poll the driver, keeping every event, until ``done(events)``."""
    events: list[Event] = []

    def step() -> bool:
        event = driver.poll(0.05)
        if event is not None:
            events.append(event)
        return done(events)

    wait_for(step, what=what)
    return events


def collect(driver: ReferenceDriver, count: int, timeout_s: float = 10.0) -> list[Result]:
    """Results by sequence number, each acknowledged, until ``count`` distinct ones arrived."""
    seen: dict[int, Result] = {}

    def more() -> bool:
        event = driver.poll(0.05)
        if isinstance(event, Result):
            seen.setdefault(event.sequence, event)
            driver.acknowledge(event)
        return len(seen) >= count

    wait_for(more, timeout_s, f"{count} results")
    return [seen[key] for key in sorted(seen)]


READY = Status(MonitorState.READY)


def ready(monitor: SimulatedMonitor) -> None:
    wait_for(lambda: monitor.status == READY, what="the monitor to be ready")


def test_identify_run_a_test_and_acknowledge(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    assert driver.identify() == monitor.identity
    ready(monitor)

    driver.start_test()
    (result,) = collect(driver, 1)

    assert result == dataclasses.replace(monitor.results[0], model="exhale-sim", firmware="1.0.0")
    assert (result.co_ppm, result.model, result.firmware) == (1, "exhale-sim", "1.0.0")
    assert result.measured_at.utcoffset() == dt.timedelta(0)
    wait_for(lambda: monitor.unacknowledged == [], what="the monitor to forget the result")


def test_an_unacknowledged_result_is_sent_again(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()
    monitor.inject(Step("test"))

    events = events_until(
        driver, lambda events: sum(isinstance(e, Result) for e in events) >= 2, "two results"
    )
    sequences = [e for e in events if isinstance(e, Result)]
    assert sequences[0] == sequences[1]
    assert monitor.unacknowledged == [sequences[0].sequence]


def test_a_test_cannot_start_while_warming_up(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor(manual_scenario(timings=Timings(warmup_s=300)))
    driver = connect(monitor)
    driver.identify()
    with pytest.raises(CommandRejected, match="NOT_READY"):
        driver.start_test()


def test_garbage_bad_checksums_and_truncated_frames_are_skipped(
    start_monitor: StartMonitor, connect
) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()

    monitor.inject(
        Step("garbage", size=500),
        Step("test", ppm=5),
        Step("bad_checksum"),
        Step("truncated"),
        Step("garbage", size=70_000),
        Step("test", ppm=6),
    )
    results = collect(driver, 2)

    assert [r.co_ppm for r in results] == [5, 6]
    assert FAULT_PPM not in [r.co_ppm for r in results]
    assert driver.skipped_lines >= 4


def test_silence_then_the_monitor_answers_again(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()

    monitor.inject(Step("silence", seconds=100))  # 1 s with fast timings
    wait_for(lambda: monitor.silent, what="silence")
    with pytest.raises(TransportTimeout):
        driver.identify()
    wait_for(lambda: not monitor.silent, what="the end of the silence")
    assert driver.identify() == monitor.identity


def test_disconnect_and_reconnect(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()
    first_path = monitor.path

    monitor.inject(Step("disconnect", seconds=20), Step("test", ppm=8))
    with pytest.raises(DeviceDisconnected):
        events_until(driver, lambda _events: False, "the disconnect")

    wait_for(lambda: monitor.connections == 2 and monitor.link.exists(), what="the reconnect")
    assert os.path.realpath(monitor.link) == monitor.path
    driver = connect(monitor)
    assert driver.identify() == monitor.identity
    (result,) = collect(driver, 1)  # taken around the reconnect, resent until acknowledged
    assert result.co_ppm == 8
    assert first_path.startswith("/dev/")


def test_low_battery_and_calibration_overdue(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()

    monitor.inject(Step("test"), Step("battery", percent=8), Step("test"))
    monitor.inject(Step("calibration_due", date=dt.date(2020, 1, 1)), Step("test"))
    first, low, overdue = collect(driver, 3)

    assert not first.battery_low and not first.calibration_overdue
    assert low.battery_percent == 8 and low.battery_low
    assert overdue.calibration_due_on == dt.date(2020, 1, 1) and overdue.calibration_overdue


def test_an_error_state_is_reported_then_cleared(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()
    ready(monitor)

    monitor.inject(Step("error", code="E07", seconds=10))
    error = Status(MonitorState.ERROR, error_code="E07")
    events_until(
        driver,
        lambda events: error in events and READY in events[events.index(error) :],
        "the error, then ready",
    )


def test_a_second_handle_on_the_port_is_refused(start_monitor: StartMonitor) -> None:
    monitor = start_monitor()
    with open_transport(str(monitor.link)):
        with pytest.raises(PortInUse, match="in use by another program"):
            open_transport(str(monitor.link))
        other_process = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from devices.transport import open_transport as o; o({monitor.path!r})",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert other_process.returncode != 0
        assert "PortInUse" in other_process.stderr
    open_transport(str(monitor.link)).close()  # free again once the first handle closed


def test_a_missing_port_is_a_disconnect(tmp_path: Path) -> None:
    with pytest.raises(DeviceDisconnected, match="cannot open"):
        open_transport(str(tmp_path / "no-such-port"))


def test_sequence_numbers_continue_after_a_restart(
    start_monitor: StartMonitor, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    first = start_monitor(manual_scenario(steps=(Step("test", count=2),)), state_file=state)
    wait_for(first.steps_done.is_set, what="two tests")
    first.stop()

    second = start_monitor(manual_scenario(steps=(Step("test"),)), state_file=state)
    wait_for(second.steps_done.is_set, what="one test")

    assert [r.sequence for r in first.results + second.results] == [1, 2, 3]
    assert json.loads(state.read_text()) == {"SIM-0001": 3}


def test_the_simulator_clock_can_be_set(start_monitor: StartMonitor, connect) -> None:
    monitor = start_monitor()
    driver = connect(monitor)
    driver.identify()
    when = dt.datetime(2030, 6, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    driver.set_clock(when)
    monitor.inject(Step("test"))
    (result,) = collect(driver, 1)
    assert abs(result.measured_at - when) < dt.timedelta(minutes=5)


def test_built_in_scenarios() -> None:
    assert load_scenario("fixed:7").values.ppm == 7
    mix = load_scenario("mix:3").values.generate()
    readings = [next(mix) for _ in range(200)]
    again = load_scenario("mix:3").values.generate()
    assert readings == [next(again) for _ in range(200)]
    assert any(r >= 4 for r in readings) and any(r < 4 for r in readings)
    assert all(0 <= r <= 60 for r in readings)
    assert load_scenario("manual").auto_test is False
    assert {s.action for s in load_scenario("faults").steps} >= {
        "garbage",
        "bad_checksum",
        "truncated",
        "silence",
        "disconnect",
        "battery",
        "calibration_due",
        "error",
    }
    with pytest.raises(ValueError, match="no scenario"):
        load_scenario("nonsense")


def test_a_scenario_is_data_in_a_json_file(tmp_path: Path) -> None:
    (tmp_path / "readings.txt").write_text("# ppm\n2\n\n17\n")
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "serial": "CLINIC-7",
                "values": {"file": "readings.txt"},
                "steps": [
                    {"action": "test", "count": 2},
                    {"action": "calibration_due", "date": "2020-01-01"},
                    {"action": "disconnect", "seconds": 3},
                ],
                "timings": {"hold_s": 5},
                "auto_test": False,
            }
        )
    )
    scenario = load_scenario(str(path))
    assert scenario.serial == "CLINIC-7"
    assert scenario.values.readings == (2, 17)
    assert scenario.steps[1] == Step("calibration_due", date=dt.date(2020, 1, 1))
    assert scenario.timings.hold_s == 5
    assert load_scenario(f"file:{tmp_path / 'readings.txt'}").values.readings == (2, 17)


@pytest.mark.parametrize(
    "data",
    [
        {"colour": "red"},
        {"steps": [{"action": "explode"}]},
        {"steps": [{"action": "battery"}]},
        {"values": {"kind": "fixed", "ppm": 900}},
        {"serial": "lower case"},
    ],
)
def test_a_bad_scenario_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Scenario.from_dict(data)
