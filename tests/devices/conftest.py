"""Fixtures for the device tests: simulated monitors on real pseudo-terminals, a real HTTP server.

None of these touch the service's database fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.simulator import Scenario, SimulatedMonitor, Values
from tests.devices.helpers import QUICK, FakeServer

StartMonitor = Callable[..., SimulatedMonitor]


def manual_scenario(**changes: Any) -> Scenario:
    """A monitor that tests only when told (``inject`` or the host's RUN), with quick timings."""
    options: dict[str, Any] = {
        "auto_test": False,
        "timings": QUICK,
        "values": Values("sequence", readings=(1, 2, 3, 5, 8, 13, 21)),
    }
    options.update(changes)
    return Scenario(**options)


@pytest.fixture
def start_monitor(tmp_path: Path) -> Iterator[StartMonitor]:
    monitors: list[SimulatedMonitor] = []

    def start(scenario: Scenario | None = None, **options: Any) -> SimulatedMonitor:
        options.setdefault("link", tmp_path / f"monitor-{len(monitors)}")
        monitor = SimulatedMonitor(scenario or manual_scenario(), fast=True, **options)
        monitors.append(monitor.start())
        return monitor

    yield start
    for monitor in monitors:
        monitor.stop()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.stop()
