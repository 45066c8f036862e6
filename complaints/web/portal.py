"""The claim portal of a rights holder: their works, filing a claim, following their claims."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

import complaints
import compliance
import index
from clipgate.api import discard_upload, save_upload, upload_name
from clipgate.errors import BadInput, ClipgateError, Conflict, NotFound
from complaints import accounts
from complaints.actors import Actor
from complaints.web.auth import CheckedForm, PageError, RightsHolder
from complaints.web.render import REMEDIES, flash, page, page_size, pager, user_error_status

router = APIRouter(prefix="/portal", include_in_schema=False)

STATEMENT = ("good_faith", "accurate", "authorised")
# What a match with a work does, per policy, in the rights holder's words.
POLICY_WORDS = {"block": "matches are blocked", "review": "matches are held for review",
                "track": "matches are released and reported to you here",
                "allow": "matches are released"}
LICENCE_STATES = {"in_force": "In force", "expired": "Expired", "revoked": "Revoked",
                  "not_yet_valid": "Not yet valid"}


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _settings(request: Request) -> Any:
    return request.app.state.settings


def sentence(e: Exception) -> str:
    """An error as a sentence: capitalised (unless it starts with a file name) with a full stop."""
    text = str(e).strip() or "Something went wrong."
    first = text.split(" ", 1)[0]
    if "." not in first.rstrip(":"):
        text = text[:1].upper() + text[1:]
    return text.rstrip(".") + "."


def my_works(actor: Actor, settings: Any) -> list[dict[str, Any]]:
    return [w for w in index.list_works(settings=settings)
            if str(w.get("account_id")) == actor.account_id]


def _file(form: FormData, name: str) -> UploadFile | None:
    """An uploaded file, or None when the field was left empty (browsers send an empty part)."""
    value = form.get(name)
    if isinstance(value, UploadFile) and (value.filename or value.size):
        return value
    return None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# --- my claims ------------------------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
def my_claims(request: Request, actor: RightsHolder, cursor: str = "",
              limit: str = "") -> Response:
    try:
        claims = complaints.list_claims(actor, sort="created", order="desc",
                                        cursor=cursor or None, limit=page_size(limit),
                                        settings=_settings(request))
    except BadInput as e:  # a page link out of date or damaged
        raise PageError(400, sentence(e), "Bad page link")
    return page(request, "portal_claims.html", claims=claims.items,
                pager=pager(request, claims))


# --- my works -------------------------------------------------------------------------------------

@router.get("/works", response_class=HTMLResponse)
def works(request: Request, actor: RightsHolder) -> Response:
    return page(request, "portal_works.html", works=my_works(actor, _settings(request)), values={},
                POLICY_WORDS=POLICY_WORDS)


@router.post("/works", response_class=HTMLResponse)
def register_work(request: Request, actor: RightsHolder, form: CheckedForm) -> Response:
    settings = _settings(request)
    values = {k: _text(form, k) for k in ("title", "aliases", "description")}
    upload = _file(form, "file")
    try:
        if upload is None:
            raise BadInput("please choose the image or video of your work")
        work = _register(actor, upload, values, settings)
    except ClipgateError as e:
        if e.status >= 500:
            raise
        return page(request, "portal_works.html", status=e.status, values=values,
                    works=my_works(actor, settings), error=sentence(e), POLICY_WORDS=POLICY_WORDS)
    flash(request, f"Your work \u201c{work['title']}\u201d is registered.")
    return _see("/portal/works")


def _register(actor: Actor, upload: UploadFile, values: dict[str, str], settings: Any
              ) -> dict[str, Any]:
    account = accounts.get_account(actor.account_id, settings=settings) or {}
    owner = account.get("organisation") or account.get("name") or "rights holder"
    aliases = [a.strip() for a in values["aliases"].split(",") if a.strip()]
    index.validate_meta(owner=owner, title=values["title"], policy="review", aliases=aliases,
                        description=values["description"] or None)
    path = save_upload(upload, settings)
    try:
        # "review": a match on a rights holder's own upload holds the clip for a person; an
        # upheld claim with "block" moves the work to the block policy.
        return index.register_work(path, owner=owner, title=values["title"], policy="review",
                                   filename=upload_name(upload), account_id=actor.account_id,
                                   aliases=aliases, description=values["description"] or None,
                                   settings=settings)
    except Conflict as e:
        # The index's message names the registered work: say so only of the person's own.
        mine = {str(w["id"]) for w in my_works(actor, settings)}
        if e.existing_id in mine:
            raise
        raise Conflict("this file is already registered. If it is your work, file a claim with "
                       "it and a reviewer will look into it.") from None
    finally:
        discard_upload(path)


# --- licences and tracked uses -------------------------------------------------------------------

@router.get("/licences", response_class=HTMLResponse)
def licences(request: Request, actor: RightsHolder) -> Response:
    """The licences that cover the rights holder's works (each work's, and their catalogue's by
    owner name), and the released clips that used them under `track` or a licence, counted per
    work, model and tenant."""
    settings = _settings(request)
    works = my_works(actor, settings)
    titles = {str(w["id"]): w["title"] for w in works}
    owners = sorted({w["owner"] for w in works})
    held = (compliance.list_licences(work_ids=list(titles), owners=owners, settings=settings)
            if works else [])
    uses = compliance.tracked_counts(list(titles), settings=settings)
    return page(request, "portal_licences.html", licences=held, uses=uses, titles=titles,
                LICENCE_STATES=LICENCE_STATES)


# --- filing a claim -------------------------------------------------------------------------------

@router.get("/claims/new", response_class=HTMLResponse)
def new_claim(request: Request, actor: RightsHolder, release_id: str | None = None) -> Response:
    return page(request, "portal_claim_new.html", works=my_works(actor, _settings(request)),
                values={"release_id": release_id or "", "remedies": []})


@router.post("/claims", response_class=HTMLResponse)
def file_claim(request: Request, actor: RightsHolder, form: CheckedForm) -> Response:
    settings = _settings(request)
    values: dict[str, Any] = {k: _text(form, k) for k in
                              ("release_id", "work_id", "work_title", "signature", "details")}
    values["remedies"] = [r for r in form.getlist("remedies") if r in REMEDIES]
    values.update({k: form.get(k) == "yes" for k in STATEMENT})
    try:
        claim = _file_claim(actor, form, values, settings)
    except ClipgateError as e:
        if e.status >= 500:
            raise
        existing = getattr(e, "existing_id", None)
        return page(request, "portal_claim_new.html", status=e.status, values=values,
                    works=my_works(actor, settings), error=sentence(e), existing_id=existing)
    flash(request, f"Claim {claim['number']} was filed. We will tell you of every decision.")
    return _see(f"/portal/claims/{claim['id']}")


def _file_claim(actor: Actor, form: FormData, values: dict[str, Any], settings: Any
                ) -> dict[str, Any]:
    """Check the form in plain words, then hand it to the workflow (which checks it again)."""
    clip, work = _file(form, "clip"), _file(form, "work_file")
    if not all(values[k] for k in STATEMENT) or not values["signature"]:
        raise BadInput("a claim needs the full statement: tick the three boxes and type your "
                       "full name as your signature")
    if bool(values["release_id"]) == bool(clip):
        raise BadInput("name the clip: give its release id, or upload a copy of it (not both)")
    if bool(values["work_id"]) == bool(work):
        raise BadInput("name your work: choose one of your registered works, or upload it "
                       "(not both)")
    if work is not None and not values["work_title"]:
        raise BadInput("please give the title of the work you upload")
    if not values["remedies"]:
        raise BadInput("choose at least one thing you ask us to do")
    with ExitStack() as stack:
        clip_path = _saved(stack, clip, settings)
        work_path = _saved(stack, work, settings)
        return complaints.file_claim(
            actor,
            release_id=values["release_id"] or None,
            clip_path=clip_path, clip_name=upload_name(clip) if clip else None,
            work_id=values["work_id"] or None,
            work_path=work_path, work_title=values["work_title"] or None,
            statement={**{k: True for k in STATEMENT}, "signature": values["signature"]},
            remedies=values["remedies"], details=values["details"] or None,
            settings=settings,
        )


def _saved(stack: ExitStack, upload: UploadFile | None, settings: Any) -> Path | None:
    if upload is None:
        return None
    path = save_upload(upload, settings)
    stack.callback(discard_upload, path)
    return path


# --- one claim ------------------------------------------------------------------------------------

def load_claim(actor: Actor, claim_id: str, settings: Any) -> dict[str, Any]:
    try:
        return complaints.get_claim(actor, claim_id, settings=settings)
    except NotFound:
        raise PageError(404, "There is no such claim, or it is not yours.", "Claim not found")


@router.get("/claims/{claim_id}", response_class=HTMLResponse)
def claim_page(request: Request, actor: RightsHolder, claim_id: str) -> Response:
    claim = load_claim(actor, claim_id, _settings(request))
    return page(request, "portal_claim.html", claim=claim)


@router.post("/claims/{claim_id}/answer", response_class=HTMLResponse)
def answer(request: Request, actor: RightsHolder, claim_id: str, form: CheckedForm) -> Response:
    settings = _settings(request)
    message = _text(form, "message")
    try:
        revision = int(_text(form, "revision"))
        complaints.answer_claim(actor, claim_id, revision=revision, message=message,
                                settings=settings)
    except NotFound:
        raise PageError(404, "There is no such claim, or it is not yours.", "Claim not found")
    except (ClipgateError, ValueError) as e:
        status = user_error_status(e)
        claim = load_claim(actor, claim_id, settings)
        return page(request, "portal_claim.html", status=status, claim=claim,
                    error=sentence(e), answer=message)
    flash(request, "Thank you: your answer was sent to the reviewer.")
    return _see(f"/portal/claims/{claim_id}")


@router.post("/claims/{claim_id}/counter-notices/{counter_id}/escalate",
             response_class=HTMLResponse)
def escalate(request: Request, actor: RightsHolder, claim_id: str, counter_id: str,
             form: CheckedForm) -> Response:
    """The claimant keeps the clip down by escalating a counter-notice before its wait ends."""
    settings = _settings(request)
    reason = _text(form, "reason")
    claim = load_claim(actor, claim_id, settings)
    if counter_id not in {c["id"] for c in claim.get("counter_notices", [])}:
        raise PageError(404, "There is no such counter-notice on this claim.", "Not found")
    try:
        complaints.escalate_counter_notice(actor, counter_id, reason, settings=settings)
    except ClipgateError as e:
        if e.status >= 500:
            raise
        return page(request, "portal_claim.html", status=e.status, error=sentence(e),
                    claim=load_claim(actor, claim_id, settings), escalation=reason)
    flash(request, "You escalated the counter-notice: the clip stays down.")
    return _see(f"/portal/claims/{claim_id}")

