"""PostgreSQL access for checks and releases."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

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
    row = conn.execute(
        "SELECT version FROM index_state WHERE id = 1" + (" FOR SHARE" if share_lock else "")
    ).fetchone()
    return int(row["version"])


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


def insert_release_frames(
    conn: psycopg.Connection, *, release_id: str, t_s: Any, pdq: Any, pdq_quality: Any, phash: Any
) -> int:
    """Index a released clip's frame hashes (one row per sampled frame), so a copy whose manifest
    was stripped can still be traced to its release. pdq: (n, 32) uint8; phash: (n, 8) uint8."""
    rows = [
        (parse_id(release_id), float(t), bytes(p), int(q), bytes(h))
        for t, p, q, h in zip(t_s, pdq, pdq_quality, phash, strict=True)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO release_frames (release_id, t_s, pdq, pdq_quality, phash) "
            "VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
    return len(rows)


def restore_release(conn: psycopg.Connection, *, release_id: str) -> dict[str, Any] | None:
    """Make a revoked release active again (after a counter-notice), keeping when it happened."""
    return conn.execute(
        f"UPDATE releases SET status = 'active', restored_at = now(), revoked_at = NULL, "
        f"revoked_reason = NULL WHERE id = %s RETURNING {RELEASE_COLUMNS}",
        (parse_id(release_id),),
    ).fetchone()
