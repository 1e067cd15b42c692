"""A CO monitor on a pseudo-terminal, speaking the reference protocol, driven by a ``Scenario``.

One thread runs a select loop: it answers the host's commands and steps through the scenario, whose
script is a generator yielding how long to wait before its next move. Nothing in here is clinical
logic; it only makes the bytes a monitor would make, good and bad.

A disconnect closes the pseudo-terminal (the host's reads fail at once, as when a USB cable is
pulled) and later opens a new one, usually with a different ``/dev/pts/N``. Give ``link`` to get a
stable path: a symbolic link that is removed while "unplugged" and points at the new terminal
after, as ``/dev/serial/by-id/...`` links do for real USB monitors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import select
import threading
import time
import tty
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path

from devices.errors import ProtocolError
from devices.protocol import (
    AckResult,
    Command,
    CommandReply,
    Frame,
    Identify,
    LineSplitter,
    MonitorState,
    RequestStatus,
    SetClock,
    StartTest,
    Status,
    encode_frame,
    parse_command,
)
from devices.readings import DeviceIdentity, Result
from devices.simulator.scenario import FAST_SCALE, FAULT_PPM, Scenario, Step
from devices.simulator.state import SequenceStore

_log = logging.getLogger(__name__)

LOOP_TICK_S = 0.02
RESEND_BATCH = 10
"""Unacknowledged results resent each ``resend_s``, oldest first."""
PENDING_MAX = 1000
"""Unacknowledged results the simulated monitor remembers (oldest forgotten first)."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SimulatedMonitor:
    """A monitor on a pseudo-terminal. ``start()`` opens it; ``path`` is where a host connects.

    ``inject(*steps)`` runs steps next, ahead of the scenario (faults on demand). Everything the
    monitor measured is in ``results`` (including results the host never received), and
    ``steps_done`` is set once the scenario's steps and injected steps have all run.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        fast: bool = False,
        link: Path | None = None,
        state_file: Path | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.scenario = scenario
        self._scale = FAST_SCALE if fast else 1.0
        self.timings = scenario.timings.scaled(self._scale)
        self.link = link
        self._sequences = SequenceStore(state_file)
        self._clock = clock
        self._clock_offset = dt.timedelta(0)
        self._values = scenario.values.generate()
        self._steps: deque[Step] = deque(scenario.steps)
        self._lock = threading.Lock()  # guards _injected and _pending, shared with callers
        self._injected: deque[Step] = deque()
        self._pending: OrderedDict[int, Result] = OrderedDict()
        self._status = Status(MonitorState.WARMING_UP)
        self._battery = scenario.battery_percent
        self._due = scenario.calibration_due_on or (clock().date() + dt.timedelta(days=180))
        self._rng = random.Random(scenario.seed)  # noqa: S311 - fault bytes, not secrets
        self._splitter = LineSplitter()
        self._silent_until = 0.0
        self._resend_at = 0.0
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = ""
        self.connections = 0
        self.results: list[Result] = []
        self.commands: deque[Command] = deque(maxlen=1000)
        self.steps_done = threading.Event()

    @property
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity(self.scenario.serial, self.scenario.model, self.scenario.firmware)

    @property
    def status(self) -> Status:
        return self._status

    @property
    def unacknowledged(self) -> list[int]:
        with self._lock:
            return list(self._pending)

    @property
    def connected(self) -> bool:
        return self._master is not None

    @property
    def silent(self) -> bool:
        """True during a ``silence`` step."""
        return self._silent

    def start(self) -> SimulatedMonitor:
        if self.link is not None and self.link.exists() and not self.link.is_symlink():
            raise FileExistsError(f"{self.link} exists and is not a link: choose another --link")
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name="exhale-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._close_pty()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stopped (or ``timeout_s``); True when stopped."""
        return self._stop.wait(timeout_s)

    def inject(self, *steps: Step) -> None:
        with self._lock:
            self.steps_done.clear()
            self._injected.extend(steps)

    def __enter__(self) -> SimulatedMonitor:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # The loop: commands as they come, the script when it is due.

    def _run(self) -> None:
        script = self._script()
        wake_at = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= wake_at:
                    wake_at = now + next(script)
                    continue
                if now >= self._resend_at:
                    self._resend()
                self._serve(min(wake_at - now, LOOP_TICK_S))
        except Exception:
            _log.exception("simulated monitor failed")
            raise
        finally:
            self._close_pty()

    def _serve(self, timeout_s: float) -> None:
        master = self._master
        if master is None:
            self._stop.wait(timeout_s)
            return
        ready, _, _ = select.select([master], [], [], timeout_s)
        if not ready:
            return
        try:
            data = os.read(master, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            _log.debug("simulator read: %s", error)
            return
        for line in self._splitter.feed(data):
            try:
                command = parse_command(line)
            except ProtocolError as error:
                _log.info("simulator ignored a command: %s", error.reason)
                continue
            self.commands.append(command)
            if not self._silent:
                self._answer(command)

    def _answer(self, command: Command) -> None:
        reply: Frame
        match command:
            case Identify():
                reply = self.identity
            case RequestStatus():
                reply = self._status
            case StartTest():
                with self._lock:
                    waiting = any(step.action == "test" for step in self._injected)
                    ready = self._status.state is MonitorState.READY and not waiting
                    if ready:
                        self._injected.append(Step("test"))
                reply = CommandReply("RUN", ready, "" if ready else "NOT_READY")
            case AckResult(sequence=sequence):
                with self._lock:
                    self._pending.pop(sequence, None)
                reply = CommandReply("ACK", True, str(sequence))
            case SetClock(at=at):
                self._clock_offset = at - self._clock()
                reply = CommandReply("TIM", True)
        self._send(encode_frame(reply))

    @property
    def _silent(self) -> bool:
        return time.monotonic() < self._silent_until

    # The script: a generator of waits, so that a step reads top to bottom.

    def _script(self) -> Iterator[float]:
        self._set_status(Status(MonitorState.WARMING_UP))
        yield self.timings.warmup_s
        self._set_status(Status(MonitorState.ZEROING))
        yield self.timings.zeroing_s
        self._set_status(Status(MonitorState.READY))
        while True:
            step = self._next_step()
            if step is None:
                yield LOOP_TICK_S
            else:
                yield from self._perform(step)

    def _next_step(self) -> Step | None:
        with self._lock:
            if self._injected:
                return self._injected.popleft()
            if self._steps:
                return self._steps.popleft()
            self.steps_done.set()
        return Step("test") if self.scenario.auto_test else None

    def _perform(self, step: Step) -> Iterator[float]:
        seconds = step.seconds * self._scale
        match step.action:
            case "test":
                for _ in range(step.count):
                    yield from self._test(step.ppm)
            case "wait":
                yield seconds
            case "garbage":
                self._send(self._rng.randbytes(step.size) + b"\r\n")
            case "bad_checksum":
                line = encode_frame(self._fault_result())
                self._send(line[:-4] + (b"00" if line[-4:-2] != b"00" else b"FF") + b"\r\n")
            case "truncated":
                line = encode_frame(self._fault_result())
                self._send(line[: len(line) // 2])
            case "silence":
                self._silent_until = time.monotonic() + seconds
                yield seconds
            case "disconnect":
                self._close_pty()
                yield seconds
                self._open_pty()
                self._send(encode_frame(self._status))
            case "battery":
                self._battery = step.percent if step.percent is not None else self._battery
            case "calibration_due":
                self._due = step.date or self._due
            case "error":
                self._set_status(Status(MonitorState.ERROR, error_code=step.code))
                yield seconds
                self._set_status(Status(MonitorState.READY))

    def _test(self, ppm: int | None) -> Iterator[float]:
        for remaining in range(self.timings.hold_s, 0, -1):
            self._set_status(Status(MonitorState.BREATH_HOLD, hold_s=remaining))
            yield self.timings.tick_s
        result = Result(
            device_serial=self.scenario.serial,
            sequence=self._sequences.next(self.scenario.serial),
            co_ppm=next(self._values) if ppm is None else ppm,
            measured_at=self._now(),
            battery_percent=self._battery,
            calibration_due_on=self._due,
        )
        self.results.append(result)
        with self._lock:
            self._pending[result.sequence] = result
            while len(self._pending) > PENDING_MAX:
                self._pending.popitem(last=False)
        self._send(encode_frame(result))
        self._resend_at = time.monotonic() + self.timings.resend_s
        self._set_status(Status(MonitorState.ZEROING))
        yield self.timings.recovery_s
        self._set_status(Status(MonitorState.READY))

    def _resend(self) -> None:
        with self._lock:
            unacknowledged = list(self._pending.values())[:RESEND_BATCH]
        for result in unacknowledged:
            self._send(encode_frame(result))
        self._resend_at = time.monotonic() + self.timings.resend_s

    def _fault_result(self) -> Result:
        return Result(
            device_serial=self.scenario.serial,
            sequence=self._sequences.last(self.scenario.serial) + 1,
            co_ppm=FAULT_PPM,
            measured_at=self._now(),
            battery_percent=self._battery,
            calibration_due_on=self._due,
        )

    def _now(self) -> dt.datetime:
        return (self._clock() + self._clock_offset).replace(microsecond=0)

    def _set_status(self, status: Status) -> None:
        self._status = status
        self._send(encode_frame(status))

    # The pseudo-terminal.

    def _send(self, data: bytes) -> None:
        master = self._master
        if master is None or self._silent:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(master, view)
            except BlockingIOError:
                _log.debug("simulator output full, dropped %d bytes", len(view))
                return
            except OSError as error:
                _log.debug("simulator write: %s", error)
                return
            view = view[written:]

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._splitter = LineSplitter()
        self.connections += 1
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(self.path)
            temporary.replace(self.link)
        _log.info("simulated monitor %s on %s", self.scenario.serial, self.path)

    def _close_pty(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (master, slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def run_simulator(
    scenario: Scenario,
    *,
    fast: bool = False,
    link: Path | None = None,
    state_file: Path | None = None,
) -> SimulatedMonitor:
    """Start a simulated monitor and return it; its ``path`` (or ``link``) is where to connect.

    ``fast`` shortens every timing to ``FAST_SCALE`` of itself; ``state_file`` keeps sequence
    numbers across restarts.
    """
    return SimulatedMonitor(scenario, fast=fast, link=link, state_file=state_file).start()
