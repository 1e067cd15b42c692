"""`make run`'s command: migrate, bootstrap, serve with the worker, stop on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import REPO, child_pids, exhale_env, free_port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "exhale run exited early"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {timeout_s} s")


def test_run_serves_with_the_worker_and_stops_both_on_ctrl_c(
    tmp_path: Path, fresh_database_url: str
) -> None:
    port = free_port()
    out, err = (tmp_path / "stdout").open("w+b"), (tmp_path / "stderr").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run", "--port", str(port)],
        cwd=REPO,
        env=exhale_env(fresh_database_url),
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", process, timeout_s=120)
        assert ready.json() == {"status": "ready"}
        printed = (tmp_path / "stdout").read_text()
        assert re.search(r"username: admin\s+password: \S+", printed), printed
        workers = child_pids(process.pid)
        assert len(workers) == 1, "exactly one worker process beside the web server"
        deadline = time.monotonic() + 30
        while b"worker_started" not in (tmp_path / "stderr").read_bytes():
            assert time.monotonic() < deadline, "worker never started"
            time.sleep(0.2)

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(timeout=30) in (0, 130)
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), "worker left running"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()
        err.close()
    logs = (tmp_path / "stderr").read_text()
    assert "Traceback" not in logs
    assert "worker_stopped" in logs


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True
