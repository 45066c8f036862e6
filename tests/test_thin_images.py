"""Thin and tiny images (issue 15): a clear 400 on /v1/checks and /v1/works, exit 2 in the CLI,
and refused when probed, before any pixel reaches OpenCV (a 1-pixel side was a cv2.error, 500)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from clipgate import apikeys
from clipgate.app import create_app
from index.media import MAX_SAMPLE_SIDE, MIN_SAMPLE_SIDE, MediaError, probe

THIN = [(1, 1), (1, 1000), (1000, 1), (4, 4000), (1, 8_000_000)]


def _png(folder: Path, w: int, h: int) -> Path:
    path = folder / f"thin-{w}x{h}.png"
    rng = np.random.default_rng(w * 7 + h)
    Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8), mode="L").save(path)
    return path


@pytest.fixture
def api(settings):
    key = apikeys.create_key("operator", role="admin", settings=settings)[1]
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


@pytest.mark.parametrize("w, h", THIN)
def test_thin_images_are_a_clear_400_on_checks_and_works(settings, api, tmp_path, w, h):
    path = _png(tmp_path, w, h)
    files = {"file": (path.name, path.read_bytes(), "image/png")}
    r = api.post("/v1/checks", files=files)
    assert r.status_code == 400, r.text[:300]
    assert "too small" in r.json()["detail"] or "too thin" in r.json()["detail"]
    r = api.post("/v1/works", files=files, data={"owner": "O", "title": "T", "policy": "block"})
    assert r.status_code == 400, r.text[:300]
    assert f"{w}x{h}" in r.json()["detail"]
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM checks").fetchone()[0] == 0


def test_thin_images_exit_2_in_the_cli(cli, tmp_path):
    path = _png(tmp_path, 4, 4000)
    r = cli("check", path)
    assert r.exit_code == 2, r.output
    assert "too small" in r.output
    r = cli("works", "add", _png(tmp_path, 1000, 1), "--owner", "O", "--title", "T")
    assert r.exit_code == 2, r.output


def test_the_smallest_usable_frame_passes_and_one_pixel_less_does_not(tmp_path):
    side, long = MIN_SAMPLE_SIDE, MAX_SAMPLE_SIDE
    assert probe(_png(tmp_path, side, side), max_frame_pixels=10**8).width == side
    assert probe(_png(tmp_path, side, long), max_frame_pixels=10**8).height == long
    with pytest.raises(MediaError, match="too small"):
        probe(_png(tmp_path, side - 1, side), max_frame_pixels=10**8)
    with pytest.raises(MediaError, match="too thin"):
        probe(_png(tmp_path, long * 2 + 1, side * 2), max_frame_pixels=10**8)
