"""Request ids and access logs.

The access log names the route template (``/api/v1/pregnancies/{id}``), never the query
string, which could carry an NHS number.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover (a FastAPI that keeps full paths on every route)
    iter_route_contexts = None  # type: ignore[assignment]

from app.api import docs
from app.logs import get_logger
from app.metrics import RequestMetrics

log = get_logger("exhale.access")
REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _SAFE_REQUEST_ID.match(text) else None
    return None


@dataclass(frozen=True)
class RouteTemplate:
    path: str  # the full template, with every router's prefix: /api/v1/measures/staff/{id}
    methods: frozenset[str]
    pattern: re.Pattern[str]


def route_templates(app: Any) -> dict[int, RouteTemplate]:
    """Every route of the app by ``id(route)``, through nested routers; built once per app.

    FastAPI (0.165 here) keeps an included router's routes with their own short paths
    (``/staff``) and applies the prefixes while matching, so a route's ``path`` alone is not its
    template.
    """
    cached: dict[int, RouteTemplate] | None = getattr(app.state, "route_templates", None)
    if cached is not None:
        return cached
    templates = {}
    for route, path in _routes_with_paths(app.routes):
        methods = frozenset(getattr(route, "methods", None) or ())
        templates[id(route)] = RouteTemplate(path, methods, compile_path(path)[0])
    app.state.route_templates = templates
    return templates


def _routes_with_paths(routes: list[Any]) -> list[tuple[Any, str]]:
    if iter_route_contexts is None:  # FastAPI before nested routers: paths are complete
        found = [(r, getattr(r, "path_format", None) or getattr(r, "path", "")) for r in routes]
    else:
        found = [
            (c.original_route, c.path_format or c.path or "") for c in iter_route_contexts(routes)
        ]
    return [(route, path) for route, path in found if path]


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    app: Any = scope.get("app")
    if route is not None and app is not None and hasattr(app, "state"):
        known = route_templates(app).get(id(route))
        if known is not None:
            return known.path
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if path:
        return str(path)
    # A mounted app (the static files) leaves no route, but its prefix in root_path.
    mounted = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
    return f"{mounted}/{{path}}" if mounted else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope.get("method"),
                route=route_template(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


# The pages load their scripts and styles from /static only: no inline script or style, so the
# policy needs no 'unsafe-inline'. Charts are shown as data: images.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# /docs (app.api.docs) starts Swagger UI, from files exhale serves, with an inline script. It
# carries no patient data.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC_PREFIX = "/static/"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)


class SecurityHeadersMiddleware:
    """Security headers on every response: API, pages, static files, errors and 404s.

    A header a route set itself (the SVG chart's own policy) is kept. Everything but the static
    files is ``Cache-Control: no-store``, as API answers and pages may carry patient data.
    Strict-Transport-Security is sent in production and whenever the request came over https
    (``hsts_max_age_s`` 0 turns it off).
    """

    def __init__(self, app: ASGIApp, *, production: bool, hsts_max_age_s: int) -> None:
        self.app = app
        self.production = production
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains".encode()
        self.hsts_max_age_s = hsts_max_age_s
        # Built once for each kind of response: docs or not, static or not, with HSTS or not.
        self._built: dict[tuple[bool, bool, bool], list[tuple[bytes, bytes]]] = {}

    def _headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        path = str(scope.get("path", ""))
        https = scope.get("scheme") == "https"
        kind = (
            path in docs.PATHS,
            path.startswith(STATIC_PREFIX),
            bool(self.hsts_max_age_s and (self.production or https)),
        )
        headers = self._built.get(kind)
        if headers is None:
            headers = self._built[kind] = self._build(*kind)
        return headers

    def _build(self, is_docs: bool, static: bool, hsts: bool) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-security-policy", (DOCS_CSP if is_docs else PAGE_CSP).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", PERMISSIONS_POLICY.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if not static:
            headers.append((b"cache-control", b"no-store"))
        if hsts:
            headers.append((b"strict-transport-security", self.hsts))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self._headers_for(scope) if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class MetricsMiddleware:
    """Times every HTTP request; sits outside the error handlers, so a 500 is counted too."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.observe(
                method=str(scope.get("method", "")),
                route=route_template(scope),
                status=status,
                duration_s=time.perf_counter() - started,
            )
