"""The process's live FAISS index, kept at the database's index version.

Every search first reads the version from PostgreSQL (one tiny query). When the index in memory
is behind, the changes in between are read from the change log (index_changes, one row per
version, written with it) and applied: an add reads only the added work's frames and puts them in
the index's small delta, a removal tombstones its frames. The result is a new index object,
published whole once every change applied, so a search running meanwhile keeps the one it has
and nobody ever sees half a change; the version it reports is the version it holds. A process
with no index in memory loads the saved file and catches up from its version the same way.

The whole index is rebuilt from PostgreSQL (the recovery path) only when it must be: no index in
memory and no usable file, another epoch, other signal versions, a gap the pruned log no longer
covers, a re-embedding, or a delta that failed to apply. Past a size the delta and tombstones are
folded into new main indexes by a background thread (compaction), and `follow_changes` polls the
version so that changes are applied before the next check needs them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import psycopg

from clipgate import db, metrics
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import signals, store
from index.faiss_index import FrameIndex, FrameRows
from index.milvus import MilvusVectors, ping
from index.signals import Signal
from index.vectors import VectorConfig, VectorIndex, train_size
from index.vectors import compressed as compressed_vectors

log = logging.getLogger(__name__)

INDEX_FILE = "frames.npz"

_lock = threading.Lock()
_live: dict[str, FrameIndex] = {}  # keyed by index file path, so tests with several data dirs work
_compacting: set[str] = set()  # keys with a compaction running
# How this process came by its indexes: what the tests and `bench protect` read (stats()).
STATS = ("builds", "loads", "deltas", "changes", "compactions", "delta_failures")
_stats: Counter = Counter()

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


def _matches(index: FrameIndex, active: Mapping[str, Signal],
             config: VectorConfig | None = None) -> bool:
    """An index serves this process when it holds every active signal's vectors in the version
    the process computes (extra signals are ignored), and its float signals on the configured
    backend."""
    milvus = (config or VectorConfig()).backend == "milvus"
    backends = index.backends
    return all(index.spaces.get(n) == s.version for n, s in active.items()) and all(
        (backends.get(n) == "milvus") == milvus for n, s in active.items() if s.kind == "float")


def sync(settings: Settings | None = None) -> FrameIndex:
    """The live index, at the database's current version (or newer)."""
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
    config = VectorConfig.from_settings(settings)
    with _lock:
        current = _live.get(key)
        if current is not None and current.epoch == want[1] and current.version >= want[0] \
                and _matches(current, active, config):
            return current  # (newer than we read: another thread caught up meanwhile)
        base = current if _behind(current, want, active, config) else None
        if base is None and path.exists():
            try:
                loaded = FrameIndex.load(path, config)
                if _behind(loaded, want, active, config):
                    base = loaded
                    _stats["loads"] += 1
            except Unavailable:
                raise  # Milvus down: a rebuild would fail the same way
            except Exception as e:  # any damage to a cache file means: rebuild it
                log.warning("index file %s unreadable (%s); rebuilding from the database", path, e)
        if base is not None:
            updated = base if base.version == want[0] else _catch_up(settings, base, active)
            if updated is not None:
                _live[key] = updated
                _compact_if_due(settings, key, updated)
                return updated
        _live[key] = _build(settings, active)
        return _live[key]


def _behind(index: FrameIndex | None, want: tuple[int, str], active: Mapping[str, Signal],
            config: VectorConfig | None = None) -> bool:
    """index can be brought to want by the change log: same epoch and signals, not ahead."""
    return (index is not None and index.epoch == want[1] and index.version <= want[0]
            and _matches(index, active, config))


def _catch_up(settings: Settings, base: FrameIndex, active: Mapping[str, Signal]
              ) -> FrameIndex | None:
    """base with the change log's changes since its version applied, or None when they cannot
    be (pruned log, re-embedding, or any failure): the caller rebuilds."""
    t0 = time.perf_counter()
    try:
        with db.connection(settings) as conn:
            # One snapshot: the log, the added frames and the version we tag them with agree.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            state = store.index_state(conn)
            target = int(state["version"])
            if state["epoch"] != base.epoch:
                return None
            rows = store.changes(conn, epoch=base.epoch, after=base.version, upto=target)
            if len(rows) != target - base.version:
                log.info("the change log no longer holds versions %d to %d; rebuilding",
                         base.version + 1, target)
                return None
            if any(r["kind"] == "rebuild" for r in rows):
                return None  # a re-embedding or bulk load: wholesale
            for r in rows:
                if r["kind"] in ("add", "remove") and r["work_id"] is None:
                    raise ValueError(f"change log row {r['version']} ({r['kind']}) names no work")
            check_versions(conn, {n: s.version for n, s in active.items()})
            added = [r["work_id"] for r in rows if r["kind"] == "add"]
            frames = store.work_frames(conn, work_ids=added, signals=active)
        changes: list[tuple[str, Any]] = []
        for r in rows:
            if r["kind"] == "add":
                changes.append(("add", frames.subset(frames.work_ids == r["work_id"])))
            elif r["kind"] == "remove":
                changes.append(("remove", r["work_id"]))
            elif r["kind"] != "policy":  # a policy change moves the version, not the content
                raise ValueError(f"unknown change {r['kind']!r} at version {r['version']}")
        updated = base.with_changes(target, changes)
    except Unavailable:
        raise  # the database or a model is down: a rebuild would fail the same way
    except psycopg.OperationalError as e:
        raise db.unreachable(e) from e
    except Exception as e:
        # Whatever went wrong, nothing was published: rebuild from the database.
        log.warning("index changes after version %d could not be applied (%s); rebuilding",
                    base.version, e)
        _stats["delta_failures"] += 1
        return None
    _stats["deltas"] += 1
    _stats["changes"] += len(rows)
    log.info("index %d -> %d: %d changes applied in %.3f s (delta %d frames, %d tombstones)",
             base.version, target, len(rows), time.perf_counter() - t0, updated.delta_frames,
             updated.tombstones)
    return updated


def apply_change(
    settings: Settings, version: int, *, added: FrameRows | None = None, removed: str | None = None
) -> None:
    """Apply a change this process just committed, from the rows it has in memory, if the live
    index is exactly one version behind; otherwise leave it, and the next sync applies the log.
    The saved file is only a cache, so it is not rewritten for every change."""
    with _lock:
        key = str(settings.index_dir / INDEX_FILE)
        current = _live.get(key)
        if current is None or current.version != version - 1:
            return
        changes: list[tuple[str, Any]] = []
        if added is not None:
            changes.append(("add", added))
        if removed is not None:
            changes.append(("remove", removed))
        try:
            _live[key] = current.with_changes(version, changes)
        except Exception as e:  # the old index stays; the next sync applies the log
            log.warning("could not apply change %d in place (%s)", version, e)
            return
        _stats["changes"] += len(changes)
        _compact_if_due(settings, key, _live[key])


def unload() -> None:
    """Forget every loaded index: the next search loads it again from disk and PostgreSQL (as a
    new process would)."""
    with _lock:
        _live.clear()


def held(settings: Settings | None = None) -> FrameIndex | None:
    """The index this process holds now for settings' data directory, as it is (no sync)."""
    settings = settings or get_settings()
    with _lock:
        return _live.get(str(settings.index_dir / INDEX_FILE))


def stats() -> dict[str, int]:
    """How this process came by its indexes since it started: builds (whole, from the
    database), loads (of the saved file), deltas (catch-ups from the change log) and the changes
    they applied, compactions, and deltas that failed (each followed by a build)."""
    with _lock:
        return {k: int(_stats[k]) for k in STATS}


def compact(settings: Settings | None = None) -> dict[str, Any]:
    """Fold the live index's delta and tombstones into new main indexes now (a background thread
    does it past index_delta_max_frames / index_max_tombstones), and save it. Searches keep
    running on the old one meanwhile."""
    settings = settings or get_settings()
    key = str(settings.index_dir / INDEX_FILE)
    with _lock:
        index = _live.get(key)
    if index is None:
        return {"compacted": False}
    return _compact(settings, key, index)


def _compact_if_due(settings: Settings, key: str, index: FrameIndex) -> None:
    """Under _lock: start a background compaction when the delta or the tombstones grew past
    their limits (and none runs for this index yet)."""
    if key in _compacting or (index.delta_frames <= settings.index_delta_max_frames
                              and index.tombstones <= settings.index_max_tombstones):
        return
    _compacting.add(key)
    threading.Thread(target=_compact_in_background, args=(settings, key, index), daemon=True,
                     name="index-compaction").start()


def _compact_in_background(settings: Settings, key: str, index: FrameIndex) -> None:
    try:
        _compact(settings, key, index)
    except Exception as e:  # the delta keeps serving; the next change tries again
        log.error("index compaction failed: %s", e)
    finally:
        with _lock:
            _compacting.discard(key)


def _compact(settings: Settings, key: str, base: FrameIndex) -> dict[str, Any]:
    t0 = time.perf_counter()
    compacted = base.compacted()  # the slow part, outside the lock: searches go on
    with _lock:
        now = _live.get(key)
        # Changes published meanwhile are carried over onto the new main indexes.
        published = compacted if now is base else (
            compacted.rebased(base, now) if now is not None else None)
        if published is not None:
            _live[key] = published
            _stats["compactions"] += 1
    if published is not None:
        try:  # a file at base's version: a new process loads it and applies the log since
            compacted.save(settings.index_dir / INDEX_FILE)
        except OSError as e:
            log.warning("could not save the index to %s: %s", settings.index_dir, e)
    return {"compacted": published is not None, "version": base.version,
            "frames": base.frames, "seconds": round(time.perf_counter() - t0, 3)}


class ChangeFollower:
    """A daemon thread that brings this process's index to the database's version every
    index_poll_s seconds, once the process holds an index (it never loads one by itself)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="index-follower")
        self._thread.start()

    def _run(self) -> None:
        key = str(self.settings.index_dir / INDEX_FILE)
        while not self._stop.wait(self.settings.index_poll_s):
            with _lock:
                held = key in _live
            if not held:
                continue
            try:
                sync(self.settings)
            except Exception as e:  # the next search says so; keep following
                log.debug("index follower: %s", e)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


def follow_changes(settings: Settings | None = None) -> ChangeFollower | None:
    """Poll the index version (one one-row query every CLIPGATE_INDEX_POLL_S) and apply changes
    as they come, so a check after a change finds them applied; None when the poll is off.
    A poll, not LISTEN/NOTIFY: it needs no connection held open per process (nor a session-mode
    pooler), cannot miss a notification, and a second is well inside the time to protect."""
    settings = settings or get_settings()
    if settings.index_poll_s <= 0:
        return None
    return ChangeFollower(settings)


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
        "works": index.work_count,
        "frames": index.frames,
        "signals": {n: index.count(n) for n in index.native},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _build(settings: Settings, active: Mapping[str, Signal]) -> FrameIndex:
    """The whole index from the database (under _lock): the recovery path."""
    _stats["builds"] += 1
    config = VectorConfig.from_settings(settings)
    with db.connection(settings) as conn:
        # One snapshot: the frames and the version we tag them with must agree.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = store.index_state(conn)
        check_versions(conn, {n: s.version for n, s in active.items()})
        # Float signals compressed on FAISS are read twice, a batch at a time: a sample to
        # train on, then every vector into the trained index. Read whole, 10M frames' SSCD
        # vectors are 20 GB (and this machine has 24).
        large = {n: count for n, s in active.items()
                 if s.kind == "float" and config.backend == "faiss"
                 and (count := store.active_vector_count(conn, s)) >= config.compress_from}
        rows = store.all_active_frames(conn, signals=active, without=large)
        trained = {n: _trained(conn, active[n], count, config) for n, count in large.items()}
        index = FrameIndex.build(active, int(state["version"]), state["epoch"], rows,
                                 config=config, trained=trained)
        for name in large:
            for part in store.active_vector_batches(conn, active[name]):
                index.add_vectors(name, part)
    if config.backend == "milvus":
        _resync_shared(settings, index, rows)
    try:
        index.save(settings.index_dir / INDEX_FILE)
    except OSError as e:  # the file is only a cache: serve from memory, say so
        log.warning("could not save the index to %s: %s", settings.index_dir, e)
    log.info("index built at version %d: %d frames", index.version, index.frames)
    return index


def _trained(conn: psycopg.Connection, signal: Signal, count: int, config: VectorConfig
             ) -> VectorIndex:
    """An empty compressed index for count vectors of the signal, trained on a sample of them
    (frames whose id is a multiple of a step: about train_size of them), room reserved."""
    want = train_size(count, config)
    sample = [p.vectors for p in store.active_vector_batches(conn, signal,
                                                             every=max(1, count // want))]
    if sum(len(p) for p in sample) < want // 2:  # ids with a stride of their own: take the first
        sample = []
        for part in store.active_vector_batches(conn, signal):
            sample.append(part.vectors)
            if sum(len(p) for p in sample) >= want:
                break
    train = np.concatenate(sample)[:want]
    out = compressed_vectors(signal.dim, train, config, count)
    out.reserve(count)
    return out


def health(settings: Settings | None = None) -> dict[str, Any]:
    """The index and every signal: ok, versions, how many frames have each signal's vectors
    (fewer than all: works registered before the signal existed; `index rebuild --reembed`)."""
    settings = settings or get_settings()
    config = VectorConfig.from_settings(settings)
    backend = ping(config) if config.backend == "milvus" else {"backend": "faiss", "ok": True}
    if not backend["ok"]:  # say which backend is down, not only that the index is
        return {"ok": False, "error": backend["error"], "vectors": backend}
    try:
        index = sync(settings)
        out: dict[str, Any] = {
            "ok": True,
            "vectors": {**backend, "signals": index.describe()},
            "version": index.version,
            "frames": index.frames,
            "works": index.work_count,
            "signals": {n: {"version": v, "frames": index.count(n)}
                        for n, v in index.spaces.items()},
            # Changes applied since the main indexes were made (compaction folds them in).
            "delta_frames": index.delta_frames,
            "tombstones": index.tombstones,
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
        return {"ok": False, "error": str(e), "vectors": backend}



def _index_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """This process's index: its version, works, and frames per signal (for /metrics)."""
    h = health(settings)
    if not h["ok"]:
        raise Unavailable(f"index not usable: {h.get('error')}")
    yield ("clipgate_index_version", "Version of the index this process searches", {}, h["version"])
    yield ("clipgate_index_works", "Protected works in the index", {}, h["works"])
    yield ("clipgate_index_frames", "Frames in the index, in all and per signal",
           {"signal": "all"}, h["frames"])
    for name, s in h["signals"].items():
        yield ("clipgate_index_frames", "Frames in the index, in all and per signal",
               {"signal": name}, s["frames"])


metrics.gauge_source("index", _index_gauges)

# -- the shared backend (Milvus): written by the process that makes a change -------------------
def write_shared(settings: Settings, rows: FrameRows) -> None:
    """Write frames being registered to the shared vector index (Milvus), inside the
    registration's transaction, before its commit (index/milvus.py says why). Raises
    Unavailable when Milvus refuses: the caller's transaction then rolls back. A no-op on FAISS."""
    config = VectorConfig.from_settings(settings)
    if config.backend != "milvus" or not len(rows):
        return
    for name, signal in signals.active(settings).items():
        part = rows.vectors.get(name)
        if signal.kind == "float" and part is not None and len(part):
            lookup = dict(zip(rows.ids.tolist(), rows.work_ids.tolist()))
            works = np.array([lookup[i] for i in part.ids.tolist()], "U36")
            MilvusVectors(config, name, signal.version, signal.dim).add(
                part.vectors, part.ids, works)


def remove_shared(settings: Settings, work_id: str) -> None:
    """Delete a removed work's rows from the shared vector index, after the removal committed.
    A failure only logs: every process drops frames its map no longer holds, and a rebuild
    deletes the rows."""
    config = VectorConfig.from_settings(settings)
    if config.backend != "milvus":
        return
    try:
        for name, signal in signals.active(settings).items():
            if signal.kind == "float":
                MilvusVectors(config, name, signal.version, signal.dim).remove_work(work_id)
    except Exception as e:
        log.warning("could not delete work %s from milvus (%s); a rebuild will", work_id, e)


def _resync_shared(settings: Settings, index: FrameIndex, rows: FrameRows) -> None:
    """Bring the shared collections to the database (the rebuild's recovery path): insert the
    frames they lack, then, with no registration in flight (a share lock on the index state,
    which each registration holds for update until it commits), delete the rows whose frames
    the database no longer holds. Frames registered meanwhile are never deleted. Collections
    of the signal's other versions (left by a re-embedding) are dropped."""
    for name, shared in index.native.items():
        if not isinstance(shared, MilvusVectors):
            continue
        part = rows.vectors.get(name)
        want = part.ids if part is not None else np.zeros(0, np.int64)
        have = shared.ids()
        missing = ~np.isin(want, have)
        if missing.any():
            lookup = dict(zip(rows.ids.tolist(), rows.work_ids.tolist()))
            shared.add(part.vectors[missing], want[missing],
                       np.array([lookup[i] for i in want[missing].tolist()], "U36"))
        if missing.sum() > 10_000:  # a bulk load: seal it, so it is searched by the index
            shared.flush()
        extra = np.setdiff1d(have, want)
        if len(extra):
            with db.connection(settings) as conn:
                store.index_state(conn, share=True)
                gone = np.setdiff1d(extra, store.existing_frames(conn, frame_ids=extra.tolist()))
                shared.remove(gone)
        log.info("milvus %s re-synced: %d inserted, %d deleted", shared.name,
                 int(missing.sum()), len(extra))
        # The database holds this version's vectors (check_versions passed for this build):
        # collections of other versions are stale, and would otherwise stay for good.
        shared.drop_other_versions(name)
