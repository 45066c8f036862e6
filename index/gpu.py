"""Nearest-neighbour search of float signals (SSCD, CLIP) on the GPU, with a CPU fallback that gives
the same answers.

Three ways, picked once per process (`use_device`, default "auto"):
- "faiss-gpu": the flat inner-product index copied to the GPU by faiss (faiss-gpu and CUDA);
- "torch-cuda": the same exact search as one fp32 matrix product and top-k in torch on CUDA, for
  machines with CUDA but a CPU-only faiss (fp32 and no TF32, so rankings match faiss's);
- "cpu": faiss on the CPU, as before.

A published FrameIndex is never changed (changes go to a copy), so its GPU copy is made once, on
its first search, and dropped with it. The hashes (PDQ, pHash) stay on the CPU: a range search
over a few hundred thousand 256-bit codes takes microseconds there, and faiss has no GPU range
search for binary codes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
_device = "auto"
_lock = threading.Lock()
_mirrors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def use_device(device: str) -> None:
    """Where float-signal searches run in this process: "auto" (CUDA when present), "cpu" or "cuda"."""
    global _device
    name = device.split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"search device must be one of {', '.join(DEVICES)}, got {device!r}")
    with _lock:
        _device = name
        _mirrors.clear()


def _cuda() -> bool:
    try:
        import torch  # heavy and optional here: the CPU search needs none of it

        return torch.cuda.is_available()
    except ImportError:
        return False


def _faiss_gpus() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def backend() -> str:
    """The way searches run now: "faiss-gpu", "torch-cuda" or "cpu"."""
    if _device == "cpu" or (_device == "auto" and not _cuda()):
        return "cpu"
    if _device == "cuda" and not _cuda():
        raise RuntimeError("search device cuda asked for, but CUDA is not available")
    return "faiss-gpu" if _faiss_gpus() > 0 else "torch-cuda"


class _TorchMirror:
    """The vectors and ids of a flat IP index as CUDA tensors."""

    def __init__(self, index: Any) -> None:
        import torch  # heavy: only the torch-cuda way needs it

        inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
        vectors = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros(
            (0, inner.d), np.float32)
        ids = (faiss.vector_to_array(index.id_map) if hasattr(index, "id_map")
               else np.arange(inner.ntotal))
        self.ntotal = index.ntotal
        self.xb = torch.from_numpy(np.ascontiguousarray(vectors, np.float32)).cuda()
        self.ids = torch.from_numpy(ids.astype(np.int64)).cuda()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch  # heavy: only the torch-cuda way needs it

        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32: same order as faiss
        try:
            q = torch.from_numpy(np.ascontiguousarray(queries, np.float32)).cuda()
            sims, pos = torch.topk(q @ self.xb.T, k, dim=1)
            return sims.cpu().numpy(), self.ids[pos].cpu().numpy()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev


class _FaissMirror:
    def __init__(self, index: Any) -> None:
        self.ntotal = index.ntotal
        self.res = faiss.StandardGpuResources()
        self.index = faiss.index_cpu_to_gpu(self.res, 0, index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)


def _mirror(owner: object, name: str, index: Any, how: str) -> Any:
    with _lock:
        copies = _mirrors.setdefault(owner, {})
        m = copies.get(name)
        if m is None or m.ntotal != index.ntotal:  # changed in place (not the live path): redo
            m = _FaissMirror(index) if how == "faiss-gpu" else _TorchMirror(index)
            copies[name] = m
        return m


def float_search(owner: object, index: Any, queries: np.ndarray, k: int, *, name: str = ""
                 ) -> tuple[np.ndarray, np.ndarray]:
    """index.search(queries, k) on the device in use: (q, k) similarities and ids, as faiss
    answers. owner is the object the index belongs to (its GPU copy lives as long as it), name
    the signal whose index it is."""
    how = backend()
    if how == "cpu" or index.ntotal == 0:
        return index.search(queries, k)
    try:
        return _mirror(owner, name, index, how).search(queries, k)
    except Exception as e:  # a GPU that fails must not stop the gate: the CPU answers the same
        log.error("GPU search failed (%s); searching on the CPU", e)
        return index.search(queries, k)
