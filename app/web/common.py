"""What every page needs: templates, the signed-in user, CSRF checks and cookies."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from app.api.auth import SESSION_COOKIE, session_policy
from app.api.deps import SessionDep, SettingsDep
from app.config import Settings
from app.db import utcnow
from app.errors import ExhaleError, NotAuthenticated
from app.identity import service as identity
from app.identity.principal import Principal

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
LOGIN_CSRF_COOKIE = "exhale_login_csrf"


class LoginRequiredError(ExhaleError):
    """A page needs a signed-in user; answered with the login page (401)."""

    status_code = 401
    code = "login_required"


class PasswordChangeRequiredError(ExhaleError):
    status_code = 303
    code = "password_change_required"


class CsrfFailedError(ExhaleError):
    status_code = 403
    code = "csrf_failed"


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def cookie_secure(request: Request, settings: Settings) -> bool:
    if settings.auth.cookie_secure is not None:
        return settings.auth.cookie_secure
    return settings.is_production or request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
        path="/",
    )


def page_user(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """The signed-in user; otherwise the login page, which returns here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequiredError("Log in to continue.", headers={"X-Next": here})
    try:
        principal = identity.principal_for_session_token(
            session, token=token, now=utcnow(), policy=session_policy(settings)
        )
    except NotAuthenticated as error:
        raise LoginRequiredError(error.detail, headers={"X-Next": here}) from None
    if principal.must_change_password and request.url.path != "/account/password":
        raise PasswordChangeRequiredError(
            "Change your password first.",
            headers={"Location": f"/account/password?next={quote(here)}"},
        )
    return principal


PageUser = Annotated[Principal, Depends(page_user)]


def check_form_csrf(sent: str | None, expected: str | None) -> None:
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfFailedError(
            "This form has expired or was sent from another site. Go back, reload the page and "
            "try again."
        )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
