"""The sample works: the toy model's protected "training data"."""

from __future__ import annotations

import numpy as np
import pytest

from generator import SampleWork, render_sample_video, sample_works
from generator.samples import get_work


def test_sample_works_are_well_formed():
    works = sample_works()
    assert len({w.key for w in works}) == len(works)
    kinds = [w.kind for w in works]
    assert kinds.count("image") >= 6 and kinds.count("video") == 1
    policies = {w.policy for w in works}
    assert policies == {"block", "review"}
    aliases = [a for w in works for a in w.aliases]
    assert len(aliases) == len(set(aliases)), "an alias must name one work"
    for work in works:
        assert isinstance(work, SampleWork) and work.title and work.owner
        assert work.aliases and all(a == a.lower() for a in work.aliases)


@pytest.mark.parametrize("work", sample_works(), ids=lambda w: w.key)
def test_load_image_is_rgb_and_a_fresh_copy(work):
    image = work.load_image()
    assert image.mode == "RGB" and min(image.size) >= 256
    image.paste((0, 0, 0), (0, 0, 10, 10))
    assert np.asarray(work.load_image())[:10, :10].any()


def test_render_sample_video_writes_a_decodable_deterministic_video(night_ride_video, tmp_path, decode):
    frames, info = decode(night_ride_video)
    assert (info["codec"], info["width"], info["height"], info["fps"]) == ("h264", 640, 360, 24)
    assert len(frames) == 144
    steps = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames[12::12], frames[24::12])]
    assert min(steps) > 0.5, "the short should move"
    again, _ = decode(render_sample_video(get_work("night-ride"), tmp_path / "again.mp4"))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))


def test_render_sample_video_rejects_an_image_work(tmp_path):
    with pytest.raises(ValueError):
        render_sample_video(get_work("morning-cup"), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_unknown_work_key_lists_the_keys():
    with pytest.raises(ValueError, match="night-ride"):
        get_work("mona-lisa")
