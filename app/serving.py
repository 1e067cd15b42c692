"""Several web processes on one port, each accepting on a listening socket of its own.

With one listening socket shared by every process (uvicorn's ``--workers``), whichever process
wakes first accepts a whole burst of new connections: an EPR's or a proxy's pool of keep-alive
connections, opened together, all land on one process while the others idle. Here each process
binds the port itself with ``SO_REUSEPORT``, and the kernel spreads new connections evenly over
their sockets. A supervisor starts the processes, restarts one that dies, and stops them all on
SIGTERM or SIGINT; a process whose supervisor was killed outright stops itself.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from uvicorn.config import STARTUP_FAILURE

from app.logs import get_logger

log = get_logger(__name__)

STOP_TIMEOUT_S = 30.0
ORPHAN_CHECK_S = 1.0


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    """A socket bound to ``host:port``; ``shared``, other processes may bind it too
    (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _stop_when_orphaned(supervisor_pid: int) -> None:
    """SIGTERM this process once its supervisor is gone (killed outright, it could not stop
    us), so that no web process lingers on the port without one."""
    while os.getppid() == supervisor_pid:
        time.sleep(ORPHAN_CHECK_S)
    log.warning("web_process_orphaned", supervisor_pid=supervisor_pid)
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_one(host: str, port: int, options: dict[str, Any]) -> None:
    """One web process: its own socket on the shared port, the app built from the environment."""
    import uvicorn

    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        sock = listening_socket(host, port)
    except OSError as error:
        log.error("web_process_bind_failed", host=host, port=port, error=str(error))
        raise SystemExit(STARTUP_FAILURE) from None
    config = uvicorn.Config("app.main:serving_app", factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Runs ``workers`` web processes until SIGTERM or SIGINT; replaces any that dies."""

    def __init__(self, *, workers: int, host: str, port: int, options: dict[str, Any]) -> None:
        self.workers = workers
        self.host = host
        self.port = port
        self.options = options
        self.processes: list[BaseProcess] = []
        self.stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")

    def _start(self) -> BaseProcess:
        process = self._context.Process(
            target=_serve_one, args=(self.host, self.port, self.options), name="exhale-web"
        )
        process.start()
        return process

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("web_supervisor_stopping", signal=signal.Signals(signum).name)
        self.stopping.set()

    def check_port(self) -> None:
        """Fail at once, with the reason, when the port cannot be bound: taken (by anything,
        another exhale included, which ``SO_REUSEPORT`` alone would let in beside this one) or
        not allowed."""
        listening_socket(self.host, self.port, shared=False).close()

    def run(self) -> int:
        self.check_port()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.processes = [self._start() for _ in range(self.workers)]
        log.info("web_supervisor_started", workers=self.workers, host=self.host, port=self.port)
        code = 0
        while not self.stopping.wait(0.5):
            for index, process in enumerate(self.processes):
                if process.is_alive():
                    continue
                # uvicorn's exit code for a process that could not start serving (a broken app,
                # port or TLS): restarting it would fail the same way, so stop instead.
                if process.exitcode == STARTUP_FAILURE:
                    log.error("web_process_failed_to_start", pid=process.pid)
                    code = 1
                    self.stopping.set()
                    break
                log.warning("web_process_died", pid=process.pid, exit_code=process.exitcode)
                self.processes[index] = self._start()
        self.stop()
        return code

    def stop(self) -> None:
        """SIGTERM to every process (uvicorn finishes the requests in flight), then wait."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
