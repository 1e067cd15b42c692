"""One place that turns every failure into the API's error body.

``{"error": "<stable_code>", "detail": "<what was wrong and how to fix it>", "fields": [...]}``
No traceback and no submitted value is ever echoed back: values may be patient data.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.middleware import route_templates
from app.errors import ExhaleError, FieldError
from app.logs import get_logger

log = get_logger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str
    detail: str
    fields: list[FieldProblem]


def error_answers(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error answers: ``error_answers(r409="Already there")``."""
    return {
        int(name.removeprefix("r")): {"model": ErrorBody, "description": description}
        for name, description in descriptions.items()
    }


def error_body(code: str, detail: str, fields: list[FieldError] | None = None) -> dict[str, Any]:
    return {
        "error": code,
        "detail": detail,
        "fields": [{"field": f.field, "message": f.message} for f in fields or []],
    }


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


# A model-level check names its field as "field: message" (pydantic gives it no location).
_NAMED = re.compile(r"^([a-z_][a-z0-9_.]*): (.+)$", re.DOTALL)


def _validation_fields(error: RequestValidationError) -> list[FieldError]:
    fields = []
    for item in error.errors():
        message = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
        field = _field_name(item.get("loc", ()))
        if item.get("type") in {"union_tag_invalid", "union_tag_not_found"}:
            tag_field = str(item.get("ctx", {}).get("discriminator", "kind")).strip("'")
            expected = item.get("ctx", {}).get("expected_tags", "")
            field = tag_field if field == "body" else f"{field}.{tag_field}"
            message = f"must be one of {expected}" if expected else "is required"
        named = _NAMED.match(message)
        if named:
            prefix = "" if field == "body" else f"{field}."
            field, message = prefix + named.group(1), named.group(2)
        fields.append(FieldError(field=field, message=message))
    return fields


async def _exhale_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExhaleError)
    return JSONResponse(
        error_body(exc.code, exc.detail, exc.fields),
        status_code=exc.status_code,
        headers=exc.headers or None,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _validation_fields(exc)
    named = ", ".join(sorted({f.field for f in fields})) or "the request"
    return JSONResponse(
        error_body("invalid_input", f"Check {named}: see fields for each problem.", fields),
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method of the path, not only those of the first route that matched it."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for template in route_templates(request.app).values():
        if template.methods and template.pattern.match(path):
            methods |= template.methods
    return ", ".join(sorted(methods))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
    return JSONResponse(
        error_body(
            "internal_error",
            "Something went wrong on our side and nothing was saved. Try again; if it keeps "
            f"happening, give your administrator the request id {request_id}.",
        ),
        status_code=500,
    )


async def _stale_data(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body(
            "version_conflict",
            "Someone else changed this record at the same moment. Reload it, check what "
            "changed, and try again.",
        ),
        status_code=409,
    )


DATABASE_RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database went away (restart, failover, network) or refused the work for now: a
    retryable 503, not a 500. Other database errors are bugs and stay 500s."""
    assert isinstance(exc, DBAPIError)
    if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
        return await _unexpected_error(request, exc)
    log.warning(
        "database_unavailable",
        error_type=type(exc.orig).__name__,
        connection_lost=exc.connection_invalidated,
    )
    return JSONResponse(
        error_body(
            "database_unavailable",
            "The database could not be reached or was busy, so this request may not have been "
            f"saved. Send it again in {DATABASE_RETRY_AFTER_S} seconds: a re-send with the same "
            "Idempotency-Key or source_id is never recorded twice.",
        ),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StaleDataError, _stale_data)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(ExhaleError, _exhale_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


# Answers every operation may give, by what it declares; a route documents the rest itself.
_SECURED = {
    "401": "No credential, or one that is not valid",
    "403": "The caller's role may not do this (or a signed-in browser sent no CSRF token)",
    "429": "Too many requests from this API client; see Retry-After",
}
_WITH_BODY = {
    "400": "The body is not well-formed JSON",
    "413": "The body is larger than 64 KB",
    "415": "The body is not sent as application/json",
}
_WITH_PATH = {"404": "No such record in the caller's organisation"}
# Any write can meet a concurrent change of the same record (``version_conflict``).
_WRITE = {"409": "The record changed meanwhile, or the change conflicts with its current state"}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
_INVALID = {"422": "A parameter or the body is not valid; `fields` names each problem"}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe the error answers in an OpenAPI document as they are: the one error body.

    FastAPI documents 422 with its own validation body, which this API never sends.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(body_schema.pop("$defs", {}))
    components["ErrorBody"] = body_schema
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            answers: dict[str, str] = {}
            if operation.get("security"):
                answers |= _SECURED
            if method in WRITE_METHODS:
                answers |= _WRITE
            if "requestBody" in operation:
                answers |= _WITH_BODY | _INVALID
            parameters = operation.get("parameters", [])
            if any(p.get("in") == "path" for p in parameters):
                answers |= _WITH_PATH
            if parameters:
                answers |= _INVALID
            responses = operation.setdefault("responses", {})
            for status, description in answers.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status.startswith("4") and not _names_a_body(response):
                    response["content"] = content
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _names_a_body(response: dict[str, Any]) -> bool:
    """A route that describes its own error body (a FHIR OperationOutcome, say) keeps it."""
    schemas = [media.get("schema") for media in response.get("content", {}).values()]
    return any(schemas) and "HTTPValidationError" not in str(schemas)
