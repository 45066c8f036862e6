"""The evidence as the review page draws it, from a matcher's WorkMatch.to_dict()."""

from __future__ import annotations

from compliance.alignment import FramePair, Segment, WorkMatch
from complaints.web.evidence import MAX_PAIRS, evidence_view


def _claim(pairs, segments):
    match = WorkMatch(work_id="w", title="T", owner="O", policy="review", kind="video",
                      score=0.9, signals=sorted({s for p in pairs for s in p.signals}),
                      frames_matched=len(pairs), segments=segments, pairs=pairs)
    return {"evidence": match.to_dict()}


def test_region_timeline_and_scores():
    pairs = [
        FramePair(1.0, 11.0, {"orb": 0.9}, {"orb": 180}, (0.3, 0.1, 0.9, 0.7)),
        FramePair(2.0, 12.0, {"pdq": 0.8, "phash": 0.95}, {"pdq": 51, "phash": 3}, None),
    ]
    view = evidence_view(_claim(pairs, [Segment(1.0, 2.0, 11.0, 12.0, 2, ["orb", "pdq"])]),
                         duration_s=10.0)
    first, second = view["pairs"]
    assert first["region"] == {"left": 30.0, "top": 10.0, "width": 60.0, "height": 60.0}
    assert second["region"] is None
    assert [s["key"] for s in second["signals"]] == ["pdq", "phash"]
    assert second["signals"][0]["distance"] == 51
    (bar,) = view["timeline"]["bars"]
    assert (bar["left"], bar["width"]) == (10.0, 10.0)  # 1-2 s of a 10 s clip
    assert [t["left"] for t in view["timeline"]["ticks"]] == [10.0, 20.0]
    assert [(s["key"], s["best"], s["frames"]) for s in view["scores"]] == [
        ("phash", 0.95, 1), ("orb", 0.9, 1), ("pdq", 0.8, 1)]


def test_without_a_duration_the_timeline_ends_at_the_last_match_and_pairs_are_capped():
    pairs = [FramePair(float(t), float(t), {"pdq": 0.5 + t / 100}, {"pdq": 10}) for t in range(20)]
    view = evidence_view(_claim(pairs, [Segment(0.0, 19.0, 0.0, 19.0, 20, ["pdq"])]))
    assert view["timeline"]["total"] == 19.0
    assert view["timeline"]["bars"][0]["width"] == 100.0
    # The strongest few, in clip order.
    assert [p["clip_t"] for p in view["pairs"]] == [float(t) for t in range(20 - MAX_PAIRS, 20)]


def test_no_evidence_and_degenerate_regions():
    assert evidence_view({"evidence": None}) is None
    pairs = [FramePair(0.0, 0.0, {"orb": 0.7}, {"orb": 40}, (0.5, 0.5, 0.5, 0.9))]
    assert evidence_view(_claim(pairs, []))["pairs"][0]["region"] is None


def test_a_learned_descriptor_shows_its_raw_and_normalised_score_and_its_crop():
    pairs = [FramePair(3.0, 0.0, {"sscd": 0.812}, {}, None, scores={"sscd": 0.51},
                       raw={"sscd": 0.812}, crop=(0.5, 0.0, 1.0, 0.5))]
    view = evidence_view(_claim(pairs, [Segment(3.0, 4.0, 0.0, 0.0, 1, ["sscd"])]))
    [pair] = view["pairs"]
    assert pair["crop"] == {"left": 50.0, "top": 0.0, "width": 50.0, "height": 50.0}
    assert pair["region"] is None
    [s] = pair["signals"]
    assert (s["name"], s["raw"], s["score"], s["distance"]) == (
        "SSCD copy descriptor", 0.812, 0.51, None)
