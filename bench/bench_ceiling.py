"""What the reading request's database work costs through each stack: the ceiling for ingest.

In one throwaway PostgreSQL database and one run, the same closed loop as ``bench_ingest.py``
(``--connections`` aiohttp connections, every request a new woman at 6 ppm) drives, in turn:

- ``exhale``: the app itself (``exhale serve --workers 2``);
- ``core``, ``fastapi``, ``raw``: ``bench/ceiling_app.py`` served by two uvicorn processes, the
  same 15 statements sent by hand through SQLAlchemy Core, through psycopg under FastAPI, and
  through psycopg under a bare ASGI callable (no rules and no checks: only the database work,
  the body's validation and the answer);
- ``core_combined``, ``fastapi_combined``: the same rows in four statements, through SQLAlchemy
  Core and through psycopg under FastAPI.

The plain psycopg baseline runs before and after them all. For each it prints readings/s, the
ratio to the baseline, and CPU milliseconds per reading (web processes and PostgreSQL).

    python bench/bench_ceiling.py [--seconds 8] [--connections 16] [--only raw,exhale]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from bench_ingest import Women, _closed_loop, baseline

STACKS = ("exhale", "core", "fastapi", "raw", "core_combined", "fastapi_combined")


@contextmanager
def _ceiling_servers(
    url: str, name: str, processes: int = 2
) -> Iterator[tuple[list[str], list[int]]]:
    """``processes`` uvicorn processes serving ``ceiling_app:<name>``: their URLs and pids."""
    ports = [common.free_port() for _ in range(processes)]
    env = {
        **os.environ,
        "CEILING_DATABASE_URL": common.libpq_url(url),
        "PYTHONPATH": f"{common.ROOT / 'bench'}{os.pathsep}{common.ROOT}",
    }
    quiet = ["--log-level", "warning", "--no-access-log"]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"ceiling_app:{name}", "--port", str(port), *quiet],
            env=env,
            cwd=common.ROOT,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 30
        while not all(_listening(port) for port in ports):
            if any(s.poll() is not None for s in servers) or time.monotonic() > deadline:
                raise RuntimeError(f"ceiling_app:{name} did not start")
            time.sleep(0.1)
        yield bases, [s.pid for s in servers]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", default=",".join(STACKS), help="stacks, comma-separated")
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    women = Women(random.randrange(0, 50_000_000))
    rows = []
    with common.throwaway_database() as url:
        world = common.seed(url)
        print(f"machine: {common.machine(url)}")
        raw = [baseline(url, world, women, seconds=seconds, connections=args.connections)]
        for name in args.only.split(","):
            if name == "exhale":
                with common.web_server(url, workers=2) as (base, process):
                    meter = common.CpuMeter(url, common.process_tree(process.popen.pid))
                    result = uvloop.run(
                        _closed_loop(
                            [base],
                            world.api_key,
                            women,
                            seconds=seconds,
                            connections=args.connections,
                            meter=meter,
                        )
                    )
            else:
                with _ceiling_servers(url, name) as (bases, pids):
                    meter = common.CpuMeter(url, pids)
                    result = uvloop.run(
                        _closed_loop(
                            bases,
                            world.api_key,
                            women,
                            seconds=seconds,
                            connections=args.connections,
                            meter=meter,
                        )
                    )
            rows.append((name, *result))
        raw.append(baseline(url, world, women, seconds=seconds, connections=args.connections))
    rate_raw = sum(r[0] for r in raw) / len(raw)
    cpu_raw = sum(r[1] + r[2] for r in raw) / len(raw)
    print(
        f"baseline plain psycopg, {args.connections} connections: {rate_raw:,.0f} tx/s "
        f"({', '.join(f'{r[0]:,.0f}' for r in raw)}), CPU {cpu_raw:.2f} ms per transaction"
    )
    print(f"2 web processes each, {args.connections} connections, {seconds:.0f} s each")
    for name, rate, statuses, cpu, pg_cpu in rows:
        bad = {s: n for s, n in statuses.items() if s != 201}
        print(
            f"{name:>16}: {rate:6,.0f} readings/s, ratio {rate / rate_raw:.2f}; CPU per reading "
            f"{cpu:.2f} ms web + {pg_cpu:.2f} ms PostgreSQL (baseline / that: "
            f"{cpu_raw / (cpu + pg_cpu):.2f})" + (f" NOT 201: {bad}" if bad else "")
        )


if __name__ == "__main__":
    main()
