"""Dependencies every route shares: the app's Settings, the caller's API key, and uploads.

Routes declare what they need with the `Annotated` aliases here (`SettingsDep`, `ApiKeyDep`,
`GeneratorKeyDep`) and take uploads through `uploaded(...)`, which always cleans up.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, Security, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from clipgate import apikeys, pages
from clipgate.errors import BadInput, TooLarge, Unavailable
from clipgate.settings import Settings

_CHUNK = 1 << 20
# What survives of an upload's name on disk: media errors name the file, so keep it readable.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
_UPLOAD_DIR_PREFIX = "up-"


def get_app_settings(request: Request) -> Settings:
    """The Settings the app was created with (tests inject their own)."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def public_url(request: Request, name: str, **params: str) -> str:
    """The absolute URL of the route `name` on CLIPGATE_PUBLIC_BASE_URL, never on the request's
    Host header, which the client chooses (a link or Location could point anywhere)."""
    base = get_app_settings(request).public_base_url.rstrip("/")
    return base + str(request.app.url_path_for(name, **params))

_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (`clipgate keys create`)."
)
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = 'Bearer realm="clipgate"' + (f', error="{error}"' if error else "")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge})


async def api_key(
    request: Request,
    settings: SettingsDep,
    header: Annotated[str | None, Security(_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> dict[str, Any]:
    """The active key record of the caller (X-API-Key or Authorization: Bearer). 401 otherwise;
    503 if the database that holds the keys is down (nothing is done without a checked key)."""
    key = (header or "").strip() or (bearer.credentials.strip() if bearer else "")
    if not key:
        raise _unauthorized("missing API key: send it in the X-API-Key header (or as Authorization: Bearer KEY)")
    try:
        await _bootstrap_if_pending(request, settings)
        record = await run_in_threadpool(apikeys.verify_key, key, settings)
    except Unavailable as e:
        raise Unavailable(f"cannot check the API key, so nothing was done: {e}") from e
    if record is None:
        raise _unauthorized("invalid API key", error="invalid_token")
    request.state.api_key = record
    return record


async def _bootstrap_if_pending(request: Request, settings: Settings) -> None:
    # If the database was down at start-up, the bootstrap key is stored on first use instead.
    if getattr(request.app.state, "bootstrap_pending", False):
        await run_in_threadpool(apikeys.ensure_bootstrap_key, settings)
        request.app.state.bootstrap_pending = False


ApiKeyDep = Annotated[dict[str, Any], Depends(api_key)]


async def sent_api_key(
    header: Annotated[str | None, Security(_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str | None:
    """The API key the caller sent, unchecked (None: none): for routes that answer everyone, and
    say more to a key they check themselves."""
    return (header or "").strip() or (bearer.credentials.strip() if bearer else "") or None


SentKeyDep = Annotated[str | None, Depends(sent_api_key)]


def check_sent_key(key: str, settings: Settings) -> dict[str, Any]:
    """The record of a key that was sent: 401 when it is not valid; Unavailable when the
    database that holds the keys is down."""
    record = apikeys.verify_key(key, settings)
    if record is None:
        raise _unauthorized("invalid API key", error="invalid_token")
    return record


def require_roles(*roles: str) -> Callable[..., Any]:
    """A dependency that admits only keys with one of these roles (403 for other roles)."""

    async def check(key: ApiKeyDep) -> dict[str, Any]:
        if key["role"] not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this API key has role {key['role']!r}; this needs one of: {', '.join(roles)}",
            )
        return key

    return check


GeneratorKeyDep = Annotated[dict[str, Any], Depends(require_roles("generator", "admin"))]
# Managing protected works is the operator's: a generator key must not unprotect a work.
AdminKeyDep = Annotated[dict[str, Any], Depends(require_roles("admin"))]
# Complaints: rights holders file claims; reviewers (and admins) work the queue and the flags.
RightsHolderKeyDep = Annotated[dict[str, Any], Depends(require_roles("rights_holder"))]
ReviewerKeyDep = Annotated[dict[str, Any], Depends(require_roles("reviewer", "admin"))]
ClaimsKeyDep = Annotated[dict[str, Any],
                         Depends(require_roles("rights_holder", "reviewer", "admin"))]
CounterNoticeKeyDep = Annotated[dict[str, Any], Depends(require_roles("generator"))]


# Every list takes the same two query parameters (clipgate.pages).
CursorQuery = Annotated[str | None, Query(
    max_length=4000, description="The next_cursor of the page before (opaque); none for the "
                                 "first page.")]
LimitQuery = Annotated[int, Query(ge=1, le=pages.MAX_LIMIT,
                                  description=f"At most this many items (1-{pages.MAX_LIMIT}).")]


def upload_name(upload: UploadFile) -> str:
    """The client's file name without any directory part ("upload" when it sent none)."""
    return Path((upload.filename or "").replace("\\", "/")).name or "upload"


def _disk_name(name: str) -> str:
    p = Path(name)
    suffix = p.suffix.lower() if _SUFFIX.fullmatch(p.suffix.lower()) else ""
    stem = _UNSAFE.sub("_", p.stem if suffix else name).strip("._")[:80] or "upload"
    return stem + suffix


def save_upload(upload: UploadFile, settings: Settings) -> Path:
    """Stream an upload into its own temp folder in settings.uploads_dir, under its own name and
    suffix (media errors then name the client's file, and the suffix picks MP4 vs MOV).

    Raises TooLarge (413) past settings.max_upload_bytes and BadInput (400) for an empty file;
    nothing is left behind then. Otherwise the caller removes it with `discard_upload`, or uses
    `uploaded(...)`, which does.
    """
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=_UPLOAD_DIR_PREFIX, dir=settings.uploads_dir))
    path = folder / _disk_name(upload_name(upload))
    limit = settings.max_upload_bytes
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"{upload_name(upload)}: upload is over the limit of {limit} bytes "
                        "(CLIPGATE_MAX_UPLOAD_BYTES)"
                    )
                out.write(chunk)
        if size == 0:
            raise BadInput(f"{upload_name(upload)}: the file is empty")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def discard_upload(path: Path) -> None:
    """Remove a file from `save_upload` and its temp folder."""
    path = Path(path)
    path.unlink(missing_ok=True)
    if path.parent.name.startswith(_UPLOAD_DIR_PREFIX):
        shutil.rmtree(path.parent, ignore_errors=True)


@contextmanager
def uploaded(upload: UploadFile, settings: Settings) -> Iterator[Path]:
    """`save_upload` for the length of a with-block; the file is gone afterwards."""
    path = save_upload(upload, settings)
    try:
        yield path
    finally:
        discard_upload(path)
