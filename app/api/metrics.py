"""``GET /metrics`` for Prometheus (see app.metrics for what it reports).

Access: with ``EXHALE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``;
without it, only clients on the loopback interface (127.0.0.1, ::1) may scrape.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.errors import Forbidden, NotAuthenticated
from app.metrics import scrape_registry

LOOPBACK = frozenset({"127.0.0.1", "::1"})

router = APIRouter(include_in_schema=False)


def _check_access(request: Request) -> None:
    token = request.app.state.settings.metrics_token
    if token is None:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
            raise Forbidden(
                "Metrics are served only to this machine (127.0.0.1) unless "
                "EXHALE_METRICS_TOKEN is set; then send it as `Authorization: Bearer <token>`.",
            )
        return
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected):
        raise NotAuthenticated(
            "Send the metrics token (EXHALE_METRICS_TOKEN) as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": 'Bearer realm="exhale-metrics"'},
        )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    _check_access(request)
    state = request.app.state
    registry = scrape_registry(state.metrics_registry, state.sessionmaker)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
