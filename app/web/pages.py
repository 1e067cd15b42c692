"""What the role pages share: a route class that answers errors with pages, role checks, form
errors and the parsing of NHS-style date inputs.

Pages call the services directly, in the request's session, and commit in the route before
redirecting (post, redirect, get). A form with errors comes back with its status (422 or 409),
an error summary linking to each field, and what was typed.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.api.deps import SessionDep
from app.audit import service as audit
from app.clock import LONDON
from app.clock import long_date as _long_date
from app.errors import ExhaleError
from app.identity.principal import Principal
from app.logs import get_logger
from app.web.common import (
    TEMPLATES,
    CsrfFailedError,
    LoginRequiredError,
    PageUser,
    PasswordChangeRequiredError,
    render,
)

log = get_logger(__name__)
PASS_THROUGH = (LoginRequiredError, PasswordChangeRequiredError, CsrfFailedError)


class PageForbiddenError(ExhaleError):
    status_code = 403
    code = "forbidden"


ERROR_TITLES = {
    403: "You cannot use this page",
    404: "Page not found",
    405: "Page not found",
    409: "Someone else changed this record",
    422: "Check what was sent",
    500: "Sorry, there is a problem with the service",
}


def error_page(request: Request, status_code: int, message: str) -> Response:
    title = ERROR_TITLES.get(status_code, "Something went wrong")
    context = {
        "title": title,
        "message": message,
        "user": getattr(request.state, "page_user", None),
        "request_id": getattr(request.state, "request_id", None),
        "status_code": status_code,
    }
    return render(request, "error.html", context, status_code=status_code)


class PageRoute(APIRoute):
    """Errors on a page are pages, never the API's JSON: 404 and 403 with a way back.

    The session dependency has already rolled back (and written any denied attempt to the audit
    trail) when an error reaches here. Login, password-change and CSRF answers keep their own
    handlers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except PASS_THROUGH:
                raise
            except ExhaleError as error:
                return error_page(request, error.status_code, error.detail)
            except RequestValidationError:
                return error_page(request, 404, "Check the address: this page does not exist.")
            except StaleDataError:
                return error_page(
                    request,
                    409,
                    "Someone else changed this record at the same moment. Go back, reload the "
                    "page, check what changed, and try again.",
                )
            except Exception as error:
                log.error("unhandled_page_error", error_type=type(error).__name__, exc_info=error)
                return error_page(
                    request,
                    500,
                    "Something went wrong on our side and nothing was saved. Try again; if it "
                    "keeps happening, give your administrator the reference below.",
                )

        return handler


API_PATHS = ("/api", "/fhir", "/hl7", "/oauth2", "/metrics", "/healthz", "/readyz")
"""Paths whose errors are always the API's error body, whoever asks."""


def _wants_page(request: Request) -> bool:
    path = request.url.path
    if any(path == prefix or path.startswith(prefix + "/") for prefix in API_PATHS):
        return False
    return "text/html" in request.headers.get("accept", "")


def register_not_found_pages(app: FastAPI) -> None:
    """A browser sent to an address no route has (404), or to one only a form posts to (405),
    gets the "Page not found" page; API paths and clients that do not ask for HTML keep the
    API's error body.

    Call after ``register_error_handlers``: its answer stays the answer for everything else, and
    gives the 405 page its ``Allow`` header.
    """
    api_answer = app.exception_handlers[StarletteHTTPException]

    async def answer(request: Request, exc: Exception) -> Response:
        response = api_answer(request, exc)
        if inspect.isawaitable(response):
            response = await response
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code not in {404, 405} or not _wants_page(request):
            return response
        page = error_page(request, exc.status_code, "Check the address: this page does not exist.")
        if "allow" in response.headers:
            page.headers["Allow"] = response.headers["allow"]
        return page

    app.add_exception_handler(StarletteHTTPException, answer)


ROLE_NAMES = {"midwife": "midwives", "advisor": "advisors", "lead": "leads", "admin": "admins"}


def role_user(*roles: str, record: str | None = None) -> Any:
    """The signed-in user when her role may use the page; otherwise a 403 page.

    ``record`` names the record type the path's ``{id}`` identifies, so that a refused attempt
    on it is audited, as the API does.
    """

    def dependency(request: Request, session: SessionDep, user: PageUser) -> Principal:
        request.state.page_user = user
        if user.role in roles:
            return user
        if record is not None:
            audit.record_denied(
                session,
                actor=user,
                action=audit.action_for_method(request.method),
                reason="role",
                record_type=record,
                record_id=request.path_params.get("id"),
            )
        allowed = " and ".join(ROLE_NAMES.get(r, r) for r in roles)
        article = "an" if (user.role or "").startswith(("a", "e", "i", "o", "u")) else "a"
        raise PageForbiddenError(
            f"This page is for {allowed}. You are signed in as {article} {user.role}: go to your "
            "home page for the pages you use."
        )

    dependency.__name__ = f"page_{'_'.join(roles)}"
    return Depends(dependency)


async def form_data(request: Request) -> dict[str, str]:
    """The posted form's text fields (the last value of each name)."""
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(form_data)]
MidwifeUser = Annotated[Principal, role_user("midwife")]
AdvisorUser = Annotated[Principal, role_user("advisor")]
LeadUser = Annotated[Principal, role_user("lead")]


# --- form errors ---------------------------------------------------------------------------------


@dataclass
class FormErrors:
    """Errors in the order of the form's fields; ``ids`` are the fields' element ids."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, field_id: str, message: str) -> None:
        if field_id not in self.by_id:
            self.items.append((field_id, message))

    @property
    def by_id(self) -> dict[str, str]:
        return dict(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def from_error(
        self,
        error: ExhaleError,
        fields: Mapping[str, tuple[str, str]],
        fallback: str,
        prefix: str = "",
    ) -> None:
        """Name each of a service's field errors by the form field it belongs to.

        ``fields`` maps the service's field name to the form's element id and a label for it.
        """
        if not error.fields:
            self.add(prefix + fallback, error.detail)
        for item in error.fields:
            field_id, label = fields.get(item.field, (fallback, ""))
            message = f"{label} {item.message}" if label else error.detail
            self.add(prefix + field_id, message if message.endswith(".") else message + ".")


def refused(
    session: Session,
    error: ExhaleError,
    errors: FormErrors,
    fields: Mapping[str, tuple[str, str]],
    fallback: str,
    *,
    prefix: str = "",
    kept: tuple[int, ...] = (409,),
) -> int:
    """A write the service refused: nothing of it is kept, as in the API, and its messages go on
    the form (``FormErrors.from_error``). The status to answer with: the error's own when it is
    one of ``kept``, else 422."""
    session.rollback()
    errors.from_error(error, fields, fallback, prefix)
    return error.status_code if error.status_code in kept else 422


# --- values from forms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DateParts:
    day: str = ""
    month: str = ""
    year: str = ""

    @property
    def blank(self) -> bool:
        return not (self.day.strip() or self.month.strip() or self.year.strip())

    @classmethod
    def of(cls, value: dt.date | None) -> DateParts:
        if value is None:
            return cls()
        return cls(str(value.day), str(value.month), str(value.year))

    @classmethod
    def from_form(cls, form: Mapping[str, Any], name: str) -> DateParts:
        return cls(
            str(form.get(f"{name}-day", ""))[:4],
            str(form.get(f"{name}-month", ""))[:4],
            str(form.get(f"{name}-year", ""))[:6],
        )

    def parse(self) -> dt.date:
        """The date, or ValueError with the NHS design system's wording."""
        try:
            return dt.date(int(self.year), int(self.month), int(self.day))
        except ValueError:
            raise ValueError("must be a real date, for example 27 3 2027") from None


def read_date(
    form: Mapping[str, Any],
    name: str,
    errors: FormErrors,
    *,
    field_id: str,
    label: str,
    required: bool,
) -> tuple[DateParts, dt.date | None]:
    parts = DateParts.from_form(form, name)
    if parts.blank:
        if required:
            errors.add(f"{field_id}-day", f"Enter {label}.")
        return parts, None
    try:
        return parts, parts.parse()
    except ValueError as error:
        errors.add(f"{field_id}-day", f"{label.capitalize()} {error}.")
        return parts, None


def read_whole_number(value: str, *, lowest: int, highest: int) -> int | None:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if lowest <= number <= highest else None


def form_text(form: Mapping[str, Any], name: str, max_length: int = 500) -> str:
    value = form.get(name, "")
    return value.strip()[:max_length] if isinstance(value, str) else ""


# --- showing values ------------------------------------------------------------------------------


def local_time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(LONDON).strftime("%-d %b %Y, %H:%M")


def long_date(value: dt.date | str | None) -> str:
    if isinstance(value, str):  # an ISO date kept in an event's data
        try:
            return _long_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    return _long_date(value) if value else ""


def nhs_number(value: str | None) -> str:
    """Shown as 3 3 4 digits, as NHS services write it."""
    if not value or len(value) != 10:
        return value or ""
    return f"{value[:3]} {value[3:6]} {value[6:]}"


def gestation(days: int | None) -> str:
    if days is None:
        return ""
    return f"{days // 7}+{days % 7} weeks"


LABELS = {
    "co_elevated": "raised CO reading",
    "self_reported_smoker": "says she smokes",
    "recently_stopped": "stopped smoking recently",
    "previously_not_engaged": "did not engage with an earlier referral",
    "ex_smoker": "ex-smoker",
    "non_smoker": "non-smoker",
    "unknown": "not stated",
    "36_weeks": "36-week",
    "no_monitor": "no working monitor",
    "28_day": "28 days",
    "co_confirmed_quit": "quit, confirmed by CO",
    "self_reported_quit": "quit, self-reported",
    "nrt_patch": "NRT patch",
    "nrt_short_acting": "NRT short-acting",
    "nrt_combination": "NRT combination",
    "e_cigarette": "e-cigarette",
}


def words(value: str | None) -> str:
    """A stored code as words: ``quit_date_set`` reads "quit date set"."""
    if not value:
        return ""
    return LABELS.get(value, value.replace("_", " "))


def sentence(value: str | None) -> str:
    """Capitalised first letter, the rest as it is ("CO" stays "CO")."""
    return value[:1].upper() + value[1:] if value else ""


TEMPLATES.env.filters.update(
    local_time=local_time,
    long_date=long_date,
    nhs_number=nhs_number,
    gestation=gestation,
    words=words,
    sentence=sentence,
)
