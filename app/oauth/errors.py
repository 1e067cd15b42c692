"""Token endpoint refusals, answered as RFC 6749 section 5.2 error responses."""

from __future__ import annotations

from app.errors import ExhaleError


class OAuthError(ExhaleError):
    """``code`` is the RFC 6749 error; ``reason`` names the check that failed, for the audit trail.

    ``client_name`` is the client the request claimed to be, when there was one (not verified).
    """

    status_code = 400
    code = "invalid_request"

    def __init__(self, detail: str, *, reason: str, client_name: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.client_name = client_name


class InvalidRequest(OAuthError):
    status_code = 400
    code = "invalid_request"


class UnsupportedGrantType(OAuthError):
    status_code = 400
    code = "unsupported_grant_type"


class InvalidClient(OAuthError):
    status_code = 401
    code = "invalid_client"
