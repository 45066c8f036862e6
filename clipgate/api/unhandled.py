"""An unexpected exception's answer: 500 as JSON with the request id, through the app's other
middleware.

Starlette answers an exception nothing handled from ServerErrorMiddleware, the outermost layer:
that answer ("Internal Server Error") skips every middleware, so it would go out without the
security headers and the X-Request-ID. This layer sits inside them and answers first. The
traceback goes to the log (with the request id), never to the client.
"""

from __future__ import annotations

import logging

from asgi_correlation_id import correlation_id
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class Unhandled:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # half an answer went out: only the server can cut it off
                raise
            request_id = correlation_id.get()
            log.exception("%s %s: unexpected error", scope.get("method"), scope.get("path"))
            body = {"detail": f"internal error, logged under request id {request_id}: quote it "
                              "when you report this", "request_id": request_id}
            await JSONResponse(body, status_code=500)(scope, receive, send)
