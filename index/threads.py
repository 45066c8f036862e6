"""Small searches run on one thread.

FAISS (OpenMP) and the BLAS under it and numpy split even a tiny search across every core. On a
machine whose cores are busy (other workers, a training job's data loader, a bench beside the
gate) each split then waits for a thread that is not running. Measured on a 2-core machine with
another process busy: searching a 10-frame clip's 130 SSCD rows in 1,000 frames took 21 ms on 2
threads and 6 ms on one, PDQ's range search 32 ms and 0.02 ms, normalisation's product with the
background 25 ms and 4 ms. A search that small gains nothing from threads even on an idle machine,
so below SMALL_WORK it gets one; a big catalogue's exact searches keep them all. A compressed
index's search compares only its lists' centres and the few lists it probes, so it is small at
any size (FrameIndex.search_cost).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

# Query rows x indexed vectors (or descriptors) below which a search runs on one thread.
SMALL_WORK = 20_000_000

_controller: ThreadpoolController | None = None
_lock = threading.Lock()


def _threadpools() -> ThreadpoolController:
    # Made on first use, once FAISS, numpy and their thread pools are loaded (it lists those).
    global _controller
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController()
        return _controller


@contextmanager
def one_thread_if_small(work: int) -> Iterator[None]:
    """Run the block's FAISS and BLAS calls on one thread when `work` (query rows x vectors
    searched) is below SMALL_WORK. OpenMP's thread count is per calling thread; OpenBLAS's is
    process-wide, so a big search in another thread meanwhile may run on fewer threads (slower,
    never wrong)."""
    if work >= SMALL_WORK:
        yield
        return
    with _threadpools().limit(limits=1):
        yield


@contextmanager
def threads_limited(n: int) -> Iterator[None]:
    """Run the block's FAISS and BLAS calls on at most n threads (benchmarks compare counts)."""
    with _threadpools().limit(limits=n):
        yield
