"""The complaints JSON API under /v1: claims, retraining flags, counter-notices, and API keys
that act for an account.

Each route admits the roles its work needs (403 for other keys) and hands the caller on as an
Actor; the domain functions then apply the finer rule (a rights holder reaching for another's
claim gets 404).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

import compliance
import index
from clipgate import apikeys, pages
from clipgate.api.models import AUTH_ERRORS, ShapedRoute, errors
from clipgate.text import Name, Note
from clipgate.api import (
    AdminKeyDep,
    ClaimsKeyDep,
    CounterNoticeKeyDep,
    CursorQuery,
    LimitQuery,
    ReviewerKeyDep,
    RightsHolderKeyDep,
    SettingsDep,
    discard_upload,
    save_upload,
    upload_name,
)
from complaints import audit, claims, counter, flags, workflow
from complaints.actors import actor_for_key
from complaints.schemas import (
    ClaimOut,
    ClaimPage,
    CounterNoticeOut,
    FlagOut,
    FlagPage,
    KeyOut,
    KeyPage,
    NewKeyOut,
    ServiceLevelsOut,
    TrackedOut,
)

router = APIRouter(prefix="/v1", tags=["complaints"], route_class=ShapedRoute)

_ERRORS = {**AUTH_ERRORS, **errors(400, 404, 409, e404="No such claim",
                                   e409="Stale revision, wrong state, or filed before")}
_READ = {**AUTH_ERRORS, **errors(404, e404="No such claim (or not one this key may see)")}
_LIST = {**AUTH_ERRORS, **errors(400, e400="A bad cursor or filter, in words")}


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@router.post("/claims", status_code=status.HTTP_201_CREATED, responses={
    **_ERRORS, **errors(413)}, response_model=ClaimOut,
    summary="File a claim: this released clip copies my work")
def file_claim_route(
    settings: SettingsDep,
    key: RightsHolderKeyDep,
    good_faith: Annotated[str | None, Form(description="true: the statement of good faith")] = None,
    accurate: Annotated[str | None, Form(description="true: the claim is accurate")] = None,
    authorised: Annotated[str | None, Form(description="true: you may act for the owner")] = None,
    signature: Annotated[str | None, Form(description="Your full name, typed")] = None,
    remedies: Annotated[list[str] | None, Form(
        description="takedown, block, exclude_training (repeat the field)")] = None,
    release_id: Annotated[str | None, Form(description="The clip's release id")] = None,
    clip: Annotated[UploadFile | None, File(description="Or a copy of the clip")] = None,
    work_id: Annotated[str | None, Form(description="One of your works")] = None,
    work: Annotated[UploadFile | None, File(description="Or the work itself")] = None,
    work_title: Annotated[str | None, Form(description="The uploaded work's title")] = None,
    details: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    statement = {"good_faith": _bool(good_faith), "accurate": _bool(accurate),
                 "authorised": _bool(authorised), "signature": signature or ""}
    # Remedies may come as repeated fields or one comma-separated field.
    chosen = [r for v in (remedies or []) for r in v.split(",")]
    paths: list[Path] = []
    try:
        clip_path = _save(clip, settings, paths)
        work_path = _save(work, settings, paths)
        return claims.file_claim(
            actor_for_key(key), release_id=(release_id or "").strip() or None,
            clip_path=clip_path, clip_name=upload_name(clip) if clip_path else None,
            work_id=(work_id or "").strip() or None, work_path=work_path,
            work_title=work_title, statement=statement, remedies=chosen, details=details,
            settings=settings)
    finally:
        for p in paths:
            discard_upload(p)


def _save(upload: UploadFile | None, settings: Any, paths: list[Path]) -> Path | None:
    if upload is None or not upload.filename:
        return None
    path = save_upload(upload, settings)
    paths.append(path)
    return path


@router.get("/claims", summary="Claims: a rights holder's own, or the review queue; a page at "
                               "a time", response_model=ClaimPage, responses=_LIST)
def list_claims_route(
    settings: SettingsDep,
    key: ClaimsKeyDep,
    state: str | None = None,
    owner: Annotated[str | None, Query(description="me, none or an account id")] = None,
    sort: Literal["age", "priority", "score", "created"] = "age",
    order: Literal["asc", "desc"] | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = pages.DEFAULT_LIMIT,
) -> dict[str, Any]:
    return claims.list_claims(actor_for_key(key), state=state, owner=owner, sort=sort,
                              order=order, cursor=cursor, limit=limit,
                              settings=settings).to_dict()


@router.get("/claims/service-levels", summary="Claims per state and their ages, in seconds",
            response_model=ServiceLevelsOut, responses=AUTH_ERRORS)
def service_levels_route(settings: SettingsDep, key: ReviewerKeyDep) -> dict[str, Any]:
    return claims.service_levels(actor_for_key(key), settings=settings)


@router.get("/claims/{claim_id}", responses=_READ, response_model=ClaimOut,
            summary="One claim, with evidence and history")
def get_claim_route(claim_id: str, settings: SettingsDep, key: ClaimsKeyDep) -> dict[str, Any]:
    return claims.get_claim(actor_for_key(key), claim_id, settings=settings)


@router.get("/claims/{claim_id}/frames/{which}", responses={
    200: {"content": {"image/jpeg": {}}}, **AUTH_ERRORS, **errors(400, 404)},
    response_class=Response, summary="A frame of the clip or the work, as JPEG")
def claim_frame_route(claim_id: str, which: Literal["clip", "work"], settings: SettingsDep,
                      key: ClaimsKeyDep, t: float | None = None) -> Response:
    data = claims.claim_media(actor_for_key(key), claim_id, which, t, settings=settings)
    return Response(data, media_type="image/jpeg")


class Revision(BaseModel):
    revision: int = Field(description="The claim's revision your view was drawn at")


class Assign(Revision):
    assignee_id: str | None = Field(None, description="A reviewer's account; default: yourself")


class Decision(Revision):
    outcome: Literal["uphold", "reject", "request_info"]
    reason: Note
    actions: list[str] = Field(default_factory=list, description=", ".join(workflow.ACTIONS))


class Answer(Revision):
    message: Note


@router.post("/claims/{claim_id}/assign", responses=_ERRORS, summary="Assign a claim",
             response_model=ClaimOut)
def assign_route(claim_id: str, body: Assign, settings: SettingsDep,
                 key: ReviewerKeyDep) -> dict[str, Any]:
    return workflow.assign_claim(actor_for_key(key), claim_id, revision=body.revision,
                                 assignee_id=body.assignee_id, settings=settings)


@router.post("/claims/{claim_id}/decision", responses=_ERRORS, response_model=ClaimOut,
             summary="Uphold (with actions), reject, or request information")
def decide_route(claim_id: str, body: Decision, settings: SettingsDep,
                 key: ReviewerKeyDep) -> dict[str, Any]:
    return workflow.decide_claim(actor_for_key(key), claim_id, revision=body.revision,
                                 outcome=body.outcome, reason=body.reason, actions=body.actions,
                                 settings=settings)


@router.post("/claims/{claim_id}/answer", responses=_ERRORS, response_model=ClaimOut,
             summary="Answer a request for more information")
def answer_route(claim_id: str, body: Answer, settings: SettingsDep,
                 key: RightsHolderKeyDep) -> dict[str, Any]:
    return workflow.answer_claim(actor_for_key(key), claim_id, revision=body.revision,
                                 message=body.message, settings=settings)


@router.get("/flags", summary="Retraining flags (open ones unless all=true), oldest first, a "
                              "page at a time", response_model=FlagPage, responses=_LIST)
def flags_route(settings: SettingsDep, key: ReviewerKeyDep,
                all: bool = False,  # noqa: A002 (the query name)
                cursor: CursorQuery = None,
                limit: LimitQuery = pages.DEFAULT_LIMIT) -> dict[str, Any]:
    return flags.flags_page(actor_for_key(key), open_only=not all, cursor=cursor, limit=limit,
                            settings=settings).to_dict()


@router.get("/flags/export", response_class=Response, responses={
    200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}, **AUTH_ERRORS},
    summary="Retraining flags as JSON lines or CSV")
def flags_export_route(settings: SettingsDep, key: ReviewerKeyDep,
                       format: Literal["jsonl", "csv"] = "jsonl",  # noqa: A002
                       all: bool = False) -> Response:  # noqa: A002
    text = flags.export_flags(format, open_only=not all, actor=actor_for_key(key),
                              settings=settings)
    mime = "text/csv" if format == "csv" else "application/x-ndjson"
    return Response(text, media_type=mime, headers={
        "Content-Disposition": f'attachment; filename="retraining-flags.{format}"'})


class Handled(BaseModel):
    note: Note


@router.post("/flags/{flag_id}/handled", responses=_ERRORS, summary="Mark a flag handled",
             response_model=FlagOut)
def flag_handled_route(flag_id: str, body: Handled, settings: SettingsDep,
                       key: ReviewerKeyDep) -> dict[str, Any]:
    return flags.handle_flag(actor_for_key(key), flag_id, body.note, settings=settings)


class CounterNotice(BaseModel):
    release_id: str
    claim_id: str | None = Field(None, description="Default: the claim that took it down")
    statement: Note
    contact: Note


@router.post("/counter-notices", status_code=status.HTTP_201_CREATED, responses=_ERRORS,
             response_model=CounterNoticeOut,
             summary="The generator's user disputes an upheld takedown")
def counter_notice_route(body: CounterNotice, settings: SettingsDep,
                         key: CounterNoticeKeyDep) -> dict[str, Any]:
    return counter.file_counter_notice(actor_for_key(key), release_id=body.release_id,
                                       claim_id=body.claim_id, statement=body.statement,
                                       contact=body.contact, settings=settings)


class Escalation(BaseModel):
    reason: Note


@router.post("/counter-notices/{counter_id}/escalate", responses=_ERRORS,
             response_model=CounterNoticeOut,
             summary="The claimant escalates: the clip stays down")
def escalate_route(counter_id: str, body: Escalation, settings: SettingsDep,
                   key: ClaimsKeyDep) -> dict[str, Any]:
    return counter.escalate_counter_notice(actor_for_key(key), counter_id, body.reason,
                                           settings=settings)


@router.get("/tracked", response_model=TrackedOut, responses=AUTH_ERRORS,
            summary="Your works' tracked and licensed uses: released clips per work, model and "
                    "tenant (rights holders)")
def tracked_route(settings: SettingsDep, key: RightsHolderKeyDep) -> dict[str, Any]:
    actor = actor_for_key(key)
    titles = {str(w["id"]): w["title"] for w in index.list_works(settings=settings)
              if str(w.get("account_id")) == actor.account_id}
    uses = [{**u, "work_title": titles.get(u["work_id"])}
            for u in compliance.tracked_counts(list(titles), settings=settings)]
    return {"uses": uses, "clips": sum(u["clips"] for u in uses)}


class NewKey(BaseModel):
    name: Name
    role: Literal["generator", "admin", "rights_holder", "reviewer"] = "generator"
    account_id: str | None = None


@router.post("/keys", status_code=status.HTTP_201_CREATED, tags=["keys"],
             response_model=NewKeyOut, responses={**AUTH_ERRORS, **errors(400)},
             summary="Create an API key (shown once); rights-holder and reviewer keys name "
                     "their account")
async def create_key_route(body: NewKey, settings: SettingsDep,
                           _key: AdminKeyDep) -> dict[str, Any]:
    record, plaintext = await run_in_threadpool(
        lambda: apikeys.create_key(body.name, body.role, settings, account_id=body.account_id,
                                   on_change=_audit_key(_key, "api_key.create")))
    return {**apikeys.public_key(record), "key": plaintext}


def _audit_key(by: dict[str, Any], action: str) -> apikeys.OnChange:
    """Key changes go to the audit log (the key itself never does), in the change's own
    transaction: no key is made or revoked unaudited."""
    def record_it(conn: Any, record: dict[str, Any]) -> None:
        audit.record(conn, actor_for_key(by), action, subject_type="api_key",
                     subject_id=str(record["id"]),
                     detail={"name": record["name"], "role": record["role"],
                             "account_id": str(record["account_id"])
                             if record.get("account_id") else None})
    return record_it


@router.get("/keys", tags=["keys"], summary="API keys (never the keys themselves), oldest "
                                            "first, a page at a time",
            response_model=KeyPage, responses=_LIST)
def list_keys_route(settings: SettingsDep, _key: AdminKeyDep, cursor: CursorQuery = None,
                    limit: LimitQuery = pages.DEFAULT_LIMIT) -> dict[str, Any]:
    return apikeys.keys_page(settings, cursor=cursor, limit=limit).map(
        apikeys.public_key).to_dict()


@router.delete("/keys/{key_id}", tags=["keys"], summary="Revoke an API key",
               response_model=KeyOut, responses={**AUTH_ERRORS, **errors(404)})
def revoke_key_route(key_id: str, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    record = apikeys.revoke_key(key_id, settings, on_change=_audit_key(_key, "api_key.revoke"))
    return apikeys.public_key(record)

