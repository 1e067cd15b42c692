"""The one exception tree: an HTTP status, a stable code, and a message naming the fix.

Domain errors subclass these beside their services; one handler in ``app.api.errors`` turns them
into the API's error body. This module imports no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ExhaleError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        fields: list[FieldError] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or []
        self.headers = headers or {}
        if code is not None:
            self.code = code


class InvalidInput(ExhaleError):
    status_code = 422
    code = "invalid_input"


class NotAuthenticated(ExhaleError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(ExhaleError):
    status_code = 403
    code = "forbidden"


class NotFound(ExhaleError):
    status_code = 404
    code = "not_found"


class Conflict(ExhaleError):
    status_code = 409
    code = "conflict"


class TooManyRequests(ExhaleError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(ExhaleError):
    status_code = 503
    code = "unavailable"
