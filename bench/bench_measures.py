"""Benchmark: every measure for every unit for 12 months, on a national-scale year in PostgreSQL.

Creates its own database on the server in BENCH_DATABASE_URL's host (default
postgresql://postgres@127.0.0.1:5432), loads 650,000 synthetic pregnancies (``app.measures.demo``,
COPY) and brings the stored measures up to date as the worker would (``rollup.refresh``, timed);
then, in a fresh process, times ``SELECT count(*) FROM co_reading`` against the whole export
(``service.iter_values`` for all units and 12 months, written as CSV), and prints the ratio, the
peak resident memory of that process, and the machine. For reference it also times the export
with the last month's counts marked stale at every unit (writes since the worker's last refresh,
recounted live) and one recount of everything from the records. Drops the database at the end.

    python bench/bench_measures.py [--pregnancies 650000] [--units 150] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from app.config import MeasuresSettings  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.main import settle_heap  # noqa: E402
from app.measures import bulk, demo, export, queries, rollup, service  # noqa: E402
from app.measures.models import MeasureMark  # noqa: E402
from app.measures.months import Month  # noqa: E402
from app.measures.sql import Scope  # noqa: E402

FIRST_BOOKING = dt.date(2025, 1, 1)
TODAY = dt.date(2026, 9, 30)  # every pregnancy booked in 2025 has ended and been followed up
FIRST, LAST = Month(2025, 1), Month(2025, 12)


def _rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited at exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _machine(engine: Engine) -> str:
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kb / 1024 / 1024:.1f} GB"
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} RAM, PostgreSQL {version}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def _produce(
    batches: multiprocessing.Queue[demo.Batch | None],
    units: list[demo.DemoUnit],
    pregnancies: int,
    next_ids: dict[str, int],
) -> None:
    for batch in demo.generate(
        units,
        pregnancies=pregnancies,
        first_booking=FIRST_BOOKING,
        months=12,
        today=TODAY,
        ids=demo.Ids(next_ids),
        batch_size=10_000,
    ):
        batches.put(batch)
    batches.put(None)


def load(url: str, pregnancies: int, units: int) -> None:
    engine = make_engine(url)
    started = time.perf_counter()
    rng = random.Random(7)
    with engine.begin() as connection:
        service_ids = [
            connection.execute(
                text(
                    "INSERT INTO organisation (kind, code, name, is_active, created_at) VALUES "
                    "('stop_smoking_service', :code, :name, true, now()) RETURNING id"
                ),
                {"code": f"SS{n:03d}", "name": f"Stop Smoking Service {n}"},
            ).scalar_one()
            for n in range(max(1, units // 4))
        ]
        demo_units = []
        for n in range(units):
            unit_id = connection.execute(
                text(
                    "INSERT INTO organisation (kind, code, name, default_service_id, is_active, "
                    "created_at) VALUES ('maternity_unit', :code, :name, :service, true, now()) "
                    "RETURNING id"
                ),
                {
                    "code": f"R{n:04d}",
                    "name": f"Maternity Unit {n}",
                    "service": service_ids[n % len(service_ids)],
                },
            ).scalar_one()
            demo_units.append(
                demo.DemoUnit(unit_id, service_ids[n % len(service_ids)], rng.uniform(0.3, 2.0))
            )
        # A benchmark database nobody else uses: skip the foreign-key triggers while loading
        # (the generator's ids are consistent by construction; the tests check the real path).
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        ids = bulk.next_ids(connection)
        rows = bulk.load(connection, demo.staff(demo_units, today=TODAY, ids=ids))
        # Generate in a second process while this one copies: the two cores work together.
        context = multiprocessing.get_context("fork")
        batches: multiprocessing.Queue[demo.Batch | None] = context.Queue(maxsize=3)
        producer = context.Process(
            target=_produce, args=(batches, demo_units, pregnancies, dict(ids.next))
        )
        producer.start()
        while (batch := batches.get()) is not None:
            rows += bulk.load(connection, batch)
        producer.join()
        bulk.move_sequences(connection)
    loaded = time.perf_counter() - started
    with make_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
        counts = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("pregnancy", "contact", "co_reading", "referral", "referral_event")
        }
    print(f"loaded {rows:,} rows in {loaded:.1f} s (then VACUUM ANALYZE): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()))  # fmt: skip
    with make_sessionmaker(engine).begin() as session:
        started = time.perf_counter()
        done = rollup.refresh(session, MeasuresSettings(), today=TODAY)
    print(f"refresh after the load (the worker's job): {done.pairs:,} unit-months counted and "
          f"stored in {time.perf_counter() - started:.1f} s")  # fmt: skip
    engine.dispose()


def _export(session: Session) -> tuple[float, int]:
    with open(os.devnull, "w") as sink:
        started = time.perf_counter()
        rows = service.iter_values(
            session, units=None, first=FIRST, last=LAST, settings=MeasuresSettings()
        )
        lines = 0
        for chunk in export.csv_chunks(rows, suppress_below=8):
            sink.write(chunk)
            lines += chunk.count("\n")
        return time.perf_counter() - started, lines


def measure(url: str, repeat: int) -> None:
    """Run in a fresh process, so that its peak memory is the measuring's alone."""
    settle_heap()  # as `exhale serve` and `exhale measures export` do once they have started
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    scans, heaps, exports, lines = [], [], [], 0
    for _ in range(repeat):
        with engine.connect() as connection:
            started = time.perf_counter()
            connection.execute(text("SELECT count(*) FROM co_reading")).scalar()
            scans.append(time.perf_counter() - started)
            started = time.perf_counter()  # for reference: a scan that reads every row
            connection.execute(text("SELECT sum(co_ppm) FROM co_reading")).scalar()
            heaps.append(time.perf_counter() - started)
        with sessions() as session:
            seconds, lines = _export(session)
            exports.append(seconds)
    scan, measures = statistics.median(scans), statistics.median(exports)
    print(f"machine: {_machine(engine)}")
    print(f"scan    SELECT count(*) FROM co_reading: {scan:.3f} s (median of {repeat}: "
          + ", ".join(f"{s:.3f}" for s in scans) + ")")  # fmt: skip
    print(f"measures all units x 12 months, CSV {lines - 1:,} rows: {measures:.3f} s (median: "
          + ", ".join(f"{s:.3f}" for s in exports) + ")")  # fmt: skip
    print(f"ratio   measures / scan: {measures / scan:.1f}")
    heap = statistics.median(heaps)
    print(f"for reference, SELECT sum(co_ppm) FROM co_reading (every row read): {heap:.3f} s; "
          f"measures / that: {measures / heap:.1f}")  # fmt: skip
    print(f"peak RSS of the measuring process: {_rss_mb():.0f} MB")
    with sessions() as session:  # rolled back: the marks are the bench's own
        unit_ids = session.scalars(
            text("SELECT id FROM organisation WHERE kind = 'maternity_unit'")
        ).all()
        marks = [{"unit_id": u, "month": LAST.label} for u in unit_ids]
        session.execute(insert(MeasureMark), marks)
        stale, _lines = _export(session)
        session.rollback()
    print(f"for reference, the same with {LAST} marked stale at every unit (recounted live): "
          f"{stale:.3f} s")  # fmt: skip
    with sessions() as session:
        started = time.perf_counter()
        queries.compute(session, scope=Scope(None, FIRST, LAST), settings=MeasuresSettings())
        recount = time.perf_counter() - started
    print(f"for reference, recounting all 12 months from the records: {recount:.3f} s")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pregnancies", type=int, default=650_000)
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--measure-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        measure(args.measure_only, args.repeat)
        return
    with common.throwaway_database(keep=args.keep) as url:
        name = make_url(url).database
        print(f"database {name}: {args.pregnancies:,} pregnancies at {args.units} units")
        load(url, args.pregnancies, args.units)
        subprocess.run(
            [sys.executable, __file__, "--measure-only", url, "--repeat", str(args.repeat)],
            check=True,
        )
        print(f"peak RSS of the loading process: {_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
