"""The process's live FAISS index, kept at the database's index version.

Every search first reads the version from PostgreSQL (one tiny query). If the in-memory index is
behind, it is reloaded from the saved file when that file is at the right version (and holds the
vectors of the signals this process computes), and rebuilt from the database otherwise. So any
number of API processes and workers agree on what matches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import psycopg

from clipgate import db
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import signals, store
from index.faiss_index import FrameIndex, FrameRows
from index.signals import Signal

log = logging.getLogger(__name__)

INDEX_FILE = "frames.npz"

_lock = threading.Lock()
_live: dict[str, FrameIndex] = {}  # keyed by index file path, so tests with several data dirs work

REEMBED = "clipgate index rebuild --reembed"


def check_versions(conn: psycopg.Connection, versions: Mapping[str, str]) -> None:
    """Vectors of two models (or weights) are not comparable: refuse to mix them. versions: the
    signal versions this process computes. A stored version that differs is refused while any
    frame still has vectors of it."""
    stored = store.signal_versions(conn)
    for name, version in versions.items():
        if name in stored and stored[name] != version and store.signal_frames(conn, signal=name):
            raise Unavailable(
                f"the index holds {name} vectors of {stored[name]}, but this process computes "
                f"{version}; configure the same model, or run `{REEMBED}` to describe every "
                "work again with this one")


def record_versions(conn: psycopg.Connection, versions: Mapping[str, str]) -> None:
    """After check_versions: the stored vectors of these signals are of these versions."""
    stored = store.signal_versions(conn)
    for name, version in versions.items():
        if stored.get(name) != version:
            store.set_signal_version(conn, signal=name, version=version)


def _matches(index: FrameIndex, active: Mapping[str, Signal], votes: bool) -> bool:
    """An index serves this process when it holds every active signal's vectors in the version
    the process computes (extra signals are ignored), and a vote index if votes are on."""
    return all(index.spaces.get(n) == s.version for n, s in active.items()) and (
        index.orb is not None or not votes)


def sync(settings: Settings | None = None) -> FrameIndex:
    """The live index, at the database's current version."""
    settings = settings or get_settings()
    active = signals.active(settings)  # raises Unavailable when a model cannot be loaded
    path = settings.index_dir / INDEX_FILE
    key = str(path)
    try:
        with db.connection(settings) as conn:
            state = store.index_state(conn)
    except psycopg.Error as e:
        raise db.unreachable(e) from e
    want = (int(state["version"]), state["epoch"])
    votes = settings.orb_vote_index
    with _lock:
        current = _live.get(key)
        if current is not None and (current.version, current.epoch) == want and _matches(
                current, active, votes):
            return current
        if path.exists():
            try:
                loaded = FrameIndex.load(path)
                if (loaded.version, loaded.epoch) == want and _matches(loaded, active, votes):
                    _live[key] = loaded
                    return loaded
            except Exception as e:  # any damage to a cache file means: rebuild it
                log.warning("index file %s unreadable (%s); rebuilding from the database", path, e)
        _live[key] = _build(settings, active)
        return _live[key]


def apply_change(
    settings: Settings, version: int, *, added: FrameRows | None = None, removed: str | None = None
) -> None:
    """Apply a change this process just committed, if the live index is exactly one version
    behind; otherwise leave it, and the next sync reloads. The saved file is only a cache, so it is
    not rewritten for every change."""
    with _lock:
        key = str(settings.index_dir / INDEX_FILE)
        current = _live.get(key)
        if current is None or current.version != version - 1:
            return
        changed = current.copy()  # searches running now keep the old one, untouched
        if added is not None:
            changed.add(added)  # a new work's pictures also leave the background
        if removed is not None:
            changed.remove_work(removed)
        changed.version = version
        _live[key] = changed


def unload() -> None:
    """Forget every loaded index: the next search loads it again from disk and PostgreSQL (as a
    new process would)."""
    with _lock:
        _live.clear()


def rebuild(settings: Settings | None = None) -> dict[str, Any]:
    """Rebuild the index from the database and save it. Returns what was built."""
    settings = settings or get_settings()
    active = signals.active(settings)
    t0 = time.perf_counter()
    with _lock:
        index = _build(settings, active)
        _live[str(settings.index_dir / INDEX_FILE)] = index
    return {
        "version": index.version,
        "works": len(index.work_ids),
        "frames": index.frames,
        "signals": {n: index.native[n].ntotal for n in index.native},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _build(settings: Settings, active: Mapping[str, Signal]) -> FrameIndex:
    with db.connection(settings) as conn:
        # One snapshot: the frames and the version we tag them with must agree.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = store.index_state(conn)
        check_versions(conn, {n: s.version for n, s in active.items()})
        rows = store.all_active_frames(conn, signals=active)
        if settings.orb_vote_index:
            feats = store.frame_features(conn, frame_ids=rows.ids.tolist())
    if settings.orb_vote_index:
        empty = np.zeros((0, 32), np.uint8)
        rows.descriptors = [feats[i].descriptors if i in feats else empty
                            for i in rows.ids.tolist()]
    index = FrameIndex.build(active, int(state["version"]), state["epoch"], rows,
                             votes=settings.orb_vote_index)
    try:
        index.save(settings.index_dir / INDEX_FILE)
    except OSError as e:  # the file is only a cache: serve from memory, say so
        log.warning("could not save the index to %s: %s", settings.index_dir, e)
    log.info("index built at version %d: %d frames", index.version, index.frames)
    return index


def health(settings: Settings | None = None) -> dict[str, Any]:
    """The index and every signal: ok, versions, how many frames have each signal's vectors
    (fewer than all: works registered before the signal existed; `index rebuild --reembed`)."""
    settings = settings or get_settings()
    try:
        index = sync(settings)
        out: dict[str, Any] = {
            "ok": True,
            "version": index.version,
            "frames": index.frames,
            "works": len(index.work_ids),
            "signals": {n: {"version": v, "frames": index.native[n].ntotal}
                        for n, v in index.spaces.items()},
        }
        missing = {n: index.frames - s["frames"] for n, s in out["signals"].items()
                   if s["frames"] < index.frames}
        if missing:
            out["warning"] = (
                "some frames lack vectors of " + ", ".join(f"{n} ({k})" for n, k in
                                                           missing.items())
                + f": works registered before those signals existed; run `{REEMBED}`")
        return out
    except Exception as e:  # health reports, never raises
        return {"ok": False, "error": str(e)}
