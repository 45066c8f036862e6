"""Signing up, in and out, and the start page (which sends each role to its own pages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clipgate.errors import BadInput, Conflict
from complaints import accounts, webhook_signing
from complaints.web.auth import (
    AnyAccount,
    CheckedForm,
    OptionalAccount,
    client_addr,
    sign_in,
    sign_out,
)
from complaints.web.portal import sentence
from complaints.web.render import flash, page

router = APIRouter(include_in_schema=False)

HOME = {"rights_holder": "/portal", "reviewer": "/review", "admin": "/review"}


def _safe_next(target: str | None) -> str | None:
    # Only paths on this site: "//evil.example" or "https://..." would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, account: OptionalAccount) -> Response:
    if account is not None:
        return _see(HOME[account["role"]])
    return page(request, "home.html")


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, account: OptionalAccount, next: str | None = None) -> Response:
    if account is not None:
        return _see(HOME[account["role"]])
    return page(request, "signin.html", next=_safe_next(next))


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, form: CheckedForm) -> Response:
    email = accounts.normalise_email(str(form.get("email") or ""))
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or ""))
    limiter = request.app.state.signin_limiter
    addr = client_addr(request)
    if not limiter.allowed(email, addr):
        minutes = max(1, limiter.window_s // 60)
        return page(request, "signin.html", status=429, email=email, next=target,
                    error=f"Too many failed attempts to sign in. For your safety, please wait "
                          f"{minutes} minutes and try again.")
    account = await run_in_threadpool(accounts.authenticate, email, password,
                                      settings=request.app.state.settings)
    if account is None:
        limiter.failed(email, addr)
        return page(request, "signin.html", status=400, email=email, next=target,
                    error="That email and password do not match an active account.")
    limiter.succeeded(email, addr)
    await run_in_threadpool(sign_in, request, account)
    return _see(target or HOME[account["role"]])


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request) -> Response:
    return page(request, "signup.html", values={})


# Said whether or not the email had an account: the form never tells which emails exist.
SIGNED_UP = ("If this email had no account yet, your account is ready: sign in with it below. "
             "If it had one, sign in with that account's password.")


@router.post("/signup", response_class=HTMLResponse)
def signup(request: Request, form: CheckedForm, background: BackgroundTasks) -> Response:
    """Anyone may open a rights-holder account; reviewers and admins are made by an admin. The
    answer is the same whether or not the email is taken (then nothing is changed, and the
    account's owner is emailed after the answer is sent), and each address has
    CLIPGATE_SIGNUP_MAX_PER_ADDRESS tries per window."""
    values: dict[str, Any] = {k: str(form.get(k) or "") for k in ("email", "name", "organisation")}
    limiter = request.app.state.signin_limiter
    if not limiter.signup_allowed(client_addr(request)):
        minutes = max(1, limiter.window_s // 60)
        return page(request, "signup.html", status=429, values=values,
                    error=f"Too many sign-ups from your address. Please wait {minutes} minutes "
                          "and try again.")
    password = str(form.get("password") or "")
    if password != str(form.get("password2") or ""):
        return page(request, "signup.html", status=400, values=values,
                    error="The two passwords are not the same.")
    try:
        accounts.create_account(values["email"], password, values["name"], "rights_holder",
                                values["organisation"] or None,
                                settings=request.app.state.settings)
    except Conflict:
        # The email is taken: answered as if it were not (its password was hashed too); its
        # owner is told by email, in the background so the answer comes as fast either way.
        background.add_task(accounts.tell_owner_of_signup, values["email"],
                            settings=request.app.state.settings)
    except BadInput as e:
        return page(request, "signup.html", status=e.status, values=values, error=sentence(e))
    flash(request, SIGNED_UP)
    return _see("/signin")


@router.post("/signout")
def signout(request: Request, form: CheckedForm) -> Response:
    sign_out(request)
    return _see("/signin")


@router.post("/signout-everywhere")
async def signout_everywhere(request: Request, form: CheckedForm, account: OptionalAccount
                             ) -> Response:
    """End every session of this account, on every device (the epoch in their cookies is old)."""
    if account is not None:
        await run_in_threadpool(accounts.end_sessions, str(account["id"]),
                                settings=request.app.state.settings)
    await run_in_threadpool(sign_out, request)
    return _see("/signin")


def _account_page(request: Request, actor: Any, status: int = 200, **context: Any) -> Response:
    # A rights holder's page shows the secret their webhook notices are signed with.
    if actor.role == "rights_holder":
        context["webhook_secret"] = webhook_signing.secret_for(
            actor.account_id, settings=request.app.state.settings)
    return page(request, "account.html", status=status, **context)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, actor: AnyAccount) -> Response:
    return _account_page(request, actor)


@router.post("/account/webhook-secret")
def rotate_webhook_secret(request: Request, actor: AnyAccount, form: CheckedForm) -> Response:
    """Replace the signing secret (when the old one may have leaked)."""
    webhook_signing.rotate_secret(actor.account_id, settings=request.app.state.settings)
    flash(request, "A new signing secret is in place: notices are signed with it from now on.")
    return _see("/account")


@router.post("/account/webhook", response_class=HTMLResponse)
def set_webhook(request: Request, actor: AnyAccount, form: CheckedForm) -> Response:
    """Where decisions on this account's claims are also posted (empty: by email only)."""
    url = str(form.get("webhook_url") or "").strip()
    try:
        updated = accounts.set_webhook(actor.account_id, url, settings=request.app.state.settings)
    except BadInput as e:
        return _account_page(request, actor, status=e.status, error=sentence(e), webhook=url)
    flash(request, "Saved: decisions will also be posted to " + updated["webhook_url"]
          if updated["webhook_url"] else "Saved: decisions are sent by email only.")
    return _see("/account")

