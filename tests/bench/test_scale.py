"""`clipgate bench scale` at 1e4 frames: the CI smoke test (the full sizes are run by hand)."""

from __future__ import annotations

from bench.scale import run_scale


def test_bench_scale_reports_memory_latency_and_recall_at_1e4(settings):
    settings = settings.model_copy(update={"faiss_compress_from": 5_000})
    out = run_scale(settings, frames=[10_000], backend="faiss", clips=20)
    [row] = out["rows"]
    assert row["frames"] == 10_000 and row["index"].startswith("IndexIVFPQFastScan")
    # Resident growth at 1e4 frames is within the allocator's noise (CI saw it shrink by 11 MB):
    # the index's own size is what is checked.
    assert row["build_s"] > 0 and "rss_mb" in row
    # 64 bytes of product codes, 512 of re-scoring codes and the ids, a frame.
    assert 500 < row["index_bytes_per_frame"] < 1_000
    assert 0 < row["search_10_frames_ms_p50"] <= row["search_10_frames_ms_p99"]
    assert row["recall_at_10"] >= 0.9
    assert out["dim"] == 512 and out["signal"] == "sscd"
