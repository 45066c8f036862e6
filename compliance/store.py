"""PostgreSQL access for checks and releases."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import index
from clipgate import pages

RELEASE_COLUMNS = (
    "id, check_id, created_at, file_sha256, size_bytes, path, generator, manifest_label, "
    "status, revoked_at, revoked_reason, restored_at, watermark_key"
)


def insert_check(conn: psycopg.Connection, *, check: dict[str, Any]) -> None:
    cols = list(check)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in check.values()]
    conn.execute(
        f"INSERT INTO checks ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)})", values
    )


def index_version(conn: psycopg.Connection, *, share_lock: bool = False) -> int:
    """The index version; with share_lock, no index change can commit until this transaction
    ends, so what it records holds for that version."""
    return index.version(conn, share_lock=share_lock)


def insert_release(conn: psycopg.Connection, *, release: dict[str, Any]) -> dict[str, Any]:
    cols = list(release)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in release.values()]
    return conn.execute(
        f"INSERT INTO releases ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)}) "
        f"RETURNING {RELEASE_COLUMNS}",
        values,
    ).fetchone()


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def get_release(conn: psycopg.Connection, *, release_id: str) -> dict[str, Any] | None:
    rid = parse_id(release_id)
    if rid is None:
        return None
    return conn.execute(f"SELECT {RELEASE_COLUMNS} FROM releases WHERE id = %s", (rid,)).fetchone()


def release_for_job(conn: psycopg.Connection, *, job_id: str) -> dict[str, Any] | None:
    """The first release made for a generation job (its id is in the release's generator facts)."""
    return conn.execute(
        "SELECT id, check_id FROM releases WHERE generator->>'job_id' = %s "
        "ORDER BY created_at LIMIT 1", (job_id,)).fetchone()


def releases_matching(conn: psycopg.Connection, *, ids: list[Any] | None = None,
                      status: str | None = None, exclude: list[Any] | None = None
                      ) -> list[dict[str, Any]]:
    """Releases, oldest first: those among ids (all when None), with status (any when None),
    leaving out those in exclude."""
    where, args = [], []
    if ids is not None:
        where.append("id = ANY(%s)")
        args.append([i for i in (parse_id(str(x)) for x in ids) if i is not None])
    if status is not None:
        where.append("status = %s")
        args.append(status)
    if exclude:
        where.append("NOT (id = ANY(%s))")
        args.append([i for i in (parse_id(str(x)) for x in exclude) if i is not None])
    sql = (f"SELECT {RELEASE_COLUMNS} FROM releases "
           f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created_at")
    return conn.execute(sql, args).fetchall()


def release_by_watermark(conn: psycopg.Connection, *, key: int) -> dict[str, Any] | None:
    """The release whose frames carry the watermark key, or None."""
    return conn.execute(f"SELECT {RELEASE_COLUMNS} FROM releases WHERE watermark_key = %s",
                        (key,)).fetchone()


def watermark_key_used(conn: psycopg.Connection, *, key: int) -> bool:
    """True when a release, or a held clip that may yet be released, carries this key."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM releases WHERE watermark_key = %s) OR EXISTS "
        "(SELECT 1 FROM review_items WHERE watermark_key = %s AND state = 'pending') AS used",
        (key, key)).fetchone()["used"]


def release_manifest(conn: psycopg.Connection, *, release_id: str) -> dict[str, Any] | None:
    """The manifest a release was signed with, as stored at release (None before it was kept)."""
    row = conn.execute("SELECT manifest FROM releases WHERE id = %s",
                       (parse_id(release_id),)).fetchone()
    return row["manifest"] if row else None


RELEASES_ORDER = pages.Order("releases:newest", (pages.Key("created_at", "ts", True),
                                                 pages.Key("id", "uuid")))


def releases_page(conn: psycopg.Connection, *, status: str | None = None,
                  cursor: str | None = None, limit: int | None = None
                  ) -> pages.Page[dict[str, Any]]:
    """Releases, newest first, a page at a time (with status, or any)."""
    return pages.fetch_page(conn, columns=RELEASE_COLUMNS, source="releases",
                            order=RELEASES_ORDER, where=["status = %s"] if status else [],
                            args=[status] if status else [], cursor=cursor, limit=limit)


def release_by_file(conn: psycopg.Connection, *, sha256: str) -> dict[str, Any] | None:
    return conn.execute(
        f"SELECT {RELEASE_COLUMNS} FROM releases WHERE file_sha256 = %s "
        "ORDER BY created_at DESC LIMIT 1",
        (sha256,),
    ).fetchone()


def revoke_release(
    conn: psycopg.Connection, *, release_id: str, reason: str
) -> dict[str, Any] | None:
    return conn.execute(
        f"UPDATE releases SET status = 'revoked', revoked_at = now(), revoked_reason = %s "
        f"WHERE id = %s RETURNING {RELEASE_COLUMNS}",
        (reason, parse_id(release_id)),
    ).fetchone()


def insert_release_frames(conn: psycopg.Connection, *, release_id: str,
                          fp: index.Fingerprint) -> int:
    """Index a released clip's frames (one row per sampled frame, with every signal's vectors),
    so a copy whose manifest was stripped can still be traced to its release."""
    with conn.cursor() as cur:
        ids = []
        for t in fp.t_s.tolist():
            cur.execute("INSERT INTO release_frames (release_id, t_s) VALUES (%s, %s) "
                        "RETURNING id", (parse_id(release_id), float(t)))
            ids.append(cur.fetchone()["id"])
        cur.executemany(
            "INSERT INTO release_frame_signals (frame_id, signal, version, vector, quality) "
            "VALUES (%s, %s, %s, %s, %s)", index.vector_rows(fp, ids))
    return len(ids)


def has_release_frames(conn: psycopg.Connection, *, release_id: str) -> bool:
    return conn.execute("SELECT 1 FROM release_frames WHERE release_id = %s LIMIT 1",
                        (parse_id(release_id),)).fetchone() is not None


def releases_without_frames(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, path FROM releases r WHERE NOT EXISTS "
        "(SELECT 1 FROM release_frames f WHERE f.release_id = r.id) ORDER BY created_at"
    ).fetchall()


def release_frames_state(conn: psycopg.Connection) -> tuple[int, int]:
    """(highest release frame id, how many there are)."""
    row = conn.execute("SELECT coalesce(max(id), 0) AS top, count(*) AS n FROM release_frames"
                       ).fetchone()
    return int(row["top"]), int(row["n"])


def release_frame_rows(conn: psycopg.Connection, *, after_id: int,
                       signals: Mapping[str, index.Signal]) -> index.FrameRows:
    """Released frames with an id above after_id (the released-clips index grows only), with
    the vectors of these signals in their current versions."""
    frames = conn.execute(
        "SELECT id, release_id, t_s FROM release_frames WHERE id > %s ORDER BY id", (after_id,)
    ).fetchall()
    vectors = {name: conn.execute(
        "SELECT frame_id, vector FROM release_frame_signals WHERE frame_id > %s "
        "AND signal = %s AND version = %s ORDER BY frame_id", (after_id, name, signal.version)
    ).fetchall() for name, signal in signals.items()}
    return index.frame_rows(frames, "release_id", vectors, signals)


def restore_release(conn: psycopg.Connection, *, release_id: str) -> dict[str, Any] | None:
    """Make a revoked release active again (after a counter-notice), keeping when it happened."""
    return conn.execute(
        f"UPDATE releases SET status = 'active', restored_at = now(), revoked_at = NULL, "
        f"revoked_reason = NULL WHERE id = %s RETURNING {RELEASE_COLUMNS}",
        (parse_id(release_id),),
    ).fetchone()


CHECK_COLUMNS = (
    "id, created_at, source, filename, sha256, size_bytes, duration_s, frames_sampled, "
    "verdict, reasons, index_version, signals, evidence, timings"
)
REVIEW_COLUMNS = (
    "id, check_id, created_at, state, revision, source, filename, path, file_sha256, "
    "size_bytes, generator, held_by, decided_at, decision, release_id, watermark_key, "
    "extract(epoch FROM now() - created_at) AS age_s"
)
REVIEW_SORTS = {"age": "created_at", "score": "(held_by->>'score')::float", "created": "created_at"}


def get_check(conn: psycopg.Connection, *, check_id: str) -> dict[str, Any] | None:
    cid = parse_id(check_id)
    if cid is None:
        return None
    return conn.execute(f"SELECT {CHECK_COLUMNS} FROM checks WHERE id = %s", (cid,)).fetchone()


def release_for_check(conn: psycopg.Connection, *, check_id: str) -> dict[str, Any] | None:
    return conn.execute(f"SELECT {RELEASE_COLUMNS} FROM releases WHERE check_id = %s",
                        (parse_id(check_id),)).fetchone()


def insert_review(conn: psycopg.Connection, *, item: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a held clip; None when its generation job already has one (a retried job)."""
    cols = list(item)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in item.values()]
    return conn.execute(
        f"INSERT INTO review_items ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)}) "
        "ON CONFLICT ((generator->>'job_id')) WHERE generator->>'job_id' IS NOT NULL "
        f"DO NOTHING RETURNING {REVIEW_COLUMNS}", values).fetchone()


def get_review(conn: psycopg.Connection, *, review_id: str, lock: bool = False
               ) -> dict[str, Any] | None:
    rid = parse_id(review_id)
    if rid is None:
        return None
    return conn.execute(f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE id = %s"
                        + (" FOR UPDATE" if lock else ""), (rid,)).fetchone()


def review_where(conn: psycopg.Connection, *, check_id: str | None = None,
                 job_id: str | None = None) -> dict[str, Any] | None:
    """The held clip of a check, or of a generation job."""
    if check_id is not None:
        return conn.execute(f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE check_id = %s",
                            (parse_id(check_id),)).fetchone()
    return conn.execute(f"SELECT {REVIEW_COLUMNS} FROM review_items "
                        "WHERE generator->>'job_id' = %s", (str(job_id),)).fetchone()


REVIEW_SORT_KINDS = {"age": "ts", "score": "num", "created": "ts"}


def list_reviews(conn: psycopg.Connection, *, state: str | None, source: str | None,
                 sort: str, descending: bool, cursor: str | None = None,
                 limit: int | None = None) -> pages.Page[dict[str, Any]]:
    where, args = [], []
    if state is not None:
        where.append("state = %s")
        args.append(state)
    if source is not None:
        where.append("source = %s")
        args.append(source)
    order = pages.Order(f"reviews:{sort}:{'desc' if descending else 'asc'}", (
        pages.Key(REVIEW_SORTS[sort], REVIEW_SORT_KINDS[sort], descending),
        pages.Key("id", "uuid")))
    return pages.fetch_page(conn, columns=REVIEW_COLUMNS, source="review_items", order=order,
                            where=where, args=args, cursor=cursor, limit=limit)


def finish_review(conn: psycopg.Connection, *, review_id: Any, state: str,
                  decision: dict[str, Any], release_id: Any | None) -> dict[str, Any]:
    """Record the decision on a locked pending item (bumping its revision)."""
    return conn.execute(
        "UPDATE review_items SET state = %s, decision = %s, decided_at = now(), release_id = %s, "
        f"revision = revision + 1 WHERE id = %s RETURNING {REVIEW_COLUMNS}",
        (state, Jsonb(decision), release_id, review_id)).fetchone()


def overdue_reviews(conn: psycopg.Connection, *, older_than_s: float, limit: int
                    ) -> list[dict[str, Any]]:
    """Pending items held longer than older_than_s, locked (others' locked rows skipped)."""
    return conn.execute(
        f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE state = 'pending' "
        "AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT %s "
        "FOR UPDATE SKIP LOCKED", (older_than_s, limit)).fetchall()


# --- licences and tracked matches ---------------------------------------------------------------

LICENCE_COLUMNS = (
    "id, created_at, work_id, owner, tenant_id, tenant_name, model, valid_from, valid_until, "
    "note, revoked_at, revoked_reason"
)


def insert_licence(conn: psycopg.Connection, *, licence: dict[str, Any]) -> dict[str, Any]:
    cols = list(licence)
    return conn.execute(
        f"INSERT INTO licences ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)}) "
        f"RETURNING {LICENCE_COLUMNS}", list(licence.values())).fetchone()


def get_licence(conn: psycopg.Connection, *, licence_id: str,
                lock: bool = False) -> dict[str, Any] | None:
    lid = parse_id(licence_id)
    if lid is None:
        return None
    return conn.execute(f"SELECT {LICENCE_COLUMNS} FROM licences WHERE id = %s"
                        + (" FOR UPDATE" if lock else ""), (lid,)).fetchone()


def list_licences(conn: psycopg.Connection, *, tenant_id: str | None = None,
                  work_ids: list[Any] | None = None, owners: list[str] | None = None,
                  include_revoked: bool = True) -> list[dict[str, Any]]:
    """Licences, newest first: of tenant_id (any when None) that cover one of work_ids or is
    for one of owners (any when both are None)."""
    where, args = [], []
    if tenant_id is not None:
        where.append("tenant_id = %s")
        args.append(tenant_id)
    if work_ids is not None or owners is not None:
        where.append("(work_id = ANY(%s) OR owner = ANY(%s))")
        args += [[i for i in (parse_id(str(w)) for w in work_ids or []) if i is not None],
                 list(owners or [])]
    if not include_revoked:
        where.append("revoked_at IS NULL")
    sql = (f"SELECT {LICENCE_COLUMNS} FROM licences "
           f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created_at DESC, id")
    return conn.execute(sql, args).fetchall()


def revoke_licence(conn: psycopg.Connection, *, licence_id: str,
                   reason: str) -> dict[str, Any] | None:
    return conn.execute(
        "UPDATE licences SET revoked_at = coalesce(revoked_at, now()), "
        "revoked_reason = coalesce(revoked_reason, %s) "
        f"WHERE id = %s RETURNING {LICENCE_COLUMNS}", (reason, parse_id(licence_id))).fetchone()


def licences_in_force(conn: psycopg.Connection, *, licence_ids: list[str]) -> set[str]:
    """Those of licence_ids in force now, read FOR SHARE: none of them can be revoked until this
    transaction ends, so a release recorded in it was decided under licences that held."""
    ids = [i for i in (parse_id(x) for x in licence_ids) if i is not None]
    rows = conn.execute(
        "SELECT id FROM licences WHERE id = ANY(%s) AND revoked_at IS NULL "
        "AND valid_from <= now() AND (valid_until IS NULL OR valid_until > now()) "
        "ORDER BY id FOR SHARE", (ids,)).fetchall()
    return {str(r["id"]) for r in rows}


def insert_tracked(conn: psycopg.Connection, *, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO tracked_matches ({', '.join(cols)}) "
            f"VALUES ({', '.join('%s' for _ in cols)})", [list(r.values()) for r in rows])


def tracked_counts(conn: psycopg.Connection, *, work_ids: list[Any]) -> list[dict[str, Any]]:
    """Released clips that matched these works under `track` or a licence: per work, rule,
    licence, model and tenant, how many and when the last one was."""
    ids = [i for i in (parse_id(str(w)) for w in work_ids) if i is not None]
    return conn.execute(
        "SELECT work_id, rule, licence_id, model, tenant_name, count(*) AS clips, "
        "max(created_at) AS last_at FROM tracked_matches WHERE work_id = ANY(%s) "
        "GROUP BY work_id, rule, licence_id, model, tenant_name "
        "ORDER BY work_id, count(*) DESC, model, tenant_name", (ids,)).fetchall()
