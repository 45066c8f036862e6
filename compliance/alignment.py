"""From frame hits to matched works: which signals fired, on which frame pairs, in which segments.

A segment is a run of matched clip frames, against the run of work frames they match, whose time
offsets agree: "clip 3.0-5.0 s copies work 12.0-14.0 s".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import index
from clipgate.settings import Settings
from index import SearchResult

COMBINED_FRAMES = 3  # the strongest frames a match's confidence counts


@dataclass
class FramePair:
    clip_t: float
    work_t: float
    signals: dict[str, float]  # signal -> similarity in 0..1 (cosine for float signals)
    distances: dict[str, float]  # hash signal -> Hamming distance; orb -> inlier count
    region: tuple[float, float, float, float] | None = None  # where the copy sits (orb), 0..1
    mirrored: bool = False  # the clip shows the work mirrored left-right
    # Float signals: the score that was compared with the threshold (normalised, where the
    # signal normalises) and the raw cosine; the crop of the clip frame that matched, if one did.
    scores: dict[str, float] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)
    crop: tuple[float, float, float, float] | None = None

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


def match_works(
    result: SearchResult,
    clip_t: np.ndarray,
    settings: Settings,
    *,
    duration_s: float = 0.0,
) -> tuple[list[WorkMatch], list[dict[str, Any]]]:
    """Matched works, strongest first, and the nearest works that did not count.

    result.hits are the hits that count (index.search applied each signal's rules); each is
    weighed by its signal's rule (index.rules), never by its name.
    clip_t: (q,) seconds of each query frame.
    duration_s: the clip's length (0 if unknown or a still): a match on the last sampled frame
    runs to the end of the clip.
    """
    rules = index.rules(settings)
    # (query frame, work) -> best pair
    best: dict[tuple[int, str], FramePair] = {}
    # (query frame, work) -> signal group -> its best evidence
    strength: dict[tuple[int, str], dict[str, float]] = {}
    fired: dict[str, set[str]] = {}  # work -> every signal that fired, on any frame pair
    for hit in result.hits:
        if hit.frame_id not in result.frames or hit.signal not in rules:
            continue
        work_id, work_t = result.frames[hit.frame_id]
        if work_id not in result.works:  # removed since the index was built
            continue
        rule = rules[hit.signal]
        key = (hit.query, work_id)
        fired.setdefault(work_id, set()).add(hit.signal)
        group = strength.setdefault(key, {})
        group[rule.group] = max(group.get(rule.group, 0.0), rule.evidence(hit.value))
        pair = best.get(key)
        sim = rule.similarity(hit.value)
        if pair is None or abs(pair.work_t - work_t) > 1e-6:
            # Prefer the work frame with the stronger evidence for this query frame.
            if pair is not None and pair.score >= sim:
                continue
            pair = FramePair(round(float(clip_t[hit.query]), 3), round(work_t, 3), {}, {})
            best[key] = pair
        if sim > pair.signals.get(hit.signal, -1.0):
            pair.signals[hit.signal] = round(sim, 4)
            if hit.raw is None:
                pair.distances[hit.signal] = hit.value
            else:
                pair.scores[hit.signal] = round(hit.value, 4)
                pair.raw[hit.signal] = round(hit.raw, 4)
                pair.crop = hit.region
            if hit.region is not None and hit.raw is None:
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
    return matches, _nearest(result, by_work)


def _nearest(result: SearchResult, matched: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The closest works by a float signal that did not count (below its threshold, or a signal
    that measures nothing), at most five."""
    best: dict[str, dict[str, Any]] = {}
    for h in result.nearest:
        frame = result.frames.get(h.frame_id)
        if frame is None or frame[0] in matched or frame[0] not in result.works:
            continue
        w = frame[0]
        if w not in best or h.value > best[w]["score"]:
            best[w] = {"work_id": w, "title": result.works[w]["title"], "signal": h.signal,
                       "score": round(h.value, 4), "raw": round(h.raw or h.value, 4)}
    return sorted(best.values(), key=lambda c: -c["score"])[:5]


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
