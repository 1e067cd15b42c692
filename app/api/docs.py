"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with files exhale serves.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, which a trust's network may block,
leaving a blank page. These are the same pages, loading the copies of those files that the
``fastapi-offline`` package ships, mounted at ``ASSETS_PATH``. They carry no patient data.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

ASSETS_PATH = "/static/api-docs"  # under /static: cached like the pages' own files
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
SWAGGER_UI = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOC = "/redoc"
PATHS = frozenset({SWAGGER_UI, OAUTH2_REDIRECT, REDOC})

router = APIRouter(include_in_schema=False)


def _assets(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{ASSETS_PATH}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get(SWAGGER_UI)
async def swagger_ui(request: Request) -> HTMLResponse:
    assets = _assets(request)
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title}: API",
        oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC)
async def redoc(request: Request) -> HTMLResponse:
    assets = _assets(request)
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title}: API",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )
