"""FHIR R4 routes under /fhir: the same services, roles and audit as /api, in FHIR's shapes.

Every failure under /fhir, including authentication, is answered with an OperationOutcome by
:class:`FhirRoute`. The routes are described by ``GET /fhir/metadata``, not by the OpenAPI schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.auth import credential_present, missing_credential, require
from app.api.deps import SessionDep, SettingsDep
from app.api.strict_json import (
    BODY_METHODS,
    UnsupportedMediaType,
    _read_capped,
    check_json_body,
)
from app.audit import service as audit
from app.db import utcnow
from app.errors import ExhaleError, InvalidInput, NotFound
from app.fhir import observations, search, service_requests
from app.fhir.capability import capability_statement
from app.fhir.errors import (
    BadSearch,
    MethodNotAllowed,
    MultipleMatches,
    invalid,
    operation_outcome,
)
from app.identity.principal import Principal
from app.logs import get_logger
from app.pregnancies.models import Pregnancy
from app.readings import service as readings
from app.readings.models import Reading
from referral import queue

log = get_logger(__name__)
FHIR_JSON = "application/fhir+json"
RESOURCE_PATHS = ("metadata", "Observation", "ServiceRequest")
WRITERS = ("epr", "bridge", "midwife")
REFERRAL_READERS = ("advisor", "service", "midwife")


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def outcome_response(request: Request, error: Exception) -> FhirResponse:
    """Any failure as an OperationOutcome: the status it deserves, never a submitted value."""
    if isinstance(error, ExhaleError):
        body = operation_outcome(error.status_code, error.detail, error.fields, code=error.code)
        return FhirResponse(body, status_code=error.status_code, headers=error.headers or None)
    if isinstance(error, RequestValidationError):
        return FhirResponse(operation_outcome(400, "A header or parameter is malformed."), 400)
    if isinstance(error, StarletteHTTPException):
        detail = error.detail if isinstance(error.detail, str) else "The request failed."
        return FhirResponse(operation_outcome(error.status_code, detail), error.status_code)
    if isinstance(error, StaleDataError):
        detail = "Someone else changed this record at the same moment; read it and try again."
        return FhirResponse(operation_outcome(409, detail), 409)
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", error_type=type(error).__name__, exc_info=error)
    detail = (
        "Something went wrong on our side and nothing was saved. Try again; if it keeps "
        f"happening, give your administrator the request id {request_id}."
    )
    return FhirResponse(operation_outcome(500, detail), 500)


async def _check_body(request: Request) -> None:
    try:
        body = await _read_capped(request)
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in (FHIR_JSON, "application/json"):
            raise UnsupportedMediaType(
                f"Send the resource as FHIR JSON with Content-Type: {FHIR_JSON}.",
                code="not-supported",
            )
        check_json_body(body, content_type)
    except ExhaleError:
        if not credential_present(request):
            raise missing_credential() from None  # who asks comes before what
        raise


class FhirRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            try:
                if request.method in BODY_METHODS:
                    await _check_body(request)
                return await handler(request)
            except Exception as error:  # every failure becomes an OperationOutcome
                return outcome_response(request, error)

        return fhir_handler


router = APIRouter(prefix="/fhir", route_class=FhirRoute, include_in_schema=False)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _bundle(request: Request, total: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{_base(request)}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


@router.get("/metadata")
def metadata(request: Request) -> FhirResponse:
    return FhirResponse(capability_statement(_base(request)))


def _observation_of(session: Session, reading: Reading) -> dict[str, Any]:
    pregnancy = session.get(Pregnancy, reading.pregnancy_id)
    assert pregnancy is not None
    return observations.to_resource(reading, pregnancy)


def _conditional_source_id(header: str, candidates: list[str]) -> tuple[str | None, str]:
    """(system or None for any, value) of ``identifier=[system|]value``, one the body carries."""
    name, equals, token = header.strip().partition("=")
    if name != "identifier" or not equals or not token or "&" in token:
        raise BadSearch("If-None-Exist supports one parameter: identifier=system|value.")
    system, bar, value = token.rpartition("|")
    if not value:
        raise BadSearch("If-None-Exist: identifier needs a value.")
    wanted = (system if bar else None), value
    for candidate in candidates:
        candidate_system, _, candidate_value = candidate.rpartition("|")
        if candidate_value == value and wanted[0] in (None, candidate_system):
            return wanted
    raise invalid(
        "Observation.identifier",
        "If-None-Exist must name one of the Observation's own identifiers",
    )


@router.post("/Observation")
def create_observation(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*WRITERS)],
    if_none_exist: Annotated[str | None, Header(alias="If-None-Exist")] = None,
) -> FhirResponse:
    now = utcnow()
    observation = observations.parse(json.loads(request._body or b"null"))
    candidates = observations.source_ids(observation)
    source_id = None
    if if_none_exist is not None:
        system, value = _conditional_source_id(if_none_exist, candidates)
        matches = search.find_by_identifier(
            session, principal=principal, system=system, value=value
        )
        if len(matches) > 1:
            raise MultipleMatches(
                "If-None-Exist matches more than one Observation you sent: name the "
                "identifier's system too (identifier=system|value)."
            )
        if matches:
            return _created(request, session, matches[0], status_code=200)
        source_id = next(c for c in candidates if c.rpartition("|")[2] == value)
    body = observations.to_reading_create(observation, source_id=source_id)
    try:
        recorded = readings.record(
            session, principal=principal, body=body, settings=settings, now=now
        )
    except InvalidInput as error:
        raise observations.fhir_fields(error.fields) from None
    return _created(
        request, session, recorded.reading, status_code=201 if recorded.created else 200
    )


def _created(
    request: Request, session: Session, reading: Reading, *, status_code: int
) -> FhirResponse:
    resource = _observation_of(session, reading)
    # Commit before answering, as the REST route does: the woman's lock must not wait for a
    # worker thread that the session dependency's teardown would need.
    session.commit()
    return FhirResponse(
        resource,
        status_code=status_code,
        headers={
            "Location": f"{_base(request)}/Observation/{reading.id}/_history/1",
            "ETag": 'W/"1"',
        },
    )


def _record_id(session: Session, principal: Principal, id: str, record_type: str) -> int:
    """FHIR ids are strings: one that is no id of ours is unknown, audited like any other."""
    if id.isdigit() and len(id) <= 18:
        return int(id)
    audit.record_denied(
        session,
        actor=principal,
        action=audit.Action.read,
        reason="not_found",
        record_type=record_type,
        record_id=id[:64],
    )
    raise NotFound(f"No {record_type} with this id is visible to you.")


@router.get("/Observation/{id}")
def read_observation(
    id: str,
    session: SessionDep,
    principal: Annotated[Principal, require(*WRITERS, record=readings.RECORD_TYPE)],
) -> FhirResponse:
    reading_id = _record_id(session, principal, id, readings.RECORD_TYPE)
    reading = readings.get_for_reader_or_raise(session, principal=principal, reading_id=reading_id)
    return FhirResponse(_observation_of(session, reading), headers={"ETag": 'W/"1"'})


@router.get("/Observation")
def search_observations(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*WRITERS)],
) -> FhirResponse:
    query = search.parse_observation_query(
        list(request.query_params.multi_items()),
        allow_synthetic=settings.synthetic_nhs_numbers_allowed,
    )
    rows, total = search.list_observations(session, principal=principal, query=query)
    resources = [observations.to_resource(reading, pregnancy) for reading, pregnancy in rows]
    return FhirResponse(_bundle(request, total, resources))


@router.get("/ServiceRequest/{id}")
def read_service_request(
    id: str,
    session: SessionDep,
    principal: Annotated[Principal, require(*REFERRAL_READERS, record=queue.RECORD_TYPE)],
) -> FhirResponse:
    referral_id = _record_id(session, principal, id, queue.RECORD_TYPE)
    referral = queue.get_for_reader_or_raise(session, principal=principal, referral_id=referral_id)
    return FhirResponse(service_requests.to_resource(session, referral))


@router.get("/ServiceRequest")
def search_service_requests(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require(*REFERRAL_READERS)],
) -> FhirResponse:
    statuses: list[str] = []
    count = search.DEFAULT_COUNT
    for name, value in request.query_params.multi_items():
        if name == "status":
            statuses.append(value)
        elif name == "_count":
            count = search.parse_count(value)
        elif name not in search.IGNORED:
            raise BadSearch(
                f"The search parameter {name!r} is not supported here; use status or _count."
            )
    chosen = service_requests.parse_statuses(statuses)
    if chosen == ():
        return FhirResponse(_bundle(request, 0, []))
    rows, total = queue.list_queue(
        session,
        principal=principal,
        where=queue.QueueFilter(statuses=chosen or ()),
        now=utcnow(),
        page=1,
        page_size=count,
    )
    resources = [service_requests.to_resource(session, referral) for referral in rows]
    return FhirResponse(_bundle(request, total, resources))


@router.api_route(
    "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
)
def unsupported(rest: str, request: Request) -> FhirResponse:
    """Anything else under /fhir: 405 for a supported resource, 404 for the rest."""
    if rest.split("/", 1)[0] in RESOURCE_PATHS:
        raise MethodNotAllowed(
            f"{request.method} is not supported here: GET /fhir/metadata lists what is."
        )
    raise NotFound(
        "This server has no such FHIR endpoint: GET /fhir/metadata lists what it supports."
    )
