"""Synthetic catalogues for benchmarks: works whose frames carry random vectors of every active
signal (unit vectors for float signals, random bits for hashes) and no local features.

They stand in for a large catalogue where registering real media would take days: what they
measure is the index's cost (loading, memory, search, how changes propagate), not matching
quality; no real clip matches them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from clipgate import db
from clipgate.settings import Settings, get_settings
from index import live, signals, store

OWNER = "synthetic"


def seed_synthetic(
    settings: Settings | None = None, *, frames: int, frames_per_work: int = 10, seed: int = 0,
    chunk: int = 20_000, progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Add synthetic works until the catalogue holds at least `frames` frames, `chunk` frames a
    transaction. Each chunk moves the index version as a wholesale change ("rebuild" in the
    change log): processes rebuild rather than apply it. Returns the frames before and after."""
    settings = settings or get_settings()
    active = signals.active(settings)
    versions = {n: s.version for n, s in active.items()}
    with db.connection(settings) as conn:
        before = store.count_frames(conn)
    done = before
    rng = np.random.default_rng(seed + before)
    while done < frames:
        n = min(chunk, frames - done)
        n_works = -(-n // frames_per_work)
        per_work = np.full(n_works, frames_per_work)
        per_work[-1] = n - frames_per_work * (n_works - 1)
        works = [{"id": uuid.uuid4(), "owner": OWNER, "title": f"synthetic work {done + i}",
                  "policy": "block", "kind": "video", "filename": "synthetic.mp4",
                  "sha256": uuid.uuid4().hex * 2, "size_bytes": 0} for i in range(n_works)]
        t_s = np.concatenate([np.arange(k, dtype=np.float64) for k in per_work])
        vectors = {}
        for name, signal in active.items():
            if signal.kind == "float":
                v = rng.standard_normal((n, signal.dim)).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
            else:
                v = rng.integers(0, 256, (n, signal.dim // 8), dtype=np.uint8)
            vectors[name] = (signal.version, v)
        with db.connection(settings) as conn:
            store.index_state(conn, lock=True)
            live.check_versions(conn, versions)
            done += store.insert_synthetic(conn, works=works, t_s=t_s, per_work=per_work,
                                           vectors=vectors)
            live.record_versions(conn, versions)
            store.bump_version(conn, kind="rebuild", keep=settings.index_change_log_keep)
        progress(done, frames)
    if done > before:
        with db.connection(settings) as conn:
            store.analyse(conn)
    return {"frames_before": before, "frames": done}
