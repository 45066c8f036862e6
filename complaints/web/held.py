"""Held clips on the legal team's pages: a clip the gate held for review, its evidence side by
side with the works that held it, and the release and block forms. Reviewers and admins only;
the clip itself is never served, only its frames."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import compliance
from clipgate.errors import ClipgateError, NotFound
from complaints.actors import Actor
from complaints.web.auth import CheckedForm, PageError, Staff
from complaints.web.evidence import evidence_view
from complaints.web.portal import sentence
from complaints.web.render import flash, page, user_error_status

router = APIRouter(include_in_schema=False)

HELD_STATES = {"pending": "Waiting for a decision", "released": "Released by a reviewer",
               "blocked": "Blocked"}
HELD_SORTS = {"age": "Time held", "score": "Score", "created": "Date held"}
SOURCES = {"": "Any source", "generation": "Generation jobs", "api": "API", "cli": "Shell"}


def _settings(request: Request) -> Any:
    return request.app.state.settings


def sla(item: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
    """The SLA clock of a pending item: seconds left before the timeout blocks it, and how
    pressing that is ("ok", "soon": under a quarter left, "late": overdue)."""
    left = item.get("sla_left_s")
    if left is None:
        return None
    level = "late" if left <= 0 else "soon" if left < timeout_s / 4 else "ok"
    return {"left_s": left, "level": level}


def held_list(state: str, source: str, sort: str, order: str, settings: Any,
              cursor: str | None = None, limit: int | None = None) -> Any:
    """A page of the queue's held clips, each with its SLA clock."""
    page = compliance.list_reviews(state=state or None, source=source or None, sort=sort,
                                   order=order or None, cursor=cursor, limit=limit,
                                   settings=settings)
    for item in page.items:
        item["sla"] = sla(item, settings.review_timeout_s)
    return page


def _load(review_id: str, settings: Any) -> dict[str, Any]:
    try:
        return compliance.get_review(review_id, settings=settings)
    except NotFound:
        raise PageError(404, "There is no such held clip.", "Held clip not found")


def _duration(item: dict[str, Any]) -> float | None:
    return (item.get("check") or {}).get("duration_s") or None


@router.get("/review/held/{review_id}", response_class=HTMLResponse)
def held_page(request: Request, actor: Staff, review_id: str) -> Response:
    return _page(request, review_id)


def _page(request: Request, review_id: str, *, status: int = 200, **extra: Any) -> Response:
    settings = _settings(request)
    item = _load(review_id, settings)
    item["sla"] = sla(item, settings.review_timeout_s)
    matches = (item.get("check") or {}).get("matches") or []
    evidence = [{"work": m, "view": evidence_view({"evidence": m}, _duration(item))}
                for m in matches]
    return page(request, "review_held.html", status=status, item=item, evidence=evidence,
                HELD_STATES=HELD_STATES, **extra)


@router.post("/review/held/{review_id}/decide", response_class=HTMLResponse)
def decide(request: Request, actor: Staff, review_id: str, form: CheckedForm) -> Response:
    outcome = str(form.get("outcome") or "")
    reason = str(form.get("reason") or "").strip()
    block_works = outcome == "block" and bool(form.get("block_works"))
    kept = {"outcome": outcome, "reason": reason, "block_works": block_works}
    try:
        if outcome not in ("release", "block"):
            raise ValueError("choose a decision: release the clip or block it")
        compliance.decide_review(review_id, outcome=outcome, reason=reason,
                                 reviewer=_reviewer(request, actor), revision=_revision(form),
                                 block_works=block_works, settings=_settings(request))
    except NotFound:
        raise PageError(404, "There is no such held clip.", "Held clip not found")
    except (ClipgateError, ValueError) as e:
        return _page(request, review_id, status=user_error_status(e), error=sentence(e),
                     kept=kept)
    flash(request, {"release": "The clip is released, signed with your decision.",
                                "block": "The clip is blocked."}[outcome])
    return RedirectResponse(f"/review/held/{review_id}", status_code=303)


def _reviewer(request: Request, actor: Actor) -> compliance.Reviewer:
    account = getattr(request.state, "account", None) or {}
    return compliance.Reviewer(actor.label, actor.role, account.get("name"))


def _revision(form: Any) -> int:
    try:
        return int(str(form.get("revision") or ""))
    except ValueError:
        raise ValueError("this form is missing the held clip's revision; reload the page") \
            from None


@router.get("/review/held/{review_id}/media/{which}")
def media(request: Request, actor: Staff, review_id: str, which: str, t: float | None = None,
          work: str | None = None) -> Response:
    """A JPEG of the held clip's frame or a matched work's frame at t seconds."""
    if which not in ("clip", "work"):
        raise PageError(404, "No such picture.", "Not found")
    try:
        data = compliance.review_media(review_id, which, t, work_id=work,
                                       settings=_settings(request))
    except NotFound:
        raise PageError(404, "No such picture.", "Not found")
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=300"})

