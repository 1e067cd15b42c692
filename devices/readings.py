"""What a CO monitor tells us: who it is and the readings it took.

The same ``Result`` comes out of a serial driver and the CSV importer, so everything downstream (the
bridge's queue, the server) sees one shape whatever the source.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CO_PPM_MAX = 500
"""Top of the reference protocol's range in ppm, the order of handheld monitors' published ranges
(Bedfont piCO+: 0-500 ppm). A reading above it is a fault, not a measurement."""

SEQUENCE_MAX = 999_999_999
"""Largest per-device sequence number: nine decimal digits."""

BATTERY_LOW_PERCENT = 15
"""At or below this the monitor's battery is reported as low (an operational warning only)."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """A monitor's serial number, model and firmware version, as it reports them."""

    serial: str
    model: str
    firmware: str


@dataclass(frozen=True, slots=True)
class Result:
    """One breath test: ``co_ppm`` is exhaled carbon monoxide in parts per million (integer).

    ``(device_serial, sequence)`` identifies a result for ever: a monitor numbers its tests and
    never reuses a number. ``measured_at`` is the monitor's clock, timezone-aware. ``model`` and
    ``firmware`` come from the monitor's identity when the source knows them.
    """

    device_serial: str
    sequence: int
    co_ppm: int
    measured_at: dt.datetime
    battery_percent: int | None = None
    calibration_due_on: dt.date | None = None
    model: str | None = None
    firmware: str | None = None

    def __post_init__(self) -> None:
        problem = result_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def battery_low(self) -> bool:
        """True when the monitor reported ``BATTERY_LOW_PERCENT`` or less."""
        return self.battery_percent is not None and self.battery_percent <= BATTERY_LOW_PERCENT

    @property
    def calibration_overdue(self) -> bool:
        """True when the test was taken after the monitor's calibration due date.

        The reading is still a reading; whether to trust it is the service's decision.
        """
        due = self.calibration_due_on
        return due is not None and self.measured_at.date() > due

    @property
    def key(self) -> str:
        """``<serial>-<sequence>``: the idempotency key the bridge sends with the result."""
        return f"{self.device_serial}-{self.sequence}"


def result_problem(result: Result) -> str | None:
    """Why ``result`` is impossible for a monitor, or None when it is plausible."""
    if not result.device_serial:
        return "device serial is empty"
    if not 1 <= result.sequence <= SEQUENCE_MAX:
        return f"sequence {result.sequence} is outside 1-{SEQUENCE_MAX}"
    if not 0 <= result.co_ppm <= CO_PPM_MAX:
        return f"co_ppm {result.co_ppm} is outside the monitor's range 0-{CO_PPM_MAX} ppm"
    if result.measured_at.utcoffset() is None:
        return "measured_at has no UTC offset"
    if result.battery_percent is not None and not 0 <= result.battery_percent <= 100:
        return f"battery_percent {result.battery_percent} is outside 0-100"
    return None
