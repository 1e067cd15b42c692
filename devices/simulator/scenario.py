"""Scenarios for the simulated monitor: plain data (dataclasses, or JSON), never driver branches.

A scenario names the monitor (serial, model, firmware), where its readings come from (a fixed
value, a seeded smoker/non-smoker mix, or a list, inline or from a file), the steps it runs in
order (tests and faults), and its timings. ``load_scenario`` accepts a JSON file or a built-in name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from devices.protocol import encode_frame
from devices.readings import CO_PPM_MAX, DeviceIdentity

FAST_SCALE = 0.01
"""``fast`` multiplies every duration by this: a 15 s breath hold takes 0.15 s."""

FAULT_PPM = 499
"""The ppm carried by corrupted frames (bad checksum, truncated): no sound reading is ever 499 in a
scenario's mix, so a test can assert it never arrives."""

StepAction = Literal[
    "test",
    "wait",
    "garbage",
    "bad_checksum",
    "truncated",
    "silence",
    "disconnect",
    "battery",
    "calibration_due",
    "error",
]
STEP_ACTIONS: tuple[str, ...] = get_args(StepAction)


@dataclass(frozen=True)
class Timings:
    """Durations in seconds. ``tick_s`` is one second of the breath-hold countdown.

    Defaults follow a handheld monitor: a few seconds of warm-up and zeroing, a 15 s breath hold
    (NICE NG209 practice), and a recovery before the next test (real monitors need about a minute;
    30 s keeps a demonstration moving).
    """

    warmup_s: float = 5.0
    zeroing_s: float = 5.0
    hold_s: int = 15
    tick_s: float = 1.0
    recovery_s: float = 30.0
    resend_s: float = 5.0

    def scaled(self, factor: float) -> Timings:
        return Timings(
            warmup_s=self.warmup_s * factor,
            zeroing_s=self.zeroing_s * factor,
            hold_s=self.hold_s,
            tick_s=self.tick_s * factor,
            recovery_s=self.recovery_s * factor,
            resend_s=self.resend_s * factor,
        )


@dataclass(frozen=True)
class Values:
    """Where readings come from: ``fixed`` (``ppm``), ``mix`` (seeded, a ``smoker_fraction`` of
    readings at 4 ppm or more, the rest 0-3 ppm), or ``sequence`` (``readings``, cycled)."""

    kind: Literal["fixed", "mix", "sequence"] = "fixed"
    ppm: int = 1
    readings: tuple[int, ...] = ()
    seed: int = 0
    smoker_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.kind == "sequence" and not self.readings:
            raise ValueError("a sequence of readings needs at least one value")
        for value in (self.ppm, *self.readings):
            if not 0 <= value <= CO_PPM_MAX:
                raise ValueError(f"reading {value} is outside 0-{CO_PPM_MAX} ppm")
        if not 0.0 <= self.smoker_fraction <= 1.0:
            raise ValueError("smoker_fraction must be between 0 and 1")

    def generate(self) -> Iterator[int]:
        if self.kind == "fixed":
            while True:
                yield self.ppm
        if self.kind == "sequence":
            while True:
                yield from self.readings
        rng = random.Random(self.seed)  # noqa: S311 - simulated readings, not secrets
        while True:
            if rng.random() < self.smoker_fraction:
                yield min(60, max(4, round(rng.gauss(16, 8))))
            else:
                yield rng.choice((0, 1, 1, 2, 2, 3))


@dataclass(frozen=True)
class Step:
    """One thing the monitor does, in order. Durations are scaled by ``fast``.

    - ``test``: ``count`` breath tests (hold countdown, result, recovery); ``ppm`` overrides the
      scenario's values.
    - ``wait``: stay ready for ``seconds``.
    - ``garbage``: ``size`` random bytes (any value, line ends included) then CR LF.
    - ``bad_checksum``: a result frame (``FAULT_PPM``) whose checksum is wrong.
    - ``truncated``: the first half of a result frame (``FAULT_PPM``), no line end.
    - ``silence``: answer nothing and send nothing for ``seconds``.
    - ``disconnect``: close the pseudo-terminal for ``seconds``, then open a new one.
    - ``battery``: report ``percent`` from now on (low battery: 15 or less).
    - ``calibration_due``: report ``date`` as the calibration due date (past: overdue).
    - ``error``: report error ``code`` for ``seconds``, then ready again.
    """

    action: StepAction
    count: int = 1
    ppm: int | None = None
    seconds: float = 0.0
    size: int = 64
    percent: int | None = None
    date: dt.date | None = None
    code: str = "E01"

    def __post_init__(self) -> None:
        if self.action not in STEP_ACTIONS:
            raise ValueError(f"unknown step {self.action!r}; known: {', '.join(STEP_ACTIONS)}")
        if self.ppm is not None and not 0 <= self.ppm <= CO_PPM_MAX:
            raise ValueError(f"step ppm {self.ppm} is outside 0-{CO_PPM_MAX}")
        if self.action == "battery" and (self.percent is None or not 0 <= self.percent <= 100):
            raise ValueError("a battery step needs percent between 0 and 100")
        if self.action == "calibration_due" and self.date is None:
            raise ValueError("a calibration_due step needs a date (YYYY-MM-DD)")


@dataclass(frozen=True)
class Scenario:
    """A simulated monitor's behaviour. After ``steps`` it keeps testing when ``auto_test`` is
    true, otherwise it waits for the host's start-test command."""

    serial: str = "SIM-0001"
    model: str = "exhale-sim"
    firmware: str = "1.0.0"
    values: Values = field(default_factory=Values)
    steps: tuple[Step, ...] = ()
    auto_test: bool = True
    battery_percent: int = 90
    calibration_due_on: dt.date | None = None
    timings: Timings = field(default_factory=Timings)
    seed: int = 0

    def __post_init__(self) -> None:
        encode_frame(DeviceIdentity(self.serial, self.model, self.firmware))  # ValueError if not

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> Scenario:
        """Build from JSON-shaped data; ``base`` is where relative ``values.file`` paths start."""
        data = dict(data)
        _only(data, {f.name for f in dataclasses.fields(cls)}, "scenario")
        if "values" in data:
            data["values"] = _values(data["values"], base or Path.cwd())
        if "steps" in data:
            data["steps"] = tuple(_step(step) for step in data["steps"])
        if "timings" in data:
            _only(data["timings"], {f.name for f in dataclasses.fields(Timings)}, "timings")
            data["timings"] = Timings(**data["timings"])
        if data.get("calibration_due_on"):
            data["calibration_due_on"] = dt.date.fromisoformat(data["calibration_due_on"])
        return cls(**data)


def load_scenario(spec: str) -> Scenario:
    """A scenario from a JSON file path or a built-in name.

    Built-ins: ``fixed:N`` (every reading N ppm), ``mix`` or ``mix:SEED`` (seeded smoker and
    non-smoker mix), ``file:PATH`` (readings from a file, one integer per line), ``faults`` (a tour
    of every fault between tests), ``manual`` (tests only when the host asks).
    """
    name, _, argument = spec.partition(":")
    if name == "fixed" and argument:
        return Scenario(values=Values("fixed", ppm=_int(argument, spec)))
    if name == "mix":
        return Scenario(values=Values("mix", seed=_int(argument or "1", spec)))
    if name == "file" and argument:
        return Scenario(values=Values("sequence", readings=read_readings(Path(argument))))
    if name == "manual" and not argument:
        return Scenario(auto_test=False, values=Values("mix", seed=1))
    if name == "faults" and not argument:
        return Scenario(values=Values("mix", seed=2), steps=FAULT_TOUR)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"no scenario {spec!r}: give a JSON file or one of fixed:N, mix, mix:SEED, "
            "file:PATH, faults, manual"
        )
    return Scenario.from_dict(json.loads(path.read_text(encoding="utf-8")), base=path.parent)


def read_readings(path: Path) -> tuple[int, ...]:
    """Integers in ppm, one a line; blank lines and ``#`` comments are skipped."""
    readings = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            if not text.isdigit():
                raise ValueError(f"{path} line {number}: {text!r} is not a whole number of ppm")
            readings.append(int(text))
    return tuple(readings)


FAULT_TOUR: tuple[Step, ...] = (
    Step("test"),
    Step("garbage", size=200),
    Step("test"),
    Step("bad_checksum"),
    Step("truncated"),
    Step("test"),
    Step("silence", seconds=10),
    Step("test"),
    Step("disconnect", seconds=5),
    Step("battery", percent=8),
    Step("test"),
    Step("calibration_due", date=dt.date(2020, 1, 1)),
    Step("error", code="E07", seconds=5),
    Step("test"),
)


def _values(data: Mapping[str, Any], base: Path) -> Values:
    data = dict(data)
    _only(data, {"kind", "ppm", "readings", "seed", "smoker_fraction", "file"}, "values")
    if "file" in data:
        data["kind"] = "sequence"
        data["readings"] = read_readings(base / data.pop("file"))
    if "readings" in data:
        data["readings"] = tuple(data["readings"])
    return Values(**data)


def _step(data: Mapping[str, Any]) -> Step:
    data = dict(data)
    _only(data, {f.name for f in dataclasses.fields(Step)}, "step")
    if data.get("date"):
        data["date"] = dt.date.fromisoformat(data["date"])
    return Step(**data)


def _only(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} field(s) {', '.join(unknown)}; known: {sorted(allowed)}")


def _int(text: str, spec: str) -> int:
    if not text.isdigit():
        raise ValueError(f"scenario {spec!r}: {text!r} is not a whole number")
    return int(text)
