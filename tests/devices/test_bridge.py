"""The bridge between a simulated monitor (real pseudo-terminal) and a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.bridge import Backoff, Bridge, BridgeStatus, classify, parse_retry_after
from devices.drivers import ReferenceDriver
from devices.errors import DeviceDisconnected
from devices.reading_queue import ReadingQueue
from devices.readings import Result
from devices.simulator import FAULT_PPM, Step
from devices.transport import Transport
from tests.devices.conftest import StartMonitor
from tests.devices.helpers import API_KEY, FakeServer, wait_for

MakeBridge = Callable[..., Bridge]


@pytest.fixture
def make_bridge(tmp_path: Path) -> Iterator[MakeBridge]:
    bridges: list[Bridge] = []

    def make(device_url: str, server_url: str, **options: Any) -> Bridge:
        options.setdefault("driver_factory", lambda t: ReferenceDriver(t, reply_timeout_s=0.3))
        bridge = Bridge(
            device_url,
            server_url,
            options.pop("api_key", API_KEY),
            options.pop("queue_path", tmp_path / "queue.db"),
            send_backoff=Backoff(0.02, 0.2),
            reconnect_backoff=Backoff(0.02, 0.2),
            poll_s=0.05,
            http_timeout_s=5.0,
            **options,
        )
        bridges.append(bridge)
        return bridge.start()

    yield make
    for bridge in bridges:
        bridge.stop()


def connected(bridge: Bridge) -> None:
    wait_for(lambda: bridge.status.device == "connected", what="the bridge to connect")


def delivered(server: FakeServer, count: int) -> None:
    wait_for(lambda: len(server.accepted) >= count, what=f"{count} readings on the server")


def sent_ok(server: FakeServer, key: str) -> int:
    return sum(1 for post in server.posts_for(key) if post.status in (200, 201))


def body_of(result: Result) -> dict[str, Any]:
    return {
        "device_serial": result.device_serial,
        "sequence": result.sequence,
        "co_ppm": result.co_ppm,
        "measured_at": result.measured_at.isoformat(),
        "battery_percent": result.battery_percent,
        "calibration_due_on": result.calibration_due_on and result.calibration_due_on.isoformat(),
        "model": "exhale-sim",
        "firmware": "1.0.0",
    }


def test_results_reach_the_server_exactly_once(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url)
    connected(bridge)

    monitor.inject(Step("test", count=5))
    delivered(server, 5)

    assert len(server.posts) == 5
    assert [server.accepted[r.key] for r in monitor.results] == [
        body_of(r) for r in monitor.results
    ]
    post = server.posts[0]
    assert post.headers["authorization"] == f"Bearer {API_KEY}"
    assert post.headers["idempotency-key"] == "SIM-0001-1"
    assert post.headers["content-type"] == "application/json"
    wait_for(lambda: bridge.queue.counts().queued == 0, what="an empty queue")
    wait_for(lambda: monitor.unacknowledged == [], what="every result acknowledged")


def test_a_server_outage_loses_nothing(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    server.stop()
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url)
    connected(bridge)

    monitor.inject(Step("test", count=4))
    wait_for(lambda: bridge.status.queued == 4, what="four queued")
    wait_for(lambda: bridge.status.server.startswith("unreachable"), what="server unreachable")
    wait_for(lambda: monitor.unacknowledged == [], what="results acknowledged once queued")

    server.start()
    delivered(server, 4)
    assert all(len(server.posts_for(r.key)) == 1 for r in monitor.results)
    wait_for(lambda: bridge.status.queued == 0 and bridge.status.server == "ok", what="all sent")


def test_errors_slow_answers_and_dropped_connections_are_retried(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    server.script.extend([500, 503, 429, 409, "drop", "store-then-drop"])
    server.retry_after = {429: "1", 409: "0"}
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url)
    connected(bridge)

    monitor.inject(Step("test", count=3))
    delivered(server, 3)
    wait_for(lambda: bridge.status.queued == 0, what="an empty queue")

    answers = [post.status for post in server.posts]
    assert answers[:6] == [500, 503, 429, 409, "drop", "store-then-drop"]
    after_429 = server.posts[3].at - server.posts[2].at
    assert after_429 >= 0.9, "Retry-After: 1 was not honoured"
    for result in monitor.results:
        assert sent_ok(server, result.key) <= 1
    assert len(server.accepted) == 3


def test_a_reading_the_server_refuses_goes_to_rejected(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    server.reject_ppm = {2}
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url)
    connected(bridge)

    monitor.inject(Step("test", count=3))  # 1, 2 and 3 ppm
    delivered(server, 2)
    wait_for(lambda: bridge.status.rejected == 1 and bridge.status.queued == 0, what="rejection")

    (rejected,) = bridge.queue.rejected()
    assert (rejected.sequence, rejected.status_code) == (2, 422)
    assert len(server.posts_for("SIM-0001-2")) == 1


def test_a_wrong_api_key_holds_readings_until_fixed(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer, tmp_path: Path
) -> None:
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url, api_key="wrong")
    connected(bridge)
    monitor.inject(Step("test", count=2))
    wait_for(lambda: "refuses the API key" in bridge.status.server, what="the 401")
    assert bridge.status.rejected == 0
    bridge.stop()

    fixed = make_bridge(str(monitor.link), server.url)
    delivered(server, 2)
    wait_for(lambda: fixed.status.queued == 0, what="an empty queue")


def test_a_bridge_restart_loses_nothing_and_doubles_nothing(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    monitor = start_monitor()
    first = make_bridge(str(monitor.link), server.url)
    connected(first)
    monitor.inject(Step("test", count=3))
    delivered(server, 3)

    server.fail_with = 503
    monitor.inject(Step("test", count=3))
    wait_for(lambda: first.status.queued == 3, what="three queued")
    wait_for(lambda: monitor.unacknowledged == [], what="results acknowledged once queued")
    first.stop()

    server.fail_with = None
    second = make_bridge(str(monitor.link), server.url)
    connected(second)
    monitor.inject(Step("test"))
    delivered(server, 7)
    wait_for(lambda: second.status.queued == 0, what="an empty queue")

    keys = [r.key for r in monitor.results]
    assert sorted(server.accepted) == sorted(keys)
    assert all(sent_ok(server, key) == 1 for key in keys)
    assert all(len(server.posts_for(key)) == 1 for key in keys[:3]), "acknowledged ones resent"


def test_a_monitor_unplugged_and_plugged_back(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    statuses: list[BridgeStatus] = []
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url, on_status=statuses.append)
    connected(bridge)

    monitor.inject(Step("test"), Step("disconnect", seconds=30), Step("test", count=2))
    delivered(server, 3)

    devices = [s.device for s in statuses]
    assert "disconnected" in devices
    assert devices[devices.index("disconnected") :].count("connected") >= 1
    assert monitor.connections == 2


def test_faults_never_crash_the_bridge(
    start_monitor: StartMonitor, make_bridge: MakeBridge, server: FakeServer
) -> None:
    monitor = start_monitor()
    bridge = make_bridge(str(monitor.link), server.url)
    connected(bridge)

    monitor.inject(
        Step("garbage", size=300),
        Step("test"),
        Step("bad_checksum"),
        Step("truncated"),
        Step("garbage", size=70_000),
        Step("silence", seconds=20),
        Step("test"),
        Step("error", code="E07", seconds=5),
        Step("battery", percent=8),
        Step("calibration_due", date=dt.date(2020, 1, 1)),
        Step("test"),
    )
    delivered(server, 3)

    bodies = [server.accepted[r.key] for r in monitor.results]
    assert FAULT_PPM not in [b["co_ppm"] for b in server.accepted.values()]
    assert (bodies[-1]["battery_percent"], bodies[-1]["calibration_due_on"]) == (8, "2020-01-01")
    assert len(server.posts) == 3


def test_queued_results_are_sent_after_a_restart_without_a_monitor(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "queue.db")
    when = dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
    for sequence in (1, 2):
        queue.put(Result("SIM-0009", sequence, 5, when))
    queue.close()
    received: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(201)

    def unplugged(url: str) -> Transport:
        raise DeviceDisconnected(f"{url} is not there")

    bridge = Bridge(
        "/dev/ttyUSB9",
        "https://exhale.example/",
        API_KEY,
        tmp_path / "queue.db",
        opener=unplugged,
        http_transport=httpx.MockTransport(handler),
        reconnect_backoff=Backoff(0.02, 0.2),
    )
    with bridge:
        wait_for(lambda: bridge.status.queued == 0 and len(received) == 2, what="two posts")
        assert bridge.status.device in ("connecting", "disconnected")
    assert [body["sequence"] for body in received] == [1, 2]
    assert bridge.readings_url == "https://exhale.example/api/v1/device-readings"


@pytest.mark.parametrize(
    ("status_code", "verdict"),
    [
        (200, "acknowledged"),
        (201, "acknowledged"),
        (204, "retry"),
        (301, "retry"),
        (400, "rejected"),
        (409, "rejected"),
        (422, "rejected"),
        (401, "retry"),
        (403, "retry"),
        (404, "retry"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
    ],
)
def test_which_answers_acknowledge_reject_or_retry(status_code: int, verdict: str) -> None:
    assert classify(status_code) == verdict


def test_a_4xx_with_retry_after_is_retried() -> None:
    assert classify(409, retry_after=True) == "retry"
    assert classify(500, retry_after=True) == "retry"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("86400", now) == 600.0
    assert parse_retry_after("Sat, 01 Mar 2025 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (4, 8.0), (10, 60.0), (500, 60.0)]:
        delays = [backoff.delay(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_the_status_line() -> None:
    status = BridgeStatus(
        device="connected",
        device_serial="SIM-0001",
        monitor_state="ready",
        queued=2,
        rejected=1,
        server="ok",
        last_sent="SIM-0001-42",
        last_sent_at=dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC),
    )
    assert status.line() == (
        "monitor connected SIM-0001 (ready) | queued 2 | rejected 1 | server ok "
        "| last sent SIM-0001-42 at 10:15:30Z"
    )
