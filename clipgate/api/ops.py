"""Routes for operators' tools: Prometheus' /metrics.

/metrics answers admin keys only (X-API-Key, or `Authorization: Bearer` as Prometheus'
`authorization` scrape option sends it), unless CLIPGATE_METRICS_OPEN is set for a scraper on a
private network; it is left out of the OpenAPI document either way (it is not JSON).
"""

from __future__ import annotations

from fastapi import FastAPI, Response

from clipgate import metrics
from clipgate.api.deps import AdminKeyDep, SettingsDep
from clipgate.settings import Settings


def _exposition(settings: Settings) -> Response:
    return Response(metrics.render(settings), media_type=metrics.CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def admin_metrics(settings: SettingsDep, _key: AdminKeyDep) -> Response:
    return _exposition(settings)


def open_metrics(settings: SettingsDep) -> Response:
    return _exposition(settings)


def install(app: FastAPI, settings: Settings) -> None:
    """Add GET /metrics, open or for admin keys as settings say."""
    app.add_api_route("/metrics", open_metrics if settings.metrics_open else admin_metrics,
                      methods=["GET"], include_in_schema=False)
