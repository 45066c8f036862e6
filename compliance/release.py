"""Release: gate a clip, and only on a `release` verdict sign it into the release store and record it.
(Verify, which reads any file's manifest and finds the release it belongs to, is provenance.py.)

Fail closed: a clip reaches the release store only signed, only after a `release` verdict, and
only with its release row committed. Any failure on the way leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

import index
from clipgate import db, metrics, pages, prompts
from clipgate.errors import BadInput, NotFound, TooLarge, Unavailable
from clipgate.files import copy_atomic, sha256_file
from clipgate.settings import Settings, get_settings
from compliance import held, store, watermark
from compliance.gate import CheckResult, check_clip
from compliance.licences import Licensee
from compliance.signing import (
    ClipSigner,
    SigningError,
    soft_binding,
    video_mime,
)

log = logging.getLogger(__name__)

_signers: dict[str, ClipSigner] = {}
_signers_lock = threading.Lock()


@dataclass
class ReleaseOutcome:
    check: CheckResult
    release: dict[str, Any] | None  # the release record; None when the verdict stopped it
    review: dict[str, Any] | None = None  # the held clip, when the verdict was review
    mark: watermark.Marked | None = None  # the watermark in the checked (and released) frames

    @property
    def released(self) -> bool:
        return self.release is not None


def signer(settings: Settings | None = None) -> ClipSigner:
    """The process's signer; the first call creates the development CA if none is configured."""
    settings = settings or get_settings()
    key = f"{settings.keys_dir}|{settings.tsa_url}|{settings.tsa_trust_anchors}"
    with _signers_lock:
        if key not in _signers:
            try:
                _signers[key] = ClipSigner.from_settings(settings)
            except ValueError as e:
                raise Unavailable(f"signer is not usable: {e}") from e
        return _signers[key]


def generator_identity(
    *,
    model: str | None,
    version: str | None,
    prompt_sha256: str | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """What the manifest says made the clip. The prompt itself is never stored, only its hash."""
    if prompt is not None and prompt_sha256:
        raise BadInput("send either prompt or prompt_sha256, not both")
    if prompt is not None:
        prompt_sha256 = prompts.prompt_sha256(prompt)
    if prompt_sha256 is not None:
        p = prompt_sha256.lower()
        if len(p) != 64 or any(c not in "0123456789abcdef" for c in p):
            raise BadInput("prompt_sha256 must be 64 hexadecimal characters")
        prompt_sha256 = p
    return {"model": model or "unknown", "version": version or "unknown",
            "prompt_sha256": prompt_sha256}


def release_clip(
    path: Path,
    *,
    generator: dict[str, Any],
    source: str = "api",
    filename: str | None = None,
    settings: Settings | None = None,
    licensee: Licensee | None = None,
) -> ReleaseOutcome:
    """Gate the clip; sign and store it only if the verdict is release. licensee: the tenant a
    generation job made it for, whose licences may release matched works (model: generator's)."""
    settings = settings or get_settings()
    path = Path(path)
    name = filename or path.name
    try:
        mime = video_mime(Path(name))
    except ValueError as e:
        raise BadInput(str(e)) from e
    clip_signer = signer(settings)  # fail before checking if the signer is broken
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    info = index.probe(path, max_frame_pixels=settings.max_frame_pixels)  # BadInput: not media
    if info.duration_s > settings.max_duration_s:  # before the slow watermarking
        raise TooLarge(f"{name}: {info.duration_s:.0f} s is longer than the limit of "
                       f"{settings.max_duration_s:.0f} s (CLIPGATE_MAX_DURATION_S)")
    # Watermark, check and sign one private copy: the gate checks the very pixels that are
    # released, and the bytes signed are the bytes checked even if the caller's file changes.
    staging = settings.release_dir / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    staged_input = copy_atomic(path, staging / f"in-{uuid.uuid4()}{path.suffix.lower()}")
    marked = staging / f"wm-{uuid.uuid4()}{path.suffix.lower()}"
    try:
        t0 = time.perf_counter()
        mark = watermark.watermark_video(staged_input, marked, _unused_key(settings))
        marked_s = time.perf_counter() - t0
        for _ in range(_MAX_TRIES):
            outcome = _release_once(marked, mime, name, generator, source, clip_signer,
                                    settings, licensee, mark)
            if outcome is not None:
                outcome.check.timings["watermark"] = round(marked_s, 4)
                outcome.mark = mark
                return outcome
        raise Unavailable("the index kept changing while this clip was being released; "
                          "nothing was released, try again")
    finally:
        staged_input.unlink(missing_ok=True)
        marked.unlink(missing_ok=True)


_MAX_TRIES = 3


def _unused_key(settings: Settings) -> int:
    """A fresh watermark key that no release or pending held clip has: keys are unique among
    releases, and 40 random bits meet again about once in a million draws at a million
    releases, which would otherwise fail the release's insert (or a held clip's, every time)."""
    with db.connection(settings) as conn:
        while True:
            key = watermark.new_key()
            if not store.watermark_key_used(conn, key=key):
                return key


def _release_once(
    path: Path, mime: str, name: str, identity: dict[str, Any], source: str,
    clip_signer: ClipSigner, settings: Settings, licensee: Licensee | None,
    mark: watermark.Marked,
) -> ReleaseOutcome | None:
    """One check + sign + record. None when the index changed between the check and the record,
    or a licence that released it was revoked or ran out meanwhile: the verdict may be stale, so
    the caller checks again."""
    result = check_clip(path, source=source, filename=name, settings=settings,
                        licensee=licensee, model=identity.get("model"))
    if result.verdict == "review":
        # A person decides: the clip waits, privately, in the review queue.
        item = held.hold_clip(path, result, generator=identity, source=source,
                              settings=settings, watermark_key=mark.key)
        return ReleaseOutcome(result, None, held.public_review(item, settings))
    if result.verdict != "release":
        return ReleaseOutcome(result, None)

    release_id = str(uuid.uuid4())
    suffix = ".mov" if mime == "video/quicktime" else ".mp4"
    dst = settings.release_dir / f"{release_id}{suffix}"
    # Signed into staging and moved into the store only after its row is committed: a crash
    # leaves at worst a row without a file (served as missing), never a signed file without a row.
    staged = settings.release_dir / ".staging" / f"{release_id}{suffix}"
    compliance = {
        "check_id": result.check_id,
        "release_id": release_id,
        "index_version": result.index_version,
        "verdict": result.verdict,
        "checked_at": result.created_at,
        "signals": {name: info["version"] for name, info in result.signals.items()},
        # The rules that released it (a licence, a policy, or no match), and the licences by id:
        # the file itself says on what authority it was released.
        "decided_by": [{k: r.get(k) for k in ("work_id", "rule", "policy", "licence_id")}
                       for r in result.decided_by],
        "licences": result.licence_ids,
    }
    t0 = time.perf_counter()
    try:
        signed = clip_signer.sign(
            path, staged, generator=identity, compliance=compliance, title=name,
            soft_bindings=[soft_binding(watermark.ALGORITHM, watermark.value(mark.key))])
    except (SigningError, ValueError) as e:
        staged.unlink(missing_ok=True)
        raise Unavailable(f"signing failed, nothing was released: {e}") from e
    try:
        with db.connection(settings) as conn:
            if store.index_version(conn, share_lock=True) != result.index_version:
                staged.unlink(missing_ok=True)
                log.info("index changed during release of check %s; checking again",
                         result.check_id)
                return None
            # FOR SHARE: a licence cannot be revoked under a release that relies on it.
            if result.licence_ids and (store.licences_in_force(conn, licence_ids=result.licence_ids)
                                       != set(result.licence_ids)):
                staged.unlink(missing_ok=True)
                log.info("a licence behind check %s ended meanwhile; checking again",
                         result.check_id)
                return None
            release = store.insert_release(conn, release={
                "id": uuid.UUID(release_id),
                "check_id": uuid.UUID(result.check_id),
                "file_sha256": sha256_file(staged),
                "size_bytes": staged.stat().st_size,
                "path": str(dst),
                "generator": identity,
                "manifest_label": signed.get("manifest_label"),
                "manifest": signed.get("manifest"),
                "watermark_key": mark.key,
            })
            fp = result.fingerprint
            if fp is not None:  # the released-clips index, committed with the release row
                store.insert_release_frames(conn, release_id=release_id, fp=fp)
            store.insert_tracked(conn, rows=_tracked_rows(result, release_id, identity, licensee))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, dst)
    result.timings["sign"] = round(time.perf_counter() - t0, 4)
    log.info("released %s (check %s)", release_id, result.check_id)
    return ReleaseOutcome(result, release)


def _tracked_rows(result: CheckResult, release_id: str, identity: dict[str, Any],
                  licensee: Licensee | None) -> list[dict[str, Any]]:
    """The uses a rights holder is told of: matches released by `track` or by a licence."""
    by_work = {str(m.work_id): m for m in result.matches}
    rows = []
    for r in result.rules:
        if r["outcome"] != "release" or not (r["rule"] == "licence" or r["policy"] == "track"):
            continue
        m = by_work[r["work_id"]]
        rows.append({
            "release_id": uuid.UUID(release_id), "check_id": uuid.UUID(result.check_id),
            "work_id": uuid.UUID(r["work_id"]), "owner": r["owner"],
            "rule": "licence" if r["rule"] == "licence" else "track",
            "licence_id": uuid.UUID(r["licence_id"]) if r["licence_id"] else None,
            "model": identity.get("model") or "unknown",
            "tenant_id": licensee.tenant_id if licensee else None,
            "tenant_name": licensee.tenant_name if licensee else None,
            "frames_matched": int(m.frames_matched), "score": float(m.score)})
    return rows


def sweep_staging(settings: Settings | None = None, *, older_than_s: float = 3600.0) -> int:
    """Delete what a crash left in the release store's staging folder: inputs and signed files
    whose release row never committed (a committed one is moved out at once). Returns the count.
    Only files older than older_than_s go, so releases in flight elsewhere are left alone."""
    settings = settings or get_settings()
    staging = settings.release_dir / ".staging"
    if not staging.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for f in staging.iterdir():
        if f.is_file() and f.stat().st_mtime < cutoff:
            f.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.warning("removed %d unreleased file(s) left in %s by an earlier crash", removed, staging)
    return removed


def get_release(release_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    if store.parse_id(release_id) is None:
        raise NotFound(f"no release with id {release_id!r}: not a valid release id (a UUID)")
    with db.connection(settings) as conn:
        release = store.get_release(conn, release_id=release_id)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    return release


def release_for_job(job_id: Any, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """The release already made for a generation job (id and check_id), or None."""
    with db.connection(settings) as conn:
        return store.release_for_job(conn, job_id=str(job_id))


def releases_matching(*, ids: list[Any] | None = None, status: str | None = None,
                      exclude: list[Any] | None = None, conn: psycopg.Connection | None = None,
                      settings: Settings | None = None) -> list[dict[str, Any]]:
    """Release records, oldest first: those among ids (all when None) with status (any when
    None), leaving out those in exclude. Read in conn's transaction when given."""
    if conn is not None:
        return store.releases_matching(conn, ids=ids, status=status, exclude=exclude)
    with db.connection(settings) as own:
        return store.releases_matching(own, ids=ids, status=status, exclude=exclude)


RELEASE_STATUSES = ("active", "revoked")


def releases_page(*, status: str | None = None, cursor: str | None = None,
                  limit: int | None = None, settings: Settings | None = None
                  ) -> pages.Page[dict[str, Any]]:
    """A page of releases, newest first, as the API shows them (public_release)."""
    if status is not None and status not in RELEASE_STATUSES:
        raise BadInput(f"status must be one of {', '.join(RELEASE_STATUSES)}, not {status!r}")
    with db.connection(settings) as conn:
        page = store.releases_page(conn, status=status, cursor=cursor, limit=limit)
    return page.map(public_release)


def revoke_release(release_id: str, *, reason: str,
                   settings: Settings | None = None) -> dict[str, Any]:
    """Mark a release revoked: verify reports it, and its file is no longer served."""
    if not reason or not reason.strip():
        raise BadInput("a revocation needs a reason")
    get_release(release_id, settings=settings)  # NotFound with a clear message
    with db.connection(settings) as conn:
        return store.revoke_release(conn, release_id=release_id, reason=reason.strip())


def restore_release(release_id: str, *, reason: str,
                    settings: Settings | None = None) -> dict[str, Any]:
    """Make a revoked release active again (a counter-notice's waiting period ended): verify
    reports it active and its file is served again. Restoring an active release changes nothing."""
    if not reason or not reason.strip():
        raise BadInput("a restoration needs a reason")
    release = get_release(release_id, settings=settings)
    if release["status"] == "active":
        return release
    with db.connection(settings) as conn:
        restored = store.restore_release(conn, release_id=release_id)
    log.info("restored release %s: %s", release_id, reason.strip())
    return restored


def backfill_release_frames(settings: Settings | None = None) -> int:
    """Index the frames of releases that have none (made before the released-clips index
    existed), from their stored files, so stripped copies of them can be traced too. Returns
    how many releases were indexed; a release whose file is missing or unreadable is skipped."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        todo = store.releases_without_frames(conn)
    done = 0
    for release in todo:
        try:
            fp = index.fingerprint_file(Path(release["path"]), settings)
        except BadInput as e:
            log.warning("release %s not indexed: %s", release["id"], e)
            continue
        with db.connection(settings) as conn:
            if store.has_release_frames(conn, release_id=str(release["id"])):
                continue  # indexed meanwhile
            store.insert_release_frames(conn, release_id=str(release["id"]), fp=fp)
        done += 1
    return done


def public_release(release: dict[str, Any]) -> dict[str, Any]:
    """A release record as the API and CLI show it."""
    return {
        "release_id": str(release["id"]),
        "check_id": str(release["check_id"]),
        "status": release["status"],
        "created_at": release["created_at"].isoformat(),
        "file_sha256": release["file_sha256"],
        "generator": release["generator"],
        "revoked_at": release["revoked_at"].isoformat() if release["revoked_at"] else None,
        "revoked_reason": release["revoked_reason"],
        "restored_at": release["restored_at"].isoformat() if release.get("restored_at") else None,
    }


def _signer_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """Days until the signing certificate expires (for /metrics): an alert well before zero
    keeps releases from failing closed on the day it does."""
    left = signer(settings).credentials.leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    yield ("clipgate_signing_cert_days_to_expiry",
           "Days until the signing certificate expires (negative once it has)", {},
           left.total_seconds() / 86400)


metrics.gauge_source("compliance.signer", _signer_gauges)
