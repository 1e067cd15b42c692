"""The token endpoint's answers (RFC 6749 sections 5.1 and 5.2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

MAX_ASSERTION_BYTES = 16 * 1024


class TokenForm(BaseModel):
    """The token request's form parameters; documents the body in the OpenAPI schema."""

    grant_type: Literal["client_credentials"]
    client_assertion_type: Literal["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    client_assertion: Annotated[str, Field(min_length=1, max_length=MAX_ASSERTION_BYTES)]
    client_id: str | None = None


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the RFC 6749 token type, not a secret)
    expires_in: int


class TokenErrorRead(BaseModel):
    error: Literal[
        "invalid_request", "invalid_client", "unsupported_grant_type", "temporarily_unavailable"
    ]
    error_description: str
