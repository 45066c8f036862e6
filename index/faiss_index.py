"""The FAISS side of the index: four searchable signals over every frame of every active work.

CLIP vectors, PDQ and pHash codes are one entry per frame. The ORB descriptors of every frame go
into a fourth, binary index whose ids are the frame ids again: a clip frame's descriptors vote for
the work frames they are near, which proposes candidates for the geometric check even where the
global signals see nothing (a crop, a small picture-in-picture, a mirrored copy).

FAISS wants integer ids, so each vector's id is its work_frames row id, and `meta` maps it back to
(work, time). The index is derived data: PostgreSQL holds the truth, this file is a cache of it
tagged with the index version it was built at.
"""

from __future__ import annotations

import logging
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index import gpu
from index.signals import PDQ_BITS, PHASH_BITS

log = logging.getLogger(__name__)

ORB_BITS = 256
# Below this many descriptors a flat index is fast enough and needs no training; above it, an
# inverted file (a binary "visual vocabulary") keeps a query's cost flat as works are added.
ORB_IVF_FROM = 50_000
ORB_IVF_NPROBE = 6


@dataclass
class FrameRows:
    """Frames to add, as arrays: ids (n,) int64, work_ids (n,) str, t_s (n,) float64,
    clip (n, d) float32 L2-normalised, pdq (n, 32) uint8, phash (n, 8) uint8."""

    ids: np.ndarray
    work_ids: np.ndarray
    t_s: np.ndarray
    clip: np.ndarray
    pdq: np.ndarray
    phash: np.ndarray
    # ORB descriptors per row, (n_i, 32) uint8 each; None: the frames take no part in voting.
    descriptors: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Hit:
    """One indexed frame that a query frame is close to, by one signal."""

    query: int  # row of the query batch
    frame_id: int
    signal: str  # "clip" | "pdq" | "phash" | "orb"
    value: float  # cosine for clip, Hamming distance for hashes, inlier count for orb
    region: tuple[float, float, float, float] | None = None  # orb: where in the clip frame (0..1)
    mirrored: bool = False  # the clip frame matched once mirrored left-right


class FrameIndex:
    def __init__(
        self,
        dim: int,
        version: int,
        embedder: str,
        epoch: str = "",
        *,
        native: tuple | None = None,
        meta: dict[int, tuple[str, float]] | None = None,
        orb: object | None = None,
    ) -> None:
        self.dim = dim
        self.version = version
        self.embedder = embedder
        self.epoch = epoch  # the database's index_state.epoch this index was built from
        self.clip, self.pdq, self.phash = native or (
            faiss.IndexIDMap2(faiss.IndexFlatIP(dim)),
            faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(PDQ_BITS)),
            faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(PHASH_BITS)),
        )
        # Many descriptors share one frame id, so a plain IDMap (not IDMap2, whose reverse map
        # wants unique ids) or an IVF, which keeps ids itself.
        self.orb = orb if orb is not None else faiss.IndexBinaryIDMap(
            faiss.IndexBinaryFlat(ORB_BITS))
        self.meta: dict[int, tuple[str, float]] = meta or {}
        # Free the native memory as soon as this object goes, not at some later GC.
        weakref.finalize(self, _release, self.clip, self.pdq, self.phash, self.orb)

    @classmethod
    def for_rows(cls, dim: int, version: int, embedder: str, epoch: str,
                 rows: FrameRows) -> FrameIndex:
        """A new index sized for rows: with many descriptors the ORB index is an inverted file
        trained on a sample of them."""
        orb = None
        if rows.descriptors is not None:
            n = sum(len(d) for d in rows.descriptors)
            if n >= ORB_IVF_FROM:
                orb = _trained_ivf(np.concatenate(rows.descriptors))
        index = cls(dim, version, embedder, epoch, orb=orb)
        index.add(rows)
        return index

    @property
    def frames(self) -> int:
        return self.clip.ntotal

    @property
    def work_ids(self) -> set[str]:
        return {w for w, _ in self.meta.values()}

    def add(self, rows: FrameRows) -> None:
        if not len(rows):
            return
        ids = rows.ids.astype(np.int64)
        self.clip.add_with_ids(np.ascontiguousarray(rows.clip, dtype=np.float32), ids)
        self.pdq.add_with_ids(np.ascontiguousarray(rows.pdq, dtype=np.uint8), ids)
        self.phash.add_with_ids(np.ascontiguousarray(rows.phash, dtype=np.uint8), ids)
        if rows.descriptors is not None:
            counts = [len(d) for d in rows.descriptors]
            if sum(counts):
                self.orb.add_with_ids(
                    np.ascontiguousarray(np.concatenate(rows.descriptors), np.uint8),
                    np.repeat(ids, counts),
                )
        for i, w, t in zip(ids.tolist(), rows.work_ids.tolist(), rows.t_s.tolist()):
            self.meta[i] = (str(w), float(t))

    def remove_work(self, work_id: str) -> int:
        ids = np.array([i for i, (w, _) in self.meta.items() if w == work_id], dtype=np.int64)
        if len(ids):
            for index in (self.clip, self.pdq, self.phash, self.orb):
                index.remove_ids(ids)
            for i in ids.tolist():
                del self.meta[i]
        return len(ids)

    def search(
        self,
        clip: np.ndarray,
        pdq: np.ndarray,
        phash: np.ndarray,
        *,
        clip_k: int,
        pdq_max_distance: int,
        phash_max_distance: int,
        pdq_candidate_distance: int | None = None,
    ) -> tuple[list[Hit], list[tuple[int, int]]]:
        """Query frames: clip (q, d) float32, pdq (q, 32) uint8, phash (q, 8) uint8.

        Returns the hits and the near misses. CLIP returns the k nearest (whatever their score);
        the hashes return every frame within their distance threshold. Near misses are (query,
        frame id) pairs whose PDQ distance is above pdq_max_distance but within
        pdq_candidate_distance: worth a geometric check.
        """
        hits: list[Hit] = []
        near: list[tuple[int, int, float]] = []
        if self.frames == 0 or len(clip) == 0:
            return hits, []
        k = min(clip_k, self.frames)
        # On the GPU where there is one (index/gpu.py); the CPU answers the same otherwise.
        sims, ids = gpu.clip_search(self, self.clip, np.ascontiguousarray(clip, np.float32), k)
        for q in range(len(clip)):
            for s, i in zip(sims[q], ids[q]):
                if i >= 0:
                    hits.append(Hit(q, int(i), "clip", float(s)))
        loose = max(pdq_max_distance, pdq_candidate_distance or 0)
        for name, index, codes, radius in (
            ("pdq", self.pdq, pdq, loose),
            ("phash", self.phash, phash, phash_max_distance),
        ):
            # range_search's radius is exclusive.
            lims, dist, rid = index.range_search(np.ascontiguousarray(codes, np.uint8), radius + 1)
            for q in range(len(codes)):
                for j in range(lims[q], lims[q + 1]):
                    if name == "pdq" and dist[j] > pdq_max_distance:
                        near.append((q, int(rid[j]), float(dist[j])))
                    else:
                        hits.append(Hit(q, int(rid[j]), name, float(dist[j])))
        near.sort(key=lambda n: n[2])  # nearest first: they get the geometric check first
        return hits, [(q, f) for q, f, _ in near]

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
        if self.orb.ntotal == 0 or not sum(counts):
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
        native = (
            faiss.deserialize_index(faiss.serialize_index(self.clip)),
            faiss.deserialize_index_binary(faiss.serialize_index_binary(self.pdq)),
            faiss.deserialize_index_binary(faiss.serialize_index_binary(self.phash)),
        )
        return FrameIndex(self.dim, self.version, self.embedder, self.epoch, native=native,
                          meta=dict(self.meta), orb=_binary_copy(self.orb))

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.fromiter(self.meta.keys(), dtype=np.int64, count=len(self.meta))
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    version=np.int64(self.version),
                    epoch=np.array(self.epoch),
                    embedder=np.array(self.embedder),
                    dim=np.int64(self.dim),
                    clip=faiss.serialize_index(self.clip),
                    pdq=faiss.serialize_index_binary(self.pdq),
                    phash=faiss.serialize_index_binary(self.phash),
                    orb=faiss.serialize_index_binary(self.orb),
                    ids=ids,
                    work_ids=np.array([self.meta[i][0] for i in ids.tolist()], dtype="U36"),
                    t_s=np.array([self.meta[i][1] for i in ids.tolist()], dtype=np.float64),
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
            native = (
                faiss.deserialize_index(z["clip"]),
                faiss.deserialize_index_binary(z["pdq"]),
                faiss.deserialize_index_binary(z["phash"]),
            )
            meta = {
                int(i): (str(w), float(t)) for i, w, t in zip(z["ids"], z["work_ids"], z["t_s"])
            }
            orb = faiss.deserialize_index_binary(z["orb"])  # a file without it is rebuilt
            _tune(orb)
            return cls(int(z["dim"]), int(z["version"]), str(z["embedder"]), str(z["epoch"]),
                       native=native, meta=meta, orb=orb)


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


def _binary_copy(index: object) -> object:
    copied = faiss.deserialize_index_binary(faiss.serialize_index_binary(index))
    _tune(copied)
    return copied


def _release(*indexes: object) -> None:
    for index in indexes:
        index.reset()  # type: ignore[attr-defined]
