"""Helpers for tests that run exhale as a real process, or its commands in this one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exhale_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXHALE_")}
    env.update({"EXHALE_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_exhale(
    *args: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def invoke_exhale(
    *args: str, env: Mapping[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an ``exhale`` command in this process, through the installed command's entry point and
    its error handling, with ``env``'s ``EXHALE_`` settings alone: what ``run_exhale`` does, without
    a new interpreter's two seconds of imports. Keep ``run_exhale`` for what only a process shows.
    """
    from app.cli import main

    settings: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("EXHALE_")
    }
    settings.update({name: value for name, value in env.items() if name.startswith("EXHALE_")})
    with CliRunner().isolation(input=stdin, env=settings) as (stdout, stderr, _output):
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        return subprocess.CompletedProcess(
            list(args), code, stdout.getvalue().decode(), stderr.getvalue().decode()
        )


def child_pids(pid: int) -> list[int]:
    """The process's children, from /proc (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
