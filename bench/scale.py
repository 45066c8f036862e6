"""`clipgate bench scale`: what the float-descriptor index costs as the catalogue grows.

For each size it streams a synthetic catalogue (index.VectorModel: vectors shaped like the SSCD
vectors of real pictures and their augmentations, 10 frames a work, made in chunks so that a
large size never holds its float vectors twice) into one `VectorIndex` of the chosen backend,
and reports: resident memory the index added (this process's RSS, plus milvus-lite's server
process for the milvus backend), bytes per frame, build time (training included), search time
of a 10-frame clip (p50, p99) and recall@10 of its frames against exact search (computed by
streaming the same chunks again).

Only the float index is measured: the hashes (32 + 8 bytes a frame), the map from frame to work
and time, and the database are not in these figures; docs/scale.md adds them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import index
from bench.perf import _machine
from clipgate.settings import Settings

CHUNK = 50_000
FRAMES_PER_WORK = 10
K = 10


def _rss(children: bool) -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    if children:
        for c in me.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
    return total


def run_scale(settings: Settings, *, frames: list[int], backend: str = "faiss", clips: int = 50,
              seed: int = 0, max_rss_gb: float = 8.0, nprobes: list[int] | None = None,
              threads: list[int] | None = None, keep: Path | None = None,
              progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Build and measure an index of each size in frames; JSON-ready results. max_rss_gb: stop
    (and say so) if this process grows past it while building. nprobes: a compressed FAISS
    index is also searched with each of these lists' counts (`by_nprobe`), one build for all.
    threads: every search is also timed on each of these thread counts (`by_threads`); the
    main figures use the gate's choice (index.one_thread_if_small). keep: a folder where each
    FAISS index built is kept, and reused by a later run of the same catalogue and settings
    (its build time and memory are the first build's)."""
    signal = next(s for s in index.active(settings).values() if s.kind == "float")
    model = index.vector_model(signal, settings)
    config = index.VectorConfig.from_settings(settings.model_copy(
        update={"vector_backend": backend}))
    rows = []
    for n in frames:
        progress(f"{n:,} frames on {backend}")
        rows.append(_one(n, model, config, clips=clips, seed=seed, max_rss_gb=max_rss_gb,
                         nprobes=nprobes or [], threads=threads or [], progress=progress,
                         keep=keep))
        if rows[-1].get("stopped"):
            break
    return {"machine": _machine(), "backend": backend, "signal": signal.name,
            "dim": model.dim, "compress_from": config.compress_from,
            "compressed": config.compressed, "nprobe": config.nprobe, "refine": config.refine,
            "rows": rows}


def _chunk(model: Any, seed: int, c: int, n: int) -> np.ndarray:
    lo = c * CHUNK
    return model.sample(min(CHUNK, n - lo), np.random.default_rng([seed, c]),
                        frames_per_work=FRAMES_PER_WORK)


def _one(n: int, model: Any, config: Any, *, clips: int, seed: int, max_rss_gb: float,
         nprobes: list[int], threads: list[int], progress: Callable[[str], None],
         keep: Path | None = None) -> dict[str, Any]:
    milvus = config.backend == "milvus"
    rng = np.random.default_rng([seed, n])
    # The clips: 10 consecutive frames of random works, each frame changed a little (what a
    # re-encoded, slightly edited copy does to its vectors).
    starts = rng.choice(n // FRAMES_PER_WORK, size=clips, replace=False) * FRAMES_PER_WORK
    tmp = tempfile.TemporaryDirectory(prefix="clipgate-scale-")
    kept = Kept(keep, n, seed, clips, model, config) if keep is not None and not milvus else None
    if kept is not None and kept.exists():
        progress(f"  reusing the index built earlier: {kept.index_path}")
        vec, sources, built = kept.load()
    else:
        vec, sources, built = _build(n, model, config, starts, seed=seed, tmp=tmp.name,
                                     max_rss_gb=max_rss_gb, progress=progress)
        if kept is not None and not built.get("stopped"):
            progress(f"  keeping the index for later runs: {kept.index_path}")
            kept.save(vec, sources, built)
    noise = model.sample(len(sources), rng) - model.mean / max(1e-6, np.linalg.norm(model.mean))
    queries = sources + 0.15 * noise
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    # One untimed pass over every clip first: the first searches after building or loading an
    # index of gigabytes touch memory the kernel is still settling (at 10M frames their p99 was
    # 12-14 ms against 8 ms a pass later); a serving process is past that.
    for j in range(clips):
        vec.search(queries[j * FRAMES_PER_WORK:(j + 1) * FRAMES_PER_WORK], K)
    kind = vec.describe()
    default = kind.get("nprobe")
    probes = [default, *[p for p in nprobes if p != default]] if default else [None]
    searched, by_threads = {}, {}
    for p in probes:
        if p is not None:
            vec.set_nprobe(p)
        searched[p] = _searches(vec, queries, clips)
        for t in threads:
            by_threads[p, t] = _searches(vec, queries, clips, threads=t)
    if default:
        vec.set_nprobe(default)
    truth = kept.truth() if kept is not None else None
    if truth is None:
        progress(f"  searched; exact answers for recall (streaming {n:,} frames again)")
        truth = _exact(model, seed, built["frames_added"], queries)
        if kept is not None:
            kept.save_truth(truth)
    held = _index_bytes(vec)
    tmp.cleanup()
    out = {"frames": n, "index": kind.get("factory", kind["kind"]),
           **({"lists_by": kind["lists_by"]} if "lists_by" in kind else {}),
           "build_s": built["build_s"], "rss_mb": round(built["rss"] / 2**20, 1),
           "bytes_per_frame": round(built["rss"] / n, 1),
           # FAISS: the index's own size (serialised), without the allocator's slack and the
           # benchmark's buffers that RSS also counts.
           "index_bytes_per_frame": round(held / n, 1) if held is not None else None,
           **_figures(*searched[probes[0]], truth)}
    if kept is not None:
        out["kept"] = str(kept.index_path)
    if len(probes) > 1:
        out["by_nprobe"] = [{"nprobe": p, **_figures(*searched[p], truth)} for p in probes]
    if threads:
        out["by_threads"] = [{"nprobe": p, "threads": t, **_figures(*by_threads[p, t], truth)}
                             for p in probes for t in threads]
    if built.get("stopped"):
        out["stopped"] = built["stopped"]
    return out


def _build(n: int, model: Any, config: Any, starts: np.ndarray, *, seed: int, tmp: str,
           max_rss_gb: float, progress: Callable[[str], None]
           ) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Stream the catalogue into a new index: (the index, the clips' source frames, and
    build_s, rss (bytes grown), frames_added, stopped (a reason, or None))."""
    milvus = config.backend == "milvus"
    clips = len(starts)
    chunks = -(-n // CHUNK)
    rss0 = _rss(milvus)
    t0 = time.perf_counter()
    if milvus:
        config = index.VectorConfig(**{**config.__dict__, "milvus_uri": config.milvus_uri if
                                       config.milvus_uri.startswith("http") else
                                       str(Path(tmp) / "milvus.db")})
        vec: Any = index.MilvusVectors(config, "bench", f"scale-{n}-{seed}-{os.getpid()}",
                                       model.dim)
    elif n >= config.compress_from:
        train = model.sample(index.train_size(n, config), np.random.default_rng([seed, n, 1]))
        vec = index.compressed_vectors(model.dim, train, config, n)
        del train
        vec.reserve(n)
        progress(f"  trained in {time.perf_counter() - t0:.0f} s")
    else:
        vec = index.flat_vectors(model.dim)
    sources = np.zeros((clips * FRAMES_PER_WORK, model.dim), np.float32)
    stopped, added = None, 0
    for c in range(chunks):
        x = _chunk(model, seed, c, n)
        ids = np.arange(c * CHUNK, c * CHUNK + len(x), dtype=np.int64)
        vec.add(x, ids)
        added += len(x)
        for j, s in enumerate(starts.tolist()):
            if c * CHUNK <= s < c * CHUNK + len(x):
                sources[j * FRAMES_PER_WORK:(j + 1) * FRAMES_PER_WORK] = \
                    x[s - c * CHUNK:s - c * CHUNK + FRAMES_PER_WORK]
        if c % 20 == 19:
            progress(f"  {(c + 1) * CHUNK:,} frames in {time.perf_counter() - t0:.0f} s")
        if _rss(milvus) > max_rss_gb * 2**30:
            stopped = f"stopped at {(c + 1) * CHUNK:,} frames: over {max_rss_gb} GB resident"
            break
    if milvus:
        vec.flush()  # sealed segments are searched through their index (part of the build)
    return vec, sources, {"build_s": round(time.perf_counter() - t0, 2),
                          "rss": _rss(milvus) - rss0, "frames_added": added, "stopped": stopped}


class Kept:
    """A built FAISS index kept on disk with what its figures need (the clips' source frames,
    the build's time and memory, the exact answers), so that search changes can be compared on
    a 10M catalogue without a 25-minute build each time. Named by everything the catalogue and
    the index depend on: the size, seed and clip count, the vector model, the index settings."""

    def __init__(self, folder: Path, n: int, seed: int, clips: int, model: Any,
                 config: Any) -> None:
        key = hashlib.sha256(repr((n, seed, clips, config.compressed, config.compress_from,
                                   config.nlist, config.train_max, config.refine,
                                   config.refine_factor)).encode()
                             + model.mean.tobytes() + model.basis.tobytes()
                             + np.float64(model.iso).tobytes()).hexdigest()[:12]
        folder.mkdir(parents=True, exist_ok=True)
        self.index_path = folder / f"scale-{n}-{key}.index"
        self.meta_path = folder / f"scale-{n}-{key}.npz"
        self.truth_path = folder / f"scale-{n}-{key}.truth.npy"
        self.config = config

    def exists(self) -> bool:
        return self.index_path.exists() and self.meta_path.exists()

    def save(self, vec: Any, sources: np.ndarray, built: dict[str, Any]) -> None:
        # Written under a temporary name and renamed: an interrupted save is never reused.
        part = self.index_path.with_suffix(".part")
        vec.write(part)
        np.savez(self.meta_path, sources=sources, build_s=built["build_s"], rss=built["rss"],
                 frames_added=built["frames_added"])
        part.rename(self.index_path)

    def load(self) -> tuple[Any, np.ndarray, dict[str, Any]]:
        with np.load(self.meta_path) as meta:
            built = {"build_s": float(meta["build_s"]), "rss": int(meta["rss"]),
                     "frames_added": int(meta["frames_added"]), "stopped": None}
            sources = meta["sources"]
        data = np.memmap(self.index_path, np.uint8, mode="r")  # copied part by part, not whole
        vec = index.vectors_from_bytes(data, self.config)
        del data
        return vec, sources, built

    def truth(self) -> np.ndarray | None:
        return np.load(self.truth_path) if self.truth_path.exists() else None

    def save_truth(self, truth: np.ndarray) -> None:
        np.save(self.truth_path, truth)


def _searches(vec: Any, queries: np.ndarray, clips: int, *, threads: int = 0
              ) -> tuple[list[float], np.ndarray]:
    """Each clip's 10 frames searched as one batch, 3 passes (p99 of 150 searches rather than
    of 50), on as many threads as the gate would use (index.one_thread_if_small), or on
    `threads`: the times in seconds and the (q, K) ids found."""
    times = []
    found = np.zeros((len(queries), K), np.int64)
    for _ in range(3):
        for j in range(clips):
            q = queries[j * FRAMES_PER_WORK:(j + 1) * FRAMES_PER_WORK]
            pool = (index.threads_limited(threads) if threads
                    else index.one_thread_if_small(vec.search_cost(len(q))))
            t = time.perf_counter()
            with pool:
                _, ids = vec.search(q, K)
            times.append(time.perf_counter() - t)
            found[j * FRAMES_PER_WORK:(j + 1) * FRAMES_PER_WORK] = ids
    return times, found


def _figures(times: list[float], found: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
    return {"search_10_frames_ms_p50": round(1000 * float(np.percentile(times, 50)), 2),
            "search_10_frames_ms_p99": round(1000 * float(np.percentile(times, 99)), 2),
            "recall_at_10": round(recall, 4)}


def _exact(model: Any, seed: int, n: int, queries: np.ndarray) -> np.ndarray:
    """(q, K) ids of the exact K nearest, by streaming the catalogue's chunks again."""
    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_i = np.full((len(queries), K), -1, np.int64)
    for c in range(-(-n // CHUNK)):
        x = _chunk(model, seed, c, n)
        sims = queries @ x.T
        top = np.argpartition(-sims, min(K, sims.shape[1] - 1), axis=1)[:, :K]
        s = np.take_along_axis(sims, top, 1)
        i = top + c * CHUNK
        all_s, all_i = np.hstack([best_s, s]), np.hstack([best_i, i])
        order = np.argsort(-all_s, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(all_s, order, 1), np.take_along_axis(all_i, order, 1)
    return best_i


def _index_bytes(vec: Any) -> int | None:
    if getattr(vec, "shared", False):
        return None
    return vec.nbytes()
