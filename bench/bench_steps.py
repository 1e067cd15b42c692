"""Each step of the write-path work, measured in one run: for the README's "Performance" table.

Exports each git commit given (``git archive``) into a temporary folder and, against one
throwaway PostgreSQL database, serves each in turn with ``exhale serve`` and drives the same
closed loop as ``bench_ingest.py``; the plain psycopg baseline runs before and after them all.
For each commit it prints readings per second, that as a ratio of the baseline of the same run,
the CPU milliseconds per reading (web process and PostgreSQL), and round trips per reading
(``round_trips.py`` run against that commit's code). On a machine shared with other work the
rates move with its load; the ratios, CPU per reading and round trips much less.

    python bench/bench_steps.py REF [REF ...] [--seconds 6] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from bench_ingest import Women, _closed_loop, baseline

HERE = Path(__file__).resolve().parent


def _round_trips(tree: Path) -> str:
    env = {**os.environ, "BENCH_APP_ROOT": str(tree)}
    answer = subprocess.run(
        [sys.executable, str(HERE / "round_trips.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip().splitlines()[-1].split(": ", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("refs", nargs="+")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    women = Women(random.randrange(0, 50_000_000))
    rows = []
    with tempfile.TemporaryDirectory() as folder, common.throwaway_database() as url:
        trees = {ref: common.export_tree(ref, Path(folder)) for ref in args.refs}
        world = common.seed(url)
        print(f"machine: {common.machine(url)}")
        raw = [baseline(url, world, women, seconds=args.seconds, connections=args.connections)]
        for ref, tree in trees.items():
            with common.web_server(url, workers=args.workers, root=tree) as (base, process):
                meter = common.CpuMeter(url, common.process_tree(process.popen.pid))
                rate, statuses, cpu, pg_cpu = uvloop.run(
                    _closed_loop(
                        base,
                        world.api_key,
                        women,
                        seconds=args.seconds,
                        connections=args.connections,
                        meter=meter,
                    )
                )
            bad = {s: n for s, n in statuses.items() if s != 201}
            rows.append((ref, rate, cpu, pg_cpu, _round_trips(tree), bad))
        raw.append(baseline(url, world, women, seconds=args.seconds, connections=args.connections))
    rate_raw = sum(r[0] for r in raw) / len(raw)
    cpu_raw = sum(r[1] + r[2] for r in raw) / len(raw)
    print(
        f"baseline plain psycopg, {args.connections} connections: {rate_raw:,.0f} tx/s "
        f"({', '.join(f'{r[0]:,.0f}' for r in raw)}), CPU {cpu_raw:.2f} ms per transaction"
    )
    print(
        f"{args.workers} web process(es), {args.connections} connections, {args.seconds:.0f} s each"
    )
    for ref, rate, cpu, pg_cpu, trips, bad in rows:
        print(
            f"{ref:>10}: {rate:6,.0f} readings/s, ratio {rate / rate_raw:.2f}; CPU per reading "
            f"{cpu:.2f} ms web + {pg_cpu:.2f} ms PostgreSQL (baseline / that: "
            f"{cpu_raw / (cpu + pg_cpu):.2f}); round trips {trips}"
            + (f" NOT 201: {bad}" if bad else "")
        )


if __name__ == "__main__":
    main()
