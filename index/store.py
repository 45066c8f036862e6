"""PostgreSQL access for works, their frames and the index version. Keyword-only, one query each."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import psycopg

from index.faiss_index import FrameRows
from index.features import Features
from index.fingerprint import Fingerprint

WORK_COLUMNS = (
    "id, owner, title, policy, kind, filename, sha256, size_bytes, width, height, duration_s, "
    "status, error, embedder, created_at, removed_at, media_path, account_id, aliases, "
    "description, "
    "(SELECT count(*) FROM work_frames f WHERE f.work_id = works.id) AS frames"
)


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def insert_work(conn: psycopg.Connection, *, work: dict[str, Any]) -> None:
    cols = list(work)
    conn.execute(
        f"INSERT INTO works ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)})",
        [work[c] for c in cols],
    )


def insert_frames(conn: psycopg.Connection, *, work_id: uuid.UUID, fp: Fingerprint) -> list[int]:
    ids = []
    with conn.cursor() as cur:
        for i in range(len(fp)):
            cur.execute(
                "INSERT INTO work_frames (work_id, t_s, clip_embedding, pdq, pdq_quality, phash) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    work_id,
                    float(fp.t_s[i]),
                    fp.clip[i].astype(np.float32).tobytes(),
                    fp.pdq[i].tobytes(),
                    int(fp.pdq_quality[i]),
                    fp.phash[i].tobytes(),
                ),
            )
            frame_id = cur.fetchone()["id"]
            ids.append(frame_id)
            feats = fp.features[i]
            kp, desc = feats.to_bytes()
            cur.execute(
                "INSERT INTO work_frame_features (frame_id, width, height, keypoints, descriptors) "
                "VALUES (%s, %s, %s, %s, %s)",
                (frame_id, feats.width, feats.height, kp, desc),
            )
    return ids


def frame_features(conn: psycopg.Connection, *, frame_ids: list[int]) -> dict[int, Features]:
    if not frame_ids:
        return {}
    rows = conn.execute(
        "SELECT frame_id, width, height, keypoints, descriptors FROM work_frame_features "
        "WHERE frame_id = ANY(%s)",
        (frame_ids,),
    ).fetchall()
    return {
        r["frame_id"]: Features.from_bytes(r["keypoints"], r["descriptors"], r["width"], r["height"])
        for r in rows
    }


def index_state(conn: psycopg.Connection, *, lock: bool = False) -> dict[str, Any]:
    return conn.execute(
        "SELECT version, epoch::text AS epoch, embedder, updated_at FROM index_state WHERE id = 1"
        + (" FOR UPDATE" if lock else "")
    ).fetchone()


def bump_version(conn: psycopg.Connection, *, embedder: str | None = None) -> int:
    """Every change of the index's content gets a new version, in the same transaction."""
    row = conn.execute(
        "UPDATE index_state SET version = version + 1, updated_at = now(), "
        "embedder = COALESCE(%s, embedder) WHERE id = 1 RETURNING version",
        (embedder,),
    ).fetchone()
    return int(row["version"])


def count_frames(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM work_frames").fetchone()["n"])


def get_work(conn: psycopg.Connection, *, work_id: str, lock: bool = False) -> dict | None:
    wid = parse_id(work_id)
    if wid is None:
        return None
    return conn.execute(
        f"SELECT {WORK_COLUMNS} FROM works WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (wid,),
    ).fetchone()


def list_works(conn: psycopg.Connection, *, include_removed: bool = False) -> list[dict]:
    where = "" if include_removed else "WHERE status <> 'removed'"
    return conn.execute(f"SELECT {WORK_COLUMNS} FROM works {where} ORDER BY created_at").fetchall()


def set_status(
    conn: psycopg.Connection, *, work_id: uuid.UUID, status: str, error: str | None = None
) -> None:
    conn.execute(
        "UPDATE works SET status = %s, error = %s, "
        "removed_at = CASE WHEN %s = 'removed' THEN now() ELSE removed_at END WHERE id = %s",
        (status, error, status, work_id),
    )


def delete_frames(conn: psycopg.Connection, *, work_id: uuid.UUID) -> int:
    return conn.execute("DELETE FROM work_frames WHERE work_id = %s", (work_id,)).rowcount


def active_works(conn: psycopg.Connection, *, work_ids: list[str]) -> dict[str, dict]:
    """The works among work_ids that are still active: removal wins over any stale index."""
    if not work_ids:
        return {}
    rows = conn.execute(
        "SELECT id, owner, title, policy, kind FROM works "
        "WHERE id = ANY(%s::uuid[]) AND status = 'active'",
        (work_ids,),
    ).fetchall()
    return {str(r["id"]): r for r in rows}


def all_active_frames(conn: psycopg.Connection, *, dim: int) -> FrameRows:
    rows = conn.execute(
        "SELECT f.id, f.work_id, f.t_s, f.clip_embedding, f.pdq, f.phash FROM work_frames f "
        "JOIN works w ON w.id = f.work_id WHERE w.status = 'active' ORDER BY f.id"
    ).fetchall()
    n = len(rows)
    return FrameRows(
        ids=np.array([r["id"] for r in rows], dtype=np.int64),
        work_ids=np.array([str(r["work_id"]) for r in rows], dtype="U36"),
        t_s=np.array([r["t_s"] for r in rows], dtype=np.float64),
        clip=np.frombuffer(b"".join(r["clip_embedding"] for r in rows), np.float32).reshape(n, dim),
        pdq=np.frombuffer(b"".join(r["pdq"] for r in rows), np.uint8).reshape(n, 32),
        phash=np.frombuffer(b"".join(r["phash"] for r in rows), np.uint8).reshape(n, 8),
    )
