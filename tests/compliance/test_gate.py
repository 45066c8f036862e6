"""The gate end to end on real PostgreSQL: register works, check clips, segments, removal, rebuild."""

from __future__ import annotations

import numpy as np
import pytest

import index
from compliance import check_clip
from tests.media import noise_frame, pan, photo, write_image, write_video

FPS = 12


def _clip(tmp_path, name, shots):
    """shots: list of (seconds, frame_fn(i, n))."""
    frames = []
    for seconds, fn in shots:
        n = int(seconds * FPS)
        frames += [fn(i, n) for i in range(n)]
    return write_video(tmp_path / name, frames, fps=FPS)


def _noise(seed):
    return lambda i, n: noise_frame(seed + i // 6)


def _reuse(name):
    img = photo(name)
    return lambda i, n: pan(img, i, n)


@pytest.fixture
def works(settings, tmp_path):
    astronaut = index.register_work(
        write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512))),
        owner="NASA Archive", title="Astronaut portrait", policy="block", settings=settings,
    )
    coffee = index.register_work(
        write_image(tmp_path / "coffee.png", photo("coffee", (600, 400))),
        owner="Cafe Photo Co", title="Coffee cup", policy="review", settings=settings,
    )
    cat = photo("chelsea")
    # A 6 s protected video: 3 s of noise, then 3 s slowly zooming on the cat.
    video = write_video(
        tmp_path / "short.mp4",
        [noise_frame(900 + i // 6) for i in range(3 * FPS)] + [pan(cat, i, 3 * FPS) for i in range(3 * FPS)],
        fps=FPS,
    )
    short = index.register_work(
        video, owner="Studio Kat", title="Chelsea the cat (short)", policy="block", settings=settings
    )
    return {"astronaut": astronaut, "coffee": coffee, "short": short}


def test_reused_image_is_blocked_with_its_segment(settings, tmp_path, works):
    clip = _clip(tmp_path, "memorised.mp4", [(2, _noise(1)), (3, _reuse("astronaut")), (2, _noise(50))])
    result = check_clip(clip, settings=settings)
    assert result.verdict == "block"
    [match] = result.matches
    assert match.work_id == str(works["astronaut"]["id"])
    assert {"pdq", "phash"} & set(match.signals)
    [seg] = match.segments
    assert 1.9 <= seg.clip_start <= 2.6 and 4.0 <= seg.clip_end <= 5.0
    # Without a checkpoint CLIP is not computed, and every result says so.
    assert result.clip["computed"] is False and "not computed" in result.clip["note"]
    assert result.signals["sscd"]["model"] == settings.sscd


def test_reused_video_segment_aligns_clip_and_work_time(settings, tmp_path, works):
    cat = photo("chelsea")
    # The clip shows the work's 3.0-6.0 s (the cat zoom) at clip time 1.0-4.0 s.
    clip = _clip(tmp_path, "excerpt.mp4", [(1, _noise(7)), (3, lambda i, n: pan(cat, i, n)), (1, _noise(70))])
    result = check_clip(clip, settings=settings)
    assert result.verdict == "block"
    match = next(m for m in result.matches if m.work_id == str(works["short"]["id"]))
    seg = max(match.segments, key=lambda s: s.frames)
    assert seg.clip_start == pytest.approx(1.0, abs=0.6)
    assert seg.work_start == pytest.approx(3.0, abs=0.6)
    assert (seg.clip_start - seg.work_start) == pytest.approx(-2.0, abs=0.6)


def test_review_policy_work_sends_clip_to_review(settings, tmp_path, works):
    clip = _clip(tmp_path, "coffee.mp4", [(3, _reuse("coffee")), (1, _noise(3))])
    result = check_clip(clip, settings=settings)
    assert result.verdict == "review"
    assert [m.title for m in result.matches] == ["Coffee cup"]


def test_unrelated_clips_are_released(settings, tmp_path, works):
    for seed in (11, 12, 13):
        clip = _clip(tmp_path, f"original{seed}.mp4", [(2, _noise(seed * 100)), (2, _reuse("rocket"))])
        result = check_clip(clip, settings=settings)
        assert result.verdict == "release", result.reasons
        assert result.matches == []


def test_every_check_is_recorded_with_its_index_version(settings, tmp_path, works):
    from clipgate import db

    clip = _clip(tmp_path, "c.mp4", [(2, _noise(5))])
    result = check_clip(clip, settings=settings)
    with db.connection(settings) as conn:
        row = conn.execute("SELECT verdict, index_version, evidence FROM checks WHERE id = %s",
                           (result.check_id,)).fetchone()
    assert row["verdict"] == "release"
    assert row["index_version"] == result.index_version == index.health(settings)["version"]


def test_removed_work_never_matches_again(settings, tmp_path, works):
    clip = _clip(tmp_path, "memorised.mp4", [(3, _reuse("astronaut"))])
    before = check_clip(clip, settings=settings)
    assert before.verdict == "block"
    removed = index.remove_work(str(works["astronaut"]["id"]), settings=settings)
    assert removed["status"] == "removed"
    after = check_clip(clip, settings=settings)
    assert after.verdict == "release"
    assert after.index_version > before.index_version
    # Still gone after a rebuild from the database.
    index.rebuild(settings)
    assert check_clip(clip, settings=settings).verdict == "release"


def test_rebuild_from_database_gives_the_same_answers(settings, tmp_path, works):
    clips = [
        _clip(tmp_path, "a.mp4", [(1, _noise(1)), (3, _reuse("astronaut"))]),
        _clip(tmp_path, "b.mp4", [(3, _reuse("coffee"))]),
        _clip(tmp_path, "c.mp4", [(3, _noise(77))]),
    ]

    def answers():
        out = []
        for c in clips:
            r = check_clip(c, settings=settings)
            out.append((r.verdict, [(m.work_id, m.frames_matched, [(s.clip_start, s.clip_end) for s in m.segments]) for m in r.matches]))
        return out

    first = answers()
    (settings.index_dir / "frames.npz").unlink()
    built = index.rebuild(settings)
    assert built["works"] == 3
    assert answers() == first


def test_same_file_twice_is_a_conflict_naming_the_first(settings, tmp_path, works):
    from clipgate.errors import Conflict

    again = write_image(tmp_path / "again.png", photo("coffee", (600, 400)))
    with pytest.raises(Conflict) as err:
        index.register_work(again, owner="Someone", title="Copy", policy="block", settings=settings)
    assert err.value.existing_id == str(works["coffee"]["id"])
    assert len(index.list_works(settings=settings)) == 3


def test_featureless_work_is_refused(settings, tmp_path):
    from clipgate.errors import BadInput

    flat = write_image(tmp_path / "flat.png", np.full((64, 64, 3), 90, np.uint8))
    with pytest.raises(BadInput, match="no distinctive content"):
        index.register_work(flat, owner="o", title="t", policy="block", settings=settings)
    assert index.list_works(settings=settings) == []


def _pasted(name, size, frac, at, mirror=False):
    """frame_fn: the photo at frac of the frame's width, pasted at `at` over smooth noise."""
    from PIL import Image

    img = photo(name, size)
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    w = int(640 * frac)
    h = int(w * size[1] / size[0])
    small = np.asarray(Image.fromarray(img).resize((w, h)))

    def frame(i, n):
        scene = noise_frame(4242).copy()
        scene[at[1]:at[1] + h, at[0]:at[0] + w] = small
        return scene
    return frame, (at[0] / 640, at[1] / 360, (at[0] + w) / 640, (at[1] + h) / 360)


def test_picture_in_picture_at_40_percent_is_blocked_where_it_sits(settings, tmp_path, works):
    frame, box = _pasted("astronaut", (512, 512), 0.4, (330, 60))
    clip = _clip(tmp_path, "pip.mp4", [(2, _noise(21)), (3, frame), (2, _noise(22))])
    result = check_clip(clip, settings=settings)
    assert result.verdict == "block", result.reasons
    [match] = result.matches
    assert match.work_id == str(works["astronaut"]["id"]) and "orb" in match.signals
    [seg] = match.segments
    assert 1.9 <= seg.clip_start <= 2.6 and 4.5 <= seg.clip_end <= 5.6
    regions = [p.region for p in match.pairs if p.region]
    assert regions and all(abs(a - b) < 0.04 for r in regions for a, b in zip(r, box))


def test_mirrored_copy_is_blocked_and_said_to_be_mirrored(settings, tmp_path, works):
    frame, box = _pasted("astronaut", (512, 512), 0.5, (20, 20), mirror=True)
    clip = _clip(tmp_path, "mirror.mp4", [(1, _noise(31)), (3, frame)])
    result = check_clip(clip, settings=settings)
    assert result.verdict == "block", result.reasons
    [match] = result.matches
    assert match.mirrored and all(p.mirrored for p in match.pairs)
    regions = [p.region for p in match.pairs if p.region]
    assert regions and all(abs(a - b) < 0.04 for r in regions for a, b in zip(r, box))


def test_two_reused_works_are_both_reported_with_their_times(settings, tmp_path, works):
    clip = _clip(tmp_path, "two.mp4", [(3, _reuse("astronaut")), (3, _reuse("coffee")),
                                       (1, _noise(41))])
    result = check_clip(clip, settings=settings)
    by_title = {m.title: m for m in result.matches}
    assert set(by_title) == {"Astronaut portrait", "Coffee cup"}
    [a] = by_title["Astronaut portrait"].segments
    [c] = by_title["Coffee cup"].segments
    assert a.clip_start == pytest.approx(0.0, abs=0.1) and a.clip_end == pytest.approx(3.0, abs=0.6)
    assert c.clip_start == pytest.approx(3.0, abs=0.6) and c.clip_end == pytest.approx(6.0, abs=0.6)
    assert result.verdict == "block"  # the astronaut's policy


def test_signals_switched_off_neither_fire_nor_propose(settings, tmp_path, works):
    from compliance import match_file

    frame, _ = _pasted("astronaut", (512, 512), 0.4, (330, 60))
    clip = _clip(tmp_path, "pip2.mp4", [(3, frame)])
    assert match_file(clip, settings).matches  # the geometry finds it...
    assert match_file(clip, settings, disabled={"orb"}).matches == []  # ...and nothing else does
    with pytest.raises(ValueError, match="unknown signals"):
        match_file(clip, settings, disabled={"sift"})


def test_captioned_copy_is_confirmed_by_geometry_where_pdq_is_weak(settings, tmp_path):
    """A caption moves PDQ by about 45 bits: the hash still fires, but weakly. The geometric check
    then runs on the same frame pair, and its agreement makes the match strong and says where the
    copy sits (the whole frame)."""
    from bench.quality.transforms import Edit, edit_frame
    from compliance import match_file

    picture = photo("astronaut", (640, 360))
    work = index.register_work(write_image(tmp_path / "astronaut.png", picture), owner="O",
                               title="Astronaut", policy="block", settings=settings)
    caption = Edit("text", {"lines": ["BREAKING NEWS", "SUBSCRIBE NOW"], "y": 0.7, "size": 30})
    clip = _clip(tmp_path, "captioned.mp4",
                 [(3, lambda i, n: edit_frame(pan(picture, i, n), caption))])
    [match] = match_file(clip, settings).matches
    assert match.work_id == str(work["id"])
    both = [p for p in match.pairs if {"pdq", "orb"} <= set(p.signals)]
    assert both, [p.signals for p in match.pairs]
    pdq = index.rules(settings)["pdq"]
    assert all(pdq.evidence(p.distances["pdq"]) < settings.settle_evidence for p in both)
    assert all(p.region and p.region[2] - p.region[0] > 0.9 for p in both)
    [hash_only] = match_file(clip, settings, disabled={"orb"}).matches
    assert match.confidence > hash_only.confidence


def test_dark_picture_whose_hash_does_not_count_is_found_by_geometry(settings, tmp_path):
    """A small object on black (a nebula): PDQ's quality is too low for its hit to count, so the
    hit is only a candidate, and the geometric check on it finds the copy (SSCD, off here, finds
    it too)."""
    from compliance import match_file
    from index.signals import MIN_HASH_QUALITY, hash_frame

    dark = np.zeros((360, 640, 3), np.uint8)
    dark[100:185, 300:428] = (photo("coffee", (128, 85)) * 0.6).astype(np.uint8)
    assert hash_frame(dark).pdq_quality < MIN_HASH_QUALITY
    work = index.register_work(write_image(tmp_path / "dark.png", dark), owner="O",
                               title="Dark", policy="block", settings=settings)
    clip = _clip(tmp_path, "dark.mp4", [(3, lambda i, n: pan(dark, i, n, max_crop=0.03))])
    [match] = match_file(clip, settings, disabled={"sscd"}).matches
    assert match.work_id == str(work["id"]) and "orb" in match.signals
    assert "pdq" not in match.signals  # it fired, but on a frame too flat for it to count
    [match] = match_file(clip, settings).matches
    assert match.work_id == str(work["id"])


def test_weak_hits_being_confirmed_leave_every_other_slot_to_other_candidates(settings):
    """Confirming weak hits must not crowd out the other candidates of the same frame (nearest
    works, near misses): another work in that frame would go unchecked."""
    from types import SimpleNamespace

    from index.search import Found, candidate_pairs

    rules = index.rules(settings)
    active = {n: r for n, r in index.active(settings).items()}
    weak = [index.Hit(0, f, "pdq", 50.0) for f in (1, 2)]  # counts, but far from settling
    assert all(rules["pdq"].fires(h.value) for h in weak)
    found = Found()
    found.near = [(0, f, False, 80.0 + f) for f in range(10, 10 + settings.orb_max_candidates + 2)]
    chosen = candidate_pairs(SimpleNamespace(), None, weak, found, set(), active,
                             settings, set())
    assert [c[1] for c in chosen] == [1, 2] + list(range(10, 10 + settings.orb_max_candidates))
    assert all(c[2] is False for c in chosen)  # hashes know which view matched


def test_sscd_proposes_its_nearest_by_raw_cosine_and_by_normalised_score(settings):
    """Below the threshold, SSCD's two nearest work frames by raw cosine and its two best by
    normalised score go to the geometric check, when their score clears the candidate floor:
    a picture pasted over generic texture is out-scored in raw cosine by that texture's
    look-alikes among the works, which normalisation takes below it."""
    from types import SimpleNamespace

    from index.search import Found, candidate_pairs

    active = dict(index.active(settings))
    floor = settings.sscd_candidate_min_score
    found = Found()
    # Work frames 1-3: texture look-alikes, close in raw cosine, just above the floor once
    # normalised. Frame 7: the copy, further in raw cosine but best by score. Frame 9: under the
    # floor, so never proposed however close its raw cosine.
    found.hits = [index.Hit(0, 1, "sscd", floor + 0.01, raw=0.62),
                  index.Hit(0, 2, "sscd", floor + 0.02, raw=0.61),
                  index.Hit(0, 3, "sscd", floor + 0.03, raw=0.60),
                  index.Hit(0, 7, "sscd", 0.12, raw=0.45),
                  index.Hit(0, 9, "sscd", floor - 0.01, raw=0.70)]
    chosen = candidate_pairs(SimpleNamespace(), None, [], found, set(), active,
                             settings, set())
    assert {c[1] for c in chosen} == {1, 2, 3, 7}
    assert all(c[2] is None for c in chosen)  # SSCD cannot tell a mirror image: both views
