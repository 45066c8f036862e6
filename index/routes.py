"""HTTP routes for protected works: register (image or video), list, show, remove.

Images are fingerprinted in the request (a second or so). Videos go to a worker when a broker is
configured (202 + Location of the pending work), and are registered in the request otherwise.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from pydantic import Field

from clipgate import pages
from clipgate.api import (
    AdminKeyDep,
    CursorQuery,
    LimitQuery,
    SettingsDep,
    public_url,
    upload_name,
    uploaded,
)
from clipgate.api.models import AUTH_ERRORS, Out, PageOut, ShapedRoute, errors
from clipgate.errors import NotFound
from index.registry import (
    get_work,
    remove_work,
    validate_meta,
    works_page,
)
from index import tasks

router = APIRouter(prefix="/v1/works", tags=["works"], route_class=ShapedRoute)


class WorkOut(Out):
    """A protected work (never where its media is stored)."""

    id: str
    owner: str
    title: str
    policy: Literal["block", "review", "track", "allow"]
    kind: str = Field(description="image or video")
    status: str = Field(description="pending, active, removed or failed")
    filename: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    frames: int | None = Field(None, description="Frames fingerprinted")
    error: str | None = None
    created_at: str
    removed_at: str | None = None
    account_id: str | None = None
    aliases: list[str] | None = None
    description: str | None = None
    task_id: str | None = Field(None, description="The worker's task, for a queued video")


class WorkPage(PageOut[WorkOut]):
    pass


_ERRORS = {**AUTH_ERRORS, **errors(404, e404="No such work")}


def public_work(work: dict[str, Any]) -> dict[str, Any]:
    """A work row as JSON: ids and times as strings; the stored media path stays private."""
    out = {}
    for k, v in work.items():
        if k == "media_path":
            continue
        if isinstance(v, uuid.UUID):
            v = str(v)
        elif isinstance(v, dt.datetime):
            v = v.isoformat()
        out[k] = v
    return out


def _checked_id(work_id: str) -> str:
    try:
        return str(uuid.UUID(work_id))
    except ValueError:
        raise NotFound(f"no work with id {work_id!r}: not a valid work id (a UUID)") from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a protected work (JPEG/PNG/WebP image or MP4/MOV/WebM/MKV video)",
    responses={202: {"description": "A video accepted for fingerprinting on a worker",
                     "model": WorkOut}, **AUTH_ERRORS,
               **errors(400, 409, 413, e400="Not media, damaged, empty, or bad metadata",
                        e409="The file is already registered")},
    response_model=WorkOut,
)
def add_work(
    request: Request,
    response: Response,
    settings: SettingsDep,
    _key: AdminKeyDep,
    file: Annotated[UploadFile, File(description="The protected image or video.")],
    owner: Annotated[str, Form(description="Who holds the rights.")],
    title: Annotated[str, Form(description="The work's title.")],
    policy: Annotated[Literal["block", "review", "track", "allow"],
                      Form(description="What a match does: block the clip, hold it for review, "
                                       "release it and report the use (track), or allow it.")],
    aliases: Annotated[list[str] | None, Form(
        description="Other names of the work (repeat the field); prompts naming them are "
                    "screened before generation.")] = None,
    description: Annotated[str | None, Form(
        description="What the work shows, for screening prompts that describe it.")] = None,
) -> dict[str, Any]:
    aliases = [a for a in (aliases or []) if a.strip()]
    # before reading the upload
    validate_meta(owner=owner, title=title, policy=policy, aliases=aliases, description=description)
    with uploaded(file, settings) as path:
        work, task_id = tasks.add_work(path, owner=owner, title=title, policy=policy,
                                       filename=upload_name(file), aliases=aliases,
                                       description=description, settings=settings)
    if task_id is not None:
        response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = public_url(request, "get_work_route", work_id=str(work["id"]))
    out = public_work(work)
    if task_id is not None:
        out["task_id"] = task_id
    return out


@router.get("", summary="Protected works, oldest first, a page at a time",
            response_model=WorkPage, responses={**AUTH_ERRORS, **errors(400)})
def list_works_route(
    settings: SettingsDep,
    _key: AdminKeyDep,
    include_removed: Annotated[bool, Query(description="Also list removed works.")] = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = pages.DEFAULT_LIMIT,
) -> dict[str, Any]:
    page = works_page(include_removed=include_removed, cursor=cursor, limit=limit,
                      settings=settings)
    return page.map(public_work).to_dict()


@router.get("/{work_id}", summary="One protected work (status pending/active/removed/failed)",
            response_model=WorkOut, responses=_ERRORS)
def get_work_route(work_id: str, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    return public_work(get_work(_checked_id(work_id), settings=settings))


@router.delete("/{work_id}", summary="Remove a work: it never matches again",
               response_model=WorkOut, responses=_ERRORS)
def remove_work_route(work_id: str, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    return public_work(remove_work(_checked_id(work_id), settings=settings))
