"""HTTP routes for the gate: check a clip, release it (gate + sign), fetch and verify releases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile, status
from fastapi.responses import FileResponse

from clipgate.api import GeneratorKeyDep, SettingsDep, upload_name, uploaded
from clipgate.errors import NotFound, Unavailable
from compliance.gate import check_clip
from compliance.release import (
    generator_identity,
    get_release,
    public_release,
    release_clip,
    verify_clip,
)

router = APIRouter(prefix="/v1", tags=["compliance"])
# Every route here is for generator and admin keys only (GeneratorKeyDep): a rights holder's or
# reviewer's key sees a release only through the claims it may read, and reviewers see the clip
# on the server-rendered review pages, which do not go through this API.

_BAD_MEDIA = {400: {"description": "Not media, damaged, truncated, no frames, or empty"},
              413: {"description": "Over the upload, frame-size or duration limit"},
              503: {"description": "A part the gate needs is down; nothing was released"}}


@router.post("/checks", summary="Gate a clip without releasing it", responses=_BAD_MEDIA)
def check_route(
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    file: Annotated[UploadFile, File(description="The generated clip (or an image).")],
) -> dict[str, Any]:
    with uploaded(file, settings) as path:
        result = check_clip(path, source="api", filename=upload_name(file), settings=settings)
    return result.to_dict()


@router.post(
    "/releases",
    status_code=status.HTTP_201_CREATED,
    summary="Gate a clip and, on a release verdict, sign it with C2PA content credentials",
    responses={200: {"description": "Not released: the verdict was block or review"}, **_BAD_MEDIA},
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
    check = outcome.check.to_dict()
    if not outcome.released:
        response.status_code = status.HTTP_200_OK
        return {"released": False, "verdict": check["verdict"], "reasons": check["reasons"],
                "check": check}
    release = public_release(outcome.release)
    response.headers["Location"] = _url(request, "release_route_get", release["release_id"])
    return {"released": True, "release": release,
            "download_url": _url(request, "release_file_route", release["release_id"]),
            "check": check}


def _url(request: Request, name: str, release_id: str) -> str:
    return str(request.url_for(name, release_id=release_id))


@router.get("/releases/{release_id}", summary="A release record (active or revoked)")
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
               404: {"description": "No such release"},
               410: {"description": "The release was revoked"}},
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
             responses=_BAD_MEDIA)
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
