"""The GPU side of the gate and its benchmark: CLIP search on the GPU answers as the CPU does,
the embedder's CUDA fp16 path, and `clipgate bench perf --device cpu|cuda` printing the report.
Tests marked `gpu` need CUDA and are skipped without it (scripts/gpu-check.sh runs them)."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from index import gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _flat(n: int = 5000, d: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    index.add_with_ids(xb, rng.permutation(10 * n)[:n].astype(np.int64))
    q = xb[rng.integers(0, n, 64)] + 0.05 * rng.standard_normal((64, d)).astype(np.float32)
    return index, q.astype(np.float32)


class _Owner:
    pass


@pytest.fixture(autouse=True)
def _reset_device():
    yield
    gpu.use_device("auto")


def test_cpu_search_is_faiss_search():
    index, q = _flat()
    gpu.use_device("cpu")
    assert gpu.backend() == "cpu"
    sims, ids = gpu.float_search(_Owner(), index, q, 8)
    want_s, want_i = index.search(q, 8)
    assert np.array_equal(ids, want_i) and np.allclose(sims, want_s)


def test_device_choice_is_checked():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        gpu.use_device("tpu")
    if not torch.cuda.is_available():
        gpu.use_device("cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            gpu.backend()


@pytest.mark.gpu
@needs_cuda
def test_gpu_search_gives_the_cpu_answers():
    index, q = _flat(n=20000)
    want_s, want_i = index.search(q, 8)
    gpu.use_device("cuda")
    owner = _Owner()
    sims, ids = gpu.float_search(owner, index, q, 8)
    assert gpu.backend() in ("faiss-gpu", "torch-cuda")
    assert (ids == want_i).mean() > 0.999 and np.allclose(sims, want_s, atol=1e-4)
    index.add_with_ids(q[:1], np.array([10**9], np.int64))  # changed in place: copied again
    _, ids = gpu.float_search(owner, index, q[:1], 1)
    assert ids[0, 0] == 10**9


@pytest.mark.gpu
@needs_cuda
def test_embedder_runs_in_fp16_on_cuda_close_to_the_cpu():
    from index.embedder import ClipEmbedder

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(8)]
    cuda = ClipEmbedder("ViT-B-32", None, "cuda")
    assert next(cuda.net.parameters()).dtype == torch.float16
    a = cuda.embed(frames)
    b = ClipEmbedder("ViT-B-32", None, "cpu").embed(frames)
    assert a.shape == b.shape == (8, 512) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-3)
    assert float((a * b).sum(axis=1).min()) > 0.99  # same random weights, fp16 vs fp32


def _bench(tmp_path, monkeypatch, device: str) -> dict:
    from clipgate.cli import app
    from clipgate.settings import get_settings

    monkeypatch.setenv("CLIPGATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["bench", "perf", "--device", device, "--works", "12",
                                     "--runs", "1", "--seconds", "2"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{"):])


def test_bench_perf_cpu_prints_the_report(tmp_path, monkeypatch):
    report = _bench(tmp_path, monkeypatch, "cpu")
    assert report["index"]["works"] == 12 and report["search_backend"] == "cpu"
    assert report["clip"]["frames"] == 48 and report["gate_frames_per_s"] > 0
    assert report["embed"]["signal"] == "sscd" and report["embed"]["frames_per_s"] > 0
    assert report["embed"]["providers"] == ["CPUExecutionProvider"]
    assert set(report["search_latency_ms"]["signals"]) == {"sscd", "pdq", "phash"}
    assert report["clip_mode"]["computed"] is False  # no checkpoint: CLIP costs nothing
    lat = report["search_latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] and lat["frames_indexed"] >= 12
    g = report["gpu_seconds"]
    assert g["gate"] == 0.0 and g["generation"] == 0.0 and g["gate_to_generation"] is None
    assert "used no GPU time" in g["note"]


@pytest.mark.gpu
@needs_cuda
def test_bench_perf_cuda_prints_the_same_report(tmp_path, monkeypatch):
    report = _bench(tmp_path, monkeypatch, "cuda")
    assert report["search_backend"] in ("faiss-gpu", "torch-cuda")
    assert report["embed"]["frames_per_s"] > 0
    assert report["gpu_seconds"]["gate"] > 0
