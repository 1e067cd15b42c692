"""Monitor results: stored once per (serial, sequence), listed until attached to a reading."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.identity.principal import Principal
from app.monitors.models import DeviceReading, Monitor
from app.monitors.schemas import DeviceReadingCreate, MonitorUpdate


def calibration_warning(due_on: dt.date | None, on: dt.date) -> str | None:
    """A result from a monitor past its calibration date is still recorded, with this warning."""
    if due_on is not None and on > due_on:
        return (
            f"The monitor was due for calibration on {due_on.isoformat()}: its readings may be "
            "wrong. Recalibrate it before the next test."
        )
    return None


def _register(
    session: Session, body: DeviceReadingCreate, unit_id: int, now: dt.datetime
) -> Monitor:
    monitor = session.scalars(select(Monitor).where(Monitor.serial == body.device_serial)).first()
    if monitor is None:
        monitor = Monitor(serial=body.device_serial, unit_id=unit_id)
        session.add(monitor)
    monitor.unit_id = unit_id  # a monitor is where its bridge is
    monitor.model = body.model or monitor.model
    monitor.firmware = body.firmware or monitor.firmware
    if body.calibration_due_on is not None:
        monitor.calibration_due_on = body.calibration_due_on
    monitor.last_seen_at = now
    return monitor


def _same_result(stored: DeviceReading, body: DeviceReadingCreate) -> bool:
    return stored.co_ppm == body.co_ppm and stored.measured_at == body.measured_at


def receive(
    session: Session,
    *,
    principal: Principal,
    body: DeviceReadingCreate,
    max_co_ppm: int,
    now: dt.datetime,
) -> tuple[DeviceReading, bool]:
    """Store a bridge's result; the same (serial, sequence) again returns the stored one."""
    if body.co_ppm > max_co_ppm:
        raise InvalidInput(
            "Check co_ppm.", fields=[FieldError("co_ppm", f"must be 0 to {max_co_ppm}")]
        )
    assert principal.organisation_id is not None
    key = (DeviceReading.device_serial == body.device_serial) & (
        DeviceReading.sequence == body.sequence
    )
    stored = session.scalars(select(DeviceReading).where(key)).first()
    if stored is None:
        _register(session, body, principal.organisation_id, now)
        stored = DeviceReading(
            unit_id=principal.organisation_id,
            device_serial=body.device_serial,
            sequence=body.sequence,
            co_ppm=body.co_ppm,
            measured_at=body.measured_at,
            battery_percent=body.battery_percent,
            calibration_due_on=body.calibration_due_on,
            api_client_id=principal.id if principal.is_client else None,
            received_at=now,
        )
        try:
            with session.begin_nested():
                session.add(stored)
            return stored, True
        except IntegrityError:  # a concurrent re-send got there first
            stored = session.scalars(select(DeviceReading).where(key)).one()
    if not _same_result(stored, body):
        raise Conflict(
            f"Result {body.sequence} of monitor {body.device_serial} is already stored with "
            "other values; a monitor never reuses a sequence number, so check the monitor.",
            fields=[FieldError("sequence", "already used for a different result")],
        )
    return stored, False


def list_for_unit(
    session: Session,
    *,
    unit_id: int,
    device: str | None,
    unassigned: bool,
    older_than: dt.datetime | None,
    limit: int,
) -> list[DeviceReading]:
    statement = select(DeviceReading).where(DeviceReading.unit_id == unit_id)
    if device:
        statement = statement.where(DeviceReading.device_serial == device)
    if unassigned:
        statement = statement.where(DeviceReading.reading_id.is_(None))
    if older_than is not None:
        statement = statement.where(DeviceReading.measured_at < older_than)
    return list(session.scalars(statement.order_by(DeviceReading.measured_at.desc()).limit(limit)))


def take_for_reading(session: Session, *, unit_id: int, device_reading_id: int) -> DeviceReading:
    """The unit's unattached result, locked for this transaction."""
    statement = (
        select(DeviceReading)
        .where(DeviceReading.id == device_reading_id, DeviceReading.unit_id == unit_id)
        .with_for_update()
    )
    result = session.scalars(statement).first()
    if result is None:
        raise NotFound(
            f"No monitor result {device_reading_id} at your unit.",
            fields=[FieldError("device_reading_id", "is not one of your unit's results")],
        )
    if result.reading_id is not None:
        raise Conflict(
            f"That monitor result is already recorded as reading {result.reading_id}.",
            fields=[FieldError("device_reading_id", "is already attached")],
        )
    return result


def list_monitors(session: Session, *, unit_id: int) -> list[Monitor]:
    return list(
        session.scalars(select(Monitor).where(Monitor.unit_id == unit_id).order_by(Monitor.serial))
    )


def update_monitor(
    session: Session, *, unit_id: int, serial: str, changes: MonitorUpdate
) -> Monitor:
    monitor = session.scalars(
        select(Monitor).where(Monitor.serial == serial, Monitor.unit_id == unit_id)
    ).first()
    if monitor is None:
        monitor = Monitor(serial=serial, unit_id=unit_id)
        session.add(monitor)
    for name, value in changes.model_dump(exclude_unset=True).items():
        setattr(monitor, name, value)
    if (
        monitor.last_calibrated_on
        and monitor.calibration_due_on
        and monitor.calibration_due_on < monitor.last_calibrated_on
    ):
        raise InvalidInput(
            "Check calibration_due_on.",
            fields=[FieldError("calibration_due_on", "must not be before last_calibrated_on")],
        )
    session.flush()
    return monitor
