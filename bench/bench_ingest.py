"""Benchmark: readings per second through ``POST /api/v1/readings`` against a plain psycopg loop.

In a throwaway PostgreSQL database (see ``common.py``), each request records a CO test of 6 ppm
for a woman the unit has not seen before, so every one writes the most a reading can: the
pregnancy, the contact, the reading, the referral, its event, its outbox message (with
``pg_notify``), three audit rows and the measures' marks (two or three), in one transaction.

1. Baseline: ``--connections`` threads, each a psycopg connection writing those same rows with
   plain INSERTs, one transaction per reading.
2. The app: ``exhale serve --workers N`` (a real uvicorn), driven by ``--connections`` concurrent
   keep-alive connections (``http_load.py``) as fast as it answers (closed loop). Every answer
   must be 201. The two take turns, the baseline first and last (``--slots``): the ratio is of
   their means.
3. Latency at a fixed ``--rate`` requests per second (open loop: each request is sent at its
   scheduled time, whether or not earlier ones have been answered; latency runs from that time).
4. Peak resident memory of each web process over the whole run.

    python bench/bench_ingest.py [--quick] [--workers 2] [--connections 16] [--seconds 15]
        [--slots 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import http_load

from app.measures.rollup import marks_for_new_reading

RSS_TARGET_MB = 300
RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0


class Women:
    """A new synthetic NHS number per reading, shared safely between threads and tasks."""

    def __init__(self, start: int) -> None:
        self._numbers = common.synthetic_nhs_numbers(start)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return next(self._numbers)


def body(nhs_number: str, now: dt.datetime) -> dict[str, Any]:
    today = now.date()
    return {
        "nhs_number": nhs_number,
        "measured_at": (now - dt.timedelta(minutes=1)).isoformat(),
        "co_ppm": 6,
        "smoking_status": "smoker",
        "source_id": f"bench-{uuid.uuid4().hex}",
        "pregnancy": {
            "estimated_due_date": (today + dt.timedelta(days=280 - 84)).isoformat(),
            "given_name": "Jane",
            "family_name": "Benchmark",
            "date_of_birth": "1994-02-17",
            "phone": "07700 900123",
            "postcode": "LS1 4AP",
        },
    }


# --- 1. the baseline: plain psycopg, the same rows ----------------------------------------------

BASELINE_SQL = [
    "INSERT INTO pregnancy (unit_id, nhs_number, given_name, family_name, date_of_birth, phone, "
    "postcode, estimated_due_date, created_at, updated_at) VALUES (%(unit)s, %(nhs)s, 'Jane', "
    "'Benchmark', '1994-02-17', '07700 900123', 'LS1 4AP', %(edd)s, %(now)s, %(now)s) "
    "RETURNING id",
    "INSERT INTO contact (pregnancy_id, kind, occurred_on, gestation_days, created_at) VALUES "
    "(%(pregnancy)s, 'booking', %(on)s, 84, %(now)s) RETURNING id",
    "INSERT INTO referral (pregnancy_id, service_id, status, reasons, policy_version, opened_at, "
    "first_contact_due_at, version, updated_at, failed_contact_attempts) VALUES (%(pregnancy)s, "
    "%(service)s, 'pending', '[\"co_elevated\", \"self_reported_smoker\"]', 'r1', %(now)s, "
    "%(now)s, 1, %(now)s, 0) RETURNING id",
    "INSERT INTO co_reading (pregnancy_id, contact_id, measured_at, outcome, co_ppm, "
    "smoking_status, source_id, api_client_id, created_at, referral_id, advice, policy_version) "
    "VALUES (%(pregnancy)s, %(contact)s, %(now)s, 'measured', 6, 'smoker', %(source)s, "
    "%(client)s, %(now)s, %(referral)s, %(advice)s, 'r1') RETURNING id",
    "INSERT INTO referral_event (referral_id, kind, data, actor_type, actor_id, actor_name, "
    "occurred_at, created_at) VALUES (%(referral)s, 'created', %(event)s, 'api_client', "
    "%(client)s, 'bench-epr', %(now)s, %(now)s)",
    "INSERT INTO outbox_message (service_id, referral_id, event_type, webhook_id, payload, "
    "status, attempts, next_attempt_at, created_at) VALUES (%(service)s, %(referral)s, "
    "'referral.created', %(webhook)s, %(payload)s, 'pending', 0, %(now)s, %(now)s)",
    "INSERT INTO audit_event (occurred_at, actor_type, actor_id, actor_name, role, "
    "organisation_id, action, record_type, record_id, outcome, subject_pregnancy_id) VALUES "
    "(%(now)s, 'api_client', %(client)s, 'bench-epr', 'epr', %(unit)s, 'create', 'pregnancy', "
    "%(pregnancy)s, 'allowed', %(pregnancy)s), (%(now)s, 'api_client', %(client)s, 'bench-epr', "
    "'epr', %(unit)s, 'create', 'referral', %(referral)s, 'allowed', %(pregnancy)s), (%(now)s, "
    "'api_client', %(client)s, 'bench-epr', 'epr', %(unit)s, 'create', 'reading', %(reading)s, "
    "'allowed', %(pregnancy)s)",
    "INSERT INTO measure_mark (unit_id, month) SELECT %(unit)s, unnest(CAST(%(months)s AS text[]))",
    "SELECT pg_notify('exhale_outbox', '')",
]
ADVICE = json.dumps([{"code": "referral_made", "text": "x" * 400}])
PAYLOAD = json.dumps({"type": "referral.created", "data": {"woman": {"given_name": "Jane"}}})


@functools.cache
def _months(unit_id: int, today: dt.date) -> list[str]:
    """The months of the measures' marks the app leaves for such a reading (its contact and its
    referral on the day of the test): the baseline writes the same rows."""
    now = dt.datetime.combine(today, dt.time(12), dt.UTC)
    marks = marks_for_new_reading(
        unit_id, measured_at=now, contact_on=today, referral_opened_at=now
    )
    return [mark["month"] for mark in marks]


def _baseline_one(connection: psycopg.Connection[Any], world: common.World, nhs: str) -> None:
    now = dt.datetime.now(dt.UTC)
    p: dict[str, Any] = {
        "months": _months(world.unit_id, now.date()),
        "unit": world.unit_id,
        "service": world.service_id,
        "client": world.client_id,
        "nhs": nhs,
        "now": now,
        "on": now.date(),
        "edd": now.date() + dt.timedelta(days=196),
        "source": f"bench-{uuid.uuid4().hex}",
        "advice": ADVICE,
        "payload": PAYLOAD,
        "webhook": f"msg_{uuid.uuid4().hex}",
    }
    with connection.transaction(), connection.cursor() as cursor:
        p["pregnancy"] = cursor.execute(BASELINE_SQL[0], p).fetchone()[0]  # type: ignore[index]
        p["contact"] = cursor.execute(BASELINE_SQL[1], p).fetchone()[0]  # type: ignore[index]
        p["referral"] = cursor.execute(BASELINE_SQL[2], p).fetchone()[0]  # type: ignore[index]
        p["reading"] = cursor.execute(BASELINE_SQL[3], p).fetchone()[0]  # type: ignore[index]
        p["event"] = json.dumps({"reasons": ["co_elevated"], "reading_id": p["reading"]})
        for statement in BASELINE_SQL[4:]:
            cursor.execute(statement, p)


def baseline(
    url: str, world: common.World, women: Women, *, seconds: float, connections: int
) -> tuple[float, float, float]:
    """Transactions per second of the plain psycopg loop at ``connections`` connections, and
    the CPU milliseconds per transaction of the loop and of PostgreSQL."""
    done = [0] * connections
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(index: int) -> None:
        try:
            with psycopg.connect(common.libpq_url(url)) as connection:
                while not stop.is_set():
                    _baseline_one(connection, world, women.next())
                    done[index] += 1
        except BaseException as error:
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    time.sleep(min(1.0, seconds / 5))  # connections open and warm
    meter = common.CpuMeter(url, [os.getpid()])
    meter.start()
    first, started = sum(done), time.perf_counter()
    time.sleep(seconds)
    last, ended = sum(done), time.perf_counter()
    own, pg = meter.stop()
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    count = max(last - first, 1)
    return count / (ended - started), own * 1000 / count, pg * 1000 / count


# --- 2. the app, closed loop --------------------------------------------------------------------


def _client(base: str, key: str, connections: int) -> aiohttp.ClientSession:
    """The open loop's connections (aiohttp): many requests in flight, at times set by the
    clock, so what the client spends does not set the rate."""
    return aiohttp.ClientSession(
        base,
        headers={"Authorization": f"Bearer {key}"},
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, so
        # that a request never goes out on a connection the server is closing.
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=3),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _post(client: aiohttp.ClientSession, women: Women) -> int:
    """One reading; its status code, or 0 when the connection failed (reported, not raised)."""
    now = dt.datetime.now(dt.UTC)
    try:
        async with client.post("/api/v1/readings", json=body(women.next(), now)) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _closed_loop(
    base: str | Sequence[str],
    key: str,
    women: Women,
    *,
    seconds: float,
    connections: int,
    meter: common.CpuMeter,
) -> tuple[float, Counter[int], float, float]:
    """Readings/s, the status codes, and CPU ms per reading (the metered processes, PostgreSQL)
    with ``connections`` connections posting as fast as answered, spread over ``base``'s URLs.

    The requests go out through ``http_load`` (see there): the client takes as little of the
    shared cores as it can."""
    bases = [base] if isinstance(base, str) else list(base)
    statuses: Counter[int] = Counter()
    counting = False
    done = 0
    stop = asyncio.Event()

    def one_body() -> bytes:
        return json.dumps(body(women.next(), dt.datetime.now(dt.UTC))).encode()

    def answered(status: int) -> None:
        nonlocal done
        statuses[status] += 1
        if counting:
            done += 1

    loop = asyncio.create_task(
        http_load.closed_loop(
            bases,
            {"Authorization": f"Bearer {key}"},
            "/api/v1/readings",
            one_body,
            connections=connections,
            on_answer=answered,
            stop=stop,
        )
    )
    await asyncio.sleep(min(1.0, seconds / 5))  # warm-up: connections, pools, caches
    meter.start()
    counting, started = True, time.perf_counter()
    await asyncio.sleep(seconds)
    counted, ended = done, time.perf_counter()
    own, pg = meter.stop()
    stop.set()
    await loop
    counted = max(counted, 1)
    return counted / (ended - started), statuses, own * 1000 / counted, pg * 1000 / counted


# --- 3. the app, open loop at a fixed rate ------------------------------------------------------


async def _open_loop(
    base: str, key: str, women: Women, *, rate: float, seconds: float
) -> tuple[list[float], Counter[int]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    async with _client(base, key, 64) as client:

        async def one(due: float) -> None:
            status = await _post(client, women)
            latencies.append(time.perf_counter() - due)
            statuses[status] += 1

        tasks = []
        started = time.perf_counter()
        for n in itertools.count():
            due = started + n / rate
            if due - started >= seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    return latencies, statuses


PROFILE = common.LOGS / "ingest.folded"


def _start_profiler(pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling every web process for the closed loop's duration (folded stacks).

    Only threads holding the GIL are sampled (``--gil``): where the CPU goes, not the 16 threads
    waiting on PostgreSQL.
    """
    common.LOGS.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", "250"]
    command += ["--format", "raw", "--duration", str(int(seconds)), "--output", str(PROFILE)]
    command += ["--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def run(args: argparse.Namespace) -> dict[str, float]:
    """The baseline and the app take turns (``--slots`` each for the app, one more for the
    baseline, first and last): a machine whose speed drifts, with other work on it, moves both."""
    women = Women(random.randrange(0, 50_000_000))
    slot = args.seconds / args.slots
    with common.throwaway_database() as url:
        world = common.seed(url)
        print(f"machine: {common.machine(url)}")
        raws = [baseline(url, world, women, seconds=slot, connections=args.connections)]
        apps = []
        statuses: Counter[int] = Counter()
        with common.web_server(url, workers=args.workers) as (base, process):
            profiler = _start_profiler(process.popen.pid, args.seconds) if args.profile else None
            meter = common.CpuMeter(url, common.process_tree(process.popen.pid))
            for _ in range(args.slots):
                rate, answered, app_cpu, app_pg_cpu = uvloop.run(
                    _closed_loop(
                        base,
                        world.api_key,
                        women,
                        seconds=slot,
                        connections=args.connections,
                        meter=meter,
                    )
                )
                apps.append((rate, app_cpu, app_pg_cpu))
                statuses += answered
                raws.append(baseline(url, world, women, seconds=slot, connections=args.connections))
            if profiler is not None:
                profiler.wait()
                print(f"profile  py-spy folded stacks of the web processes: {PROFILE}")
            latencies, paced = uvloop.run(
                _open_loop(base, world.api_key, women, rate=args.rate, seconds=args.pace_seconds)
            )
            peaks = common.peak_rss_mb(process.popen.pid)
    raw = _mean([r[0] for r in raws])
    rate = _mean([a[0] for a in apps])
    app_cpu, app_pg_cpu = _mean([a[1] for a in apps]), _mean([a[2] for a in apps])
    base_own, base_pg = _mean([r[1] for r in raws]), _mean([r[2] for r in raws])
    bad = {s: n for s, n in (statuses + paced).items() if s != 201}
    print(
        f"baseline plain psycopg, {args.connections} connections: {raw:,.0f} tx/s "
        f"(in turns with the app: {', '.join(f'{r[0]:,.0f}' for r in raws)})"
    )
    print(
        f"ingest   POST /api/v1/readings, {args.workers} web process(es), {args.connections} "
        f"connections: {rate:,.0f} readings/s ({', '.join(f'{a[0]:,.0f}' for a in apps)})"
    )
    ratio = rate / raw
    print(f"ratio    ingest / baseline: {ratio:.2f} (target >= {RATIO_TARGET})")
    print(
        f"cpu      per reading: web processes {app_cpu:.2f} ms + PostgreSQL {app_pg_cpu:.2f} ms; "
        f"per baseline transaction: psycopg loop {base_own:.2f} ms + PostgreSQL {base_pg:.2f} ms"
    )
    cpu_ratio = (base_own + base_pg) / (app_cpu + app_pg_cpu)
    print(
        f"cpu      ratio of CPU per transaction, baseline / ingest: {cpu_ratio:.2f} (what the "
        "throughput ratio tends to when both are CPU-bound on the same cores)"
    )
    p99 = common.percentile(latencies, 99) * 1000
    print(
        f"latency  at {args.rate:.0f} requests/s for {args.pace_seconds:.0f} s (open loop): "
        f"{common.summary_ms(latencies)} (target p99 <= {P99_TARGET_MS:.0f} ms)"
    )
    worst = max(peaks.values())
    print(
        "memory   peak RSS of each process (when N > 1: the supervisor, multiprocessing's resource "
        "tracker, then the web processes): "
        + ", ".join(f"{mb:.0f} MB" for mb in peaks.values())
        + f" (target < {RSS_TARGET_MB} MB each)"
    )
    if bad:
        print(f"WARNING  answers other than 201 (0: the connection failed): {bad}")
    return {
        "raw": raw,
        "rate": rate,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "p99_ms": p99,
        "rss_mb": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="the app's, in all")
    parser.add_argument("--slots", type=int, default=3, help="turns the app takes")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--pace-seconds", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true", help="py-spy the web processes")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.pace_seconds, args.slots = 4.0, 4.0, 1
    run(args)


if __name__ == "__main__":
    main()
