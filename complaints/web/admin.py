"""The admin's page: the accounts, making a reviewer (or admin) account, disabling one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clipgate.errors import BadInput, NotFound
from complaints import accounts
from complaints.web.auth import Admin, CheckedForm, PageError
from complaints.web.portal import sentence
from complaints.web.render import flash, page

router = APIRouter(prefix="/admin", include_in_schema=False)

# Rights holders sign up themselves; staff accounts are made here.
STAFF_ROLES = ("reviewer", "admin")


def _settings(request: Request) -> Any:
    return request.app.state.settings


def _accounts_page(request: Request, status: int = 200, **extra: Any) -> Response:
    return page(request, "admin_accounts.html", status=status,
                accounts=accounts.list_accounts(settings=_settings(request)),
                staff_roles=STAFF_ROLES, **extra)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, actor: Admin) -> Response:
    return _accounts_page(request, values={"role": "reviewer"})


@router.post("/accounts", response_class=HTMLResponse)
def create(request: Request, actor: Admin, form: CheckedForm) -> Response:
    values = {k: str(form.get(k) or "").strip() for k in ("email", "name", "organisation", "role")}
    try:
        if values["role"] not in STAFF_ROLES:
            raise BadInput("choose the role: reviewer or admin")
        made = accounts.create_account(values["email"], str(form.get("password") or ""),
                                       values["name"], values["role"],
                                       values["organisation"] or None, created_by=actor,
                                       settings=_settings(request))
    except BadInput as e:
        return _accounts_page(request, status=e.status, values=values, error=sentence(e))
    flash(request, f"The {made['role']} account for {made['email']} is ready.")
    return RedirectResponse("/admin/accounts", status_code=303)


@router.post("/accounts/{account_id}/disable", response_class=HTMLResponse)
def disable(request: Request, actor: Admin, account_id: str, form: CheckedForm) -> Response:
    if account_id == actor.account_id:
        return _accounts_page(request, status=400, values={"role": "reviewer"},
                              error="You cannot disable your own account.")
    try:
        done = accounts.disable_account(account_id, by=actor, settings=_settings(request))
    except NotFound:
        raise PageError(404, "There is no such account.", "Account not found")
    flash(request, f"{done['email']} is disabled and signed out everywhere.")
    return RedirectResponse("/admin/accounts", status_code=303)
