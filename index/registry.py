"""Registering and removing protected works: fingerprint first, then one transaction.

A work's media is fingerprinted before anything is written, so bad input leaves no trace. The
database insert of the work, its frames and the new index version commit together; the copy of
the media in the data directory is removed again if that transaction fails.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from clipgate import db, pages, text
from clipgate.errors import BadInput, Conflict, NotFound, Unavailable
from clipgate.files import copy_atomic, sha256_file
from clipgate.settings import Settings, get_settings
from index import live, store
from index.faiss_index import FrameRows, SignalRows
from index.fingerprint import Fingerprint, fingerprint_file
from index.media import MediaInfo, probe

log = logging.getLogger(__name__)

# What a match with the work does: block the clip, hold it for a person (review), release it and
# record the use for the rights holder (track), or release it (allow). A licence the tenant holds
# (compliance) releases the clip whatever the policy.
POLICIES = ("block", "review", "track", "allow")


MAX_ALIASES = 20
MAX_ALIAS_LEN = 200
MAX_DESCRIPTION_LEN = 2000


def validate_meta(
    *, owner: str, title: str, policy: str, aliases: Sequence[str] = (),
    description: str | None = None,
) -> None:
    if not owner or not owner.strip():
        raise BadInput("owner is required")
    if not title or not title.strip():
        raise BadInput("title is required")
    text.one_line(owner, "owner", text.NAME_MAX)
    text.one_line(title, "title", text.TITLE_MAX)
    if policy not in POLICIES:
        raise BadInput(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    if len(aliases) > MAX_ALIASES:
        raise BadInput(f"at most {MAX_ALIASES} aliases per work")
    for a in aliases:
        if not isinstance(a, str) or not a.strip() or len(a) > MAX_ALIAS_LEN:
            raise BadInput(f"each alias must be 1 to {MAX_ALIAS_LEN} characters")
        text.one_line(a, "alias", MAX_ALIAS_LEN)
    if description is not None and len(description) > MAX_DESCRIPTION_LEN:
        raise BadInput(f"description is over {MAX_DESCRIPTION_LEN} characters")


def _meta(owner: str, title: str, policy: str, filename: str | None, account_id: str | None,
          aliases: Sequence[str], description: str | None) -> dict[str, Any]:
    validate_meta(owner=owner, title=title, policy=policy, aliases=aliases,
                  description=description)
    return {"owner": owner, "title": title, "policy": policy, "filename": filename,
            "account_id": account_id, "aliases": [a.strip() for a in aliases],
            "description": (description or "").strip() or None}


def register_work(
    path: Path,
    *,
    owner: str,
    title: str,
    policy: str,
    filename: str | None = None,
    account_id: str | None = None,
    aliases: Sequence[str] = (),
    description: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Fingerprint and register one image or video, synchronously. Returns the work record."""
    settings = settings or get_settings()
    meta = _meta(owner, title, policy, filename, account_id, aliases, description)
    fp = fingerprint_file(Path(path), settings)
    _require_distinctive(fp, settings)
    work, (version, rows) = _insert_new_work(Path(path), fp.info, meta, settings, fp=fp)
    log.info("registered work %s (%s, %d frames)", work["id"], title, len(fp))
    live.apply_change(settings, version, added=rows)
    return work


def create_pending_work(
    path: Path,
    *,
    owner: str,
    title: str,
    policy: str,
    filename: str | None = None,
    account_id: str | None = None,
    aliases: Sequence[str] = (),
    description: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Accept a work for fingerprinting on a worker: check it is media we take, store a copy,
    record it as pending. `process_pending_work` finishes the job."""
    settings = settings or get_settings()
    meta = _meta(owner, title, policy, filename, account_id, aliases, description)
    info = probe(Path(path), max_frame_pixels=settings.max_frame_pixels)
    work, _ = _insert_new_work(Path(path), info, meta, settings, fp=None)
    return work


def _insert_new_work(
    path: Path, info: MediaInfo, meta: dict[str, Any], settings: Settings, *, fp: Fingerprint | None
) -> tuple[dict[str, Any], tuple[int, FrameRows] | None]:
    """Copy the media into the store and insert the work: active with fp's frames, or pending
    without fp. The stored copy is removed again if the transaction fails."""
    work_id = uuid.uuid4()
    stored = copy_atomic(path, settings.data_dir / "works" / f"{work_id}{path.suffix.lower()}")
    row = {
        "id": work_id, "owner": meta["owner"].strip(), "title": meta["title"].strip(),
        "policy": meta["policy"], "kind": info.kind, "filename": meta["filename"] or path.name,
        "sha256": fp.sha256 if fp else sha256_file(stored), "size_bytes": stored.stat().st_size,
        "width": info.width, "height": info.height, "duration_s": info.duration_s,
        "media_path": str(stored), "status": "active" if fp else "pending",
        "account_id": meta["account_id"], "aliases": Jsonb(meta["aliases"]),
        "description": meta["description"],
    }
    try:
        with db.connection(settings) as conn:
            _refuse_duplicate(conn, row["sha256"], path)
            store.insert_work(conn, work=row)
            added = _add_frames(conn, work_id, fp, settings) if fp else None
            return store.get_work(conn, work_id=str(work_id)), added
    except psycopg.errors.UniqueViolation as e:  # registered at the same moment by another
        stored.unlink(missing_ok=True)
        raise Conflict(f"{path.name} is already registered") from e
    except BaseException:
        stored.unlink(missing_ok=True)
        raise


def _refuse_duplicate(conn, sha256: str, path: Path) -> None:
    same = conn.execute(
        "SELECT id, title FROM works WHERE sha256 = %s AND status IN ('active', 'pending') "
        "FOR UPDATE", (sha256,)).fetchone()
    if same:
        raise Conflict(f"{path.name} is already registered as work {same['id']} "
                       f"(\"{same['title']}\")", existing_id=str(same["id"]))


def _require_distinctive(fp: Fingerprint, settings: Settings) -> None:
    """A work whose every frame is flat or featureless could never match: say so now."""
    if not fp.distinctive(settings.orb_min_inliers):
        raise BadInput(f"{fp.path.name}: has no distinctive content to match (every sampled "
                       "frame is flat or too small); register a larger or more detailed version")


def discard_pending_work(work_id: str, settings: Settings | None = None) -> None:
    """Undo create_pending_work when its task could not be queued: no row, no stored copy."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        row = conn.execute(
            "DELETE FROM works WHERE id = %s AND status = 'pending' RETURNING media_path",
            (store.parse_id(work_id),),
        ).fetchone()
    if row and row["media_path"]:
        Path(row["media_path"]).unlink(missing_ok=True)


def process_pending_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Fingerprint a pending work and make it active; a failure marks it failed with the reason."""
    settings = settings or get_settings()
    work = get_work(work_id, settings)
    if work["status"] != "pending":
        return work
    try:
        fp = fingerprint_file(Path(work["media_path"]), settings)
        _require_distinctive(fp, settings)
        with db.connection(settings) as conn:
            locked = store.get_work(conn, work_id=work_id, lock=True)
            if locked["status"] != "pending":  # removed meanwhile: stays removed
                return locked
            version, rows = _add_frames(conn, work["id"], fp, settings)
            conn.execute(
                "UPDATE works SET status = 'active', width = %s, height = %s, duration_s = %s "
                "WHERE id = %s",
                (fp.info.width, fp.info.height, fp.info.duration_s, work["id"]),
            )
            work = store.get_work(conn, work_id=work_id)
    except BadInput as e:
        return _mark_failed(work, str(e), settings)
    except Exception as e:
        # Never leave it pending for ever (its file would stay unregistrable): record why, and
        # let the task fail visibly too.
        with contextlib.suppress(Exception):  # the database may be what failed
            _mark_failed(work, f"could not be registered: {e}", settings)
        raise
    live.apply_change(settings, version, added=rows)
    return work


def fail_pending_work(work_id: str, reason: str, settings: Settings | None = None
                      ) -> dict[str, Any]:
    """Mark a work that is still pending failed with the reason (its workers kept dying)."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        work = _existing(conn, work_id, lock=True)
        if work["status"] == "pending":
            store.set_status(conn, work_id=work["id"], status="failed", error=reason)
        return store.get_work(conn, work_id=work_id)


def _mark_failed(work: dict[str, Any], reason: str, settings: Settings) -> dict[str, Any]:
    with db.connection(settings) as conn:
        store.set_status(conn, work_id=work["id"], status="failed", error=reason)
        return store.get_work(conn, work_id=str(work["id"]))


def remove_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Remove a work: its frames leave the database and the index, and it never matches again."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        work = _existing(conn, work_id, lock=True)
        if work["status"] == "removed":
            return work
        had_frames = store.delete_frames(conn, work_id=work["id"]) > 0
        store.set_status(conn, work_id=work["id"], status="removed")
        version = store.bump_version(conn, kind="remove", work_id=work["id"],
                                     keep=settings.index_change_log_keep) if had_frames else None
        work = store.get_work(conn, work_id=work_id)
    if version is not None:
        live.remove_shared(settings, str(work["id"]))  # after the commit: the database decides
        live.apply_change(settings, version, removed=str(work["id"]))
    return work


def set_work_policy(work_id: str, policy: str, settings: Settings | None = None) -> dict[str, Any]:
    """Change a work's policy (an upheld claim makes it `block`). The index version moves, so a
    release checked under the old policy is checked again before it is recorded."""
    settings = settings or get_settings()
    if policy not in POLICIES:
        raise BadInput(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    with db.connection(settings) as conn:
        store.index_state(conn, lock=True)
        work = _existing(conn, work_id, lock=True)
        if work["status"] == "removed":
            raise NotFound(f"no work with id {work_id}")
        if work["policy"] == policy:
            return work
        conn.execute("UPDATE works SET policy = %s WHERE id = %s", (policy, work["id"]))
        version = store.bump_version(conn, kind="policy", work_id=work["id"],
                                     keep=settings.index_change_log_keep)
        work = store.get_work(conn, work_id=work_id)
    live.apply_change(settings, version)
    return work


def reembed_all(settings: Settings | None = None) -> dict[str, Any]:
    """Describe every active work again from its stored media with the signals this process
    computes (after changing a model or its weights, or adding a signal), replacing all frames
    in one transaction."""
    settings = settings or get_settings()
    works = list_works(settings=settings)
    prints = {str(w["id"]): fingerprint_file(Path(w["media_path"]), settings)
              for w in works if w["status"] == "active"}
    with db.connection(settings) as conn:
        store.index_state(conn, lock=True)  # no registration commits until we are done
        now_active = {str(w["id"]) for w in store.list_works(conn) if w["status"] == "active"}
        if now_active != set(prints):
            raise Unavailable("works were added or removed while re-embedding; nothing was "
                              "changed, run it again")
        conn.execute("DELETE FROM work_frames")
        conn.execute("DELETE FROM index_signals")
        for work_id, fp in prints.items():
            store.insert_frames(conn, work_id=uuid.UUID(work_id), fp=fp)
        if prints:
            live.record_versions(conn, next(iter(prints.values())).versions)
        # Every vector changed: other processes rebuild rather than apply it.
        store.bump_version(conn, kind="rebuild", keep=settings.index_change_log_keep)
    return live.rebuild(settings)


def get_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        return _existing(conn, work_id)


def _existing(conn: psycopg.Connection, work_id: str, *, lock: bool = False) -> dict[str, Any]:
    """The work (in any status; lock: held until the transaction ends), or NotFound."""
    work = store.get_work(conn, work_id=work_id, lock=lock)
    if work is None:
        raise NotFound(f"no work with id {work_id}")
    return work


def works_by_id(work_ids: Iterable[Any], *, conn: psycopg.Connection | None = None,
                settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """The works among work_ids (any status) by id as a string; unknown ids are left out.
    Read in conn's transaction when given."""
    if conn is not None:
        return store.get_works(conn, work_ids=list(work_ids))
    with db.connection(settings) as own:
        return store.get_works(own, work_ids=list(work_ids))


def active_works(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every active work (id, title, owner, policy, kind, aliases, description), oldest first."""
    with db.connection(settings) as conn:
        return store.list_active_works(conn)


def version(conn: psycopg.Connection | None = None, *, share_lock: bool = False,
            settings: Settings | None = None) -> int:
    """The index version. Given conn and share_lock, no index change can commit until conn's
    transaction ends, so what that transaction records holds for this version."""
    if conn is None:
        with db.connection(settings) as own:
            return int(store.index_state(own)["version"])
    return int(store.index_state(conn, share=share_lock)["version"])


def list_works(
    *, include_removed: bool = False, settings: Settings | None = None
) -> list[dict[str, Any]]:
    with db.connection(settings) as conn:
        return store.list_works(conn, include_removed=include_removed)


def works_page(*, include_removed: bool = False, cursor: str | None = None,
               limit: int | None = None, settings: Settings | None = None) -> pages.Page[dict]:
    """A page of works, oldest first (clipgate.pages: cursor, limit, total)."""
    with db.connection(settings) as conn:
        return store.works_page(conn, include_removed=include_removed, cursor=cursor,
                                limit=limit)


def _add_frames(conn, work_id: uuid.UUID, fp: Fingerprint, settings: Settings
                ) -> tuple[int, FrameRows]:
    """Insert fp's frames and bump the index version (logging the add, in this transaction,
    for other processes); returns the version and the rows."""
    store.index_state(conn, lock=True)
    live.check_versions(conn, fp.versions)
    ids = store.insert_frames(conn, work_id=work_id, fp=fp)
    live.record_versions(conn, fp.versions)
    version = store.bump_version(conn, kind="add", work_id=work_id,
                                 keep=settings.index_change_log_keep)
    frame_ids = np.array(ids, dtype=np.int64)
    rows = FrameRows(
        ids=frame_ids,
        work_ids=np.array([str(work_id)] * len(ids), dtype="U36"),
        t_s=fp.t_s,
        vectors={name: SignalRows(frame_ids, v) for name, v in fp.vectors.items()},
    )
    # A shared vector index (Milvus) is written here, before the commit: if it refuses, the
    # registration rolls back (index/milvus.py says why).
    live.write_shared(settings, rows)
    return version, rows
