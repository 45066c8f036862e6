"""HTTP routes for the gate: check a clip, release it (gate + sign), fetch and verify releases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from clipgate import pages
from clipgate.api.models import AUTH_ERRORS, ShapedRoute, errors
from clipgate.api import (
    CursorQuery,
    GeneratorKeyDep,
    LimitQuery,
    ReviewerKeyDep,
    SettingsDep,
    public_url,
    require_roles,
    upload_name,
    uploaded,
)
from clipgate.errors import Conflict, NotFound, Unavailable
from clipgate.text import Note
from compliance.disclosure import for_role
from compliance.gate import check_clip
from compliance.held import get_check, get_review, list_reviews
from compliance.provenance import verify_clip
from compliance.release import (
    generator_identity,
    get_release,
    public_release,
    release_clip,
    releases_page,
)
from compliance.review import Reviewer, decide_review
from compliance.schemas import (
    CheckOut,
    CheckRecordOut,
    ReleaseOut,
    ReleaseOutcomeOut,
    ReleasePage,
    ReviewConflictOut,
    ReviewDetailOut,
    ReviewOut,
    ReviewPage,
    VerifyOut,
)

router = APIRouter(prefix="/v1", tags=["compliance"], route_class=ShapedRoute)
# The gate's routes are for generator and admin keys (GeneratorKeyDep): a rights holder's or
# reviewer's key sees a release only through the claims it may read. Held clips are the
# reviewers' (and admins'); a check may be read back by whoever may make or review one.
CheckReaderKeyDep = Annotated[dict[str, Any],
                              Depends(require_roles("generator", "admin", "reviewer"))]

_BAD_MEDIA = {**AUTH_ERRORS, **errors(
    400, 413, 503, e400="Not media, damaged, truncated, no frames, or empty",
    e503="A part the gate needs is down; nothing was released")}


@router.post("/checks", summary="Gate a clip without releasing it", responses=_BAD_MEDIA,
             response_model=CheckOut)
def check_route(
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    file: Annotated[UploadFile, File(description="The generated clip (or an image).")],
) -> dict[str, Any]:
    with uploaded(file, settings) as path:
        result = check_clip(path, source="api", filename=upload_name(file), settings=settings)
    return for_role(result.to_dict(), _key["role"], settings)


@router.post(
    "/releases",
    status_code=status.HTTP_201_CREATED,
    summary="Gate a clip and, on a release verdict, sign it with C2PA content credentials",
    responses={200: {"description": "Not released: the verdict was block or review",
                      "model": ReleaseOutcomeOut}, **_BAD_MEDIA},
    response_model=ReleaseOutcomeOut,
)
def release_route(
    request: Request,
    response: Response,
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    file: Annotated[UploadFile, File(description="The generated clip: H.264 in .mp4 or .mov.")],
    model: Annotated[str, Form(min_length=1, description="The generator model's name.")],
    model_version: Annotated[str | None, Form(description="The generator model's version.")] = None,
    prompt_sha256: Annotated[str | None, Form(description="sha256 of the prompt, hex.")] = None,
    prompt: Annotated[str | None, Form(description="The prompt; only its sha256 is kept.")] = None,
) -> dict[str, Any]:
    ident = generator_identity(model=model, version=model_version,
                               prompt_sha256=prompt_sha256 or None, prompt=prompt)
    with uploaded(file, settings) as path:
        try:
            outcome = release_clip(path, generator=ident, source="api",
                                   filename=upload_name(file), settings=settings)
        except Unavailable as e:
            msg = str(e) if "nothing was released" in str(e) else f"nothing was released: {e}"
            raise Unavailable(msg) from e
    check = for_role(outcome.check.to_dict(), _key["role"], settings)
    if not outcome.released:
        response.status_code = status.HTTP_200_OK
        # A review verdict holds the clip for a person: review names it (GET /v1/reviews/{id}).
        return {"released": False, "verdict": check["verdict"], "reasons": check["reasons"],
                "review": outcome.review, "check": check}
    release = public_release(outcome.release)
    response.headers["Location"] = _url(request, "release_route_get", release["release_id"])
    return {"released": True, "release": release,
            "download_url": _url(request, "release_file_route", release["release_id"]),
            "check": check}


def _url(request: Request, name: str, release_id: str) -> str:
    return public_url(request, name, release_id=release_id)


@router.get("/releases", summary="Releases, newest first, a page at a time",
            response_model=ReleasePage, responses={**AUTH_ERRORS, **errors(400)})
def releases_route(
    request: Request,
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    status_: Annotated[Literal["active", "revoked"] | None, Query(alias="status")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = pages.DEFAULT_LIMIT,
) -> dict[str, Any]:
    page = releases_page(status=status_, cursor=cursor, limit=limit, settings=settings)
    for release in page.items:
        release["download_url"] = _url(request, "release_file_route", release["release_id"])
    return page.to_dict()


@router.get("/releases/{release_id}", summary="A release record (active or revoked)",
            response_model=ReleaseOut, responses={**AUTH_ERRORS, **errors(404)})
def release_route_get(
    request: Request, release_id: str, settings: SettingsDep, _key: GeneratorKeyDep
) -> dict[str, Any]:
    release = public_release(get_release(release_id, settings=settings))
    release["download_url"] = _url(request, "release_file_route", release["release_id"])
    return release


@router.get(
    "/releases/{release_id}/file",
    summary="Download the signed clip",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}, "video/quicktime": {}}},
               **AUTH_ERRORS, **errors(404, 410)},
)
def release_file_route(release_id: str, settings: SettingsDep, _key: GeneratorKeyDep) -> FileResponse:
    release = get_release(release_id, settings=settings)
    if release["status"] == "revoked":
        reason = f" ({release['revoked_reason']})" if release["revoked_reason"] else ""
        raise HTTPException(status.HTTP_410_GONE, f"release {release_id} was revoked{reason}")
    path = Path(release["path"])
    if not path.is_file():
        raise NotFound(f"the signed file of release {release_id} is missing from the release store")
    mime = "video/quicktime" if path.suffix.lower() == ".mov" else "video/mp4"
    return FileResponse(path, media_type=mime, filename=f"{release['id']}{path.suffix.lower()}")


@router.post("/verify", summary="Read and validate a file's C2PA manifest and find its release",
             responses=_BAD_MEDIA, response_model=VerifyOut)
def verify_route(
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    file: Annotated[UploadFile, File(description="Any file C2PA reads (MP4, MOV, JPEG, PNG, ...).")],
) -> dict[str, Any]:
    # The temp file keeps the upload's suffix, so the MIME type c2pa needs comes from it.
    with uploaded(file, settings) as path:
        report = verify_clip(path, settings=settings)
    report["file"] = upload_name(file)
    return report


@router.get("/checks/{check_id}", summary="A recorded check: verdict, reasons, evidence",
            responses={**AUTH_ERRORS, **errors(404, e404="No such check")},
            response_model=CheckRecordOut)
def check_get_route(check_id: str, settings: SettingsDep,
                    _key: CheckReaderKeyDep) -> dict[str, Any]:
    return for_role(get_check(check_id, settings=settings), _key["role"], settings)


_REVIEW_ERRORS = {**AUTH_ERRORS, **errors(
    400, 404, 503, e404="No such held clip",
    e503="Signing or the database is down; nothing was released"),
    409: {"model": ReviewConflictOut,
          "description": "Stale revision, or already decided (with its state)"}}


@router.get("/reviews", summary="Clips held for review (pending first by age), a page at a time",
            response_model=ReviewPage, responses={**AUTH_ERRORS, **errors(400)})
def reviews_route(
    settings: SettingsDep,
    _key: ReviewerKeyDep,
    state: Annotated[Literal["pending", "released", "blocked"] | None, Query()] = None,
    source: Annotated[Literal["api", "cli", "generation"] | None, Query()] = None,
    sort: Annotated[Literal["age", "score", "created"], Query()] = "age",
    order: Annotated[Literal["asc", "desc"] | None, Query(
        description="Default: most pressing first")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = pages.DEFAULT_LIMIT,
) -> dict[str, Any]:
    return list_reviews(state=state, source=source, sort=sort, order=order, cursor=cursor,
                        limit=limit, settings=settings).to_dict()


@router.get("/reviews/{review_id}", responses={**AUTH_ERRORS, **errors(404)},
            response_model=ReviewDetailOut,
            summary="A held clip with the check and evidence that held it")
def review_route(review_id: str, settings: SettingsDep, _key: ReviewerKeyDep) -> dict[str, Any]:
    return get_review(review_id, settings=settings)


class ReviewDecision(BaseModel):
    revision: int = Field(description="The held clip's revision your view was drawn at")
    decision: str = Field(description="release (sign it) or block")
    reason: Note = Field(description="Why, in words (kept in the audit log)")
    block_works: bool = Field(False, description="With block: also set the policy of the works "
                                                 "that held it to block")


@router.post("/reviews/{review_id}/decision", responses=_REVIEW_ERRORS, response_model=ReviewOut,
             summary="Release (sign) or block a held clip")
def review_decision_route(review_id: str, body: ReviewDecision, settings: SettingsDep,
                          key: ReviewerKeyDep) -> Any:
    reviewer = Reviewer(f"api_key:{key['id']}", key["role"])
    try:
        return decide_review(review_id, outcome=body.decision, reason=body.reason,
                             reviewer=reviewer, revision=body.revision,
                             block_works=body.block_works, settings=settings)
    except Conflict as e:
        # The caller's view is out of date: send what the item is now with the refusal.
        return JSONResponse({"detail": str(e), "review": get_review(review_id, settings=settings)},
                            status_code=status.HTTP_409_CONFLICT)
