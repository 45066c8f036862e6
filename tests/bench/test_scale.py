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


def test_bench_scale_keeps_its_index_and_a_second_run_reuses_it(settings, tmp_path):
    settings = settings.model_copy(update={"faiss_compress_from": 5_000})
    first = run_scale(settings, frames=[10_000], clips=10, keep=tmp_path)["rows"][0]
    kept = list(tmp_path.glob("*.index"))
    assert len(kept) == 1 and first["kept"] == str(kept[0])
    stamp = kept[0].stat().st_mtime_ns
    again = run_scale(settings, frames=[10_000], clips=10, keep=tmp_path)["rows"][0]
    # Not built again: the same file, the first build's time, the same answers found.
    assert kept[0].stat().st_mtime_ns == stamp and again["build_s"] == first["build_s"]
    assert again["recall_at_10"] == first["recall_at_10"]
    assert again["index_bytes_per_frame"] == first["index_bytes_per_frame"]
    # Another catalogue (another seed) is another file.
    run_scale(settings, frames=[10_000], clips=10, seed=1, keep=tmp_path)
    assert len(list(tmp_path.glob("*.index"))) == 2
