"""The web pages of the complaints package: the rights holders' claim portal (/portal), the legal
team's review queue (/review) and the admin's accounts page (/admin).

`install(app, settings)` adds the session middleware, the routers, the static files and the
error pages; clipgate.app calls it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from clipgate.api.errors import clipgate_error
from clipgate.errors import BadInput
from clipgate.settings import Settings
from complaints.web import account_pages, admin, held, portal, review
from complaints.web.auth import PageError, SignInRequired, install_auth
from complaints.web.render import page, templates

# The pages' paths; the JSON API under /v1 keeps its own answers.
PAGE_PREFIXES = ("/portal", "/review", "/admin", "/account", "/claims/", "/signin", "/signup",
                 "/signout")
# Room for the form's other fields on top of the largest file we accept (as clipgate.app).
_FORM_SLACK = 1 << 20


def install(app: FastAPI, settings: Settings) -> None:
    install_auth(app, settings)
    # Added last, so it runs first: before the API's JSON body limit answers a page's upload.
    app.add_middleware(PageGuard, file_limit=settings.max_upload_bytes)
    app.mount("/static/complaints", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="complaints-static")
    for router in (account_pages.router, portal.router, review.router, held.router,
                   admin.router):
        app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(PageError, _error_page)
    app.add_exception_handler(BadInput, _bad_input)


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/"
    return RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return page(request, "error.html", status=exc.status, title=exc.title or "Something went wrong",
                message=exc.message)


async def _bad_input(request: Request, exc: Exception) -> Response:
    """Bad input that reaches no page's own handling (the text guard's refusals, before any route
    runs): a page in words on the pages, the API's JSON everywhere else."""
    if _is_page(request.url.path):
        return page(request, "error.html", status=400, title="That could not be accepted",
                    message=str(exc))
    return await clipgate_error(request, exc)


def _is_page(path: str) -> bool:
    return path == "/" or path.startswith(PAGE_PREFIXES)


class PageGuard:
    """For the pages only: an upload over the limit refused with a page in words (by its
    Content-Length, before it is read) instead of JSON. (Security headers are the app's, on every
    answer: clipgate.api.headers.)"""

    def __init__(self, app: ASGIApp, file_limit: int) -> None:
        self.app = app
        self.file_limit = file_limit
        self.limit = file_limit + _FORM_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            html = templates.get_template("too_large.html").render(limit=_size(self.file_limit))
            response = HTMLResponse(html, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{max(1, n // 1024)} KB"
