"""The FAISS side of the index: one searchable index per signal over every frame of every active
work, and (optionally) the ORB descriptors of every frame for voting.

Each signal's vectors go into the index its kind suits (signals/base.py: exact inner product for
floats, Hamming for packed bits). The ORB descriptors of every frame go into a binary index whose
ids are the frame ids again: a clip frame's descriptors vote for the work frames they are near,
which proposes candidates for the geometric check even where the global signals see nothing.
That vote index costs about 32 KB a frame, so it is optional (`CLIPGATE_ORB_VOTE_INDEX`).

FAISS wants integer ids, so each vector's id is its work_frames row id, and `meta` maps it back to
(work, time). The index is derived data: PostgreSQL holds the truth, this file is a cache of it
tagged with the index version it was built at and the version of each signal's vectors.
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

from index import gpu
from index.signals import Signal
from index.signals.background import kept as kept_background

log = logging.getLogger(__name__)

ORB_BITS = 256
# Below this many descriptors a flat index is fast enough and needs no training; above it, an
# inverted file (a binary "visual vocabulary") keeps a query's cost flat as works are added.
ORB_IVF_FROM = 50_000
ORB_IVF_NPROBE = 6


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
    # ORB descriptors per row, (n_i, 32) uint8 each; None: the frames take no part in voting.
    descriptors: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)


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
    id to (work, seconds), background vectors for normalised signals, and the vote index."""

    def __init__(
        self,
        version: int,
        epoch: str,
        spaces: Mapping[str, str],
        native: dict[str, object],
        *,
        meta: dict[int, tuple[str, float]] | None = None,
        background: dict[str, np.ndarray] | None = None,
        orb: object | None = None,
    ) -> None:
        self.version = version
        self.epoch = epoch  # the database's index_state.epoch this index was built from
        self.spaces = dict(spaces)  # signal -> version of its vectors in here
        self.native = native  # signal -> FAISS index
        self.meta: dict[int, tuple[str, float]] = meta or {}
        # signal -> (b, d) background vectors (index/signals/background.py), and which rows are
        # kept: not those of a picture close to a work frame.
        self.background = background or {}
        self.kept: dict[str, np.ndarray] = {n: np.ones(len(b), bool)
                                            for n, b in self.background.items()}
        self.orb = orb  # None: no vote index
        # Free the native memory as soon as this object goes, not at some later GC.
        weakref.finalize(self, _release, *native.values(), *([orb] if orb is not None else []))

    @classmethod
    def build(cls, signals: Mapping[str, Signal], version: int, epoch: str, rows: FrameRows, *,
              votes: bool) -> FrameIndex:
        """A new index over rows for these signals; with votes, a vote index over the rows'
        descriptors (an inverted file trained on a sample of them when there are many)."""
        orb = None
        if votes:
            descriptors = rows.descriptors or []
            n = sum(len(d) for d in descriptors)
            orb = (_trained_ivf(np.concatenate(descriptors)) if n >= ORB_IVF_FROM
                   else faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(ORB_BITS)))
        index = cls(version, epoch, {n: s.version for n, s in signals.items()},
                    {n: s.new_index() for n, s in signals.items()}, orb=orb)
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
        return {w for w, _ in self.meta.values()}

    def add(self, rows: FrameRows) -> None:
        if not len(rows):
            return
        ids = rows.ids.astype(np.int64)
        for name, part in rows.vectors.items():
            if name in self.native and len(part):
                index = self.native[name]
                dtype = np.float32 if isinstance(index, faiss.Index) else np.uint8
                index.add_with_ids(np.ascontiguousarray(part.vectors, dtype),
                                   part.ids.astype(np.int64))
        if self.orb is not None and rows.descriptors is not None:
            counts = [len(d) for d in rows.descriptors]
            if sum(counts):
                self.orb.add_with_ids(
                    np.ascontiguousarray(np.concatenate(rows.descriptors), np.uint8),
                    np.repeat(ids, counts),
                )
        for i, w, t in zip(ids.tolist(), rows.work_ids.tolist(), rows.t_s.tolist()):
            self.meta[i] = (str(w), float(t))
        self._exclude_background(rows)

    def remove_work(self, work_id: str) -> int:
        ids = np.array([i for i, (w, _) in self.meta.items() if w == work_id], dtype=np.int64)
        if len(ids):
            for index in [*self.native.values(), *([self.orb] if self.orb is not None else [])]:
                index.remove_ids(ids)
            for i in ids.tolist():
                del self.meta[i]
        return len(ids)

    def _exclude_background(self, rows: FrameRows) -> None:
        """Leave out the background pictures close to a frame just added: a protected work in
        the background would cancel its own matches. (A removed work's pictures stay out until
        the next rebuild: the safe side.)"""
        for name, bg in self.background.items():
            part = rows.vectors.get(name)
            if part is None or not len(part) or not len(bg):
                continue
            near = (bg @ np.asarray(part.vectors, np.float32).T).max(axis=1)
            self.kept[name] &= kept_background(bg, near)

    # -- search, per signal -------------------------------------------------------------------
    def nearest(self, name: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(q, k) cosines and frame ids (-1 past the end) of a float signal's k nearest frames."""
        index = self.native[name]
        k = min(k, max(1, index.ntotal))
        if index.ntotal == 0 or not len(vectors):
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        # On the GPU where there is one (index/gpu.py); the CPU answers the same otherwise.
        return gpu.float_search(self, index, np.ascontiguousarray(vectors, np.float32), k,
                                name=name)

    def within(self, name: str, codes: np.ndarray, radius: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A binary signal's frames within `radius` bits of each code: FAISS's (lims, distances,
        ids) of a range search."""
        index = self.native[name]
        # range_search's radius is exclusive.
        return index.range_search(np.ascontiguousarray(codes, np.uint8), radius + 1)

    def bias(self, name: str, vectors: np.ndarray) -> np.ndarray:
        """(q,) what normalisation adds to each row's scores: minus its cosine to the nearest
        background vector (0 for a signal without background)."""
        bg = self.background.get(name)
        if bg is None or not self.kept[name].any() or not len(vectors):
            return np.zeros(len(vectors), np.float32)
        return -(np.asarray(vectors, np.float32) @ bg[self.kept[name]].T).max(axis=1)

    def vote(
        self,
        descriptors: list[np.ndarray],
        *,
        max_distance: int,
        min_votes: int,
        per_query: int,
        k: int = 3,
    ) -> list[tuple[int, int, int]]:
        """Work frames that many of each query frame's ORB descriptors are near.

        descriptors: per query frame, (n_i, 32) uint8. Returns (query, frame id, votes), at most
        per_query frames per query with at least min_votes votes, most votes first. A query
        descriptor votes once per frame among its k nearest within max_distance bits.
        """
        counts = [len(d) for d in descriptors]
        if self.orb is None or self.orb.ntotal == 0 or not sum(counts):
            return []
        dist, ids = self.orb.search(np.ascontiguousarray(np.concatenate(descriptors)), k)
        owner = np.repeat(np.arange(len(descriptors)), counts)
        keep = (ids >= 0) & (dist <= max_distance)
        rows, cols = np.nonzero(keep)
        pairs = np.unique(np.stack([rows, ids[rows, cols]], axis=1), axis=0)  # one vote per frame
        votes: dict[tuple[int, int], int] = {}
        for r, f in pairs.tolist():
            if f in self.meta:  # frames of a removed work may linger in an IVF until a rebuild
                key = (int(owner[r]), f)
                votes[key] = votes.get(key, 0) + 1
        by_query: dict[int, list[tuple[int, int]]] = {}
        for (q, f), v in votes.items():
            if v >= min_votes:
                by_query.setdefault(q, []).append((v, f))
        out = []
        for q, found in by_query.items():
            found.sort(reverse=True)
            out += [(q, f, v) for v, f in found[:per_query]]
        return out

    def copy(self) -> FrameIndex:
        """An independent copy: changes are made to a copy and then published, so a search in
        another thread never sees an index being changed under it."""
        copied = FrameIndex(self.version, self.epoch, self.spaces,
                            {n: _copy(i) for n, i in self.native.items()}, meta=dict(self.meta),
                            background=dict(self.background),
                            orb=_copy(self.orb) if self.orb is not None else None)
        copied.kept = {n: k.copy() for n, k in self.kept.items()}
        return copied

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.fromiter(self.meta.keys(), dtype=np.int64, count=len(self.meta))
        arrays = {f"index_{n}": _serialise(i) for n, i in self.native.items()}
        arrays.update({f"background_{n}": v for n, v in self.background.items()})
        arrays.update({f"kept_{n}": k for n, k in self.kept.items()})
        if self.orb is not None:
            arrays["orb"] = faiss.serialize_index_binary(self.orb)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    version=np.int64(self.version),
                    epoch=np.array(self.epoch),
                    spaces=np.array(json.dumps(self.spaces)),
                    ids=ids,
                    work_ids=np.array([self.meta[i][0] for i in ids.tolist()], dtype="U36"),
                    t_s=np.array([self.meta[i][1] for i in ids.tolist()], dtype=np.float64),
                    **arrays,
                )
                f.flush()
                os.fsync(f.fileno())  # never an empty file under the final name after a crash
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> FrameIndex:
        with np.load(path, allow_pickle=False) as z:
            spaces = json.loads(str(z["spaces"]))
            native = {n: _deserialise(z[f"index_{n}"]) for n in spaces}
            background = {n: np.array(z[f"background_{n}"]) for n in spaces
                          if f"background_{n}" in z}
            meta = {
                int(i): (str(w), float(t)) for i, w, t in zip(z["ids"], z["work_ids"], z["t_s"])
            }
            orb = None
            if "orb" in z:
                orb = faiss.deserialize_index_binary(z["orb"])
                _tune(orb)
            index = cls(int(z["version"]), str(z["epoch"]), spaces, native, meta=meta,
                        background=background, orb=orb)
            index.kept.update({n: np.array(z[f"kept_{n}"]) for n in background
                               if f"kept_{n}" in z})
            return index


def _serialise(index: object) -> np.ndarray:
    if isinstance(index, faiss.IndexBinary):
        return np.concatenate([[1], faiss.serialize_index_binary(index)]).astype(np.uint8)
    return np.concatenate([[0], faiss.serialize_index(index)]).astype(np.uint8)


def _deserialise(data: np.ndarray) -> object:
    body = np.ascontiguousarray(data[1:])
    return faiss.deserialize_index_binary(body) if data[0] == 1 else faiss.deserialize_index(body)


def _copy(index: object) -> object:
    copied = _deserialise(_serialise(index))
    _tune(copied)
    return copied


def _trained_ivf(sample: np.ndarray) -> object:
    """An ORB inverted file with ~sqrt(n) lists, trained on 40 descriptors a list (k-means over
    a sample: seconds, not minutes, at a million descriptors)."""
    n = len(sample)
    nlist = int(min(1024, max(64, np.sqrt(n))))
    rng = np.random.default_rng(0)
    train = sample[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
    quantizer = faiss.IndexBinaryFlat(ORB_BITS)
    ivf = faiss.IndexBinaryIVF(quantizer, ORB_BITS, nlist)
    ivf.cp.niter = 10
    ivf.train(np.ascontiguousarray(train))
    _tune(ivf)
    return ivf


def _tune(index: object) -> None:
    if isinstance(index, faiss.IndexBinaryIVF):
        index.nprobe = ORB_IVF_NPROBE


def _release(*indexes: object) -> None:
    for index in indexes:
        index.reset()  # type: ignore[attr-defined]
