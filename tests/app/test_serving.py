"""`exhale serve --workers N`: connections spread over the processes, a dead one is replaced,
SIGTERM stops them all, and a port already served is refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app import migrate
from tests.helpers import REPO, child_pids, exhale_env, free_port

CONNECTIONS = 20


def _workers(pid: int) -> list[int]:
    """The supervisor's web processes (multiprocessing's resource tracker left out)."""
    return [c for c in child_pids(pid) if b"resource_tracker" not in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait(condition_name: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {condition_name}"
        time.sleep(0.2)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def _serving(
    database_url: str, tmp_path: Path, workers: int
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    log = (tmp_path / "serve.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=REPO,
        env=exhale_env(database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait("ready", lambda: process.poll() is None and _ready(f"http://127.0.0.1:{port}"))
        _wait(f"{workers} web processes", lambda: len(_workers(process.pid)) == workers)
        _wait(f"{workers} listening sockets", lambda: len(_inodes(port, "0A")) == workers)
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the workers go too
                process.wait()
        log.close()


def _inodes(port: int, state: str) -> set[str]:
    """Socket inodes on local ``port`` in a TCP state (01 established, 0A listening)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def test_each_process_listens_on_its_own_socket_and_a_burst_is_spread(
    fresh_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(fresh_database_url)
    with _serving(fresh_database_url, tmp_path, workers=2) as (process, port):
        listening = _inodes(port, "0A")
        owners = {pid: _socket_inodes(pid) & listening for pid in _workers(process.pid)}
        assert all(len(own) == 1 for own in owners.values()), owners
        assert len(set().union(*owners.values())) == 2, owners  # two sockets, not one shared
        # Opened together, as a proxy's or an EPR's connection pool opens them.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        try:
            for client in clients:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: exhale\r\n\r\n")
            for client in clients:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            accepted = _inodes(port, "01")
            served = Counter(
                {pid: len(_socket_inodes(pid) & accepted) for pid in _workers(process.pid)}
            )
        finally:
            for client in clients:
                client.close()
    assert sum(served.values()) == CONNECTIONS, served
    # Both take a share (a fair coin puts 2 or more of 20 on each side but for 4 in 100,000).
    assert min(served.values()) >= 2, served


def test_a_dead_process_is_replaced_and_sigterm_stops_them_all(
    fresh_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(fresh_database_url)
    with _serving(fresh_database_url, tmp_path, workers=2) as (process, port):
        first, second = _workers(process.pid)
        subprocess.run(["kill", "-KILL", str(first)], check=True)
        _wait(
            "a replacement process",
            lambda: len(_workers(process.pid)) == 2 and first not in _workers(process.pid),
        )
        _wait("serving again", lambda: _ready(f"http://127.0.0.1:{port}"))
        workers = _workers(process.pid)
        assert second in workers
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        for pid in workers:
            _wait(f"process {pid} gone", lambda pid=pid: not _cmdline(pid), timeout_s=10)


def test_a_port_already_served_is_refused(fresh_database_url: str, tmp_path: Path) -> None:
    migrate.upgrade(fresh_database_url)
    with _serving(fresh_database_url, tmp_path, workers=2) as (_process, port):
        second = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env=exhale_env(fresh_database_url),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"Cannot listen on 127.0.0.1:{port}" in second.stderr.decode()
        assert _ready(f"http://127.0.0.1:{port}")


def test_the_processes_stop_when_the_supervisor_is_killed_outright(
    fresh_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(fresh_database_url)
    with _serving(fresh_database_url, tmp_path, workers=2) as (process, port):
        workers = _workers(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for pid in workers:
            _wait(f"orphaned process {pid} gone", lambda pid=pid: not _alive(pid), timeout_s=30)
        assert not _ready(f"http://127.0.0.1:{port}")


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
