"""The FAISS side of the index: one searchable index per signal over every frame of every active
work.

Each signal's vectors go into the index its kind suits (signals/base.py: exact inner product for
floats, Hamming for packed bits). Only these compact global descriptors are held in memory: the
ORB features of work frames stay in PostgreSQL and are read for the candidate frames of a query
(search.py), so memory grows by tens of bytes a frame, not by the 32 KB of a frame's keypoints.

FAISS wants integer ids, so each vector's id is its work_frames row id, and `meta` (a FrameMap:
numpy arrays, about 24 bytes a frame, not a dict's 250) maps it back to (work, time). The index
is derived data: PostgreSQL holds the truth, this file is a cache of it tagged with the index
version it was built at and the version of each signal's vectors.

Changes after a build do not copy the main indexes: a new version shares them, with the frames
added since in a small exact delta and the frames removed since as tombstones (live.py applies
the change log this way), until compaction folds both into new main indexes. A delta rather than
add_with_ids on the main index: the main index of a published version must never change under a
search, so adding to it would mean copying it (gigabytes at a million frames) for every change,
and an IVF-PQ or HNSW main index (issue 13's large tier) cannot take removals cheaply or at all.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index import vectors as vec
from index.frame_map import FrameMap
from index.milvus import MilvusVectors
from index.signals import Signal
from index.vectors import VectorConfig, VectorIndex
from index.signals.background import kept as kept_background

log = logging.getLogger(__name__)

BACKGROUND_SLICE = 20_000  # frames per slice when leaving out background pictures near them


@dataclass
class SignalRows:
    """One signal's vectors for some frames: ids (n,) int64 frame ids, vectors (n, d)."""

    ids: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class FrameRows:
    """Frames to add: ids (n,) int64, work_ids (n,) str, t_s (n,) float64, and per signal the
    vectors of those frames that have them (a work registered before a signal existed has
    none of it until `index rebuild --reembed`)."""

    ids: np.ndarray
    work_ids: np.ndarray
    t_s: np.ndarray
    vectors: dict[str, SignalRows] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> FrameRows:
        """The rows where mask (n,) bool is true, with their vectors."""
        return _subset(self, np.asarray(mask, bool))


def frame_rows(frames: Sequence[Mapping[str, Any]], owner: str,
               vectors: Mapping[str, Sequence[Mapping[str, Any]]],
               signals: Mapping[str, Signal]) -> FrameRows:
    """FrameRows from database rows: frames with id, t_s and the owner column (work or release
    id), and per signal its rows of (frame_id, vector) as stored by index.vector_rows."""
    out = FrameRows(
        ids=np.array([r["id"] for r in frames], dtype=np.int64),
        work_ids=np.array([str(r[owner]) for r in frames], dtype="U36"),
        t_s=np.array([r["t_s"] for r in frames], dtype=np.float64),
    )
    for name, found in vectors.items():
        out.vectors[name] = SignalRows(
            np.array([r["frame_id"] for r in found], dtype=np.int64),
            signals[name].decode(b"".join(r["vector"] for r in found), len(found)))
    return out


@dataclass(frozen=True)
class Hit:
    """One indexed frame that a query frame is close to, by one signal."""

    query: int  # the query frame
    frame_id: int
    signal: str
    value: float  # a float signal's (normalised) score, a hash's distance, ORB's inlier count
    # Where in the clip frame the copy sits (0..1): ORB's placement, or the crop that matched.
    region: tuple[float, float, float, float] | None = None
    mirrored: bool = False  # the clip frame matched once mirrored left-right
    raw: float | None = None  # a float signal's cosine before normalisation


class FrameIndex:
    """A version of the index: per signal a FAISS index (all with frame ids), the map from frame
    id to (work, seconds) and background vectors for normalised signals.

    A published version is never changed. with_changes makes the next version: it shares the
    main indexes, keeps the frames added since in a small exact delta and the frames removed
    since as tombstones; compacted() folds both into new main indexes."""

    def __init__(
        self,
        version: int,
        epoch: str,
        spaces: Mapping[str, str],
        native: dict[str, object],
        *,
        meta: FrameMap | None = None,
        background: dict[str, np.ndarray] | None = None,
        config: VectorConfig | None = None,
    ) -> None:
        self.version = version
        # How float signals are searched (index/vectors.py): backend, compression, Milvus.
        self.config = config or VectorConfig()
        self.epoch = epoch  # the database's index_state.epoch this index was built from
        self.spaces = dict(spaces)  # signal -> version of its vectors in here
        # The main indexes. Once published they are never changed, so the versions that later
        # changes make share them (a change costs the size of the delta, not of the index).
        # A plain FAISS float index is wrapped: float signals are searched through VectorIndex.
        native = {n: vec.FaissVectors(i) if isinstance(i, faiss.Index) else i
                  for n, i in native.items()}
        self._main = _Tier(native)
        # frame id -> (work, seconds): layered as the indexes are (main, delta, tombstones).
        self.meta: FrameMap = meta if meta is not None else FrameMap.empty()
        # signal -> (b, d) background vectors (index/signals/background.py), and which rows are
        # kept: not those of a picture close to a work frame.
        self.background = background or {}
        self.kept: dict[str, np.ndarray] = {n: np.ones(len(b), bool)
                                            for n, b in self.background.items()}
        # Changes since the main indexes were made: frames added since (in small exact indexes,
        # rebuilt with each change) and frames of the main indexes removed since (tombstones,
        # filtered out of every answer) until compaction folds both into new main indexes.
        self._delta_rows = _empty_rows()
        self._delta: _Tier | None = None
        self._tombstones = np.zeros(0, np.int64)  # sorted frame ids
        # signal -> (the kept mask it was made from, how many rows it kept, those rows as one
        # contiguous (d, b) matrix): bias() runs on every search, and selecting the kept rows
        # anew each time cost several times the product itself. Masks only ever lose rows, so
        # the same mask with the same count is the same selection.
        self._kept_rows: dict[str, tuple[np.ndarray, int, np.ndarray]] = {}

    @property
    def native(self) -> dict[str, object]:
        """signal -> the main FAISS index (frames added since the last compaction are not in it)."""
        return self._main.native

    @property
    def delta_frames(self) -> int:
        """Frames added since the main indexes were made (searched in the delta)."""
        return len(self._delta_rows)

    @property
    def tombstones(self) -> int:
        """Frames removed from the main indexes since they were made (filtered out)."""
        return len(self._tombstones)

    def count(self, name: str) -> int:
        """How many frames have vectors of signal `name` in here. (A tombstone is counted
        against every signal: a removed frame without this signal's vector undercounts it.)"""
        if getattr(self._main.native[name], "shared", False):
            # A shared index (Milvus) also holds frames this version does not: count ours.
            return len(self.meta)
        delta = self._delta.native.get(name) if self._delta is not None else None
        return max(0, self._main.native[name].ntotal - len(self._tombstones)
                   + (delta.ntotal if delta is not None else 0))

    @property
    def backends(self) -> dict[str, str]:
        """float signal -> the kind of its main index: "flat", "compressed" or "milvus"."""
        return {n: i.kind for n, i in self.native.items() if isinstance(i, VectorIndex)}

    def describe(self) -> dict[str, dict[str, Any]]:
        """float signal -> what its main index is (backend, kind, parameters)."""
        return {n: i.describe() for n, i in self.native.items() if isinstance(i, VectorIndex)}

    @classmethod
    def build(cls, signals: Mapping[str, Signal], version: int, epoch: str, rows: FrameRows, *,
              config: VectorConfig | None = None,
              trained: Mapping[str, VectorIndex] | None = None) -> FrameIndex:
        """A new index over rows for these signals. Float signals go to config's backend: FAISS
        (flat, or compressed past config.compress_from rows) or Milvus (the collection is opened,
        not written: live.py re-syncs it). trained: empty indexes, already trained, for float
        signals whose vectors rows leaves out; the caller adds them with add_vectors."""
        config = config or VectorConfig()
        trained = trained or {}
        index = cls(version, epoch, {n: s.version for n, s in signals.items()},
                    {n: trained[n] if n in trained else _new_index(n, s, rows, config)
                     for n, s in signals.items()},
                    config=config)
        for name, signal in signals.items():
            bg = signal.background() if signal.kind == "float" else None
            if bg is not None and len(bg):
                index.background[name] = np.ascontiguousarray(bg, np.float32)
                index.kept[name] = np.ones(len(bg), bool)
        index.add(rows)
        return index

    @property
    def frames(self) -> int:
        return len(self.meta)

    @property
    def work_ids(self) -> set[str]:
        return self.meta.work_ids()

    @property
    def work_count(self) -> int:
        """len(work_ids), without a set of every work id."""
        return self.meta.work_count()

    def add(self, rows: FrameRows) -> None:
        """Add rows to the main indexes, in place: only on an index not yet published (a build,
        or a copy); published ones change through with_changes."""
        if not len(rows):
            return
        _add_to(self._main, rows)
        self.meta = self.meta.plus(rows.ids, rows.work_ids, rows.t_s)
        self._exclude_background(rows.vectors)

    def add_vectors(self, name: str, part: SignalRows) -> None:
        """Add one float signal's vectors of frames already added (add), in place, unpublished
        only: a rebuild reads a large signal's vectors a batch at a time, after the frames."""
        index = self._main.native[name]
        if isinstance(index, VectorIndex) and not index.shared and len(part):
            index.add(part.vectors, part.ids)
            self._exclude_background({name: part})

    def remove_work(self, work_id: str) -> int:
        """Remove a work's frames from the main indexes, in place (as add: unpublished only)."""
        ids = self.meta.frames_of(work_id)
        if len(ids):
            for index in self.native.values():
                if isinstance(index, VectorIndex):
                    if not index.shared:  # a shared index is changed by registry.py
                        index.remove(ids)
                else:
                    index.remove_ids(ids)
            self.meta = self.meta.minus(ids)
        return len(ids)

    def with_changes(self, version: int, changes: Sequence[tuple[str, Any]]) -> FrameIndex:
        """A new index at `version`: this one with changes applied in order, ("add", FrameRows)
        or ("remove", work id). This one is left as it is (a search running on it keeps it).
        The main indexes are shared, not copied: added frames go to the delta (rebuilt here, so
        its cost is the delta's size) and removed frames of the main indexes become tombstones.
        Any failure raises before anything is returned, so no half-applied index is ever seen."""
        new = FrameIndex.__new__(FrameIndex)
        new.version, new.epoch, new.spaces = version, self.epoch, self.spaces
        new._kept_rows, new.config = {}, self.config
        new._main, new.background = self._main, self.background
        new.meta, new.kept = self.meta, self.kept  # copied below only if something changes
        new._delta_rows, new._delta, new._tombstones = self._delta_rows, self._delta, \
            self._tombstones
        if not changes:
            return new
        new.kept = {n: k.copy() for n, k in self.kept.items()}
        meta, delta, tombstones = self.meta, self._delta_rows, self._tombstones
        for kind, arg in changes:
            if kind == "add":
                rows = _subset(arg, ~meta.contains(arg.ids))
                if not len(rows):
                    continue  # already in (an add seen twice): adding is idempotent
                delta = _concat([delta, rows])
                new._exclude_background(rows.vectors)
            elif kind == "remove":
                gone = meta.frames_of(str(arg))
                in_delta = np.isin(gone, delta.ids)
                delta = _subset(delta, ~np.isin(delta.ids, gone[in_delta]))
                tombstones = np.union1d(tombstones, gone[~in_delta])
            else:
                raise ValueError(f"unknown index change {kind!r}")
            # Each change sees the ones before it (an add then a removal of the same work).
            meta = meta.layered(_layer(delta), tombstones)
        new.meta, new._delta_rows, new._tombstones = meta, delta, tombstones
        new._delta = _delta_tier(self._main, delta) if len(delta) else None
        return new

    def compacted(self) -> FrameIndex:
        """The same content with the delta and the tombstones folded into new main indexes
        (copies: this index is left as it is). Costs a copy of the main indexes."""
        native: dict[str, object] = {}
        for n, i in self.native.items():
            if isinstance(i, VectorIndex):
                # Float signals: a flat index past config.compress_from becomes compressed here.
                part = self._delta_rows.vectors.get(n)
                native[n] = vec.compacted(
                    i, self._tombstones, part.ids if part is not None else np.zeros(0, np.int64),
                    part.vectors if part is not None else np.zeros((0, i.d), np.float32),
                    self.config)
            else:
                native[n] = _copy(i)
        tier = _Tier(native)
        if len(self._tombstones):
            selector = faiss.IDSelectorBatch(self._tombstones)
            for index in native.values():
                if not isinstance(index, VectorIndex):
                    index.remove_ids(selector)
        _add_to(tier, self._delta_rows, floats=False)
        out = FrameIndex.__new__(FrameIndex)
        out.version, out.epoch, out.spaces = self.version, self.epoch, self.spaces
        out._kept_rows, out.config = {}, self.config
        out._main, out.meta, out.background = tier, self.meta.folded(), self.background
        out.kept = self.kept
        out._delta_rows, out._delta, out._tombstones = _empty_rows(), None, np.zeros(0, np.int64)
        return out

    def rebased(self, base: FrameIndex, newer: FrameIndex) -> FrameIndex | None:
        """self is base.compacted(); newer was made from base by with_changes, meanwhile. The
        content of newer on self's main indexes, or None when newer does not descend from base
        (a rebuild in between): then there is nothing to rebase."""
        if newer._main is not base._main or newer.version < base.version:
            return None
        base_delta = base._delta_rows.ids
        out = FrameIndex.__new__(FrameIndex)
        out.version, out.epoch, out.spaces = newer.version, newer.epoch, newer.spaces
        out._kept_rows, out.config = {}, newer.config
        out._main, out.background, out.kept = self._main, newer.background, newer.kept
        out._delta_rows = _subset(newer._delta_rows, ~np.isin(newer._delta_rows.ids, base_delta))
        # Frames removed since base: tombstones of the old main, and frames of base's delta
        # (now in the new main).
        out._tombstones = np.union1d(
            np.setdiff1d(newer._tombstones, base._tombstones),
            np.setdiff1d(base_delta, newer._delta_rows.ids))
        out._delta = _delta_tier(self._main, out._delta_rows) if len(out._delta_rows) else None
        out.meta = self.meta.layered(_layer(out._delta_rows), out._tombstones)
        return out

    def _exclude_background(self, vectors: Mapping[str, SignalRows]) -> None:
        """Leave out the background pictures close to a frame just added: a protected work in
        the background would cancel its own matches. (A removed work's pictures stay out until
        the next rebuild: the safe side.)"""
        for name, bg in self.background.items():
            part = vectors.get(name)
            if part is None or not len(part) or not len(bg):
                continue
            # In slices: a (background, frames) product over a million frames is gigabytes.
            near = np.full(len(bg), -np.inf, np.float32)
            for lo in range(0, len(part), BACKGROUND_SLICE):
                chunk = np.asarray(part.vectors[lo:lo + BACKGROUND_SLICE], np.float32)
                near = np.maximum(near, (bg @ chunk.T).max(axis=1))
            self.kept[name] &= kept_background(bg, near)

    # -- search, per signal -------------------------------------------------------------------
    def nearest(self, name: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(q, k) cosines and frame ids (-1 past the end) of a float signal's k nearest frames."""
        index = self.native[name]
        delta = self._delta.native.get(name) if self._delta is not None else None
        live = self.count(name)
        k = min(k, max(1, live))
        if live == 0 or not len(vectors):
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        queries = np.ascontiguousarray(vectors, np.float32)
        if index.shared:
            return self._nearest_shared(index, queries, k)
        if delta is None and not len(self._tombstones):
            # A flat index searches on the GPU where there is one (index/gpu.py).
            return index.search(queries, k)
        sims, ids = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if index.ntotal:
            # Tombstoned frames may take places among the k nearest: ask for that many more
            # (compaction keeps them few), then drop them.
            kk = min(index.ntotal, k + len(self._tombstones))
            sims, ids = index.search(queries, kk)
            dead = np.isin(ids, self._tombstones)
            sims, ids = np.where(dead, -np.inf, sims), np.where(dead, -1, ids)
        if delta is not None and delta.ntotal:
            d_sims, d_ids = delta.search(queries, min(k, delta.ntotal))
            sims, ids = np.hstack([sims, d_sims]), np.hstack([ids, d_ids])
        return vec.best_k(sims, ids, k)

    def search_cost(self, name: str, queries: int) -> int:
        """About how many vectors a search of signal `name` for this many query rows compares:
        its main index's share (an IVF scans a few lists, an exact index every vector; a shared
        one searches elsewhere) and the exact delta."""
        index = self.native[name]
        delta = self._delta.native.get(name) if self._delta is not None else None
        extra = queries * delta.ntotal if delta is not None else 0
        if isinstance(index, VectorIndex):
            return (0 if index.shared else index.search_cost(queries)) + extra
        return queries * int(index.ntotal) + extra

    def _nearest_shared(self, index: VectorIndex, queries: np.ndarray, k: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """A shared index (Milvus) also holds frames this version does not: added by another
        process since (not yet applied here), removed since, or orphans of a failed commit. Keep
        only the frames of this version's map, asking for more to make up for those dropped."""
        kk = 2 * k + len(self._tombstones)
        sims, ids = index.search(queries, kk)
        dead = ~self.meta.contains(ids)
        return vec.best_k(np.where(dead, -np.inf, sims), np.where(dead, -1, ids), k)

    def within(self, name: str, codes: np.ndarray, radius: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A binary signal's frames within `radius` bits of each code: FAISS's (lims, distances,
        ids) of a range search."""
        index = self.native[name]
        codes = np.ascontiguousarray(codes, np.uint8)
        # range_search's radius is exclusive.
        lims, dist, ids = index.range_search(codes, radius + 1)
        delta = self._delta.native.get(name) if self._delta is not None else None
        if delta is None and not len(self._tombstones):
            return lims, dist, ids
        parts = [(lims, dist, ids)]
        if delta is not None:
            parts.append(delta.range_search(codes, radius + 1))
        out_lims, out_dist, out_ids = [0], [], []
        for q in range(len(codes)):
            for p_lims, p_dist, p_ids in parts:
                out_dist.append(p_dist[p_lims[q]:p_lims[q + 1]])
                out_ids.append(p_ids[p_lims[q]:p_lims[q + 1]])
            got = np.concatenate(out_ids[-len(parts):])
            out_lims.append(out_lims[-1] + len(got))
        all_dist = np.concatenate(out_dist) if out_dist else np.zeros(0, np.int32)
        all_ids = np.concatenate(out_ids) if out_ids else np.zeros(0, np.int64)
        keep = ~np.isin(all_ids, self._tombstones)
        # Recount each query's share after dropping the tombstones.
        owner = np.repeat(np.arange(len(codes)), np.diff(out_lims))
        counts = np.bincount(owner[keep], minlength=len(codes))
        new_lims = np.concatenate([[0], np.cumsum(counts)]).astype(lims.dtype)
        return new_lims, all_dist[keep], all_ids[keep]

    def bias(self, name: str, vectors: np.ndarray) -> np.ndarray:
        """(q,) what normalisation adds to each row's scores: minus its cosine to the nearest
        background vector (0 for a signal without background)."""
        bg = self.background.get(name)
        if bg is None or not self.kept[name].any() or not len(vectors):
            return np.zeros(len(vectors), np.float32)
        mask = self.kept[name]
        count = int(mask.sum())
        cached = self._kept_rows.get(name)
        if cached is None or cached[0] is not mask or cached[1] != count:
            cached = self._kept_rows[name] = (mask, count, np.ascontiguousarray(bg[mask].T))
        return -(np.asarray(vectors, np.float32) @ cached[2]).max(axis=1)

    def copy(self) -> FrameIndex:
        """An independent copy, compacted (no delta, no tombstones): changes are made to a copy
        and then published, so a search in another thread never sees an index being changed
        under it."""
        source = self if self._delta is None and not len(self._tombstones) else self.compacted()
        copied = FrameIndex(source.version, source.epoch, source.spaces,
                            {n: _copy(i) for n, i in source.native.items()},
                            meta=source.meta, background=dict(source.background),
                            config=source.config)
        copied.kept = {n: k.copy() for n, k in source.kept.items()}
        return copied

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one. An
        index with a delta or tombstones is written compacted."""
        if self._delta is not None or len(self._tombstones):
            self.compacted().save(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for n, i in self.native.items():
            if isinstance(i, vec.FaissVectors) and i.refine is not None:
                # A compressed index with re-scoring codes: its parts as arrays of their own
                # ("index_{n}" is the index alone), so the codes are written, not copied.
                parts = i.file_arrays()
                arrays[f"index_{n}"] = np.concatenate([np.zeros(1, np.uint8), parts.pop("index")])
                arrays.update({f"index_{n}_{k}": a for k, a in parts.items()})
            else:
                arrays[f"index_{n}"] = _serialise(i)
        arrays.update({f"background_{n}": v for n, v in self.background.items()})
        arrays.update({f"kept_{n}": k for n, k in self.kept.items()})
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    version=np.int64(self.version),
                    epoch=np.array(self.epoch),
                    spaces=np.array(json.dumps(self.spaces)),
                    **{f"frame_{k}": a for k, a in self.meta.arrays().items()},
                    **arrays,
                )
                f.flush()
                os.fsync(f.fileno())  # never an empty file under the final name after a crash
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, config: VectorConfig | None = None) -> FrameIndex:
        """The index saved at path; config: how to reach a shared index (Milvus) it names."""
        config = config or VectorConfig()
        with np.load(path, allow_pickle=False) as z:
            spaces = json.loads(str(z["spaces"]))
            native = {n: _deserialise(z[f"index_{n}"], config, n, spaces[n]) if
                      f"index_{n}_codes" not in z else vec.from_file_arrays(
                          {"index": z[f"index_{n}"][1:],
                           **{k: z[f"index_{n}_{k}"] for k in ("sq", "ids", "codes")}}, config)
                      for n in spaces}
            background = {n: np.array(z[f"background_{n}"]) for n in spaces
                          if f"background_{n}" in z}
            if "frame_ids" in z:
                meta = FrameMap.from_arrays(z["frame_ids"], z["frame_work"], z["frame_t_s"],
                                            z["frame_works"])
            else:  # a file from before the map was arrays: a work id per frame
                meta = FrameMap.of(z["ids"], z["work_ids"], z["t_s"])
            index = cls(int(z["version"]), str(z["epoch"]), spaces, native, meta=meta,
                        background=background, config=config)
            index.kept.update({n: np.array(z[f"kept_{n}"]) for n in background
                               if f"kept_{n}" in z})
            return index


def _serialise(index: object) -> np.ndarray:
    # uint8 throughout: a Python [0] in the concatenation made it int64, 8 bytes a byte (16 GB
    # for the 2 GB of a million SSCD vectors).
    if isinstance(index, VectorIndex):
        if index.shared:  # kept elsewhere (Milvus): the file says only that, and its width
            return np.concatenate([np.full(1, 2, np.uint8),
                                   np.frombuffer(json.dumps({"dim": index.d}).encode(), np.uint8)])
        return np.concatenate([np.zeros(1, np.uint8), vec.FaissVectors.to_bytes(index)])
    if isinstance(index, faiss.IndexBinary):
        return np.concatenate([np.ones(1, np.uint8), faiss.serialize_index_binary(index)])
    return np.concatenate([np.zeros(1, np.uint8), faiss.serialize_index(index)])


def _deserialise(data: np.ndarray, config: VectorConfig, name: str = "", version: str = ""
                 ) -> object:
    body = np.ascontiguousarray(data[1:])
    if data[0] == 2:
        if config.backend != "milvus":  # saved when the backend was milvus: the caller rebuilds
            raise ValueError(f"the saved index keeps {name} in milvus; the backend is now "
                             f"{config.backend}")
        return MilvusVectors(config, name, version, int(json.loads(body.tobytes())["dim"]))
    return faiss.deserialize_index_binary(body) if data[0] == 1 else vec.from_bytes(body, config)


def _new_index(name: str, signal: Signal, rows: FrameRows, config: VectorConfig) -> object:
    """The main index of one signal for a build over rows: binary on FAISS; float on config's
    backend (FAISS flat or compressed by the rows' count, or Milvus)."""
    if signal.kind != "float":
        return signal.new_index()
    if config.backend == "milvus":
        return MilvusVectors(config, name, signal.version, signal.dim)
    part = rows.vectors.get(name)
    return vec.for_frames(signal.dim, config, part.vectors if part is not None
                          else np.zeros((0, signal.dim), np.float32))


def _copy(index: object) -> object:
    if isinstance(index, VectorIndex):
        return index.copy()
    try:  # one copy of the vectors, not three (serialised, concatenated, read back)
        copied = (faiss.clone_binary_index(index) if isinstance(index, faiss.IndexBinary)
                  else faiss.clone_index(index))
    except RuntimeError:  # an index type clone does not know
        copied = _deserialise(_serialise(index), VectorConfig())
    return copied


def _release(*indexes: object) -> None:
    for index in indexes:
        if isinstance(index, VectorIndex):
            index.release()
        else:
            index.reset()  # type: ignore[attr-defined]


class _Tier:
    """FAISS indexes, one per signal, that several versions of the index may share: their native
    memory is freed when the last version holding them goes (and the GPU copy of a main index,
    keyed by its tier, is made once for all those versions)."""

    def __init__(self, native: dict[str, object]) -> None:
        self.native = native
        # Free the native memory as soon as this object goes, not at some later GC.
        weakref.finalize(self, _release, *native.values())


def _add_to(tier: _Tier, rows: FrameRows, *, floats: bool = True) -> None:
    """Add rows to the tier's indexes (floats=False: binary only). A shared float index
    (Milvus) is left alone: the process that registered the frames wrote them there."""
    if not len(rows):
        return
    for name, part in rows.vectors.items():
        if name in tier.native and len(part):
            index = tier.native[name]
            if isinstance(index, VectorIndex):
                if floats and not index.shared:
                    index.add(part.vectors, part.ids)
                continue
            dtype = np.float32 if isinstance(index, faiss.Index) else np.uint8
            index.add_with_ids(np.ascontiguousarray(part.vectors, dtype), part.ids.astype(np.int64))


def _delta_tier(main: _Tier, rows: FrameRows) -> _Tier:
    """Exact indexes over the delta's rows, of the main indexes' kinds and widths: the delta stays
    small (compaction folds it in), so exact search costs little and needs no training."""
    native: dict[str, object] = {}
    for name, index in main.native.items():
        if isinstance(index, faiss.IndexBinary):
            native[name] = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(index.d))
        elif not index.shared:  # a shared index holds the added frames already
            native[name] = vec.flat(index.d)
    tier = _Tier(native)
    _add_to(tier, rows)
    return tier


def _layer(rows: FrameRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rows as a FrameMap layer: (ids, work ids, seconds)."""
    return rows.ids, rows.work_ids, rows.t_s


def _empty_rows() -> FrameRows:
    return FrameRows(ids=np.zeros(0, np.int64), work_ids=np.zeros(0, "U36"),
                     t_s=np.zeros(0, np.float64))


def _subset(rows: FrameRows, mask: np.ndarray) -> FrameRows:
    """The rows where mask (n,) is true, with their vectors."""
    if mask.all():
        return rows
    ids = rows.ids[mask]
    return FrameRows(
        ids=ids, work_ids=rows.work_ids[mask], t_s=rows.t_s[mask],
        vectors={n: SignalRows(p.ids[np.isin(p.ids, ids)], p.vectors[np.isin(p.ids, ids)])
                 for n, p in rows.vectors.items()})


def _concat(parts: Sequence[FrameRows]) -> FrameRows:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_rows()
    if len(parts) == 1:
        return parts[0]
    names = {n for p in parts for n in p.vectors}
    vectors = {}
    for n in names:
        have = [p.vectors[n] for p in parts if n in p.vectors and len(p.vectors[n])]
        if have:
            vectors[n] = SignalRows(np.concatenate([h.ids for h in have]),
                                    np.concatenate([h.vectors for h in have]))
    return FrameRows(ids=np.concatenate([p.ids for p in parts]).astype(np.int64),
                     work_ids=np.concatenate([p.work_ids for p in parts]).astype("U36"),
                     t_s=np.concatenate([p.t_s for p in parts]).astype(np.float64),
                     vectors=vectors)
