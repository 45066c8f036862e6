"""Reading media: the containers and formats we accept, frame sampling, and what we refuse."""

from __future__ import annotations

import numpy as np
import pytest

import index
from clipgate.errors import TooLarge
from index.media import MediaError, iter_sampled_frames, probe
from index.sampling import FrameSampler
from tests.media import noise_frame, photo, write_image, write_video

LIMIT = 3840 * 2160


def _sampled(path, fps=1.0):
    info = probe(path, max_frame_pixels=LIMIT)
    return info, [f.t_s for f in iter_sampled_frames(
        path, info, sample_fps=fps, shot_change_threshold=0.18, max_duration_s=600)]


def test_samples_every_second_and_at_every_shot_change(tmp_path):
    # 12 fps; hard cuts at frames 17 (1.417 s) and 41 (3.417 s); 5 s in all.
    shots = [photo("astronaut"), photo("coffee"), photo("rocket")]
    frames = [shots[0 if i < 17 else 1 if i < 41 else 2] for i in range(60)]
    info, times = _sampled(write_video(tmp_path / "cuts.mp4", frames, fps=12))
    assert info.kind == "video" and info.duration_s == pytest.approx(5.0, abs=0.1)
    assert any(abs(t - 17 / 12) < 1e-3 for t in times)
    assert any(abs(t - 41 / 12) < 1e-3 for t in times)
    gaps = np.diff([0.0, *times, info.duration_s])
    assert gaps.max() <= 1.0 + 1e-3


def test_sampler_keeps_steady_rate_without_cuts():
    sampler = FrameSampler(sample_fps=2.0, shot_change_threshold=0.18)
    still = np.full((32, 32), 128, np.uint8)
    kept = [t for t in np.arange(0, 3, 1 / 24) if sampler.take(float(t), still)]
    assert len(kept) == 6 and sampler.shot_changes == []


def test_sampler_skips_near_identical_frames_until_the_longest_gap():
    sampler = FrameSampler(sample_fps=1.0, shot_change_threshold=0.18, skip_threshold=0.012,
                           max_gap_s=3.0)
    still = np.full((32, 32), 128, np.uint8)
    kept = [t for t in np.arange(0, 10, 1 / 24) if sampler.take(float(t), still)]
    # A held picture costs a frame every max_gap_s, not one a second.
    assert kept == pytest.approx([0.0, 3.0, 6.0, 9.0], abs=1 / 24)
    assert sampler.skipped > 0


def test_moving_video_is_sampled_by_its_content_not_its_length(tmp_path):
    """10 s of a held picture then 2 s of a moving one: the held part costs a frame per 3 s, the
    moving part one a second, and the cut is kept."""
    held, moving = photo("coffee"), photo("astronaut")
    frames = [held] * 120 + [np.roll(moving, 8 * i, axis=1) for i in range(24)]
    path = write_video(tmp_path / "held.mp4", frames, fps=12)
    info = probe(path, max_frame_pixels=LIMIT)
    times = [f.t_s for f in iter_sampled_frames(
        path, info, sample_fps=1.0, shot_change_threshold=0.18, max_duration_s=600,
        skip_threshold=0.012, max_gap_s=3.0)]
    held_times = [t for t in times if t < 10.0]
    assert len(held_times) <= 4  # 0, 3, 6, 9 s: not 10
    assert any(abs(t - 10.0) < 1e-3 for t in times)  # the cut
    assert len([t for t in times if t >= 10.0]) >= 2


@pytest.mark.parametrize("name,codec", [
    ("clip.mp4", "libx264"), ("clip.mov", "libx264"), ("clip.mkv", "libx264"),
    ("clip.webm", "libvpx-vp9"),
])
def test_video_containers_we_accept(tmp_path, name, codec):
    path = write_video(tmp_path / name, [noise_frame(i // 6) for i in range(24)], codec=codec)
    info, times = _sampled(path)
    assert info.kind == "video" and len(times) >= 2


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                      ("WEBP", "image/webp")])
def test_image_formats_we_accept(tmp_path, fmt, mime):
    path = write_image(tmp_path / f"img.{fmt.lower()}", photo("coffee"), fmt)
    info, times = _sampled(path)
    assert (info.kind, info.mime, times) == ("image", mime, [0.0])


def test_what_we_refuse(tmp_path):
    gif = tmp_path / "a.gif"
    write_image(gif, photo("coffee"), "GIF")
    with pytest.raises(MediaError, match="not accepted"):
        probe(gif, max_frame_pixels=LIMIT)
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    with pytest.raises(MediaError, match="not a readable image or video"):
        probe(text, max_frame_pixels=LIMIT)
    big = write_image(tmp_path / "big.png", photo("coffee", (800, 600)))
    with pytest.raises(TooLarge, match="CLIPGATE_MAX_FRAME_PIXELS"):
        probe(big, max_frame_pixels=640 * 480)


def test_overlong_video_is_refused_before_fingerprinting(settings, tmp_path):
    path = write_video(tmp_path / "long.mp4", [noise_frame(i) for i in range(36)], fps=12)
    short = settings.model_copy(update={"max_duration_s": 2.0})
    with pytest.raises(TooLarge, match="longer than the limit"):
        index.fingerprint_file(path, short)


def test_file_with_two_video_streams_is_refused(tmp_path):
    import av

    path = tmp_path / "two.mp4"
    with av.open(str(path), "w") as out:
        streams = [out.add_stream("libx264", rate=12) for _ in range(2)]
        for s in streams:
            s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        for i in range(12):
            for s in streams:
                frame = av.VideoFrame.from_ndarray(noise_frame(i, (320, 240)), format="rgb24")
                for packet in s.encode(frame):
                    out.mux(packet)
        for s in streams:
            for packet in s.encode():
                out.mux(packet)
    with pytest.raises(MediaError, match="2 video streams"):
        probe(path, max_frame_pixels=LIMIT)


def test_frames_at_reads_the_asked_times_in_one_pass(tmp_path):
    from index.media import frames_at

    shots = [photo("astronaut"), photo("coffee"), photo("rocket")]
    path = write_video(tmp_path / "three.mp4", [shots[i // 12] for i in range(36)], fps=12)
    got = frames_at(path, [2.5, 0.2, 9.0, 1.5])  # unsorted, and one past the end
    means = [float(np.abs(g.astype(int) - s.astype(int)).mean()) for g, s in
             zip(got, [shots[2], shots[0], shots[2], shots[1]])]
    assert len(got) == 4 and max(means) < 12
