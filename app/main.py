"""The application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

import app.models  # noqa: F401  (every mapper configured before the first request)
from app import __version__, metrics
from app.api import (
    admin,
    deliveries,
    devices,
    docs,
    fast_readings,
    fhir,
    health,
    hl7v2,
    measures,
    oauth,
    pregnancies,
    readings,
    referrals,
)
from app.api import metrics as metrics_api
from app.api.errors import document_errors, register_error_handlers
from app.api.middleware import (
    MetricsMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from app.config import Settings, load_settings
from app.db import make_engine, make_sessionmaker
from app.logs import configure_logging
from app.ratelimit import RateLimiter
from app.web import advisor as web_advisor
from app.web import auth as web_auth
from app.web import births as web_births
from app.web import co_tests as web_co_tests
from app.web import details as web_details
from app.web import lead as web_lead
from app.web import pages as web_pages
from app.web import women as web_women

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Requests are matched against the routers in this order: readings first, as EPR systems and
# monitors send most requests there (`POST /api/v1/readings`). No two routers share a path.
API_ROUTERS = (
    readings.router,
    health.router,
    docs.router,
    pregnancies.router,
    devices.router,
    referrals.router,
    admin.router,
    deliveries.router,
    measures.router,
    fhir.router,
    hl7v2.router,
    oauth.router,
)
# The API's sections in its description (/docs), whatever order the routers are matched in.
OPENAPI_TAGS = (
    "health",
    "pregnancies",
    "readings",
    "monitors",
    "referrals",
    "administration",
    "measures",
    "hl7v2",
    "oauth",
)
PAGE_ROUTERS = (
    web_auth.router,
    web_women.router,
    web_co_tests.router,
    web_births.router,
    web_details.router,
    web_advisor.router,
    web_lead.router,
)

DESCRIPTION = """
exhale records exhaled carbon monoxide (CO) tests taken at antenatal appointments and refers every
woman with a reading of 4 ppm or more, or who smokes, to stop-smoking support (NICE NG209).

Machines authenticate with `Authorization: Bearer <API key>` (created with `exhale apikey create`)
or with a short-lived access token from `POST /oauth2/token` for a JWT signed with their registered
key (RFC 7523, as NHS England's API platform uses); people log in at `/login`. A record in
another organisation answers 404.

Errors share one body: `{"error": "<stable code>", "detail": "<what was wrong and how to fix it>",
"fields": [{"field": "...", "message": "..."}]}`. Every response carries an `X-Request-ID`.
"""


class ExhaleAPI(FastAPI):
    """FastAPI with the request context, security headers and request metrics outermost.

    Starlette answers an unhandled error from its outermost layer, outside any added middleware;
    wrapping the whole stack gives a 500 its request id, headers and count too.
    """

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        stack: ASGIApp = MetricsMiddleware(super().build_middleware_stack(), self.state.metrics)
        stack = SecurityHeadersMiddleware(
            stack, production=settings.is_production, hsts_max_age_s=settings.hsts_max_age_s
        )
        return RequestContextMiddleware(stack)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_errors(super().openapi())
        return self.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    engine = make_engine(
        settings.database_url, connect_timeout_s=settings.database_connect_timeout_s
    )

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        pooled = None
        # Opened here, in the event loop that will use it; the tests may have set their own.
        fast = settings.fast_readings and engine.dialect.name == "postgresql"
        if fast and app_.state.reading_transactions is None:
            pooled = fast_readings.PooledTransactions(
                settings.database_url, connect_timeout_s=settings.database_connect_timeout_s
            )
            await pooled.open()
            app_.state.reading_transactions = pooled
        try:
            yield
        finally:
            if pooled is not None:
                app_.state.reading_transactions = None
                await pooled.close()
            engine.dispose()

    application = ExhaleAPI(
        title="exhale",
        docs_url=None,  # served by app.api.docs, without a CDN
        redoc_url=None,  # ReDoc fetches its logo from a CDN
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[{"name": tag} for tag in OPENAPI_TAGS],
        lifespan=lifespan,
    )
    application.state.settings = settings
    application.state.engine = engine
    application.state.sessionmaker = make_sessionmaker(engine)
    application.state.reading_transactions = None  # set by the lifespan on PostgreSQL
    application.state.login_limiter = RateLimiter(limit=settings.auth.login_attempts_per_minute)
    application.state.api_limiter = RateLimiter(limit=settings.auth.api_requests_per_minute)
    application.state.metrics_registry = CollectorRegistry()
    # Read at scrape time, not now: the tests swap in a sessionmaker on their own connection.
    application.state.metrics = metrics.install(
        application.state.metrics_registry,
        lambda: application.state.sessionmaker(),  # noqa: PLW0108
    )
    register_error_handlers(application)
    web_auth.register_page_handlers(application)
    web_pages.register_not_found_pages(application)
    # Before /static, which would otherwise take these paths too.
    application.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS_DIR), name="api-docs")
    application.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (*API_ROUTERS, *PAGE_ROUTERS, metrics_api.router):
        application.include_router(router)
    return application


def settle_heap() -> None:
    """For a long-running process, once its app is built: the objects alive now (modules, routes,
    compiled schemas) live as long as the process, so the garbage collector stops walking them on
    every full collection (``gc.freeze``), which otherwise costs tens of milliseconds in the middle
    of large answers such as the national export."""
    gc.collect()
    gc.freeze()


def serving_app() -> FastAPI:
    """The app for each of several web processes (``exhale serve --workers N``)."""
    application = create_app()
    settle_heap()
    return application
