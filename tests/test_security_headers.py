"""Security headers on every answer (issue 15): the JSON API, the docs, the OpenAPI document,
the pages and errors carry nosniff, a CSP and frame options; nothing personal is cached; HSTS is
sent only when set."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clipgate.app import create_app

PATHS = ["/v1/health/live", "/v1/works", "/docs", "/redoc", "/openapi.json", "/signin",
         "/portal", "/no-such-page", "/v1/tenants/%00/credits"]


@pytest.mark.parametrize("path", PATHS)
def test_every_answer_carries_the_headers(settings, path):
    r = TestClient(create_app(settings), follow_redirects=False).get(path)
    assert r.status_code < 500, r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers


def test_only_the_docs_may_run_inline_script(settings):
    c = TestClient(create_app(settings))
    assert "'unsafe-inline'" in c.get("/docs").headers["content-security-policy"]
    for path in ("/openapi.json", "/signin", "/v1/health/live"):
        assert "unsafe-inline" not in c.get(path).headers["content-security-policy"]


def test_static_assets_may_be_cached_and_hsts_is_a_setting(settings):
    c = TestClient(create_app(settings.model_copy(update={"hsts_max_age_s": 31536000})))
    r = c.get("/static/complaints/site.css")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in r.headers.get("cache-control", "")
    assert c.get("/v1/health/live").headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains")


def _boom() -> None:
    raise RuntimeError("secret detail: /srv/clipgate/keys and a traceback")


async def _async_boom() -> None:
    raise KeyError("another secret")


@pytest.mark.parametrize("path", ["/v1/test-boom", "/v1/test-async-boom", "/portal/test-boom"])
def test_an_unexpected_error_is_a_500_with_the_headers_and_a_request_id(settings, path, caplog):
    """Starlette's own 500 (ServerErrorMiddleware, outside every middleware) would carry none of
    the headers; the app answers it itself: JSON with the request id, no traceback."""
    app = create_app(settings)
    app.add_api_route("/v1/test-boom", _boom)
    app.add_api_route("/portal/test-boom", _boom)
    app.add_api_route("/v1/test-async-boom", _async_boom)
    with caplog.at_level("ERROR", logger="clipgate.api.unhandled"):
        r = TestClient(app, raise_server_exceptions=False).get(path)
    assert r.status_code == 500
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    request_id = r.headers["x-request-id"]
    assert r.json() == {"detail": f"internal error, logged under request id {request_id}: "
                                  "quote it when you report this", "request_id": request_id}
    assert "secret" not in r.text and "Traceback" not in r.text
    (record,) = [rec for rec in caplog.records if rec.name == "clipgate.api.unhandled"]
    assert record.exc_info is not None and path in record.getMessage()
