"""Writing frames to H.264 MP4: validation and atomic replacement."""

from __future__ import annotations

import numpy as np
import pytest

from generator.encode import write_mp4


def _frames(n, h=64, w=96):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_writes_every_frame(tmp_path, decode):
    path = tmp_path / "sub" / "out.mp4"
    assert write_mp4(_frames(30), path, fps=10) == 30
    frames, info = decode(path)
    assert len(frames) == 30 and (info["width"], info["height"], info["fps"]) == (96, 64, 10)
    assert info["pix_fmt"] == "yuv420p"


def test_odd_dimensions_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(_frames(2, h=63), tmp_path / "odd.mp4", fps=10)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        write_mp4(iter([]), tmp_path / "empty.mp4", fps=10)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_producer_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(_frames(5), path, fps=10)
    before = path.read_bytes()

    def broken():
        yield from _frames(3)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_mp4(broken(), path, fps=10)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
