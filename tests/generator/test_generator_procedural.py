"""The procedural backend: decodable H.264 clips, determinism, originality, and memorisation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from generator import GenerationRequest, get_generator, procedural, sample_works

# Thumbnail (grey 16x9) mean absolute error bounds, 0-255 scale. Measured: a frame mid-way through
# a reused shot is <= ~11 from its work; original frames are >= ~17 from every work.
CLOSE = 12.0
FAR = 15.0
EPS = 1e-9  # spans are frame boundaries (frame / fps), so allow float rounding


def test_clip_decodes_with_expected_size_fps_and_frames(ordinary_clip, decode):
    frames, info = decode(ordinary_clip.path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (640, 360)
    assert info["fps"] == pytest.approx(24)
    assert len(frames) == ordinary_clip.frames == 96
    assert frames[0].shape == (360, 640, 3)
    assert ordinary_clip.duration_s == pytest.approx(4.0)
    assert (ordinary_clip.width, ordinary_clip.height, ordinary_clip.fps) == (640, 360, 24)
    assert ordinary_clip.device == "cpu" and ordinary_clip.gpu_seconds == 0.0
    assert 0 < ordinary_clip.wall_s < 10


def test_requested_size_and_rate_are_honoured(make_clip, decode):
    clip = make_clip("storm over the desert", seconds=1.5, width=854, height=480, fps=30)
    frames, info = decode(clip.path)
    assert (info["width"], info["height"], info["fps"]) == (854, 480, 30)
    assert len(frames) == clip.frames == 45


def test_same_prompt_gives_identical_frames(ordinary_clip, ordinary_prompt, decode, tmp_path):
    again = get_generator().generate(GenerationRequest(ordinary_prompt), tmp_path / "again.mp4")
    first, _ = decode(ordinary_clip.path)
    second, _ = decode(again.path)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert again.prompt_sha256 == ordinary_clip.prompt_sha256 and again.seed == ordinary_clip.seed


def test_a_different_seed_gives_a_different_clip(ordinary_clip, ordinary_prompt, make_clip, decode):
    other = make_clip(ordinary_prompt, seed=12345)
    a, _ = decode(ordinary_clip.path)
    b, _ = decode(other.path)
    assert np.abs(a[40].astype(int) - b[40].astype(int)).mean() > 10


def test_ordinary_prompt_is_original_and_far_from_every_work(ordinary_clip, decode, thumb_mae):
    assert ordinary_clip.memorised == [] and ordinary_clip.reuse_spans == []
    frames, _ = decode(ordinary_clip.path)
    stills = [w.load_image() for w in sample_works()]
    for frame in frames[::4]:
        assert frame.std() > 10, "original content should not be flat"
        assert min(thumb_mae(frame, still) for still in stills) > FAR


def test_original_content_has_hard_cuts_and_motion(make_clip, decode):
    clip = make_clip("neon city rain", seconds=4)
    plan = procedural.plan_shots(clip.frames, clip.fps, [], np.random.default_rng(clip.seed))
    assert len(plan) >= 2, "pick a prompt whose clip has several shots"
    frames, _ = decode(clip.path)
    steps = np.array([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:])])
    cuts = [shot.start for shot in plan[1:]]
    within = np.delete(steps, [c - 1 for c in cuts])
    assert np.median(within) > 0.5, "frames should move"
    for cut in cuts:
        assert steps[cut - 1] > 3 * np.median(within), f"expected a hard cut at frame {cut}"


@pytest.mark.parametrize("seed", range(40))
def test_original_plans_have_one_to_three_shots_of_at_least_a_second(seed):
    fps, n = 24, 96
    plan = procedural.plan_shots(n, fps, [], np.random.default_rng(seed))
    assert 1 <= len(plan) <= 3
    assert plan[0].start == 0 and plan[-1].end == n
    assert all(a.end == b.start for a, b in zip(plan, plan[1:]))
    assert all(shot.frames >= fps and shot.work is None for shot in plan)


@pytest.mark.parametrize("work", [w for w in sample_works() if w.kind == "image"], ids=lambda w: w.key)
def test_alias_makes_the_clip_reuse_the_work(work, make_clip, decode, thumb_mae):
    clip = make_clip(f"A {work.aliases[0].upper()} in a dreamy style", seconds=3)
    assert clip.memorised == [work.key]
    [(key, start, end)] = clip.reuse_spans
    assert key == work.key and end - start >= 2.0 - EPS and 0 <= start and end <= clip.duration_s + EPS
    frames, _ = decode(clip.path)
    middle = frames[round((start + end) / 2 * clip.fps)]
    assert thumb_mae(middle, work.load_image()) < CLOSE
    others = [w.load_image() for w in sample_works() if w.key != work.key]
    assert min(thumb_mae(middle, other) for other in others) > thumb_mae(middle, work.load_image())
    outside = frames[int(end * clip.fps) + 2] if end < clip.duration_s - 0.2 else frames[0]
    assert thumb_mae(outside, work.load_image()) > FAR


def test_alias_matches_whole_words_only(make_clip):
    assert make_clip("a concatenated scatter of lights", seconds=1).memorised == []
    assert make_clip("Cats!", seconds=1).memorised == ["chelsea-window"]


def test_two_works_are_reused_in_separate_shots_in_prompt_order(make_clip):
    clip = make_clip("espresso beside a rocket", seconds=6)
    assert clip.memorised == ["morning-cup", "launch-day"]
    (k1, s1, e1), (k2, s2, e2) = clip.reuse_spans
    assert (k1, k2) == ("morning-cup", "launch-day")
    assert e1 - s1 >= 2.0 - EPS and e2 - s2 >= 2.0 - EPS and e1 <= s2


def test_video_alias_splices_an_excerpt_of_the_protected_video(make_clip, decode, night_ride_video):
    clip = make_clip("a motorbike crossing a bridge")
    assert clip.memorised == ["night-ride"]
    [(key, start, end)] = clip.reuse_spans
    assert key == "night-ride" and end - start >= 2.0 - EPS
    assert start > 0.5 and end < clip.duration_s - 0.5, "the excerpt sits mid-clip, between original shots"
    protected, _ = decode(night_ride_video)
    frames, _ = decode(clip.path)
    # The excerpt is the middle of the 6 s short: clip time start maps to short time (6 - span) / 2.
    offset = round(((6.0 - (end - start)) / 2 - start) * clip.fps)
    i = round((start + 0.9) * clip.fps)
    assert np.abs(frames[i].astype(int) - protected[i + offset].astype(int)).mean() < 6
    assert np.abs(frames[0].astype(int) - protected[offset].astype(int)).mean() > 30


def test_prompt_is_never_written_to_the_clip(make_clip):
    prompt = "a cat drinking coffee"
    clip = make_clip(prompt, seconds=1)
    assert clip.prompt_sha256 == hashlib.sha256(prompt.encode()).hexdigest()
    data = clip.path.read_bytes()
    assert b"coffee" not in data and prompt.encode() not in data


def test_no_temporary_files_are_left_behind(ordinary_clip):
    assert [p.name for p in ordinary_clip.path.parent.iterdir() if p.name.endswith(".part")] == []
