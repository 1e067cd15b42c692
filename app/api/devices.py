"""Monitor results from bridges, and the unit's monitor registry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.api.auth import require
from app.api.deps import SessionDep, SettingsDep
from app.api.strict_json import StrictJsonRoute
from app.clock import local_date, local_today
from app.db import utcnow
from app.identity.principal import Principal
from app.monitors import service
from app.monitors.models import DeviceReading, Monitor
from app.monitors.schemas import (
    DeviceReadingCreate,
    DeviceReadingRead,
    MonitorRead,
    MonitorUpdate,
    Serial,
)

router = APIRouter(prefix="/api/v1", tags=["monitors"], route_class=StrictJsonRoute)


def _read(result: DeviceReading) -> DeviceReadingRead:
    answer = DeviceReadingRead.model_validate(result)
    answer.calibration_warning = service.calibration_warning(
        result.calibration_due_on, local_date(result.measured_at)
    )
    return answer


@router.post(
    "/device-readings",
    status_code=201,
    response_model=DeviceReadingRead,
    summary="A monitor's result, from the bridge beside it",
    description=(
        "Role: bridge. Stored unassigned at the bridge's unit until a midwife attaches it to an "
        "appointment (`device_reading_id` on POST /api/v1/readings). (device_serial, sequence) "
        "identifies a result: the same again is 200 with the stored one; the same pair with "
        "other values is 409. Unknown monitors join the unit's registry."
    ),
    responses={200: {"model": DeviceReadingRead, "description": "A re-send: the stored result"}},
)
def receive_device_reading(
    body: DeviceReadingCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require("bridge")],
) -> Any:
    result, created = service.receive(
        session, principal=principal, body=body, max_co_ppm=settings.max_co_ppm, now=utcnow()
    )
    answer = _read(result)
    session.commit()
    response.status_code = 201 if created else 200
    return answer


@router.get(
    "/device-readings",
    summary="The unit's monitor results",
    description=(
        "Role: midwife. Newest first. `unassigned=true`: not yet recorded against an "
        "appointment. `unrecorded=true`: unassigned and older than "
        "EXHALE_DEVICES__UNRECORDED_AFTER_MINUTES (120): tests taken but not recorded."
    ),
)
def list_device_readings(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require("midwife")],
    device: Annotated[str | None, Query(max_length=64)] = None,
    unassigned: bool = False,
    unrecorded: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DeviceReadingRead]:
    assert principal.organisation_id is not None
    older_than = None
    if unrecorded:
        older_than = utcnow() - dt.timedelta(minutes=settings.devices.unrecorded_after_minutes)
    rows = service.list_for_unit(
        session,
        unit_id=principal.organisation_id,
        device=device,
        unassigned=unassigned or unrecorded,
        older_than=older_than,
        limit=limit,
    )
    return [_read(r) for r in rows]


def _monitor(monitor: Monitor) -> MonitorRead:
    answer = MonitorRead.model_validate(monitor)
    today = local_today()
    answer.calibration_overdue = bool(
        monitor.calibration_due_on and monitor.calibration_due_on < today
    )
    return answer


@router.get(
    "/monitors",
    summary="The unit's monitors and their calibration",
    description="Roles: midwife, lead.",
)
def list_monitors(
    session: SessionDep, principal: Annotated[Principal, require("midwife", "lead")]
) -> list[MonitorRead]:
    assert principal.organisation_id is not None
    return [_monitor(m) for m in service.list_monitors(session, unit_id=principal.organisation_id)]


@router.put(
    "/monitors/{serial}",
    summary="Register a monitor or record its calibration",
    description="Roles: midwife, lead. Only the fields sent change.",
)
def update_monitor(
    serial: Annotated[Serial, Path()],
    body: MonitorUpdate,
    session: SessionDep,
    principal: Annotated[Principal, require("midwife", "lead")],
) -> MonitorRead:
    assert principal.organisation_id is not None
    monitor = service.update_monitor(
        session, unit_id=principal.organisation_id, serial=serial, changes=body
    )
    answer = _monitor(monitor)
    session.commit()
    return answer
