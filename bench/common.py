"""What the benchmarks share: a throwaway PostgreSQL database, the machine line, seeding, and
real ``exhale`` processes (web server, worker) started and stopped around a measurement.

Every benchmark creates its own database on BENCH_DATABASE_URL's server (default
postgresql://postgres@127.0.0.1:5432) and drops it at the end, as ``bench_measures.py`` does.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

# BENCH_APP_ROOT: another source tree of exhale to import and serve (``bench_steps.py`` measures
# earlier commits this way); by default the one this file is in.
ROOT = Path(os.environ.get("BENCH_APP_ROOT") or Path(__file__).resolve().parent.parent)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.config import DeliverySettings, normalise_database_url  # noqa: E402
from app.db import make_engine, make_sessionmaker, session_scope  # noqa: E402

SERVER_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LOGS = ROOT / "var" / "bench"


def export_tree(ref: str, into: Path) -> Path:
    """The source tree of git commit ``ref`` (``git archive``), in a new folder below ``into``."""
    tree = into / ref.replace("/", "_")
    tree.mkdir()
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", ref], cwd=repo, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def database_url(name: str) -> str:
    url = normalise_database_url(SERVER_URL).set(database=name)
    return url.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a plain libpq URL, for psycopg without SQLAlchemy."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def throwaway_database(prefix: str = "exhale_bench", *, keep: bool = False) -> Iterator[str]:
    """A new migrated database on the benchmark server; dropped afterwards (even on failure)
    unless ``keep``."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = make_engine(
        database_url(make_url(SERVER_URL).database or "postgres"), isolation_level="AUTOCOMMIT"
    )
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if not keep:
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def machine(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
    finally:
        engine.dispose()
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), PostgreSQL {version}, Python "
        f"{platform.python_version()}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {load}"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest rank; values need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values_s: Sequence[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms"
        f" (n={len(ms)})"
    )


def synthetic_nhs_numbers(start: int) -> Iterator[str]:
    """Valid NHS numbers in the synthetic range (9xxxxxxxxx), from ``start`` upwards."""
    stem = 900_000_000 + start
    while stem < 1_000_000_000:
        digits = [int(c) for c in f"{stem:09d}"]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            yield f"{stem:09d}{check}"
        stem += 1


@dataclass(frozen=True)
class World:
    unit_id: int
    unit_code: str
    service_id: int
    client_id: int
    client_name: str
    api_key: str


def seed(url: str, *, role: str = "epr") -> World:
    """A maternity unit, its default stop-smoking service and an API key with ``role``.

    A webhook destination for the service is ``seed_destination``'s.
    """
    from app.identity.models import ClientRole
    from app.identity.service import create_api_client
    from app.orgs.models import Organisation, OrganisationKind

    engine = make_engine(url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = Organisation(
                kind=OrganisationKind.stop_smoking_service.value,
                code="BSS01",
                name="Bench Stop Smoking Service",
            )
            unit = Organisation(
                kind=OrganisationKind.maternity_unit.value,
                code="BMU01",
                name="Bench Maternity Unit",
                default_service=service,
            )
            session.add_all([service, unit])
            session.flush()
            client, secret = create_api_client(
                session, name=f"bench-{role}", role=ClientRole(role), organisation=unit
            )
            return World(unit.id, unit.code, service.id, client.id, client.name, secret)
    finally:
        engine.dispose()


def seed_destination(url: str, *, service_id: int, target: str) -> str:
    """An active webhook destination for the service; returns its signing secret."""
    from app.orgs.models import Organisation
    from referral.delivery import service as delivery
    from referral.delivery.models import PayloadMode
    from referral.delivery.safety import DestinationPolicy
    from referral.delivery.sealing import Sealer

    engine = make_engine(url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = session.get_one(Organisation, service_id)
            _destination, secret = delivery.set_destination(
                session,
                service=service,
                url=target,
                mode=PayloadMode.full,
                policy=DestinationPolicy(require_https=False, allow_private=True),
                now=dt.datetime.now(dt.UTC),
                secret_overlap=dt.timedelta(hours=24),
                sealer=Sealer.from_settings(DeliverySettings()),
            )
            assert secret is not None
            return secret
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exhale_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXHALE_")}
    env.update(
        {
            "EXHALE_DATABASE_URL": url,
            "PYTHONUNBUFFERED": "1",
            # One API key drives the whole load: lift the per-client rate limit out of the way.
            "EXHALE_AUTH__API_REQUESTS_PER_MINUTE": "1000000",
            **extra,
        }
    )
    return env


class ExhaleProcess:
    """``python -m app.cli <args>``, its output in ``var/bench/<name>.log``."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], *, root: Path = ROOT
    ) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=root,  # `python -m` imports the `app` package of the working directory first
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def peak_rss_mb(pid: int) -> dict[int, float]:
    """Peak resident memory (VmHWM) of a process and of each of its children, in MB."""
    peaks = {}
    for each in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[each] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


@contextmanager
def web_server(
    url: str, *, workers: int = 1, root: Path = ROOT, **env: str
) -> Iterator[tuple[str, ExhaleProcess]]:
    """``exhale serve --workers N`` on a free port, ready; yields its base URL and process."""
    port = free_port()
    args = ["serve", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = ExhaleProcess(f"web-{port}", args, exhale_env(url, **env), root=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start:\n{process.tail()}")
            time.sleep(0.1)
        if workers > 1:  # every worker process up, so the first requests wait for none
            while len(_children(process.popen.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
        yield base, process
    finally:
        process.stop()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds each process has used so far (gone processes are left out)."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return used


def process_tree(pid: int) -> list[int]:
    return [pid, *_children(pid)]


def backend_pids(url: str) -> list[int]:
    """PostgreSQL server processes serving the database's connections right now."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).all()
    finally:
        engine.dispose()
    return [pid for (pid,) in rows]


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by some processes and the PostgreSQL
    backends of one database: a figure that depends much less on other load than rates do."""

    def __init__(self, url: str, pids: Sequence[int]) -> None:
        self._url = url
        self._pids = list(pids)
        self._before: dict[int, float] = {}
        self._pg_before: dict[int, float] = {}

    def start(self) -> None:
        self._before = cpu_seconds(self._pids)
        self._pg_before = cpu_seconds(backend_pids(self._url))

    def stop(self) -> tuple[float, float]:
        """(seconds used by the processes, seconds used by PostgreSQL backends)."""
        after = cpu_seconds(self._pids)
        pg_after = cpu_seconds(backend_pids(self._url))
        own = sum(after[p] - self._before.get(p, 0.0) for p in after)
        pg = sum(pg_after[p] - self._pg_before.get(p, 0.0) for p in pg_after)
        return own, pg
