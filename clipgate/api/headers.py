"""Security headers on every answer: the JSON API, the pages, the docs and their assets.

- Content-Security-Policy: same origin only, never framed; the docs pages (Swagger UI, ReDoc)
  start themselves with an inline script and style, so they alone may run inline code.
- X-Content-Type-Options: nosniff, X-Frame-Options: DENY, Referrer-Policy: same-origin.
- Cache-Control: no-store on everything but static assets: API answers, pages, /docs and
  /openapi.json may carry someone's data, and a shared cache or the browser's back button must
  not keep them.
- Strict-Transport-Security when CLIPGATE_HSTS_MAX_AGE_S is over 0 (only behind https).

A header the route set itself is kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
DOCS_PATHS = ("/docs", "/redoc")
STATIC_PREFIXES = ("/static/", "/static-offline-docs/")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0) -> None:
        self.app = app
        self.hsts = (f"max-age={hsts_max_age_s}; includeSubDomains".encode()
                     if hsts_max_age_s > 0 else None)

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CSP if path == "/docs" or path.startswith(DOCS_PATHS) else CSP
        out = [(b"content-security-policy", csp.encode()),
               (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"same-origin")]
        if not path.startswith(STATIC_PREFIXES):
            out.append((b"cache-control", b"no-store"))
        if self.hsts is not None:
            out.append((b"strict-transport-security", self.hsts))
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra if k not in have]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
