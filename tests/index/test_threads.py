"""Small searches run on one thread; big ones keep every thread."""

import faiss  # noqa: F401 - loads the OpenMP and BLAS pools the limit applies to
import numpy as np  # noqa: F401
from threadpoolctl import threadpool_info

from index.threads import SMALL_WORK, one_thread_if_small


def _threads() -> dict[str, int]:
    return {p["filepath"]: p["num_threads"] for p in threadpool_info()}


def test_a_small_search_runs_on_one_thread_and_then_gets_its_threads_back():
    before = _threads()
    assert before  # FAISS brings OpenMP and a BLAS
    with one_thread_if_small(130 * 1000):
        assert set(_threads().values()) == {1}
    assert _threads() == before
    with one_thread_if_small(SMALL_WORK):
        assert _threads() == before
