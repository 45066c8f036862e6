"""PostgreSQL access for works, their frames and the index version. Keyword-only, one query each."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from clipgate import pages
from index.faiss_index import FrameRows, SignalRows, frame_rows
from index.features import Features
from index.fingerprint import Fingerprint
from index.signals import Signal

WORK_COLUMNS = (
    "id, owner, title, policy, kind, filename, sha256, size_bytes, width, height, duration_s, "
    "status, error, created_at, removed_at, media_path, account_id, aliases, "
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
    """A work's sampled frames, each with its signals' vectors and its ORB features."""
    with conn.cursor() as cur:
        ids = []
        for t in fp.t_s.tolist():
            cur.execute("INSERT INTO work_frames (work_id, t_s) VALUES (%s, %s) RETURNING id",
                        (work_id, float(t)))
            ids.append(cur.fetchone()["id"])
        cur.executemany(
            "INSERT INTO work_frame_signals (frame_id, signal, version, vector, quality) "
            "VALUES (%s, %s, %s, %s, %s)", vector_rows(fp, ids))
        cur.executemany(
            "INSERT INTO work_frame_features (frame_id, width, height, keypoints, descriptors) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(i, f.width, f.height, *f.to_bytes()) for i, f in zip(ids, fp.features)])
    return ids


def vector_rows(fp: Fingerprint, frame_ids: list[int]) -> list[tuple]:
    """(frame id, signal, version, vector bytes, quality or None) for every frame and signal of
    fp: how any table of frame vectors stores them."""
    out = []
    for name, vectors in fp.vectors.items():
        quality = fp.quality.get(name)
        for i, frame_id in enumerate(frame_ids):
            out.append((frame_id, name, fp.versions[name], np.ascontiguousarray(vectors[i]).tobytes(),
                        None if quality is None else int(quality[i])))
    return out


def signal_versions(conn: psycopg.Connection) -> dict[str, str]:
    """The version of each signal's stored vectors."""
    return {r["signal"]: r["version"] for r in conn.execute(
        "SELECT signal, version FROM index_signals").fetchall()}


def signal_frames(conn: psycopg.Connection, *, signal: str) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM work_frame_signals WHERE signal = %s",
                            (signal,)).fetchone()["n"])


def set_signal_version(conn: psycopg.Connection, *, signal: str, version: str) -> None:
    conn.execute(
        "INSERT INTO index_signals (signal, version) VALUES (%s, %s) ON CONFLICT (signal) "
        "DO UPDATE SET version = excluded.version, updated_at = now()", (signal, version))


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


def index_state(conn: psycopg.Connection, *, lock: bool = False,
                share: bool = False) -> dict[str, Any]:
    """The index's version row; lock takes it FOR UPDATE, share FOR SHARE."""
    return conn.execute(
        "SELECT version, epoch::text AS epoch, updated_at FROM index_state WHERE id = 1"
        + (" FOR UPDATE" if lock else " FOR SHARE" if share else "")
    ).fetchone()


CHANGE_KINDS = ("add", "remove", "policy", "rebuild")


def bump_version(conn: psycopg.Connection, *, kind: str, work_id: uuid.UUID | str | None = None,
                 keep: int | None = None) -> int:
    """Every change of the index's content gets a new version, in the same transaction, and a
    row in the change log (index_changes) saying what changed, so other processes apply just
    that. keep: prune log rows this many versions or more behind the new one."""
    if kind not in CHANGE_KINDS:
        raise ValueError(f"index change kind must be one of {', '.join(CHANGE_KINDS)}, "
                         f"not {kind!r}")
    row = conn.execute(
        "WITH bumped AS (UPDATE index_state SET version = version + 1, updated_at = now() "
        "WHERE id = 1 RETURNING version, epoch) "
        "INSERT INTO index_changes (epoch, version, kind, work_id) "
        "SELECT epoch, version, %s, %s FROM bumped RETURNING version",
        (kind, work_id),
    ).fetchone()
    version = int(row["version"])
    if keep is not None:
        conn.execute("DELETE FROM index_changes WHERE version <= %s", (version - keep,))
    return version


def changes(conn: psycopg.Connection, *, epoch: str, after: int, upto: int) -> list[dict]:
    """The change log's rows of this epoch with after < version <= upto, oldest first (fewer
    than upto - after when the log was pruned)."""
    return conn.execute(
        "SELECT version, kind, work_id::text AS work_id FROM index_changes "
        "WHERE epoch = %s AND version > %s AND version <= %s ORDER BY version",
        (epoch, after, upto)).fetchall()


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


def get_works(conn: psycopg.Connection, *, work_ids: list[Any]) -> dict[str, dict]:
    """The works among work_ids, whatever their status, by id (as a string)."""
    ids = [w for w in (parse_id(str(i)) for i in work_ids) if w is not None]
    if not ids:
        return {}
    rows = conn.execute(f"SELECT {WORK_COLUMNS} FROM works WHERE id = ANY(%s)", (ids,)).fetchall()
    return {str(r["id"]): r for r in rows}


def list_active_works(conn: psycopg.Connection) -> list[dict]:
    """Every active work, oldest first (no frame count: callers want names, not media)."""
    return conn.execute(
        "SELECT id, title, owner, policy, kind, aliases, description FROM works "
        "WHERE status = 'active' ORDER BY created_at").fetchall()


WORKS_ORDER = pages.Order("works:created", (pages.Key("created_at", "ts"), pages.Key("id", "uuid")))


def works_page(conn: psycopg.Connection, *, include_removed: bool = False,
               cursor: str | None = None, limit: int | None = None) -> pages.Page[dict]:
    """Works, oldest first, a page at a time."""
    return pages.fetch_page(conn, columns=WORK_COLUMNS, source="works", order=WORKS_ORDER,
                            where=[] if include_removed else ["status <> 'removed'"],
                            cursor=cursor, limit=limit)


def list_works(conn: psycopg.Connection, *, include_removed: bool = False) -> list[dict]:
    where = "" if include_removed else "WHERE status <> 'removed'"
    return conn.execute(f"SELECT {WORK_COLUMNS} FROM works {where} ORDER BY created_at").fetchall()


def stale_pending(conn: psycopg.Connection, *, kind: str, lease_s: float) -> list[dict]:
    """Pending works no live worker holds: their lease ran out (the worker died), or none was
    ever taken within lease_s of acceptance (the message was lost). Rows: id, attempts."""
    return conn.execute(
        "SELECT w.id, coalesce(l.attempts, 0) AS attempts FROM works w "
        "LEFT JOIN task_leases l ON l.kind = %s AND l.subject_id = w.id::text "
        "WHERE w.status = 'pending' "
        "AND coalesce(l.lease_until, w.created_at + make_interval(secs => %s)) < now() "
        "ORDER BY w.created_at FOR UPDATE OF w SKIP LOCKED", (kind, lease_s)).fetchall()


def set_status(
    conn: psycopg.Connection, *, work_id: uuid.UUID, status: str, error: str | None = None
) -> None:
    conn.execute(
        "UPDATE works SET status = %s, error = %s, "
        "removed_at = CASE WHEN %s = 'removed' THEN now() ELSE removed_at END WHERE id = %s",
        (status, error, status, work_id),
    )


def existing_frames(conn: psycopg.Connection, *, frame_ids: list[int]) -> np.ndarray:
    """The frame ids among frame_ids that work_frames still holds, int64, sorted."""
    rows = conn.execute("SELECT id FROM work_frames WHERE id = ANY(%s::bigint[]) ORDER BY id",
                        (frame_ids,)).fetchall()
    return np.array([r["id"] for r in rows], np.int64)


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


_ACTIVE_VECTORS = (
    "SELECT s.frame_id, s.vector FROM work_frame_signals s "
    "JOIN work_frames f ON f.id = s.frame_id JOIN works w ON w.id = f.work_id "
    "WHERE w.status = 'active' AND s.signal = %s AND s.version = %s")


def all_active_frames(conn: psycopg.Connection, *, signals: Mapping[str, Signal],
                      without: Collection[str] = ()) -> FrameRows:
    """Every frame of every active work, with the vectors of the given signals (the caller checked
    that their stored versions are these signals'), but for those named in `without` (the
    caller reads them a batch at a time: active_vector_batches)."""
    out = _active_frame_rows(conn)
    for name, signal in signals.items():
        if name not in without:
            out.vectors[name] = _stream_vectors(
                conn, signal, _ACTIVE_VECTORS + " ORDER BY s.frame_id", (name, signal.version))
    return out


def _active_frame_rows(conn: psycopg.Connection) -> FrameRows:
    """Every active work's frames (id, work, seconds) as arrays, read VECTOR_BATCH rows at a time
    through a server-side cursor: ten million frames as Python dicts would take gigabytes."""
    ids: list[np.ndarray] = []
    works: list[np.ndarray] = []
    times: list[np.ndarray] = []
    with conn.cursor(name="active_frames", row_factory=tuple_row) as cur:
        cur.execute("SELECT f.id, f.work_id::text, f.t_s FROM work_frames f "
                    "JOIN works w ON w.id = f.work_id WHERE w.status = 'active' ORDER BY f.id")
        while rows := cur.fetchmany(VECTOR_BATCH):
            ids.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            works.append(np.array([r[1] for r in rows], dtype="U36"))
            times.append(np.fromiter((r[2] for r in rows), np.float64, len(rows)))
    if not ids:
        return FrameRows(np.zeros(0, np.int64), np.zeros(0, "U36"), np.zeros(0, np.float64))
    return FrameRows(np.concatenate(ids), np.concatenate(works), np.concatenate(times))


def active_vector_count(conn: psycopg.Connection, signal: Signal) -> int:
    """How many frames of active works have this signal's vectors."""
    return int(conn.execute(_ACTIVE_VECTORS.replace("s.frame_id, s.vector", "count(*) AS n", 1),
                            (signal.name, signal.version)).fetchone()["n"])


def active_vector_batches(conn: psycopg.Connection, signal: Signal, *, every: int = 1
                          ) -> Iterator[SignalRows]:
    """The signal's vectors of active works, VECTOR_BATCH rows at a time (every: only frames
    whose id is a multiple of it, a sample to train on), so that a rebuild of ten million frames
    never holds their floats (20 GB at 512 dimensions) at once."""
    query = _ACTIVE_VECTORS + (" AND s.frame_id %% %s = 0" if every > 1 else "")
    params: tuple = (signal.name, signal.version, every) if every > 1 else (
        signal.name, signal.version)
    yield from _vector_batches(conn, signal, query + " ORDER BY s.frame_id", params)


VECTOR_BATCH = 50_000


def _stream_vectors(conn: psycopg.Connection, signal: Signal, query: str,
                    params: tuple) -> SignalRows:
    """A signal's vectors through a server-side cursor, decoded a batch at a time: a million
    rows never sit in memory as Python objects (fetchall of them took about 20 GB)."""
    parts = list(_vector_batches(conn, signal, query, params))
    if not parts:
        return SignalRows(np.zeros(0, np.int64), signal.decode(b"", 0))
    return SignalRows(np.concatenate([p.ids for p in parts]),
                      np.concatenate([p.vectors for p in parts]))


def _vector_batches(conn: psycopg.Connection, signal: Signal, query: str,
                    params: tuple) -> Iterator[SignalRows]:
    """The (frame_id, vector) rows of query, VECTOR_BATCH at a time, decoded."""
    with conn.cursor(name=f"vectors_{signal.name}", row_factory=tuple_row) as cur:
        cur.execute(query, params)
        while rows := cur.fetchmany(VECTOR_BATCH):
            yield SignalRows(np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                             signal.decode(b"".join(r[1] for r in rows), len(rows)))


def work_frames(conn: psycopg.Connection, *, work_ids: list[str],
                signals: Mapping[str, Signal]) -> FrameRows:
    """all_active_frames for just these works (those still active): what a change adds. Frames
    by work, then vectors by frame id: index lookups whatever the table's size or statistics."""
    ids = [w for w in (parse_id(i) for i in work_ids) if w is not None]
    frames = conn.execute(
        "SELECT f.id, f.work_id, f.t_s FROM work_frames f JOIN works w ON w.id = f.work_id "
        "WHERE f.work_id = ANY(%s) AND w.status = 'active' ORDER BY f.id", (ids,)).fetchall()
    frame_ids = [r["id"] for r in frames]
    vectors = {name: conn.execute(
        "SELECT frame_id, vector FROM work_frame_signals WHERE frame_id = ANY(%s) "
        "AND signal = %s AND version = %s ORDER BY frame_id",
        (frame_ids, name, signal.version)).fetchall() for name, signal in signals.items()}
    return frame_rows(frames, "work_id", vectors, signals)


def insert_synthetic(conn: psycopg.Connection, *, works: list[dict[str, Any]],
                     t_s: np.ndarray, per_work: np.ndarray,
                     vectors: Mapping[str, tuple[str, np.ndarray]]) -> int:
    """Bulk-insert benchmark works and their frames (no local features): works' rows, then
    per_work[i] frames of works[i] at t_s, with vectors[signal] = (version, (n, d) rows) in the
    order of the frames. COPY and unnest, not a statement a row: a million frames in minutes."""
    with conn.cursor() as cur:
        with cur.copy("COPY works (id, owner, title, policy, kind, filename, sha256, size_bytes, "
                      "status) FROM STDIN") as cp:
            for w in works:
                cp.write_row((w["id"], w["owner"], w["title"], w["policy"], w["kind"],
                              w["filename"], w["sha256"], w["size_bytes"], "active"))
        owners = np.repeat(np.array([w["id"] for w in works], dtype=object), per_work)
        ids = [r["id"] for r in cur.execute(
            "INSERT INTO work_frames (work_id, t_s) SELECT * FROM unnest(%s::uuid[], "
            "%s::float8[]) RETURNING id", (owners.tolist(), t_s.tolist())).fetchall()]
        for name, (version, rows) in vectors.items():
            with cur.copy("COPY work_frame_signals (frame_id, signal, version, vector) "
                          "FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "text", "text", "bytea"])
                for frame_id, row in zip(ids, rows):
                    cp.write_row((frame_id, name, version, row.tobytes()))
    return len(ids)


def analyse(conn: psycopg.Connection) -> None:
    """Refresh the planner's statistics of the index's tables after a bulk load (autovacuum
    would, later)."""
    for table in ("works", "work_frames", "work_frame_signals"):
        conn.execute(f"ANALYZE {table}")
