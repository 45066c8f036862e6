"""Assembly of the HTTP API: settings, the domains' routers, error mapping, health.

`create_app(settings)` is the only entry point (`clipgate serve` and the tests use it). Every
route is under /v1; OpenAPI docs are at /docs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import compliance
import index
from clipgate import __version__, apikeys, db, queue
from clipgate.api import SettingsDep
from clipgate.api.deps import SentKeyDep, check_sent_key
from clipgate.api import errors as api_errors
from clipgate.api import http_metrics
from clipgate.api import ops as api_ops
from clipgate.api.guard import text_guard
from clipgate.api.headers import SecurityHeaders
from clipgate.api.models import HealthOut, LiveOut
from clipgate.api.unhandled import Unhandled
from clipgate.errors import ClipgateError, Unavailable
from clipgate.settings import Settings, get_settings
from compliance.routes import router as compliance_router
from complaints import web as complaints_web
from complaints.routes import router as complaints_router
from generator import resume
from generator.routes import router as generation_router
from index.routes import router as works_router

log = logging.getLogger(__name__)

# Room for multipart framing and form fields on top of the largest file we accept.
_BODY_SLACK = 1 << 20
SHUTDOWN_WAIT_S = 10.0  # how long shutdown waits for an in-process generation job to finish


def create_app(settings: Settings | None = None, *, resume_jobs: bool = False,
               sweep_reviews: bool = False) -> FastAPI:
    """The API. resume_jobs: without a broker, run generation jobs left behind by a dead
    process (and any queued meanwhile) in a background thread from start-up to shutdown.
    sweep_reviews: without a broker, block held clips nobody decided within
    CLIPGATE_REVIEW_TIMEOUT_S from a background thread. `clipgate serve` turns both on; off by
    default so that an app built for tests or embedding never acts behind the caller's back (a
    test may expect a queued job to stay queued)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(apikeys.ensure_bootstrap_key, settings)
        except ClipgateError as e:
            # Keep serving: health says what is down, and the key is stored on first use.
            log.error("bootstrap API key not stored yet: %s", e)
            app.state.bootstrap_pending = True
        # Load the signals' models now: a missing or corrupt model file is said at start-up
        # (health then reports it, and every check fails closed with 503).
        signals = await run_in_threadpool(_signals_health, settings)
        if not signals["ok"]:
            log.error("signals not usable, every check will fail closed: %s", {
                n: p["error"] for n, p in signals.items() if isinstance(p, dict) and "error" in p}
                or signals.get("error"))
        app.state.resume_loop = resume.start_loop(settings) if resume_jobs else None
        app.state.review_timeouts = (compliance.start_review_timeouts(settings)
                                     if sweep_reviews else None)
        # Apply other processes' index changes as they come, not at the next check.
        app.state.index_follower = index.follow_changes(settings)
        try:
            yield
        finally:
            if app.state.index_follower is not None:
                await run_in_threadpool(app.state.index_follower.stop)
            if app.state.review_timeouts is not None:
                await run_in_threadpool(app.state.review_timeouts.stop, SHUTDOWN_WAIT_S)
            # Waits a little for the job it runs; one cut short is recovered at the next start
            # (its lease runs out), so a stop never hangs on a long generation.
            if app.state.resume_loop is not None:
                await run_in_threadpool(app.state.resume_loop.stop, SHUTDOWN_WAIT_S)

    # FastAPIOffline serves the Swagger UI and ReDoc assets itself: no CDN at run time.
    app = FastAPIOffline(
        title="clipgate",
        version=__version__,
        description="Copyright-compliance gate for AI video generators: register protected "
        "works, gate generated clips (release / block / review), C2PA-sign what is released.",
        lifespan=lifespan,
        # Control characters and over-long text are refused before any route runs.
        dependencies=[Depends(text_guard)],
    )
    app.state.settings = settings
    app.state.bootstrap_pending = False
    # Innermost: an unexpected exception is answered here, inside the request id and security
    # headers' middleware (Starlette's own 500 would skip them).
    app.add_middleware(Unhandled)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + _BODY_SLACK)
    # Outermost: every log line of a request, and the tasks it queues, carry its X-Request-ID.
    app.add_middleware(CorrelationIdMiddleware)
    api_errors.install(app)
    app.include_router(works_router)
    app.include_router(compliance_router)
    app.include_router(generation_router)
    app.include_router(complaints_router)
    # The pages for people: claim portal (/portal), review queue (/review), accounts (/admin).
    complaints_web.install(app, settings)
    # Outside the pages' own middleware, so every answer has them (clipgate.api.headers).
    app.add_middleware(SecurityHeaders, hsts_max_age_s=settings.hsts_max_age_s)
    # Around all the rest: each request counted and timed by its route's template.
    http_metrics.install(app)
    # Added last, so it runs first: every part sees the client a trusted proxy names.
    if settings.trusted_proxies.strip():
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_api_route("/v1/health", health, methods=["GET"], tags=["health"],
                      response_model=HealthOut, response_model_exclude_unset=True,
                      responses={503: {
                          "model": HealthOut, "description": "A part is down (which, and why)"}},
                      summary="Readiness: 200 when every part works, 503 otherwise; each "
                              "part's details for an admin key")
    api_ops.install(app, settings)  # /metrics
    app.add_api_route("/v1/health/live", live, methods=["GET"], tags=["health"],
                      response_model=LiveOut,
                      summary="Liveness: 200 while the process answers")
    return app


# How every server of this app runs uvicorn: its own proxy-header handling (which believes
# X-Forwarded-For from loopback by default) is off; the app believes only CLIPGATE_TRUSTED_PROXIES.
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "forwarded_allow_ips": ""}


def health(settings: SettingsDep, response: Response, key: SentKeyDep) -> dict[str, Any]:
    """Everyone learns whether the service is ready (200 or 503, for load balancers); an admin
    key also gets each part's details (the signer's subject, the index's size, versions), which
    are the operator's business."""
    status: dict[str, Any] = {}
    admin = False
    if key is not None:
        try:
            admin = check_sent_key(key, settings)["role"] == "admin"
        except Unavailable as e:  # the keys' database is down: say why there are no details
            status["detail"] = f"cannot check the API key, so no details: {e}"
    parts = {
        "database": db.ping(settings),
        "broker": queue.broker_health(settings),
        "index": index.health(settings),
        "signer": _signer_health(settings),
        "signals": _signals_health(settings),
        "clip": _clip_health(settings),
    }
    ok = all(p.get("ok") for p in parts.values())
    response.status_code = 200 if ok else 503
    status = {"status": "ok" if ok else "degraded", **status}
    if not admin:
        return status
    return {**status, "version": __version__, **parts}


def live() -> dict[str, str]:
    return {"status": "ok"}


def _signer_health(settings: Settings) -> dict[str, Any]:
    try:
        return compliance.signer(settings).health()
    except Exception as e:  # health reports, never raises
        return {"ok": False, "error": str(e)}


def _signals_health(settings: Settings) -> dict[str, Any]:
    """Each signal this process computes, its model loaded: ok with its version, or the error
    (a missing or corrupt model file) that makes every check fail closed."""
    out: dict[str, Any] = {}
    try:
        active = index.active(settings)
    except Exception as e:  # a model that cannot load: health reports, never raises
        return {"ok": False, "error": str(e)}
    for name, signal in active.items():
        try:
            out[name] = {"ok": True, **signal.describe()}
        except Exception as e:
            out[name] = {"ok": False, "error": str(e)}
    return {"ok": all(p["ok"] for p in out.values()), **out}


def _clip_health(settings: Settings) -> dict[str, Any]:
    """CLIP's mode (auto: only with a checkpoint), without loading it. Not computing CLIP, or
    computing it with random weights for a test, is a working mode; a configured checkpoint that
    is missing is not."""
    out: dict[str, Any] = {"ok": True, **index.clip_status(settings)}
    ckpt = settings.clip_checkpoint
    if ckpt is not None and not ckpt.is_file():
        out.update(ok=False, error=f"CLIP checkpoint not found: {ckpt} (CLIPGATE_CLIP_CHECKPOINT)")
    return out


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 before they are spooled to disk: by
    Content-Length up front, and by counting for bodies sent without one."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # An HTTPException passes FastAPI's body parsing unchanged and becomes JSON.
                raise HTTPException(413, _too_large_message(self.limit))
            return message

        await self.app(scope, counted, send)


def _too_large_message(limit: int) -> str:
    return (f"request body is over the limit of {limit} bytes "
            f"(CLIPGATE_MAX_UPLOAD_BYTES plus {_BODY_SLACK} for form fields)")


def _too_large(limit: int) -> Response:
    return JSONResponse({"detail": _too_large_message(limit)}, status_code=413,
                        headers={"Connection": "close"})
