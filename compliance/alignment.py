"""From frame hits to matched works: which signals fired, on which frame pairs, in which segments.

A segment is a run of matched clip frames, against the run of work frames they match, whose time
offsets agree: "clip 3.0-5.0 s copies work 12.0-14.0 s".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from clipgate.settings import Settings
from index import SearchResult
from index.signals import MIN_HASH_QUALITY, PDQ_BITS, PHASH_BITS

COMBINED_FRAMES = 3  # the strongest frames a match's confidence counts
# Signals that see the same thing count as one on a frame pair: the global ones (PDQ, pHash,
# CLIP) move together on a look-alike; only local features' geometry is independent of them.
SIGNAL_GROUPS = {"pdq": "global", "phash": "global", "clip": "global"}


@dataclass
class FramePair:
    clip_t: float
    work_t: float
    signals: dict[str, float]  # signal -> similarity in 0..1 (cosine for clip)
    distances: dict[str, float]  # hash signal -> Hamming distance; orb -> inlier count
    region: tuple[float, float, float, float] | None = None  # where the copy sits (orb), 0..1
    mirrored: bool = False  # the clip shows the work mirrored left-right

    @property
    def score(self) -> float:
        return max(self.signals.values())


@dataclass
class Segment:
    clip_start: float
    # Where the copy stops: the next sampled frame that is not part of it (the frames between were
    # skipped as near-identical to a matched one), or one sampling period after the last match.
    clip_end: float
    work_start: float
    work_end: float
    frames: int
    signals: list[str]

    @property
    def duration_s(self) -> float:
        return self.clip_end - self.clip_start


@dataclass
class WorkMatch:
    work_id: str
    title: str
    owner: str
    policy: str
    kind: str
    score: float  # best frame pair's similarity, 0..1
    signals: list[str]  # every signal that fired on some frame pair
    frames_matched: int  # clip frames with at least one fired signal
    segments: list[Segment] = field(default_factory=list)
    pairs: list[FramePair] = field(default_factory=list)
    # 0.5..1, for ranking: each matched frame's evidence, 0.5 at its signal's threshold, its
    # margin over 0.5 combined over the signal groups that agree on it (_agree) and then over the
    # strongest frames as independent chances (_combine), so a segment outweighs one stray frame
    # but many weak frames never add up to a strong one.
    confidence: float = 0.0
    mirrored: bool = False  # some matched frame shows the work mirrored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _similarity(signal: str, value: float, settings: Settings) -> float:
    if signal == "orb":  # inliers -> 0.5 at the threshold, towards 1 with more agreement
        return value / (value + settings.orb_min_inliers)
    if signal == "pdq":
        return 1.0 - value / PDQ_BITS
    if signal == "phash":
        return 1.0 - value / PHASH_BITS
    return value


def evidence(signal: str, value: float, settings: Settings) -> float:
    """A signal's raw value on a common scale: 0.5 at its threshold, 1 for a perfect match."""
    if signal == "orb":
        return value / (value + settings.orb_min_inliers)
    if signal in ("pdq", "phash"):
        limit = settings.pdq_max_distance if signal == "pdq" else settings.phash_max_distance
        return 0.5 + 0.5 * max(0.0, limit - value) / max(1, limit)
    threshold = clip_threshold(settings)
    return 0.5 + 0.5 * max(0.0, value - threshold) / max(1e-6, 1.0 - threshold)


def clip_threshold(settings: Settings) -> float:
    """The cosine at which CLIP fires, for the configured model."""
    return settings.clip_model_min_similarity.get(settings.clip_model,
                                                  settings.clip_min_similarity)


def match_works(
    result: SearchResult,
    clip_t: np.ndarray,
    pdq_quality: np.ndarray,
    settings: Settings,
    *,
    clip_counts: bool,
    duration_s: float = 0.0,
) -> tuple[list[WorkMatch], list[dict[str, Any]]]:
    """Matched works, strongest first, and the CLIP candidates that did not count.

    clip_t: (q,) seconds of each query frame; pdq_quality: (q,) PDQ quality of each.
    clip_counts: False with random CLIP weights, whose similarities mean nothing.
    duration_s: the clip's length (0 if unknown or a still): a match on the last sampled frame
    runs to the end of the clip.
    """
    # (query frame, work) -> best pair
    best: dict[tuple[int, str], FramePair] = {}
    # (query frame, work) -> signal group -> its best evidence
    strength: dict[tuple[int, str], dict[str, float]] = {}
    fired: dict[str, set[str]] = {}  # work -> every signal that fired, on any frame pair
    candidates: dict[str, float] = {}
    clip_min = clip_threshold(settings)
    for hit in result.hits:
        if hit.frame_id not in result.frames:
            continue
        work_id, work_t = result.frames[hit.frame_id]
        if work_id not in result.works:  # removed since the index was built
            continue
        if hit.signal == "clip":
            candidates[work_id] = max(candidates.get(work_id, -1.0), hit.value)
            if not clip_counts or hit.value < clip_min:
                continue
        elif hit.signal in ("pdq", "phash") and pdq_quality[hit.query] < MIN_HASH_QUALITY:
            continue
        key = (hit.query, work_id)
        fired.setdefault(work_id, set()).add(hit.signal)
        group = strength.setdefault(key, {})
        g = SIGNAL_GROUPS.get(hit.signal, hit.signal)
        group[g] = max(group.get(g, 0.0), evidence(hit.signal, hit.value, settings))
        pair = best.get(key)
        sim = _similarity(hit.signal, hit.value, settings)
        if pair is None or abs(pair.work_t - work_t) > 1e-6:
            # Prefer the work frame with the stronger evidence for this query frame.
            if pair is not None and pair.score >= sim:
                continue
            pair = FramePair(round(float(clip_t[hit.query]), 3), round(work_t, 3), {}, {})
            best[key] = pair
        if sim > pair.signals.get(hit.signal, -1.0):
            pair.signals[hit.signal] = sim
            if hit.signal != "clip":
                pair.distances[hit.signal] = hit.value
            if hit.region is not None:
                pair.region = hit.region
            pair.mirrored = pair.mirrored or hit.mirrored

    by_work: dict[str, list[FramePair]] = {}
    for (_, work_id), pair in best.items():
        by_work.setdefault(work_id, []).append(pair)
    matches = []
    for w, pairs in by_work.items():
        m = _work_match(result.works[w], pairs, settings, clip_t, duration_s)
        m.signals = sorted(fired[w])  # also those of pairs a stronger work frame replaced
        m.confidence = _combine([_agree(g) for (_, wid), g in strength.items() if wid == w])
        matches.append(m)
    matches.sort(key=lambda m: (m.confidence, m.frames_matched, m.score), reverse=True)
    unused = [
        {"work_id": w, "title": result.works[w]["title"], "clip_similarity": round(s, 4)}
        for w, s in sorted(candidates.items(), key=lambda kv: -kv[1])
        if w not in by_work
    ][:5]
    return matches, unused


def _agree(groups: dict[str, float]) -> float:
    """One frame pair's evidence from its signal groups (global likeness, local features),
    combined as independent chances like _combine's frames: a caption moves PDQ to a weak 50
    bits, and ORB agreeing on the same pair makes the frame strong; one group alone is itself."""
    miss = 1.0
    for e in groups.values():
        miss *= 1.0 - min(2.0 * (e - 0.5), 0.999)
    return 0.5 + 0.5 * (1.0 - miss)


def _combine(evidences: list[float]) -> float:
    """0.5 plus half the chance that not all of the three strongest frames are flukes, each
    frame's chance being its evidence's margin over the threshold (0 at it, 1 for a perfect
    match). So a frame at the threshold adds nothing, a second and third strong frame add much,
    and a long clip of weak look-alike frames stays weak."""
    miss = 1.0
    for e in sorted(evidences, reverse=True)[:COMBINED_FRAMES]:
        miss *= 1.0 - min(2.0 * (e - 0.5), 0.999)
    return round(0.5 + 0.5 * (1.0 - miss), 4)


def _work_match(work: dict[str, Any], pairs: list[FramePair], settings: Settings,
                clip_t: np.ndarray, duration_s: float) -> WorkMatch:
    pairs.sort(key=lambda p: p.clip_t)
    signals = sorted({s for p in pairs for s in p.signals})
    return WorkMatch(
        work_id=str(work["id"]),
        title=work["title"],
        owner=work["owner"],
        policy=work["policy"],
        kind=work["kind"],
        score=round(max(p.score for p in pairs), 3),
        signals=signals,
        frames_matched=len(pairs),
        segments=segments(pairs, gap_s=settings.segment_gap_s, image=work["kind"] == "image",
                          sampled_t=clip_t, period_s=1.0 / settings.sample_fps,
                          duration_s=duration_s),
        pairs=pairs,
        mirrored=any(p.mirrored for p in pairs),
    )


def segments(pairs: list[FramePair], *, gap_s: float, image: bool,
             sampled_t: np.ndarray | None = None, period_s: float = 1.0,
             duration_s: float = 0.0) -> list[Segment]:
    """Group time-sorted pairs into segments. Within a segment consecutive pairs are at most gap_s
    apart in the clip, and (for a video work) their clip-to-work offsets agree within gap_s.
    sampled_t: (q,) seconds of every sampled clip frame, which bound each segment's end."""
    times = np.sort(np.asarray(sampled_t if sampled_t is not None else [], np.float64))

    def end(last: float) -> float:
        later = times[times > last + 1e-6]
        return float(later[0]) if len(later) else max(last + period_s, duration_s)

    out: list[list[FramePair]] = []
    for p in pairs:
        if out:
            last = out[-1][-1]
            close = p.clip_t - last.clip_t <= gap_s
            aligned = image or abs((p.clip_t - p.work_t) - (last.clip_t - last.work_t)) <= gap_s
            if close and aligned:
                out[-1].append(p)
                continue
        out.append([p])
    return [
        Segment(
            clip_start=round(g[0].clip_t, 3),
            clip_end=round(end(g[-1].clip_t), 3),
            work_start=round(min(p.work_t for p in g), 3),
            work_end=round(max(p.work_t for p in g), 3),
            frames=len(g),
            signals=sorted({s for p in g for s in p.signals}),
        )
        for g in out
    ]
