"""Logging in and out, changing a password, and the pages' answers to auth failures."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from app.api.auth import SESSION_COOKIE, session_policy
from app.api.deps import SessionDep, SettingsDep
from app.audit import service as audit
from app.config import Settings
from app.db import utcnow
from app.errors import InvalidInput
from app.identity import service as identity
from app.identity.models import User
from app.identity.principal import ActorType, Principal
from app.web.common import (
    LOGIN_CSRF_COOKIE,
    CsrfFailedError,
    LoginRequiredError,
    PageUser,
    PasswordChangeRequiredError,
    check_form_csrf,
    new_csrf_token,
    render,
    safe_next,
    set_cookie,
)

router = APIRouter(include_in_schema=False)


def login_page(
    request: Request,
    settings: Settings,
    *,
    next_path: str,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
) -> Response:
    csrf = new_csrf_token()
    response = render(
        request,
        "login.html",
        {"csrf_token": csrf, "next": safe_next(next_path), "error": error, "username": username},
        status_code=status_code,
    )
    set_cookie(response, request, settings, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    if status_code == 401:
        response.headers["WWW-Authenticate"] = 'Cookie realm="exhale", form-action="/login"'
    return response


@router.get("/login")
def show_login(
    request: Request,
    settings: SettingsDep,
    next: Annotated[str, Query()] = "/",
) -> Response:
    return login_page(request, settings, next_path=next)


def _login_policy(settings: Settings) -> identity.LoginPolicy:
    return identity.LoginPolicy(
        lockout_after_failures=settings.auth.lockout_after_failures,
        lockout_base_s=settings.auth.lockout_base_s,
        lockout_max_s=settings.auth.lockout_max_s,
    )


@router.post("/login")
def do_login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    check_form_csrf(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE))
    retry_after = request.app.state.login_limiter.hit(
        f"login:{request.client.host if request.client else '-'}"
    )
    if retry_after is not None:
        response = login_page(
            request,
            settings,
            next_path=next,
            status_code=429,
            username=username,
            error=f"Too many login attempts from this computer. Wait {retry_after} seconds.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    missing = [f for f, v in (("username", username), ("password", password)) if not v.strip()]
    if missing:
        return login_page(
            request,
            settings,
            next_path=next,
            status_code=422,
            username=username,
            error=f"Enter your {' and '.join(missing)}.",
        )
    now = utcnow()
    try:
        user = identity.authenticate_password(
            session, username=username, password=password, policy=_login_policy(settings), now=now
        )
    except identity.LoginFailedError as error:
        audit.record(
            session,
            actor=Principal(ActorType.anonymous, None, username.strip()[:150], None, None),
            action=audit.Action.login,
            detail={"outcome": "failed"},
        )
        return login_page(
            request,
            settings,
            next_path=next,
            status_code=401,
            username=username,
            error=error.detail,
        )
    return _signed_in(request, session, settings, user=user, now=now, next_path=next)


def _signed_in(
    request: Request,
    session: SessionDep,
    settings: Settings,
    *,
    user: User,
    now: dt.datetime,
    next_path: str,
) -> Response:
    policy = session_policy(settings)
    token = identity.start_web_session(session, user=user, now=now, policy=policy)
    audit.record(
        session,
        actor=Principal(ActorType.user, user.id, user.username, user.role, user.organisation_id),
        action=audit.Action.login,
    )
    target = safe_next(next_path)
    if user.must_change_password:
        target = "/account/password"
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        response,
        request,
        settings,
        SESSION_COOKIE,
        token,
        max_age=int(policy.maximum.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def do_logout(
    request: Request,
    session: SessionDep,
    user: PageUser,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_form_csrf(csrf_token, user.csrf_token)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        identity.end_web_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account/password")
def show_password_form(
    request: Request,
    user: PageUser,
    next: Annotated[str, Query()] = "/",
) -> Response:
    return render(request, "password.html", {"user": user, "next": safe_next(next), "errors": []})


@router.post("/account/password")
def change_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PageUser,
    current_password: Annotated[str, Form(max_length=1000)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
    confirm_password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    check_form_csrf(csrf_token, user.csrf_token)
    account = session.get(User, user.id)
    assert account is not None
    errors = []
    if new_password != confirm_password:
        errors.append(("confirm_password", "Enter the same new password twice."))
    else:
        try:
            identity.change_password(
                session,
                user=account,
                current=current_password,
                new=new_password,
                min_length=settings.auth.min_password_length,
            )
        except InvalidInput as error:
            errors = [_password_error(f.field, f.message) for f in error.fields]
    if errors:
        return render(
            request,
            "password.html",
            {"user": user, "next": safe_next(next), "errors": errors},
            status_code=422,
        )
    return RedirectResponse(safe_next(next), status_code=303)


def _password_error(field: str, message: str) -> tuple[str, str]:
    """Name the form's own field, so the error summary's link lands on it."""
    field = "new_password" if field == "password" else field
    return field, f"{field.replace('_', ' ').capitalize()}: {message}."


@router.get("/")
def home(request: Request, session: SessionDep, user: PageUser) -> Response:
    account = session.get(User, user.id)
    assert account is not None
    return render(request, "home.html", {"user": user, "account": account})


def register_page_handlers(app: FastAPI) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequiredError)
        settings: Settings = request.app.state.settings
        return login_page(
            request,
            settings,
            next_path=exc.headers.get("X-Next", "/"),
            status_code=401,
            error=None if exc.detail == "Log in to continue." else exc.detail,
        )

    async def password_change(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PasswordChangeRequiredError)
        return RedirectResponse(exc.headers["Location"], status_code=303)

    async def csrf_failed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CsrfFailedError)
        return render(
            request,
            "error.html",
            {"title": "This form has expired", "message": exc.detail},
            status_code=403,
        )

    app.add_exception_handler(LoginRequiredError, login_required)
    app.add_exception_handler(PasswordChangeRequiredError, password_change)
    app.add_exception_handler(CsrfFailedError, csrf_failed)
