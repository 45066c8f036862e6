"""PostgreSQL access for checks and releases."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import index

RELEASE_COLUMNS = (
    "id, check_id, created_at, file_sha256, size_bytes, path, generator, manifest_label, "
    "status, revoked_at, revoked_reason, restored_at"
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
