"""The API's documentation page, ``/docs`` (Swagger UI), with files exhale serves.

FastAPI's own page loads Swagger UI from a CDN, which a trust's network may block, leaving a
blank page. This is the same page, loading the copy of Swagger UI that the ``fastapi-offline``
package ships, mounted at ``ASSETS_PATH``. It carries no patient data. There is no ``/redoc``:
ReDoc fetches its own logo from its CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

ASSETS_PATH = "/static/api-docs"  # under /static: cached like the pages' own files
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
SWAGGER_UI = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
PATHS = frozenset({SWAGGER_UI, OAUTH2_REDIRECT})

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
