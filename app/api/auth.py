"""Authentication and authorisation for every route under /api (and later /fhir and /hl7).

A request carries either ``Authorization: Bearer <API key or OAuth access token>`` (machines) or
the web session cookie (people). Without one: 401. A role that may not call the route: 403. A
record outside the caller's organisation is 404, raised by the services, so ids cannot be probed.
Denied attempts that target a record are audited.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SessionDep, SettingsDep
from app.audit import service as audit
from app.config import Settings
from app.db import utcnow
from app.errors import Forbidden, NotAuthenticated, TooManyRequests
from app.identity import service as identity
from app.identity.principal import Principal
from app.oauth import service as oauth

SESSION_COOKIE = "exhale_session"
CSRF_HEADER = "x-csrf-token"
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="exhale"'}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# Declared so the OpenAPI description names the credentials each route takes; never raise, as
# authenticate() below decides (and explains) every refusal.
API_KEY_SCHEME = HTTPBearer(
    scheme_name="apiKey",
    description="An API key from `exhale apikey create`, as `Authorization: Bearer <key>`.",
    auto_error=False,
)
SESSION_SCHEME = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="session",
    description="A person's web session from /login; writes also send X-CSRF-Token.",
    auto_error=False,
)
DeclaredApiKey = Annotated[HTTPAuthorizationCredentials | None, Depends(API_KEY_SCHEME)]
DeclaredSession = Annotated[str | None, Depends(SESSION_SCHEME)]


def session_policy(settings: Settings) -> identity.SessionPolicy:
    return identity.SessionPolicy(
        idle=dt.timedelta(minutes=settings.auth.session_idle_minutes),
        maximum=dt.timedelta(hours=settings.auth.session_max_hours),
    )


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "Send the API key as `Authorization: Bearer <key>`.",
            code="invalid_credentials",
            headers=WWW_AUTHENTICATE,
        )
    return token.strip()


def authenticate(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """The caller, or 401. Cookie-authenticated writes must echo the session's CSRF token."""
    try:
        token = _bearer_token(request)
        if token is not None:
            if oauth.is_access_token(token):
                principal = oauth.principal_for_access_token(session, token=token, now=utcnow())
            else:
                principal = identity.principal_for_api_key(
                    session, token, cache_s=settings.auth.api_key_cache_s
                )
            rate_limit(request, principal)
            return principal
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = identity.principal_for_session_token(
                session, token=cookie, now=utcnow(), policy=session_policy(settings)
            )
            _check_csrf_header(request, principal)
            return principal
    except NotAuthenticated as error:
        error.headers = {**WWW_AUTHENTICATE, **error.headers}
        raise
    raise missing_credential()


def credential_present(request: Request) -> bool:
    return bool(request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE))


def missing_credential() -> NotAuthenticated:
    return NotAuthenticated(
        "This needs a credential: an API key as `Authorization: Bearer <key>`, or log in.",
        headers=WWW_AUTHENTICATE,
    )


def rate_limit(request: Request, principal: Principal) -> None:
    """Count the request against the client's limit, once however many times it is asked."""
    if getattr(request.state, "rate_counted_for", None) == principal.id:
        return
    request.state.rate_counted_for = principal.id
    retry_after = request.app.state.api_limiter.hit(f"client:{principal.id}")
    if retry_after is not None:
        raise TooManyRequests(
            f"Too many requests from this API client; wait {retry_after} s and retry.",
            headers={"Retry-After": str(retry_after)},
        )


def _check_csrf_header(request: Request, principal: Principal) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
        raise Forbidden(
            "A signed-in browser must send the page's CSRF token in the X-CSRF-Token header; "
            "reload the page and try again.",
            code="csrf_failed",
        )


def require(*roles: str, record: str | None = None) -> Any:
    """A dependency that authenticates the caller and checks its role.

    ``record`` names the record type a route's ``{id}`` path parameter identifies, so that a
    denied attempt on it is audited.
    """
    allowed = frozenset(roles)

    def dependency(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        _api_key: DeclaredApiKey,
        _session_cookie: DeclaredSession,
    ) -> Principal:
        record_id = request.path_params.get("id") if record else None
        action = audit.action_for_method(request.method)
        try:
            principal = authenticate(request, session, settings)
        except NotAuthenticated as error:
            if record:
                audit.record_denied(
                    session,
                    actor=None,
                    action=action,
                    reason=error.code,
                    record_type=record,
                    record_id=record_id,
                )
            raise
        if principal.must_change_password:
            raise Forbidden(
                "Change your password before using exhale: open /account/password.",
                code="password_change_required",
            )
        if principal.role not in allowed:
            if record:
                audit.record_denied(
                    session,
                    actor=principal,
                    action=action,
                    reason="role",
                    record_type=record,
                    record_id=record_id,
                )
            raise Forbidden(
                f"The {principal.role} role may not do this; it is for: "
                f"{', '.join(sorted(allowed))}."
            )
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(allowed))}"
    return Depends(dependency)
