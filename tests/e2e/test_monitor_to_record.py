"""Monitor, bridge and server as separate real processes: outages and restarts lose nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app import migrate
from app.db import make_engine, make_sessionmaker, session_scope
from app.monitors.models import DeviceReading
from devices.simulator import SimulatedMonitor, Step
from tests import factories
from tests.devices.conftest import manual_scenario
from tests.devices.helpers import wait_for
from tests.helpers import REPO, exhale_env, free_port


def _seed(database_url: str) -> str:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            unit = factories.make_unit(session, service=factories.make_service(session))
            _client, secret = factories.make_api_client(session, role="bridge", organisation=unit)
    finally:
        engine.dispose()
    return secret


def _stored(database_url: str) -> list[tuple[str, int, int]]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(DeviceReading.device_serial, DeviceReading.sequence, DeviceReading.co_ppm)
            )
            return sorted((serial, sequence, ppm) for serial, sequence, ppm in rows)
    finally:
        engine.dispose()


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_results_survive_a_server_outage_and_a_bridge_restart(
    tmp_path: Path, fresh_database_url: str, processes: list[Process]
) -> None:
    secret = _seed(fresh_database_url)
    env = exhale_env(fresh_database_url, EXHALE_BRIDGE_API_KEY=secret)
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"

    def start_server() -> Process:
        process = Process(["serve", "--port", str(port)], env, tmp_path / "server.log")
        processes.append(process)
        wait_for(lambda: _ready(server_url), timeout_s=60, what="the server")
        return process

    def start_bridge() -> Process:
        process = Process(
            [
                "bridge",
                "--device",
                str(tmp_path / "monitor"),
                "--server",
                server_url,
                "--queue",
                str(tmp_path / "queue.db"),
            ],
            env,
            tmp_path / "bridge.log",
        )
        processes.append(process)
        return process

    monitor = SimulatedMonitor(manual_scenario(), fast=True, link=tmp_path / "monitor").start()
    try:
        server = start_server()
        bridge = start_bridge()
        monitor.inject(Step("test", count=3))
        wait_for(lambda: len(_stored(fresh_database_url)) == 3, timeout_s=30, what="3 stored")

        server.stop()  # the server is down for a while
        monitor.inject(Step("test", count=3))
        wait_for(
            lambda: monitor.unacknowledged == [] and len(monitor.results) == 6,
            timeout_s=30,
            what="the bridge to queue the results",
        )
        bridge.stop()  # and the bridge restarts in the middle of the outage
        bridge = start_bridge()
        time.sleep(0.5)
        start_server()
        monitor.inject(Step("test", count=2))

        wait_for(lambda: len(monitor.results) == 8, timeout_s=30, what="8 tests")
        expected = sorted((r.device_serial, r.sequence, r.co_ppm) for r in monitor.results)
        wait_for(
            lambda: len(_stored(fresh_database_url)) >= 8,
            timeout_s=60,
            what="every result on the server",
        )
        assert _stored(fresh_database_url) == expected
        assert len({(serial, sequence) for serial, sequence, _ in expected}) == 8
    finally:
        monitor.stop()
    assert "Traceback" not in (tmp_path / "bridge.log").read_text()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
