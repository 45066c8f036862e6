"""Float-descriptor search (SSCD, CLIP) behind one interface, `VectorIndex`, with two backends.

- FAISS in this process (the embedded default): an exact flat inner-product index while a signal
  has fewer than `faiss_compress_from` frames at a build or compaction, and past that a
  compressed one (IVF + product codes, `faiss_compressed`), trained then on a sample of the
  vectors. The delta of changes (faiss_index.py) is always exact flat: it is small.
- Milvus, the distributed vector database (index/milvus.py): the index lives in Milvus, shared by
  every process, so it is written by the process that makes a change, not by every process that
  applies the change log.

Binary signals (PDQ, pHash) stay on FAISS binary indexes whatever the backend: milvus-lite cannot
store binary vectors, and a Hamming range search over millions of 256-bit codes is cheap in RAM.

The interface uses ids (int64 frame ids) throughout and answers as FAISS does: (q, k) scores and
ids, id -1 past the end.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from index import gpu

if TYPE_CHECKING:
    from clipgate.settings import Settings

BACKENDS = ("faiss", "milvus")
NLIST_MIN, NLIST_MAX = 64, 65_536


@dataclass(frozen=True)
class VectorConfig:
    """Which backend float signals use and how (clipgate/settings.py documents each field)."""

    backend: str = "faiss"
    compress_from: int = 1_000_000
    compressed: str = "IVF{nlist},PQ128x4fs"
    nlist: int = 0
    nprobe: int = 64
    train_max: int = 100_000
    refine: str = "SQ8"
    refine_factor: int = 4
    milvus_uri: str = ""
    milvus_token: str = ""
    milvus_prefix: str = "clipgate"
    milvus_index: str = "IVF_FLAT"
    milvus_nlist: int = 1024
    milvus_nprobe: int = 32
    milvus_hnsw_m: int = 16
    milvus_hnsw_ef: int = 64
    milvus_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorConfig:
        if settings.vector_backend not in BACKENDS:
            raise ValueError(f"CLIPGATE_VECTOR_BACKEND={settings.vector_backend!r}: must be one "
                             f"of {', '.join(BACKENDS)}")
        return cls(
            backend=settings.vector_backend, compress_from=settings.faiss_compress_from,
            compressed=settings.faiss_compressed, nlist=settings.faiss_nlist,
            nprobe=settings.faiss_nprobe, train_max=settings.faiss_train_max,
            refine=settings.faiss_refine, refine_factor=settings.faiss_refine_factor,
            milvus_uri=settings.milvus_uri, milvus_token=settings.milvus_token,
            milvus_prefix=settings.milvus_collection_prefix, milvus_index=settings.milvus_index,
            milvus_nlist=settings.milvus_nlist, milvus_nprobe=settings.milvus_nprobe,
            milvus_hnsw_m=settings.milvus_hnsw_m, milvus_hnsw_ef=settings.milvus_hnsw_ef,
            milvus_timeout_s=settings.milvus_timeout_s)


class VectorIndex(ABC):
    """Nearest frames by inner product over (n, d) float32 L2-normalised vectors keyed by int64
    frame ids. A published FrameIndex never changes its VectorIndex in place, except a shared
    one (Milvus), which is the one copy every process searches."""

    #: "flat" (exact), "compressed" (IVF-PQ) or "milvus"
    kind: str = "flat"
    #: True: the index lives outside this process and is changed by whoever makes a change
    #: (index/milvus.py); processes applying the change log leave it alone.
    shared: bool = False

    def __init__(self, dim: int) -> None:
        self.d = dim

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """How many vectors it holds."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 -> (q, k) inner products (float32) and frame ids (int64, -1
        past the end), best first."""

    @abstractmethod
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (n, d) float32 vectors under frame ids (n,) int64."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove these frame ids; returns how many went."""

    @abstractmethod
    def copy(self) -> VectorIndex:
        """An independent copy (a shared index returns itself)."""

    def describe(self) -> dict[str, Any]:
        """What health and benchmarks say about it."""
        return {"backend": "faiss", "kind": self.kind, "vectors": self.ntotal}

    def release(self) -> None:
        """Free native memory now (the last FrameIndex version holding it went)."""


class FaissVectors(VectorIndex):
    """A FAISS float index with ids in this process: flat (exact; searched on the GPU where
    index/gpu.py finds one) or compressed (IVF + product codes).

    A compressed index's scores are approximate (0.07 off a cosine on average with 4-bit codes,
    measured): too coarse for the gate's thresholds. So it may keep a refinement index, 8-bit
    scalar codes of every vector by id (`refine`, 0.003 off): the compressed index proposes
    refine_factor * k frames and they are re-scored and re-ranked from those codes."""

    def __init__(self, index: Any, *, nprobe: int = 64, refine: Any = None,
                 refine_factor: int = 4) -> None:
        super().__init__(index.d)
        self.index = index
        self.kind = "flat" if _is_flat(index) else "compressed"
        self.nprobe = nprobe
        self.refine = refine  # IndexIDMap2 over IndexScalarQuantizer, or None
        self.refine_factor = refine_factor
        if self.kind == "compressed":
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
        weakref.finalize(self, index.reset)  # native memory goes with the last holder
        if refine is not None:
            weakref.finalize(self, refine.reset)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, np.float32)
        if self.kind == "flat":
            return gpu.float_search(self, self.index, queries, k)
        if self.refine is None:
            return self.index.search(queries, k)
        _, ids = self.index.search(queries, k * self.refine_factor)
        safe = np.where(ids < 0, 0, ids)
        # The proposed frames' codes, decoded, and their exact inner products with the query.
        found = ids >= 0
        rows = np.zeros((*ids.shape, self.d), np.float32)
        if found.any():
            rows[found] = self.refine.reconstruct_batch(safe[found])
        sims = np.einsum("qkd,qd->qk", rows, queries)
        return best_k(np.where(found, sims, -np.inf), ids, k)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if len(ids):
            x, i = np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64)
            self.index.add_with_ids(x, i)
            if self.refine is not None:
                self.refine.add_with_ids(x, i)

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        selector = faiss.IDSelectorBatch(np.asarray(ids, np.int64))
        if self.refine is not None:
            self.refine.remove_ids(selector)
        return int(self.index.remove_ids(selector))

    def copy(self) -> FaissVectors:
        return FaissVectors(faiss.clone_index(self.index), nprobe=self.nprobe,
                            refine=faiss.clone_index(self.refine) if self.refine is not None
                            else None, refine_factor=self.refine_factor)

    def release(self) -> None:
        self.index.reset()
        if self.refine is not None:
            self.refine.reset()

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """A flat index's (n,) ids and (n, d) vectors, to train a compressed one from."""
        inner = faiss.downcast_index(self.index.index)
        return (faiss.vector_to_array(self.index.id_map).astype(np.int64),
                inner.reconstruct_n(0, inner.ntotal) if inner.ntotal
                else np.zeros((0, self.d), np.float32))

    def to_bytes(self) -> np.ndarray:
        """The index, then the refinement index if any, each preceded by its length (uint64)."""
        parts = [faiss.serialize_index(self.index)]
        if self.refine is not None:
            parts.append(faiss.serialize_index(self.refine))
        out = []
        for p in parts:
            out += [np.frombuffer(np.uint64(len(p)).tobytes(), np.uint8), p]
        return np.concatenate(out)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.kind == "compressed":
            out.update(factory=_factory_name(self.index), nprobe=self.nprobe,
                       refine="SQ8" if self.refine is not None else None)
        return out


def flat(dim: int) -> FaissVectors:
    """An empty exact inner-product index with ids."""
    return FaissVectors(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))


def compressed(dim: int, train: np.ndarray, config: VectorConfig, n: int) -> FaissVectors:
    """An empty compressed index (config.compressed) for about n vectors, trained on train
    (a sample of them, (m, d) float32)."""
    nlist = config.nlist or int(4 * np.sqrt(max(n, 1)))
    nlist = int(min(NLIST_MAX, max(NLIST_MIN, nlist), max(1, len(train) // 4)))
    index = faiss.index_factory(dim, config.compressed.format(nlist=nlist),
                                faiss.METRIC_INNER_PRODUCT)
    train = np.ascontiguousarray(train, np.float32)
    index.train(train)
    refine = None
    if config.refine == "SQ8":
        sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
        sq.train(train)
        refine = faiss.IndexIDMap2(sq)
    return FaissVectors(index, nprobe=config.nprobe, refine=refine,
                        refine_factor=config.refine_factor)


def for_frames(dim: int, config: VectorConfig, vectors: np.ndarray) -> FaissVectors:
    """The FAISS index that suits these (n, d) vectors' count, empty: flat below
    config.compress_from, else compressed and trained on a sample of them."""
    n = len(vectors)
    if n < config.compress_from:
        return flat(dim)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(n, size=min(n, config.train_max), replace=False))
    return compressed(dim, vectors[pick], config, n)


def compacted(vec: VectorIndex, tombstones: np.ndarray, ids: np.ndarray, vectors: np.ndarray,
              config: VectorConfig) -> VectorIndex:
    """A new index: vec less the tombstones plus (ids, vectors) from the delta. A flat index
    that grows past config.compress_from becomes a compressed one here (trained on all its
    vectors); a compressed one keeps its training. A shared index is itself (its writers keep
    it current)."""
    if vec.shared:
        return vec
    if isinstance(vec, FaissVectors) and vec.kind == "flat" and \
            vec.ntotal - len(tombstones) + len(ids) >= config.compress_from:
        old_ids, old = vec.vectors()
        keep = ~np.isin(old_ids, tombstones)
        all_ids = np.concatenate([old_ids[keep], ids])
        all_vectors = np.concatenate([old[keep], np.asarray(vectors, np.float32)])
        out: VectorIndex = for_frames(vec.d, config, all_vectors)
        out.add(all_vectors, all_ids)
        return out
    out = vec.copy()
    out.remove(tombstones)
    out.add(vectors, ids)
    return out


def from_bytes(data: np.ndarray, config: VectorConfig) -> FaissVectors:
    """What to_bytes wrote (or, from files before it, one bare serialised index)."""
    data = np.ascontiguousarray(data)
    parts, at = [], 0
    while at + 8 <= len(data):
        n = int(np.frombuffer(data[at:at + 8].tobytes(), np.uint64)[0])
        if n == 0 or at + 8 + n > len(data):
            break
        parts.append(data[at + 8:at + 8 + n])
        at += 8 + n
    if at != len(data) or not parts:
        parts = [data]  # an older file: the index alone
    return FaissVectors(faiss.deserialize_index(np.ascontiguousarray(parts[0])),
                        nprobe=config.nprobe,
                        refine=faiss.deserialize_index(np.ascontiguousarray(parts[1]))
                        if len(parts) > 1 else None, refine_factor=config.refine_factor)


def best_k(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row's (q, m) scores and ids (dropped ones at -inf), answered as FAISS
    does: float32 scores, and past the end id -1 with the lowest float."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    sims, ids = np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
    return np.where(ids < 0, np.float32(-3.4028235e38), sims).astype(np.float32), ids


def _is_flat(index: Any) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return isinstance(inner, faiss.IndexFlat)


def _factory_name(index: Any) -> str:
    ivf = faiss.extract_index_ivf(index)
    return f"{type(faiss.downcast_index(index)).__name__}, nlist {ivf.nlist}"
