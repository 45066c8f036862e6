"""The Milvus backend of `VectorIndex`: float descriptors in Milvus, the distributed vector
database, through pymilvus's MilvusClient ("http://host:19530", or a file path: milvus-lite in
process, for tests and trials).

One collection per signal and vector version, named "<prefix>_<signal>_<hash of the version>":
vectors of two models (or two sets of weights) can never meet in one search. Each row is the
frame id (primary key), the work id and the vector; IVF_FLAT or HNSW with the IP metric.

Who writes it. Milvus is the shared index: every API process and worker searches the same
collection. If each process applied the change log to it, as it does to its FAISS indexes, N
processes would each insert the same vectors. So the process that registers a work writes its
vectors to Milvus in the same flow as the database commit: inside the transaction, after the
frames have their ids and before the commit (registry.py). If Milvus refuses, the transaction
rolls back and the registration fails (Unavailable): a work is never active without its vectors
in Milvus. If the commit fails after the insert, the rows are orphans: their frame ids are in no
process's map of frames, so every search drops them, and the next rebuild deletes them. A removal
deletes the work's rows after its commit (the database decides; a failed delete leaves rows that
every process already drops, as their frames left its map with the change log). Processes that
apply the change log only update their map of frames. `clipgate index rebuild` re-syncs the
collection from PostgreSQL (live.py): inserts what is missing, deletes what the database no
longer holds, under a lock that no registration holds meanwhile.

Searches use Strong consistency: a frame that a process's map holds (its add committed, after
the insert) is visible to that search. Any failure to reach Milvus raises Unavailable, so the
gate fails closed (503, exit 3), and health names the backend.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any

import numpy as np

from clipgate.errors import Unavailable
from index.vectors import VectorConfig, VectorIndex

log = logging.getLogger(__name__)

_clients: dict[tuple[str, str], Any] = {}
_known: set[tuple[str, str]] = set()  # (uri, collection) known to exist in this process
_lock = threading.Lock()
ID_BATCH = 16_384


def collection_name(config: VectorConfig, signal: str, version: str) -> str:
    """The collection of one signal's vectors of one version (names allow [A-Za-z0-9_])."""
    digest = hashlib.sha256(version.encode()).hexdigest()[:16]
    return f"{_stem(config, signal)}_{digest}"


def _stem(config: VectorConfig, signal: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{config.milvus_prefix}_{signal}")


def _client(config: VectorConfig) -> Any:
    key = (config.milvus_uri, config.milvus_token)
    with _lock:
        client = _clients.get(key)
        if client is None:
            from pymilvus import MilvusClient  # heavy; only the milvus backend needs it

            try:
                client = MilvusClient(uri=config.milvus_uri, token=config.milvus_token,
                                      timeout=config.milvus_timeout_s)
            except Exception as e:
                raise _down(config, e) from e
            _clients[key] = client
        return client


def _down(config: VectorConfig, e: BaseException) -> Unavailable:
    return Unavailable(f"the vector backend milvus at {config.milvus_uri} is unreachable: "
                       f"{type(e).__name__}: {e}")


def forget_clients() -> None:
    """Close this process's Milvus connections (tests; a forked child opens its own)."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # closing a dead connection: nothing to keep
                pass
        _clients.clear()
        _known.clear()


def collections(config: VectorConfig) -> list[str]:
    """The names of every collection in the Milvus at config.milvus_uri."""
    try:
        return list(_client(config).list_collections(timeout=config.milvus_timeout_s))
    except Exception as e:
        raise _down(config, e) from e


def ping(config: VectorConfig) -> dict[str, Any]:
    """Whether Milvus answers: {"backend": "milvus", "uri", "ok", "error"?}."""
    out: dict[str, Any] = {"backend": "milvus", "uri": config.milvus_uri}
    try:
        _client(config).list_collections(timeout=config.milvus_timeout_s)
        out["ok"] = True
    except Exception as e:
        out.update(ok=False, error=str(_down(config, e)))
    return out


class MilvusVectors(VectorIndex):
    """One signal's collection in Milvus. Shared: writes come from registry.py and rebuilds."""

    kind = "milvus"
    shared = True

    def __init__(self, config: VectorConfig, signal: str, version: str, dim: int) -> None:
        super().__init__(dim)
        self.config = config
        self.name = collection_name(config, signal, version)
        self._ensure()

    def _call(self, what: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(_client(self.config), what)(
                *args, timeout=self.config.milvus_timeout_s, **kwargs)
        except Unavailable:
            raise
        except Exception as e:
            raise _down(self.config, e) from e

    def _ensure(self) -> None:
        key = (self.config.milvus_uri, self.name)
        if key in _known:
            return
        if not self._call("has_collection", self.name):
            from pymilvus import DataType  # heavy; only the milvus backend needs it

            client = _client(self.config)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("work", DataType.VARCHAR, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.d)
            params = client.prepare_index_params()
            if self.config.milvus_index == "HNSW":
                params.add_index(field_name="vector", index_type="HNSW", metric_type="IP",
                                 params={"M": self.config.milvus_hnsw_m, "efConstruction": 200})
            else:
                params.add_index(field_name="vector", index_type="IVF_FLAT", metric_type="IP",
                                 params={"nlist": self.config.milvus_nlist})
            # Strong: another process's insert that committed before our read is seen.
            self._call("create_collection", self.name, schema=schema, index_params=params,
                       consistency_level="Strong")
        _known.add(key)

    @property
    def ntotal(self) -> int:
        rows = self._call("query", self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, np.float32)
        sims = np.full((len(q), k), np.float32(-3.4028235e38), np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if not len(q) or k <= 0:
            return sims, ids
        params = ({"ef": max(self.config.milvus_hnsw_ef, k)}
                  if self.config.milvus_index == "HNSW" else {"nprobe": self.config.milvus_nprobe})
        found = self._call("search", self.name, data=[v.tolist() for v in q], limit=k,
                           search_params={"metric_type": "IP", "params": params},
                           consistency_level="Strong")
        for r, hits in enumerate(found):
            for c, hit in enumerate(list(hits)[:k]):
                sims[r, c], ids[r, c] = hit["distance"], hit["id"]
        return sims, ids

    def add(self, vectors: np.ndarray, ids: np.ndarray, works: np.ndarray | None = None) -> None:
        """Insert rows (upsert: an insert retried after a timeout leaves one row, not two)."""
        works = works if works is not None else np.full(len(ids), "", "U36")
        for lo in range(0, len(ids), 2_000):  # under gRPC's message size limit
            rows = [{"id": int(i), "work": str(w), "vector": v.tolist()} for i, w, v in zip(
                ids[lo:lo + 2_000], works[lo:lo + 2_000],
                np.asarray(vectors[lo:lo + 2_000], np.float32))]
            self._call("upsert", self.name, rows)

    def flush(self) -> None:
        """Seal what was inserted, so that it is searched through the index rather than scanned
        (milvus-lite: 10 frames against 10,000 unsealed rows took 1.1 s, sealed 0.1 s)."""
        self._call("flush", self.name)

    def remove(self, ids: np.ndarray) -> int:
        for lo in range(0, len(ids), ID_BATCH):
            self._call("delete", self.name, ids=[int(i) for i in ids[lo:lo + ID_BATCH]])
        return len(ids)

    def remove_work(self, work_id: str) -> None:
        """Delete every row of a work (by its work field: no list of frame ids needed)."""
        if not re.fullmatch(r"[0-9a-fA-F-]{1,64}", work_id):
            raise ValueError(f"not a work id: {work_id!r}")
        self._call("delete", self.name, filter=f'work == "{work_id}"')

    def ids(self) -> np.ndarray:
        """Every frame id in the collection (for a re-sync), int64, sorted."""
        try:
            it = _client(self.config).query_iterator(self.name, batch_size=ID_BATCH,
                                                     output_fields=["id"])
            out = []
            while True:
                batch = it.next()
                if not batch:
                    break
                out.append(np.array([r["id"] for r in batch], np.int64))
            it.close()
        except Exception as e:
            raise _down(self.config, e) from e
        return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)

    def copy(self) -> MilvusVectors:
        return self

    def drop_other_versions(self, signal: str) -> list[str]:
        """Drop this signal's collections of other versions (under the same prefix), which no
        process can search any more once the database holds this version (a re-embedding made
        them stale: every process computing the old version is refused by check_versions).
        Returns the names dropped."""
        stale = re.compile(re.escape(_stem(self.config, signal)) + r"_[0-9a-f]{16}")
        names = [n for n in collections(self.config) if stale.fullmatch(n) and n != self.name]
        for name in names:
            self._call("drop_collection", name)
            with _lock:
                _known.discard((self.config.milvus_uri, name))
            log.info("milvus: dropped %s, vectors of another version of %s", name, signal)
        return names

    def search_cost(self, queries: int) -> int:
        return 0  # Milvus searches in its own process: nothing to split into threads here

    def describe(self) -> dict[str, Any]:
        return {"backend": "milvus", "kind": self.config.milvus_index, "uri":
                self.config.milvus_uri, "collection": self.name}
