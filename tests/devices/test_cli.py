"""The two command functions, run as the main CLI would run them, in real processes."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.drivers import ReferenceDriver
from devices.readings import Result
from devices.simulator import Step
from devices.transport import open_transport
from tests.devices.conftest import StartMonitor
from tests.devices.helpers import API_KEY, FakeServer, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOST_CLI = "from app.cli import main\nmain()\n"  # the `exhale` command itself


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "EXHALE_BRIDGE_API_KEY"}
    environment.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.Popen(
        [sys.executable, "-c", HOST_CLI, *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(process: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"no output within {timeout_s} s")
    return process.stdout.readline().strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_the_simulator_command_prints_its_port_and_stops_on_ctrl_c(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    link = tmp_path / "monitor"
    simulator = run_cli("simulator", "--scenario", "fixed:7", "--fast", "--link", str(link))
    processes.append(simulator)

    path = read_line(simulator)
    assert path.startswith("/dev/")
    with open_transport(path) as transport:
        driver = ReferenceDriver(transport)
        assert driver.identify().serial == "SIM-0001"
        result = None
        deadline = time.monotonic() + 20
        while not isinstance(result, Result) and time.monotonic() < deadline:
            result = driver.poll(0.2)
        assert isinstance(result, Result) and result.co_ppm == 7

    simulator.send_signal(signal.SIGINT)
    assert simulator.wait(timeout=10) == 0
    assert not link.exists()


def test_an_unknown_scenario_is_a_usage_error(processes: list[subprocess.Popen[str]]) -> None:
    simulator = run_cli("simulator", "--scenario", "nonsense")
    processes.append(simulator)
    _, stderr = simulator.communicate(timeout=30)
    assert simulator.returncode == 2
    assert "no scenario" in stderr


def test_the_bridge_command_forwards_and_stops_cleanly_on_sigterm(
    start_monitor: StartMonitor,
    server: FakeServer,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
) -> None:
    monitor = start_monitor()
    queue = tmp_path / "bridge.db"
    bridge = run_cli(
        "bridge",
        "--device",
        str(monitor.link),
        "--server",
        server.url,
        "--queue",
        str(queue),
        env={"EXHALE_BRIDGE_API_KEY": API_KEY},
    )
    processes.append(bridge)
    while "connected SIM-0001" not in (line := read_line(bridge)):
        assert line.startswith("monitor "), line

    monitor.inject(Step("test", count=2))
    wait_for(lambda: len(server.accepted) == 2, timeout_s=20, what="two readings delivered")

    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(timeout=20) == 0
    assert queue.exists()


def test_the_bridge_command_needs_an_api_key(processes: list[subprocess.Popen[str]]) -> None:
    bridge = run_cli("bridge", "--device", "/dev/null", "--server", "http://127.0.0.1:9")
    processes.append(bridge)
    _, stderr = bridge.communicate(timeout=30)
    assert bridge.returncode == 2
    assert "EXHALE_BRIDGE_API_KEY" in stderr
