"""The review queue of the legal team: the queue, a claim's evidence side by side, assigning,
and the decision form. Reviewers and admins only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import complaints
import compliance
import index
from clipgate.errors import BadInput, ClipgateError, NotFound
from complaints.actors import Actor
from complaints.web.auth import AnyAccount, CheckedForm, PageError, Staff
from complaints.web.evidence import evidence_view
from complaints.web.held import HELD_SORTS, HELD_STATES, SOURCES, held_list
from complaints.web.portal import load_claim, sentence
from complaints.web.render import ACTIONS, STATES, flash, page, page_size, pager, user_error_status

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

SORTS = {"age": "Time in its state", "priority": "Priority", "score": "Score",
         "created": "Date filed"}
OWNERS = {"": "Anyone", "me": "Mine", "none": "Nobody"}
OUTCOMES = ("uphold", "reject", "request_info")


def _settings(request: Request) -> Any:
    return request.app.state.settings


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/review", response_class=HTMLResponse)
def queue(request: Request, actor: Staff, state: str = "", owner: str = "", sort: str = "age",
          order: str = "", held_state: str = "pending", held_source: str = "",
          held_sort: str = "age", held_order: str = "", cursor: str = "",
          held_cursor: str = "", limit: str = "") -> Response:
    state = state if state in STATES else ""
    owner = owner if owner in OWNERS else ""
    sort = sort if sort in SORTS else "age"
    order = order if order in ("asc", "desc") else ""  # "": each sort's natural order
    # Held clips beside the claims; by default those still waiting ("": every state).
    held_state = held_state if held_state in HELD_STATES else ""
    held_source = held_source if held_source in SOURCES else ""
    held_sort = held_sort if held_sort in HELD_SORTS else "age"
    held_order = held_order if held_order in ("asc", "desc") else ""
    settings = _settings(request)
    try:
        claims = complaints.list_claims(actor, state=state or None, owner=owner or None,
                                        sort=sort, order=order or None, cursor=cursor or None,
                                        limit=page_size(limit), settings=settings)
        held = held_list(held_state, held_source, held_sort, held_order, settings,
                         cursor=held_cursor or None, limit=page_size(limit))
    except BadInput as e:  # a page link out of date or damaged
        raise PageError(400, sentence(e), "Bad page link")
    levels = complaints.service_levels(actor, settings=settings)
    return page(request, "review_queue.html", claims=claims.items, levels=levels,
                held=held.items, claims_pager=pager(request, claims),
                held_pager=pager(request, held, "held_cursor"),
                filters={"state": state, "owner": owner, "sort": sort, "order": order},
                held_filters={"state": held_state, "source": held_source, "sort": held_sort,
                              "order": held_order},
                SORTS=SORTS, OWNERS=OWNERS, HELD_STATES=HELD_STATES, HELD_SORTS=HELD_SORTS,
                SOURCES=SOURCES, review_timeout_s=settings.review_timeout_s)


@router.get("/review/claims/{claim_id}", response_class=HTMLResponse)
def review_claim(request: Request, actor: Staff, claim_id: str) -> Response:
    return _claim_page(request, actor, claim_id)


def _claim_page(request: Request, actor: Actor, claim_id: str, *, status: int = 200,
                **extra: Any) -> Response:
    settings = _settings(request)
    claim = load_claim(actor, claim_id, settings)
    return page(request, "review_claim.html", status=status, claim=claim,
                evidence=evidence_view(claim, _clip_duration(claim, settings)),
                me=actor.account_id, **extra)


def _clip_duration(claim: dict[str, Any], settings: Any) -> float | None:
    """The released clip's length, so the timeline is to scale (None: draw to the last match)."""
    try:
        release = compliance.get_release(claim["release"]["release_id"], settings=settings)
        info = index.probe(Path(release["path"]), max_frame_pixels=settings.max_frame_pixels)
    except (ClipgateError, index.MediaError, OSError, KeyError, TypeError) as e:
        log.info("no duration for the timeline of claim %s: %s", claim.get("id"), e)
        return None
    return info.duration_s or None


@router.post("/review/claims/{claim_id}/assign", response_class=HTMLResponse)
def assign(request: Request, actor: Staff, claim_id: str, form: CheckedForm) -> Response:
    try:
        complaints.assign_claim(actor, claim_id, revision=_revision(form),
                                assignee_id=actor.account_id, settings=_settings(request))
    except NotFound:
        raise PageError(404, "There is no such claim.", "Claim not found")
    except (ClipgateError, ValueError) as e:
        status = user_error_status(e)
        return _claim_page(request, actor, claim_id, status=status,
                           error=sentence(e))
    flash(request, "The claim is assigned to you.")
    return _see(f"/review/claims/{claim_id}")


@router.post("/review/claims/{claim_id}/decide", response_class=HTMLResponse)
def decide(request: Request, actor: Staff, claim_id: str, form: CheckedForm) -> Response:
    outcome = str(form.get("outcome") or "")
    reason = str(form.get("reason") or "").strip()
    actions = [a for a in form.getlist("actions") if a in ACTIONS]
    kept = {"outcome": outcome, "reason": reason, "actions": actions}
    try:
        if outcome not in OUTCOMES:
            raise ValueError("choose a decision: uphold, reject or ask for more information")
        complaints.decide_claim(actor, claim_id, revision=_revision(form), outcome=outcome,
                                reason=reason, actions=actions if outcome == "uphold" else [],
                                settings=_settings(request))
    except NotFound:
        raise PageError(404, "There is no such claim.", "Claim not found")
    except (ClipgateError, ValueError) as e:
        status = user_error_status(e)
        return _claim_page(request, actor, claim_id, status=status,
                           error=sentence(e), kept=kept)
    flash(request, {"uphold": "The claim is upheld.", "reject": "The claim is rejected.",
                    "request_info": "The claimant was asked for more information."}[outcome])
    return _see(f"/review/claims/{claim_id}")


def _revision(form: Any) -> int:
    try:
        return int(str(form.get("revision") or ""))
    except ValueError:
        raise ValueError("this form is missing the claim's revision; reload the page") from None


@router.get("/claims/{claim_id}/media/{which}")
def media(request: Request, actor: AnyAccount, claim_id: str, which: str,
          t: float | None = None) -> Response:
    """A JPEG of the clip's or the work's frame at t seconds, for the evidence (access checked by
    claim_media: a rights holder sees only their own claims' frames)."""
    if which not in ("clip", "work"):
        raise PageError(404, "No such picture.", "Not found")
    try:
        data = complaints.claim_media(actor, claim_id, which, t, settings=_settings(request))
    except NotFound:
        raise PageError(404, "No such picture.", "Not found")
    if not isinstance(data, (bytes, bytearray)):
        data = data.read_bytes()  # the contract allows a Path too
    return Response(bytes(data), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=300"})
