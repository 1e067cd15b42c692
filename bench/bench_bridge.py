"""Benchmark: a monitor's result to stored on the server, through the bridge, p50/p95.

In a throwaway PostgreSQL database: ``exhale serve`` runs as a real process; the simulated
monitor (``devices.simulator``, on a pseudo-terminal) and the bridge (``devices.bridge``, with its
durable queue) run here, as they would on a clinic PC. Each test is injected into the monitor;
its latency runs from the moment the monitor produced the result to the moment its row is
committed in ``device_reading`` (polled every 5 ms).

    python bench/bench_bridge.py [--quick] [--results 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from app.db import make_engine
from devices.bridge import Bridge
from devices.simulator import Scenario, SimulatedMonitor, Step, Timings, Values

TARGET_S = 1.0
# The monitor's own timings scaled by ``fast`` (1/100): a test takes a few milliseconds.
QUICK = Timings(warmup_s=2, zeroing_s=2, hold_s=3, tick_s=1, recovery_s=3, resend_s=30)


def _watch_results(
    monitor: SimulatedMonitor, seen: dict[int, float], stop: threading.Event
) -> None:
    """When each result appeared on the monitor (its list grows as it sends)."""
    while not stop.is_set():
        for result in list(monitor.results):
            seen.setdefault(result.sequence, time.perf_counter())
        time.sleep(0.0005)


def run(args: argparse.Namespace) -> dict[str, float]:
    produced: dict[int, float] = {}
    stored: dict[int, float] = {}
    with common.throwaway_database() as url, tempfile.TemporaryDirectory() as folder:
        world = common.seed(url, role="bridge")
        print(f"machine: {common.machine(url)}")
        engine = make_engine(url)
        scenario = Scenario(auto_test=False, timings=QUICK, values=Values("fixed", readings=(5,)))
        monitor = SimulatedMonitor(scenario, fast=True, link=Path(folder) / "monitor").start()
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_results, args=(monitor, produced, stop))
        watcher.start()
        try:
            with common.web_server(url, workers=1) as (base, _web):
                bridge = Bridge(
                    str(Path(folder) / "monitor"),
                    base,
                    world.api_key,
                    Path(folder) / "queue.db",
                    on_status=lambda _status: None,
                ).start()
                try:
                    time.sleep(1.0)  # the bridge has found the monitor
                    with engine.connect() as connection:
                        for _ in range(args.results):
                            monitor.inject(Step("test"))
                            _wait_stored(connection, len(stored) + 1, stored)
                            time.sleep(args.gap_s)
                finally:
                    bridge.stop()
        finally:
            stop.set()
            watcher.join()
            monitor.stop()
            engine.dispose()
    latencies = [stored[s] - produced[s] for s in stored if s in produced]
    print(
        f"bridge   monitor result -> stored on the server, {len(latencies)} results: "
        f"{common.summary_ms(latencies)} (target p95 <= {TARGET_S * 1000:.0f} ms)"
    )
    return {"p95_ms": common.percentile(latencies, 95) * 1000}


def _wait_stored(connection: Connection, count: int, stored: dict[int, float]) -> None:
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        rows = connection.execute(text("SELECT sequence FROM device_reading")).all()
        connection.commit()
        now = time.perf_counter()
        for (sequence,) in rows:
            stored.setdefault(sequence, now)
        if len(stored) >= count:
            return
        time.sleep(0.005)
    raise RuntimeError("a result was not stored within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for development")
    parser.add_argument("--results", type=int, default=50)
    parser.add_argument("--gap-s", type=float, default=0.2, help="pause between tests")
    args = parser.parse_args()
    if args.quick:
        args.results = 15
    run(args)


if __name__ == "__main__":
    main()
