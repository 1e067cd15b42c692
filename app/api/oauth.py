"""``POST /oauth2/token``: an access token for a client that proves itself with a signed JWT.

Public: the request authenticates by its ``client_assertion`` (RFC 7523), not by a bearer
credential. Answers and refusals follow RFC 6749 section 5, not the API's own error body.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep
from app.audit import service as audit
from app.config import Settings
from app.db import utcnow
from app.logs import get_logger
from app.oauth import service as oauth
from app.oauth.errors import InvalidRequest, OAuthError
from app.oauth.schemas import TokenErrorRead, TokenForm, TokenRead

router = APIRouter(tags=["oauth"])
log = get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUDIT_RECORD_TYPE = "api_client"

DESCRIPTION = """
Exchanges a client assertion for a short-lived access token, as NHS England's API platform does
for system-to-system access (RFC 7523 `private_key_jwt`). See docs/oauth.md.

Send, form-encoded: `grant_type=client_credentials`,
`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
`client_assertion=<JWT>`, signed with the client's registered private key (RS256, RS384, RS512,
PS256, PS384, PS512, ES256, ES384 or ES512; `kid` in the header), with `iss` and `sub` the client
id, `aud` this endpoint's URL, `jti` unique, and `exp` at most 5 minutes ahead.

Token requests count against the API's per-address rate limit (429 with `Retry-After` beyond it).
Use the `access_token` as `Authorization: Bearer <token>` on the API until `expires_in` seconds
have passed, then get another.
"""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
REQUEST_BODY = {
    "required": True,
    "content": {FORM_CONTENT_TYPE: {"schema": TokenForm.model_json_schema()}},
}


async def read_token_request(request: Request) -> oauth.TokenRequest | str:
    """The form's parameters, or what is wrong with the body (RFC 6749 section 3.2)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        return f"Send the parameters form-encoded, as {FORM_CONTENT_TYPE}."
    form = await request.form()
    values: dict[str, str | None] = {}
    for name in TokenForm.model_fields:
        sent = [value for value in form.getlist(name) if isinstance(value, str)]
        if len(sent) > 1:
            return f"Send {name} once."
        values[name] = sent[0] if sent else None
    return oauth.TokenRequest(**values)


def token_policy(settings: Settings, request: Request) -> oauth.TokenPolicy | None:
    """The checks' settings; None when production has not been told the endpoint's public URL."""
    audience = settings.oauth.token_url
    if audience is None:
        if settings.is_production:
            return None
        audience = str(request.url_for("oauth_token"))
    return oauth.TokenPolicy(
        audience=audience,
        max_assertion_lifetime=dt.timedelta(seconds=settings.oauth.max_assertion_lifetime_s),
        clock_skew=dt.timedelta(seconds=settings.oauth.clock_skew_s),
        token_ttl=dt.timedelta(seconds=settings.oauth.access_token_ttl_s),
    )


def _error(status_code: int, error: str, description: str) -> JSONResponse:
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status_code, headers=NO_STORE)


@router.post(
    "/oauth2/token",
    name="oauth_token",
    summary="Get an access token with a signed client assertion",
    description=DESCRIPTION,
    response_model=TokenRead,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        400: {"model": TokenErrorRead, "description": "invalid_request or unsupported_grant_type"},
        401: {"model": TokenErrorRead, "description": "invalid_client: the assertion is refused"},
        429: {"model": TokenErrorRead, "description": "Too many requests from this address"},
        503: {"model": TokenErrorRead, "description": "EXHALE_OAUTH__TOKEN_URL is not set"},
    },
)
def token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token_request: Annotated[oauth.TokenRequest | str, Depends(read_token_request)],
) -> JSONResponse:
    retry_after = request.app.state.api_limiter.hit(
        f"oauth2-token:{request.client.host if request.client else '-'}"
    )
    if retry_after is not None:
        response = _error(
            429, "temporarily_unavailable", f"Too many token requests; wait {retry_after} s."
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    policy = token_policy(settings, request)
    if policy is None:
        log.error("oauth_token_url_unset")
        return _error(
            503,
            "temporarily_unavailable",
            "The token endpoint is not configured: the administrator must set "
            "EXHALE_OAUTH__TOKEN_URL to its public URL.",
        )
    if isinstance(token_request, str):
        _audit_refusal(session, InvalidRequest(token_request, reason="body_not_a_form"))
        return _error(400, "invalid_request", token_request)
    try:
        issued = oauth.issue_token(session, request=token_request, policy=policy, now=utcnow())
    except OAuthError as refusal:
        _audit_refusal(session, refusal)
        return _error(refusal.status_code, refusal.code, refusal.detail)
    audit.record(
        session,
        actor=issued.principal,
        action=audit.Action.login,
        record_type=AUDIT_RECORD_TYPE,
        record_id=issued.principal.name,
        detail={"grant": "client_credentials", "kid": issued.kid},
    )
    log.info("oauth_token_issued", client=issued.principal.name, kid=issued.kid)
    body = TokenRead(access_token=issued.access_token, expires_in=issued.expires_in_s)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


def _audit_refusal(session: Session, refusal: OAuthError) -> None:
    audit.record_denied(
        session,
        actor=None,
        action=audit.Action.login,
        reason=f"oauth_{refusal.reason}",
        record_type=AUDIT_RECORD_TYPE,
        record_id=refusal.client_name,
    )
    log.info(
        "oauth_token_refused", error=refusal.code, reason=refusal.reason, client=refusal.client_name
    )
