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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from index import gpu

if TYPE_CHECKING:
    from clipgate.settings import Settings

BACKENDS = ("faiss", "milvus")
NLIST_MIN, NLIST_MAX = 64, 65_536
# From this many lists the lists' centres are trained by two-level k-means (sqrt(nlist) coarse
# clusters, then each split): plain k-means costs nlist x sample x d a pass (on this loaded
# 2-core machine, 16,384 lists on 200,000 vectors had not finished after 10 minutes); two-level
# about sqrt(nlist) times less (all of 10M frames' training, 12,649 lists: 84 s).
TWO_LEVEL_FROM = 8_192
# nprobe 0 ("auto"): this share of the lists, at least NPROBE_MIN. A fixed count covers a smaller
# share of the catalogue as the lists grow in number (4 * sqrt(frames)), and recall falls with
# it: nprobe 64 gave recall@10 0.949 at 1M frames (4,000 lists) but 0.880 at 10M (12,649 lists),
# where 128 gave 0.946 and 160 0.961 (docs/scale.md).
NPROBE_MIN = 64
LISTS_PER_PROBE = 80
# From this many lists a search finds its nprobe lists through an HNSW graph over their centres
# rather than by comparing each query with every centre: at 10M frames (12,649 lists, one
# thread, nprobe 160) the product took 5.9 ms of a 10-query search, the graph 2-3 ms, for
# recall@10 0.9608 against 0.959-0.960 (docs/scale.md). Below it the product is cheap (4,000
# centres at 1M frames).
GRAPH_LISTS_FROM = 8_192


@dataclass(frozen=True)
class VectorConfig:
    """Which backend float signals use and how (clipgate/settings.py documents each field)."""

    backend: str = "faiss"
    compress_from: int = 1_000_000
    compressed: str = "IVF{nlist},PQ64x4fs"
    nlist: int = 0
    nprobe: int = 0
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

    def search_cost(self, queries: int) -> int:
        """About how many vectors a search of this many queries compares (index/threads.py
        gives small searches one thread): every vector, for an exact index."""
        return queries * self.ntotal

    def release(self) -> None:
        """Free native memory now (the last FrameIndex version holding it went)."""


class FaissVectors(VectorIndex):
    """A FAISS float index with ids in this process: flat (exact; searched on the GPU where
    index/gpu.py finds one) or compressed (IVF + product codes).

    A compressed index's scores are approximate (0.07 off a cosine on average with 4-bit codes,
    measured): too coarse for the gate's thresholds. So it may keep 8-bit scalar codes of every
    vector by id (`refine`, a Codes; 0.003 off): the compressed index proposes
    refine_factor * k frames and they are re-scored and re-ranked from those codes."""

    def __init__(self, index: Any, *, nprobe: int = 0, refine: Codes | None = None,
                 refine_factor: int = 4, lists: ListGraph | None = None) -> None:
        super().__init__(index.d)
        self.index = index
        self.kind = "flat" if _is_flat(index) else "compressed"
        self.nprobe = nprobe if nprobe > 0 or self.kind == "flat" else auto_nprobe(
            int(faiss.extract_index_ivf(index).nlist))
        self.refine = refine
        self.refine_factor = refine_factor
        self._centres: np.ndarray | None = None  # the lists' centres, (nlist, d), on first search
        # Many lists: a graph over their centres finds a query's nearest (copies share it).
        self.lists = lists if lists is not None else ListGraph.over(index)
        if self.kind == "compressed":
            _set_nprobe(index, self.nprobe)
        weakref.finalize(self, index.reset)  # native memory goes with the last holder

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, np.float32)
        if self.kind == "flat":
            return gpu.float_search(self, self.index, queries, k)
        if self.refine is None:
            return self._search_lists(queries, k)
        _, ids = self._search_lists(queries, k * self.refine_factor)
        # The proposed frames' codes, decoded, and their exact inner products with the query.
        found = ids >= 0
        rows = np.zeros((*ids.shape, self.d), np.float32)
        if found.any():
            rows[found] = self.refine.decode(ids[found])
        sims = np.einsum("qkd,qd->qk", rows, queries)
        return best_k(np.where(found, sims, -np.inf), ids, k)

    def _search_lists(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A compressed index's search, its lists chosen through the graph over their centres
        (many lists) or by one matrix product with them. FAISS compares a few queries with a
        flat quantiser's centres one query at a time, without BLAS (faiss 1.15: below
        distance_compute_blas_threshold = 128,000 queries): 9.9 ms for 10 queries against
        12,649 centres on one thread here, against 4.5 ms for the product (docs/scale.md);
        the product's lists, their scores and so the answers are FAISS's own."""
        ivf = faiss.downcast_index(self.index)
        if not isinstance(ivf, faiss.IndexIVF):  # a transform in front (OPQ): its own search
            return self.index.search(queries, k)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if (not isinstance(quantizer, faiss.IndexFlat)
                or ivf.metric_type != faiss.METRIC_INNER_PRODUCT):
            return self.index.search(queries, k)  # another quantiser: its own search
        nprobe = min(self.nprobe, ivf.nlist)
        if self.lists is not None:
            scores, lists = self.lists.nearest(queries, nprobe)
            return ivf.search_preassigned(queries, k, lists, scores)
        if self._centres is None or len(self._centres) != ivf.nlist:
            self._centres = quantizer.reconstruct_n(0, ivf.nlist)
        sims = queries @ self._centres.T
        lists = np.argpartition(-sims, nprobe - 1, axis=1)[:, :nprobe]
        scores = np.take_along_axis(sims, lists, 1)
        order = np.argsort(-scores, axis=1, kind="stable")  # best list first, as FAISS gives
        lists, scores = np.take_along_axis(lists, order, 1), np.take_along_axis(scores, order, 1)
        return ivf.search_preassigned(queries, k, lists.astype(np.int64), scores)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if len(ids):
            x, i = np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64)
            self.index.add_with_ids(x, i)
            if self.refine is not None:
                self.refine.add(x, i)

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        selector = faiss.IDSelectorBatch(np.asarray(ids, np.int64))
        if self.refine is not None:
            self.refine.remove(ids)
        return int(self.index.remove_ids(selector))

    def copy(self) -> FaissVectors:
        return FaissVectors(faiss.clone_index(self.index), nprobe=self.nprobe,
                            refine=self.refine.copy() if self.refine is not None else None,
                            refine_factor=self.refine_factor, lists=self.lists)

    def search_cost(self, queries: int) -> int:
        if self.kind == "flat":
            return queries * self.ntotal
        # The lists' centres, then nprobe lists of the average length.
        nlist = int(faiss.extract_index_ivf(self.index).nlist)
        return queries * (nlist + self.nprobe * -(-self.ntotal // max(1, nlist)))

    def set_nprobe(self, nprobe: int) -> None:
        """Search nprobe lists from now on (a compressed index; benchmarks compare several)."""
        if self.kind == "compressed":
            self.nprobe = nprobe
            _set_nprobe(self.index, nprobe)

    def reserve(self, n: int) -> None:
        """Room for n vectors in the re-scoring codes (a bulk load of a known size: no growth,
        so no moment holding the codes twice)."""
        if self.refine is not None:
            self.refine.reserve(n)

    def release(self) -> None:
        self.index.reset()
        if self.refine is not None:
            self.refine.release()

    def nbytes(self) -> int:
        """Bytes the index holds: a flat one's floats and ids; a compressed one's serialised size
        (product codes, ids, lists, quantiser) plus its re-scoring codes and their ids."""
        if self.kind == "flat":
            return self.ntotal * (4 * self.d + 8)
        return int(faiss.serialize_index(self.index).nbytes) + (
            self.refine.nbytes() if self.refine is not None else 0)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """A flat index's (n,) ids and (n, d) vectors, to train a compressed one from."""
        inner = faiss.downcast_index(self.index.index)
        return (faiss.vector_to_array(self.index.id_map).astype(np.int64),
                inner.reconstruct_n(0, inner.ntotal) if inner.ntotal
                else np.zeros((0, self.d), np.float32))

    def to_bytes(self) -> np.ndarray:
        """The index, then the re-scoring codes' quantiser, ids and codes if any, each preceded by
        its length (uint64)."""
        return np.concatenate([x for p in self._parts() for x in _framed(p)])

    def write(self, path: Path) -> None:
        """What to_bytes gives, written part by part: a 10M-frame index (about 6 GB) is never
        held twice. from_bytes reads it back (np.memmap of the file: no copy either)."""
        with open(path, "wb") as f:
            for p in self._parts():
                for x in _framed(p):
                    f.write(memoryview(np.ascontiguousarray(x)))

    def file_arrays(self) -> dict[str, np.ndarray]:
        """The index as arrays for an .npz file, none of them a copy of the re-scoring codes:
        "index" (to_bytes' format without the codes) and, if any, "sq", "ids" and "codes".
        np.savez writes each in chunks, so saving a 10M-frame index does not hold its 5 GB of
        codes twice (to_bytes concatenates them). from_file_arrays reads them back."""
        out = {"index": np.concatenate(_framed(faiss.serialize_index(self.index)))}
        if self.refine is not None:
            out.update(zip(("sq", "ids", "codes"), self.refine.to_parts()))
        return out

    def _parts(self) -> list[np.ndarray]:
        parts = [faiss.serialize_index(self.index)]
        if self.refine is not None:
            parts += self.refine.to_parts()
        return parts

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.kind == "compressed":
            out.update(factory=_factory_name(self.index), nprobe=self.nprobe,
                       refine="SQ8" if self.refine is not None else None,
                       lists_by="graph" if self.lists is not None else "product")
        return out


class ListGraph:
    """An HNSW graph over a compressed index's list centres (inner product), to find each
    query's nprobe nearest lists without comparing it with every centre. The centres never
    change once trained, so an index's copies and compactions share one graph."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    @classmethod
    def over(cls, index: Any) -> ListGraph | None:
        """The graph for this index, or None where it does not help: no IVF, another quantiser
        or metric, fewer than GRAPH_LISTS_FROM lists, or centres not trained yet."""
        ivf = faiss.downcast_index(index)
        if not isinstance(ivf, faiss.IndexIVF) or ivf.metric_type != faiss.METRIC_INNER_PRODUCT:
            return None
        quantizer = faiss.downcast_index(ivf.quantizer)
        if (not isinstance(quantizer, faiss.IndexFlat) or ivf.nlist < GRAPH_LISTS_FROM
                or quantizer.ntotal != ivf.nlist):
            return None
        # 8-bit centres and 16 links a node: of the graphs tried at 10M frames (float or 8-bit,
        # 16, 24 or 32 links), the fastest (p50 5.2-5.4 ms against 6.4-6.7 for float and 32, the
        # whole search), for recall@10 0.9592 against 0.9596. 12,649 centres: 0.6 s to build.
        centres = quantizer.reconstruct_n(0, ivf.nlist)
        graph = faiss.IndexHNSWSQ(ivf.d, faiss.ScalarQuantizer.QT_8bit, 16,
                                  faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 80
        graph.train(centres)
        graph.add(centres)
        return cls(graph)

    def nearest(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(q, n) inner products and list numbers, best first, as FAISS's own quantiser gives.
        The search breadth is n itself: at nprobe 160 on 12,649 lists, 1.5 n found 0.1% more
        of the true neighbours for 40% more time."""
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(n, 16)
        return self.graph.search(queries, n, params=params)


class Codes:
    """8-bit scalar codes of vectors by frame id, to re-score a compressed index's proposals:
    (n, d) uint8 codes and (n,) int64 ids in numpy, found by binary search on the sorted ids.

    FAISS's IndexIDMap2 over an IndexScalarQuantizer did this with an id hash map beside the
    codes, and a code vector that doubles as it grows (at 10M frames, a moment holding 8 GB of
    codes beside 4). Here a vector costs its d bytes and 8 of id, and a bulk load of known size
    reserves its room once."""

    def __init__(self, sq: Any, ids: np.ndarray | None = None, codes: np.ndarray | None = None
                 ) -> None:
        self.sq = sq  # a trained IndexScalarQuantizer holding no vectors: encodes and decodes
        self.d = int(sq.d)
        self._ids = np.asarray(ids if ids is not None else np.zeros(0), np.int64)
        self._codes = (codes if codes is not None
                       else np.zeros((0, sq.sa_code_size()), np.uint8))
        self._n = len(self._ids)
        self._sorted: tuple[np.ndarray, np.ndarray | None] | None = None

    @classmethod
    def trained(cls, dim: int, train: np.ndarray) -> Codes:
        """Empty codes whose quantiser is trained on train, (m, dim) float32."""
        sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
        sq.train(np.ascontiguousarray(train, np.float32))
        return cls(sq)

    @property
    def ntotal(self) -> int:
        return self._n

    def reserve(self, n: int) -> None:
        """Room for n vectors in all."""
        if n > len(self._codes):
            self._grow(n)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Encode (m, d) float32 vectors under (m,) int64 ids."""
        m = len(ids)
        if self._n + m > len(self._codes):
            self._grow(max(self._n + m, int(1.25 * len(self._codes))))
        self._codes[self._n:self._n + m] = self.sq.sa_encode(
            np.ascontiguousarray(vectors, np.float32))
        self._ids[self._n:self._n + m] = ids
        self._n += m
        self._sorted = None

    def remove(self, ids: np.ndarray) -> int:
        """Drop these ids; returns how many were held."""
        keep = ~np.isin(self._ids[:self._n], np.asarray(ids, np.int64))
        gone = int(self._n - keep.sum())
        if gone:
            self._codes, self._ids = self._codes[:self._n][keep], self._ids[:self._n][keep]
            self._n, self._sorted = len(self._ids), None
        return gone

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """(m, d) float32 vectors of these (m,) ids, each of which must be held."""
        if self._sorted is None:
            held = self._ids[:self._n]
            # Frame ids mostly arrive in order: then no permutation is kept.
            ordered = bool(np.all(held[1:] > held[:-1]))
            order = None if ordered else np.argsort(held, kind="stable")
            self._sorted = (held if ordered else held[order], order)
        keys, order = self._sorted
        ids = np.asarray(ids, np.int64)
        at = np.minimum(np.searchsorted(keys, ids), max(len(keys) - 1, 0))
        if len(ids) and (not len(keys) or (keys[at] != ids).any()):
            raise KeyError("the re-scoring codes lack ids the index proposed")
        rows = at if order is None else order[at]
        return self.sq.sa_decode(np.ascontiguousarray(self._codes[rows]))

    def copy(self) -> Codes:
        return Codes(self.sq, self._ids[:self._n].copy(), self._codes[:self._n].copy())

    def changed(self, removed: np.ndarray, vectors: np.ndarray, ids: np.ndarray) -> Codes:
        """New codes: these less the removed ids, plus (m, d) vectors under (m,) ids."""
        keep = ~np.isin(self._ids[:self._n], np.asarray(removed, np.int64))
        out = Codes(self.sq)
        out.reserve(int(keep.sum()) + len(ids))
        kept = int(keep.sum())
        out._codes[:kept] = self._codes[:self._n][keep]
        out._ids[:kept] = self._ids[:self._n][keep]
        out._n = kept
        if len(ids):
            out.add(vectors, ids)
        return out

    def release(self) -> None:
        self._ids, self._codes, self._n = np.zeros(0, np.int64), self._codes[:0], 0
        self._sorted = None

    def nbytes(self) -> int:
        return int(self._n * (self._codes.shape[1] + 8))

    def to_parts(self) -> list[np.ndarray]:
        """uint8 arrays: the quantiser, the ids, the codes."""
        return [faiss.serialize_index(self.sq),
                self._ids[:self._n].view(np.uint8), self._codes[:self._n].reshape(-1)]

    @classmethod
    def from_parts(cls, sq: np.ndarray, ids: np.ndarray, codes: np.ndarray) -> Codes:
        """What to_parts gave."""
        index = faiss.deserialize_index(np.ascontiguousarray(sq))
        ids = np.ascontiguousarray(ids).view(np.int64).copy()
        return cls(index, ids, np.ascontiguousarray(codes).reshape(len(ids), -1).copy())

    @classmethod
    def from_id_map(cls, refine: Any) -> Codes:
        """The codes of an IndexIDMap2 over an IndexScalarQuantizer (files from before Codes)."""
        inner = faiss.downcast_index(refine.index)
        ids = faiss.vector_to_array(refine.id_map).astype(np.int64)
        codes = faiss.vector_to_array(inner.codes).reshape(len(ids), -1).copy()
        inner.reset()
        # A clone: refine owns inner and frees it when it goes.
        return cls(faiss.clone_index(inner), ids, codes)

    def _grow(self, n: int) -> None:
        # np.zeros: pages not yet written take no memory, so reserving ahead costs nothing.
        codes = np.zeros((n, self._codes.shape[1]), np.uint8)
        ids = np.zeros(n, np.int64)
        codes[:self._n], ids[:self._n] = self._codes[:self._n], self._ids[:self._n]
        self._codes, self._ids = codes, ids


def flat(dim: int) -> FaissVectors:
    """An empty exact inner-product index with ids."""
    return FaissVectors(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))


def _framed(part: np.ndarray) -> list[np.ndarray]:
    """A part of to_bytes' format: its length (uint64), then its bytes."""
    return [np.frombuffer(np.uint64(len(part)).tobytes(), np.uint8), part]


def auto_nprobe(nlist: int) -> int:
    """The lists a compressed index of nlist lists searches when nprobe is 0 (auto)."""
    return int(min(nlist, max(NPROBE_MIN, round(nlist / LISTS_PER_PROBE))))


def train_size(n: int, config: VectorConfig) -> int:
    """How many of n vectors to train a compressed index on: config.train_max, or 20 a list
    where the lists are more (k-means leaves centres with a handful of points each poorly
    placed, and two-level k-means costs little more for a larger sample)."""
    return int(min(n, max(config.train_max, 20 * _nlist(n, config))))


def _nlist(n: int, config: VectorConfig) -> int:
    return int(min(NLIST_MAX, max(NLIST_MIN, config.nlist or int(4 * np.sqrt(max(n, 1))))))


def compressed(dim: int, train: np.ndarray, config: VectorConfig, n: int) -> FaissVectors:
    """An empty compressed index (config.compressed) for about n vectors, trained on train
    (a sample of them, (m, d) float32; train_size says how many)."""
    nlist = int(min(_nlist(n, config), max(1, len(train) // 4)))
    index = faiss.index_factory(dim, config.compressed.format(nlist=nlist),
                                faiss.METRIC_INNER_PRODUCT)
    train = np.ascontiguousarray(train, np.float32)
    if nlist >= TWO_LEVEL_FROM:
        quantizer = faiss.extract_index_ivf(index).quantizer
        centres = two_level_centres(train, nlist)
        quantizer.train(centres)
        quantizer.add(centres)  # the IVF sees a full quantiser and trains only its codes
    index.train(train)
    refine = Codes.trained(dim, train) if config.refine == "SQ8" else None
    return FaissVectors(index, nprobe=config.nprobe, refine=refine,
                        refine_factor=config.refine_factor)


def two_level_centres(train: np.ndarray, nlist: int) -> np.ndarray:
    """(nlist, d) float32 list centres: k-means into sqrt(nlist) clusters, then each cluster
    into its share of nlist by its size (FAISS's contrib two_level_clustering, spherical: the
    vectors are unit length and searched by inner product)."""
    from faiss.contrib.clustering import two_level_clustering  # only large indexes need it

    centres, _ = two_level_clustering(train, int(np.sqrt(nlist)), nlist, clustering_niter=10,
                                      spherical=True, seed=1234)
    return np.ascontiguousarray(centres, np.float32)


def for_frames(dim: int, config: VectorConfig, vectors: np.ndarray) -> FaissVectors:
    """The FAISS index that suits these (n, d) vectors' count, empty: flat below
    config.compress_from, else compressed and trained on a sample of them."""
    n = len(vectors)
    if n < config.compress_from:
        return flat(dim)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(n, size=train_size(n, config), replace=False))
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
        grown = for_frames(vec.d, config, all_vectors)
        grown.reserve(len(all_ids))
        grown.add(all_vectors, all_ids)
        return grown
    if isinstance(vec, FaissVectors) and vec.refine is not None:
        # The codes are rebuilt once at their new size (copy, remove, add would hold them
        # three times over at some moment).
        out = FaissVectors(faiss.clone_index(vec.index), nprobe=vec.nprobe,
                           refine=vec.refine.changed(tombstones, vectors, ids),
                           refine_factor=vec.refine_factor, lists=vec.lists)
        if len(tombstones):
            out.index.remove_ids(faiss.IDSelectorBatch(np.asarray(tombstones, np.int64)))
        if len(ids):
            out.index.add_with_ids(np.ascontiguousarray(vectors, np.float32),
                                   np.ascontiguousarray(ids, np.int64))
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
    refine = None
    if len(parts) == 2:  # an older file: an IndexIDMap2 over 8-bit codes
        refine = Codes.from_id_map(faiss.deserialize_index(np.ascontiguousarray(parts[1])))
    elif len(parts) == 4:
        refine = Codes.from_parts(*parts[1:])
    return FaissVectors(faiss.deserialize_index(np.ascontiguousarray(parts[0])),
                        nprobe=config.nprobe, refine=refine, refine_factor=config.refine_factor)


def from_file_arrays(arrays: dict[str, np.ndarray], config: VectorConfig) -> FaissVectors:
    """What file_arrays gave (arrays read from the file: the codes are taken, not copied)."""
    out = from_bytes(arrays["index"], config)
    if "codes" in arrays:
        ids = np.ascontiguousarray(arrays["ids"]).view(np.int64)
        out.refine = Codes(faiss.deserialize_index(np.ascontiguousarray(arrays["sq"])), ids,
                           np.ascontiguousarray(arrays["codes"]).reshape(len(ids), -1))
    return out


def best_k(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row's (q, m) scores and ids (dropped ones at -inf), answered as FAISS
    does: float32 scores, and past the end id -1 with the lowest float."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    sims, ids = np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
    return np.where(ids < 0, np.float32(-3.4028235e38), sims).astype(np.float32), ids


def _set_nprobe(index: Any, nprobe: int) -> None:
    """nprobe lists searched; with an HNSW quantiser, a search breadth over the lists' centres
    that finds those nprobe (its efSearch must be at least nprobe)."""
    faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        quantizer.hnsw.efSearch = max(2 * nprobe, 64)


def _is_flat(index: Any) -> bool:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return isinstance(inner, faiss.IndexFlat)


def _factory_name(index: Any) -> str:
    ivf = faiss.extract_index_ivf(index)
    return f"{type(faiss.downcast_index(index)).__name__}, nlist {ivf.nlist}"
