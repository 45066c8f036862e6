"""Rendering the pages: one Jinja2 environment, the words people see for states and actions, and
small filters (ages, times)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from clipgate import pages
from complaints.web.auth import csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

STATES = {
    "submitted": "Received",
    "triaged": "Waiting for a reviewer",
    "in_review": "In review",
    "info_requested": "More information needed",
    "upheld": "Upheld",
    "rejected": "Rejected",
}
REMEDIES = {
    "takedown": "Take the clip down",
    "block": "Block future outputs that copy the work",
    "exclude_training": "Exclude the work from training",
}
ACTIONS = {
    "takedown": "Take the claimed clip down (revoke its release)",
    "block": "Block future outputs that match the work",
    "exclude_training": "Flag the work for exclusion from training",
    "rescan_revoke": "Rescan every released clip and revoke the matches",
    "rescan_flag": "Rescan every released clip and flag the matches for review",
}
ROLES = {"rights_holder": "Rights holder", "reviewer": "Reviewer", "admin": "Admin"}


def age(seconds: float | int | None) -> str:
    """3 min, 5 h, 2 days: how long something has waited, in words."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return "under a minute"
    if s < 3600:
        return f"{max(1, s // 60)} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "-" if value is None else str(value)


def seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f} s"
    except (TypeError, ValueError):
        return "-"


def action(name: str) -> str:
    """An audit action ("claim.assign") in words ("assign")."""
    return (name or "").removeprefix("claim.").replace("_", " ").replace(".", " ")


templates.env.filters.update(age=age, when=when, seconds=seconds, action=action,
                              extract=lambda key, words: words.get(key, key))
templates.env.globals.update(STATES=STATES, REMEDIES=REMEDIES, ACTIONS=ACTIONS, ROLES=ROLES)


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with what every page needs: the account, the CSRF token, the flash."""
    context.setdefault("account", getattr(request.state, "account", None))
    context["csrf_token"] = csrf_token(request)
    context["flash"] = request.session.pop("flash", None)
    return templates.TemplateResponse(request, name, context, status_code=status)


def user_error_status(e: Exception) -> int:
    """The HTTP status of an error a person can fix by changing the form (4xx: shown on the page
    again). Errors of the service itself (5xx) are raised again, for the error page."""
    status = getattr(e, "status", 400)
    if status >= 500:
        raise e
    return status


def page_size(value: str) -> int:
    """Rows per page from a page's `limit` query (the default when missing or not a number)."""
    try:
        return min(max(1, int(value)), pages.MAX_LIMIT)
    except ValueError:
        return pages.DEFAULT_LIMIT


def pager(request: Request, page: Any, param: str = "cursor") -> dict[str, Any]:
    """What a list's pager shows: how many of the total, and the links to the next page and back
    to the first (the other query parameters kept; `param` names this list's cursor)."""
    url = request.url.remove_query_params(param)
    first = url.path + (f"?{url.query}" if url.query else "")
    nxt = None
    if page.next_cursor:
        with_cursor = url.include_query_params(**{param: page.next_cursor})
        nxt = f"{with_cursor.path}?{with_cursor.query}"
    return {"shown": len(page.items), "total": page.total, "next": nxt,
            "first": first if request.query_params.get(param) else None}


def flash(request: Request, message: str) -> None:
    """A one-line notice shown on the next page (after a redirect)."""
    request.session["flash"] = message
