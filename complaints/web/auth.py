"""Who is signed in to the pages: signed session cookies, per-session CSRF tokens, the sign-in
rate limit, and the role checks every page makes.

The session is Starlette's SessionMiddleware (an itsdangerous-signed, HttpOnly, SameSite=Lax
cookie; Secure unless CLIPGATE_SESSION_HTTPS_ONLY=false). It holds a server-side session id
(a web_sessions row: signing out deletes it, so a copied cookie dies with it), the account id and
the account's session epoch: bumping the epoch (sign out everywhere, disabling) ends every session.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import FormData
from starlette.middleware.sessions import SessionMiddleware

from clipgate.settings import Settings
from complaints import accounts
from complaints.actors import Actor, actor_for_account

log = logging.getLogger(__name__)

SESSION_COOKIE = "clipgate_session"
CSRF_FIELD = "csrf_token"


class PageError(Exception):
    """Shown to the person as a page in plain words, with this HTTP status."""

    def __init__(self, status: int, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title


class SignInRequired(Exception):
    """No valid session: the pages redirect to the sign-in form (and back afterwards)."""


class StaleForm(PageError):
    def __init__(self) -> None:
        super().__init__(403, "This form has expired, or was not sent from this site. "
                         "Please go back, reload the page and try again.", "This form expired")


# --- the session secret and middleware ---------------------------------------------------------

def session_secret(settings: Settings) -> str:
    """CLIPGATE_SESSION_SECRET, or a secret made once in data_dir (mode 0600) and kept, so
    sessions survive a restart and every process on this data dir shares it."""
    if settings.session_secret:
        return settings.session_secret
    path: Path = settings.data_dir / "session_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def install_auth(app: FastAPI, settings: Settings) -> None:
    """The session middleware and the sign-in limiter of this app."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.session_https_only,
    )
    app.state.signin_limiter = SignInLimiter(settings)


# --- who is signed in --------------------------------------------------------------------------

def sign_in(request: Request, account: dict[str, Any]) -> None:
    """A fresh session at sign-in (no fixation), kept on the server; a new CSRF token too.
    Blocking (a database write): call it from a thread."""
    settings = _settings(request)
    sid = accounts.start_session(account["id"], settings.session_max_age_s, settings=settings)
    request.session.clear()
    request.session.update(sid=sid, aid=str(account["id"]), ep=account["session_epoch"],
                           csrf=secrets.token_urlsafe(32))


def sign_out(request: Request) -> None:
    """End this session on the server too. Blocking: call it from a thread."""
    accounts.end_session(str(request.session.get("sid") or ""), settings=_settings(request))
    request.session.clear()


def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def optional_account(request: Request) -> dict[str, Any] | None:
    """The signed-in, active account whose epoch matches the cookie's, or None."""
    if hasattr(request.state, "account"):
        return request.state.account
    account = None
    aid = request.session.get("aid")
    if aid:
        account = await run_in_threadpool(accounts.session_account,
                                          str(request.session.get("sid") or ""),
                                          settings=_settings(request))
        if (account is None or str(account["id"]) != aid or account["disabled_at"] is not None
                or account["session_epoch"] != request.session.get("ep")):
            request.session.clear()
            account = None
    request.state.account = account
    return account


OptionalAccount = Annotated[dict[str, Any] | None, Depends(optional_account)]


async def current_account(account: OptionalAccount) -> dict[str, Any]:
    if account is None:
        raise SignInRequired()
    return account


def require_roles(*roles: str) -> Any:
    """A dependency admitting signed-in accounts with one of these roles; others get a 403 page
    (a rights holder never learns what is in the queue)."""

    async def check(account: Annotated[dict[str, Any], Depends(current_account)]) -> Actor:
        if account["role"] not in roles:
            raise PageError(403, "Your account cannot open this page.", "Not allowed")
        return actor_for_account(account)

    return Depends(check)


RightsHolder = Annotated[Actor, require_roles("rights_holder")]
Staff = Annotated[Actor, require_roles("reviewer", "admin")]
Admin = Annotated[Actor, require_roles("admin")]
AnyAccount = Annotated[Actor, require_roles("rights_holder", "reviewer", "admin")]


# --- CSRF: a per-session token in every form, checked on every POST ------------------------------

def csrf_token(request: Request) -> str:
    """The session's token (made on first use, also for visitors not signed in)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token matches the session's; StaleForm otherwise."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        log.info("CSRF check failed on %s %s", request.method, request.url.path)
        raise StaleForm()
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


# --- the sign-in rate limit -------------------------------------------------------------------

class SignInLimiter:
    """Failed sign-ins in a moving window, keyed on the account first: past
    signin_max_failures for one email (from any address, so rotating addresses does not help)
    the form answers 429 until the window has passed. A looser limit per client address
    (signin_max_failures_per_address) stops one address from walking through many emails without
    locking out everyone behind a shared NAT. Redis holds the counts when the broker is Redis
    (all API processes share them), process memory otherwise."""

    def __init__(self, settings: Settings) -> None:
        url = settings.broker_url or ""
        uri = url if url.startswith(("redis://", "rediss://")) else "memory://"
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri))
        window = settings.signin_window_s
        self.per_email = RateLimitItemPerSecond(settings.signin_max_failures, window,
                                                namespace="clipgate-signin-account")
        self.per_addr = RateLimitItemPerSecond(settings.signin_max_failures_per_address, window,
                                               namespace="clipgate-signin-addr")
        self.signups = RateLimitItemPerSecond(settings.signup_max_per_address, window,
                                              namespace="clipgate-signup-addr")
        self.window_s = window

    def signup_allowed(self, addr: str) -> bool:
        """Counts this try: True while the address is within its sign-ups for the window."""
        return self.limiter.hit(self.signups, addr)

    def allowed(self, email: str, addr: str) -> bool:
        return (self.limiter.test(self.per_email, email)
                and self.limiter.test(self.per_addr, addr))

    def failed(self, email: str, addr: str) -> None:
        self.limiter.hit(self.per_email, email)
        self.limiter.hit(self.per_addr, addr)

    def succeeded(self, email: str, addr: str) -> None:
        self.limiter.clear(self.per_email, email)


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"
