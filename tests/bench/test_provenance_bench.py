"""`clipgate bench provenance` at a small size: released clips' copies are traced to their own
release, never to another, and clips never released to none."""

from __future__ import annotations

from bench.provenance import TRANSFORMS, provenance_table, run_provenance


def test_bench_provenance_smoke(settings):
    result = run_provenance(settings, clips=2, negatives=2, seconds=4.0,
                            transforms=("stripped", "crf28", "scale50", "mirror"))
    assert result["overall"]["combined"]["n"] == 8
    assert result["per_transform"]["stripped"]["combined"]["recovered"] == 1.0
    assert result["per_transform"]["stripped"]["watermark"]["recovered"] == 1.0
    assert result["overall"]["combined"]["wrong"] == 0
    assert result["overall"]["combined"]["recovered"] >= 0.75
    assert result["never_released"]["false_combined"] == 0
    assert result["watermark_psnr_db"]["watermark_db_min"] >= 38.0
    table = provenance_table(result)
    assert "| stripped | 100% |" in table and "never released" in table
    assert set(TRANSFORMS) >= {"crf35", "scale75", "crop10", "fps", "excerpt3s", "caption"}
